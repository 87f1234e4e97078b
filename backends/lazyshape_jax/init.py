"""Allocation for the JAX backend (the init protocol: same names in every backend).

Native randomness is a PRNG key per parameter: the model's base key folded with
a stable hash of the parameter's path (``crc32("0.weight")``), so a parameter's
initial value depends on the key and its path only — not on construction order
or on which other parameters exist.
"""

from __future__ import annotations

import functools
import math
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lazyshape.backend import Constant, Initializer, Normal, Orthogonal, TruncNormal, Uniform

# the init protocol (`sample_all` is this backend's own batch form of `sample`)
__all__ = ["make_rng", "sample", "from_numpy"]  # (and the JAX-only host_buffer, adopt)


def make_rng(seed: int | None) -> Any:
    """The base PRNG key of a model (``jax.random.key(seed or 0)``)."""
    return jax.random.key(0 if seed is None else seed)


def path_hash(name: str) -> np.uint32:
    """The stable 32-bit hash of a parameter or node path that keys are folded with."""
    return np.uint32(zlib.crc32(name.encode()))


def sample(prim: Initializer, shape: tuple[int, ...], dtype: str, rng: Any, name: str) -> Any:
    """A new array of ``shape`` drawn from a primitive initializer with the key
    ``fold_in(rng, crc32(name))``. Traceable (works under ``jax.jit``)."""
    if isinstance(prim, Constant):
        return _constant(prim.val, shape, dtype, traced=isinstance(rng, jax.core.Tracer))
    return _sampler(prim, shape, dtype)(_fold_in(rng, path_hash(name)))


def sample_all(
    plan: Sequence[tuple[str, tuple[int, ...], str, Initializer]], rng: Any
) -> dict[str, Any]:
    """``{name: sample(prim, shape, dtype, rng, name)}`` for each ``(name, shape,
    dtype, prim)`` of ``plan``, in plan order.

    Each parameter's value is exactly what `sample` gives it alone: the per-path
    key is ``fold_in(rng, crc32(name))``. The cost grows linearly: parameters with
    the same (primitive, shape, dtype) share one compiled sampler, called with
    the parameter's key as an argument, so a stack of 1000 identical layers
    compiles as much as a stack of one; constants are filled on the host,
    compiling nothing."""
    traced = isinstance(rng, jax.core.Tracer)
    out: dict[str, Any] = {}
    for name, shape, dtype, prim in plan:
        if isinstance(prim, Constant):
            out[name] = _constant(prim.val, shape, dtype, traced)
        else:
            out[name] = _sampler(prim, shape, dtype)(_fold_in(rng, path_hash(name)))
    return out


def _constant(val: float, shape: tuple[int, ...], dtype: str, traced: bool) -> Any:
    """``shape`` filled with ``val``: a broadcast under a trace (no large literal
    in the program); else filled by NumPy and put on the device (no compile)."""
    out_dtype = jax_dtype(dtype)
    if traced:
        return jnp.full(shape, val, dtype=out_dtype)
    return jnp.asarray(np.full(shape, val, dtype=out_dtype))


#: ``fold_in(key, path hash)`` compiled once for all parameters: a sampler with
#: its own fold_in would compile a second threefry (~40% of its compile time)
_fold_in = jax.jit(jax.random.fold_in)


@functools.lru_cache(maxsize=512)
def _sampler(prim: Initializer, shape: tuple[int, ...], dtype: str) -> Any:
    """The compiled draw ``parameter key -> array`` of one (primitive, shape,
    dtype); cached, so every parameter of that kind reuses it.

    Random primitives are drawn flat, ``(prod(shape),)``, then reshaped: JAX's
    random bits are laid out over the flattened index, so the values equal a
    draw of ``shape`` itself (a test pins this), and XLA compiles the 1-d draw
    several times faster than an n-d one (about 4x for a 4-d conv weight)."""
    return jax.jit(functools.partial(_draw, prim, shape, dtype, flat=True))


def _draw(prim: Initializer, shape: tuple[int, ...], dtype: str, key: Any, *,
          flat: bool) -> Any:
    """The traced draw of one random primitive of ``shape`` from ``key``:
    through the flattened ``(prod(shape),)`` (``flat``) or in ``shape`` itself,
    the same values either way (see `_sampler`)."""
    out_dtype = jax_dtype(dtype)
    # draw in at least float32 and round once, so float16/bfloat16 aren't biased
    draw = jnp.float64 if out_dtype == jnp.float64 else jnp.float32
    at = (math.prod(shape),) if flat else shape
    if isinstance(prim, Uniform):
        out = jax.random.uniform(key, at, draw, minval=prim.a, maxval=prim.b)
    elif isinstance(prim, Normal):
        out = prim.mean + prim.std * jax.random.normal(key, at, draw)
    elif isinstance(prim, TruncNormal):
        if prim.std == 0:
            out = jnp.full(at, min(max(prim.mean, prim.a), prim.b), draw)
        else:
            lo, hi = (prim.a - prim.mean) / prim.std, (prim.b - prim.mean) / prim.std
            out = prim.mean + prim.std * jax.random.truncated_normal(key, lo, hi, at, draw)
    elif isinstance(prim, Orthogonal):
        out = _orthogonal(key, prim.gain, shape, draw)
    else:
        raise TypeError(f"not a primitive initializer: {prim!r}")
    return out.reshape(shape).astype(out_dtype)


