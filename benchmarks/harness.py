"""The shape-rule harness: what an example of ``check_layer`` costs.

``check_layer(ls.Conv2d)`` with its default settings (every installed backend,
every property, the registered entry's hyperparameters and inputs),
derandomized so each run draws the same examples, timed per example:

- *with probes*: as shipped, the boundary probes (the rule's edge and one
  below it for every dim, judged by the oracles) and the dtype probes (the
  model in float64/float16/bfloat16 and the inputs in int32/int64/bool, once
  per layer drawn) included;
- *without probes*: the same examples with both probes switched off;
- *hypothesis alone*: the same draws (layer, case, inputs) in a ``@given``
  test that does nothing else: hypothesis's own overhead per example.

The target: the probes cost at most 2x the example they are added to
(``(with - without) / without <= 2``). Runs are warm: the timed repeats
follow a warm-up run, so JAX's compilations of the drawn shapes are cached.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from ._report import Comparison
from ._timing import Contender, Stats, measure_interleaved, ratio_stats

__all__ = ["run"]

KIND = "Conv2d"


@contextlib.contextmanager
def _no_probes() -> Iterator[None]:
    from lazyshape.testing import _check

    saved = _check._Run.boundaries, _check._Run.dtypes
    _check._Run.boundaries = _check._Run.dtypes = lambda self: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        _check._Run.boundaries, _check._Run.dtypes = saved  # type: ignore[method-assign]


def run(quick: bool) -> tuple[dict[str, Any], list[Comparison], list[Any]]:
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    import lazyshape.testing as lt

    examples = 15 if quick else 40
    s = settings(max_examples=examples, derandomize=True, database=None, deadline=None)
    entry = lt.entries()[KIND]
    layer_type = entry.layer_type

    def with_probes(_: Any) -> int:
        return lt.check_layer(layer_type, settings=s).examples

    def without_probes(_: Any) -> int:
        with _no_probes():
            return lt.check_layer(layer_type, settings=s).examples

    def hypothesis_alone(_: Any) -> int:
        count = [0]

        @settings(s, suppress_health_check=list(HealthCheck),
                  phases=[p for p in Phase if p is not Phase.explain])
        @given(st.data())
        def draw_only(data: Any) -> None:
            layer = data.draw(entry.layers)
            data.draw(st.sampled_from(range(9)))  # the case
            data.draw(entry.inputs(layer))
            count[0] += 1

        draw_only()
        return count[0]

    n_with, n_without, n_alone = with_probes(None), without_probes(None), hypothesis_alone(None)
    repeats = 3 if quick else 5
    contenders = [
        Contender("with probes", with_probes, repeats=repeats, number=n_with),
        Contender("without probes", without_probes, repeats=repeats, number=n_without),
        Contender("hypothesis alone", hypothesis_alone, repeats=repeats, number=n_alone),
    ]
    stats = measure_interleaved(contenders)
    ms = {name: st_.scaled(1e-6) for name, st_ in stats.items()}
    ratio = ratio_stats(contenders[0], contenders[1])
    probe_cost = Stats.of([r - 1 for r in (
        contenders[0].samples[i] / contenders[1].samples[i]
        for i in range(min(len(contenders[0].samples), len(contenders[1].samples))))])
    section = {"kind": KIND, "examples": {"with": n_with, "without": n_without,
                                          "alone": n_alone},
               "ms_per_example": {k: v.to_dict() for k, v in ms.items()},
               "with_over_without": ratio.to_dict()}
    comparisons = [
        Comparison(f"check_layer({KIND}) per example, with probes", "ms", ms["with probes"],
                   note=f"{n_with} examples, every backend and property"),
        Comparison(f"check_layer({KIND}) per example, without probes", "ms",
                   ms["without probes"], note="boundary and dtype probes off"),
        Comparison(f"hypothesis alone per example ({KIND}'s draws)", "ms",
                   ms["hypothesis alone"], note="the same draws, no checks"),
        Comparison(f"check_layer({KIND}): probe cost / example cost", "x", probe_cost, 2.0,
                   "<=", "(with - without) / without, per round"),
    ]
    return section, comparisons, []
