"""Convolutions: ``Conv1d/2d/3d`` and ``ConvTranspose1d/2d/3d``.

Example tables (ints, symbols and unknowns; every error message pinned), then
properties against external oracles: the rule's shape equals what torch's
modules and ``jax.lax`` (through ``jax.eval_shape``) produce, and the rule fails
exactly where torch fails; symbolic inference then binding equals binding then
inference; every layer on every backend agrees with the NumPy backend and with
the hand-written torch module; materialized torch modules are torch's own."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from typing import Any

import lazyshape_numpy.ops as np_ops
import numpy as np
import pytest
from _frameworks import optional
from hypothesis import assume, given
from hypothesis import strategies as st

import lazyshape as ls
from lazyshape.dims import Sym, bind_shape, format_shape
from lazyshape.layers.conv import (
    PADDING_MODES,
    Conv1d,
    Conv2d,
    Conv3d,
    ConvTranspose1d,
    ConvTranspose2d,
    ConvTranspose3d,
    conv_out_dim,
    conv_transpose_out_dim,
)

torch_ops = optional("lazyshape_torch.ops")
torch = optional("torch")
F = optional("torch.nn.functional")
nn = optional("torch.nn")
jax = optional("jax")
jnp = optional("jax.numpy")
jax_ops = optional("lazyshape_jax.ops")
lax = optional("jax.lax")

BACKENDS = [
    "numpy",
    pytest.param("torch", marks=pytest.mark.torch),
    pytest.param("jax", marks=pytest.mark.jax),
]
CONV = {1: Conv1d, 2: Conv2d, 3: Conv3d}
CONV_T = {1: ConvTranspose1d, 2: ConvTranspose2d, 3: ConvTranspose3d}
TORCH_CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d} if torch else {}
TORCH_CONV_T = (
    {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d} if torch else {}
)
SPATIAL = {1: "H", 2: "HW", 3: "DHW"}
JNP_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def out_shape(layer: ls.Layer, *shape: Any) -> str:
    """The inferred output shape of ``layer`` (at path '0'), as printed."""
    return format_shape(ls.infer(ls.Sequential(layer), *shape).output.shape)


# -- the dim formulas ---------------------------------------------------------------


def test_dim_formulas_serve_ints_and_symbols():
    assert conv_out_dim(32, 3) == 30
    assert conv_out_dim(32, 3, 2, 1) == 16
    assert conv_out_dim(7, 4, 1, (1, 2)) == 7
    assert conv_out_dim(10, 3, 3, 2, 2) == 4
    h = Sym("H")
    assert str(conv_out_dim(h, 3, 2, 1)) == "(H - 1)//2 + 1"
    assert conv_out_dim(h, 5, 1, (2, 2)) == h
    assert conv_transpose_out_dim(4, 3, 2, 1, 1) == 8
    assert conv_transpose_out_dim(5, 3, 3, 0, 0, 2) == 17
    assert str(conv_transpose_out_dim(h, 4, 2, 1)) == "2*H"


# -- example tables -----------------------------------------------------------------

SHAPE_CASES = [
    ("conv2d", lambda: Conv2d(16, 3), [(8, 3, 32, 32)], "(8, 16, 30, 30)"),
    ("conv2d_stride_pad", lambda: Conv2d(16, 3, stride=2, padding=1), [("B", 3, "H", "W")],
     "(B, 16, (H - 1)//2 + 1, (W - 1)//2 + 1)"),
    ("conv1d_same", lambda: Conv1d(4, 3, padding="same"), [("B", 2, "L")], "(B, 4, L)"),
    ("conv1d_same_even_dilated", lambda: Conv1d(4, 4, padding="same", dilation=3), [(2, 2, 1)],
     "(2, 4, 1)"),
    ("conv2d_valid_unknowns", lambda: Conv2d(4, 3, padding="valid"), [(None, 2, "H", 7)],
     "(?, 4, H - 2, 5)"),
    ("conv3d_per_dim", lambda: Conv3d(2, (1, 2, 3), stride=(1, 2, 3), padding=(0, 1, 2),
                                      dilation=(3, 2, 1)), [(1, 1, 4, 5, 6)], "(1, 2, 4, 3, 3)"),
    ("conv2d_groups", lambda: Conv2d(6, 3, groups=3), [(2, 9, 5, 5)], "(2, 6, 3, 3)"),
    ("conv2d_kernel_fills_padded_input", lambda: Conv2d(4, 3, padding=1), [(1, 2, 1, 5)],
     "(1, 4, 1, 5)"),
    ("conv2d_reflect", lambda: Conv2d(4, 3, padding=2, padding_mode="reflect"), [(1, 2, 3, 3)],
     "(1, 4, 5, 5)"),
    ("conv2d_reflect_symbolic", lambda: Conv2d(4, 3, padding=5, padding_mode="reflect"),
     [("B", 2, "H", "W")], "(B, 4, H + 8, W + 8)"),
    ("conv2d_circular_equal", lambda: Conv2d(4, 1, padding=3, padding_mode="circular"),
     [(1, 2, 3, 3)], "(1, 4, 9, 9)"),
    ("conv1d_replicate_any", lambda: Conv1d(4, 1, padding=9, padding_mode="replicate"),
     [(2, 2, 1)], "(2, 4, 19)"),
    ("conv1d_empty_batch", lambda: Conv1d(4, 3, padding=1, padding_mode="reflect"), [(0, 2, 3)],
     "(0, 4, 3)"),
    ("conv2d_symbolic_channels", lambda: Conv2d(4, 3, in_channels=3), [("B", "C", 5, 5)],
     "(B, 4, 3, 3)"),
    ("conv_transpose2d", lambda: ConvTranspose2d(8, 4, stride=2, padding=1),
     [("B", 4, "H", "W")], "(B, 8, 2*H, 2*W)"),
    ("conv_transpose1d_groups", lambda: ConvTranspose1d(4, 3, stride=3, dilation=2, groups=2),
     [(2, 6, 5)], "(2, 4, 17)"),
    ("conv_transpose1d_output_padding", lambda: ConvTranspose1d(4, 3, stride=2, padding=1,
                                                               output_padding=1), [(1, 2, 4)],
     "(1, 4, 8)"),
    ("conv_transpose3d", lambda: ConvTranspose3d(2, 2), [(1, 3, 1, 1, 1)], "(1, 2, 2, 2, 2)"),
    ("conv_transpose1d_symbolic_may_be_empty", lambda: ConvTranspose1d(4, 1, padding=1),
     [("B", 2, "L")], "(B, 4, L - 2)"),
]

ERROR_CASES = [
    ("no_batch", lambda: Conv2d(4, 3), [(3, 32, 32)],
     r"Conv2d at '0': expected an input with 4 dims \(N, C, H, W\); got input shape \(3, 32, 32\) \(3 dims\) \(is the batch dim missing\?\)"),
    ("rank", lambda: Conv1d(4, 3), [(2, 3, 4, 5)],
     r"Conv1d at '0': expected an input with 3 dims \(N, C, L\); got input shape \(2, 3, 4, 5\) \(4 dims\)$"),
    ("dtype", lambda: Conv3d(4, 1), [ls.TensorSpec((1, 2, 3, 3, 3), "int32")],
     r"Conv3d at '0': expected a floating-point input; got dtype int32"),
    ("in_channels", lambda: Conv2d(4, 3, in_channels=3), [(1, 4, 5, 5)],
     r"Conv2d at '0': expected 3 input channels \(in_channels\) in dim 1; got input shape \(1, 4, 5, 5\)"),
    ("groups", lambda: Conv2d(4, 3, groups=2), [(1, 3, 5, 5)],
     r"Conv2d at '0': input channels \(dim 1\) divisible by `groups`; got input shape \(1, 3, 5, 5\), `groups` \(=2\)"),
    ("groups_provable", lambda: Conv2d(4, 3, groups=2), [("B", "2*C + 1", 5, 5)],
     r"Conv2d at '0': input channels \(dim 1\) divisible by `groups`; got input shape \(B, 2\*C \+ 1, 5, 5\), `groups` \(=2\)"),
    ("no_channels", lambda: Conv2d(4, 3), [(1, 0, 5, 5)],
     r"Conv2d at '0': expected at least one input channel \(dim 1\); got input shape \(1, 0, 5, 5\)"),
    ("empty_spatial", lambda: Conv2d(4, 3, padding=2), [(1, 2, 0, 5)],
     r"Conv2d at '0': expected non-empty spatial dims; got input shape \(1, 2, 0, 5\) \(dim 2 is 0\)"),
    ("kernel_too_large", lambda: Conv2d(4, 3), [(1, 2, 2, 5)],
     r"Conv2d at '0': the padded input at least as large as the dilated kernel in every spatial dim \(an output size >= 1\); got padded size 2 < kernel extent 3 in dim 2 of input shape \(1, 2, 2, 5\)"),
    ("dilated_kernel_too_large", lambda: Conv1d(4, 3, dilation=3, padding=1), [("B", 2, 4)],
     r"Conv1d at '0': .*; got padded size 6 < kernel extent 7 in dim 2 of input shape \(B, 2, 4\)"),
    ("reflect", lambda: Conv2d(4, 3, padding=3, padding_mode="reflect"), [(1, 2, 3, 8)],
     r"Conv2d at '0': padding_mode='reflect' needs padding smaller than the input dim; got padding \(3, 3\) for dim 2 of input shape \(1, 2, 3, 8\)"),
    ("reflect_same", lambda: Conv1d(4, 4, padding="same", padding_mode="reflect"), [(1, 2, 2)],
     r"Conv1d at '0': padding_mode='reflect' needs padding smaller than the input dim; got padding \(1, 2\) for dim 2"),
    ("circular", lambda: Conv1d(4, 1, padding=4, padding_mode="circular"), [(1, 2, 3)],
     r"Conv1d at '0': padding_mode='circular' needs padding at most the input dim; got padding \(4, 4\) for dim 2 of input shape \(1, 2, 3\)"),
    ("transpose_output", lambda: ConvTranspose1d(4, 1, padding=1), [(1, 2, 2)],
     r"ConvTranspose1d at '0': an output size >= 1 in every spatial dim: \(d - 1\)\*stride - 2\*padding \+ dilation\*\(kernel_size - 1\) \+ output_padding \+ 1; got 0 for dim 2 of input shape \(1, 2, 2\)"),
    # torch's oneDNN kernels return (2, 1, 0, 4); its shape check raises (test_harness.py)
    ("transpose_output_zero", lambda: ConvTranspose2d(1, 1, padding=(1, 0)), [(2, 1, 2, 3)],
     r"ConvTranspose2d at '0': an output size >= 1 in every spatial dim: .*; got 0 for dim 2 of input shape \(2, 1, 2, 3\)"),
    ("transpose_output_negative", lambda: ConvTranspose1d(4, 1, padding=2), [(2, 2, 2)],
     r"ConvTranspose1d at '0': an output size >= 1 in every spatial dim: .*; got -2 for dim 2 of input shape \(2, 2, 2\)"),
    # (2 - 3)//2 + 1 = 0: torch raises "Kernel size can't be greater than actual input size"
    ("kernel_too_large_strided", lambda: Conv1d(4, 3, stride=2), [(2, 1, 2)],
     r"Conv1d at '0': the padded input at least as large as the dilated kernel in every spatial dim \(an output size >= 1\); got padded size 2 < kernel extent 3 in dim 2 of input shape \(2, 1, 2\)"),
    ("transpose_in_channels", lambda: ConvTranspose2d(4, 3, in_channels=2), [(1, 3, 4, 4)],
     r"ConvTranspose2d at '0': expected 2 input channels \(in_channels\) in dim 1; got input shape \(1, 3, 4, 4\)"),
    ("transpose_groups", lambda: ConvTranspose1d(4, 3, groups=2), [(1, 3, 5)],
     r"ConvTranspose1d at '0': input channels \(dim 1\) divisible by `groups`; got input shape \(1, 3, 5\), `groups` \(=2\)"),
    ("transpose_no_batch", lambda: ConvTranspose3d(4, 3), [(3, 4, 4, 4)],
     r"ConvTranspose3d at '0': expected an input with 5 dims \(N, C, D, H, W\); got input shape \(3, 4, 4, 4\) \(4 dims\) \(is the batch dim missing\?\)"),
]


@pytest.mark.parametrize("make, shapes, expected",
                         [c[1:] for c in SHAPE_CASES], ids=[c[0] for c in SHAPE_CASES])
def test_shape_table(make, shapes, expected):
    assert out_shape(make(), *shapes) == expected


@pytest.mark.parametrize("make, shapes, match",
                         [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES])
def test_error_table(make, shapes, match):
    with pytest.raises(ls.ShapeError, match=match):
        ls.infer(ls.Sequential(make()), *shapes)


CONSTRUCTION_ERRORS = [
    (lambda: Conv2d(0, 3), r"^Conv2d: `out_channels` to be a positive int; got `out_channels` \(=0\)$"),
    (lambda: Conv2d(4, 3, in_channels=0), r"^Conv2d: `in_channels` to be a positive int; got `in_channels` \(=0\)$"),
    (lambda: Conv2d(4, (3, 3, 3)), r"^Conv2d: `kernel_size` to be a positive int or a tuple of 2 positive ints; got `kernel_size` \(=\(3, 3, 3\)\)$"),
    (lambda: Conv1d(4, 3, dilation=(1, 1)), r"^Conv1d: `dilation` to be a positive int or a tuple of 1 positive int; got `dilation` \(=\(1, 1\)\)$"),
    (lambda: Conv2d(4, 0), r"^Conv2d: `kernel_size` to be a positive int or a tuple of 2 positive ints; got `kernel_size` \(=0\)$"),
    (lambda: Conv3d(4, 3, stride=(1, 0, 1)), r"^Conv3d: `stride` to be a positive int or a tuple of 3 positive ints; got `stride` \(=\(1, 0, 1\)\)$"),
    (lambda: Conv1d(4, 3, padding=-1), r"^Conv1d: `padding` to be a non-negative int or a tuple of 1 non-negative int; got `padding` \(=-1\)$"),
    (lambda: Conv1d(4, 3, padding="full"), r"^Conv1d: `padding` to be an int, a tuple of 1 int, 'same' or 'valid'; got `padding` \(='full'\)$"),
    (lambda: Conv2d(4, 3, stride=2, padding="same"), r"^Conv2d: `stride` of 1 with padding='same' \(torch does not support 'same' for strided convolutions\); got `stride` \(=\(2, 2\)\)$"),
    (lambda: Conv2d(4, 3, groups=0), r"^Conv2d: `groups` to be a positive int; got `groups` \(=0\)$"),
    (lambda: Conv2d(4, 3, groups=3), r"^Conv2d: `out_channels` divisible by `groups`; got `out_channels` \(=4\), `groups` \(=3\)$"),
    (lambda: Conv2d(6, 3, groups=3, in_channels=4), r"^Conv2d: `in_channels` divisible by `groups`; got `in_channels` \(=4\), `groups` \(=3\)$"),
    (lambda: Conv2d(4, 3, padding_mode="mirror"), r"^Conv2d: `padding_mode` one of 'zeros', 'reflect', 'replicate', 'circular'; got `padding_mode` \(='mirror'\)$"),
    (lambda: ConvTranspose1d(4, 3, stride=2, output_padding=2), r"^ConvTranspose1d: `output_padding` smaller than `stride` or `dilation` in every dim; got `output_padding` \(=\(2,\)\), `stride` \(=\(2,\)\), `dilation` \(=\(1,\)\)$"),
    (lambda: ConvTranspose1d(4, 3, output_padding=-1), r"^ConvTranspose1d: `output_padding` to be a non-negative int or a tuple of 1 non-negative int; got `output_padding` \(=-1\)$"),
    (lambda: ConvTranspose2d(4, 3, padding="same"), r"^ConvTranspose2d: `padding` to be an int or a tuple of 2 ints \(transposed convolutions take no padding strings\); got `padding` \(='same'\)$"),
    (lambda: ConvTranspose2d(4, 3, groups=3), r"^ConvTranspose2d: `out_channels` divisible by `groups`; got `out_channels` \(=4\), `groups` \(=3\)$"),
    (lambda: ConvTranspose3d(4, [3, 3]), r"^ConvTranspose3d: `kernel_size` to be a positive int or a tuple of 3 positive ints; got `kernel_size` \(=\(3, 3\)\)$"),
]


@pytest.mark.parametrize("make, match", CONSTRUCTION_ERRORS)
def test_bad_hyperparameters_fail_at_construction(make, match):
    with pytest.raises(ls.ShapeError, match=match):
        make()


def test_the_brief_example_and_symbolic_parameters():
    net = ls.Sequential(Conv2d(16, 3, stride=2, padding=1), Conv2d(32, 3, stride=2, padding=1))
    inf = ls.infer(net, ("B", 3, "H", "W"))
    assert [format_shape(r.outputs[0].shape) for r in inf.layers] == [
        "(B, 16, (H - 1)//2 + 1, (W - 1)//2 + 1)",
        "(B, 32, (H - 1)//4 + 1, (W - 1)//4 + 1)",
    ]
    assert {k: p.shape for k, p in inf.params.items()} == {
        "0.weight": (16, 3, 3, 3), "0.bias": (16,), "1.weight": (32, 16, 3, 3), "1.bias": (32,),
    }
    assert inf.num_params == 16 * 27 + 16 + 32 * 144 + 32
    assert inf.assumptions == ()
    # symbolic channels: the weight follows them; unproven divisibility is recorded
    inf = ls.infer(ls.Sequential(Conv2d(4, 3, groups=2)), ("B", "C", 5, 5))
    assert format_shape(inf.params["0.weight"].shape) == "(4, C//2, 3, 3)"
    assert [(p, str(a), b) for p, a, b in inf.assumptions] == [("0", "C % 2", 0)]
    assert inf.unresolved == {"0.weight": frozenset({"C"})}
    inf = ls.infer(ls.Sequential(ConvTranspose2d(4, 3, in_channels=6)), ("B", "C", "H", "W"))
    assert [(p, str(a), b) for p, a, b in inf.assumptions] == [("0", "C", 6)]
    assert inf.params["0.weight"].shape == (6, 4, 3, 3)


def test_parameter_specs_carry_torch_initialization():
    inf = ls.infer(ls.Sequential(Conv2d(6, (3, 2), groups=2)), (1, 4, 5, 5))
    w, b = inf.params["0.weight"], inf.params["0.bias"]
    assert w.shape == (6, 2, 3, 2) and b.shape == (6,)
    assert w.init == ls.init.kaiming_uniform(a=5**0.5)
    assert b.init == ls.init.fan_in_uniform(2 * 3 * 2)
    inf = ls.infer(ls.Sequential(ConvTranspose1d(8, 3, groups=2)), (1, 4, 5))
    assert inf.params["0.weight"].shape == (4, 4, 3)
    assert inf.params["0.bias"].init == ls.init.fan_in_uniform(4 * 3)  # out/groups * k
    assert "bias" not in ls.infer(Conv1d(2, 1, bias=False), (1, 1, 1)).params


def test_repr_and_describe_show_inferred_channels():
    layer = Conv2d(16, 3, padding="same")
    assert repr(layer) == (
        "Conv2d(in_channels=?, out_channels=16, kernel_size=(3, 3), stride=(1, 1), "
        "padding='same', dilation=(1, 1), groups=1, bias=True, padding_mode='zeros')"
    )
    assert layer.resolved(ls.TensorSpec((1, 3, 8, 8)))["in_channels"] == 3
    t = ConvTranspose1d(4, 2, stride=2, output_padding=1)
    assert repr(t) == (
        "ConvTranspose1d(in_channels=?, out_channels=4, kernel_size=(2,), stride=(2,), "
        "padding=(0,), output_padding=(1,), groups=1, bias=True, dilation=(1,))"
    )
    assert t.resolved(ls.TensorSpec(("B", 5, 7)))["in_channels"] == 5
    assert [c.expected_ndim for c in (Conv1d, Conv2d, Conv3d, ConvTranspose3d)] == [3, 4, 5, 5]


# -- hypothesis: the rule against torch and jax ---------------------------------------


def _ints(n: int, lo: int, hi: int) -> st.SearchStrategy[Any]:
    return st.one_of(st.integers(lo, hi), st.tuples(*[st.integers(lo, hi)] * n))


@st.composite
def conv_cases(draw: Any, transpose: bool = False) -> dict[str, Any]:
    """Hyperparameters and a small input shape; about one case in ten breaks a
    channel or ``output_padding`` constraint on purpose, and many more don't fit
    their input (kernel larger than the padded input, reflect padding too large,
    empty transposed output)."""
    n = draw(st.integers(1, 3))
    groups = draw(st.sampled_from([1, 1, 2, 3]))

    def rare() -> bool:
        return bool(draw(st.sampled_from([False] * 9 + [True])))

    def multiple_of_groups() -> int:
        if rare():
            return draw(st.integers(1, 6))
        return groups * draw(st.integers(1, 2))

    in_c, out_c = multiple_of_groups(), multiple_of_groups()
    padding = draw(st.one_of(_ints(n, 0, 2), st.sampled_from(["same", "valid"])))
    stride = 1 if padding == "same" and draw(st.integers(0, 4)) else draw(_ints(n, 1, 3))
    dilation = draw(_ints(n, 1, 2))
    hp: dict[str, Any] = {
        "out_channels": out_c,
        "kernel_size": draw(_ints(n, 1, 4)),
        "stride": stride,
        "dilation": dilation,
        "groups": groups,
    }
    if transpose:
        hp["padding"] = draw(_ints(n, 0, 1))
        s, d = (v if isinstance(v, int) else min(v) for v in (stride, dilation))
        top = 2 if rare() else max(s, d) - 1
        hp["output_padding"] = draw(_ints(n, 0, top))
    else:
        hp["padding"] = padding
        hp["padding_mode"] = draw(st.sampled_from(PADDING_MODES))
    channels = draw(st.integers(1, 6)) if rare() else in_c
    given_in = channels != in_c or draw(st.booleans())
    shape = (draw(st.integers(1, 2)), channels, *draw(st.tuples(*[st.integers(1, 7)] * n)))
    return {"n": n, "hp": hp, "in_c": in_c, "given_in": given_in, "shape": shape}


def _lazy(case: dict[str, Any], transpose: bool) -> ls.Layer:
    cls = (CONV_T if transpose else CONV)[case["n"]]
    return cls(**case["hp"], in_channels=case["in_c"] if case["given_in"] else None)


def _torch_shape(case: dict[str, Any], transpose: bool) -> tuple[int, ...] | None:
    """What the torch module produces, None where torch rejects.

    An empty output counts as rejected: torch's own kernels disagree there (a
    transposed convolution of output size 0 raises "Output size is too small"
    on the reference path and returns an empty tensor through oneDNN), and
    lazyshape requires output sizes >= 1."""
    cls = (TORCH_CONV_T if transpose else TORCH_CONV)[case["n"]]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = torch.nn.utils.skip_init(cls, case["in_c"], **case["hp"])
            with torch.no_grad():
                shape = tuple(module(torch.zeros(case["shape"])).shape)
    except (RuntimeError, ValueError):
        return None
    return shape if all(shape[2:]) else None


def _jax_shape(layer: Any, shape: tuple[int, ...], w_shape: tuple[int, ...]) -> tuple[int, ...]:
    """``jax.eval_shape`` of the ``jax.lax`` computation of ``layer``."""
    n = len(shape) - 2
    dn = ("NC" + SPATIAL[n], "OI" + SPATIAL[n], "NC" + SPATIAL[n])
    if isinstance(layer, (Conv1d, Conv2d, Conv3d)):
        def f(x: Any, w: Any) -> Any:
            if layer.padding_mode != "zeros":
                x = jnp.pad(x, [(0, 0), (0, 0), *layer._pads], mode=JNP_MODE[layer.padding_mode])
                padding: Any = "VALID"
            elif isinstance(layer.padding, str):
                padding = layer.padding.upper()  # jax's SAME splits as torch does at stride 1
            else:
                padding = [(p, p) for p in layer.padding]
            return lax.conv_general_dilated(
                x, w, layer.stride, padding, rhs_dilation=layer.dilation,
                dimension_numbers=dn, feature_group_count=layer.groups,
            )
    else:
        def f(x: Any, w: Any) -> Any:
            pads = [
                (d * (k - 1) - p, d * (k - 1) - p + op)
                for k, p, op, d in zip(layer.kernel_size, layer.padding, layer.output_padding,
                                       layer.dilation, strict=True)
            ]
            return lax.conv_transpose(x, w, layer.stride, pads, rhs_dilation=layer.dilation,
                                      dimension_numbers=dn, transpose_kernel=True)
    spec = jax.ShapeDtypeStruct
    return tuple(jax.eval_shape(f, spec(shape, jnp.float32), spec(w_shape, jnp.float32)).shape)


def _check_against_oracles(case: dict[str, Any], transpose: bool) -> None:
    torch_shape = _torch_shape(case, transpose)
    try:
        layer = _lazy(case, transpose)
        inf = ls.infer(layer, case["shape"])
    except ls.ShapeError as e:
        assert torch_shape is None, f"lazyshape rejects what torch accepts: {e}"
        return
    assert torch_shape is not None, f"torch rejects, lazyshape infers {inf.output.shape}"
    assert inf.output.shape == torch_shape
    w_shape = inf.params["weight"].shape
    if not transpose or layer.groups == 1:  # lax.conv_transpose has no feature groups
        assert _jax_shape(layer, case["shape"], w_shape) == torch_shape


@pytest.mark.torch
@pytest.mark.jax
@given(conv_cases())
def test_conv_rule_equals_torch_and_jax_and_fails_with_torch(case):
    _check_against_oracles(case, transpose=False)


@pytest.mark.torch
@pytest.mark.jax
@given(conv_cases(transpose=True))
def test_conv_transpose_rule_equals_torch_and_jax_and_fails_with_torch(case):
    _check_against_oracles(case, transpose=True)


@given(st.booleans(), st.data())
def test_symbolic_then_bind_equals_bind_then_infer(transpose, data):
    case = data.draw(conv_cases(transpose=transpose))
    try:
        layer = _lazy(case, transpose)
    except ls.ShapeError:
        assume(False)
    names = ["B", "C", *SPATIAL[case["n"]]]
    values = dict(zip(names, case["shape"], strict=True))
    try:
        concrete = ls.infer(layer, case["shape"])
    except ls.ShapeError:
        concrete = None
    try:
        symbolic = ls.infer(layer, tuple(names))
    except ls.ShapeError:
        assert concrete is None  # a symbolic failure is a failure for every value
        return
    if concrete is None:
        return  # fails for these values only: the symbolic rule could not know
    assert bind_shape(symbolic.output.shape, values) == concrete.output.shape
    assert symbolic.bind(**values).output.shape == concrete.output.shape
    assert set(symbolic.params) == set(concrete.params)
    for name, p in symbolic.params.items():
        assert bind_shape(p.shape, values) == concrete.params[name].shape
        assert bind_shape(p.shape, values) == symbolic.bind(**values).params[name].shape


# -- hypothesis: the ops against torch.nn.functional -----------------------------------


@st.composite
def op_cases(draw: Any) -> dict[str, Any]:
    n = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 2))
    k = draw(st.tuples(*[st.integers(1, 3)] * n))
    dil = draw(st.tuples(*[st.integers(1, 2)] * n))
    stride = draw(st.tuples(*[st.integers(1, 3)] * n))
    size = draw(st.tuples(*[st.integers(1, 5)] * n))
    return {
        "n": n, "groups": groups, "k": k, "dilation": dil, "stride": stride, "size": size,
        "in_c": groups * draw(st.integers(1, 2)), "out_c": groups * draw(st.integers(1, 2)),
        "pads": draw(st.tuples(*[st.tuples(st.integers(0, 2), st.integers(0, 2))] * n)),
        "padding": draw(st.tuples(*[st.integers(0, 2)] * n)),
        "output_padding": tuple(
            draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dil, strict=True)
        ),
        "bias": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**16)),
        "jax": draw(st.integers(0, 2)) == 0,
    }


def _arrays(*shapes: tuple[int, ...], seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(np.float32) for s in shapes]


def _agree(fn: str, with_jax: bool, args: list[Any], *rest: Any) -> None:
    """``fn`` of every backend on the same arrays agrees with torch's.

    JAX compiles every new shape (~0.15 s), so it joins for a third of the cases
    (every layer case below runs on JAX too); under jit, as users run it."""
    want = getattr(torch_ops, fn)(*[None if a is None else torch.from_numpy(a) for a in args],
                                  *rest).numpy()
    backends: list[tuple[Any, Any]] = [(getattr(np_ops, fn), lambda a: a)]
    if with_jax:
        static = tuple(range(len(args), len(args) + len(rest)))
        backends.append((jax.jit(getattr(jax_ops, fn), static_argnums=static), jnp.asarray))
    for op, conv in backends:
        got = np.asarray(op(*[None if a is None else conv(a) for a in args], *rest))
        assert got.shape == want.shape and got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.torch
@pytest.mark.jax
@given(op_cases())
def test_conv_op_agrees_on_every_backend(c):
    padded = [s + lo + hi for s, (lo, hi) in zip(c["size"], c["pads"], strict=True)]
    assume(all(p >= d * (k - 1) + 1 for p, d, k in zip(padded, c["dilation"], c["k"], strict=True)))
    x, w, b = _arrays((2, c["in_c"], *c["size"]), (c["out_c"], c["in_c"] // c["groups"], *c["k"]),
                      (c["out_c"],), seed=c["seed"])
    _agree("conv", c["jax"], [x, w, b if c["bias"] else None], c["stride"], c["pads"], c["dilation"],
           c["groups"])
    if all(lo == hi for lo, hi in c["pads"]):  # the torch op is F.conv itself
        got = torch_ops.conv(torch.from_numpy(x), torch.from_numpy(w), None, c["stride"],
                             c["pads"], c["dilation"], c["groups"])
        fconv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[c["n"]]
        want = fconv(torch.from_numpy(x), torch.from_numpy(w), None, c["stride"],
                     [lo for lo, _ in c["pads"]], c["dilation"], c["groups"])
        assert torch.equal(got, want)


@pytest.mark.torch
@pytest.mark.jax
@given(op_cases())
def test_conv_transpose_op_agrees_on_every_backend(c):
    out = [conv_transpose_out_dim(s, k, st_, p, op, d) for s, k, st_, p, op, d in zip(
        c["size"], c["k"], c["stride"], c["padding"], c["output_padding"], c["dilation"],
        strict=True)]
    assume(all(o >= 1 for o in out))
    x, w, b = _arrays((2, c["in_c"], *c["size"]), (c["in_c"], c["out_c"] // c["groups"], *c["k"]),
                      (c["out_c"],), seed=c["seed"])
    _agree("conv_transpose", c["jax"], [x, w, b if c["bias"] else None], c["stride"], c["padding"],
           c["output_padding"], c["dilation"], c["groups"])


#: transposed convolutions (kernel, stride, padding, output_padding, dilation, input
#: spatial size, in_channels) that made jaxlib 0.10's XLA:CPU abort the process
#: when the JAX op used the convolution's lhs (base) dilation
XLA_ABORT_CASES = [
    ((3, 2), (1, 2), (1, 1), (0, 0), (1, 1), (2, 3), 1),
    ((2, 3), (2, 3), (1, 2), (0, 1), (1, 2), (3, 1), 1),
    ((2, 2), (2, 2), (1, 1), (0, 1), (1, 1), (3, 1), 2),
    ((2, 3, 2), (2, 1, 2), (1, 1, 1), (0, 0, 0), (1, 1, 1), (3, 2, 3), 1),
    ((3, 2, 2), (1, 2, 2), (1, 1, 1), (0, 0, 0), (1, 1, 1), (2, 3, 3), 1),
    ((3, 3, 2), (1, 1, 2), (1, 1, 1), (0, 0, 0), (1, 1, 1), (2, 2, 3), 1),
]

_XLA_ABORT_CHECK = """
import json, sys
import jax, jax.numpy as jnp, numpy as np, torch
import lazyshape_jax.ops as J
import torch.nn.functional as F

