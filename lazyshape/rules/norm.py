"""Normalization layers: batch, instance, layer and group norm.

Every normalization keeps its input's shape; what the rules decide is which
inputs torch accepts: the rank (``(N, C, *spatial)``, or at least the
normalized dims for LayerNorm), the channels against the given size, channels
divisible by ``num_groups``, and enough values to compute statistics from.

That last check depends on the training flag, which a rule never sees. A rule
raises only what holds in every mode: BatchNorm without running statistics
(batch statistics in eval too) needs ``N * prod(spatial) > 1``, InstanceNorm
without running statistics needs ``prod(spatial) > 1``, GroupNorm needs
``N * C/num_groups * prod(spatial) > 1`` (torch's checks). With running
statistics the same checks apply in training only: the forward makes them
(`check_values_per_channel`, `check_spatial_size`), before computing.
"""

from __future__ import annotations

import functools

from .._dims import Dim, eq, format_dim, format_shape, prod, resolve
from .._errors import ShapeError
from .._init import ones, zeros
from .._specs import ParamSpec, Shape, TensorSpec
from ._common import FLOATING, assume_equal, check_floating, check_input_rank, positive_int

__all__ = [
    "check_eps",
    "check_momentum",
    "normalize_normalized_shape",
    "check_num_groups",
    "check_norm_input",
    "check_channels",
    "check_values_per_channel",
    "check_spatial_size",
    "check_groups",
    "check_group_stats",
    "check_normalized_shape",
    "values_per_channel",
    "spatial_size",
    "group_stat_size",
    "batch_norm_output",
    "instance_norm_output",
    "layer_norm_output",
    "group_norm_output",
    "norm_params",
    "layer_norm_params",
    "group_norm_params",
]

# -- 1. hyperparameter normalisers (at construction) ----------------------------


def check_eps(eps: object, kind: str) -> float:
    """``eps``: a non-negative number added to the variance."""
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps >= 0:
        raise ShapeError("`eps` to be a non-negative number", f"`eps` (={eps!r})", kind=kind)
    return float(eps)


def check_momentum(momentum: object, kind: str) -> float | None:
    """``momentum`` in ``[0, 1]``, or None for a cumulative average (torch's)."""
    if momentum is None:
        return None
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not (
        0 <= momentum <= 1
    ):
        raise ShapeError(
            "`momentum` in [0, 1] or None", f"`momentum` (={momentum!r})", kind=kind
        )
    return float(momentum)


def normalize_normalized_shape(
    normalized_shape: object, normalized_ndim: object, kind: str
) -> tuple[tuple[int, ...] | None, int]:
    """LayerNorm's ``(normalized_shape, normalized_ndim)``: an int shape becomes
    ``(int,)``; a given shape sets ``normalized_ndim`` to its length (an
    explicit ``normalized_ndim`` other than the default 1 must agree)."""
    ndim = positive_int(normalized_ndim, "normalized_ndim", kind)
    if normalized_shape is None:
        return None, ndim
    raw = (
        (normalized_shape,)
        if isinstance(normalized_shape, int)
        else tuple(normalized_shape)
        if isinstance(normalized_shape, (tuple, list))
        else None
    )
    if not raw or not all(type(d) is int and d > 0 for d in raw):
        raise ShapeError(
            "`normalized_shape` to be a positive int or a non-empty tuple of them",
            f"`normalized_shape` (={normalized_shape!r})",
            kind=kind,
        )
    shape: tuple[int, ...] = raw
    if ndim != 1 and ndim != len(shape):
        raise ShapeError(
            "`normalized_ndim` equal to len(`normalized_shape`)",
            f"`normalized_ndim` (={ndim}), `normalized_shape` (={shape})",
            kind=kind,
        )
    return shape, len(shape)


def check_num_groups(num_groups: object, num_channels: int | None, kind: str) -> int:
    """``num_groups`` a positive int dividing ``num_channels`` when that is given."""
    groups = positive_int(num_groups, "num_groups", kind)
    if num_channels is not None and num_channels % groups:
        raise ShapeError(
            "`num_channels` divisible by `num_groups`",
            f"`num_channels` (={num_channels}), `num_groups` (={groups})",
            kind=kind,
        )
    return groups


# -- 2. validation -----------------------------------------------------------------


