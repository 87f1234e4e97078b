"""Native torch modules of the normalization layers.

``nn.BatchNorm{1,2,3}d``, ``nn.InstanceNorm{1,2,3}d``, ``nn.LayerNorm`` and
``nn.GroupNorm`` are built from the layer's hyperparameters and the sizes in
its parameter specs, so ``state_dict`` keys (``num_batches_tracked``
included) are torch's. Norm layers use no randomness. The zoo's
``LayerNorm2d`` (ConvNeXt's) is an ``nn.LayerNorm`` run over the channels as
torchvision's ``LayerNorm2d`` runs it.

torch raises a bare ``ValueError`` for a batch with one value per channel in
training; the modules that only then compute batch (instance) statistics get
a forward pre-hook that raises lazyshape's `ShapeError` instead, before any
computation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from lazyshape.backend import Layer, LayerRecord, ShapeError
from lazyshape.layers.norm import (
    BatchNorm1d,
    BatchNorm2d,
    BatchNorm3d,
    GroupNorm,
    InstanceNorm1d,
    InstanceNorm2d,
    InstanceNorm3d,
    LayerNorm,
    RMSNorm,
    check_spatial_size,
    check_values_per_channel,
)
from lazyshape.zoo import LayerNorm2d as ZooLayerNorm2d

from . import native
from .native import register, sizes

__all__ = ["LayerNorm2d"]


_BATCH: dict[type[Layer], type[nn.Module]] = {
    BatchNorm1d: nn.BatchNorm1d, BatchNorm2d: nn.BatchNorm2d, BatchNorm3d: nn.BatchNorm3d,
}



_INSTANCE: dict[type[Layer], type[nn.Module]] = {
    InstanceNorm1d: nn.InstanceNorm1d,
    InstanceNorm2d: nn.InstanceNorm2d,
    InstanceNorm3d: nn.InstanceNorm3d,
}



def _float_dtype(rec: LayerRecord, dtype: Any) -> Any:
    """The floating dtype of the module's parameters (``num_batches_tracked``
    is int64 whatever the model's dtype)."""
    for local in ("weight", "running_mean"):
        spec = rec.params.get(local)
        if spec is not None and spec.dtype is not None:
            return getattr(torch, spec.dtype)
    return dtype


def _check_training_input(
    check: Callable[[tuple[int, ...], str], None], module: nn.Module, args: tuple[Any, ...]
) -> None:
    if not (module.training and args and isinstance(args[0], torch.Tensor)):
        return
    shape = tuple(args[0].shape)
    if native.is_dynamo_compiling() or not native.concrete(shape):
        return  # traced (compile, export, FX): the check is eager-only
    try:
        check(shape, "in training")
    except ShapeError as e:
        raise e.located(type(module).__name__, "") from None



def _check_batch_stats(module: nn.Module, args: tuple[Any, ...]) -> None:
    """Forward pre-hook: more than one value per channel in training."""
    _check_training_input(check_values_per_channel, module, args)



def _check_instance_stats(module: nn.Module, args: tuple[Any, ...]) -> None:
    """Forward pre-hook: more than one spatial element in training."""
    _check_training_input(check_spatial_size, module, args)



def _channel_norm(cls: type[nn.Module], rec: LayerRecord, dtype: Any, device: Any) -> nn.Module:
    hp = rec.resolved
    return cls(
        hp["num_features"],
        eps=hp["eps"],
        momentum=hp["momentum"],
        affine=hp["affine"],
        track_running_stats=hp["track_running_stats"],
        bias=rec.resolved.get("bias", True),  # (shown only when False)
        dtype=_float_dtype(rec, dtype),
        device=device,
    )


@register(*_BATCH)
def _batch_norm(rec: LayerRecord, *, dtype: Any, device: Any) -> nn.Module | None:
    if sizes(rec, "num_features") is None:
        return None
    return _channel_norm(_BATCH[type(rec.layer)], rec, dtype, device)


@register(*_INSTANCE)
def _instance_norm(rec: LayerRecord, *, dtype: Any, device: Any) -> nn.Module | None:
    if sizes(rec, "num_features") is None:
        return None
    return _channel_norm(_INSTANCE[type(rec.layer)], rec, dtype, device)


# with running statistics, the input is checked in training (otherwise the rule
# has checked every mode), by a hook present while the module trains
for _cls in _BATCH.values():
    native.TRAINING_CHECKS[_cls] = (
        lambda m: _check_batch_stats if m.track_running_stats else None
    )
for _cls in _INSTANCE.values():
    native.TRAINING_CHECKS[_cls] = (
        lambda m: _check_instance_stats if m.track_running_stats else None
    )


@register(LayerNorm)
def _layer_norm(rec: LayerRecord, *, dtype: Any, device: Any) -> nn.Module | None:
    known = sizes(rec, "normalized_shape")
    if known is None:
        return None
    hp = rec.resolved
    return nn.LayerNorm(
        known[0],
        eps=hp["eps"],
        elementwise_affine=hp["elementwise_affine"],
        bias=rec.resolved.get("bias", True),  # (shown only when False)
        dtype=_float_dtype(rec, dtype),
        device=device,
    )


class LayerNorm2d(nn.LayerNorm):
    """``nn.LayerNorm`` over the channels of ``(B, C, H, W)``, computed as
    torchvision's ``LayerNorm2d``: channels last, ``F.layer_norm``, channels
    first. ``(B, C, H, W) -> (B, C, H, W)``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return x.permute(0, 3, 1, 2)


@register(ZooLayerNorm2d)
def _layer_norm_2d(rec: LayerRecord, *, dtype: Any, device: Any) -> nn.Module | None:
    channels = rec.params["weight"].shape[0]
    if type(channels) is not int:
        return None
    return LayerNorm2d(channels, eps=rec.resolved["eps"], dtype=_float_dtype(rec, dtype),
                       device=device)


@register(RMSNorm)
def _rms_norm(rec: LayerRecord, *, dtype: Any, device: Any) -> nn.Module | None:
    known = sizes(rec, "normalized_shape")
    if known is None:
        return None
    hp = rec.resolved
    return nn.RMSNorm(
        known[0],
        eps=hp.get("eps"),
        elementwise_affine=hp["elementwise_affine"],
        dtype=_float_dtype(rec, dtype),
        device=device,
    )


@register(GroupNorm)
def _group_norm(rec: LayerRecord, *, dtype: Any, device: Any) -> nn.Module | None:
    known = sizes(rec, "num_channels")
    if known is None:
        return None
    hp = rec.resolved
    return nn.GroupNorm(
        hp["num_groups"],
        known[0],
        eps=hp["eps"],
        affine=hp["affine"],
        bias=rec.resolved.get("bias", True),  # (shown only when False)
        dtype=_float_dtype(rec, dtype),
        device=device,
    )
