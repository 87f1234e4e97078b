"""External oracles no one here wrote: ONNX shape inference on one-node (or
few-node) models per op kind, symbolic ``dim_param``\\ s included, and the
torch / JAX functionals on fixed examples. Every kind ONNX cannot infer is
listed, with the reason, in docs/testing.md."""

from __future__ import annotations

from pathlib import Path

import pytest

import lazyshape as ls
from lazyshape import testing as lt
from lazyshape.dims import format_dim
from lazyshape.testing._entries.pool import CEIL_MODE
from lazyshape.testing._onnx import BUILDERS, UNSUPPORTED, onnx_infer

ROOT = Path(__file__).resolve().parents[1]
S = ls.TensorSpec

# (layer factory, input specs, ONNX op written): symbols become dim_params
ONNX_TABLE = [
    (lambda: ls.Linear(7), [S(("B", 5))], "Gemm"),
    (lambda: ls.Linear(7, bias=False), [S(("B", "T", 5))], "MatMul"),
    (lambda: ls.Linear(7), [S(("B", "T", "D"))], "MatMul + Add"),
    (lambda: ls.Conv2d(8, 3, stride=2, padding=1), [S(("B", 3, 9, 9))], "Conv"),
    (lambda: ls.Conv1d(4, 3, padding="same", dilation=2), [S(("B", 2, 10))], "Conv"),
    (lambda: ls.Conv2d(4, 3, padding=1, padding_mode="reflect"), [S((2, 2, 5, 5))], "Pad + Conv"),
    (lambda: ls.Conv3d(6, (1, 2, 3), groups=2), [S((1, 4, 3, 4, 5))], "Conv"),
    (lambda: ls.ConvTranspose2d(4, 3, stride=2, padding=1, output_padding=1),
     [S(("B", 2, 5, 5))], "ConvTranspose"),
    (lambda: ls.ConvTranspose1d(2, 4, stride=3, dilation=2), [S((1, 3, 4))], "ConvTranspose"),
    (lambda: ls.MaxPool2d(3, 2, 1), [S(("B", 3, 10, 11))], "MaxPool"),
    (lambda: ls.MaxPool1d(2, dilation=2), [S((2, 3, 9))], "MaxPool"),
    (lambda: ls.AvgPool2d(2, count_include_pad=False, padding=1), [S(("B", 1, 5, 6))],
     "AveragePool"),
    (lambda: ls.AvgPool3d(2), [S((1, 1, 4, 4, 4))], "AveragePool"),
    (lambda: ls.AdaptiveAvgPool2d(1), [S(("B", 8, 7, 7))], "GlobalAveragePool"),
    (lambda: ls.Flatten(), [S(("B", 3, 4, 5))], "Flatten"),
    (lambda: ls.Flatten(0, 1), [S((2, 3, 4))], "Reshape"),
    (lambda: ls.Unflatten(1, (2, -1)), [S((3, 8, 5))], "Reshape"),
    (lambda: ls.Reshape(4, -1), [S(("B", 8, 3))], "Reshape"),
    (lambda: ls.Concat(dim=1), [S(("B", 3, "H")), S(("B", 5, "H"))], "Concat"),
    (lambda: ls.Add(), [S(("B", 1, 4)), S((3, 1))], "Add"),
    (lambda: ls.Multiply(), [S(("B", 4)), S(("B", 4)), S((4,))], "Mul"),
    (lambda: ls.BatchNorm2d(), [S(("B", 3, "H", "W"))], "BatchNormalization"),
    (lambda: ls.InstanceNorm1d(affine=True), [S(("B", 3, "L"))], "InstanceNormalization"),
    (lambda: ls.LayerNorm(2), [S(("B", "T", 4, 5))], "LayerNormalization"),
    (lambda: ls.Embedding(10, 4), [S(("B", "T"), "int64")], "Gather"),
    (lambda: ls.ReLU(), [S(("B", 3))], "Relu"),
    (lambda: ls.GELU("tanh"), [S(("B", 3))], "Gelu"),
    (lambda: ls.SiLU(), [S(("B", 3))], "Sigmoid + Mul"),
    (lambda: ls.Softmax(1), [S(("B", 3, 2))], "Softmax"),
    (lambda: ls.LSTM(6, num_layers=2, bidirectional=True, return_state=True),
     [S(("B", "T", 3))], "LSTM x2"),
    (lambda: ls.GRU(5, batch_first=False), [S(("T", "B", 3))], "GRU"),
]


