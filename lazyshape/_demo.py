"""``lazyshape demo``: the seed pages' deferred-initialization walkthrough,
replayed on every installed backend.

Page 1 writes a lazy ``CustomLinear`` by hand; page 2 puts ``nn.LazyLinear`` in
a ``Sequential``, shows the uninitialized parameters, passes one (2, 20) batch
drawn from ``U(float32.min/10, float32.max/10)`` and shows the model after.
Here both run on NumPy, PyTorch and JAX from one definition, and the same model
is then resolved symbolically from ``("B", 20)`` with no data at all.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from . import init, ops
from ._backends import backends, get_backend
from ._build import build
from ._dims import format_shape
from ._graph import Sequential
from ._layer import Layer
from ._specs import ParamSpec, TensorSpec
from ._summary import summary
from .layers._common import check_floating
from .layers.activation import ReLU
from .layers.linear import Linear

__all__ = ["CustomLinear", "seed_model", "run_demo"]


class CustomLinear(Layer):
    """The seed's hand-written lazy linear layer, as a lazyshape layer: input
    ``(*, in_features)`` with ``in_features`` inferred, output ``(*, out_features)``;
    weight ``kaiming_uniform(a=0, fan_in, relu)``, bias zeros."""

    def __init__(self, out_features: int) -> None:
        super().__init__()
        self.out_features = out_features

    def output_spec(self, x: TensorSpec) -> TensorSpec:
        check_floating(x)  # the output keeps the input's dtype: int @ float would not
        return TensorSpec((*x.shape[:-1], self.out_features), x.dtype)

    def param_specs(self, x: TensorSpec) -> dict[str, ParamSpec]:
        return {
            "weight": ParamSpec(
                (self.out_features, x.shape[-1]),
                init=init.kaiming_uniform(a=0, mode="fan_in", nonlinearity="relu"),
            ),
            "bias": ParamSpec((self.out_features,), init=init.zeros()),
        }

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
        return ops.matmul(x, ops.permute_dims(params["weight"], (1, 0))) + params["bias"]


def seed_model() -> Sequential:
    """The seed's ``nn.Sequential(nn.LazyLinear(256), nn.ReLU(), nn.Linear(256, 10))``."""
    return Sequential(Linear(256), ReLU(), Linear(10, in_features=256))


def seed_batch(seed: int = 0) -> np.ndarray[Any, Any]:
    """A (2, 20) float32 batch from ``U(finfo.min/10, finfo.max/10)``, as the seed draws it."""
    finfo = np.finfo(np.float32)
    low, high = float(finfo.min) / 10, float(finfo.max) / 10
    return np.random.default_rng(seed).uniform(low, high, size=(2, 20)).astype(np.float32)


def _partial_line(model: Any) -> str:
    # the backend's own placeholder type (torch: UninitializedParameter) and the
    # partial shape lazyshape knows before any data
    state = model.state_dict()
    partial = {n: p.shape for n, p in model._rt.placeholders().items()}
    return "\n".join(
        f"    {name}: {type(value).__name__} {format_shape(partial[name])}"
        for name, value in state.items()
    )


def _first_child_type(model: Any) -> str:
    try:
        child = model[0]
    except (TypeError, KeyError, IndexError):
        return ""
    return f"  type(m[0]) is {type(child).__module__}.{type(child).__qualname__}"


def _quiet(model: Callable[..., Any], *xs: Any) -> Any:
    # The seed's batch is huge on purpose: activations overflow to inf. Keep the
    # terminal readable (no overflow warnings), as the seed page does.
    with warnings.catch_warnings(), np.errstate(over="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")
        return model(*xs)


def run_demo(print_: Callable[[str], None] = print) -> None:
    """Print the walkthrough for every installed backend."""
    names = backends()
    print_("lazyshape demo: deferred initialization on " + ", ".join(names))
    print_("=" * 72)
    x_np = seed_batch()
    for name in names:
        backend = get_backend(name)
        x = backend.asarray(x_np)
        print_(f"\n## backend: {name}")

        print_("\n[page 1] CustomLinear(10): a lazy layer written once with ls.ops")
        custom = build(CustomLinear(10), name, seed=1)
        print_(f"  initialized before the forward: {custom.initialized}")
        x_custom = backend.asarray(np.random.default_rng(1).random((2, 20), dtype=np.float32))
        _quiet(custom, x_custom)
        w = custom.state_dict()["weight"]
        print_(f"  after the forward: weight shape {tuple(w.shape)}, "
               f"bias all zero: {bool(np.all(np.asarray(_np(custom.state_dict()['bias'])) == 0))}")

        print_("\n[page 2] net = Sequential(Linear(256), ReLU(), Linear(10, in_features=256))")
        model = build(seed_model(), name, seed=0)
        print_("  before the first batch:")
        print_(_indent(repr(model)))
        print_("  parameters (placeholders, partial shapes):")
        print_(_partial_line(model))
        y = _quiet(model, x)
        print_(f"  X: (2, 20) float32 from U(float32.min/10, float32.max/10) -> output "
               f"{tuple(y.shape)}")
        print_("  after the first batch:")
        print_(_indent(repr(model)))
        if line := _first_child_type(model):
            print_(line)
    print_("\n" + "=" * 72)
    print_("rng='portable', seed=0: the same initial weights on every backend")
    weights = {}
    for name in names:
        m = build(seed_model(), name, rng="portable", seed=0).materialize((2, 20))
        weights[name] = _np(m.state_dict()["0.weight"])
    ref = weights[names[0]]
    for name in names:
        same = np.array_equal(weights[name], ref)
        print_(f"  {name:6s} 0.weight[0, :3] = {np.array2string(weights[name][0, :3], precision=6)}"
               f"  identical to {names[0]}: {same}")
    print_("\nsummary of the concrete model, inferred from (2, 20):\n")
    print_(_indent(summary(seed_model(), (2, 20))))
    print_("\nthe same model resolved symbolically from ('B', 20), no data, no backend:\n")
    print_(_indent(summary(seed_model(), ("B", 20))))


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def _np(x: Any) -> np.ndarray[Any, Any]:
    from ._backends import to_numpy

    return to_numpy(x)
