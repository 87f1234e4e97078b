"""lazyshape benchmarks: side by side against the peers, ratios in one run.

``python -m benchmarks`` (``make bench``, which installs the ``bench`` extra:
flax, Keras, matplotlib) runs every section, prints a matrix of ratios
(lazyshape / peer, per model and step) and every figure against its target
and writes ``benchmarks/results/bench.json`` (every
sample and setting), ``bench.md`` (the tables) and ``bench-*.png`` (the
plots, the scaling curve among them). ``--quick`` (``make bench-quick``, CI's
smoke run) runs a reduced set in under two minutes; ``--only SECTION`` one
section; ``--profile`` prints where ``ls.infer`` spends its time, and
``--breakdown`` the time of the rules, the walk around them, each total and
the cold-cache penalty for the zoo models of the cost and zoo sections.

Sections, one module each: `resolve` (shape inference without allocation),
`init` (deferred initialization to a usable model), `forward` (overhead after
initialization), `scaling` (10 to 100,000 layers), `memory` (peak memory of
each step, one process each), `coldstart` (import and first ``infer`` in fresh
processes).

Layout: `benchmarks.models` defines the reference models once per framework;
`benchmarks.steps` what each contender does at each step (shared by the
in-process timings and the separate-process measurements of
`benchmarks._worker`); `benchmarks.keras_models` the Keras models (imported
only in a process with ``KERAS_BACKEND=jax``); `benchmarks._timing` the timer
helpers; `benchmarks._report` the tables, Markdown and JSON;
`benchmarks.plots` the PNGs. Speed is measured only here: tests never time.
"""
