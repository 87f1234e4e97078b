"""Timer helpers: robust statistics, interleaved measurement, calibration.

Every timed region is a single call of a contender's ``run`` with the garbage
collector disabled (``gc.disable()``) and timed with ``time.perf_counter_ns``.
Whatever a repeat needs fresh (a new model, say) is made by ``setup`` outside
the timed region, and ``gc.collect()`` runs before each timed region so the
previous repeat's garbage is never collected inside it.

Before measuring, `gc.freeze()` moves everything already alive out of the
collector's reach (and `gc.unfreeze()` puts it back after), so that
``gc.collect()`` costs what the repeats allocated, not what the frameworks did.

Contenders of one comparison are measured *interleaved*: round ``r`` runs
every contender once, in an order that rotates from round to round, so slow
drift of the machine (frequency scaling, a neighbour process) lands on all of
them alike. Their ratio is then taken per round, and reported with its spread.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Contender", "Stats", "measure_interleaved", "calibrate", "ratio_stats"]


@dataclass(frozen=True)
class Stats:
    """Robust summary of samples: median, quartiles (IQR), min, max."""

    median: float
    q1: float
    q3: float
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stats:
        xs = sorted(samples)
        if not xs:
            raise ValueError("no samples")
        if len(xs) == 1:
            q1 = q3 = xs[0]
        else:
            q1, _, q3 = statistics.quantiles(xs, n=4, method="inclusive")
        return cls(statistics.median(xs), q1, q3, xs[0], xs[-1], len(xs))

    def scaled(self, k: float) -> Stats:
        """Every figure multiplied by ``k`` (ns → µs, per model → per layer)."""
        return Stats(self.median * k, self.q1 * k, self.q3 * k, self.min * k, self.max * k,
                     self.n)

    def to_dict(self) -> dict[str, float | int]:
        return {"median": self.median, "q1": self.q1, "q3": self.q3,
                "min": self.min, "max": self.max, "n": self.n}


@dataclass
class Contender:
    """One thing to time.

    - ``run(state)`` is the timed region; it performs ``number`` operations
      (for the forward benchmarks it loops ``number`` times over one call);
    - ``setup()`` makes a fresh ``state`` for each repeat, untimed (None: the
      state is None);
    - ``repeats`` timed regions are taken, after ``warmup`` untimed ones.

    Samples are in nanoseconds per operation (region time / ``number``);
    ``cpu_samples`` are the calling thread's CPU time in the same regions
    (``time.thread_time_ns``): the work done, without the time the thread
    waited for a core another process held.
    """

    name: str
    run: Callable[[Any], Any]
    setup: Callable[[], Any] | None = None
    repeats: int = 11
    warmup: int = 1
    number: int = 1
    samples: list[float] = field(default_factory=list)
    cpu_samples: list[float] = field(default_factory=list)

    def record(self, stats: Stats) -> dict[str, Any]:
        """What a results file keeps of this contender, given its ``stats``
        (ns per operation): its settings, ms per operation and the samples."""
        return {"repeats": self.repeats, "warmup": self.warmup, "models_per_sample": self.number,
                "ms": stats.scaled(1e-6).to_dict(), "samples_ns": self.samples}

    def _once(self, timed: bool) -> None:
        state = self.setup() if self.setup is not None else None
        gc.collect()
        gc.disable()
        try:
            c0 = time.thread_time_ns()
            t0 = time.perf_counter_ns()
            self.run(state)
            t1 = time.perf_counter_ns()
            c1 = time.thread_time_ns()
        finally:
            gc.enable()
        del state
        if timed:
            self.samples.append((t1 - t0) / self.number)
            self.cpu_samples.append((c1 - c0) / self.number)


def measure_interleaved(contenders: Sequence[Contender]) -> dict[str, Stats]:
    """Warm every contender up, then time them round-robin: round ``r`` runs
    each contender that still needs repeats, starting at a rotating offset.
    Returns ``{name: Stats}`` of ns per operation; samples stay on each
    contender (``c.samples``, in round order) for per-round ratios."""
    # Move everything alive now (frameworks, built models) out of the collector's
    # reach, so the per-repeat gc.collect() scans only what the repeats made:
    # with torch and jax imported a full collection takes ~0.2 s.
    gc.collect()
    gc.freeze()
    try:
        for c in contenders:
            c.samples.clear()
            c.cpu_samples.clear()
            for _ in range(c.warmup):
                c._once(timed=False)
        rounds = max(c.repeats for c in contenders)
        for r in range(rounds):
            k = r % len(contenders)
            for c in (*contenders[k:], *contenders[:k]):
                if len(c.samples) < c.repeats:
                    c._once(timed=True)
    finally:
        gc.unfreeze()
    return {c.name: Stats.of(c.samples) for c in contenders}


def ratio_stats(num: Contender, den: Contender, cpu: bool = False) -> Stats:
    """Per-round ratios ``num / den`` of two contenders timed in the same rounds
    (``cpu``: of their thread CPU times)."""
    a, b = (num.cpu_samples, den.cpu_samples) if cpu else (num.samples, den.samples)
    n = min(len(a), len(b))
    return Stats.of([a[i] / b[i] for i in range(n)])


def calibrate(fn: Callable[[], Any], target_ns: float, max_number: int = 1_000_000) -> int:
    """How many calls of ``fn`` take about ``target_ns`` (at least 1)."""
    number = 1
    while True:
        gc.disable()
        try:
            t0 = time.perf_counter_ns()
            for _ in range(number):
                fn()
            dt = time.perf_counter_ns() - t0
        finally:
            gc.enable()
        if dt >= target_ns / 10 or number >= max_number:
            break
        number *= 4
    per_call = max(dt / number, 1.0)
    return int(min(max(1, round(target_ns / per_call)), max_number))
