"""Cold start: what a user waits for in a fresh process.

``import lazyshape`` (the core: no framework), then defining model C
(``lazyshape.zoo.resnet18()``) and its first ``ls.infer`` on
``(8, 3, 224, 224)``, in several fresh processes (median). The peers' first
use is measured the same way: importing torch and its meta-device dry run of
the lazy ResNet-18; importing jax and flax and ``jax.eval_shape`` of its
``init``.
"""

from __future__ import annotations

from typing import Any

from ._proc import run_worker
from ._report import Comparison
from ._timing import Stats

__all__ = ["run"]


def run(quick: bool) -> tuple[dict[str, Any], list[Comparison], list[Any]]:
    runs = {"lazyshape": 3 if quick else 9, "torch": 0 if quick else 3,
            "flax": 0 if quick else 3}
    section: dict[str, Any] = {}
    comparisons: list[Comparison] = []
    for fw, n in runs.items():
        if n == 0:
            continue
        results = [run_worker("coldstart", timeout=300, framework=fw) for _ in range(n)]
        ok = [r for r in results if "error" not in r]
        section[fw] = results
        if not ok:
            comparisons.append(Comparison(f"cold start {fw}", "s", error=results[0]["error"]))
            continue
        imp = Stats.of([r["import_s"] * 1e3 for r in ok])
        first = Stats.of([r["first_infer_s"] * 1e3 for r in ok])
        define = Stats.of([r["define_s"] * 1e3 for r in ok])
        if fw == "lazyshape":
            extra = ok[0].get("frameworks_imported") or []
            comparisons.append(Comparison("cold start: import lazyshape", "ms", imp, 150.0, "<=",
                                          f"{len(ok)} fresh processes; frameworks imported: "
                                          f"{extra or 'none'}"))
            comparisons.append(Comparison("cold start: first ls.infer of C after import", "ms",
                                          first, 10.0, "<=",
                                          f"after zoo.resnet18() (defined in "
                                          f"{define.median:.1f} ms)"))
        else:
            what = {"torch": "import torch + lazyshape",
                    "flax": "import jax + flax + lazyshape"}[fw]
            step = {"torch": "meta dry run of the lazy ResNet-18",
                    "flax": "jax.eval_shape of the flax ResNet-18 init"}[fw]
            comparisons.append(Comparison(f"cold start {fw}: {what}", "ms", imp,
                                          note=f"{len(ok)} fresh processes"))
            comparisons.append(Comparison(f"cold start {fw}: first {step}", "ms", first))
    return section, comparisons, []