def check_norm_input(x: TensorSpec, ranks: tuple[int, ...], layout: str) -> None:
    """A floating-point input of one of ``ranks`` dims, laid out as ``layout``
    (``"(N, C) or (N, C, L)"``)."""
    if x.ndim not in ranks:
        if len(ranks) == 1:
            check_input_rank(x, ranks[0], layout)
        hint = " (is the batch dim missing?)" if x.ndim == min(ranks) - 1 else ""
        need = " or ".join(str(r) for r in ranks)
        raise ShapeError(
            f"expected an input with {need} dims {layout}",
            f"input shape {format_shape(x.shape)} ({x.ndim} dims){hint}",
        )
    if x.dtype not in FLOATING:
        check_floating(x)


def check_channels(x: TensorSpec, given: int | None, name: str) -> Dim:
    """The channels (dim 1) of ``x``, checked against the hyperparameter ``name``
    when it was given (undecidable symbolic channels are assumed equal)."""
    got = x.shape[1]
    if given is None or got is given:
        return got
    same = eq(got, given)
    if same is False:
        raise ShapeError(
            f"expected input channels (dim 1) {given} (`{name}`)",
            f"input shape {format_shape(x.shape)}",
        )
    if same is None:
        assume_equal(got, given)
    return given


def check_values_per_channel(shape: Shape, why: str) -> None:
    """Batch statistics need more than one value per channel:
    ``N * prod(spatial) > 1`` (raised only when it is definitely 1)."""
    if resolve(eq(values_per_channel(shape), 1), default=False):
        raise ShapeError(
            f"expected more than 1 value per channel (N * prod(spatial) > 1) {why}",
            f"input shape {format_shape(shape)}",
        )


def check_spatial_size(shape: Shape, why: str) -> None:
    """Instance statistics need more than one spatial element: ``prod(spatial) > 1``."""
    if resolve(eq(spatial_size(shape), 1), default=False):
        raise ShapeError(
            f"expected more than 1 spatial element (prod(spatial) > 1) {why}",
            f"input shape {format_shape(shape)}",
        )


def check_groups(channels: Dim, num_groups: int, shape: Shape) -> None:
    """The channels must split into ``num_groups`` equal groups."""
    rem = channels % num_groups
    divisible = eq(rem, 0)
    if divisible is False:
        raise ShapeError(
            f"expected input channels (dim 1) divisible by `num_groups` (={num_groups})",
            f"input shape {format_shape(shape)} ({format_dim(channels)} channels)",
        )
    if divisible is None:
        assume_equal(rem, 0)


def check_group_stats(shape: Shape, num_groups: int) -> None:
    """torch's GroupNorm check: ``N * C/num_groups * prod(spatial) > 1``."""
    if resolve(eq(group_stat_size(shape, num_groups), 1), default=False):
        raise ShapeError(
            "expected N * C/num_groups * prod(spatial) > 1 to compute group statistics",
            f"input shape {format_shape(shape)}, `num_groups` (={num_groups})",
        )


def check_normalized_shape(
    x: TensorSpec, normalized_ndim: int, normalized_shape: tuple[int, ...] | None
) -> Shape:
    """The normalized (last ``normalized_ndim``) dims of a batched floating-point
    input, checked against ``normalized_shape`` when given."""
    if x.ndim <= normalized_ndim:
        hint = " (is the batch dim missing?)" if x.ndim == normalized_ndim else ""
        raise ShapeError(
            f"expected an input with at least {normalized_ndim + 1} dims "
            f"(N, *normalized_shape) for `normalized_ndim` (={normalized_ndim})",
            f"input shape {format_shape(x.shape)} ({x.ndim} dims){hint}",
        )
    if x.dtype not in FLOATING:
        check_floating(x)
    got = x.shape[x.ndim - normalized_ndim :]
    if normalized_shape is None:
        return got
    for a, b in zip(got, normalized_shape, strict=True):
        same = eq(a, b)
        if same is False:
            raise ShapeError(
                f"expected the last {normalized_ndim} input dims to be "
                f"{format_shape(normalized_shape)} (`normalized_shape`)",
                f"input shape {format_shape(x.shape)}",
            )
        if same is None:
            assume_equal(a, b)
    return normalized_shape


# -- 3. shape computation -------------------------------------------------------------


def values_per_channel(shape: Shape) -> Dim:
    """``N * prod(spatial)``: the values a channel's batch statistics are taken over."""
    return prod((shape[0], *shape[2:]))


def spatial_size(shape: Shape) -> Dim:
    """``prod(spatial)``: the values an instance statistic is taken over."""
    return prod(shape[2:])


