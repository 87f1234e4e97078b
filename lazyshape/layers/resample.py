"""Resampling layers: ``Upsample``, ``PixelShuffle``, ``PixelUnshuffle``
(PyTorch's names, arguments and semantics).

The module holds the hyperparameter normalisers, the rules (pure functions of
specs and hyperparameters) and the sampling tables the forwards use, then the
layer classes.

``Upsample`` takes ``(N, C, *spatial)`` with 1 to 3 spatial dims; its output
size is ``size``, or ``floor(d * scale_factor)`` per spatial dim computed in
float64 as torch computes it. For a symbolic ``d`` the rule gives the integer
formula ``(d * p) // q`` where ``p / q`` is the fraction the float stands for
(`scale_fraction`), and only where that formula provably equals torch's
float64 result. Its forward is written once with ``ls.ops``: ``nearest`` is an
index gather (`nearest_indices`, torch's CPU indices), the linear modes are one
interpolation matrix per spatial dim (`linear_matrix`, torch's CPU weights),
both built with NumPy from the concrete sizes.

``PixelShuffle`` / ``PixelUnshuffle`` move ``r x r`` blocks between the
channels and the last two dims of a ``(*, C, H, W)`` input of any dtype, with
any number of leading dims (as torch).
"""

from __future__ import annotations

import math
import numbers
import operator
from collections.abc import Mapping
from fractions import Fraction
from types import MappingProxyType
from typing import Any

import numpy as np

from .. import ops
from .._cost import KEEPS_NOTHING, Saved
from .._dims import Dim, eq, format_dim, format_shape
from .._errors import ShapeError
from .._layer import Layer
from .._specs import TensorSpec, normalize_dtype
from ._common import LAYOUTS, assume_equal, at_least, check_floating, check_rank, positive_int

__all__ = [
    "Upsample",
    "PixelShuffle",
    "PixelUnshuffle",
    "UPSAMPLE_MODES",
    "normalize_upsample_args",
    "scale_fraction",
    "upsample_out_dim",
    "upsample_output",
    "nearest_indices",
    "linear_matrix",
    "pixel_shuffle_output",
    "pixel_unshuffle_output",
]

#: ``Upsample``'s modes and the number of spatial dims each takes (None: 1 to 3)
UPSAMPLE_MODES: Mapping[str, int | None] = MappingProxyType({
    "nearest": None, "linear": 1, "bilinear": 2, "trilinear": 3,
})

#: the largest output size torch can hold (an int64)
_INT64_MAX = 2**63 - 1

#: the relative rounding error of a float scale, below which torch's float64
#: ``floor(d * s)`` equals ``(d * p) // q`` when ``s`` is ``p / q`` rounded down
_HALF_EPS = Fraction(1, 2**54)


# -- hyperparameter normalisers (run once, at construction) ------------------


def _per_dim(value: Any, name: str, kind: str, what: str, ok: Any) -> Any:
    """``value`` as torch keeps it: one entry (for every spatial dim) or a tuple
    of 1 to 3 entries, each passing ``ok``."""
    if isinstance(value, (tuple, list)):
        vals = tuple(value)
        if 1 <= len(vals) <= 3 and all(ok(v) for v in vals):
            return vals
    elif ok(value):
        return value
    shown = tuple(value) if isinstance(value, list) else value
    raise ShapeError(
        f"`{name}` to be {what} or a tuple of 1 to 3 of them", f"`{name}` (={shown!r})",
        kind=kind,
    )


def _positive_size(v: Any) -> bool:
    return type(v) is int and v >= 1


def _positive_real(v: Any) -> bool:
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        return False
    try:
        f = float(v)
    except OverflowError:  # an int beyond float64
        return False
    return math.isfinite(f) and f > 0


