"""Normalization layers: ``BatchNorm1d/2d/3d``, ``InstanceNorm1d/2d/3d``,
``LayerNorm`` and ``GroupNorm``, with PyTorch's arguments, defaults, parameter
and buffer names, and train / eval behaviour.

The forwards are written once with array-API operations (``ls.ops.mean``,
``ls.ops.sqrt``, ``ls.ops.reshape``), so the same code runs on NumPy (eval),
JAX (train and eval, jit/grad/vmap-able) and, for layers torch has no native
module for, torch. In training, running statistics are never mutated: the
new values are recorded with ``ctx.update`` and the backend applies them
(torch: in place; JAX: returned by ``apply(..., mutable=True)``).

The training flag is not known to a shape rule, so the checks that only apply
in training (more than one value per channel for batch statistics, more than
one spatial element for instance statistics) are made by the forward, before
computing, and raise `ShapeError` there.

The module holds the rules (pure functions of specs and hyperparameters),
then the layer classes.

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
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from .. import ops
from .._dims import Dim, eq, format_dim, format_shape, prod, resolve
from .._errors import ShapeError
from .._init import ones, zeros
from .._layer import Context, Layer
from .._specs import ParamSpec, Shape, TensorSpec, normalize_dtype
from ._common import FLOATING, assume_equal, check_floating, check_rank, positive_int

__all__ = [
    "BatchNorm1d",
    "BatchNorm2d",
    "BatchNorm3d",
    "InstanceNorm1d",
    "InstanceNorm2d",
    "InstanceNorm3d",
    "LayerNorm",
    "RMSNorm",
    "GroupNorm",
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


def check_eps(eps: object, kind: str) -> float:
    """``eps``: a non-negative number added to the variance."""
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps >= 0:
        raise ShapeError("`eps` to be a non-negative number", f"`eps` (={eps!r})", kind=kind)
    return float(eps)


def check_optional_eps(eps: object, kind: str) -> float | None:
    """RMSNorm's ``eps``: a non-negative number, or None for the input dtype's
    machine epsilon (torch's ``torch.finfo(x.dtype).eps``)."""
    return None if eps is None else check_eps(eps, kind)


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
            check_rank(x, ranks[0], layout)
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


def check_some_channels(shape: Shape) -> None:
    """At least one channel (dim 1): torch's affine batch and instance norms fail
    on zero channels (an IndexError); lazyshape rejects them whatever ``affine``."""
    if resolve(eq(shape[1], 0), default=False):
        raise ShapeError(
            "expected at least one channel (dim 1)", f"input shape {format_shape(shape)}"
        )


def check_some_samples(shape: Shape) -> None:
    """A non-empty batch (dim 0): torch's affine instance norm fails on an empty
    batch (an IndexError)."""
    if resolve(eq(shape[0], 0), default=False):
        raise ShapeError(
            "expected a non-empty batch (dim 0) for an instance norm with affine parameters",
            f"input shape {format_shape(shape)}",
        )


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
    ndim = len(x.shape)
    if ndim <= normalized_ndim:
        hint = " (is the batch dim missing?)" if ndim == normalized_ndim else ""
        raise ShapeError(
            f"expected an input with at least {normalized_ndim + 1} dims "
            f"(N, *normalized_shape) for `normalized_ndim` (={normalized_ndim})",
            f"input shape {format_shape(x.shape)} ({ndim} dims){hint}",
        )
    if x.dtype not in FLOATING:
        check_floating(x)
    got = x.shape[ndim - normalized_ndim :]
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
    check_some_channels(x.shape)
    if not track_running_stats:
        check_values_per_channel(x.shape, "(batch statistics: `track_running_stats` (=False))")
    return x


def instance_norm_output(
    x: TensorSpec,
    ranks: tuple[int, ...],
    layout: str,
    num_features: int | None,
    track_running_stats: bool,
    affine: bool = False,
) -> TensorSpec:
    """``(N, C, *spatial) -> (N, C, *spatial)``; without running statistics the
    instance statistics are used in every mode, so ``prod(spatial) > 1``; with
    ``affine`` parameters the batch is not empty (as torch)."""
    check_norm_input(x, ranks, layout)
    check_channels(x, num_features, "num_features")
    check_some_channels(x.shape)
    if affine:
        check_some_samples(x.shape)
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
        check_rank(x, 2, "(N, C, *)")
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


def rms_norm_params(normalized: Shape, elementwise_affine: bool) -> dict[str, ParamSpec]:
    """RMSNorm: ``weight`` ones of the normalized shape (no bias)."""
    if not elementwise_affine:
        return {}
    return dict(_rms_norm_params(tuple(normalized)))


@functools.lru_cache(maxsize=512)
def _rms_norm_params(normalized: Shape) -> dict[str, ParamSpec]:
    # Specs are immutable values: layers of one size share them (callers copy the dict).
    return {"weight": ParamSpec._make(normalized, None, ones())}


def group_norm_params(channels: Dim, affine: bool, bias: bool) -> dict[str, ParamSpec]:
    """GroupNorm: ``weight`` (C,) ones and ``bias`` (C,) zeros when ``affine``."""
    return norm_params(channels, affine, bias, False)


# -- layers ----------------------------------------------------------------------


def _moments(x: Any, axes: tuple[int, ...]) -> tuple[Any, Any, Any]:
    """``(x - mean, mean, biased variance)`` over ``axes``, kept as size-1 dims."""
    mean = ops.mean(x, axis=axes, keepdims=True)
    centered = x - mean
    return centered, mean, ops.mean(centered * centered, axis=axes, keepdims=True)


def _per_channel(v: Any, ndim: int) -> Any:
    """A ``(C,)`` array shaped ``(C, 1, ..., 1)`` to broadcast over ``(N, C, *spatial)``."""
    return v if ndim == 2 else ops.reshape(v, (-1, *([1] * (ndim - 2))))


def _like(value: Any, ref: Any) -> Any:
    """``value`` in ``ref``'s dtype (buffers keep their dtype across updates)."""
    if value.dtype == ref.dtype:
        return value
    return ops.astype(value, normalize_dtype(ref.dtype))


def _check_at(layer: Layer, ctx: Context, check: Callable[[Shape, str], None], x: Any) -> None:
    """Run a training-only shape check on a forward's input, placed at the layer."""
    try:
        check(tuple(int(d) for d in x.shape), "in training")
    except ShapeError as e:
        raise e.located(layer.kind, ctx.path) from None


class _Norm(Layer):
    """Shared by the normalization layers: ``eps``, a repr showing ``bias=False``
    only when set, and the per-channel affine transform."""

    eps: float
    bias: bool

    def hparams(self) -> dict[str, Any]:
        hp = super().hparams()
        if not self.bias:
            hp["bias"] = False
        return hp

    def _affine(self, params: Mapping[str, Any], y: Any, per_channel: bool) -> Any:
        weight = params.get("weight")
        bias = params.get("bias")
        ndim = len(y.shape)
        if weight is not None:
            y = y * (_per_channel(weight, ndim) if per_channel else weight)
        if bias is not None:
            y = y + (_per_channel(bias, ndim) if per_channel else bias)
        return y


# -- BatchNorm and InstanceNorm -------------------------------------------------------


class _ChannelNorm(_Norm):
    """BatchNorm / InstanceNorm over ``(N, C, *spatial)``, ``C`` inferred from dim 1."""

    hparam_names = ("num_features", "eps", "momentum", "affine", "track_running_stats")
    needs_context = True
    #: the input ranks accepted, and their layout for messages
    _ranks: ClassVar[tuple[int, ...]]
    _layout: ClassVar[str]

    def __init__(
        self,
        eps: float,
        momentum: float | None,
        affine: bool,
        track_running_stats: bool,
        num_features: int | None,
        bias: bool,
        name: str | None,
    ) -> None:
        super().__init__(name=name)
        kind = type(self).__name__
        if num_features is not None:
            positive_int(num_features, "num_features", kind)
        self.num_features = num_features
        self.eps = check_eps(eps, kind)
        self.momentum = check_momentum(momentum, kind)
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        self.bias = bool(bias)

    def param_specs(self, x: TensorSpec) -> dict[str, ParamSpec]:
        channels = x.shape[1] if self.num_features is None else self.num_features
        return norm_params(channels, self.affine, self.bias, self.track_running_stats)

    def resolved(self, *inputs: TensorSpec) -> dict[str, Any]:
        hp = self.hparams()
        if inputs and inputs[0].ndim >= 2:
            hp["num_features"] = inputs[0].shape[1]
        return hp

    def _running(self, params: Mapping[str, Any], ndim: int) -> tuple[Any, Any]:
        return (
            _per_channel(params["running_mean"], ndim),
            _per_channel(params["running_var"], ndim),
        )


class _BatchNorm(_ChannelNorm):
    """Batch normalization: statistics per channel over ``(N, *spatial)``."""

    def __init__(
        self,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        *,
        num_features: int | None = None,
        bias: bool = True,
        name: str | None = None,
    ) -> None:
        super().__init__(eps, momentum, affine, track_running_stats, num_features, bias, name)

    def output_spec(self, x: TensorSpec) -> TensorSpec:
        return batch_norm_output(
            x, self._ranks, self._layout, self.num_features, self.track_running_stats
        )

    def forward(self, params: Mapping[str, Any], x: Any, *, ctx: Context) -> Any:
        ndim = len(x.shape)
        if ctx.training or not self.track_running_stats:
            if ctx.training:
                _check_at(self, ctx, check_values_per_channel, x)
            centered, mean, var = _moments(x, (0, *range(2, ndim)))
            if ctx.training and self.track_running_stats:
                self._update(params, ctx, mean, var, values_per_channel(tuple(x.shape)))
            y = centered / ops.sqrt(var + self.eps)
        else:
            mean, var = self._running(params, ndim)
            y = (x - mean) / ops.sqrt(var + self.eps)
        return self._affine(params, y, per_channel=True)

    def _update(
        self, params: Mapping[str, Any], ctx: Context, mean: Any, var: Any, count: Any
    ) -> None:
        """torch's running-statistics update: ``num_batches_tracked += 1``, then
        ``r = (1 - f) * r + f * batch`` with ``f = momentum``, or ``1 / num_batches_tracked``
        (cumulative average) when ``momentum`` is None; the variance is unbiased."""
        rm, rv, n = params["running_mean"], params["running_var"], params["num_batches_tracked"]
        n = n + 1
        ctx.update("num_batches_tracked", n)
        f: Any = self.momentum
        if f is None:
            f = 1.0 / ops.astype(n, normalize_dtype(rm.dtype))
        mean = ops.reshape(mean, (-1,))
        var = ops.reshape(var, (-1,)) * (count / max(count - 1, 1))
        ctx.update("running_mean", _like((1 - f) * rm + f * mean, rm))
        ctx.update("running_var", _like((1 - f) * rv + f * var, rv))


class BatchNorm1d(_BatchNorm):
    """Batch normalization of ``(N, C)`` or ``(N, C, L)`` inputs (``torch.nn.BatchNorm1d``).

    ``num_features`` (C) is inferred from dim 1 when omitted. Parameters
    ``weight`` / ``bias`` (C,) when ``affine``; buffers ``running_mean``,
    ``running_var`` (C,) and ``num_batches_tracked`` () when
    ``track_running_stats``. Training uses batch statistics (``N * L > 1``
    values per channel, checked by the forward) and updates the buffers;
    evaluation uses the running statistics (batch statistics without them).
    """

    expected_ndim = 2
    _ranks = (2, 3)
    _layout = "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalization of ``(N, C, H, W)`` inputs (``torch.nn.BatchNorm2d``);
    see `BatchNorm1d`."""

    expected_ndim = 4
    _ranks = (4,)
    _layout = "(N, C, H, W)"


class BatchNorm3d(_BatchNorm):
    """Batch normalization of ``(N, C, D, H, W)`` inputs (``torch.nn.BatchNorm3d``);
    see `BatchNorm1d`."""

    expected_ndim = 5
    _ranks = (5,)
    _layout = "(N, C, D, H, W)"


class _InstanceNorm(_ChannelNorm):
    """Instance normalization: statistics per sample and channel over ``spatial``."""

    def __init__(
        self,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = False,
        track_running_stats: bool = False,
        *,
        num_features: int | None = None,
        bias: bool = True,
        name: str | None = None,
    ) -> None:
        super().__init__(eps, momentum, affine, track_running_stats, num_features, bias, name)

    def output_spec(self, x: TensorSpec) -> TensorSpec:
        return instance_norm_output(
            x, self._ranks, self._layout, self.num_features, self.track_running_stats,
            self.affine,
        )

    def forward(self, params: Mapping[str, Any], x: Any, *, ctx: Context) -> Any:
        ndim = len(x.shape)
        if ctx.training or not self.track_running_stats:
            if ctx.training:
                _check_at(self, ctx, check_spatial_size, x)
            centered, mean, var = _moments(x, tuple(range(2, ndim)))
            if ctx.training and self.track_running_stats and self.momentum is not None:
                self._update(params, ctx, mean, var, spatial_size(tuple(x.shape)))
            y = centered / ops.sqrt(var + self.eps)
        else:
            mean, var = self._running(params, ndim)
            y = (x - mean) / ops.sqrt(var + self.eps)
        return self._affine(params, y, per_channel=True)

    def _update(
        self, params: Mapping[str, Any], ctx: Context, mean: Any, var: Any, count: Any
    ) -> None:
        """torch's instance-norm update: ``r = (1 - momentum) * r + momentum * s``
        with ``s`` the per-sample statistic averaged over the batch (unbiased
        variance). As in torch, ``num_batches_tracked`` is not incremented and
        ``momentum=None`` leaves the buffers unchanged."""
        rm, rv = params["running_mean"], params["running_var"]
        f = self.momentum
        assert f is not None
        n, c = mean.shape[0], mean.shape[1]
        mean = ops.mean(ops.reshape(mean, (n, c)), axis=0)
        var = ops.mean(ops.reshape(var, (n, c)), axis=0) * (count / max(count - 1, 1))
        ctx.update("running_mean", _like((1 - f) * rm + f * mean, rm))
        ctx.update("running_var", _like((1 - f) * rv + f * var, rv))


class InstanceNorm1d(_InstanceNorm):
    """Instance normalization of ``(N, C, L)`` inputs (``torch.nn.InstanceNorm1d``).

    torch's defaults: ``affine=False``, ``track_running_stats=False`` (then
    statistics are per sample in every mode, so ``L > 1``). With
    ``track_running_stats`` it keeps ``running_mean`` / ``running_var`` (and a
    ``num_batches_tracked`` torch never increments) for evaluation.
    """

    expected_ndim = 3
    _ranks = (3,)
    _layout = "(N, C, L)"


class InstanceNorm2d(_InstanceNorm):
    """Instance normalization of ``(N, C, H, W)`` inputs (``torch.nn.InstanceNorm2d``);
    see `InstanceNorm1d`."""

    expected_ndim = 4
    _ranks = (4,)
    _layout = "(N, C, H, W)"


class InstanceNorm3d(_InstanceNorm):
    """Instance normalization of ``(N, C, D, H, W)`` inputs (``torch.nn.InstanceNorm3d``);
    see `InstanceNorm1d`."""

    expected_ndim = 5
    _ranks = (5,)
    _layout = "(N, C, D, H, W)"


# -- LayerNorm and GroupNorm ------------------------------------------------------------


class _TrailingNorm(Layer):
    """Shared by `LayerNorm` and `RMSNorm`: normalization over the last
    ``normalized_ndim`` dims, whose shape is inferred from the input or checked
    against ``normalized_shape`` (its length then sets ``normalized_ndim``)."""

    hparam_names = ("normalized_ndim", "normalized_shape", "eps", "elementwise_affine")
    normalized_shape: tuple[int, ...] | None
    normalized_ndim: int
    elementwise_affine: bool

    def _trailing(
        self, normalized_ndim: int, normalized_shape: object, elementwise_affine: bool
    ) -> None:
        self.normalized_shape, self.normalized_ndim = normalize_normalized_shape(
            normalized_shape, normalized_ndim, self.kind
        )
        self.elementwise_affine = bool(elementwise_affine)
        # the rank of a placeholder input: a batch dim and the normalized dims
        self.expected_ndim = self.normalized_ndim + 1

    def _normalized(self, x: TensorSpec) -> Shape:
        """The normalized shape for input ``x``: given, or its last dims."""
        return self.normalized_shape or x.shape[x.ndim - self.normalized_ndim :]

    def _axes(self, x: Any) -> tuple[int, ...]:
        ndim = len(x.shape)
        return tuple(range(ndim - self.normalized_ndim, ndim))

    def output_spec(self, x: TensorSpec) -> TensorSpec:
        return layer_norm_output(x, self.normalized_ndim, self.normalized_shape)

    def resolved(self, *inputs: TensorSpec) -> dict[str, Any]:
        hp = self.hparams()
        if inputs and inputs[0].ndim >= self.normalized_ndim:
            hp["normalized_shape"] = tuple(self._normalized(inputs[0]))
        return hp


class LayerNorm(_TrailingNorm, _Norm):
    """Layer normalization over the last ``normalized_ndim`` dims
    (``torch.nn.LayerNorm``): input ``(N, *, *normalized_shape)``, same output.

    The normalized shape is inferred from the input's last ``normalized_ndim``
    dims, or checked against ``normalized_shape`` when given (its length then
    sets ``normalized_ndim``). ``weight`` (ones) and ``bias`` (zeros) of the
    normalized shape when ``elementwise_affine`` (no ``bias`` when
    ``bias=False``). The batch dim is never normalized: the input has more
    than ``normalized_ndim`` dims.
    """

    def __init__(
        self,
        normalized_ndim: int = 1,
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        *,
        normalized_shape: int | tuple[int, ...] | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self._trailing(normalized_ndim, normalized_shape, elementwise_affine)
        self.eps = check_eps(eps, "LayerNorm")
        self.bias = bool(bias)

    def param_specs(self, x: TensorSpec) -> dict[str, ParamSpec]:
        return layer_norm_params(self._normalized(x), self.elementwise_affine, self.bias)

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
        centered, _, var = _moments(x, self._axes(x))
        return self._affine(params, centered / ops.sqrt(var + self.eps), per_channel=False)


class RMSNorm(_TrailingNorm):
    """Root-mean-square normalization over the last ``normalized_ndim`` dims
    (``torch.nn.RMSNorm``): input ``(N, *, *normalized_shape)``, same output,
    ``y = x / sqrt(mean(x**2) + eps) * weight`` with the mean over the
    normalized dims.

    The normalized shape is inferred or checked as for `LayerNorm`. ``eps``
    None (the default) is the input dtype's machine epsilon, as torch's.
    ``weight`` (ones) of the normalized shape when ``elementwise_affine``; no
    bias.
    """

    def __init__(
        self,
        normalized_ndim: int = 1,
        eps: float | None = None,
        elementwise_affine: bool = True,
        *,
        normalized_shape: int | tuple[int, ...] | None = None,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self._trailing(normalized_ndim, normalized_shape, elementwise_affine)
        self.eps = check_optional_eps(eps, "RMSNorm")

    def hparams(self) -> dict[str, Any]:
        hp = super().hparams()
        if hp["eps"] is None:  # None is "the dtype's epsilon", not an unknown size
            del hp["eps"]
        return hp

    def param_specs(self, x: TensorSpec) -> dict[str, ParamSpec]:
        return rms_norm_params(self._normalized(x), self.elementwise_affine)

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
        eps = self.eps if self.eps is not None else float(ops.namespace(x).finfo(x.dtype).eps)
        y = x / ops.sqrt(ops.mean(x * x, axis=self._axes(x), keepdims=True) + eps)
        weight = params.get("weight")
        return y if weight is None else y * weight


class GroupNorm(_Norm):
    """Group normalization (``torch.nn.GroupNorm``): input ``(N, C, *)``, the
    ``C`` channels split into ``num_groups`` groups normalized separately.

    ``num_channels`` (C) is inferred from dim 1 when omitted and must be
    divisible by ``num_groups``. ``weight`` (C,) ones and ``bias`` (C,) zeros
    when ``affine``.
    """

    hparam_names = ("num_groups", "num_channels", "eps", "affine")
    expected_ndim = 4

    def __init__(
        self,
        num_groups: int,
        eps: float = 1e-5,
        affine: bool = True,
        *,
        num_channels: int | None = None,
        bias: bool = True,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        if num_channels is not None:
            positive_int(num_channels, "num_channels", "GroupNorm")
        self.num_groups = check_num_groups(num_groups, num_channels, "GroupNorm")
        self.num_channels = num_channels
        self.eps = check_eps(eps, "GroupNorm")
        self.affine = bool(affine)
        self.bias = bool(bias)

    def output_spec(self, x: TensorSpec) -> TensorSpec:
        return group_norm_output(x, self.num_groups, self.num_channels)

    def param_specs(self, x: TensorSpec) -> dict[str, ParamSpec]:
        channels = x.shape[1] if self.num_channels is None else self.num_channels
        return group_norm_params(channels, self.affine, self.bias)

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
        shape = tuple(x.shape)
        grouped = ops.reshape(x, (shape[0], self.num_groups, -1))
        centered, _, var = _moments(grouped, (2,))
        y = ops.reshape(centered / ops.sqrt(var + self.eps), shape)
        return self._affine(params, y, per_channel=True)

    def resolved(self, *inputs: TensorSpec) -> dict[str, Any]:
        hp = self.hparams()
        if inputs and inputs[0].ndim >= 2:
            hp["num_channels"] = inputs[0].shape[1]
        return hp
