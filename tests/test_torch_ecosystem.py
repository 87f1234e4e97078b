"""A torch-built model in the ecosystem's everyday tools, against the same model
written by hand: torchinfo and torchview see the same tree (before
materialization too: they run a forward), ``torch.compile`` traces no more
graphs and graph breaks, and ``torch.export`` / dynamo's ONNX export give a
program with a dynamic batch that computes what eager does."""

from __future__ import annotations

import logging
import warnings
from collections import OrderedDict

import numpy as np
import pytest
from test_torch_backend import mlp, small_cnn, torch_mlp

import lazyshape as ls
from lazyshape import zoo

try:
    import torch
    from torch import nn
except ModuleNotFoundError as e:  # the tests skip without torch (tests/conftest.py)
    if e.name != "torch":
        raise
    torch = nn = None

pytestmark = pytest.mark.torch


if nn is not None:

    class Add(nn.Module):
        def forward(self, a, b):
            return a + b

    class Block(nn.Module):
        """`test_torch_backend.residual_block` by hand."""

        def __init__(self, width):
            super().__init__()
            self.conv = nn.Conv2d(width, width, 3, padding=1)
            self.bn = nn.BatchNorm2d(width)
            self.relu = nn.ReLU()
            self.add = Add()

        def forward(self, x):
            return self.add(self.relu(self.bn(self.conv(x))), x)


def torch_cnn():
    """`test_torch_backend.small_cnn` by hand."""
    return nn.Sequential(OrderedDict(
        stem=nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU()),
        blocks=nn.Sequential(Block(4), Block(4)),
        head=nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)),
    ))


#: the twins: lazyshape definition, hand-written torch model, input shape
TWINS = {
    "mlp": (mlp, lambda: torch_mlp(), (2, 20)),
    "residual cnn": (small_cnn, lambda: torch_cnn(), (2, 3, 8, 8)),
}

#: the hand-written classes standing for ours (a functional block)
OURS = {"Block": "Model"}


# -- torchinfo and torchview --------------------------------------------------------------


def _summary_rows(model, shape):
    import torchinfo

    s = torchinfo.summary(model, input_size=shape, verbose=0)
    rows = [
        (OURS.get(r.class_name, r.class_name), r.depth, r.var_name, r.num_params,
         tuple(r.output_size), r.macs)
        for r in s.summary_list
    ]
    return rows, s.total_mult_adds, s.total_params


def _twin_pair(twin, materialized):
    """The built model (lazy, or materialized), the hand-written one, the input shape."""
    make, make_torch, shape = TWINS[twin]
    m = ls.build(make(), "torch")
    if materialized:
        m.materialize(shape)
    return m, make_torch, shape


@pytest.mark.parametrize("materialized", [False, True], ids=["lazy", "materialized"])
@pytest.mark.parametrize("twin", sorted(TWINS))
def test_torchinfo_shows_the_hand_written_models_rows(twin, materialized):
    m, make_torch, shape = _twin_pair(twin, materialized)
    rows, mult_adds, params = _summary_rows(m, shape)
    want_rows, want_mult_adds, want_params = _summary_rows(make_torch(), shape)
    assert rows == want_rows
    assert mult_adds == want_mult_adds > 0 and params == want_params
    assert m.initialized


def _module_tree(model, shape):
    """torchview's nesting of module calls: ``[(class, depth, [children])]``."""
    import torchview
    from torchview.computation_node import ModuleNode

    graph = torchview.draw_graph(model, input_size=shape, expand_nested=True, depth=10)

    def walk(context):
        out = []
        for item in context:
            if isinstance(item, dict):
                for node, inner in item.items():
                    if isinstance(node, ModuleNode):
                        out.append((OURS.get(node.name, node.name), node.depth, walk(inner)))
        return out

    return walk(next(iter(graph.node_hierarchy.values())))


@pytest.mark.parametrize("materialized", [False, True], ids=["lazy", "materialized"])
@pytest.mark.parametrize("twin", sorted(TWINS))
def test_torchview_shows_the_hand_written_models_nesting(twin, materialized):
    m, make_torch, shape = _twin_pair(twin, materialized)
    tree = _module_tree(m, shape)
    assert tree == _module_tree(make_torch(), shape)
    assert tree[0][0] == "Sequential" and tree[0][2]  # the model, and its children inside


# -- torch.compile -------------------------------------------------------------------------


