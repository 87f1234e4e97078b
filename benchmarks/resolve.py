"""Resolution: how long it takes to learn every shape of a freshly defined model.

Contenders, each given a fresh model per repeat (built untimed by ``setup``):

- ``lazyshape``: ``ls.infer(model, (8, in))``: the whole call, including
  compiling the model's flat program (a fresh model has none cached);
- ``lazyshape_symbolic``: ``ls.infer(model, ("B", in))``;
- ``python_floor``: a bare Python loop doing the same bookkeeping: per layer
  an output shape tuple and a dict of parameter shape tuples. No checks, no
  records, no names: what any pure-Python shape pass must at least cost;
- ``torch_lazy``: ``nn.Sequential`` of ``nn.LazyLinear`` and one forward of an
  ``(8, in)`` batch under ``torch.no_grad()``: what torch does to learn shapes
  (it allocates, initializes and computes);
- ``torch_meta``: the same lazy model made under ``torch.device("meta")`` and
  one forward of a meta input: no data, but every op dispatched.

A new peer is one more `Contender` factory in `PEERS`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from ._report import Comparison
from ._timing import Contender, Stats, measure_interleaved, ratio_stats
from .models import RESOLVE_MODELS, Plan, to_lazyshape, to_torch_lazy

__all__ = ["run", "PEERS", "BATCH"]

#: the concrete batch size of the resolution benchmark
BATCH = 8


# -- lazyshape -----------------------------------------------------------------

def _lazyshape(plan: Plan, reps: int, warmup: int) -> Contender:
    import lazyshape as ls

    shape = (BATCH, plan.in_features)
    return Contender("lazyshape", lambda net: ls.infer(net, shape),
                     lambda: to_lazyshape(plan), reps, warmup)


def _lazyshape_symbolic(plan: Plan, reps: int, warmup: int) -> Contender:
    import lazyshape as ls

    shape = ("B", plan.in_features)
    return Contender("lazyshape_symbolic", lambda net: ls.infer(net, shape),
                     lambda: to_lazyshape(plan), reps, warmup)


# -- the floor: a bare loop ----------------------------------------------------

class _FloorLinear:
    __slots__ = ("out_features",)

    def __init__(self, out_features: int) -> None:
        self.out_features = out_features


class _FloorReLU:
    __slots__ = ()


def _floor_layers(plan: Plan) -> list[Any]:
    table: dict[str, Callable[..., Any]] = {"linear": _FloorLinear, "relu": _FloorReLU}
    return [table[kind](*args) for kind, *args in plan.steps]


def floor_pass(layers: list[Any], shape: tuple[int, ...]) -> list[Any]:
    """Per layer: the output shape tuple and ``{name: parameter shape tuple}``."""
    records = []
    for layer in layers:
        if type(layer) is _FloorLinear:
            out = layer.out_features
            params = {"weight": (out, shape[-1]), "bias": (out,)}
            shape = (*shape[:-1], out)
        else:
            params = {}
        records.append((shape, params))
    return records


def _floor(plan: Plan, reps: int, warmup: int) -> Contender:
    shape = (BATCH, plan.in_features)
    return Contender("python_floor", lambda layers: floor_pass(layers, shape),
                     lambda: _floor_layers(plan), reps, warmup)


# -- torch -----------------------------------------------------------------------

def _quiet_lazy(plan: Plan) -> Any:
    with warnings.catch_warnings():  # "Lazy modules are a new feature ..."
        warnings.simplefilter("ignore")
        return to_torch_lazy(plan)


def _torch_lazy(plan: Plan, reps: int, warmup: int) -> Contender:
    import torch

    def setup() -> Any:
        return _quiet_lazy(plan), torch.randn(BATCH, plan.in_features)

    def run(state: Any) -> Any:
        net, x = state
        with torch.no_grad():
            return net(x)

    return Contender("torch_lazy", run, setup, reps, warmup)


def _torch_meta(plan: Plan, reps: int, warmup: int) -> Contender:
    import torch

    def setup() -> Any:
        with torch.device("meta"):
            return _quiet_lazy(plan), torch.empty(BATCH, plan.in_features)

    def run(state: Any) -> Any:
        net, x = state
        with torch.no_grad():
            return net(x)

    return Contender("torch_meta", run, setup, reps, warmup)


#: name -> (factory(plan, repeats, warmup), share of the full repeat count, needs)
PEERS: dict[str, tuple[Callable[[Plan, int, int], Contender], float, str | None]] = {
    "lazyshape": (_lazyshape, 1.0, None),
    "lazyshape_symbolic": (_lazyshape_symbolic, 1.0, None),
    "python_floor": (_floor, 1.0, None),
    "torch_lazy": (_torch_lazy, 0.6, "torch"),
    "torch_meta": (_torch_meta, 0.3, "torch"),
}


def _available(module: str | None) -> str | None:
    """None when ``module`` imports, else the reason it doesn't."""
    if module is None:
        return None
    try:
        __import__(module)
    except ImportError as e:
        return f"{module} not importable: {e}"
    return None


