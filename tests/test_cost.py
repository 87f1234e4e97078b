"""FLOPs from the rules against PyTorch's own count.

lazyshape's `flops` and `flops_backward` follow
``torch.utils.flop_counter.FlopCounterMode``; here the two are compared number
for number on the torch build of every built-in layer kind (drawn by the
harness's own strategies) and of the zoo. The torch build runs on the meta
device, where torch decomposes attention and LSTMs into the matrix products
FlopCounterMode counts (its CPU kernels for those two are fused ops it does not
count at all). Symbolic counts bound to the same sizes must give the same
numbers.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import lazyshape as ls
from lazyshape import zoo
from lazyshape._dims import bind
from lazyshape._specs import FLOATING, TensorSpec
from lazyshape.testing._registry import entries

torch = pytest.importorskip("torch")
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

pytestmark = pytest.mark.torch


def _leaves(y: Any) -> list[Any]:
    if isinstance(y, (tuple, list)):
        return [t for part in y for t in _leaves(part)]
    return [y]


def torch_count(model: ls.Layer, specs: tuple[TensorSpec, ...]) -> tuple[int, int]:
    """(forward, backward) FLOPs FlopCounterMode counts for a forward and
    backward of the torch build of ``model`` on inputs of ``specs`` (meta
    device; evaluation mode, which changes no product: dropout and running
    statistics are elementwise work)."""
    m = ls.build(model, "torch", device="meta")
    m.eval()
    xs = [torch.empty(s.shape, dtype=getattr(torch, s.dtype), device="meta") for s in specs]
    with FlopCounterMode(display=False) as counter, warnings.catch_warnings():
        # torch's note on an even "same" kernel (a padded copy) is not a count
        warnings.filterwarnings("ignore", message="Using padding='same'")
        y = m(*xs)
    forward = counter.get_total_flops()
    outs = [t for t in _leaves(y) if t.is_floating_point() and t.requires_grad]
    if not outs:
        return forward, 0
    with FlopCounterMode(display=False) as counter:
        sum(t.sum() for t in outs).backward()
    return forward, counter.get_total_flops()


def _symbolic(specs: tuple[TensorSpec, ...]) -> tuple[tuple[TensorSpec, ...], dict[str, int]]:
    """The specs with every dim of size > 1 a symbol of its own, and their values."""
    values: dict[str, int] = {}
    out = []
    for i, s in enumerate(specs):
        shape: list[Any] = []
        for k, d in enumerate(s.shape):
            if d > 1:
                name = f"d{i}_{k}"
                values[name] = d
                shape.append(name)
            else:
                shape.append(d)
        out.append(TensorSpec(tuple(shape), s.dtype))
    return tuple(out), values


KINDS = sorted((e for e in entries().values()
                if e.layer_type.__module__.startswith("lazyshape.")), key=lambda e: e.kind)


@pytest.mark.parametrize("entry", KINDS, ids=lambda e: e.kind)
@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_every_builtin_kind_counts_as_flop_counter_mode(entry: Any, data: Any) -> None:
    layer = data.draw(entry.layers, label="layer")
    specs = data.draw(entry.inputs(layer), label="inputs")
    assume(all(s.dtype == "float32" or s.dtype not in FLOATING for s in specs))
    assume(all(type(d) is int for s in specs for d in s.shape))
    assume(all(0 not in s.shape for s in specs))  # (an empty tensor runs no kernel)
    try:
        inf = ls.infer(layer, *specs)
    except ls.ShapeError:
        assume(False)
    forward, backward = torch_count(layer, specs)
    assert (inf.flops, inf.flops_backward) == (forward, backward), inf.layers[0].kind
    assert inf.macs * 2 == inf.flops

    # the symbolic count, bound to the same sizes, is the same number
    symbolic, values = _symbolic(specs)
    try:
        sym = ls.infer(layer, *symbolic, batch_dim=None)
    except ls.ShapeError:
        return  # a rule that needs concrete sizes here (a resample scale): nothing to bind
    assert bind(sym.flops, values) == forward
    assert bind(sym.flops_backward, values) == backward


ATTENTION_CASES = {
    "self, batch first": (dict(num_heads=4, batch_first=True), [(2, 5, 16)]),
    "self, sequence first": (dict(num_heads=2, batch_first=False), [(5, 3, 8)]),
    "cross, packed, with a mask": (
        dict(num_heads=2, batch_first=True),
        [(2, 5, 8), (2, 7, 8), (2, 7, 8), ((2, 7), "bool")]),
    "cross, own key and value sizes": (
        dict(num_heads=2, embed_dim=8, kdim=6, vdim=10, batch_first=True),
        [(2, 5, 8), (2, 7, 6), (2, 7, 10)]),
    "cross, sequence first, own sizes": (
        dict(num_heads=4, embed_dim=8, kdim=12, vdim=4, batch_first=False),
        [(5, 2, 8), (3, 2, 12), (3, 2, 4)]),
}


@pytest.mark.parametrize("case", sorted(ATTENTION_CASES))
def test_every_attention_layout_counts_as_flop_counter_mode(case: str) -> None:
    """Each of MultiheadAttention's layouts (self and cross attention, packed
    or separate projections, batch or sequence first), concrete and symbolic."""
    kwargs, shapes = ATTENTION_CASES[case]
    specs = tuple(TensorSpec(*s) if isinstance(s[1], str) else TensorSpec(s) for s in shapes)
    layer = ls.MultiheadAttention(**kwargs)
    inf = ls.infer(layer, *specs)
    assert (inf.flops, inf.flops_backward) == torch_count(layer, specs)
    symbolic, values = _symbolic(specs)
    sym = ls.infer(ls.MultiheadAttention(**kwargs), *symbolic, batch_dim=None)
    assert (bind(sym.flops, values), bind(sym.flops_backward, values)) == (
        inf.flops, inf.flops_backward)


def test_a_conv_counts_like_torch_by_hand() -> None:
    """A worked example that does not lean on torch: 2 * N * C_out * H_out *
    W_out * C_in/groups * kh * kw."""
    conv = ls.Conv2d(8, 3, stride=2, groups=2)
    inf = ls.infer(conv, (4, 6, 9, 9))  # out (4, 8, 4, 4)
    assert inf.flops == 2 * 4 * 8 * 4 * 4 * (6 // 2) * 3 * 3
    # the model's input needs no gradient: only the weight's, counted groups times
    assert inf.flops_backward == 2 * inf.flops


def test_the_first_layer_computes_no_input_gradient() -> None:
    mlp = ls.Sequential(ls.Linear(32), ls.ReLU(), ls.Linear(10))
    inf = ls.infer(mlp, (8, 16))
    first, second = 2 * 8 * 16 * 32, 2 * 8 * 32 * 10
    assert inf.flops == first + second
    assert [r.flops for r in inf.layers] == [first, 0, second]
    assert [r.flops_backward for r in inf.layers] == [first, 0, 2 * second]
    assert inf.flops_backward == first + 2 * second


def test_symbolic_flops_are_expressions_of_the_input() -> None:
    inf = ls.infer(zoo.gpt2(num_layers=2), ("B", "T"))
    values = {"B": 3, "T": 17}
    concrete = ls.infer(zoo.gpt2(num_layers=2), (3, 17))
    assert str(inf.flops) != str(concrete.flops)
    assert bind(inf.flops, values) == concrete.flops
    assert bind(inf.flops_backward, values) == concrete.flops_backward
    assert inf.bind(**values).flops == concrete.flops


ZOO = [
    ("resnet18", lambda: zoo.resnet18(), (2, 3, 64, 64)),
    ("resnet50", lambda: zoo.resnet50(), (1, 3, 64, 64)),
    ("mobilenet_v2", lambda: zoo.mobilenet_v2(), (2, 3, 64, 64)),
    ("efficientnet_b0", lambda: zoo.efficientnet_b0(), (1, 3, 64, 64)),
    ("convnext_tiny", lambda: zoo.convnext_tiny(), (1, 3, 64, 64)),
    ("vit", lambda: zoo.vit(patch_size=8, num_layers=2, num_heads=4, hidden_dim=64,
                            mlp_dim=128), (2, 3, 32, 32)),
    ("gpt2", lambda: zoo.gpt2(num_layers=2), (2, 16)),
    ("bert", lambda: zoo.bert({"num_hidden_layers": 2, "hidden_size": 64,
                               "num_attention_heads": 4, "intermediate_size": 128,
                               "vocab_size": 100}), (2, 16)),
    ("llama", lambda: zoo.llama({"hidden_size": 64, "num_hidden_layers": 2,
                                 "num_attention_heads": 4, "num_key_value_heads": 2,
                                 "intermediate_size": 128, "vocab_size": 100,
                                 "tie_word_embeddings": True}), (2, 16)),
    ("lenet5", lambda: zoo.lenet5(), (2, 1, 28, 28)),
    ("lstm_classifier", lambda: zoo.lstm_classifier(), (2, 12, 8)),
]


@pytest.mark.parametrize("name,factory,shape", ZOO, ids=[z[0] for z in ZOO])
def test_every_zoo_model_counts_as_flop_counter_mode(name: str, factory: Any, shape: Any
                                                     ) -> None:
    model = factory()
    inf = ls.infer(model, shape)
    forward, backward = torch_count(model, inf.inputs)
    assert forward > 0
    assert (inf.flops, inf.flops_backward) == (forward, backward)


@pytest.mark.jax
@pytest.mark.parametrize("name,model,shape", [
    ("mlp", lambda: ls.Sequential(ls.Linear(32, bias=False), ls.Linear(10, bias=False)), (8, 16)),
    ("conv", lambda: ls.Sequential(ls.Conv2d(8, 3, bias=False)), (2, 3, 16, 16)),
    ("grouped-strided-conv", lambda: ls.Sequential(ls.Conv2d(8, 3, stride=2, groups=2,
                                                             bias=False)), (2, 4, 16, 16)),
    ("conv-then-linear", lambda: ls.Sequential(ls.Conv2d(4, 3, bias=False), ls.Flatten(),
                                               ls.Linear(5, bias=False)), (3, 2, 9, 9)),
])
def test_xla_counts_the_same_products(name: str, model: Any, shape: Any) -> None:
    """XLA's cost analysis counts a dot or a convolution as FlopCounterMode does;
    these models have nothing else (no bias, no activation)."""
    jax = pytest.importorskip("jax")
    net = model()
    m = ls.build(net, "jax")
    x = jax.numpy.ones(shape)
    variables = m.init(jax.random.key(0), x)
    cost = jax.jit(m.apply).lower(variables, x).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    assert ls.infer(net, shape).flops == int(cost["flops"])


@pytest.mark.jax
def test_xla_also_counts_elementwise_work() -> None:
    """The documented difference: a bias and a ReLU add one FLOP per element
    each in XLA's count, none in FlopCounterMode's."""
    jax = pytest.importorskip("jax")
    net = ls.Sequential(ls.Linear(32), ls.ReLU())
    m = ls.build(net, "jax")
    x = jax.numpy.ones((8, 16))
    cost = jax.jit(m.apply).lower(m.init(jax.random.key(0), x), x).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    assert int(cost["flops"]) == ls.infer(net, (8, 16)).flops + 2 * 8 * 32
