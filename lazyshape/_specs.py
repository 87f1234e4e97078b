"""`TensorSpec` and `ParamSpec`: frozen descriptions of tensors and parameters.

A spec never holds data. Shapes are tuples of dims (``int`` or symbolic
`Expr`); in a user-given shape a ``str`` is shorthand for a symbol and ``None``
is an anonymous unknown dim.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ._dims import Dim, as_dim, format_shape, free_symbols, prod

if TYPE_CHECKING:
    from ._init import Initializer

__all__ = [
    "TensorSpec", "ParamSpec", "Placeholder", "Shape", "normalize_dtype", "as_shape", "itemsize",
    "FLOATING", "promote_types", "dtype_kind",
]

Shape = tuple[Dim, ...]

_set = object.__setattr__
_new = object.__new__

_DTYPES = {
    "float16": 2,
    "bfloat16": 2,
    "float32": 4,
    "float64": 8,
    "int8": 1,
    "int16": 2,
    "int32": 4,
    "int64": 8,
    "uint8": 1,
    "bool": 1,
    "complex64": 8,
    "complex128": 16,
}


#: the floating-point dtypes
FLOATING = frozenset({"float16", "bfloat16", "float32", "float64"})


def normalize_dtype(dtype: Any) -> str:
    """The canonical dtype name (``"float32"``) of a name, a NumPy dtype, or a
    torch / JAX dtype object."""
    if isinstance(dtype, str) and dtype in _DTYPES:
        return dtype
    name = getattr(dtype, "name", None) if not isinstance(dtype, str) else dtype
    if not isinstance(name, str):
        name = str(dtype)
    name = name.removeprefix("torch.")
    aliases = {"float": "float32", "double": "float64", "half": "float16", "long": "int64",
               "int": "int64", "bool_": "bool"}
    name = aliases.get(name, name)
    if name not in _DTYPES:
        raise TypeError(f"unsupported dtype {dtype!r}; expected one of {sorted(_DTYPES)}")
    return name


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


def dtype_kind(dtype: str) -> str:
    """The category of a canonical dtype name: ``"bool"``, ``"integer"``,
    ``"floating"`` or ``"complex"``."""
    return ("bool", "integer", "floating", "complex")[_CATEGORY[dtype]]


def promote_types(*dtypes: str) -> str:
    """The dtype arithmetic on arrays of ``dtypes`` gives in `lazyshape.ops`, on
    every backend: the promotion of the array API standard (and NumPy 2,
    without value dependence) within a category, and across categories
    (bool < integer < floating < complex) the higher category wins whatever
    its width. ``int32, float32 -> float32`` (an int input times a float32
    weight is float32), ``float16, float32 -> float32``, ``int32, int64 ->
    int64``, ``uint8, int8 -> int16``, ``bool, int8 -> int8``, ``float16,
    bfloat16 -> float32``, ``complex64, float64 -> complex128``. This is
    PyTorch's and JAX's promotion of arrays (NumPy's own differs across
    categories: ``int32, float32 -> float64``)."""
    if not dtypes:
        raise TypeError("promote_types needs at least one dtype")
    out = normalize_dtype(dtypes[0])
    for d in dtypes[1:]:
        if d != out:
            out = _promote_pair(out, normalize_dtype(d))
    return out



def itemsize(dtype: str) -> int:
    """Bytes per element of a canonical dtype name."""
    return _DTYPES[dtype]


def as_shape(shape: Iterable[Any]) -> Shape:
    """Normalize a user-given shape: ints stay, ``str`` becomes a symbol, ``None``
    a fresh anonymous dim."""
    if isinstance(shape, (str, int)):
        raise TypeError(f"a shape is a tuple of dims, got {shape!r}")
    out = []
    for d in shape:
        out.append(d if type(d) is int and d >= 0 else as_dim(d))
    return tuple(out)


class TensorSpec:
    """The shape and dtype of a tensor flowing through a model.

    ``TensorSpec(("B", 20))`` is a batch of ``B`` vectors of size 20, float32.
    Frozen and hashable.

    A shape rule whose output has the model's dtype, which a rule does not
    know (an `Embedding`'s vectors have its weight's dtype), returns
    ``TensorSpec(shape, None)``: the propagation pass fills in the dtype of
    the model being inferred or built, as it does for ``ParamSpec.dtype``.
    Every spec an `Inference` holds has a dtype.
    """

    __slots__ = ("shape", "dtype", "_hash")
    shape: Shape
    _hash: int  # (set on the first hash)
    #: the canonical dtype name; None only in a rule's output, for the model's
    dtype: str

    def __init__(self, shape: Iterable[Any], dtype: Any = "float32") -> None:
        _set(self, "shape", as_shape(shape))
        _set(self, "dtype", None if dtype is None else normalize_dtype(dtype))

    @staticmethod
    def _make(shape: Shape, dtype: str | None) -> TensorSpec:
        """Fast constructor for already-normalized shapes (the propagation path;
        dtype None only for a rule's output of the model's dtype)."""
        spec = _new(TensorSpec)
        _ts_shape(spec, shape)
        _ts_dtype(spec, dtype)
        return spec

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("TensorSpec is frozen")

    def __reduce__(self) -> tuple[Any, ...]:  # copy, deepcopy and pickle by value
        return (TensorSpec._make, (self.shape, self.dtype))

    @property
    def ndim(self) -> int:
        """Number of dims."""
        return len(self.shape)

    @property
    def is_symbolic(self) -> bool:
        """True when any dim is symbolic."""
        return any(type(d) is not int for d in self.shape)

    @property
    def symbols(self) -> frozenset[str]:
        """Names of the symbols the shape depends on."""
        out: frozenset[str] = frozenset()
        for d in self.shape:
            if type(d) is not int:
                out = out | free_symbols(d)
        return out

    def with_shape(self, shape: Shape) -> TensorSpec:
        """The same dtype, another (already normalized) shape."""
        return TensorSpec._make(shape, self.dtype)

    def with_dtype(self, dtype: str) -> TensorSpec:
        """The same shape, another (canonical) dtype."""
        return TensorSpec._make(self.shape, dtype)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, TensorSpec)
            and self.shape == other.shape
            and self.dtype == other.dtype
        )

    def __hash__(self) -> int:
        try:
            return self._hash
        except AttributeError:  # the first time: remembered (the spec is frozen)
            h = hash((self.shape, self.dtype))
            _ts_hash(self, h)
            return h

    def __repr__(self) -> str:
        return f"TensorSpec({format_shape(self.shape)}, {self.dtype})"


class ParamSpec:
    """The shape, dtype and initializer of a parameter (or buffer).

    ``dtype=None`` means the model's dtype (chosen at `build`). ``trainable=False``
    marks a buffer (running statistics): saved in state dicts, not optimized.
    """

    __slots__ = ("shape", "dtype", "init", "trainable", "_symbolic", "_numel")
    shape: Shape
    dtype: str | None
    init: Initializer
    trainable: bool
    _symbolic: bool | None  # (`is_symbolic`, found on the first ask)
    _numel: Dim | None  # (`numel`, found on the first ask)

    def __init__(
        self,
        shape: Iterable[Any],
        dtype: Any = None,
        init: Initializer | None = None,
        *,
        trainable: bool = True,
    ) -> None:
        from ._init import zeros

        _set(self, "shape", as_shape(shape))
        _set(self, "dtype", None if dtype is None else normalize_dtype(dtype))
        _set(self, "init", zeros() if init is None else init)
        _set(self, "trainable", bool(trainable))
        _set(self, "_symbolic", None)
        _set(self, "_numel", None)

    @staticmethod
    def _make(
        shape: Shape, dtype: str | None, init: Initializer, trainable: bool = True
    ) -> ParamSpec:
        """Fast constructor for already-normalized fields (the propagation path)."""
        spec = _new(ParamSpec)
        _ps_shape(spec, shape)
        _ps_dtype(spec, dtype)
        _ps_init(spec, init)
        _ps_trainable(spec, trainable)
        _ps_symbolic(spec, None)
        _ps_numel(spec, None)
        return spec

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("ParamSpec is frozen")

    def __reduce__(self) -> tuple[Any, ...]:  # copy, deepcopy and pickle by value
        return (ParamSpec._make, (self.shape, self.dtype, self.init, self.trainable))

    @property
    def numel(self) -> Dim:
        """Elements: the product of the shape (an int, or an expression),
        computed once per spec (layers of one size share theirs)."""
        n = self._numel
        if n is None:
            n = prod(self.shape)
            _ps_numel(self, n)
        return n

    @property
    def is_symbolic(self) -> bool:
        """True when the shape still has symbols (the parameter can't be allocated)."""
        sym = self._symbolic
        if sym is None:  # asked once per spec (layers of one size share theirs)
            sym = False
            for d in self.shape:
                if type(d) is not int:
                    sym = True
                    break
            _ps_symbolic(self, sym)
        return sym

    @property
    def symbols(self) -> frozenset[str]:
        """Names of the symbols the shape depends on."""
        out: frozenset[str] = frozenset()
        for d in self.shape:
            if type(d) is not int:
                out = out | free_symbols(d)
        return out

    def with_dtype(self, dtype: str) -> ParamSpec:
        """This spec with its dtype filled in (when it was left to the model)."""
        if self.dtype is not None:
            return self
        return ParamSpec._make(self.shape, dtype, self.init, self.trainable)

    def with_shape(self, shape: Shape) -> ParamSpec:
        """This spec with another (already normalized) shape."""
        return ParamSpec._make(shape, self.dtype, self.init, self.trainable)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ParamSpec)
            and self.shape == other.shape
            and self.dtype == other.dtype
            and self.init == other.init
            and self.trainable == other.trainable
        )

    def __hash__(self) -> int:
        return hash((self.shape, self.dtype, self.init, self.trainable))

    def __repr__(self) -> str:
        extra = "" if self.trainable else ", trainable=False"
        return f"ParamSpec({format_shape(self.shape)}, {self.dtype}, {self.init!r}{extra})"


# Frozen classes are filled through their slot descriptors, which skips the
# `__setattr__` guard at the cost of one C call per field (the pass's hot path).
_ts_shape = TensorSpec.__dict__["shape"].__set__
_ts_dtype = TensorSpec.__dict__["dtype"].__set__
_ts_hash = TensorSpec.__dict__["_hash"].__set__
_ps_shape = ParamSpec.__dict__["shape"].__set__
_ps_dtype = ParamSpec.__dict__["dtype"].__set__
_ps_init = ParamSpec.__dict__["init"].__set__
_ps_trainable = ParamSpec.__dict__["trainable"].__set__
_ps_symbolic = ParamSpec.__dict__["_symbolic"].__set__
_ps_numel = ParamSpec.__dict__["_numel"].__set__


class Placeholder:
    """A parameter not materialized yet: its partial shape (``(256, ?)``) and dtype."""

    __slots__ = ("shape", "dtype")

    def __init__(self, shape: tuple[Dim, ...], dtype: str) -> None:
        self.shape = shape
        self.dtype = dtype

    def __repr__(self) -> str:
        return f"<Uninitialized {format_shape(self.shape)} {self.dtype}>"