def _compiled(model, inputs, fullgraph=False):
    """``(graphs, graph breaks, outputs)`` of ``torch.compile(model)`` run on
    ``inputs``, counted by dynamo (the eager backend: the tracing is what counts)."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    compiled = torch.compile(model, backend="eager", fullgraph=fullgraph)
    with torch.no_grad():
        outs = [compiled(x) for x in inputs]
    breaks = sum(counters["graph_break"].values())
    return counters["stats"]["unique_graphs"], breaks, outs


def _batches(shape, sizes=(2, 3, 5, 8)):
    g = torch.Generator().manual_seed(0)
    return [torch.randn((b, *shape[1:]), generator=g) for b in sizes]


@pytest.mark.parametrize("twin", sorted(TWINS))
def test_compile_traces_no_more_than_the_hand_written_model(twin):
    make, make_torch, shape = TWINS[twin]
    m = ls.build(make(), "torch", seed=0).materialize(shape).eval()
    xs = _batches(shape)
    graphs, breaks, outs = _compiled(m, xs)
    want_graphs, want_breaks, _ = _compiled(make_torch().eval(), xs)
    assert (graphs, breaks) == (want_graphs, want_breaks) == (2, 0)  # static, then dynamic
    with torch.no_grad():
        for x, y in zip(xs, outs, strict=True):
            torch.testing.assert_close(y, m(x), rtol=1e-5, atol=1e-5)
    with pytest.raises(ls.ShapeError):  # the eager checks are still there
        m(torch.randn(2, shape[1] + 1, *shape[2:]))


#: zoo models at small sizes, with an input of batch ``b``
ZOO = {
    "lenet5": (zoo.lenet5, lambda b: torch.randn(b, 1, 28, 28)),
    "resnet18": (lambda: zoo.resnet18(num_classes=10), lambda b: torch.randn(b, 3, 32, 32)),
    "gpt2": (lambda: zoo.gpt2(vocab_size=64, max_len=16, num_layers=2, embed_dim=32,
                              num_heads=2, mlp_dim=64),
             lambda b: torch.randint(0, 64, (b, 8))),
    "lstm_classifier": (zoo.lstm_classifier, lambda b: torch.randn(b, 6, 12)),
}


@pytest.mark.parametrize("model", ["lenet5", "resnet18", "gpt2"])  # (dynamo doesn't trace LSTMs)
def test_compile_a_zoo_model_in_one_graph_per_shape_kind(model):
    make, sample = ZOO[model]
    m = ls.build(make(), "torch", seed=0).materialize(sample(2)).eval()
    xs = [sample(b) for b in (2, 3, 5, 8)]
    graphs, breaks, outs = _compiled(m, xs, fullgraph=True)
    assert (graphs, breaks) == (2, 0)
    with torch.no_grad():
        for x, y in zip(xs, outs, strict=True):
            torch.testing.assert_close(y, m(x), rtol=1e-5, atol=1e-5)


def test_compile_of_an_unmaterialized_model_materializes_it_first():
    m = ls.build(mlp(), "torch", seed=0)
    xs = _batches((2, 20))
    _, _, outs = _compiled(m, xs)
    assert m.initialized
    with torch.no_grad():
        for x, y in zip(xs, outs, strict=True):
            assert torch.equal(y, m(x))


def test_fx_symbolic_trace_gives_the_module_calls():
    """(Native modules only: a layer running its lazyshape ``forward``, as
    ``ls.Add`` does, branches on its inputs' dtypes, which FX can't trace.)"""
    x = ls.Input((None, 8))
    head = ls.Model(x, ls.Linear(3, name="fc")(ls.Tanh(name="tanh")(x)))
    net = ls.Sequential({"stem": ls.Sequential(ls.Linear(8), ls.ReLU()), "head": head})
    m = ls.build(net, "torch", seed=0).materialize((2, 5))
    traced = torch.fx.symbolic_trace(m)
    calls = [n.target for n in traced.graph.nodes if n.op == "call_module"]
    assert calls == ["stem.0", "stem.1", "head.tanh", "head.fc"]
    x = torch.randn(3, 5)
    assert torch.equal(traced(x), m(x))


# -- torch.export and ONNX --------------------------------------------------------------------


EXPORTED = {
    **{name: (lambda make=make: make(), lambda b, shape=shape: torch.randn(b, *shape[1:]))
       for name, (make, _, shape) in TWINS.items()},
    **ZOO,
}


#: what torch warns of when it exports its own nn.LSTM (hand-written or ours)
LSTM_EXPORT_WARNINGS = [
    "ignore:The tensor attributes self.lstm._flat_weights.*:UserWarning",
    "ignore:The .grad attribute of a Tensor that is not a leaf.*:UserWarning",
]


@pytest.mark.filterwarnings(*LSTM_EXPORT_WARNINGS)
@pytest.mark.parametrize("model", sorted(EXPORTED))
def test_export_with_a_dynamic_batch_computes_what_eager_does(model):
    make, sample = EXPORTED[model]
    m = ls.build(make(), "torch", seed=0).materialize(sample(2)).eval()
    batch = torch.export.Dim("batch")
    program = torch.export.export(m, (sample(2),), dynamic_shapes=({0: batch},))
    assert program.graph_signature.user_inputs == ("x",)
    run = program.module()
    with torch.no_grad():
        for b in (1, 3, 7):
            x = sample(b)
            torch.testing.assert_close(run(x), m(x), rtol=1e-5, atol=1e-5)


@pytest.mark.onnx
@pytest.mark.parametrize("model", ["lenet5", "resnet18", "lstm_classifier"])
def test_onnx_export_with_a_dynamic_batch_runs_in_onnxruntime(model):
    import onnxruntime

    make, sample = ZOO[model]
    m = ls.build(make(), "torch", seed=0).materialize(sample(2)).eval()
    batch = torch.export.Dim("batch")
    # the exporter's own notes (missing torchvision ops, its deprecations) are not ours
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            onnx_program = torch.onnx.export(
                m, (sample(2),), dynamo=True, dynamic_shapes=({0: batch},), verbose=False
            )
    finally:
        logging.disable(logging.NOTSET)
    session = onnxruntime.InferenceSession(onnx_program.model_proto.SerializeToString())
    name = session.get_inputs()[0].name
    with torch.no_grad():
        for b in (1, 3, 7):
            x = sample(b)
            (got,) = session.run(None, {name: x.numpy()})
            np.testing.assert_allclose(got, m(x).numpy(), rtol=1e-5, atol=1e-5)
