"""Where `ls.infer` spends its time.

- ``python -m benchmarks --profile`` profiles ``ls.infer`` on fresh copies of
  the reference models with `cProfile` (the garbage collector off, as in the
  timed regions) and prints the functions with the most own time;
- ``python -m benchmarks --breakdown`` times the parts of a symbolic
  resolution of the zoo models the cost and zoo sections time (`breakdown`):
  the rules, the walk around them, each total, and the cold-cache penalty.
"""

from __future__ import annotations

import cProfile
import gc
import io
import operator
import pstats
from collections.abc import Callable
from typing import Any

from ._timing import Contender, measure_interleaved
from .models import REFERENCE, lazyshape_model

__all__ = ["profile_infer", "breakdown", "format_breakdown", "BREAKDOWN_CASES"]


def profile_infer(repeats: int = 20, top: int = 25, symbolic: bool = False) -> str:
    """The pstats report (sorted by own time) of ``repeats`` inferences per model."""
    import lazyshape as ls

    out = io.StringIO()
    for key, ref in REFERENCE.items():
        shape = ref.symbolic_shape if symbolic else ref.input_shape
        spec = ls.TensorSpec(shape, ref.input_dtype)
        nets = [lazyshape_model(key) for _ in range(repeats + 1)]
        ls.infer(nets.pop(), spec)  # warm-up
        gc.collect()
        gc.disable()
        prof = cProfile.Profile()
        try:
            prof.enable()
            for net in nets:
                ls.infer(net, spec)
            prof.disable()
        finally:
            gc.enable()
        out.write(f"== ls.infer({key}, {spec}) x {repeats} ==\n")
        stats = pstats.Stats(prof, stream=out)
        stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


#: the zoo models the cost and zoo sections resolve, on their symbolic specs
BREAKDOWN_CASES: dict[str, tuple[Any, ...]] = {
    "resnet18": ("B", 3, "H", "W"),
    "gpt2": ("B", "T"),
    "convnext_tiny": ("B", 3, "H", "W"),
}


def _batched(name: str, make: Callable[[], Any], run: Callable[[Any], Any], rounds: int,
             per: int) -> Contender:
    """A contender timing ``run(state)`` over ``per`` fresh states a sample (made
    untimed by ``make``)."""
    def run_all(states: list[Any]) -> None:
        for s in states:
            run(s)

    return Contender(name, run_all, lambda: [make() for _ in range(per)], rounds, 1, per)


def breakdown(names: tuple[str, ...] = tuple(BREAKDOWN_CASES), rounds: int = 9,
              per: int = 16) -> dict[str, dict[str, float]]:
    """Where ``ls.infer(fresh, spec)`` and its totals spend their time, in µs
    per model (medians of ``rounds`` samples of ``per`` fresh models, every
    figure of a model timed in the same interleaved rounds):

    - ``infer``: ``ls.infer(fresh, spec)``;
    - ``rules``: the shape and parameter rules alone of the nodes whose rules
      ran, re-run on their recorded inputs (warm: the same inputs again and
      again); ``walk`` is ``infer - rules``: walking the structure, recording
      nodes, replaying repeated blocks;
    - ``bare loop``: a floor for a walk: the rules of every node run in a bare
      loop over the model's program (compiled beforehand, untimed), each node
      recorded as a tuple, nothing checked and no block replayed;
    - ``flops``, ``param_bytes``, ``activation_bytes``: each read first on a
      fresh inference;
    - ``infer+flops`` and ``infer+flops cold``: the same call with warm caches,
      and right after 64 MiB were written (the CPU caches hold none of it, as
      after another program's run).
    """
    import lazyshape as ls
    from lazyshape import zoo
    from lazyshape._graph import program_of

    sweep = bytearray(64 << 20)
    out: dict[str, dict[str, float]] = {}
    for name in names:
        spec = BREAKDOWN_CASES[name]
        factory = getattr(zoo, name)
        inf = ls.infer(factory(), spec)
        ran = [inf._records[i] for i, _ in inf._counted()]
        calls = [(layer, ins, layer.has_params) for layer, _, _, ins, _, _ in ran]

        def rules(_: Any, calls: list[tuple[Any, Any, bool]] = calls) -> None:
            for layer, ins, has_params in calls:
                layer.output_spec(*ins)
                if has_params:
                    layer.param_specs(*ins)

        def fresh(factory: Any = factory, spec: Any = spec) -> Any:
            return ls.infer(factory(), spec)

        def swept(factory: Any = factory) -> Any:
            model = factory()
            sweep[::64] = b"\x01" * (len(sweep) // 64)
            return model

        def infer_flops(m: Any, spec: Any = spec) -> Any:
            return ls.infer(m, spec).flops

        contenders = [
            _batched("infer", factory, lambda m, spec=spec: ls.infer(m, spec), rounds, per),
            _batched("rules", lambda: None, rules, rounds, per),
            _batched("bare loop", lambda factory=factory: program_of(factory()),
                     lambda prog, x=inf.inputs[0]: _bare_loop(prog, x), rounds, per),
            *[_batched(total, fresh, operator.attrgetter(total), rounds, per)
              for total in ("flops", "param_bytes", "activation_bytes")],
            _batched("infer+flops", factory, infer_flops, rounds, per),
            Contender("infer+flops cold", infer_flops, swept, rounds * per),
        ]
        stats = measure_interleaved(contenders)
        us = {key: st.median / 1e3 for key, st in stats.items()}
        row = {"infer": us.pop("infer"), "rules": us["rules"]}
        row["walk"] = row["infer"] - us.pop("rules")
        row |= us
        row["nodes"] = len(inf.layers)
        row["nodes whose rules ran"] = len(ran)
        out[name] = row
    return out


def _bare_loop(prog: Any, x: Any, dtype: str = "float32") -> list[tuple[Any, ...]]:
    """Run the rules of every node of the one-input program ``prog`` from input
    spec ``x``, in order; a record tuple per node (a single output of the
    model's dtype gets ``dtype``)."""
    slots: list[Any] = [None] * prog.n_slots
    slots[0] = x
    records: list[tuple[Any, ...]] = []
    append = records.append
    for node in prog.nodes:
        layer = node.layer
        if node.in0 >= 0:
            ins: tuple[Any, ...] = (slots[node.in0],)
        else:
            ins = tuple([slots[i] for i in node.ins])
        out = layer.output_spec(*ins)
        local = layer.param_specs(*ins) if layer.has_params else {}
        if node.out0 >= 0:
            if out.dtype is None:  # (the model's dtype, as the pass fills it in)
                out = out.with_dtype(dtype)
            slots[node.out0] = out
            outs: tuple[Any, ...] = (out,)
        else:
            outs = tuple(out)
            for i, o in zip(node.outs, outs, strict=True):
                slots[i] = o
        append((layer, node.path, node.param_path, ins, outs, local))
    return records


def format_breakdown(rows: dict[str, dict[str, float]]) -> str:
    """`breakdown`'s figures as a text table (µs per model; node counts)."""
    names = list(rows)
    keys = list(rows[names[0]])
    lines = [f"{'µs per model':24s}" + "".join(f"{n:>15s}" for n in names)]
    for key in keys:
        cells = "".join(
            f"{rows[n][key]:15.0f}" if key.startswith("nodes") else f"{rows[n][key]:15.1f}"
            for n in names)
        lines.append(f"{key:24s}{cells}")
    return "\n".join(lines)
