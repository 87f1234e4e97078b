"""Backend-neutral initializers (``ls.init``), with PyTorch's names and formulas.

An initializer is a frozen description. Named initializers (Kaiming, Xavier,
fan-in uniform) reduce, given the parameter's concrete shape, to one of five
*primitives* that every backend implements: `uniform`, `normal`,
`trunc_normal`, `constant`, `orthogonal`. Fans are computed here, in the core,
exactly as ``torch.nn.init._calculate_fan_in_and_fan_out`` does, so every
backend draws from the same distribution as PyTorch's layer defaults.

`sample_numpy` draws a primitive with a NumPy ``Generator``; the portable mode
uses it with one Philox stream per parameter path, so the NumPy, PyTorch and
JAX backends get bit-identical initial weights for the same seed.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._dims import Dim

__all__ = [
    "Initializer",
    "Uniform",
    "Normal",
    "TruncNormal",
    "Constant",
    "Orthogonal",
    "KaimingUniform",
    "KaimingNormal",
    "XavierUniform",
    "XavierNormal",
    "FanInUniform",
    "calculate_gain",
    "fans",
    "kaiming_uniform",
    "kaiming_normal",
    "xavier_uniform",
    "xavier_normal",
    "normal",
    "uniform",
    "trunc_normal",
    "zeros",
    "ones",
    "constant",
    "orthogonal",
    "fan_in_uniform",
    "sample_numpy",
    "portable_generator",
    "numpy_dtype",
]

class Initializer:
    """Base class: a description of how to fill a parameter."""

    def primitive(self, shape: tuple[int, ...]) -> Initializer:
        """The primitive (`Uniform`, `Normal`, `TruncNormal`, `Constant`,
        `Orthogonal`) this initializer amounts to for a parameter of ``shape``."""
        return self


@dataclass(frozen=True, slots=True)
class Uniform(Initializer):
    """``U(a, b)`` (``torch.nn.init.uniform_``)."""

    a: float = 0.0
    b: float = 1.0

    def __repr__(self) -> str:
        return f"uniform(a={self.a:.6g}, b={self.b:.6g})"


@dataclass(frozen=True, slots=True)
class Normal(Initializer):
    """``N(mean, std²)`` (``torch.nn.init.normal_``)."""

    mean: float = 0.0
    std: float = 1.0

    def __repr__(self) -> str:
        return f"normal(mean={self.mean:.6g}, std={self.std:.6g})"


@dataclass(frozen=True, slots=True)
class TruncNormal(Initializer):
    """``N(mean, std²)`` truncated to ``[a, b]`` (absolute bounds, as torch)."""

    mean: float = 0.0
    std: float = 1.0
    a: float = -2.0
    b: float = 2.0

    def __repr__(self) -> str:
        return (
            f"trunc_normal(mean={self.mean:.6g}, std={self.std:.6g}, "
            f"a={self.a:.6g}, b={self.b:.6g})"
        )


@dataclass(frozen=True, slots=True)
class Constant(Initializer):
    """Every element ``val`` (``zeros``, ``ones``, ``constant``)."""

    val: float = 0.0

    def __repr__(self) -> str:
        if self.val == 0:
            return "zeros()"
        if self.val == 1:
            return "ones()"
        return f"constant({self.val:.6g})"


@dataclass(frozen=True, slots=True)
class Orthogonal(Initializer):
    """A (semi-)orthogonal matrix times ``gain`` (``torch.nn.init.orthogonal_``)."""

    gain: float = 1.0

    def __repr__(self) -> str:
        return f"orthogonal(gain={self.gain:.6g})"


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The recommended gain for a nonlinearity (``torch.nn.init.calculate_gain``)."""
    linear = {"linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
              "conv_transpose2d", "conv_transpose3d", "sigmoid"}
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"unsupported nonlinearity {nonlinearity!r}")


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """``(fan_in, fan_out)`` of a parameter: for shape ``(out, in, *k)``,
    ``fan_in = in * prod(k)`` and ``fan_out = out * prod(k)``."""
    if len(shape) < 2:
        raise ValueError(
            f"fan in and fan out need a parameter with at least 2 dims; got shape {shape}"
        )
    receptive = 1
    for d in shape[2:]:
        receptive *= d
    return shape[1] * receptive, shape[0] * receptive


