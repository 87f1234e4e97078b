"""Embedding: a lookup table, integer ids ``(*)`` -> vectors ``(*, embedding_dim)``."""

from __future__ import annotations

from .._errors import ShapeError
from .._init import Initializer, normal
from .._specs import ParamSpec, TensorSpec

__all__ = [
    "ID_DTYPES",
    "EMBEDDING_WEIGHT_INIT",
    "normalize_padding_idx",
    "check_ids",
    "embedding_output",
    "embedding_params",
]

#: the index dtypes torch's embedding accepts
ID_DTYPES = frozenset({"int32", "int64"})

#: PyTorch's nn.Embedding default: N(0, 1) (the padding row is then zeroed by
#: torch; see `Embedding` for the other backends).
EMBEDDING_WEIGHT_INIT: Initializer = normal(0.0, 1.0)


# -- hyperparameter normalisers ------------------------------------------------


def normalize_padding_idx(padding_idx: object, num_embeddings: int, kind: str) -> int | None:
    """``None``, or an index in ``[-num_embeddings, num_embeddings)`` mapped to
    ``[0, num_embeddings)`` (torch counts a negative one from the end)."""
    if padding_idx is None:
        return None
    if type(padding_idx) is not int or not -num_embeddings <= padding_idx < num_embeddings:
        raise ShapeError(
            f"`padding_idx` in [{-num_embeddings}, {num_embeddings - 1}] "
            "(within `num_embeddings`) or None",
            f"`padding_idx` (={padding_idx!r})",
            kind=kind,
        )
    return padding_idx % num_embeddings


# -- validation ------------------------------------------------------------------


def check_ids(x: TensorSpec) -> None:
    """Integer ids (int32 or int64), of any shape."""
    if x.dtype in ID_DTYPES:
        return
    raise ShapeError("integer ids (int32 or int64)", f"dtype {x.dtype}")


# -- shape computation -------------------------------------------------------------


def embedding_output(x: TensorSpec, embedding_dim: int, dtype: str = "float32") -> TensorSpec:
    """``(*) -> (*, embedding_dim)``. The output has the weight's dtype, which a
    rule doesn't see (it is the model's); ``dtype`` says which to assume."""
    check_ids(x)
    return TensorSpec._make((*x.shape, embedding_dim), dtype)


# -- parameter rule ---------------------------------------------------------------


def embedding_params(num_embeddings: int, embedding_dim: int) -> dict[str, ParamSpec]:
    """weight ``(num_embeddings, embedding_dim)``, ``N(0, 1)`` as torch."""
    return {
        "weight": ParamSpec._make((num_embeddings, embedding_dim), None, EMBEDDING_WEIGHT_INIT)
    }