def normalize_upsample_args(
    kind: str, size: Any, scale_factor: Any, mode: Any, align_corners: Any
) -> tuple[int | tuple[int, ...] | None, float | tuple[float, ...] | None, str, bool | None]:
    """``(size, scale_factor, mode, align_corners)`` checked as torch checks them
    (exactly one of ``size`` and ``scale_factor``; ``align_corners`` only with
    the linear modes), ``scale_factor`` as floats (as ``nn.Upsample`` keeps
    it). A tuple must have one entry per spatial dim of the mode."""
    if (size is None) == (scale_factor is None):
        raise ShapeError(
            "exactly one of `size` and `scale_factor`",
            f"`size` (={size!r}), `scale_factor` (={scale_factor!r})", kind=kind,
        )
    if not isinstance(mode, str) or mode not in UPSAMPLE_MODES:
        raise ShapeError(
            "`mode` to be one of " + ", ".join(map(repr, UPSAMPLE_MODES)),
            f"`mode` (={mode!r})", kind=kind,
        )
    if align_corners is not None and type(align_corners) is not bool:
        raise ShapeError(
            "`align_corners` to be a bool or None", f"`align_corners` (={align_corners!r})",
            kind=kind,
        )
    if mode == "nearest" and align_corners is not None:
        raise ShapeError(
            "`align_corners` only with the interpolating modes (linear, bilinear, trilinear)",
            f"`align_corners` (={align_corners!r}) with `mode` (='nearest')", kind=kind,
        )
    out_size: int | tuple[int, ...] | None = None
    scale: float | tuple[float, ...] | None = None
    if size is not None:
        out_size = _per_dim(size, "size", kind, "a positive int", _positive_size)
        given, name = out_size, "size"
    else:
        raw = _per_dim(scale_factor, "scale_factor", kind, "a positive finite number",
                       _positive_real)
        scale = tuple(float(v) for v in raw) if isinstance(raw, tuple) else float(raw)
        given, name = scale, "scale_factor"
    n = UPSAMPLE_MODES[mode]
    if n is not None and isinstance(given, tuple) and len(given) != n:
        raise ShapeError(
            f"`{name}` with one entry per spatial dim: {n} for `mode` (={mode!r})",
            f"`{name}` (={given!r})", kind=kind,
        )
    return out_size, scale, mode, align_corners


# -- output sizes ----------------------------------------------------------------


def scale_fraction(scale: float) -> Fraction | None:
    """The fraction ``p / q`` with which ``(d * p) // q`` equals torch's
    ``floor(d * scale)`` (float64) for every ``d`` with ``d * scale * q < 2**50``
    (every realistic size), or None when no such fraction exists.

    ``p / q`` is ``Fraction(scale).limit_denominator()``: the float itself
    when it is exact (``2.0``, ``1.5``, ``0.75``); else the small fraction it
    was rounded from (``0.3`` is ``3/10``), kept when ``scale`` is the float
    nearest ``p / q`` and either above it (``d * scale`` never falls short of
    an integer ``d * p / q``) or below it by at most a quarter of its last
    bit (float64 rounding brings ``d * scale`` back up to that integer). For
    the other floats (``0.7`` is ``7/10`` less 1.4 quarter bits), ``d * 0.7``
    rounds to just below ``d * 7/10`` for some multiples of 10 and not for
    others: no integer formula gives torch's sizes.
    """
    exact = Fraction(scale)
    frac = exact.limit_denominator()
    if frac == exact:
        return frac
    if float(frac) != scale:
        return None
    if exact > frac or (frac - exact) / frac <= _HALF_EPS:
        return frac
    return None


def upsample_out_dim(d: Dim, scale: float) -> Dim:
    """``floor(d * scale)`` as torch computes it (float64); for a symbolic ``d``,
    ``(d * p) // q`` with ``p / q`` = `scale_fraction` (a `ShapeError` when the
    scale has none)."""
    if type(d) is int:
        v = d * scale
        if not v < _INT64_MAX:  # (also inf)
            raise ShapeError(
                "output sizes that fit in an int64",
                f"floor({d} * {scale!r}) for input size {d}",
                hparams={"scale_factor": scale},
            )
        return math.floor(v)
    frac = scale_fraction(scale)
    if frac is None:
        raise ShapeError(
            "a `scale_factor` whose output size has an integer formula for a symbolic "
            "input size (torch computes floor(size * scale_factor) in float64, which no "
            "formula reproduces at every size for this scale: give `size`, or concrete "
            "spatial sizes)",
            f"`scale_factor` (={scale!r}) for the symbolic size {format_dim(d)}",
        )
    p, q = frac.numerator, frac.denominator
    return d * p if q == 1 else (d * p) // q


def _check_upsample_rank(x: TensorSpec, n: int | None, why: str) -> int:
    """The number of spatial dims of an ``Upsample`` input: ``n`` when the
    hyperparameters fix it (``why`` says how), else 1 to 3."""
    got = x.ndim
    if n is None:
        if 3 <= got <= 5:
            return got - 2
        hint = " (is the batch dim missing?)" if got == 2 else ""
        raise ShapeError(
            "expected an input with 3, 4 or 5 dims (N, C, *spatial): 1 to 3 spatial dims",
            f"input shape {format_shape(x.shape)} ({got} dims){hint}",
        )
    if got != n + 2:
        hint = " (is the batch dim missing?)" if got == n + 1 else ""
        raise ShapeError(
            f"expected an input with {n + 2} dims {LAYOUTS[n]} ({why})",
            f"input shape {format_shape(x.shape)} ({got} dims){hint}",
        )
    return n


