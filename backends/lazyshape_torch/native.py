"""Built-in lazyshape layers as native torch modules, and the generic wrapper
for every other layer.

`NATIVE` maps a layer class (exact type: a subclass may change ``forward``) to
a factory building the equivalent ``torch.nn`` module from the layer's
hyperparameters and its *parameter specs* (so a model materialized from a
checkpoint's shapes gets the same modules). A factory's module exposes each
parameter spec under its local name (``weight``, ``bias``, ``running_mean``):
lazyshape's parameter names are torch's. Supporting a new layer natively is
one `register` entry.

Layers with no entry run through `LayerModule`: its ``forward`` calls the
layer's own ``forward`` (written with ``ls.ops``, which dispatches to this
backend's ops) on its ``nn.Parameter``s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

import lazyshape as ls
from lazyshape._layer import Context, Layer, format_hparam
from lazyshape._specs import ParamSpec

__all__ = ["NATIVE", "Factory", "register", "native_module", "LayerModule"]

#: ``factory(layer, specs, dtype=..., device=...) -> nn.Module | None``; ``specs``
#: are the layer's concrete parameter specs by local name; None means "run this
#: case through `LayerModule`" (no size can be read off the specs).
Factory = Callable[..., nn.Module | None]

NATIVE: dict[type[Layer], Factory] = {}


def register(*layer_types: type[Layer]) -> Callable[[Factory], Factory]:
    """Decorator: build ``layer_types`` natively with the decorated factory."""

    def deco(factory: Factory) -> Factory:
        for tp in layer_types:
            NATIVE[tp] = factory
        return factory

    return deco


def native_module(
    layer: Layer, specs: Mapping[str, ParamSpec], *, dtype: torch.dtype, device: Any
) -> nn.Module | None:
    """The native torch module of ``layer`` for these parameter specs (created,
    hence initialized, by torch itself), or None when the layer has no entry."""
    factory = NATIVE.get(type(layer))
    if factory is None:
        return None
    module = factory(layer, specs, dtype=dtype, device=device)
    if module is None:  # the factory can't size this case from specs: LayerModule
        return None
    for local, spec in specs.items():
        got: Any = module  # a local name may be dotted: `out_proj.weight`
        for seg in local.split("."):
            got = getattr(got, seg, None)
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != spec.shape:
            raise RuntimeError(
                f"native factory for {layer.kind} built {type(module).__name__} whose "
                f"`{local}` is {None if got is None else tuple(got.shape)}, "
                f"expected {spec.shape}"
            )
    return module


# -- entries ------------------------------------------------------------------


@register(ls.Linear)
def _linear(layer: Any, specs: Mapping[str, ParamSpec], *, dtype: Any, device: Any) -> nn.Module:
    out_features, in_features = specs["weight"].shape
    return nn.Linear(
        int(in_features), int(out_features), bias="bias" in specs, dtype=dtype, device=device
    )


def _stateless(make: Callable[[Any], nn.Module]) -> Factory:
    def factory(layer: Any, specs: Mapping[str, ParamSpec], **kw: Any) -> nn.Module:
        return make(layer)

    return factory


for _tp, _make in [
    (ls.ReLU, lambda layer: nn.ReLU()),
    (ls.Tanh, lambda layer: nn.Tanh()),
    (ls.Sigmoid, lambda layer: nn.Sigmoid()),
    (ls.SiLU, lambda layer: nn.SiLU()),
    (ls.Identity, lambda layer: nn.Identity()),
    (ls.GELU, lambda layer: nn.GELU(approximate=layer.approximate)),
    (ls.LeakyReLU, lambda layer: nn.LeakyReLU(negative_slope=layer.negative_slope)),
    (ls.Softmax, lambda layer: nn.Softmax(dim=layer.dim)),
    (ls.Dropout, lambda layer: nn.Dropout(p=layer.p)),
    (ls.Flatten, lambda layer: nn.Flatten(layer.start_dim, layer.end_dim)),
    (ls.Unflatten, lambda layer: nn.Unflatten(layer.dim, tuple(layer.sizes))),
]:
    register(_tp)(_stateless(_make))


# -- the generic wrapper --------------------------------------------------------


class LayerModule(nn.Module):
    """A layer with no native module: ``forward`` runs ``layer.forward(params, *xs)``.

    Parameters are ``nn.Parameter``s (buffers for specs with ``trainable=False``)
    under the layer's local names, so ``state_dict`` keys are canonical."""

    def __init__(
        self,
        layer: Layer,
        tensors: Mapping[str, torch.Tensor],
        trainable: Mapping[str, bool],
        hparams: Mapping[str, Any] | None = None,
        path: str = "",
    ) -> None:
        super().__init__()
        self.layer = layer
        self._hparams = dict(layer.hparams() if hparams is None else hparams)
        self._path = path
        for local, t in tensors.items():
            if trainable[local]:
                self.register_parameter(
                    local, t if isinstance(t, nn.Parameter) else nn.Parameter(t)
                )
            else:
                self.register_buffer(local, t)

    def forward(self, *xs: Any) -> Any:
        params: dict[str, Any] = dict(self._parameters)
        if self._buffers:
            params.update(self._buffers)
        layer = self.layer
        if layer.needs_context:
            ctx = Context(training=self.training, rng=None)  # torch's global RNG
            ctx.path = self._path
            out = layer.forward(params, *xs, ctx=ctx)  # type: ignore[call-arg]
            if ctx.updates:  # buffers (running statistics) are updated in place
                with torch.no_grad():
                    for local, value in ctx.updates.items():
                        self._buffers[local].copy_(value)  # type: ignore[union-attr]
            return out
        return layer.forward(params, *xs)

    def _get_name(self) -> str:
        return self.layer.kind

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={format_hparam(v)}" for k, v in self._hparams.items())


# The layer families' native entries register themselves on import.
from . import native_conv, native_norm, native_pool, native_seq  # noqa: E402, F401