def sharded_sampler(prim: Initializer, shape: tuple[int, ...], dtype: str,
                    sharding: Any) -> Any:
    """The compiled draw ``parameter key -> array`` of one (primitive, shape,
    dtype) straight onto ``sharding`` (its ``out_shardings``): drawn in its own
    shape, so that XLA partitions the draw and each device computes only its
    shard; the values are `sample`'s. Called with ``fold_in(key, crc32(name))``
    (`sample_sharded`); the caller caches it per parameter kind."""
    if isinstance(prim, Constant):
        out_dtype = jax_dtype(dtype)
        return jax.jit(lambda key: jnp.full(shape, prim.val, dtype=out_dtype),
                       out_shardings=sharding)
    return jax.jit(functools.partial(_draw, prim, shape, dtype, flat=False),
                   out_shardings=sharding)


def parameter_key(rng: Any, name: str) -> Any:
    """The key parameter ``name`` is drawn with: ``fold_in(rng, crc32(name))``."""
    return _fold_in(rng, path_hash(name))


def init_program(
    plan: Sequence[tuple[str, tuple[int, ...], str, Initializer]],
    shardings: Mapping[str, Any] | None = None,
) -> Any:
    """``jax.jit(key -> {name: value})`` drawing every parameter of ``plan``
    (``(name, shape, dtype, primitive)``) in one program, each value exactly
    what `sample` gives it (key ``fold_in(key, crc32(name))``).

    With ``shardings`` (``{name: NamedSharding}``) they are its
    ``out_shardings``: each random value is drawn in its own shape, never
    flattened, so that XLA partitions the draw and each device computes only
    its shard (JAX's threefry is partitionable: a value's random bits depend
    on its index alone, the same sharded or not)."""
    items = tuple(plan)

    def fn(key: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, shape, dtype, prim in items:
            if isinstance(prim, Constant):
                out[name] = jnp.full(shape, prim.val, dtype=jax_dtype(dtype))
            else:
                out[name] = _draw(prim, shape, dtype, jax.random.fold_in(key, path_hash(name)),
                                  flat=shardings is None)
        return out

    if shardings is None:
        return jax.jit(fn)
    return jax.jit(fn, out_shardings={name: shardings[name] for name, *_ in items})


def _orthogonal(key: Any, gain: float, shape: tuple[int, ...], dtype: Any) -> Any:
    # torch.nn.init.orthogonal_'s algorithm: QR of a normal (rows, prod(rest))
    # matrix, sign-fixed (jax.nn.initializers.orthogonal flattens differently).
    if len(shape) < 2:
        raise ValueError(f"orthogonal init needs at least 2 dims; got shape {shape}")
    rows, cols = shape[0], math.prod(shape[1:])
    # drawn 1-d: the same values as a 2-d draw (see `_sampler`)
    flat = jax.random.normal(key, (rows * cols,), dtype).reshape(rows, cols)
    if rows < cols:
        flat = flat.T
    q, r = jnp.linalg.qr(flat)
    q = q * jnp.sign(jnp.diag(r))
    if rows < cols:
        q = q.T
    return (gain * q).reshape(shape)


def from_numpy(value: Any, dtype: str, device: Any) -> Any:
    """A JAX array from a NumPy (or JAX) array, in ``dtype``, on ``device``
    (a ``jax.Device``, a sharding, or a platform name such as ``"cpu"``)."""
    out = jnp.asarray(value, dtype=jax_dtype(dtype))
    return out if device is None else jax.device_put(out, as_device(device))


#: XLA's CPU client aliases a host array instead of copying it when it is this aligned
_ALIGN = 64


def host_buffer(shape: tuple[int, ...], dtype: str, device: Any) -> np.ndarray[Any, Any] | None:
    """An uninitialized NumPy array of ``shape`` and ``dtype`` that `adopt` turns
    into a JAX array without a copy (CPU, ``_ALIGN``-byte aligned); None when it
    can't (another device, a dtype JAX would convert)."""
    np_dtype = np.dtype(jax_dtype(dtype))
    if np_dtype != np.dtype(dtype) or not _on_cpu(device):
        return None
    n = math.prod(shape)
    raw = np.empty(n * np_dtype.itemsize + _ALIGN, np.uint8)
    start: int = -raw.ctypes.data % _ALIGN
    out: np.ndarray[Any, Any] = raw[start:start + n * np_dtype.itemsize].view(np_dtype)
    return out.reshape(shape)


def adopt(value: np.ndarray[Any, Any], device: Any) -> Any:
    """The JAX array on ``device`` of a `host_buffer` the caller no longer writes:
    the same memory (no second copy of a parameter exists at any time)."""
    return jax.device_put(value, None if device is None else as_device(device))


def _on_cpu(device: Any) -> bool:
    if device is None:
        return jax.default_backend() == "cpu"
    target = as_device(device)
    platform = getattr(target, "platform", None)
    return platform == "cpu"


def jax_dtype(dtype: str) -> Any:
    """The JAX dtype of a canonical dtype name. 64-bit integers follow JAX's
    x64 setting; float64 parameters require ``jax_enable_x64``."""
    if dtype == "float64" and jax.dtypes.canonicalize_dtype(jnp.float64) != jnp.float64:
        raise ValueError(
            "dtype float64 on the JAX backend needs 64-bit mode: "
            "jax.config.update('jax_enable_x64', True)"
        )
    return jax.dtypes.canonicalize_dtype(jnp.dtype(dtype))


def as_device(device: Any) -> Any:
    """A device or sharding for ``jax.device_put``: ``"cpu"`` / ``"gpu:1"`` are
    looked up by platform (and index)."""
    if isinstance(device, str):
        platform, _, index = device.partition(":")
        return jax.devices(platform)[int(index or 0)]
    return device
