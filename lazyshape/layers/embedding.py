"""``Embedding``: a lookup table of ``num_embeddings`` vectors of size ``embedding_dim``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .. import ops
from .._layer import Layer
from .._specs import ParamSpec, TensorSpec
from ..rules._common import model_dtype, positive_int
from ..rules.embedding import embedding_output, embedding_params, normalize_padding_idx

__all__ = ["Embedding"]


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

    def output_spec(self, x: TensorSpec) -> TensorSpec:  # type: ignore[override]
        return embedding_output(x, self.embedding_dim, model_dtype())

    def param_specs(self, x: TensorSpec) -> dict[str, ParamSpec]:  # type: ignore[override]
        return embedding_params(self.num_embeddings, self.embedding_dim)

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:  # type: ignore[override]
        return ops.embedding(x, params["weight"], self.padding_idx)
