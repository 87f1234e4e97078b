"""What a layer's forward costs in arithmetic, counted as PyTorch's
``torch.utils.flop_counter.FlopCounterMode`` counts it.

The convention: only matrix products, convolutions and attention's two
products count, at 2 FLOPs per multiply-add (``(M, K) @ (K, N)`` is
``2*M*N*K``); bias additions, activations, normalizations, pooling and other
elementwise work count 0. A layer declares its products (`Layer.costs`) next
to its shape rule, as `Cost` terms; the propagation record sums them, with
symbolic sizes as expressions.

The backward count is FlopCounterMode's too: a product's backward computes one
gradient per factor that needs one, each as costly as the product itself for
a matrix product (a convolution's weight gradient counts ``groups`` times its
forward, as FlopCounterMode counts ``convolution_backward``). A factor needs a
gradient when it is a trainable parameter, or a value that depends on one: an
input of the layer that does (the model's own inputs do not), or a value the
layer computed from its parameters (`INTERNAL`).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

from ._dims import Dim, prod
from ._specs import TensorSpec, itemsize

__all__ = ["Cost", "Operand", "INTERNAL", "Saved", "matmul_cost", "nbytes", "KEEPS_NOTHING",
           "KEEPS_OUTPUT"]

#: a factor of a product: an input of the layer (its index), one of its
#: parameters (its local name, ``"weight"``), or `INTERNAL`
Operand = int | str | None

#: a factor the layer computed from its parameters (attention's projected
#: queries, a recurrent hidden state): it needs a gradient whenever the layer
#: has a trainable parameter or an input that needs one
INTERNAL: Operand = None


class Cost(NamedTuple):
    """One product in a layer's forward.

    - ``flops``: its forward FLOPs (2 per multiply-add), an int or an
      expression in the input symbols;
    - ``grads``: ``((factor, flops), ...)``: for each factor, the FLOPs of its
      gradient, counted only when that factor needs one (see the module).
    """

    flops: Dim
    grads: tuple[tuple[Operand, Dim], ...] = ()


@functools.lru_cache(maxsize=1024)
def matmul_cost(m: Dim, n: Dim, k: Dim, a: Operand, b: Operand, batch: Dim = 1) -> Cost:
    """``batch`` products ``(m, k) @ (k, n)`` of the factors ``a`` and ``b``:
    ``2*batch*m*n*k`` FLOPs forward, the same again for each factor's gradient.

    (A pure, bounded memo of an immutable value, as the dim algebra's: the
    same product, layer after layer or model after model, is one lookup.)"""
    flops = prod((2, batch, m, n, k))
    return Cost(flops, ((a, flops), (b, flops)))


class Saved(NamedTuple):
    """What the backward of a layer keeps from its forward (`Layer.saved`).

    - ``inputs``, ``outputs``: indices of the inputs and outputs it keeps;
    - ``extra``: bytes of what else it keeps (an int or an expression):
      a max pooling's indices, a dropout's mask, attention's projected heads.
    """

    inputs: tuple[int, ...] = ()
    outputs: tuple[int, ...] = ()
    extra: Dim = 0


#: the backward keeps nothing (a sum, a concatenation, a view)
KEEPS_NOTHING = Saved()
#: the backward keeps the output only (ReLU, sigmoid, tanh, softmax)
KEEPS_OUTPUT = Saved((), (0,))


def nbytes(spec: TensorSpec, dtype: str | None = None) -> Dim:
    """Bytes of a tensor of ``spec``'s shape, in ``dtype`` (default its own)."""
    return shape_bytes(spec.shape, dtype or spec.dtype or "float32")


@functools.lru_cache(maxsize=4096)
def shape_bytes(shape: tuple[Dim, ...], dtype: str) -> Dim:
    """Bytes of a tensor of ``shape`` and ``dtype`` (a pure, bounded memo, as the
    dim algebra's: the tensors of one model, or of the next, repeat their
    shapes)."""
    return prod(shape) * itemsize(dtype)
