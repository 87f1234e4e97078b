"""Harness entry of ``Embedding``: integer ids of any shape.

Oracles: ``torch.nn.functional.embedding``, ``jnp.take`` under
``jax.eval_shape``, ONNX ``Gather``.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lazyshape.layers.embedding import Embedding

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
