"""Forward after materialization: a lazyshape-built model against the model a
user of that framework would write by hand, with the same weights and batch.

- torch: ``ls.build(net, "torch")`` materialized on ``(2, in)`` vs the
  hand-written ``nn.Sequential(nn.Linear(in, h), nn.ReLU(), nn.Linear(h, out))``
  loaded with the same state dict; ``torch.no_grad()``, eval mode;
- jax: ``jax.jit(m.apply)`` vs a hand-written jitted function of the same MLP
  on the same weights (a list of ``(w, b)``), and the stateful ``m(x)`` vs
  that same jitted function; every call ends in ``block_until_ready()``. A
  third, informative pair times the hand-written function on lazyshape's
  nested-dict params against itself on the list: the pytree's own cost;
- numpy: ``m(x)`` vs hand-written NumPy (``np.maximum(x @ w0.T + b0, 0) ...``).

Both contenders of a pair run the same number of calls per repeat, in
interleaved rounds; the reported ratio is lazyshape / hand-written per round.
A new backend is one more entry in `BACKENDS`.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ._report import Comparison
from ._timing import Contender, calibrate, measure_interleaved, ratio_stats
from .models import FORWARD_MODELS, Plan, to_lazyshape, to_torch

__all__ = ["run", "BACKENDS", "TARGETS"]

#: the batch every lazyshape model is materialized on
MATERIALIZE_BATCH = 2

#: lazyshape / hand-written targets, per backend
TARGETS = {"torch": 1.02, "jax": 1.05, "numpy": 1.10}


class Pair:
    """Two callables computing the same thing on the same input, timed against
    each other (``ratio`` names the quotient); ``max_abs_diff`` is their outputs'
    largest absolute difference (computed once, untimed)."""

    def __init__(self, label: str, ours: Callable[[], Any], hand: Callable[[], Any],
                 target: float | None, max_abs_diff: float,
                 ratio: str = "lazyshape / hand") -> None:
        self.label = label
        self.ours = ours
        self.hand = hand
        self.target = target
        self.max_abs_diff = max_abs_diff
        self.ratio = ratio


def _linear_indices(plan: Plan) -> list[int]:
    return [i for i, (kind, *_) in enumerate(plan.steps) if kind == "linear"]


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"0": {"weight": w}}`` or ``{"0.weight": w}`` -> ``{"0.weight": w}``."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        name = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(_flatten(v, name + "."))
        else:
            out[name] = v
    return out


def _weights(plan: Plan, params: Mapping[str, Any]) -> list[tuple[Any, Any]]:
    flat = _flatten(params)
    return [(flat[f"{i}.weight"], flat[f"{i}.bias"]) for i in _linear_indices(plan)]


def _diff(a: Any, b: Any) -> float:
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, np.float64))))


def _input(plan: Plan, batch: int) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(batch)
    return rng.standard_normal((batch, plan.in_features)).astype(np.float32)


# -- torch -----------------------------------------------------------------------

def _torch_pairs(plan: Plan, batches: tuple[int, ...]) -> list[Pair]:
    import torch

    import lazyshape as ls

    torch.manual_seed(0)
    m = ls.build(to_lazyshape(plan), "torch")
    m.materialize((MATERIALIZE_BATCH, plan.in_features))
    hand = to_torch(plan)
    hand.load_state_dict(m.state_dict())
    m.eval()
    hand.eval()
    pairs = []
    for batch in batches:
        x = torch.from_numpy(_input(plan, batch))
        with torch.no_grad():
            diff = _diff(m(x), hand(x))

        def ours(x: Any = x) -> Any:
            return m(x)

        def mine(x: Any = x) -> Any:
            return hand(x)

        pairs.append(Pair(f"torch m(x), batch {batch}", ours, mine, TARGETS["torch"], diff))
    return pairs


def _torch_loop(fn: Callable[[], Any], n: int) -> Callable[[Any], None]:
    import torch

    def run(_: Any) -> None:
        with torch.no_grad():
            for _ in range(n):
                fn()

    return run


# -- jax -------------------------------------------------------------------------

def _jax_pairs(plan: Plan, batches: tuple[int, ...]) -> list[Pair]:
    import jax
    import jax.numpy as jnp

    import lazyshape as ls

    kinds = [kind for kind, *_ in plan.steps]

    def hand_apply(weights: Any, x: Any) -> Any:
        it = iter(weights)
        for kind in kinds:
            if kind == "linear":
                w, b = next(it)
                x = x @ w.T + b
            else:
                x = jnp.maximum(x, 0)
        return x

    x0 = jnp.asarray(_input(plan, MATERIALIZE_BATCH))
    m = ls.build(to_lazyshape(plan), "jax")
    params = m.init(jax.random.key(0), x0)
    weights = _weights(plan, params)
    apply = jax.jit(m.apply)
    hand = jax.jit(hand_apply)
    names = [str(i) for i in _linear_indices(plan)]
    hand_on_dict = jax.jit(
        lambda p, x: hand_apply([(p[n]["weight"], p[n]["bias"]) for n in names], x))
    m(x0)  # the stateful model initializes on first use
    stateful = _weights(plan, _flatten(m.state_dict()))
    pairs = []
    for batch in batches:
        x = jnp.asarray(_input(plan, batch))
        diff = _diff(apply(params, x), hand(weights, x))
        sdiff = _diff(m(x), hand(stateful, x))

        def ours(x: Any = x) -> Any:
            return apply(params, x).block_until_ready()

        def mine(x: Any = x) -> Any:
            return hand(weights, x).block_until_ready()

        def stateful_call(x: Any = x) -> Any:
            return m(x).block_until_ready()

        def mine_on_dict(x: Any = x) -> Any:
            return hand_on_dict(params, x).block_until_ready()

        pairs.append(Pair(f"jax jit(m.apply), batch {batch}", ours, mine, TARGETS["jax"], diff))
        pairs.append(Pair(f"jax stateful m(x) vs hand jit, batch {batch}", stateful_call, mine,
                          None, sdiff))
        # what the params pytree alone costs: the same hand-written function
        # taking lazyshape's nested dict instead of a list of (w, b)
        pairs.append(Pair(f"jax params pytree alone, batch {batch}", mine_on_dict, mine, None,
                          _diff(hand_on_dict(params, x), hand(weights, x)),
                          "hand on nested dict / hand on list"))
    return pairs


# -- numpy -----------------------------------------------------------------------

def _numpy_hand(plan: Plan, weights: list[tuple[Any, Any]]) -> Callable[[Any], Any]:
    """Straight-line hand-written NumPy for the plans we time (what a user writes)."""
    kinds = tuple(kind for kind, *_ in plan.steps)
    if kinds == ("linear", "relu", "linear"):
        (w0, b0), (w1, b1) = weights

        def mlp(x: Any) -> Any:
            return np.maximum(x @ w0.T + b0, 0) @ w1.T + b1

        return mlp
    raise NotImplementedError(f"no hand-written NumPy model for steps {kinds}")


def _numpy_pairs(plan: Plan, batches: tuple[int, ...]) -> list[Pair]:
    import lazyshape as ls

    m = ls.build(to_lazyshape(plan), "numpy", seed=0)
    m.materialize((MATERIALIZE_BATCH, plan.in_features))
    hand = _numpy_hand(plan, _weights(plan, m.params))
    pairs = []
    for batch in batches:
        x = _input(plan, batch)
        diff = _diff(m(x), hand(x))

        def ours(x: Any = x) -> Any:
            return m(x)

        def mine(x: Any = x) -> Any:
            return hand(x)

        pairs.append(Pair(f"numpy m(x), batch {batch}", ours, mine, TARGETS["numpy"], diff))
    return pairs


def _plain_loop(fn: Callable[[], Any], n: int) -> Callable[[Any], None]:
    def run(_: Any) -> None:
        for _ in range(n):
            fn()

    return run


#: backend -> (pairs factory, timed-loop factory)
BACKENDS: dict[str, tuple[Callable[[Plan, tuple[int, ...]], list[Pair]],
                          Callable[[Callable[[], Any], int], Callable[[Any], None]]]] = {
    "torch": (_torch_pairs, _torch_loop),
    "jax": (_jax_pairs, _plain_loop),
    "numpy": (_numpy_pairs, _plain_loop),
}


def _us(ns: float) -> str:
    return f"{ns / 1000:.2f}"


def run(quick: bool) -> tuple[dict[str, Any], list[Comparison]]:
    """Time every pair of every installed backend; return the JSON section and
    comparisons (SKIP for a backend that is not installed, ERROR if it fails)."""
    import lazyshape as ls

    reps, warmup, region_ns = (21, 1, 1e6) if quick else (151, 5, 3e6)
    installed = ls.backends()
    section: dict[str, Any] = {}
    comparisons: list[Comparison] = []
    for plan, batches in FORWARD_MODELS:
        for backend, (make_pairs, make_loop) in BACKENDS.items():
            key = f"{backend} {plan.name}"
            if backend not in installed:
                why = f"backend {backend!r} not installed (ls.backends() = {installed})"
                section[key] = {"skipped": why}
                comparisons.append(Comparison(f"forward {key}: lazyshape / hand", "x",
                                              note=why, skipped=True))
                continue
            try:
                pairs = make_pairs(plan, batches)
            except Exception as e:  # a backend being written may fail: report, go on
                section[key] = {"error": traceback.format_exc()}
                comparisons.append(Comparison(f"forward {key}: lazyshape / hand", "x",
                                              error=f"{type(e).__name__}: {e}"[:200]))
                continue
            entries = {}
            for pair in pairs:
                n = calibrate(pair.hand, region_ns)
                ours = Contender("lazyshape", make_loop(pair.ours, n), None, reps, warmup, n)
                hand = Contender("hand", make_loop(pair.hand, n), None, reps, warmup, n)
                stats = measure_interleaved([ours, hand])
                ratio = ratio_stats(ours, hand)
                entries[pair.label] = {
                    "ratio_of": pair.ratio,
                    "calls_per_repeat": n, "repeats": reps, "warmup": warmup,
                    "max_abs_diff": pair.max_abs_diff,
                    "lazyshape_us": stats["lazyshape"].scaled(1e-3).to_dict(),
                    "hand_us": stats["hand"].scaled(1e-3).to_dict(),
                    "ratio": ratio.to_dict(),
                    "samples_ns": {"lazyshape": ours.samples, "hand": hand.samples},
                }
                note = (f"{_us(stats['lazyshape'].median)} vs {_us(stats['hand'].median)} µs/call;"
                        f" max|diff| {pair.max_abs_diff:.1e}")
                comparisons.append(Comparison(f"forward {pair.label}: {pair.ratio}", "x",
                                              ratio, pair.target, "<=", note))
            section[key] = {"model": plan.description, "pairs": entries}
    return section, comparisons
