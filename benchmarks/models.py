"""The benchmark models, described once, framework-neutrally, as *plans*.

A plan is the input feature size plus a tuple of steps (``("linear", 64)``,
``("relu",)``). Each contender turns a plan into its own model (a lazyshape
`Sequential`, a torch ``nn.Sequential`` of ``LazyLinear``, ...), so a new model
is one plan here and a new peer (flax, Keras) is one builder next to the
others: nothing else changes.

Every builder makes *fresh* layer objects on each call: a benchmark that
rebuilds its model per repeat gets no help from any cache.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Plan", "mlp_stack", "mlp", "RESOLVE_MODELS", "FORWARD_MODELS", "to_lazyshape",
           "to_torch", "to_torch_lazy"]

Step = tuple[Any, ...]


@dataclass(frozen=True)
class Plan:
    """A model as ``in_features`` plus steps; ``blocks`` is how many repeated
    blocks it has (what "per block" figures divide by)."""

    name: str
    in_features: int
    steps: tuple[Step, ...]
    blocks: int = 1
    description: str = ""

    @property
    def layers(self) -> int:
        """Number of modules (a Linear and a ReLU count one each)."""
        return len(self.steps)


def mlp_stack(blocks: int, width: int = 64, in_features: int = 32) -> Plan:
    """``blocks`` × (Linear(width), ReLU()), on inputs of ``in_features``."""
    steps: tuple[Step, ...] = (("linear", width), ("relu",)) * blocks
    return Plan(f"mlp_stack{blocks}", in_features, steps, blocks,
                f"{blocks} x [Linear({width}), ReLU()] from {in_features} features")


def mlp(hidden: int = 256, out: int = 10, in_features: int = 20) -> Plan:
    """``Linear(hidden), ReLU(), Linear(out)`` on inputs of ``in_features``."""
    return Plan(f"mlp{in_features}_{hidden}_{out}", in_features,
                (("linear", hidden), ("relu",), ("linear", out)), 1,
                f"Linear({hidden}), ReLU(), Linear({out}) from {in_features} features")


#: models whose resolution (shape inference) is timed
RESOLVE_MODELS: tuple[Plan, ...] = (mlp_stack(1000),)
#: models whose forward after materialization is timed, with the batch sizes
FORWARD_MODELS: tuple[tuple[Plan, tuple[int, ...]], ...] = ((mlp(), (2, 256)),)


# -- builders: plan -> a fresh model of one framework ---------------------------

def _build(plan: Plan, table: dict[str, Callable[..., Any]]) -> list[Any]:
    layers = []
    for kind, *args in plan.steps:
        make = table.get(kind)
        if make is None:
            raise NotImplementedError(f"no builder for step {kind!r}")
        layers.append(make(*args))
    return layers


def to_lazyshape(plan: Plan) -> Any:
    """A lazyshape ``Sequential`` with no input sizes."""
    import lazyshape as ls

    return ls.Sequential(*_build(plan, {"linear": ls.Linear, "relu": ls.ReLU}))


def to_torch_lazy(plan: Plan) -> Any:
    """torch's own deferred initialization: ``nn.Sequential`` of ``nn.LazyLinear``."""
    from torch import nn

    return nn.Sequential(*_build(plan, {"linear": nn.LazyLinear, "relu": nn.ReLU}))


def to_torch(plan: Plan) -> Any:
    """The hand-written torch model: ``nn.Linear(in, out)`` with sizes spelled out."""
    from torch import nn

    layers: list[Any] = []
    width = plan.in_features
    for kind, *args in plan.steps:
        if kind == "linear":
            layers.append(nn.Linear(width, args[0]))
            width = args[0]
        elif kind == "relu":
            layers.append(nn.ReLU())
        else:
            raise NotImplementedError(f"no builder for step {kind!r}")
    return nn.Sequential(*layers)