def _output_shape(name: str, out: Any) -> list[Any]:
    if name.startswith("lazyshape"):
        return [d if type(d) is int else str(d) for d in out.output.shape]
    if name == "python_floor":
        return list(out[-1][0])
    return list(out.shape)


def run(quick: bool) -> tuple[dict[str, Any], list[Comparison]]:
    """Time every model of `RESOLVE_MODELS`; return the JSON section and comparisons."""
    reps, warmup = (9, 1) if quick else (51, 2)
    section: dict[str, Any] = {}
    comparisons: list[Comparison] = []
    for plan in RESOLVE_MODELS:
        contenders: dict[str, Contender] = {}
        missing: dict[str, str] = {}
        for name, (factory, share, needs) in PEERS.items():
            why = _available(needs)
            if why is not None:
                missing[name] = why
                continue
            contenders[name] = factory(plan, max(3, round(reps * share)), warmup)
        shapes = {}
        for name, c in contenders.items():  # one untimed run: check they agree
            state = c.setup() if c.setup is not None else None
            shapes[name] = _output_shape(name, c.run(state))
        stats = measure_interleaved(list(contenders.values()))
        per_layer = 1e-3 / plan.layers  # ns per model -> µs per layer
        per_block = 1e-3 / plan.blocks
        section[plan.name] = {
            "model": {"description": plan.description, "layers": plan.layers,
                      "blocks": plan.blocks, "batch": BATCH,
                      "in_features": plan.in_features},
            "output_shapes": shapes,
            "skipped": missing,
            "contenders": {
                name: {
                    "repeats": c.repeats, "warmup": c.warmup,
                    "total_ms": stats[name].scaled(1e-6).to_dict(),
                    "per_layer_us": stats[name].scaled(per_layer).to_dict(),
                    "per_block_us": stats[name].scaled(per_block).to_dict(),
                    "samples_ns": c.samples,
                }
                for name, c in contenders.items()
            },
        }
        comparisons += _compare(plan, contenders, stats, missing)
    return section, comparisons


def _compare(plan: Plan, cs: dict[str, Contender], stats: dict[str, Stats],
             missing: dict[str, str]) -> list[Comparison]:
    tag = f"resolve {plan.name}"
    per_layer, per_block = 1e-3 / plan.layers, 1e-3 / plan.blocks
    out: list[Comparison] = []

    def per(name: str, what: str, target: float | None = None, note: str = "") -> None:
        if name in missing:
            out.append(Comparison(f"{tag}: {name} {what}", "µs", note=missing[name],
                                  skipped=True))
            return
        k = per_layer if what == "per layer" else per_block
        out.append(Comparison(f"{tag}: {name} {what}", "µs", stats[name].scaled(k), target,
                              "<=", note))

    def ratio(num: str, den: str, target: float | None, op: str, note: str = "") -> None:
        metric = f"{tag}: {num} / {den}"
        gone = missing.get(num) or missing.get(den)
        if gone:
            out.append(Comparison(metric, "x", note=gone, skipped=True))
            return
        out.append(Comparison(metric, "x", ratio_stats(cs[num], cs[den]), target, op, note))

    per("lazyshape", "per layer", 3.0, f"(8, {plan.in_features}); {plan.layers} modules")
    per("lazyshape", "per block", None, "Linear+ReLU pair")
    per("lazyshape_symbolic", "per layer", None, f"('B', {plan.in_features})")
    ratio("lazyshape_symbolic", "lazyshape", 4.0, "<=", "symbolic vs concrete")
    per("python_floor", "per layer", None, "bare loop: shape tuple + param-shape dict")
    ratio("lazyshape", "python_floor", None, "<=", "overhead over the bare loop")
    per("torch_lazy", "per layer", None, "LazyLinear stack, one no_grad forward")
    ratio("torch_lazy", "lazyshape", 20.0, ">=", "how many times faster lazyshape is")
    per("torch_meta", "per layer", None, "LazyLinear stack on meta, one no_grad forward")
    ratio("torch_meta", "lazyshape", 50.0, ">=", "how many times faster lazyshape is")
    return out
