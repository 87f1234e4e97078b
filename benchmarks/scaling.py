"""Scaling: resolution time and memory of stacks of 10 to
100,000 layers, ``(Linear(64), ReLU)`` blocks on ``(8, 32)``, as a
``Sequential`` and as a functional ``Model`` (``ls.Input`` and layer calls).

Time: ``ls.infer`` of a freshly defined stack (program compiled in the timed
region), in this process. Memory: in a fresh process per size, the peak
resident set of that ``ls.infer`` above the set just before it (the model
already defined; its own size is reported beside). Python's recursion limit is
never touched: the functional graph is walked iteratively.
"""

from __future__ import annotations

import sys
from typing import Any

from ._proc import run_worker
from ._report import Comparison
from ._timing import Contender, Stats, measure_interleaved

__all__ = ["run", "stack", "SIZES", "APIS"]

SIZES = (10, 100, 1_000, 10_000, 100_000)
APIS = ("sequential", "functional")


def stack(n: int, api: str) -> Any:
    """``n`` layers: ``n // 2`` blocks of (Linear(64), ReLU), no input size."""
    import lazyshape as ls

    if api == "sequential":
        layers: list[Any] = []
        for _ in range(n // 2):
            layers += [ls.Linear(64), ls.ReLU()]
        return ls.Sequential(*layers)
    x = ls.Input((None, 32))
    h = x
    for _ in range(n // 2):
        h = ls.ReLU()(ls.Linear(64)(h))
    return ls.Model(x, h)


def run(quick: bool) -> tuple[dict[str, Any], list[Comparison], list[Any]]:
    import lazyshape as ls

    limit = sys.getrecursionlimit()
    budget, lo, hi = (0.5, 3, 9) if quick else (2.5, 5, 51)
    shape = (8, 32)
    section: dict[str, Any] = {"sizes": list(SIZES), "recursion_limit": limit,
                               "time": {}, "memory": {}}
    comparisons: list[Comparison] = []
    per_layer: dict[tuple[str, int], Stats] = {}
    for api in APIS:
        section["time"][api] = {}
        for n in SIZES:
            # first, an untimed run: sizes the repeats
            import time

            net = stack(n, api)
            t0 = time.perf_counter_ns()
            ls.infer(net, shape)
            est = time.perf_counter_ns() - t0
            del net
            reps = int(min(hi, max(lo, budget * 1e9 / max(est, 1))))
            c = Contender(f"{api}{n}", lambda net: ls.infer(net, shape),
                          lambda n=n, api=api: stack(n, api), reps, warmup=1 if n < 10**5 else 0)
            st = measure_interleaved([c])[c.name]
            per_layer[(api, n)] = st.scaled(1e-3 / n)
            section["time"][api][n] = {"total_ms": st.scaled(1e-6).to_dict(),
                                       "per_layer_us": st.scaled(1e-3 / n).to_dict(),
                                       "samples_ns": c.samples}
        base, top = per_layer[(api, 100)], per_layer[(api, SIZES[-1])]
        for n in SIZES:
            comparisons.append(Comparison(f"scaling {api}: per layer at {n:,} layers", "µs",
                                          per_layer[(api, n)],
                                          note="ls.infer of a fresh stack"))
        comparisons.append(Comparison(
            f"scaling {api}: per layer at {SIZES[-1]:,} / at 100", "x",
            Stats.of([top.median / base.median]), 1.5, "<=",
            f"recursion limit left at {limit}"))
    for api in APIS:
        section["memory"][api] = {}
        for n in SIZES if not quick else (100, 10_000, 100_000):
            res = run_worker("scaling", timeout=300, n=n, api=api)
            section["memory"][api][n] = res
            if "error" in res:
                comparisons.append(Comparison(f"scaling {api}: memory at {n:,} layers", "B",
                                              error=res["error"]))
                continue
            comparisons.append(Comparison(
                f"scaling {api}: infer peak per layer at {n:,}", "B",
                Stats.of([res["increase_bytes"] / n]),
                note=f"model itself {res['define_bytes'] / n:,.0f} B/layer "
                     f"(separate process)"))
    if sys.getrecursionlimit() != limit:  # pragma: no cover - a bug, loudly
        raise RuntimeError("the recursion limit changed during the scaling benchmark")
    return section, comparisons, []