def group_stat_size(shape: Shape, num_groups: int) -> Dim:
    """``N * (C // num_groups) * prod(spatial)`` (what torch's GroupNorm verifies)."""
    return prod((shape[0], shape[1] // num_groups, *shape[2:]))


def batch_norm_output(
    x: TensorSpec,
    ranks: tuple[int, ...],
    layout: str,
    num_features: int | None,
    track_running_stats: bool,
) -> TensorSpec:
    """``(N, C, *spatial) -> (N, C, *spatial)``; without running statistics the
    batch statistics are used in every mode, so ``N * prod(spatial) > 1``."""
    check_norm_input(x, ranks, layout)
    check_channels(x, num_features, "num_features")
    if not track_running_stats:
        check_values_per_channel(x.shape, "(batch statistics: `track_running_stats` (=False))")
    return x


def instance_norm_output(
    x: TensorSpec,
    ranks: tuple[int, ...],
    layout: str,
    num_features: int | None,
    track_running_stats: bool,
) -> TensorSpec:
    """``(N, C, *spatial) -> (N, C, *spatial)``; without running statistics the
    instance statistics are used in every mode, so ``prod(spatial) > 1``."""
    check_norm_input(x, ranks, layout)
    check_channels(x, num_features, "num_features")
    if not track_running_stats:
        check_spatial_size(x.shape, "(instance statistics: `track_running_stats` (=False))")
    return x


def layer_norm_output(
    x: TensorSpec, normalized_ndim: int, normalized_shape: tuple[int, ...] | None
) -> TensorSpec:
    """``(N, *, *normalized_shape)``: same shape."""
    check_normalized_shape(x, normalized_ndim, normalized_shape)
    return x


def group_norm_output(x: TensorSpec, num_groups: int, num_channels: int | None) -> TensorSpec:
    """``(N, C, *)``: same shape; ``C`` divisible by ``num_groups``."""
    if x.ndim < 2:
        check_input_rank(x, 2, "(N, C, *)")
    if x.dtype not in FLOATING:
        check_floating(x)
    channels = check_channels(x, num_channels, "num_channels")
    check_groups(channels, num_groups, x.shape)
    check_group_stats(x.shape, num_groups)
    return x


# -- 4. parameter rules ----------------------------------------------------------------


def norm_params(
    channels: Dim, affine: bool, bias: bool, track_running_stats: bool
) -> dict[str, ParamSpec]:
    """BatchNorm / InstanceNorm: ``weight`` (C,) ones and ``bias`` (C,) zeros when
    ``affine``; buffers ``running_mean`` (C,) zeros, ``running_var`` (C,) ones and
    ``num_batches_tracked`` () int64 when tracking. torch's names and order."""
    return dict(_norm_params(channels, affine, bias, track_running_stats))


@functools.lru_cache(maxsize=512)
def _norm_params(
    channels: Dim, affine: bool, bias: bool, track_running_stats: bool
) -> dict[str, ParamSpec]:
    # Specs are immutable values: layers of one size share them (callers copy the dict).
    params: dict[str, ParamSpec] = {}
    if affine:
        params["weight"] = ParamSpec._make((channels,), None, ones())
        if bias:
            params["bias"] = ParamSpec._make((channels,), None, zeros())
    if track_running_stats:
        params["running_mean"] = ParamSpec._make((channels,), None, zeros(), False)
        params["running_var"] = ParamSpec._make((channels,), None, ones(), False)
        params["num_batches_tracked"] = ParamSpec._make((), "int64", zeros(), False)
    return params


def layer_norm_params(
    normalized: Shape, elementwise_affine: bool, bias: bool
) -> dict[str, ParamSpec]:
    """LayerNorm: ``weight`` ones and ``bias`` zeros of the normalized shape."""
    if not elementwise_affine:
        return {}
    return dict(_layer_norm_params(tuple(normalized), bias))


@functools.lru_cache(maxsize=512)
def _layer_norm_params(normalized: Shape, bias: bool) -> dict[str, ParamSpec]:
    params = {"weight": ParamSpec._make(tuple(normalized), None, ones())}
    if bias:
        params["bias"] = ParamSpec._make(tuple(normalized), None, zeros())
    return params


def group_norm_params(channels: Dim, affine: bool, bias: bool) -> dict[str, ParamSpec]:
    """GroupNorm: ``weight`` (C,) ones and ``bias`` (C,) zeros when ``affine``."""
    return norm_params(channels, affine, bias, False)
