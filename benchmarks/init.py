"""Deferred initialization to a usable model.

Shapes resolved, every parameter allocated and initialized: lazyshape on each
backend (``ls.build(model, backend).materialize(shape)``) against PyTorch's
lazy dry run (``Lazy*`` modules and one forward of a real batch), flax's
``init`` on a real batch, Keras 3 building its functional model (its own
process), and the hand-written torch model's constructor. Every contender
starts from a freshly defined model (defined untimed).
"""

from __future__ import annotations

from typing import Any

from ._report import Comparison, RatioCell
from ._stepbench import StepResult, add_keras, keras_step, time_step
from .models import REFERENCE

__all__ = ["run", "PEERS", "MODELS"]

MODELS = ("A", "B", "C", "D")

#: contenders not run, and why (none since the JAX backend compiles one sampler
#: per (initializer, shape, dtype): its first materialization is linear in the
#: number of parameters)
SKIP: dict[str, dict[str, str]] = {}
PEERS = ("torch_lazy", "torch_hand", "flax_init", "keras")
OURS = ("lazyshape_torch", "lazyshape_numpy", "lazyshape_jax")


def _describe(name: str, out: Any) -> Any:
    if name.startswith("lazyshape"):
        return type(out).__name__
    if name.startswith("torch"):
        return int(sum(p.numel() for p in out.parameters()))
    if name == "flax_init":
        import jax

        return int(sum(x.size for x in jax.tree_util.tree_leaves(out.get("params", out))))
    return None


def run(quick: bool) -> tuple[dict[str, Any], list[Comparison], list[RatioCell]]:
    # --quick (CI's smoke run): two models, the torch and NumPy contenders only
    # (first runs of jax and flax compile for seconds)
    models = ("A", "C") if quick else MODELS
    keras = {} if quick else keras_step("init", list(models), quick)
    section: dict[str, Any] = {}
    comparisons: list[Comparison] = []
    cells: list[RatioCell] = []
    for key in models:
        names = (["lazyshape_torch", "lazyshape_numpy", "torch_lazy", "torch_hand"] if quick
                 else [*OURS, "torch_lazy", "torch_hand", "flax_init"])
        res = time_step("init", key, names, quick, _describe, SKIP.get(key))
        add_keras(res, "keras", keras.get(key, {"error": "not run (--quick)"}))
        section[key] = {"model": REFERENCE[key].description,
                        "input": REFERENCE[key].input_shape, **res.to_dict()}
        comparisons += _compare(res)
        cells += [RatioCell("init (torch)", key, p, res.ratio("lazyshape_torch", p))
                  for p in PEERS if res.has(p) and res.has("lazyshape_torch")]
        cells += [RatioCell("init (jax)", key, p, res.ratio("lazyshape_jax", p))
                  for p in ("flax_init", "keras") if res.has(p) and res.has("lazyshape_jax")]
    return section, comparisons, cells


def _compare(res: StepResult) -> list[Comparison]:
    key = res.key
    tag = f"init {key}"
    out: list[Comparison] = []
    for name in (*OURS, *PEERS):
        st = res.get(name)
        if st is None:
            out.append(Comparison(f"{tag}: {name}", "ms", note=res.missing.get(name, "-"),
                                  skipped=True))
            continue
        note = res.external_notes.get(name, "")
        if name in res.first_ns:
            note = f"first run in the process {res.first_ns[name] / 1e6:,.1f} ms"
            if name == "lazyshape_jax":
                note += " (compiles the jitted draw; repeats reuse it: lru_cache by shapes)"
        out.append(Comparison(f"{tag}: {name}", "ms", st.scaled(1e-6), note=note))

    def ratio(num: str, den: str, target: float | None, op: str, note: str) -> None:
        metric = f"{tag}: {num} / {den}"
        if not (res.has(num) and res.has(den)):
            out.append(Comparison(metric, "x", note="not measured", skipped=True))
            return
        out.append(Comparison(metric, "x", res.ratio(num, den), target, op, note))

    if key == "A":
        ratio("torch_lazy", "lazyshape_torch", 3.0, ">=",
              "how many times faster than PyTorch's lazy dry run")
    else:
        ratio("lazyshape_torch", "torch_lazy", 1.1, "<=", "vs PyTorch's lazy dry run")
    ratio("lazyshape_torch", "torch_hand", 1.2 if key == "C" else None, "<=",
          "vs constructing the hand-written torch model" if key == "C"
          else "vs constructing the hand-written torch model")
    ratio("lazyshape_jax", "flax_init", None, "<=", "vs flax init (eager, real batch)")
    ratio("lazyshape_jax", "keras", None, "<=", "vs Keras build (JAX backend)")
    ratio("lazyshape_numpy", "lazyshape_torch", None, "<=", "NumPy backend vs torch backend")
    return out
