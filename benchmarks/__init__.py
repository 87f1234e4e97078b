"""lazyshape benchmarks: side by side against the peers, ratios in one run.

``python -m benchmarks`` (``make bench``) runs everything, prints a table of
figures and ratios against their targets, and writes
``benchmarks/results/issue2.json`` (every sample and setting) and
``issue2.md`` (the table). ``--quick`` (``make bench-quick``) runs the same
benchmarks with fewer repeats, in under a minute.

Layout: `benchmarks.models` describes the models once (framework-neutral
plans) with a builder per framework; `benchmarks.resolve` times shape
resolution; `benchmarks.forward` times the forward pass of built models;
`benchmarks._timing` holds the timer helpers and `benchmarks._report` the
table, Markdown and JSON. Speed is measured only here: tests never time.
"""