def _spatial_rank(
    size: int | tuple[int, ...] | None, scale_factor: float | tuple[float, ...] | None, mode: str
) -> tuple[int | None, str]:
    """The number of spatial dims the hyperparameters fix (None: any of 1 to 3),
    and why, for messages."""
    n = UPSAMPLE_MODES[mode]
    if n is not None:
        return n, f"`mode` {mode!r} interpolates {n} spatial dim{'s' if n > 1 else ''}"
    for name, value in (("size", size), ("scale_factor", scale_factor)):
        if isinstance(value, tuple):
            return len(value), f"one spatial dim per entry of `{name}`"
    return None, ""


def upsample_output(
    x: TensorSpec,
    size: int | tuple[int, ...] | None,
    scale_factor: float | tuple[float, ...] | None,
    mode: str,
) -> TensorSpec:
    """``(N, C, *d) -> (N, C, *out)``, ``out`` = ``size``, or ``floor(d *
    scale_factor)`` per spatial dim (`upsample_out_dim`); a floating input whose
    channel and spatial dims are non-empty (only the batch may be 0, as torch),
    every output size at least 1."""
    fixed, why = _spatial_rank(size, scale_factor, mode)
    n = _check_upsample_rank(x, fixed, why)
    check_floating(x)
    if 0 in x.shape[1:]:  # a symbolic dim is never equal to an int
        raise ShapeError(
            "non-empty channel and spatial dims (only the batch dim may be 0)",
            f"input shape {format_shape(x.shape)}",
        )
    spatial = x.shape[2:]
    out: tuple[Dim, ...]
    if size is not None:
        out = size if isinstance(size, tuple) else (size,) * n
        return x.with_shape((*x.shape[:2], *out))
    assert scale_factor is not None
    scales = scale_factor if isinstance(scale_factor, tuple) else (scale_factor,) * n
    out = tuple(upsample_out_dim(d, s) for d, s in zip(spatial, scales, strict=True))
    # undecidable (symbolic) sizes are assumed large enough (`valid_ranges` says how large)
    if not all(at_least(o, 1) for o in out):
        raise ShapeError(
            "an output of at least 1 along every spatial dim (floor(input * scale_factor) >= 1)",
            f"output spatial shape {format_shape(out)} for input shape "
            f"{format_shape(x.shape)}",
            hparams={"scale_factor": scale_factor},
        )
    return x.with_shape((*x.shape[:2], *out))


# -- sampling tables for the forward (static, from concrete sizes) -----------------


def nearest_indices(d: int, out: int, scale: float | None, two_d: bool = False) -> Any:
    """torch's CPU ``nearest`` source index of each of ``out`` positions along a
    dim of size ``d``: ``min(floor(i * step), d - 1)`` in float32, ``step`` being
    ``1 / scale`` when a scale factor was given, else ``d / out``. torch's 2-d
    kernel (``two_d``) copies a dim whose size is kept and halves the index of
    a dim whose size doubles, whatever the scale factor."""
    if two_d and out == d:
        return np.arange(out, dtype=np.int64)
    if two_d and out == 2 * d:
        return np.arange(out, dtype=np.int64) // 2
    step = np.float32(1.0 / scale) if scale is not None else np.float32(d) / np.float32(out)
    src = np.floor(np.arange(out, dtype=np.float32) * step).astype(np.int64)
    return np.minimum(src, d - 1)


def linear_matrix(
    d: int, out: int, scale: float | None, align_corners: bool, dtype: Any = np.float32
) -> Any:
    """``(out, d)``: row ``i`` interpolates output position ``i`` between its two
    nearest inputs with torch's CPU weights, computed in ``dtype`` (torch's
    opmath: float64 for a float64 input, else float32). The source coordinate
    is ``i * (d - 1) / (out - 1)`` (``align_corners``) or ``(i + 0.5) * step -
    0.5`` clamped at 0, ``step`` being ``1 / scale`` when a scale factor was
    given, else ``d / out``; a dim whose size is kept is copied."""
    if out == d:
        return np.eye(d, dtype=dtype)
    t = np.dtype(dtype).type
    i = np.arange(out, dtype=dtype)
    if align_corners:
        step = t(d - 1) / t(out - 1) if out > 1 else t(0)
        src = i * step
    else:
        step = t(1.0 / scale) if scale is not None else t(d) / t(out)
        src = np.maximum((i + t(0.5)) * step - t(0.5), t(0))
    lo = np.minimum(np.floor(src.astype(np.float32)).astype(np.int64), d - 1)
    w_hi = np.clip(src - lo.astype(dtype), t(0), t(1))
    hi = lo + (lo < d - 1)
    m = np.zeros((out, d), dtype=dtype)
    rows = np.arange(out)
    np.add.at(m, (rows, lo), t(1) - w_hi)
    np.add.at(m, (rows, hi), w_hi)
    return m


