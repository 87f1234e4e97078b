"""Harness entry of ``Embedding``: integer ids of any shape.

Oracles: ``torch.nn.functional.embedding``, ``jnp.take`` under
``jax.eval_shape``, ONNX ``Gather``.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lazyshape.layers.embedding import Embedding, LearnedTensor

from .._onnx import BUILDERS, Graph, onnx_oracle
from .._oracles import jax_oracle, jax_param, torch_oracle, torch_param
from .._primitives import Specs
from .._registry import register
from ._common import spec

ID_DTYPES = ("int64", "int32")


def _layers() -> Any:
    @st.composite
    def build(draw: Any) -> Any:
        n = draw(st.integers(1, 6))
        pad = draw(st.none() | st.integers(-n, n - 1))
        return Embedding(n, draw(st.integers(1, 5)), pad)

    return build()


def _inputs(layer: Any) -> Any:
    return st.tuples(
        hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
        st.sampled_from(ID_DTYPES),
    ).map(lambda t: (spec(*t),))


def _invalid(layer: Any) -> Any:
    return st.tuples(
        hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4),
        st.sampled_from(["float32", "float64", "bool"]),
    ).map(lambda t: (spec(*t),))


def _values(layer: Any, i: int, s: Any, rng: Any) -> Any:
    shape = tuple(int(d) for d in s.shape)
    return rng.integers(0, layer.num_embeddings, shape).astype(s.dtype)


def _t_embedding(layer: Any, ids: Any) -> Any:
    import torch.nn.functional as F

    w = torch_param(layer.num_embeddings, layer.embedding_dim, like=ids)
    return F.embedding(ids, w, layer.padding_idx)


def _j_embedding(layer: Any, ids: Any) -> Any:
    import jax.numpy as jnp

    if not jnp.issubdtype(ids.dtype, jnp.integer):
        raise TypeError("ids must be integers")
    return jnp.take(jax_param(layer.num_embeddings, layer.embedding_dim), ids, axis=0)


def _onnx_embedding(layer: Any, g: Graph, xs: list[str], specs: Specs) -> list[str]:
    w = g.input((layer.num_embeddings, layer.embedding_dim))
    return g.node("Gather", [w, xs[0]], axis=0)


register(
    Embedding,
    layers=_layers(),
    inputs=_inputs,
    invalid=_invalid,
    oracles=(torch_oracle(_t_embedding), jax_oracle(_j_embedding), onnx_oracle()),
    batch_axes=lambda layer, specs: tuple(0 if s.ndim >= 1 else None for s in specs),
    values=_values,
    accepts=lambda s: s.dtype in ID_DTYPES,
)
BUILDERS["Embedding"] = _onnx_embedding


# -- LearnedTensor: a parameter, shaped by names taken from a reference input --------


def _learned_layers() -> Any:
    @st.composite
    def build(draw: Any) -> Any:
        entries = draw(st.lists(st.integers(1, 3) | st.sampled_from(["D", "T"]),
                                min_size=1, max_size=3))
        batch = draw(st.booleans())
        if batch:
            entries[0] = 1
        return LearnedTensor(tuple(entries), batch=batch)

    return build()


def _needed_rank(layer: Any) -> int:
    named = [i for i, d in enumerate(layer.shape) if isinstance(d, str)]
    return max(len(layer.shape) - named[0] if named else 0, 1 if layer.batch else 0)


def _learned_inputs(layer: Any) -> Any:
    """A reference of any dtype, its rank enough to take the names from; a name
    used twice gets one size."""
    need = _needed_rank(layer)

    @st.composite
    def build(draw: Any) -> Specs:
        rank = draw(st.integers(need, need + 1))
        shape = [draw(st.integers(1, 4)) for _ in range(rank)]
        n = len(layer.shape)
        sizes: dict[str, int] = {}
        for i, d in enumerate(layer.shape):
            if isinstance(d, str):
                shape[rank - n + i] = sizes.setdefault(d, shape[rank - n + i])
        return (spec(tuple(shape), draw(st.sampled_from(["float32", "int64"]))),)

    return build()


def _learned_invalid(layer: Any) -> Any:
    need = _needed_rank(layer)
    if need == 0:
        return st.nothing()
    return hnp.array_shapes(min_dims=0, max_dims=need - 1, min_side=1, max_side=4).map(
        lambda s: (spec(s, "float32"),))


def _learned_shape(layer: Any, x_shape: tuple[int, ...]) -> tuple[int, ...]:
    n = len(layer.shape)
    if len(x_shape) < _needed_rank(layer):
        raise ValueError(f"a reference of rank {len(x_shape)} for shape {layer.shape}")
    out = []
    named: dict[str, int] = {}
    for i, d in enumerate(layer.shape):
        if isinstance(d, str):
            size = x_shape[len(x_shape) - n + i]
            if named.setdefault(d, size) != size:
                raise ValueError(f"the sizes named {d!r} differ in {x_shape}")
            out.append(size)
        else:
            out.append(d)
    return tuple(out)


def _t_learned(layer: Any, x: Any) -> Any:
    """The parameter, ``expand``ed to the reference's batch with ``batch=True``."""
    p = torch_param(*_learned_shape(layer, tuple(x.shape)), like=x)
    return p.expand(x.shape[0], *p.shape[1:]) if layer.batch else p


def _j_learned(layer: Any, x: Any) -> Any:
    import jax.numpy as jnp

    p = jax_param(*_learned_shape(layer, tuple(x.shape)))
    return jnp.broadcast_to(p, (x.shape[0], *p.shape[1:])) if layer.batch else p


def _learned_batch_axes(layer: Any, specs: Specs) -> tuple[int | None, ...]:
    (x,) = specs
    at = len(layer.shape) - x.ndim  # the entry of `shape` that takes dim 0, if any
    reads_dim0 = 0 <= at < len(layer.shape) and isinstance(layer.shape[at], str)
    return (None if x.ndim == 0 or reads_dim0 else 0,)


register(
    LearnedTensor,
    layers=_learned_layers(),
    inputs=_learned_inputs,
    invalid=_learned_invalid,
    oracles=(torch_oracle(_t_learned), jax_oracle(_j_learned)),
    batch_axes=_learned_batch_axes,
)
