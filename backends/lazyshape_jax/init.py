"""Allocation for the JAX backend (the init protocol: same names in every backend).

Native randomness is a PRNG key per parameter: the model's base key folded with
a stable hash of the parameter's path (``crc32("0.weight")``), so a parameter's
initial value depends on the key and its path only — not on construction order
or on which other parameters exist.
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lazyshape._init import Constant, Initializer, Normal, Orthogonal, TruncNormal, Uniform

__all__ = ["make_rng", "sample", "from_numpy"]


def make_rng(seed: int | None) -> Any:
    """The base PRNG key of a model (``jax.random.key(seed or 0)``)."""
    return jax.random.key(0 if seed is None else seed)


def path_hash(name: str) -> np.uint32:
    """The stable 32-bit hash of a parameter or node path that keys are folded with."""
    return np.uint32(zlib.crc32(name.encode()))


def sample(prim: Initializer, shape: tuple[int, ...], dtype: str, rng: Any, name: str) -> Any:
    """A new array of ``shape`` drawn from a primitive initializer with the key
    ``fold_in(rng, crc32(name))``. Traceable (works under ``jax.jit``)."""
    out_dtype = jax_dtype(dtype)
    if isinstance(prim, Constant):
        return jnp.full(shape, prim.val, dtype=out_dtype)
    key = jax.random.fold_in(rng, path_hash(name))
    # draw in at least float32 and round once, so float16/bfloat16 aren't biased
    draw = jnp.float64 if out_dtype == jnp.float64 else jnp.float32
    if isinstance(prim, Uniform):
        out = jax.random.uniform(key, shape, draw, minval=prim.a, maxval=prim.b)
    elif isinstance(prim, Normal):
        out = prim.mean + prim.std * jax.random.normal(key, shape, draw)
    elif isinstance(prim, TruncNormal):
        if prim.std == 0:
            out = jnp.full(shape, min(max(prim.mean, prim.a), prim.b), draw)
        else:
            lo, hi = (prim.a - prim.mean) / prim.std, (prim.b - prim.mean) / prim.std
            out = prim.mean + prim.std * jax.random.truncated_normal(key, lo, hi, shape, draw)
    elif isinstance(prim, Orthogonal):
        out = _orthogonal(key, prim.gain, shape, draw)
    else:
        raise TypeError(f"not a primitive initializer: {prim!r}")
    return out.astype(out_dtype)


def _orthogonal(key: Any, gain: float, shape: tuple[int, ...], dtype: Any) -> Any:
    # torch.nn.init.orthogonal_'s algorithm: QR of a normal (rows, prod(rest))
    # matrix, sign-fixed (jax.nn.initializers.orthogonal flattens differently).
    if len(shape) < 2:
        raise ValueError(f"orthogonal init needs at least 2 dims; got shape {shape}")
    rows, cols = shape[0], math.prod(shape[1:])
    flat = jax.random.normal(key, (rows, cols), dtype)
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