def _concrete(shape: Any, kind: str) -> tuple[int, ...]:
    """The sizes of a framework array's shape as ints; a traced symbolic size
    (``jax.export``) is a ValueError naming the layer."""
    try:
        return tuple(operator.index(d) for d in shape)
    except TypeError:
        raise ValueError(
            f"{kind} builds its sampling tables from concrete spatial sizes; got the "
            f"shape {tuple(shape)}: export it with concrete spatial sizes"
        ) from None


def _constant(like: Any, values: Any) -> Any:
    """A NumPy array as an array of ``like``'s framework, on its device."""
    import array_api_compat

    return ops.namespace(like).asarray(values, device=array_api_compat.device(like))


# -- pixel shuffle ----------------------------------------------------------------

#: the layout of a pixel (un)shuffle input, as messages name it
_SHUFFLE_LAYOUT = "(*, C, H, W)"


def _divisible(d: Dim, k: int, expected: str, what: str, x: TensorSpec) -> None:
    """``d`` (a dim of ``x``, ``what`` in the message) must be a multiple of
    ``k``; assumed (and recorded) when undecidable."""
    rem = d % k
    divisible = eq(rem, 0)
    if divisible is False:
        raise ShapeError(
            f"expected {expected}",
            f"input shape {format_shape(x.shape)} ({format_dim(d)} {what})",
        )
    if divisible is None:
        assume_equal(rem, 0)


