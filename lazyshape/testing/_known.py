"""Known bugs of built-in layers that the harness found, each recorded with a
narrow predicate so `check_layer` can skip the examples that hit it (and count
them as ``known:<id>``) while the bug is open.

Each issue is reproduced by a strict ``xfail`` test in ``tests/test_harness.py``:
when the bug is fixed that test starts passing, fails as XPASS, and the entry
here is to be deleted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lazyshape._layer import Layer
from lazyshape._specs import TensorSpec

__all__ = ["KnownIssue", "KNOWN_ISSUES", "known_issue"]

Specs = tuple[TensorSpec, ...]
FLOATING = ("float16", "bfloat16", "float32", "float64")


@dataclass(frozen=True)
class KnownIssue:
    """A recorded bug: ``id``, the layer kinds it affects, what goes wrong, and
    a predicate on ``(layer, input specs)`` selecting the examples that hit it."""

    id: str
    kinds: frozenset[str]
    summary: str
    applies: Callable[[Layer, Specs], bool]
    #: the backends whose forward hits it (None: the rule itself, every backend)
    backends: frozenset[str] | None = None


def _mixed_int_float(layer: Layer, specs: Specs) -> bool:
    kinds = {s.dtype in FLOATING for s in specs}
    return len(kinds) == 2


def _scalar(layer: Layer, specs: Specs) -> bool:
    return any(s.ndim == 0 for s in specs)


def _float_mismatch(layer: Layer, specs: Specs) -> bool:
    # a floating input of another dtype than the (float32) parameters
    from lazyshape._graph import Module

    if type(layer).param_specs is Layer.param_specs or isinstance(layer, Module):
        return False
    return any(s.dtype in FLOATING and s.dtype != "float32" for s in specs)


def _transpose_empty_output(layer: Layer, specs: Specs) -> bool:
    if not specs or specs[0].ndim < 3:
        return False
    lay: Any = layer
    for d, k, s, p, op, dil in zip(specs[0].shape[2:], lay.kernel_size, lay.stride, lay.padding,
                                   lay.output_padding, lay.dilation, strict=False):
        if type(d) is int and (d - 1) * s - 2 * p + dil * (k - 1) + op + 1 == 0:
            return True
    return False


def _xla_base_dilation(layer: Layer, specs: Specs) -> bool:
    # XLA:CPU aborts on a convolution with lhs (base) dilation in one dim when,
    # in some dim, the (dilated) input is smaller than the dilated kernel
    stride = getattr(layer, "stride", ())
    if not specs or specs[0].ndim < 3 or all(s == 1 for s in stride):
        return False
    lay: Any = layer
    for d, k, s, dil in zip(specs[0].shape[2:], lay.kernel_size, stride, lay.dilation,
                            strict=False):
        if type(d) is int and (d - 1) * s + 1 < dil * (k - 1) + 1:
            return True
    return False


#: layers with floating parameters (the rest take any floating input)
_PARAMETRIZED = frozenset({
    "Linear", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d",
    "ConvTranspose3d", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "InstanceNorm1d",
    "InstanceNorm2d", "InstanceNorm3d", "LayerNorm", "GroupNorm", "MultiheadAttention",
    "LSTM", "GRU",
})

KNOWN_ISSUES: list[KnownIssue] = [
    KnownIssue(
        "float-input-vs-param-dtype",
        _PARAMETRIZED,
        "a floating input whose dtype differs from the model's (float64 or float16 into a "
        "float32 model): the rules accept it and promise the input's dtype; the torch backend "
        "raises RuntimeError ('mat1 and mat2 must have the same dtype'), NumPy computes in "
        "float64, JAX (x64 off) in float32",
        _float_mismatch,
    ),
    KnownIssue(
        "merge-int-float-promotion",
        frozenset({"Add", "Multiply", "Concat"}),
        "merging an int and a float input: the rule promotes as NumPy does "
        "(int32 + float32 -> float64), torch and JAX give float32",
        _mixed_int_float,
    ),
    KnownIssue(
        "flatten-0d",
        frozenset({"Flatten"}),
        "Flatten of a 0-d input: the rule returns (1,) for any start_dim / end_dim; "
        "torch.flatten accepts a scalar only with start_dim and end_dim in {0, -1}, so the "
        "torch backend's nn.Flatten (start_dim=1 by default) raises IndexError in the forward",
        _scalar,
    ),
    KnownIssue(
        "softmax-0d",
        frozenset({"Softmax"}),
        "Softmax of a 0-d input: torch accepts dim 0 or -1, the rule rejects every dim",
        _scalar,
    ),
    KnownIssue(
        "conv-transpose-empty-output",
        frozenset({"ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d"}),
        "a transposed convolution whose output size is exactly 0 in some dim: torch returns "
        "an empty tensor ((2, 1, 0) for ConvTranspose1d(1, 1, padding=1) on (2, 1, 2)); the "
        "rule requires an output size >= 1",
        _transpose_empty_output,
    ),
    KnownIssue(
        "xla-conv-transpose-abort",
        frozenset({"ConvTranspose2d", "ConvTranspose3d"}),
        "jaxlib 0.10.2's XLA:CPU aborts the process (algebraic_simplifier.cc: 'Window "
        "dimensions do not match RHS shape') compiling the JAX backend's transposed "
        "convolution when a stride is > 1 and, in some dim, the stride-dilated input is "
        "smaller than the dilated kernel",
        _xla_base_dilation,
        backends=frozenset({"jax"}),
    ),
]


def known_issue(
    layer: Layer, specs: Specs, backend: str | None = None
) -> KnownIssue | None:
    """The known issue ``(layer, specs)`` hits, if any (built-in kinds only):
    with ``backend=None`` the issues of the rule, else those of that backend's
    forward."""
    kind = type(layer).__name__
    if not type(layer).__module__.startswith("lazyshape."):
        return None
    for issue in KNOWN_ISSUES:
        if (backend is None) != (issue.backends is None):
            continue
        if backend is not None and backend not in (issue.backends or ()):
            continue
        if kind in issue.kinds and issue.applies(layer, specs):
            return issue
    return None
