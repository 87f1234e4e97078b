"""Timing one step (``resolve``, ``init``) of several contenders on one model,
interleaved, with a repeat count sized by each contender's own cost; and the
Keras contender, timed in its own process."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from ._proc import run_worker
from ._timing import Contender, Stats, measure_interleaved, ratio_stats
from .steps import NEEDS, STEPS

__all__ = ["StepResult", "time_step", "keras_step", "available"]


def available(module: str | None) -> str | None:
    """None when ``module`` imports, else the reason it doesn't."""
    if module is None:
        return None
    if module == "keras":  # imported only in its own process, with KERAS_BACKEND=jax
        import importlib.util

        return None if importlib.util.find_spec("keras") else "keras not installed"
    try:
        __import__(module)
    except ImportError as e:
        return f"{module} not importable: {e}"
    return None


@dataclass
class StepResult:
    """Per contender: samples (ns), stats, or why it is missing."""

    step: str
    key: str
    contenders: dict[str, Contender] = field(default_factory=dict)
    stats: dict[str, Stats] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    #: medians from other processes (Keras): ``{name: Stats}``, no per-round ratio
    external: dict[str, Stats] = field(default_factory=dict)
    external_notes: dict[str, str] = field(default_factory=dict)
    #: the untimed first run of each contender, ns (compiles and caches included)
    first_ns: dict[str, float] = field(default_factory=dict)

    def has(self, name: str) -> bool:
        return name in self.stats or name in self.external

    def get(self, name: str) -> Stats | None:
        return self.stats.get(name) or self.external.get(name)

    def ratio(self, num: str, den: str) -> Stats | None:
        """``num / den``: per round when both were timed together, else of medians."""
        if num in self.contenders and den in self.contenders:
            return ratio_stats(self.contenders[num], self.contenders[den])
        a, b = self.get(num), self.get(den)
        if a is None or b is None:
            return None
        return Stats.of([a.median / b.median])

    def to_dict(self, per: float = 1.0) -> dict[str, Any]:
        out: dict[str, Any] = {"skipped": self.missing, "outputs": self.outputs,
                               "contenders": {}}
        for name, c in self.contenders.items():
            out["contenders"][name] = {
                **c.record(self.stats[name]), "first_run_ms": self.first_ns.get(name, 0) / 1e6,
            }
        for name, st in self.external.items():
            out["contenders"][name] = {"ms": st.scaled(1e-6).to_dict(), "separate_process": True,
                                       "note": self.external_notes.get(name, "")}
        return out


#: steps whose first run takes less are timed over several fresh models per sample
BATCH_BELOW_NS = 2e6


def _batched(setup: Any, run: Any, number: int) -> tuple[Any, Any]:
    def setup_n() -> list[Any]:
        return [setup() for _ in range(number)]

    def run_n(states: list[Any]) -> None:
        for state in states:
            run(state)

    return setup_n, run_n


def _repeats(est_ns: float, budget_s: float, lo: int, hi: int) -> int:
    return int(min(hi, max(lo, budget_s * 1e9 / max(est_ns, 1.0))))


def time_step(step: str, key: str, names: list[str], quick: bool,
              describe: Any = None, skip: dict[str, str] | None = None) -> StepResult:
    """Time ``names`` (contenders of `benchmarks.steps.STEPS`) on model ``key``.

    Each contender first runs once untimed (a warm-up that also sizes its
    repeats: about ``budget`` seconds each, between ``lo`` and ``hi``)."""
    budget, lo, hi = (0.5, 3, 9) if quick else (2.0, 5, 51)
    res = StepResult(step, key)
    pending: list[Contender] = []
    for name in names:
        why = (skip or {}).get(name) or available(NEEDS.get(name))
        if why is not None:
            res.missing[name] = why
            continue
        try:
            setup, run = STEPS[step][name](key)
            state = setup()
            t0 = time.perf_counter_ns()
            out = run(state)
            est = time.perf_counter_ns() - t0
            res.first_ns[name] = est
        except NotImplementedError as e:
            res.missing[name] = str(e)
            continue
        if describe is not None:
            res.outputs[name] = describe(name, out)
        del state, out
        number = 1
        if est < BATCH_BELOW_NS:
            # a sub-millisecond step is timed over `number` fresh models in a row,
            # so the sample is its steady cost, not the cache misses left by the
            # millisecond-long peer that ran just before it in the round
            number = min(64, int(BATCH_BELOW_NS // max(est, 1)) + 1)
            setup, run = _batched(setup, run, number)
        c = Contender(name, run, setup, _repeats(est * number, budget, lo, hi),
                      warmup=1 if est < 2e8 else 0, number=number)
        pending.append(c)
    if pending:
        res.stats = measure_interleaved(pending)
        res.contenders = {c.name: c for c in pending}
    return res


def keras_step(step: str, keys: list[str], quick: bool) -> dict[str, Any]:
    """Keras 3 timings of ``keys`` in fresh processes: ``{key: result}``.

    Model A (2000 layers) goes in a process of its own: Keras raises
    ``RecursionError`` at Python's default limit, which is reported, and then
    it is timed with the limit raised."""
    why = available("keras")
    if why is not None:
        return {k: {"error": why, "skipped": True} for k in keys}
    repeats, warmup = (1, 0) if quick else (3, 1)
    out: dict[str, Any] = {}
    rest = [k for k in keys if k != "A"]
    if rest:
        res = run_worker("keras", timeout=600, step=step, models=rest, repeats=repeats,
                         warmup=warmup)
        for k in rest:
            out[k] = res.get(k, {"error": res.get("error", "no result")})
    if "A" in keys:
        res = run_worker("keras", timeout=600, step=step, models=["A"], repeats=repeats,
                         warmup=0, recursion_limit=100_000)
        out["A"] = res.get("A", {"error": res.get("error", "no result")})
    return out


def add_keras(res: StepResult, name: str, result: dict[str, Any]) -> None:
    """Attach a Keras result to a step result (as an external median)."""
    if "samples_ns" in result:
        res.external[name] = Stats.of(result["samples_ns"])
        note = "separate process"
        if "default_limit_error" in result:
            note += (f"; fails at Python's default recursion limit, timed with "
                     f"sys.setrecursionlimit({result['recursion_limit']})")
        res.external_notes[name] = note
        res.outputs[name] = result.get("output_shape")
    else:
        res.missing[name] = result.get("error", "no result")
