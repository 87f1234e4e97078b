"""Peak memory of each step (resolution and materialization), one fresh process
per measurement (`benchmarks._worker`'s ``memory`` task).

Each process imports what its contender needs (lazyshape's contenders also
materialize a tiny model once on their backend, so that loading the backend's
modules is not counted) and defines the model; then the resident-set
high-water mark is reset and the step runs once. Reported: the
resident set before the step (``baseline``: interpreter, frameworks, model
definition), the peak during it, and the peak's increase over the baseline.
"""

from __future__ import annotations

from typing import Any

from ._proc import run_worker
from ._report import Comparison, RatioCell
from ._timing import Stats

__all__ = ["run", "CASES"]

MiB = 1024 * 1024

#: (step, model, contenders); the first contender is lazyshape's
CASES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("init", "C", ("lazyshape_torch", "torch_hand", "lazyshape_numpy", "lazyshape_jax",
                   "torch_lazy", "flax_init")),
    ("init", "D", ("lazyshape_torch", "torch_hand", "lazyshape_numpy", "lazyshape_jax",
                   "lazyshape_torch_portable", "lazyshape_numpy_portable",
                   "lazyshape_jax_portable", "jax_hand")),
    ("resolve", "C", ("lazyshape", "lazyshape_symbolic", "torch_meta", "flax_eval_shape")),
)
QUICK_CASES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("init", "C", ("lazyshape_torch", "torch_hand")),
    ("resolve", "C", ("lazyshape", "torch_meta")),
)


def _mib(b: float) -> str:
    return f"{b / MiB:,.1f} MiB"


def run(quick: bool) -> tuple[dict[str, Any], list[Comparison], list[RatioCell]]:
    section: dict[str, Any] = {}
    comparisons: list[Comparison] = []
    cells: list[RatioCell] = []
    for step, key, names in QUICK_CASES if quick else CASES:
        results: dict[str, Any] = {}
        for name in names:
            results[name] = run_worker("memory", timeout=600, step=step, contender=name,
                                       model=key)
        section[f"{step} {key}"] = results
        tag = f"memory {step} {key}"
        for name, r in results.items():
            if "error" in r:
                comparisons.append(Comparison(f"{tag}: {name} peak increase", "MiB",
                                              error=r["error"]))
                continue
            comparisons.append(Comparison(
                f"{tag}: {name} peak increase", "MiB",
                Stats.of([r["increase_bytes"] / MiB]),
                note=f"baseline {_mib(r['baseline_bytes'])}, peak {_mib(r['peak_bytes'])}"
                     + ("" if r.get("peak_reset") else "; high-water mark not resettable")))
        ours = names[0]
        r0 = results[ours]
        if "error" in r0:
            continue
        for peer in names[1:]:
            r1 = results[peer]
            if "error" in r1 or peer.startswith("lazyshape"):
                continue
            inc = r0["increase_bytes"] / max(r1["increase_bytes"], 1)
            cells.append(RatioCell(f"memory {step}", key, peer, Stats.of([inc])))
            if peer == "torch_hand":
                comparisons.append(Comparison(
                    f"{tag}: {ours} / {peer} (peak increase)", "x", Stats.of([inc]), 1.1, "<=",
                    "materialization vs the hand-written model"))
                comparisons.append(Comparison(
                    f"{tag}: {ours} / {peer} (peak resident set)", "x",
                    Stats.of([r0["peak_bytes"] / r1["peak_bytes"]]),
                    note="whole process, baselines included"))
        hand_jax = results.get("jax_hand", {})
        if "increase_bytes" in hand_jax and "increase_bytes" in results.get("lazyshape_jax", {}):
            comparisons.append(Comparison(
                f"{tag}: lazyshape_jax / jax_hand (peak increase)", "x",
                Stats.of([results["lazyshape_jax"]["increase_bytes"]
                          / max(hand_jax["increase_bytes"], 1)]), 1.1, "<=",
                "JAX's native draw vs jax.random by hand (XLA's compiles and buffers in both)"))
        if step == "init" and key == "D":  # every backend and RNG mode against the bytes
            for name, r in results.items():
                if name.startswith("lazyshape") and "error" not in r:
                    comparisons.append(Comparison(
                        f"{tag}: {name} peak increase / parameter bytes", "x",
                        Stats.of([r["increase_bytes"] / r["param_bytes"]]), 1.02, "<=",
                        "materialization holds the parameters and little else"))
        if step == "init" and ours == "lazyshape_torch" and "param_bytes" in r0:
            pb = r0["param_bytes"]
            comparisons.append(Comparison(
                f"{tag}: {ours} peak / (parameter bytes + baseline)", "x",
                Stats.of([r0["peak_bytes"] / (pb + r0["baseline_bytes"])]),
                1.1 if key == "C" else None, "<=",
                f"parameters and buffers {_mib(pb)}"))
            if key != "D":  # D has a row per backend above
                comparisons.append(Comparison(
                    f"{tag}: {ours} peak increase / parameter bytes", "x",
                    Stats.of([r0["increase_bytes"] / pb]),
                    note="the step's own overhead over the bytes it must hold"))
    return section, comparisons, cells