def _compare(ours, theirs):
    """Dims ONNX inferred: ints equal ours, dim_params equal our symbolic dims' text."""
    compared = 0
    for a, b in zip(ours.shape, theirs, strict=True):
        if b is None:
            continue
        compared += 1
        assert (a == b) if isinstance(b, int) else (format_dim(a) == b), (ours, theirs)
    return compared


@pytest.mark.onnx
@pytest.mark.parametrize(("make", "specs", "op"), ONNX_TABLE, ids=[r[2] for r in ONNX_TABLE])
def test_onnx_shape_inference_agrees(make, specs, op):
    layer = make()
    ours = ls.infer(layer, *specs, batch_dim=None).outputs
    theirs = onnx_infer(layer, specs)
    assert len(ours) == len(theirs)
    compared = sum(_compare(o, dims) for o, (dims, _) in zip(ours, theirs, strict=True))
    assert compared == sum(o.ndim for o in ours), f"ONNX left dims unknown: {theirs}"


@pytest.mark.onnx
def test_onnx_keeps_symbolic_dims_through_ops():
    """Where ONNX carries a dim_param through an op, ours is the same symbol."""
    cases = [
        (ls.Conv2d(8, 3), [S(("B", 3, 9, 9))], 0),
        (ls.Linear(4), [S(("N", "T", 6))], 1),
        (ls.Concat(dim=2), [S(("B", "C", 2)), S(("B", "C", 3))], 1),
        (ls.LSTM(3, batch_first=False), [S(("T", "B", 2))], 0),
    ]
    for layer, specs, axis in cases:
        (dims, _), *_ = onnx_infer(layer, specs)
        assert isinstance(dims[axis], str)
        assert format_dim(ls.infer(layer, *specs, batch_dim=None).outputs[0].shape[axis]) == dims[axis]


@pytest.mark.onnx
def test_onnx_cannot_infer_group_normalization():
    """GroupNormalization is an ONNX function op: shape inference leaves its
    output unknown (listed in docs/testing.md). When ONNX learns it, this
    fails: move GroupNorm to the table above."""
    (dims, _), = onnx_infer(ls.GroupNorm(2), [S((2, 4, 3))])
    assert dims is None


@pytest.mark.onnx
def test_onnx_pool_ceil_mode_differs_from_torch():
    """ONNX's ceil_mode keeps a last window starting in the padding; torch drops it."""
    layer = ls.MaxPool1d(2, 2, 1, ceil_mode=True)
    assert ls.infer(layer, (1, 1, 1)).output.shape == (1, 1, 1)
    with pytest.raises(lt.NotApplicable, match="ceil_mode"):
        onnx_infer(layer, [S((1, 1, 1))])
    assert "ceil_mode" in CEIL_MODE


def test_every_kind_without_onnx_is_documented():
    doc = (ROOT / "docs" / "testing.md").read_text()
    kinds = set(lt.kinds())
    without = {k for k in kinds if k not in BUILDERS} | set(UNSUPPORTED)
    assert without, "expected some kinds ONNX cannot infer"
    for kind in sorted(without):
        assert kind in doc, f"docs/testing.md does not list {kind} among the ops ONNX cannot infer"
    assert "GroupNorm" in doc and "ceil_mode" in doc


@pytest.mark.torch
@pytest.mark.jax
@pytest.mark.onnx
@pytest.mark.parametrize("kind", lt.kinds())
def test_framework_oracles_agree_on_a_valid_example(kind):
    """The oracles of each kind, on the simplest valid input its strategy draws."""
    from hypothesis import find

    entry = lt.entries()[kind]
    layer = find(entry.layers, lambda _: True)
    specs = find(entry.inputs(layer), lambda _: True)
    ours = ls.infer(layer, *specs, batch_dim=None).outputs
    for oracle in entry.oracles:
        try:
            got = oracle.fn(layer, specs)
        except lt.NotApplicable:
            continue
        assert [tuple(s) for s, _ in got] == [o.shape for o in ours], oracle.name
