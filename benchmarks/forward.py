"""Forward after materialization:
a lazyshape-built model against the model a user of that framework would write
by hand, with the same weights and the same input.

Cases (`CASES`): a small MLP (batches 2 and 256), and the reference
models A, B, C and D at small batches (C on 64x64 images, D on 8 tokens: the
point is the per-call overhead, not the arithmetic):

- torch: ``ls.build(net, "torch")`` materialized, vs the hand-written
  ``nn.Sequential`` / torchvision-style ResNet-18 holding the very same weight
  tensors (``load_state_dict(..., assign=True)``); ``torch.no_grad()``, eval mode;
- jax: ``jax.jit(m.apply)`` vs a hand-written jitted function on the very
  same params (lazyshape's nested dict, unpacked inside the jitted function);
  for the MLP also the stateful ``m(x)``, and the hand-written function on the
  nested dict against the same on a plain list of ``(w, b)``: the pytree's own
  cost;
  every call ends in ``block_until_ready()``;
- numpy: ``m(x)`` vs hand-written NumPy (``x @ w.T + b`` ...; no hand-written
  NumPy convolution, so no ResNet).

Both contenders of a pair run the same number of calls per repeat, in
interleaved rounds; the reported ratio is lazyshape / hand-written per round.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._report import Comparison, RatioCell
from ._timing import Contender, calibrate, measure_interleaved, ratio_stats
from .models import (
    Plan,
    jax_hand,
    mlp,
    mlp4096,
    mlp_stack,
    numpy_hand,
    param_indices,
    to_lazyshape,
    to_torch,
    torch_model,
    transformer_stack,
)

__all__ = ["run", "BACKENDS", "TARGETS", "CASES"]

#: lazyshape / hand-written targets, per backend
TARGETS = {"torch": 1.02, "jax": 1.05, "numpy": 1.10}


@dataclass(frozen=True)
class Case:
    """One model, the input shapes its forward is timed on (the first is the
    one it is materialized on), and the backends that have a hand-written twin."""

    name: str
    plan: Plan | None  # None: ResNet-18 (model C)
    shapes: tuple[tuple[int, ...], ...]
    backends: tuple[str, ...] = ("torch", "jax", "numpy")
    extra_jax_pairs: bool = False

    def lazyshape(self) -> Any:
        if self.plan is not None:
            return to_lazyshape(self.plan)
        from lazyshape import zoo

        return zoo.resnet18()


CASES: tuple[Case, ...] = (
    Case("mlp", mlp(), ((2, 20), (256, 20)), extra_jax_pairs=True),
    Case("A", mlp_stack(1000), ((8, 32),)),
    Case("B", mlp4096(), ((1, 1024),)),
    Case("C", None, ((1, 3, 64, 64),), ("torch", "jax")),
    Case("D", transformer_stack(), ((1, 8, 768),)),
)


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
    return [(flat[f"{i}.weight"], flat[f"{i}.bias"]) for i in param_indices(plan)]


def _diff(a: Any, b: Any) -> float:
    return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, np.float64))))


def _input(shape: tuple[int, ...]) -> np.ndarray[Any, Any]:
    rng = np.random.default_rng(shape[0])
    return rng.standard_normal(shape).astype(np.float32)


def _tag(case: Case, shape: tuple[int, ...]) -> str:
    return f"{case.name} {shape}"


# -- torch -----------------------------------------------------------------------

def _torch_pairs(case: Case) -> list[Pair]:
    import torch

    import lazyshape as ls

    torch.manual_seed(0)
    m = ls.build(case.lazyshape(), "torch")
    m.materialize(case.shapes[0])
    hand = to_torch(case.plan) if case.plan is not None else torch_model("C")
    # the very same tensors (assign=True), not copies: at batch 1 model B is a
    # memory-bound GEMV over 100 MB of weights, whose speed follows where each
    # copy's pages happen to lie (up to ±5% between equal tensors), not overhead
    hand.load_state_dict(m.state_dict(), assign=True)
    m.eval()
    hand.eval()
    pairs = []
    for shape in case.shapes:
        x = torch.from_numpy(_input(shape))
        with torch.no_grad():
            diff = _diff(m(x), hand(x))

        def ours(x: Any = x) -> Any:
            return m(x)

        def mine(x: Any = x) -> Any:
            return hand(x)

        pairs.append(Pair(f"torch m(x), {_tag(case, shape)}", ours, mine, TARGETS["torch"],
                          diff))
    if case.name in COMPILED:
        # torch.compile of each (static shapes), compiled here by a first call
        x = torch.from_numpy(_input(case.shapes[0]))
        cm = torch.compile(m, dynamic=False)
        ch = torch.compile(hand, dynamic=False)
        with torch.no_grad():
            diff = _diff(cm(x), ch(x))

        def ours_compiled(x: Any = x) -> Any:
            return cm(x)

        def mine_compiled(x: Any = x) -> Any:
            return ch(x)

        pairs.append(Pair(f"torch torch.compile(m)(x), {_tag(case, case.shapes[0])}",
                          ours_compiled, mine_compiled, TARGETS["torch"], diff))
    return pairs


#: the cases whose compiled forward is timed too (compiling takes seconds)
COMPILED = ("mlp", "C")


def _torch_loop(fn: Callable[[], Any], n: int) -> Callable[[Any], None]:
    import torch

    def run(_: Any) -> None:
        with torch.no_grad():
            for _ in range(n):
                fn()

    return run


# -- jax -------------------------------------------------------------------------

def jax_resnet18(params: Mapping[str, Any], x: Any) -> Any:
    """ResNet-18 by hand in JAX (NCHW, torch's layouts), eval mode, on lazyshape's
    variables (``{"params": ..., "batch_stats": ...}``) read by canonical
    parameter names (torchvision's)."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    p = {name.partition(".")[2]: v for name, v in _flatten(params).items()}  # no collection

    def conv(x: Any, name: str, stride: int, pad: int) -> Any:
        return lax.conv_general_dilated(x, p[name + ".weight"], (stride, stride),
                                        [(pad, pad), (pad, pad)],
                                        dimension_numbers=("NCHW", "OIHW", "NCHW"))

    def bn(x: Any, name: str) -> Any:
        scale = p[name + ".weight"] * lax.rsqrt(p[name + ".running_var"] + 1e-5)
        shift = p[name + ".bias"] - p[name + ".running_mean"] * scale
        return x * scale[None, :, None, None] + shift[None, :, None, None]

    relu = jax.nn.relu
    x = relu(bn(conv(x, "conv1", 2, 3), "bn1"))
    x = lax.reduce_window(x, -jnp.inf, lax.max, (1, 1, 3, 3), (1, 1, 2, 2),
                          [(0, 0), (0, 0), (1, 1), (1, 1)])
    for stage, stride in ((1, 1), (2, 2), (3, 2), (4, 2)):
        for i in range(2):
            b = f"layer{stage}.{i}"
            s = stride if i == 0 else 1
            h = relu(bn(conv(x, b + ".conv1", s, 1), b + ".bn1"))
            h = bn(conv(h, b + ".conv2", 1, 1), b + ".bn2")
            if b + ".downsample.0.weight" in p:
                x = bn(conv(x, b + ".downsample.0", s, 0), b + ".downsample.1")
            x = relu(h + x)
    x = x.mean(axis=(2, 3))
    return x @ p["fc.weight"].T + p["fc.bias"]


def _jax_pairs(case: Case) -> list[Pair]:
    import jax
    import jax.numpy as jnp

    import lazyshape as ls

    x0 = jnp.asarray(_input(case.shapes[0]))
    # portable init: the same weights as the NumPy and torch pairs
    m = ls.build(case.lazyshape(), "jax", rng="portable", seed=0)
    params = m.init(jax.random.key(0), x0)  # the variables: {"params": ..., ...}
    apply = jax.jit(m.apply)
    if case.plan is not None:
        plan = case.plan
        weights: Any = _weights(plan, params["params"])
        hand_fn = jax_hand(plan)
        # the target pair: the hand-written function on the very same params (a
        # nested dict, as flax's); what that pytree costs over a plain list of
        # (w, b) is the INFO row "params pytree alone" (2-10% on a (2, 20) MLP)
        hand_on_dict: Any = jax.jit(lambda p, x: hand_fn(_weights(plan, p["params"]), x))
    else:
        weights = params
        hand_fn = jax_resnet18
        hand_on_dict = jax.jit(hand_fn)
    hand = jax.jit(hand_fn)
    pairs = []
    for shape in case.shapes:
        x = jnp.asarray(_input(shape))
        diff = _diff(apply(params, x), hand_on_dict(params, x))

        def ours(x: Any = x) -> Any:
            return apply(params, x).block_until_ready()

        def mine(x: Any = x) -> Any:
            return hand(weights, x).block_until_ready()

        def mine_on_dict(x: Any = x) -> Any:
            return hand_on_dict(params, x).block_until_ready()

        pairs.append(Pair(f"jax jit(m.apply), {_tag(case, shape)}", ours, mine_on_dict,
                          TARGETS["jax"], diff))
        if not case.extra_jax_pairs:
            continue
        assert case.plan is not None
        plan = case.plan
        if not m.initialized:
            m(x0)  # the stateful model initializes on first use
        stateful = _weights(plan, _flatten(m.state_dict()))

        def stateful_call(x: Any = x) -> Any:
            return m(x).block_until_ready()

        pairs.append(Pair(f"jax stateful m(x) vs hand jit, {_tag(case, shape)}", stateful_call,
                          mine, None, _diff(m(x), hand(stateful, x))))
        # what the params pytree alone costs: the same hand-written function
        # taking lazyshape's nested dict instead of a list of (w, b)
        pairs.append(Pair(f"jax params pytree alone, {_tag(case, shape)}", mine_on_dict, mine,
                          None, _diff(hand_on_dict(params, x), hand(weights, x)),
                          "hand on nested dict / hand on list"))
    return pairs


# -- numpy -----------------------------------------------------------------------

def _numpy_pairs(case: Case) -> list[Pair]:
    import lazyshape as ls

    assert case.plan is not None
    m = ls.build(case.lazyshape(), "numpy", seed=0)
    m.materialize(case.shapes[0])
    hand = numpy_hand(case.plan, _weights(case.plan, m.params))
    pairs = []
    for shape in case.shapes:
        x = _input(shape)
        diff = _diff(m(x), hand(x))

        def ours(x: Any = x) -> Any:
            return m(x)

        def mine(x: Any = x) -> Any:
            return hand(x)

        pairs.append(Pair(f"numpy m(x), {_tag(case, shape)}", ours, mine, TARGETS["numpy"],
                          diff))
    return pairs


def _plain_loop(fn: Callable[[], Any], n: int) -> Callable[[Any], None]:
    def run(_: Any) -> None:
        for _ in range(n):
            fn()

    return run


#: backend -> (pairs factory, timed-loop factory)
BACKENDS: dict[str, tuple[Callable[[Case], list[Pair]],
                          Callable[[Callable[[], Any], int], Callable[[Any], None]]]] = {
    "torch": (_torch_pairs, _torch_loop),
    "jax": (_jax_pairs, _plain_loop),
    "numpy": (_numpy_pairs, _plain_loop),
}


def _us(ns: float) -> str:
    return f"{ns / 1000:.2f}"


def run(quick: bool) -> tuple[dict[str, Any], list[Comparison], list[RatioCell]]:
    """Time every pair of every installed backend; return the JSON section,
    comparisons (SKIP for a backend that is not installed, ERROR if it fails)
    and the ratio cells."""
    import lazyshape as ls

    # (min repeats, max repeats, warm-up, region, seconds per pair)
    lo, hi, warmup, region_ns, budget = (5, 21, 1, 1e6, 0.4) if quick else (11, 151, 3, 3e6, 3.0)
    installed = ls.backends()
    section: dict[str, Any] = {}
    comparisons: list[Comparison] = []
    cells: list[RatioCell] = []
    # --quick: the small MLP and ResNet-18 on torch (jitting model A alone takes seconds)
    cases = [c for c in CASES if c.name in ("mlp", "C")] if quick else CASES
    for case in cases:
        for backend in case.backends if not quick or case.name == "mlp" else ("torch",):
            make_pairs, make_loop = BACKENDS[backend]
            key = f"{backend} {case.name}"
            if backend not in installed:
                why = f"backend {backend!r} not installed (ls.backends() = {installed})"
                section[key] = {"skipped": why}
                comparisons.append(Comparison(f"forward {key}: lazyshape / hand", "x",
                                              note=why, skipped=True))
                continue
            try:
                pairs = make_pairs(case)
            except Exception as e:  # a backend being written may fail: report, go on
                section[key] = {"error": traceback.format_exc()}
                comparisons.append(Comparison(f"forward {key}: lazyshape / hand", "x",
                                              error=f"{type(e).__name__}: {e}"[:200]))
                continue
            entries = {}
            for pair in pairs:
                n = calibrate(pair.hand, region_ns)
                pair.hand()
                per_call = _time_once(pair.hand, n)
                reps = int(min(hi, max(lo, budget * 1e9 / (2 * max(per_call * n, 1.0)))))
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
                if pair.target is not None:
                    shape = pair.label.split(", ", 1)[1]
                    cells.append(RatioCell("forward", shape, f"{backend} hand", ratio))
            section[key] = {"model": case.plan.description if case.plan else "ResNet-18",
                            "pairs": entries}
    return section, comparisons, cells


def _time_once(fn: Callable[[], Any], n: int) -> float:
    import time

    t0 = time.perf_counter_ns()
    for _ in range(n):
        fn()
    return (time.perf_counter_ns() - t0) / n