def _fan(shape: tuple[int, ...], mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode {mode!r} not supported, use 'fan_in' or 'fan_out'")
    fan_in, fan_out = fans(shape)
    return fan_in if mode == "fan_in" else fan_out


@dataclass(frozen=True, slots=True)
class KaimingUniform(Initializer):
    """``U(-bound, bound)``, ``bound = gain * sqrt(3 / fan)``."""

    a: float = 0.0
    mode: str = "fan_in"
    nonlinearity: str = "leaky_relu"

    def primitive(self, shape: tuple[int, ...]) -> Initializer:
        fan = _fan(shape, self.mode)
        if fan == 0:
            return Constant(0.0)
        std = calculate_gain(self.nonlinearity, self.a) / math.sqrt(fan)
        bound = math.sqrt(3.0) * std
        return Uniform(-bound, bound)

    def __repr__(self) -> str:
        return (
            f"kaiming_uniform(a={self.a:.6g}, mode={self.mode!r}, "
            f"nonlinearity={self.nonlinearity!r})"
        )


@dataclass(frozen=True, slots=True)
class KaimingNormal(Initializer):
    """``N(0, std²)``, ``std = gain / sqrt(fan)``."""

    a: float = 0.0
    mode: str = "fan_in"
    nonlinearity: str = "leaky_relu"

    def primitive(self, shape: tuple[int, ...]) -> Initializer:
        fan = _fan(shape, self.mode)
        if fan == 0:
            return Constant(0.0)
        return Normal(0.0, calculate_gain(self.nonlinearity, self.a) / math.sqrt(fan))

    def __repr__(self) -> str:
        return (
            f"kaiming_normal(a={self.a:.6g}, mode={self.mode!r}, "
            f"nonlinearity={self.nonlinearity!r})"
        )


@dataclass(frozen=True, slots=True)
class XavierUniform(Initializer):
    """``U(-a, a)``, ``a = gain * sqrt(6 / (fan_in + fan_out))``."""

    gain: float = 1.0

    def primitive(self, shape: tuple[int, ...]) -> Initializer:
        fan_in, fan_out = fans(shape)
        std = self.gain * math.sqrt(2.0 / float(fan_in + fan_out))
        bound = math.sqrt(3.0) * std
        return Uniform(-bound, bound)

    def __repr__(self) -> str:
        return f"xavier_uniform(gain={self.gain:.6g})"


@dataclass(frozen=True, slots=True)
class XavierNormal(Initializer):
    """``N(0, std²)``, ``std = gain * sqrt(2 / (fan_in + fan_out))``."""

    gain: float = 1.0

    def primitive(self, shape: tuple[int, ...]) -> Initializer:
        fan_in, fan_out = fans(shape)
        return Normal(0.0, self.gain * math.sqrt(2.0 / float(fan_in + fan_out)))

    def __repr__(self) -> str:
        return f"xavier_normal(gain={self.gain:.6g})"


@dataclass(frozen=True, slots=True)
class FanInUniform(Initializer):
    """``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``: PyTorch's default for biases (and
    for RNN weights), where ``fan_in`` comes from another parameter."""

    fan_in: Dim

    def primitive(self, shape: tuple[int, ...]) -> Initializer:
        fan_in = self.fan_in
        if type(fan_in) is not int:
            raise ValueError(f"fan_in_uniform needs a concrete fan_in, got {fan_in}")
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        return Uniform(-bound, bound)

    def __repr__(self) -> str:
        return f"fan_in_uniform(fan_in={self.fan_in})"


# -- the public constructors (PyTorch's argument names) ----------------------


def kaiming_uniform(
    a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"
) -> Initializer:
    """He uniform (``torch.nn.init.kaiming_uniform_``)."""
    _fan((1, 1), mode)
    calculate_gain(nonlinearity, a)
    return KaimingUniform(float(a), mode, nonlinearity)


def kaiming_normal(
    a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu"
) -> Initializer:
    """He normal (``torch.nn.init.kaiming_normal_``)."""
    _fan((1, 1), mode)
    calculate_gain(nonlinearity, a)
    return KaimingNormal(float(a), mode, nonlinearity)


def xavier_uniform(gain: float = 1.0) -> Initializer:
    """Glorot uniform (``torch.nn.init.xavier_uniform_``)."""
    return XavierUniform(float(gain))


def xavier_normal(gain: float = 1.0) -> Initializer:
    """Glorot normal (``torch.nn.init.xavier_normal_``)."""
    return XavierNormal(float(gain))


def normal(mean: float = 0.0, std: float = 1.0) -> Initializer:
    """``N(mean, std²)`` (``torch.nn.init.normal_``)."""
    return Normal(float(mean), float(std))


def uniform(a: float = 0.0, b: float = 1.0) -> Initializer:
    """``U(a, b)`` (``torch.nn.init.uniform_``)."""
    return Uniform(float(a), float(b))


def trunc_normal(
    mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0
) -> Initializer:
    """Truncated normal with absolute bounds ``[a, b]`` (``torch.nn.init.trunc_normal_``)."""
    if not a < b:
        raise ValueError(f"trunc_normal needs a < b, got a={a}, b={b}")
    return TruncNormal(float(mean), float(std), float(a), float(b))


_ZEROS = Constant(0.0)
_ONES = Constant(1.0)


def zeros() -> Initializer:
    """All zeros."""
    return _ZEROS


def ones() -> Initializer:
    """All ones."""
    return _ONES


def constant(val: float) -> Initializer:
    """Every element ``val`` (``torch.nn.init.constant_``)."""
    return Constant(float(val))


def orthogonal(gain: float = 1.0) -> Initializer:
    """(Semi-)orthogonal matrix (``torch.nn.init.orthogonal_``)."""
    return Orthogonal(float(gain))


@functools.lru_cache(maxsize=1024)
def fan_in_uniform(fan_in: Dim) -> Initializer:
    """``U(±1/sqrt(fan_in))``: PyTorch's bias default, fan_in taken from the weight.

    Cached: the propagation pass asks for the same few fans again and again."""
    return FanInUniform(fan_in)


# -- NumPy sampling: the native NumPy backend and the portable mode ----------


def portable_generator(seed: int, path: str) -> np.random.Generator:
    """The portable stream of one parameter: Philox keyed by ``(seed, path)``.

    Independent of construction order and of the backend."""
    import hashlib  # on first use: loading OpenSSL's hashes costs ~3 ms at import

    digest = hashlib.blake2b(path.encode(), digest_size=8).digest()
    key = int.from_bytes(digest, "little")
    return np.random.Generator(np.random.Philox(key=[seed & (2**64 - 1), key]))


#: elements drawn at a time: values are drawn in float64 and rounded once to the
#: parameter's dtype chunk by chunk, so materializing takes the parameters'
#: bytes and 512 KiB more, not a float64 copy of the largest tensor
CHUNK = 1 << 16


def sample_numpy(
    prim: Initializer,
    shape: tuple[int, ...],
    dtype: str,
    rng: np.random.Generator,
    out: np.ndarray[Any, Any] | None = None,
) -> np.ndarray[Any, Any]:
    """Draw a primitive initializer as a NumPy array of ``shape`` and ``dtype``.

    Values are drawn in float64 and rounded once to ``dtype``, `CHUNK` elements
    at a time (the stream is the same as one draw of the whole tensor). With
    ``out`` (a C-contiguous array of that shape and dtype, e.g. a CPU tensor's
    NumPy view) the values are written there, in place, and ``out`` returned."""
    np_dtype = numpy_dtype(dtype)
    if out is not None and (
        out.shape != tuple(shape) or out.dtype != np_dtype or not out.flags.c_contiguous
    ):
        raise ValueError(
            f"out must be a C-contiguous {np_dtype} array of shape {tuple(shape)}; "
            f"got {out.dtype} {out.shape}"
        )
    if isinstance(prim, Constant):
        if out is None:
            return np.full(shape, prim.val, dtype=np_dtype)
        out.fill(prim.val)
        return out
    if isinstance(prim, Orthogonal):  # a QR of the whole matrix: float64 throughout
        value = np.asarray(_orthogonal(prim.gain, shape, rng)).astype(np_dtype)
        if out is None:
            return value
        out[...] = value
        return out
    if not isinstance(prim, (Uniform, Normal, TruncNormal)):
        raise TypeError(f"not a primitive initializer: {prim!r}")
    n = 1
    for d in shape:
        n *= d
    target = out
    out = np.empty(n, dtype=np_dtype) if target is None else target.reshape(n)
    if isinstance(prim, TruncNormal):
        _trunc_normal(prim, out, rng)
    else:
        for start in range(0, n, CHUNK):
            k = min(CHUNK, n - start)
            if isinstance(prim, Uniform):
                out[start:start + k] = prim.a + (prim.b - prim.a) * rng.random(k)
            else:
                out[start:start + k] = prim.mean + prim.std * rng.standard_normal(k)
    return out.reshape(shape) if target is None else target


def _trunc_normal(prim: TruncNormal, out: np.ndarray[Any, Any], rng: np.random.Generator) -> None:
    # Rejection sampling: deterministic for a given stream, exact distribution.
    # The values kept are the stream's in order, whatever the batch sizes.
    n = out.size
    filled = 0
    while filled < n:
        draw = prim.mean + prim.std * rng.standard_normal(min(max(n - filled, 16) * 2, 2 * CHUNK))
        keep = draw[(draw >= prim.a) & (draw <= prim.b)][: n - filled]
        out[filled : filled + keep.size] = keep
        filled += keep.size


def _orthogonal(
    gain: float, shape: tuple[int, ...], rng: np.random.Generator
) -> np.ndarray[Any, Any]:
    # torch.nn.init.orthogonal_'s algorithm: QR of a normal matrix, sign-fixed.
    if len(shape) < 2:
        raise ValueError(f"orthogonal init needs at least 2 dims; got shape {shape}")
    rows = shape[0]
    cols = int(np.prod(shape[1:], dtype=np.int64))
    flat = rng.standard_normal((rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return (gain * q).reshape(shape)


def numpy_dtype(dtype: str) -> np.dtype[Any]:
    """The NumPy dtype of a canonical dtype name (bfloat16 through ``ml_dtypes``)."""
    if dtype == "bfloat16":
        import ml_dtypes  # a dependency; imported only for bfloat16

        bf16: np.dtype[Any] = np.dtype(ml_dtypes.bfloat16)
        return bf16
    return np.dtype(dtype)
