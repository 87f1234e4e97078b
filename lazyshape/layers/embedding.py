"""``Embedding``: a lookup table of ``num_embeddings`` vectors of size ``embedding_dim``.

Integer ids ``(*)`` -> vectors ``(*, embedding_dim)``. The module holds the
rules (pure functions of specs and hyperparameters), then the layer class.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .. import ops
from .._errors import ShapeError
from .._init import Initializer, normal
from .._layer import Layer
from .._specs import ParamSpec, TensorSpec
from ._common import positive_int

__all__ = [
    "Embedding",
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


def embedding_output(x: TensorSpec, embedding_dim: int) -> TensorSpec:
    """``(*) -> (*, embedding_dim)``, of the weight's dtype: the model's (None,
    filled in by the pass)."""
    check_ids(x)
    return TensorSpec._make((*x.shape, embedding_dim), None)


# -- parameter rule ---------------------------------------------------------------


def embedding_params(num_embeddings: int, embedding_dim: int) -> dict[str, ParamSpec]:
    """weight ``(num_embeddings, embedding_dim)``, ``N(0, 1)`` as torch."""
    return {
        "weight": ParamSpec._make((num_embeddings, embedding_dim), None, EMBEDDING_WEIGHT_INIT)
    }


# -- layers ----------------------------------------------------------------------


class Embedding(Layer):
    """Integer ids of any shape ``(*)`` (int32 or int64) -> ``(*, embedding_dim)``;
    weight ``(num_embeddings, embedding_dim)`` initialized ``N(0, 1)`` (torch's
    default). Ids outside ``[0, num_embeddings)`` are a data error of the
    backend, not a shape error (values are never inspected).

    ``padding_idx`` (negative counts from the end): that row gets no gradient
    (torch, and JAX through ``stop_gradient``), and torch zeroes it at
    initialization. Deviation: on the NumPy and JAX backends, and with
    ``rng="portable"`` on every backend, the row is drawn like the others
    (initializers fill whole arrays); zero it yourself if you rely on it.

    A bare shape tuple given to ``ls.infer`` for a model that starts with an
    Embedding means int64 ids (``input_dtype``). The output has the weight's
    dtype, the model's (float32 unless built or inferred with another
    ``dtype``).
    """

    hparam_names = ("num_embeddings", "embedding_dim", "padding_idx")
    expected_ndim = 2
    #: the dtype of the ids the layer expects (for partial shapes before any input)
    input_dtype: ClassVar[str] = "int64"

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        *,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.num_embeddings = positive_int(num_embeddings, "num_embeddings", "Embedding")
        self.embedding_dim = positive_int(embedding_dim, "embedding_dim", "Embedding")
        self.padding_idx = normalize_padding_idx(padding_idx, self.num_embeddings, "Embedding")

    def hparams(self) -> dict[str, Any]:
        hp = super().hparams()
        if hp["padding_idx"] is None:  # None is "no padding", not an unknown size
            del hp["padding_idx"]
        return hp

    def output_spec(self, x: TensorSpec) -> TensorSpec:
        return embedding_output(x, self.embedding_dim)

    def param_specs(self, x: TensorSpec) -> dict[str, ParamSpec]:
        return embedding_params(self.num_embeddings, self.embedding_dim)

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
        return ops.embedding(x, params["weight"], self.padding_idx)