FT = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
rng = np.random.default_rng(0)
for k, s, p, op, d, size, c in json.loads(sys.argv[1]):
    k, s, p, op, d = map(tuple, (k, s, p, op, d))
    x = rng.standard_normal((2, c, *size)).astype(np.float32)
    w = rng.standard_normal((c, 2, *k)).astype(np.float32)
    b = rng.standard_normal(2).astype(np.float32)
    xt, wt = torch.from_numpy(x).requires_grad_(), torch.from_numpy(w).requires_grad_()
    want = FT[len(k)](xt, wt, torch.from_numpy(b), s, p, op, 1, d)
    want.square().sum().backward()

    def f(x, w):
        return J.conv_transpose(x, w, jnp.asarray(b), s, p, op, d, 1)

    got = jax.jit(f)(x, w)
    np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-5, atol=1e-5)
    gx, gw = jax.jit(jax.grad(lambda x, w: jnp.sum(f(x, w) ** 2), (0, 1)))(x, w)
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(gw, wt.grad.numpy(), rtol=1e-4, atol=1e-4)
    per_sample = jax.jit(jax.vmap(lambda x: f(x[None], w)[0]))(x)
    np.testing.assert_allclose(per_sample, got, rtol=1e-5, atol=1e-5)
print("checked", len(json.loads(sys.argv[1])))
"""


#: decoder-like shapes (a strided input well over the kernel): the fast
#: base-dilated convolution, which XLA compiles fine there
FAST_PATH_CASES = [
    ((4, 4), (2, 2), (1, 1), (0, 0), (1, 1), (8, 8), 3),
    ((3,), (2,), (1,), (1,), (1,), (16,), 2),
    ((4, 4, 4), (2, 2, 2), (1, 1, 1), (0, 0, 0), (1, 1, 1), (5, 5, 5), 2),
]


@pytest.mark.jax
def test_jax_conv_transpose_takes_the_safe_path_exactly_for_small_strided_inputs():
    from lazyshape_jax.conv import _may_abort

    for k, s, _, _, d, size, _ in XLA_ABORT_CASES:
        assert _may_abort(size, k, s, d)
    for k, s, _, _, d, size, _ in FAST_PATH_CASES:
        assert not _may_abort(size, k, s, d)
    assert not _may_abort((2, 2), (3, 3), (1, 1), (1, 1))  # stride 1: no base dilation


@pytest.mark.torch
@pytest.mark.jax
def test_jax_conv_transpose_where_xla_aborted_agrees_with_torch():
    # in a subprocess: a regression aborts the interpreter
    cases = XLA_ABORT_CASES + FAST_PATH_CASES
    proc = subprocess.run([sys.executable, "-c", _XLA_ABORT_CHECK, json.dumps(cases)],
                          capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr.decode()[-600:]
    assert proc.stdout.decode().split() == ["checked", str(len(cases))]


@pytest.mark.torch
@pytest.mark.jax
@given(st.sampled_from(["constant", "reflect", "replicate", "circular"]), op_cases())
def test_pad_op_agrees_on_every_backend(mode, c):
    limit = {"reflect": -1, "circular": 0}.get(mode)
    if limit is not None:  # torch's limits, which the rule enforces before any pad
        assume(all(max(p) <= s + limit for p, s in zip(c["pads"], c["size"], strict=True)))
    (x,) = _arrays((2, c["in_c"], *c["size"]), seed=c["seed"])
    _agree("pad", c["jax"], [x], c["pads"], mode)


@pytest.mark.torch
@pytest.mark.jax
def test_pad_rejects_unknown_modes_and_crops_with_negative_zero_padding():
    x = np.arange(10, dtype=np.float32).reshape(1, 1, 10)
    for mod, arr in [(np_ops, x), (torch_ops, torch.from_numpy(x)), (jax_ops, jnp.asarray(x))]:
        with pytest.raises(ValueError, match=r"pad mode must be one of \['circular', 'constant', 'reflect', 'replicate'\], got 'edge'"):
            mod.pad(arr, ((1, 1),), "edge")
    w = np.ones((1, 1, 1), np.float32)
    for mod, arr, ww in [(np_ops, x, w), (torch_ops, torch.from_numpy(x), torch.from_numpy(w)),
                         (jax_ops, jnp.asarray(x), jnp.asarray(w))]:
        y = np.asarray(mod.conv(arr, ww, None, (1,), ((-2, 1),), (1,), 1))
        np.testing.assert_array_equal(y, [[[2, 3, 4, 5, 6, 7, 8, 9, 0]]])


# -- every layer on every backend ---------------------------------------------------------


def _same_warning(case_id: str) -> Any:
    # torch warns that an asymmetric 'same' copies the input (its own native module does too)
    return pytest.mark.filterwarnings("ignore:Using padding='same'") if "same" in case_id else ()


LAYER_CASES = {
    "conv1d": (lambda: Conv1d(4, 3), (2, 3, 9), lambda: nn.Conv1d(3, 4, 3)),
    "conv1d_same_even_kernel": (lambda: Conv1d(5, 4, padding="same", dilation=3), (2, 2, 9),
                                lambda: nn.Conv1d(2, 5, 4, padding="same", dilation=3)),
    "conv2d_strided_no_bias": (
        lambda: Conv2d(6, (3, 2), stride=(2, 1), padding=(1, 0), bias=False), (2, 3, 7, 6),
        lambda: nn.Conv2d(3, 6, (3, 2), stride=(2, 1), padding=(1, 0), bias=False)),
    "conv2d_groups_dilation": (
        lambda: Conv2d(6, 3, dilation=(2, 1), groups=3, padding=2), (2, 3, 7, 6),
        lambda: nn.Conv2d(3, 6, 3, dilation=(2, 1), groups=3, padding=2)),
    "conv2d_reflect": (lambda: Conv2d(4, 3, padding=(2, 1), padding_mode="reflect"), (2, 3, 5, 4),
                       lambda: nn.Conv2d(3, 4, 3, padding=(2, 1), padding_mode="reflect")),
    "conv2d_replicate_same": (
        lambda: Conv2d(4, (2, 3), padding="same", padding_mode="replicate"), (1, 2, 5, 4),
        lambda: nn.Conv2d(2, 4, (2, 3), padding="same", padding_mode="replicate")),
    "conv2d_valid": (lambda: Conv2d(4, 3, padding="valid", in_channels=2), (1, 2, 5, 4),
                     lambda: nn.Conv2d(2, 4, 3, padding="valid")),
    "conv3d_circular": (
        lambda: Conv3d(4, 2, stride=(1, 2, 1), padding=1, padding_mode="circular"),
        (1, 2, 3, 4, 5),
        lambda: nn.Conv3d(2, 4, 2, stride=(1, 2, 1), padding=1, padding_mode="circular")),
    "conv3d_groups": (lambda: Conv3d(4, (1, 2, 3), groups=2, padding=(1, 0, 1)), (2, 4, 3, 3, 4),
                      lambda: nn.Conv3d(4, 4, (1, 2, 3), groups=2, padding=(1, 0, 1))),
    "conv_transpose1d": (
        lambda: ConvTranspose1d(4, 3, stride=3, padding=1, output_padding=2, dilation=2),
        (2, 3, 5),
        lambda: nn.ConvTranspose1d(3, 4, 3, stride=3, padding=1, output_padding=2, dilation=2)),
    "conv_transpose2d_groups": (
        lambda: ConvTranspose2d(6, (3, 2), stride=2, padding=(1, 0), output_padding=1, groups=3,
                                bias=False),
        (2, 6, 4, 3),
        lambda: nn.ConvTranspose2d(6, 6, (3, 2), stride=2, padding=(1, 0), output_padding=1,
                                   groups=3, bias=False)),
    "conv_transpose3d": (
        lambda: ConvTranspose3d(2, 2, stride=(2, 1, 1), dilation=(1, 2, 1)), (1, 3, 2, 3, 2),
        lambda: nn.ConvTranspose3d(3, 2, 2, stride=(2, 1, 1), dilation=(1, 2, 1))),
}
CASE_PARAMS = [pytest.param(k, marks=_same_warning(k)) for k in sorted(LAYER_CASES)]


def _to_torch(state: dict[str, Any]) -> dict[str, Any]:
    return {k: torch.from_numpy(np.asarray(v)) for k, v in state.items()}


@pytest.mark.torch  # the hand-written torch module is the reference on every backend
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CASE_PARAMS)
def test_every_layer_on_every_backend(backend, case):
    make, shape, make_torch = LAYER_CASES[case]
    (x,) = _arrays(shape, seed=3)
    inferred = ls.infer(ls.Sequential(make()), shape)
    m = ls.build(ls.Sequential(make()), backend, rng="portable", seed=5)
    y = ls.to_numpy(m(ls.asarray(x, backend)))
    assert y.shape == inferred.output.shape
    assert str(y.dtype) == "float32"
    ref = ls.build(ls.Sequential(make()), "numpy", rng="portable", seed=5)
    expected = ref(x)
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)
    state = {k: ls.to_numpy(v) for k, v in m.state_dict().items()}
    assert list(state) == list(inferred.params)
    for name, value in ref.state_dict().items():
        np.testing.assert_array_equal(state[name], value)
    # the hand-written torch module, given the same weights, computes the same
    hand = nn.Sequential(make_torch())
    hand.load_state_dict(_to_torch(ref.state_dict()))
    with torch.no_grad():
        want = hand(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)


@pytest.mark.torch
@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("case", CASE_PARAMS)
def test_native_torch_module_is_the_hand_written_one(case, seed):
    make, shape, make_torch = LAYER_CASES[case]
    torch.manual_seed(seed)
    m = ls.build(ls.Sequential(make()), "torch").materialize(shape)
    after = torch.rand(2)
    torch.manual_seed(seed)
    hand = nn.Sequential(make_torch())
    assert torch.equal(torch.rand(2), after)  # the global RNG consumed as torch does
    assert type(m[0]) is type(hand[0])
    assert repr(m[0]) == repr(hand[0])
    sm, sh = m.state_dict(), hand.state_dict()
    assert list(sm) == list(sh)
    for k in sm:
        assert torch.equal(sm[k], sh[k]), k
    x = torch.randn(shape)
    with torch.no_grad():
        assert torch.equal(m(x), hand(x))


@pytest.mark.torch
def test_native_torch_module_from_a_checkpoint_with_symbolic_channels():
    net = ls.Sequential(Conv2d(8, 3, groups=2), ConvTranspose2d(4, 2, stride=2, groups=2))
    source = ls.build(net, "numpy", seed=0).materialize((1, 6, 8, 8))
    m = ls.build(net, "torch")
    m.load_state_dict(source.state_dict())
    assert type(m[0]) is nn.Conv2d and m[0].in_channels == 6 and m[0].groups == 2
    assert type(m[1]) is nn.ConvTranspose2d and m[1].out_channels == 4
    (x,) = _arrays((1, 6, 8, 8), seed=1)
    with torch.no_grad():
        y = m(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(y, source(x), rtol=1e-4, atol=1e-4)


@pytest.mark.jax
def test_jax_apply_jits_differentiates_and_vmaps():
    net = ls.Sequential(Conv2d(4, 3, padding=1, padding_mode="reflect", groups=2),
                        ConvTranspose2d(2, 3, stride=2, output_padding=1))
    m = ls.build(net, "jax")
    (x,) = _arrays((2, 2, 5, 6), seed=2)
    params = m.init(jax.random.key(0), x.shape)
    y = jax.jit(m.apply)(params, x)
    assert y.shape == ls.infer(net, x.shape).output.shape == (2, 2, 12, 14)
    ref = ls.build(net, "numpy")
    ref.load_state_dict({f"{k}.{n}": np.asarray(v) for k, d in params["params"].items() for n, v in d.items()})
    np.testing.assert_allclose(y, ref(x), rtol=1e-4, atol=1e-4)
    grads = jax.jit(jax.grad(lambda p: jnp.sum(m.apply(p, x) ** 2)))(params)
    assert jax.tree.map(jnp.shape, grads) == jax.tree.map(jnp.shape, params)
    assert all(bool(jnp.all(jnp.isfinite(g))) and bool(jnp.any(g != 0)) for g in jax.tree.leaves(grads))
    xs = np.stack([x, 2 * x, -x])
    ys = jax.jit(jax.vmap(lambda v: m.apply(params, v)))(xs)
    np.testing.assert_allclose(ys[2], ref(-x), rtol=1e-4, atol=1e-4)
