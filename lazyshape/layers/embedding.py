"""``Embedding``: a lookup table of ``num_embeddings`` vectors of size ``embedding_dim``.

Integer ids ``(*)`` -> vectors ``(*, embedding_dim)``. The module holds the
rules (pure functions of specs and hyperparameters), then the layer class.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from .. import ops
from .._cost import KEEPS_NOTHING, Saved
from .._dims import eq, format_shape
from .._errors import ShapeError
from .._init import Initializer, normal, zeros
from .._layer import Layer
from .._specs import ParamSpec, TensorSpec
from ._common import assume_equal, positive_int

__all__ = [
    "Embedding",
    "LearnedTensor",
    "learned_tensor_shape",
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


# -- a learned tensor --------------------------------------------------------------


def _learned_shape(shape: object) -> tuple[int | str, ...]:
    raw = tuple(shape) if isinstance(shape, (tuple, list)) else (shape,)
    ok = raw and all(
        type(d) is int and d >= 1 or isinstance(d, str) and d.isidentifier() for d in raw
    )
    if not ok:
        raise ShapeError(
            "`shape` of positive ints and names (the sizes taken from the input)",
            f"`shape` (={shape!r})",
            kind="LearnedTensor",
        )
    return raw


def learned_tensor_shape(x: TensorSpec, shape: tuple[int | str, ...]) -> tuple[Any, ...]:
    """``shape`` with each named entry replaced by the input's size at the same
    place counted from the right (``(1, 1, "D")`` on ``(B, N, 768)`` gives
    ``(1, 1, 768)``); one name stands for one size."""
    n = len(shape)
    xs = x.shape
    off = len(xs) - n  # input dim of shape[i]: off + i
    out: list[Any] = []
    bound: dict[str, Any] = {}
    for i, d in enumerate(shape):
        if not isinstance(d, str):
            out.append(d)
            continue
        if off + i < 0:  # (the first name: later ones sit further right)
            raise ShapeError(
                f"an input with at least {n - i} dims to take the named sizes of `shape` "
                f"(={shape!r}) from, aligned at the right",
                f"input shape {format_shape(xs)}",
            )
        size = xs[off + i]
        if d in bound:
            same = eq(bound[d], size)
            if same is False:
                raise ShapeError(
                    f"the sizes named {d!r} in `shape` (={shape!r}) to be equal",
                    f"input shape {format_shape(xs)}",
                )
            if same is None:
                assume_equal(bound[d], size)
        bound[d] = size
        out.append(size)
    return tuple(out)


class LearnedTensor(Layer):
    """A learned tensor used as a value in a model: ViT's class token and
    position embedding, a learned query, torch's ``nn.Parameter`` attribute.

    Called on a reference input ``x`` (only its shape is read), it returns its
    one parameter, of ``shape``: positive ints, and names for the sizes taken
    from ``x``, counted from the right (``LearnedTensor((1, 1, "D"))`` on
    ``(B, N, 768)`` is ``(1, 1, 768)``). With ``batch=True`` the first dim (of
    size 1) is broadcast to ``x``'s batch, as torch's ``expand``:
    ``(B, 1, 768)``. The parameter is initialized by ``init`` (default zeros)
    and is named by the layer's path (``class_token``, not
    ``class_token.weight``), as an ``nn.Parameter`` attribute is in torch."""

    hparam_names = ("shape", "batch")
    bare_param = True
    dtype_rule = "model"

    def __init__(
        self,
        shape: Any,
        init: Initializer | None = None,
        *,
        batch: bool = False,
        name: str | None = None,
    ) -> None:
        super().__init__(name=name)
        self.shape = _learned_shape(shape)
        self.init = init if init is not None else zeros()
        self.batch = bool(batch)
        if self.batch and self.shape[0] != 1:
            raise ShapeError(
                "a first size of 1 with `batch=True` (it is broadcast to the input's batch)",
                f"`shape` (={self.shape!r})",
                kind="LearnedTensor",
            )

    def saved(self, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]) -> Saved:
        return KEEPS_NOTHING

    def output_spec(self, x: TensorSpec) -> TensorSpec:
        shape = learned_tensor_shape(x, self.shape)
        if self.batch:
            if x.ndim == 0:
                raise ShapeError("an input with a batch dim (N, ...) for `batch=True`",
                                 "input shape ()")
            shape = (x.shape[0], *shape[1:])
        return TensorSpec._make(shape, None)  # (normalized dims: the input's, and ints)

    def param_specs(self, x: TensorSpec) -> dict[str, ParamSpec]:
        return {"": ParamSpec._make(learned_tensor_shape(x, self.shape), None, self.init)}

    def forward(self, params: Mapping[str, Any], x: Any) -> Any:
        value = params[""]
        if self.batch:
            return ops.broadcast_to(value, (x.shape[0], *value.shape[1:]))
        return value

    def resolved(self, *inputs: TensorSpec) -> dict[str, Any]:
        hp = self.hparams()
        if inputs:
            hp["shape"] = learned_tensor_shape(inputs[0], self.shape)
        return hp
