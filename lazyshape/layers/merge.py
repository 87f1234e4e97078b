"""Merge layers of the functional API: ``Add``, ``Multiply``, ``Concat``.

Inputs of different dtypes are promoted as PyTorch and JAX promote arrays, on
every backend: by category, bool < integer < floating < complex
(``int64, float32 -> float32``; `lazyshape.layers.merge.promote_dtypes`).

The module holds the rules (pure functions of specs and hyperparameters),
then the layer classes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .. import ops
from .._dims import Dim, format_shape
from .._errors import ShapeError
from .._layer import Layer
from .._specs import TensorSpec, normalize_dtype
from ._common import normalize_axis, unify

__all__ = [
    "Add",
    "Multiply",
    "Concat",
    "broadcast_output",
    "concat_output",
    "promote_dtypes",
    "result_dtype",
]


#: category of each dtype: bool < integer < floating < complex
_CATEGORY = {
    "bool": 0,
    "uint8": 1, "int8": 1, "int16": 1, "int32": 1, "int64": 1,
    "float16": 2, "bfloat16": 2, "float32": 2, "float64": 2,
    "complex64": 3, "complex128": 3,
}
_BITS = {
    "bool": 8, "uint8": 8, "int8": 8, "int16": 16, "int32": 32, "int64": 64,
    "float16": 16, "bfloat16": 16, "float32": 32, "float64": 64,
    "complex64": 32, "complex128": 64,  # bits of the real part
}
_INT = {8: "int8", 16: "int16", 32: "int32", 64: "int64"}
_FLOAT = {16: "float16", 32: "float32", 64: "float64"}
_COMPLEX = {32: "complex64", 64: "complex128"}


def _promote_pair(a: str, b: str) -> str:
    """The join of two dtypes: the higher category wins whatever its width
    (``int64, float16 -> float16``), except that a complex takes the precision
    of a float (``complex64, float64 -> complex128``); within a category the
    wider wins, ``uint8`` with ``int8`` gives ``int16``, ``float16`` with
    ``bfloat16`` gives ``float32``."""
    if a == b:
        return a
    ca, cb = _CATEGORY[a], _CATEGORY[b]
    if ca != cb:
        (lo, c_lo), (hi, c_hi) = sorted(((a, ca), (b, cb)), key=lambda t: t[1])
        if c_hi == 3 and c_lo == 2:
            return _COMPLEX[max(_BITS[hi], 32 if lo == "bfloat16" else _BITS[lo])]
        return hi
    bits = max(_BITS[a], _BITS[b])
    if ca == 1:
        if "uint8" in (a, b):  # the signed one must hold 0..255
            bits = max(bits, 16)
        return _INT[bits]
    if ca == 2:
        if bits == 16:  # float16 and bfloat16: neither holds the other
            return "float32"
        return _FLOAT[bits]
    return _COMPLEX[bits]


def promote_dtypes(dtypes: Iterable[str]) -> str:
    """The dtype an elementwise op or a concatenation of arrays of ``dtypes``
    computes in, by category (bool < integer < floating < complex): ``int32,
    float32 -> float32``, ``float16, float32 -> float32``, ``int32, int64 ->
    int64``, ``bool, int8 -> int8``. This is PyTorch's and JAX's promotion of
    arrays (NumPy's differs: ``int32, float32 -> float64``)."""
    it = iter(dtypes)
    out = next(it)
    for d in it:
        if d != out:
            out = _promote_pair(out, d)
    return out


def result_dtype(specs: tuple[TensorSpec, ...]) -> str:
    """The promoted dtype of several inputs (`promote_dtypes`)."""
    first = specs[0].dtype
    for s in specs:
        if s.dtype != first:
            return promote_dtypes(s.dtype for s in specs)
    return first


def broadcast_output(*specs: TensorSpec) -> TensorSpec:
    """NumPy broadcasting: shapes aligned from the right; a dim of 1 stretches,
    other dims must be equal (symbols that can't be proved equal are assumed
    equal and reported)."""
    if len(specs) < 2:
        raise ShapeError("at least 2 inputs", f"{len(specs)} input(s)")
    first = specs[0]
    for s in specs:  # the common case (a residual add): equal shapes and dtypes
        if s.shape != first.shape or s.dtype != first.dtype:
            break
    else:
        return first
    ndim = max(s.ndim for s in specs)
    out: list[Dim] = [1] * ndim
    for s in specs:
        offset = ndim - s.ndim
        for i, d in enumerate(s.shape):
            cur = out[offset + i]
            if d == 1:
                continue
            if cur == 1:
                out[offset + i] = d
                continue
            try:
                out[offset + i] = unify(cur, d, f"dim {offset + i - ndim} of the inputs")
            except ShapeError:
                raise ShapeError(
                    "input shapes that broadcast together",
                    "shapes " + ", ".join(format_shape(t.shape) for t in specs),
                ) from None
    return TensorSpec._make(tuple(out), result_dtype(specs))


def concat_output(dim: int, *specs: TensorSpec) -> TensorSpec:
    """Concatenation along ``dim``: inputs of one rank, equal on every other dim;
    the output dim is the sum."""
    if len(specs) < 1:
        raise ShapeError("at least 1 input", "none")
    ndim = specs[0].ndim
    if any(s.ndim != ndim for s in specs):
        raise ShapeError(
            "inputs of the same rank",
            "shapes " + ", ".join(format_shape(s.shape) for s in specs),
        )
    axis = normalize_axis(dim, ndim, "dim")
    out = list(specs[0].shape)
    total: Dim = 0
    for s in specs:
        total = total + s.shape[axis]
        for i in range(ndim):
            if i != axis:
                try:
                    out[i] = unify(out[i], s.shape[i], f"dim {i}")
                except ShapeError:
                    raise ShapeError(
                        f"inputs equal on every dim but {axis} (`dim`={dim})",
                        "shapes " + ", ".join(format_shape(t.shape) for t in specs),
                    ) from None
    out[axis] = total
    return TensorSpec._make(tuple(out), result_dtype(specs))


# -- layers ----------------------------------------------------------------------


def _promoted(xs: tuple[Any, ...]) -> tuple[Any, ...]:
    """The input arrays cast to the dtype the rule promises (`promote_dtypes`),
    so that every backend computes in it: NumPy alone would give float64 for
    int32 + float32, and torch leaves a 0-d input's dtype out of the promotion."""
    first = xs[0].dtype
    for x in xs:
        if x.dtype != first:
            break
    else:
        return xs  # one dtype: the common case, nothing to cast
    names = [normalize_dtype(x.dtype) for x in xs]
    target = promote_dtypes(names)
    return tuple(
        x if name == target else ops.astype(x, target) for x, name in zip(xs, names, strict=True)
    )


class Add(Layer):
    """Elementwise sum of two or more inputs, with broadcasting."""

    hparam_names = ()

    def output_spec(self, *xs: TensorSpec) -> TensorSpec:
        return broadcast_output(*xs)

    def forward(self, params: Mapping[str, Any], *xs: Any) -> Any:
        xs = _promoted(xs)
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


class Multiply(Layer):
    """Elementwise product of two or more inputs, with broadcasting."""

    hparam_names = ()

    def output_spec(self, *xs: TensorSpec) -> TensorSpec:
        return broadcast_output(*xs)

    def forward(self, params: Mapping[str, Any], *xs: Any) -> Any:
        xs = _promoted(xs)
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out


class Concat(Layer):
    """Concatenation along ``dim`` (default 1, the channel/feature dim)."""

    hparam_names = ("dim",)

    def __init__(self, dim: int = 1, *, name: str | None = None) -> None:
        super().__init__(name=name)
        if type(dim) is not int:
            raise ShapeError("`dim` to be an int", f"`dim` (={dim!r})", kind="Concat")
        self.dim = dim

    def output_spec(self, *xs: TensorSpec) -> TensorSpec:
        return concat_output(self.dim, *xs)

    def forward(self, params: Mapping[str, Any], *xs: Any) -> Any:
        return ops.concat(_promoted(xs), axis=self.dim)