def pixel_shuffle_output(x: TensorSpec, r: int) -> TensorSpec:
    """``(*, C, H, W) -> (*, C / r**2, H * r, W * r)``: at least 3 dims, ``C`` a
    multiple of ``r**2``; any dtype, empty dims included (as torch)."""
    check_rank(x, 3, _SHUFFLE_LAYOUT, at_least=True)
    *lead, c, h, w = x.shape
    _divisible(c, r * r, f"input channels (dim -3) divisible by `upscale_factor`**2 (={r * r})",
               "channels", x)
    return x.with_shape((*lead, c // (r * r), h * r, w * r))


def pixel_unshuffle_output(x: TensorSpec, r: int) -> TensorSpec:
    """``(*, C, H, W) -> (*, C * r**2, H / r, W / r)``: at least 3 dims, ``H`` and
    ``W`` multiples of ``r``; any dtype. No dim may be 0: torch's CPU kernel
    returns an empty input unchanged (its shape, not the unshuffled one)."""
    check_rank(x, 3, _SHUFFLE_LAYOUT, at_least=True)
    if 0 in x.shape:  # a symbolic dim is never equal to an int
        raise ShapeError(
            "non-empty dims (torch's pixel_unshuffle returns an empty input unchanged, "
            "not unshuffled)",
            f"input shape {format_shape(x.shape)}",
        )
    *lead, c, h, w = x.shape
    for name, dim, d in (("height", -2, h), ("width", -1, w)):
        _divisible(d, r, f"input {name} (dim {dim}) divisible by `downscale_factor` (={r})",
                   name, x)
    return x.with_shape((*lead, c * (r * r), h // r, w // r))


# -- layers ----------------------------------------------------------------------


class Upsample(Layer):
    """Resize the spatial dims of ``(N, C, *spatial)`` (1 to 3 spatial dims)
    to ``size``, or by ``scale_factor`` (``floor(d * scale_factor)``)
    (``torch.nn.Upsample``). ``mode``: ``"nearest"`` (any of the three ranks),
    ``"linear"`` (3-d inputs), ``"bilinear"`` (4-d), ``"trilinear"`` (5-d);
    ``align_corners`` (linear modes only; None means False) maps the corner
    pixels' centres onto each other. Values are torch's (CPU kernels)."""

    hparam_names = ("size", "scale_factor", "mode", "align_corners")

    def __init__(
        self,
        size: int | tuple[int, ...] | None = None,
        scale_factor: float | tuple[float, ...] | None = None,
        mode: str = "nearest",
        align_corners: bool | None = None,
        *,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.size, self.scale_factor, self.mode, self.align_corners = normalize_upsample_args(
            self.kind, size, scale_factor, mode, align_corners
        )
        n, _ = _spatial_rank(self.size, self.scale_factor, self.mode)
        self.expected_ndim = None if n is None else n + 2

    def hparams(self) -> dict[str, Any]:
        # None is "not given" here, not an unknown size (torch's defaults)
        return {k: v for k, v in super().hparams().items() if v is not None}

    def saved(self, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]) -> Saved:
        return KEEPS_NOTHING

    def output_spec(self, x: TensorSpec) -> TensorSpec:
        return upsample_output(x, self.size, self.scale_factor, self.mode)

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
        spatial = _concrete(tuple(x.shape)[2:], self.kind)
        n = len(spatial)
        size, sf = self.size, self.scale_factor
        factors: tuple[float, ...] = (
            () if sf is None else sf if isinstance(sf, tuple) else (sf,) * n
        )
        scales: tuple[float | None, ...] = factors or (None,) * n
        if size is None:  # torch's float64 floor(d * scale_factor)
            outs = tuple(math.floor(d * f) for d, f in zip(spatial, factors, strict=True))
        else:
            outs = size if isinstance(size, tuple) else (size,) * n
        if self.mode == "nearest":
            y = x
            for axis, (d, o, s) in enumerate(zip(spatial, outs, scales, strict=True), start=2):
                idx = nearest_indices(d, o, s, two_d=n == 2)
                if o != d or not np.array_equal(idx, np.arange(d)):
                    y = ops.take(y, _constant(y, idx), axis=axis)
            return y
        # linear modes: one matrix per spatial dim, in torch's opmath dtype
        dtype = normalize_dtype(x.dtype)
        opmath = "float64" if dtype == "float64" else "float32"
        y = x if dtype == opmath else ops.astype(x, opmath)
        corners = bool(self.align_corners)
        for d, o, s in zip(spatial, outs, scales, strict=True):
            m = linear_matrix(d, o, s, corners, np.dtype(opmath))
            # contracting dim 2 appends the output dim last: after every spatial
            # dim, they are back in order
            y = ops.tensordot(y, _constant(y, m), axes=([2], [1]))
        return y if dtype == opmath else ops.astype(y, dtype)


class PixelShuffle(Layer):
    """``(*, C * r**2, H, W) -> (*, C, H * r, W * r)``, ``r`` = ``upscale_factor``:
    each channel's ``r x r`` block of channels becomes an ``r x r`` block of
    pixels (``torch.nn.PixelShuffle``; any dtype, any leading dims)."""

    hparam_names = ("upscale_factor",)

    def __init__(self, upscale_factor: int, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.upscale_factor = positive_int(upscale_factor, "upscale_factor", self.kind)

    def saved(self, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]) -> Saved:
        return KEEPS_NOTHING

    def output_spec(self, x: TensorSpec) -> TensorSpec:
        return pixel_shuffle_output(x, self.upscale_factor)

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
        r = self.upscale_factor
        *lead, c, h, w = tuple(x.shape)
        k = len(lead)
        y = ops.reshape(x, (*lead, c // (r * r), r, r, h, w))
        y = ops.permute_dims(y, (*range(k), k, k + 3, k + 1, k + 4, k + 2))
        return ops.reshape(y, (*lead, c // (r * r), h * r, w * r))


class PixelUnshuffle(Layer):
    """``(*, C, H * r, W * r) -> (*, C * r**2, H, W)``, ``r`` =
    ``downscale_factor``: the inverse of `PixelShuffle`
    (``torch.nn.PixelUnshuffle``; any dtype, any leading dims; no empty dim,
    which torch's kernel would return unchanged)."""

    hparam_names = ("downscale_factor",)

    def __init__(self, downscale_factor: int, *, name: str | None = None) -> None:
        super().__init__(name=name)
        self.downscale_factor = positive_int(downscale_factor, "downscale_factor", self.kind)

    def saved(self, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]) -> Saved:
        return KEEPS_NOTHING

    def output_spec(self, x: TensorSpec) -> TensorSpec:
        return pixel_unshuffle_output(x, self.downscale_factor)

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
        r = self.downscale_factor
        *lead, c, h, w = tuple(x.shape)
        k = len(lead)
        y = ops.reshape(x, (*lead, c, h // r, r, w // r, r))
        y = ops.permute_dims(y, (*range(k), k, k + 2, k + 4, k + 1, k + 3))
        return ops.reshape(y, (*lead, c * (r * r), h // r, w // r))
