"""The torch backend: a built model is a real ``torch.nn.Module`` whose native
initialization, state_dict keys and forward are those of the hand-written torch
model, with lazyshape's resolution, checks and checkpoints."""

from __future__ import annotations

import copy
import pickle
import subprocess
import sys

import numpy as np
import pytest

import lazyshape as ls
from lazyshape import zoo

try:
    import torch
    from torch import nn
    from torch.nn.parameter import UninitializedParameter
except ModuleNotFoundError as e:  # the tests skip without torch (tests/conftest.py)
    if e.name != "torch":
        raise
    torch = nn = UninitializedParameter = None

pytestmark = pytest.mark.torch


def mlp() -> ls.Sequential:
    return ls.Sequential(ls.Linear(256), ls.ReLU(), ls.Linear(10))


def torch_mlp() -> nn.Sequential:
    return nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 10))


def assert_same_state(a, b) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


class CustomLinear(ls.Layer):
    """API.md's custom layer."""

    def __init__(self, out_features):
        super().__init__()
        self.out_features = out_features

    def output_spec(self, x):
        return ls.TensorSpec((*x.shape[:-1], self.out_features), x.dtype)

    def param_specs(self, x):
        return {
            "weight": ls.ParamSpec(
                (self.out_features, x.shape[-1]),
                init=ls.init.kaiming_uniform(a=0, mode="fan_in", nonlinearity="relu"),
            ),
            "bias": ls.ParamSpec((self.out_features,), init=ls.init.zeros()),
        }

    def forward(self, params, x):
        return ls.ops.matmul(x, ls.ops.permute_dims(params["weight"], (1, 0))) + params["bias"]


# -- the package ----------------------------------------------------------------


def test_backend_is_installed_and_import_is_lazy():
    assert "torch" in ls.backends()
    code = "import sys, lazyshape_torch; assert 'torch' not in sys.modules; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"


# -- native initialization --------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 7, 1234])
def test_native_init_is_bit_identical_to_the_hand_written_model(seed):
    torch.manual_seed(seed)
    m = ls.build(mlp(), "torch")
    m(torch.zeros(2, 20))
    torch.manual_seed(seed)
    h = torch_mlp()
    assert_same_state(m, h)
    # and the global RNG was consumed exactly as the hand-written model does
    assert torch.equal(torch.rand(3), (torch.manual_seed(seed), torch_mlp(), torch.rand(3))[2])


def test_nested_sequential_keys_equal_nested_nn_sequential():
    net = ls.Sequential(ls.Sequential(ls.Linear(8), ls.Tanh()), ls.Linear(3))
    torch.manual_seed(3)
    m = ls.build(net, "torch").materialize((4, 5))
    torch.manual_seed(3)
    h = nn.Sequential(nn.Sequential(nn.Linear(5, 8), nn.Tanh()), nn.Linear(8, 3))
    assert_same_state(m, h)
    assert type(m[0][0]) is nn.Linear
    x = torch.randn(4, 5)
    assert torch.equal(m(x), h(x))


@pytest.mark.parametrize("seed", [0, 5])
def test_seed_matches_manual_seed_and_leaves_the_global_rng_alone(seed):
    torch.manual_seed(99)
    before = torch.get_rng_state()
    m = ls.build(mlp(), "torch", seed=seed)
    m(torch.zeros(2, 20))
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(seed)
    assert_same_state(m, torch_mlp())


def test_custom_layer_draws_with_torch_init_in_the_global_rng():
    torch.manual_seed(4)
    m = ls.build(ls.Sequential(CustomLinear(6)), "torch").materialize((2, 3))
    torch.manual_seed(4)
    w = torch.empty(6, 3)
    nn.init.kaiming_uniform_(w, a=0, mode="fan_in", nonlinearity="relu")
    assert torch.equal(m[0].weight, w)
    assert torch.equal(m[0].bias, torch.zeros(6))
    assert isinstance(m[0].weight, nn.Parameter)


def test_dtype_and_device_are_honoured():
    m = ls.build(mlp(), "torch", dtype="float64", device="cpu")
    y = m(torch.zeros(2, 20, dtype=torch.float64))
    assert y.dtype == torch.float64
    assert all(p.dtype == torch.float64 and p.device.type == "cpu" for p in m.parameters())
    torch.manual_seed(2)
    m = ls.build(mlp(), "torch", dtype="float64").materialize((2, 20))
    torch.manual_seed(2)
    h = nn.Sequential(
        nn.Linear(20, 256, dtype=torch.float64), nn.ReLU(), nn.Linear(256, 10, dtype=torch.float64)
    )
    assert_same_state(m, h)


# -- before and after materialization --------------------------------------------


def test_placeholders_before_materialization():
    m = ls.build(mlp(), "torch")
    assert isinstance(m, nn.Module)
    assert not m.initialized
    state = m.state_dict()
    assert list(state) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert all(type(v) is UninitializedParameter for v in state.values())
    text = repr(m)
    assert "Linear(in_features=?, out_features=256, bias=True)" in text
    assert "Linear(in_features=256, out_features=10, bias=True)" in text
    assert repr(m[0].partial_shapes) == "{'weight': (256, ?), 'bias': (256,)}"
    assert repr(state["0.weight"].partial_shape) == "(256, ?)"
    with pytest.raises(RuntimeError, match=r"Linear at '0' is not materialized"):
        m[0](torch.zeros(2, 20))


def test_after_materialization_children_are_native_modules():
    m = ls.build(mlp(), "torch").materialize((2, 20))
    assert m.initialized
    assert isinstance(m, nn.Module)
    assert type(m[0]) is nn.Linear and type(m[1]) is nn.ReLU and type(m[2]) is nn.Linear
    assert m[-1] is m[2] and m["0"] is m[0]
    assert len(m) == 3 and [type(c) for c in m] == [nn.Linear, nn.ReLU, nn.Linear]
    # its ReLU overwrites the Linear's output, which nothing else reads (as
    # torchvision's models run theirs)
    assert repr(m) == repr(nn.Sequential(nn.Linear(20, 256), nn.ReLU(inplace=True),
                                         nn.Linear(256, 10)))
    assert (m[0].in_features, m[0].out_features) == (20, 256)


def _relu_inplace(model, *shape):
    m = ls.build(model, "torch", seed=0)
    x = torch.randn(*shape)
    before = x.clone()
    y = m(x)
    assert torch.equal(x, before)  # the caller's input is never overwritten
    return m, y


def test_an_activation_runs_in_place_only_where_nothing_else_sees_its_input():
    m, _ = _relu_inplace(ls.Sequential(ls.Linear(4), ls.ReLU()), 2, 3)
    assert m[1].inplace  # after a Linear, read by the ReLU alone
    m, _ = _relu_inplace(ls.Sequential(ls.ReLU(), ls.Linear(4)), 2, 3)
    assert not m[0].inplace  # the model's input
    m, _ = _relu_inplace(ls.Sequential(ls.Linear(4), ls.Sigmoid(), ls.ReLU()), 2, 3)
    assert not m[2].inplace  # sigmoid's backward reads its output
    m, _ = _relu_inplace(ls.Sequential(ls.Linear(4), ls.SiLU()), 2, 3)
    assert m[1].inplace  # SiLU too, with the out-of-place gradient
    x0 = torch.randn(2, 3)
    grads = []
    for inplace in (True, False):
        m[1].inplace = inplace
        m.zero_grad()
        m(x0).square().sum().backward()
        grads.append(m[0].weight.grad.clone())
    assert torch.equal(*grads)
    x = ls.Input((None, 3))
    h = ls.Linear(4, name="fc")(x)
    a = ls.ReLU(name="relu")(h)
    twice = ls.Model(x, ls.Add(name="add")(a, h))  # the Linear's output read twice
    m, y = _relu_inplace(twice, 2, 3)
    assert not m.relu.inplace
    fc = m.fc(torch.ones(2, 3))
    torch.testing.assert_close(m(torch.ones(2, 3)), torch.relu(fc) + fc)
    m, y = _relu_inplace(ls.Model(x, ls.ReLU()(h)), 2, 3)  # a model output
    assert m(torch.ones(2, 3)).min() >= 0
    # an add sums into its first input on the same terms
    g = ls.Linear(4, name="g")(x)
    m, _ = _relu_inplace(ls.Model(x, ls.Add(name="add")(h, g)), 2, 3)
    assert m.add.inplace
    torch.testing.assert_close(m(torch.ones(2, 3)), m.fc(torch.ones(2, 3)) + m.g(torch.ones(2, 3)))
    m, _ = _relu_inplace(ls.Model(x, ls.Add(name="add")(h, h)), 2, 3)  # h read twice
    assert not m.add.inplace
    torch.testing.assert_close(m(torch.ones(2, 3)), 2 * m.fc(torch.ones(2, 3)))


def test_in_place_activations_train_as_torchvisions():
    """ResNet-18's shared ReLU runs in place at all three calls of a block, as in
    torchvision: the same loss and the same gradients, bit for bit."""
    from _reference import torchvision_models

    torch.manual_seed(0)
    ref = torchvision_models().resnet18()
    m = ls.build(zoo.resnet18(), "torch")
    m.load_state_dict(ref.state_dict())
    assert m.layer1[0].relu.inplace and m.relu.inplace and m.layer1[0].add.inplace
    x = torch.randn(2, 3, 64, 64)
    ref(x).square().mean().backward()
    m(x).square().mean().backward()
    grads = dict(ref.named_parameters())
    for name, p in m.named_parameters():
        assert torch.equal(p.grad, grads[name].grad), name


def test_an_add_after_stochastic_depth_or_a_product_runs_in_place():
    """A dropout / stochastic depth / identity passes its input's producer on (the
    tensor itself in evaluation; in training a fresh one whose backward reads
    only its mask); a product is a fresh tensor: an add into either runs in
    place, with the out-of-place gradients."""
    x = ls.Input((None, 3))
    h = ls.Linear(3, name="fc")(x)
    for passer in (ls.DropPath(0.5, "row", name="drop"), ls.Dropout(0.5, name="drop"),
                   ls.Identity(name="drop")):
        m, _ = _relu_inplace(ls.Model(x, ls.Add(name="add")(passer(h), x)), 4, 3)
        assert m.add.inplace, passer.kind
    m, _ = _relu_inplace(ls.Model(x, ls.Add(name="add")(ls.DropPath(0.5, "row")(x), h)), 4, 3)
    assert not m.add.inplace  # passes the model's input on
    twice = ls.Model(x, ls.Add(name="add")(ls.DropPath(0.5, "row", name="drop")(h), h))
    m, _ = _relu_inplace(twice, 4, 3)
    assert not m.add.inplace  # the Linear's output read twice (by the add too)
    g = ls.Linear(3, name="g")(x)
    scaled = ls.Model(x, ls.Add(name="add")(ls.Multiply(name="mul")(h, g), x))
    for model in (scaled, ls.Model(x, ls.Add(name="add")(
            ls.DropPath(0.5, "row", name="drop")(h), x))):
        m = ls.build(model, "torch", seed=0).train()
        x0 = torch.randn(8, 3)
        m(x0)
        assert m.add.inplace
        grads = []
        for inplace in (True, False):
            m.add.inplace = inplace
            m.zero_grad()
            torch.manual_seed(1)  # the same drop mask
            m(x0).square().sum().backward()
            grads.append([p.grad.clone() for p in m.parameters()])
        for a, b in zip(*grads, strict=True):
            assert torch.equal(a, b)


def test_efficientnet_trains_as_torchvisions():
    """EfficientNet-B0 adds into its stochastic depth's output in place and runs
    its SiLUs in place, as torchvision's does: the same gradients in training
    (stochastic depth and dropout drawing the same masks), bit for bit."""
    from _reference import torchvision_models

    torch.manual_seed(0)
    ref = torchvision_models().efficientnet_b0()
    m = ls.build(zoo.efficientnet_b0(), "torch")
    m.load_state_dict(ref.state_dict())
    assert m.features[2][1].add.inplace
    x = torch.randn(4, 3, 64, 64)
    losses = []
    for model in (ref, m):
        torch.manual_seed(1)
        loss = model(x).square().mean()
        loss.backward()
        losses.append(loss)
    assert torch.equal(*losses)
    grads = dict(ref.named_parameters())
    for name, p in m.named_parameters():
        assert torch.equal(p.grad, grads[name].grad), name


def _aten_ops(model, x):
    """The aten ops (with their arguments' shapes and strides) a no-grad forward runs."""
    from torch.utils._python_dispatch import TorchDispatchMode

    def describe(a):
        if isinstance(a, torch.Tensor):
            return (tuple(a.shape), a.stride(), a.dtype)
        if isinstance(a, (list, tuple)):
            return tuple(describe(b) for b in a)
        return a

    class Record(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops.append((str(func), describe(args), describe(sorted((kwargs or {}).items()))))
            return func(*args, **(kwargs or {}))

    with torch.no_grad(), Record() as rec:
        out = model(x)
    return rec.ops, out


@pytest.mark.parametrize("name", ["resnet50", "efficientnet_b0", "mobilenet_v2",
                                  "convnext_tiny"])
def test_a_zoo_forward_runs_torchvisions_aten_ops(name):
    """The built model's forward is torchvision's, op for op: the same aten ops on
    the same shapes and strides, in the same order (in-place where torchvision
    is), and the same output bit for bit."""
    from _reference import torchvision_models

    torch.manual_seed(0)
    ref = getattr(torchvision_models(), name)().eval()
    m = ls.build(getattr(zoo, name)(), "torch")
    m.load_state_dict(ref.state_dict())
    m.eval()
    x = torch.randn(2, 3, 64, 64)
    ours, y = _aten_ops(m, x)
    theirs, y_ref = _aten_ops(ref, x)
    assert ours == theirs
    assert torch.equal(y, y_ref)


def test_a_container_lets_go_of_what_no_later_call_reads():
    """A functional container frees an intermediate after its last reader, as
    hand-written code reassigning its locals does, not when it returns."""
    import weakref

    x = ls.Input((None, 3))
    h = ls.Linear(4, name="fc1")(x)
    h = ls.Linear(4, name="fc2")(h)
    m = ls.build(ls.Model(x, ls.Add(name="add")(ls.Linear(3, name="fc3")(h), x)), "torch",
                 seed=0).materialize((2, 3))
    seen = {}
    m.fc1.register_forward_hook(lambda mod, args, out: seen.update(fc1=weakref.ref(out)))
    m.fc3.register_forward_pre_hook(
        lambda mod, args: seen.update(alive=seen["fc1"]() is not None))
    with torch.no_grad():
        y = m(torch.randn(2, 3))
    assert seen["alive"] is False  # fc2 was its last reader
    assert y.shape == (2, 3)


def test_materialize_from_symbolic_spec_needs_concrete_parameter_dims():
    m = ls.build(mlp(), "torch")
    m.materialize(("B", 20))
    assert m.initialized and m[0].weight.shape == (256, 20)
    m2 = ls.build(mlp(), "torch")
    with pytest.raises(
        ls.ShapeError,
        match=r"concrete parameter shapes to materialize; "
        r"got `0\.weight` of shape \(256, F\) needs F",
    ):
        m2.materialize(("B", "F"))
    assert not m2.initialized


def test_sgd_trains_the_materialized_model():
    torch.manual_seed(0)
    x = torch.randn(64, 20)
    y = x @ torch.randn(20, 10)
    m = ls.build(mlp(), "torch", seed=0).materialize(x)
    opt = torch.optim.SGD(m.parameters(), lr=0.05)
    losses = []
    for _ in range(20):
        opt.zero_grad()
        loss = nn.functional.mse_loss(m(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


OPTIMIZERS = {
    "SGD": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9),
    "Adam": lambda ps: torch.optim.Adam(ps, lr=0.01),
    "AdamW": lambda ps: torch.optim.AdamW(ps, lr=0.01),
    "RMSprop": lambda ps: torch.optim.RMSprop(ps, lr=0.01),
    "NAdam": lambda ps: torch.optim.NAdam(ps, lr=0.01),
    "RAdam": lambda ps: torch.optim.RAdam(ps, lr=0.01),
    "Adamax": lambda ps: torch.optim.Adamax(ps, lr=0.01),
    "Adadelta": lambda ps: torch.optim.Adadelta(ps, lr=1.0),
    "Rprop": lambda ps: torch.optim.Rprop(ps, lr=0.01),
    "ASGD": lambda ps: torch.optim.ASGD(ps, lr=0.05),
}


def trainable() -> ls.Sequential:
    """Native modules, a buffer-holding BatchNorm and a custom layer."""
    return ls.Sequential(ls.Linear(16), ls.BatchNorm1d(), ls.ReLU(), CustomLinear(3))


def _losses(opt_before: bool, make_opt, steps: int = 8) -> list[float]:
    torch.manual_seed(0)
    x = torch.randn(32, 5)
    t = x @ torch.randn(5, 3)
    m = ls.build(trainable(), "torch", seed=0)
    opt = make_opt(m.parameters()) if opt_before else None
    losses = []
    for _ in range(steps):
        loss = nn.functional.mse_loss(m(x), t)
        if opt is None:
            opt = make_opt(m.parameters())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_built_before_the_first_forward_trains_as_one_built_after(name):
    before = _losses(True, OPTIMIZERS[name])
    after = _losses(False, OPTIMIZERS[name])
    assert before == after  # step for step, bit for bit
    assert len(set(before)) == len(before)  # and it does learn: every step moves


def test_placeholders_handed_out_before_materialization_are_the_tensors_after():
    m = ls.build(trainable(), "torch", seed=0)
    params = list(m.parameters())
    named_buffers = dict(m.named_buffers())
    kept = m.state_dict(keep_vars=True)
    assert all(isinstance(p, UninitializedParameter) for p in params)
    m(torch.randn(4, 5))
    assert [id(p) for p in m.parameters()] == [id(p) for p in params]
    assert all(type(p) is nn.Parameter and p.shape.numel() > 0 for p in params)
    assert type(m[0]) is nn.Linear and m[0].weight is params[0]
    assert set(dict(m.named_buffers())) == set(named_buffers)
    for name, b in m.named_buffers():
        assert b is named_buffers[name], name
    assert m[1].num_batches_tracked.item() == 1  # the held buffer is the one updated
    after = m.state_dict(keep_vars=True)
    assert list(after) == list(kept)
    for name, v in after.items():
        assert v is kept[name], name


MOVES = {
    "half": (lambda m: m.half(), torch.float16),
    "double": (lambda m: m.double(), torch.float64),
    "to float64": (lambda m: m.to(torch.float64), torch.float64),
    "bfloat16": (lambda m: m.to(dtype=torch.bfloat16), torch.bfloat16),
} if torch else dict.fromkeys(["half", "double", "to float64", "bfloat16"])


@pytest.mark.parametrize("move", sorted(MOVES))
def test_a_move_before_materialization_is_honoured(move):
    apply, dtype = MOVES[move]
    m = ls.build(mlp(), "torch")
    assert apply(m) is m
    torch.manual_seed(3)
    x = torch.randn(4, 20).to(dtype)
    torch.manual_seed(2)
    y = m(x)
    # the hand-written lazy model, moved the same way: it materializes in `dtype`
    h = apply(nn.Sequential(nn.LazyLinear(256), nn.ReLU(), nn.LazyLinear(10)))
    torch.manual_seed(2)
    want = h(x)
    assert all(p.dtype == dtype for p in m.parameters())
    assert y.dtype == dtype
    assert_same_state(m, h)
    assert torch.equal(y, want)


def test_a_move_to_meta_before_materialization_is_honoured():
    m = ls.build(ls.Sequential(ls.Linear(8), ls.BatchNorm1d(), ls.Linear(2)), "torch").to("meta")
    y = m(torch.empty(4, 5, device="meta"))
    assert y.device.type == "meta" and y.shape == (4, 2)
    assert all(t.device.type == "meta" for t in [*m.parameters(), *m.buffers()])
    assert m[0].weight.shape == (8, 5) and m.initialized


def test_a_partial_move_before_materialization_is_refused():
    m = ls.build(mlp(), "torch")
    m[0].half()
    with pytest.raises(ValueError, match=r"moved to different dtypes or devices"):
        m(torch.randn(2, 20))
    assert not m.initialized


@pytest.mark.parametrize("move", sorted(MOVES))
def test_a_move_after_materialization_is_followed(move):
    """The model's dtype follows its parameters, as the hand-written model's does:
    inputs of the new dtype run, and the old dtype is a ShapeError before any
    computation (the hand-written model fails inside torch)."""
    apply, dtype = MOVES[move]
    torch.manual_seed(2)
    m = ls.build(mlp(), "torch").materialize((4, 20))
    torch.manual_seed(2)
    h = torch_mlp()
    assert apply(m) is m
    apply(h)
    x = torch.randn(4, 20).to(dtype)
    y = m(x)
    assert y.dtype == dtype and all(p.dtype == dtype for p in m.parameters())
    assert torch.equal(y, h(x))
    before = {k: v.clone() for k, v in m.state_dict().items()}
    name = str(dtype).removeprefix("torch.")
    with pytest.raises(ls.ShapeError, match=rf"Linear at '0': .*parameters' dtype {name}"):
        m(torch.randn(4, 20, dtype=torch.float32))
    for k, v in m.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert torch.equal(m(x), y)


def test_a_reinitialization_after_a_move_makes_the_moved_dtype():
    m = ls.build(mlp(), "torch", on_shape_change="reinit").materialize((2, 20)).double()
    y = m(torch.randn(2, 30, dtype=torch.float64))
    assert y.dtype == torch.float64 and m[0].weight.shape == (256, 30)
    assert all(p.dtype == torch.float64 for p in m.parameters())


def test_a_batch_norm_moved_after_materialization_keeps_its_integer_counter():
    net = ls.Sequential(ls.Linear(8), ls.BatchNorm1d(), ls.Linear(2))
    torch.manual_seed(1)
    m = ls.build(net, "torch").materialize((4, 5)).double()
    torch.manual_seed(1)
    h = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.Linear(8, 2)).double()
    x = torch.randn(4, 5, dtype=torch.float64)
    assert torch.equal(m(x), h(x))  # (training: the running statistics move too)
    assert m[1].num_batches_tracked.dtype == torch.int64 and m[1].num_batches_tracked == 1
    assert_same_state(m, h)


def test_a_state_assigned_after_materialization_sets_the_dtype_and_device():
    m = ls.build(mlp(), "torch").to("meta").materialize((2, 20))  # no memory yet
    state = {k: v.double() for k, v in torch_mlp().state_dict().items()}
    m.load_state_dict(state, assign=True)
    assert all(p.dtype == torch.float64 and p.device.type == "cpu" for p in m.parameters())
    x = torch.randn(3, 20, dtype=torch.float64)
    assert torch.equal(m(x), torch.func.functional_call(torch_mlp().double(), state, (x,)))
    with pytest.raises(ls.ShapeError, match=r"parameters' dtype float64"):
        m(x.float())


def test_meta_then_to_empty_after_materialization_as_the_hand_written_model():
    m = ls.build(mlp(), "torch").materialize((2, 20))
    h = torch_mlp()
    for model in (m, h):
        model.to("meta")
    y = m(torch.empty(3, 20, device="meta"))
    assert y.device.type == "meta" and y.shape == (3, 10)
    for model in (m, h):
        assert model.to_empty(device="cpu") is model
    assert [(n, p.shape, p.device.type) for n, p in m.named_parameters()] == [
        (n, p.shape, p.device.type) for n, p in h.named_parameters()
    ]
    values = torch_mlp().state_dict()  # (to_empty leaves the memory uninitialized)
    for model in (m, h):
        model.load_state_dict(values)
    x = torch.randn(3, 20)
    assert torch.equal(m(x), h(x))


def test_custom_layer_trains_through_autograd():
    m = ls.build(ls.Sequential(CustomLinear(4)), "torch", seed=0)
    x = torch.randn(8, 3)
    m(x).sum().backward()
    assert m[0].weight.grad is not None and m[0].weight.grad.shape == (4, 3)
    assert repr(m) == "Sequential(\n  (0): CustomLinear(out_features=4)\n)"


# -- every layer: output shape equals ls.infer's ---------------------------------


LAYERS = [
    (lambda: ls.Linear(7), (3, 5)),
    (lambda: ls.Linear(7, bias=False), (2, 4, 5)),
    (ls.Identity, (3, 5)),
    (lambda: ls.Dropout(0.3), (3, 5)),
    (ls.Flatten, (2, 3, 4, 5)),
    (lambda: ls.Flatten(0, 1), (2, 3, 4)),
    (lambda: ls.Unflatten(1, (3, -1)), (2, 12)),
    (lambda: ls.Reshape(4, -1), (2, 8, 3)),
    (ls.ReLU, (3, 5)),
    (ls.GELU, (3, 5)),
    (lambda: ls.GELU("tanh"), (3, 5)),
    (ls.Tanh, (3, 5)),
    (ls.Sigmoid, (3, 5)),
    (ls.SiLU, (3, 5)),
    (lambda: ls.LeakyReLU(0.2), (3, 5)),
    (lambda: ls.Softmax(0), (3, 5)),
    (lambda: CustomLinear(6), (3, 5)),
]


@pytest.mark.parametrize(("factory", "shape"), LAYERS)
def test_output_shape_equals_inferred_shape(factory, shape):
    net = ls.Sequential(factory())
    m = ls.build(net, "torch").eval()
    x = torch.randn(*shape)
    y = m(x)
    assert tuple(y.shape) == ls.infer(net, shape).output.shape
    # and the same values as the NumPy backend with the same (portable) weights
    mp = ls.build(net, "torch", rng="portable", seed=1).eval()
    mn = ls.build(net, "numpy", rng="portable", seed=1)
    np.testing.assert_allclose(mp(x).detach().numpy(), mn(x.numpy()), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    ("merge", "shapes", "expected"),
    [
        (ls.Add, ((2, 5), (2, 5)), (2, 5)),
        (ls.Multiply, ((2, 5), (1, 5)), (2, 5)),
        (lambda: ls.Concat(1), ((2, 5), (2, 3)), (2, 8)),
    ],
)
def test_merges_in_a_functional_model(merge, shapes, expected):
    a, b = ls.Input(("B", shapes[0][1])), ls.Input((None, shapes[1][1]))
    y = ls.Linear(4)(merge()(ls.ReLU()(a), b))
    net = ls.Model([a, b], y)
    m = ls.build(net, "torch", seed=0)
    xs = [torch.randn(*s) for s in shapes]
    out = m(*xs)
    assert tuple(out.shape) == ls.infer(net, *shapes).output.shape == (expected[0], 4)
    assert type(m["linear"]) is nn.Linear and m["linear"].in_features == expected[1]


def test_multiple_outputs():
    x = ls.Input(("B", 6))
    h = ls.Linear(4)(x)
    net = ls.Model(x, [ls.ReLU()(h), ls.Tanh()(h)])
    y1, y2 = ls.build(net, "torch")(torch.randn(3, 6))
    assert y1.shape == y2.shape == (3, 4)


def test_shared_layer_has_one_set_of_parameters():
    fc = ls.Linear(5, name="fc")
    x = ls.Input(("B", 5))
    net = ls.Model(x, fc(ls.ReLU()(fc(x))))
    m = ls.build(net, "torch", seed=0)
    x0 = torch.randn(2, 5)
    y = m(x0)
    assert list(m.state_dict()) == ["fc.weight", "fc.bias"]
    assert sum(p.numel() for p in m.parameters()) == 30
    expected = m["fc"](torch.relu(m["fc"](x0)))
    assert torch.equal(y, expected)


def test_single_layer_model_holds_the_parameters_itself():
    x = torch.randn(2, 4)
    torch.manual_seed(8)
    m = ls.build(ls.Linear(3), "torch")
    assert list(m.state_dict()) == ["weight", "bias"]
    m(x)
    torch.manual_seed(8)
    h = nn.Linear(4, 3)
    assert_same_state(m, h)
    assert "in_features=4, out_features=3" in repr(m)


# -- an ordinary module tree: containers run their children ---------------------------


def residual_block(width: int) -> ls.Model:
    """``x + relu(bn(conv(x)))`` as a functional model."""
    x = ls.Input((None, width, None, None))
    h = ls.Conv2d(width, 3, padding=1, name="conv")(x)
    h = ls.ReLU(name="relu")(ls.BatchNorm2d(name="bn")(h))
    return ls.Model(x, ls.Add(name="add")(h, x))


def small_cnn() -> ls.Sequential:
    return ls.Sequential({
        "stem": ls.Sequential(ls.Conv2d(4, 3, padding=1), ls.ReLU()),
        "blocks": ls.Sequential(residual_block(4), residual_block(4)),
        "head": ls.Sequential(ls.AdaptiveAvgPool2d(1), ls.Flatten(), ls.Linear(3)),
    })


#: `small_cnn`'s modules in the order a forward finishes them (hooks' order)
CNN_CALLS = [
    "stem.0", "stem.1", "stem",
    *[f"blocks.{b}{n}" for b in "01" for n in (".conv", ".bn", ".relu", ".add", "")],
    "blocks", "head.0", "head.1", "head.2", "head", "",
]


def test_nested_containers_are_torch_modules_that_run_on_their_own():
    m = ls.build(small_cnn(), "torch", seed=0).eval()
    x = torch.randn(2, 3, 8, 8)
    y = m(x)
    assert isinstance(m, nn.Sequential) and isinstance(m.stem, nn.Sequential)
    assert isinstance(m.blocks, nn.Sequential) and isinstance(m.head, nn.Sequential)
    block = m.blocks[0]
    assert isinstance(block, nn.Module) and type(block.conv) is nn.Conv2d
    assert repr(block).startswith("Model(\n  (conv): Conv2d(4, 4, kernel_size=(3, 3)")
    h = m.stem(x)
    assert torch.equal(h, m.stem[1](m.stem[0](x))) and torch.equal(m[0](x), h)
    assert torch.equal(block(h), torch.relu(block.bn(block.conv(h))) + h)
    assert torch.equal(block["conv"](h), block.conv(h)) and block[0] is block.conv
    assert torch.equal(m.head(m.blocks(h)), y)
    assert [k for k in m.state_dict() if "weight" in k] == [
        "stem.0.weight", "blocks.0.conv.weight", "blocks.0.bn.weight",
        "blocks.1.conv.weight", "blocks.1.bn.weight", "head.2.weight",
    ]
    assert [n for n, _ in m.named_modules()] == [
        "", "stem", "stem.0", "stem.1", "blocks",
        *[f"blocks.{b}{n}" for b in "01" for n in ("", ".conv", ".bn", ".relu", ".add")],
        "head", "head.0", "head.1", "head.2",
    ]


def test_a_container_runs_before_materialization_only_through_the_model():
    m = ls.build(small_cnn(), "torch")
    with pytest.raises(RuntimeError, match=r"Conv2d at 'stem\.0' is not materialized"):
        m.stem(torch.randn(2, 3, 8, 8))
    with pytest.raises(TypeError, match=r"Model was built for 1 input\(s\), called with 2"):
        m.blocks[0](torch.randn(2, 4, 8, 8), torch.randn(2, 4, 8, 8))


@pytest.mark.parametrize("materialized", [False, True], ids=["lazy", "materialized"])
def test_forward_hooks_fire_on_every_module_containers_included(materialized):
    """A placeholder becomes its native module in place: whoever holds it (its
    hooks, a user's reference) holds the native module."""
    m = ls.build(small_cnn(), "torch", seed=0)
    if materialized:
        m.materialize((2, 3, 8, 8))
    called, handles = [], []
    modules = dict(m.named_modules())
    for name, module in modules.items():
        handles.append(module.register_forward_hook(
            lambda mod, args, out, name=name: called.append(name)))
    m(torch.randn(2, 3, 8, 8))
    assert called == CNN_CALLS
    assert dict(m.named_modules()) == modules and type(modules["stem.0"]) is nn.Conv2d
    for handle in handles:
        handle.remove()
    called.clear()
    m(torch.randn(2, 3, 8, 8))
    assert called == []


def test_a_replaced_child_runs_as_in_the_hand_written_model():
    m = ls.build(small_cnn(), "torch", seed=0).materialize((2, 3, 8, 8)).eval()
    x = torch.randn(2, 3, 8, 8)
    m.head[2] = nn.Linear(4, 7)  # a new head, as for fine-tuning
    assert m(x).shape == (2, 7)
    block = m.blocks[1]
    block.relu = nn.Identity()
    h = torch.randn(2, 4, 8, 8)
    assert torch.equal(block(h), block.bn(block.conv(h)) + h)


def test_shared_layers_run_where_their_parameters_live():
    relu, fc = ls.ReLU(), ls.Linear(5)
    inner = ls.Sequential(fc, relu)
    m = ls.build(ls.Sequential(inner, ls.Linear(5), inner, relu, fc), "torch", seed=0)
    x = torch.randn(4, 5)
    y = m(x)
    assert list(m.state_dict()) == ["0.0.weight", "0.0.bias", "1.weight", "1.bias"]
    assert [n for n, _ in m.named_children()] == ["0", "1"]
    f, g = m[0][0], m[1]
    assert torch.equal(y, f(torch.relu(torch.relu(f(g(torch.relu(f(x))))))))


def test_multi_output_children_inside_containers():
    """A nested container returns its last child's structure (an LSTM's
    ``(out, (h, c))``); its parent takes the leaves, as the flat program does."""
    x = ls.Input(("B", 5, 3))
    out, h, c = ls.Sequential(ls.LSTM(4, return_state=True), name="rnn")(x)
    net = ls.Model(x, [ls.Linear(2, name="fc")(out), ls.Add(name="add")(h, c)])
    m = ls.build(net, "torch", rng="portable", seed=1)
    xs = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    got = m(torch.from_numpy(xs))
    want = ls.build(net, "numpy", rng="portable", seed=1)(xs)
    assert len(got) == len(want) == 2
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a.detach().numpy(), b, rtol=1e-5, atol=1e-5)
    rnn_out, (h_n, c_n) = m.rnn(torch.from_numpy(xs))
    assert rnn_out.shape == (2, 5, 4) and h_n.shape == c_n.shape == (1, 2, 4)


# -- shape changes -------------------------------------------------------------------


def test_wrong_input_shape_raises_and_changes_nothing():
    m = ls.build(mlp(), "torch", seed=0)
    m(torch.randn(2, 20))
    before = {k: v.clone() for k, v in m.state_dict().items()}
    w = m[0].weight
    with pytest.raises(
        ls.ShapeError,
        match=r"Linear at '0': inputs that keep the materialized parameter shapes "
        r"\(on_shape_change='error'.*; got `0\.weight` materialized as \(256, 20\), "
        r"these inputs need \(256, 30\) \(input shapes \(2, 30\)\)",
    ):
        m(torch.randn(2, 30))
    assert m[0].weight is w
    for k, v in m.state_dict().items():
        assert torch.equal(v, before[k])
    with pytest.raises(ls.ShapeError, match=r"Linear at '0': expected an input with at least 1 "):
        m(torch.tensor(1.0))
    assert m(torch.randn(5, 20)).shape == (5, 10)  # a new batch size is fine


def test_reinit_recreates_only_the_changed_layer():
    m = ls.build(mlp(), "torch", seed=0, on_shape_change="reinit")
    m(torch.randn(2, 20))
    first, last = m[0], m[2]
    before = {k: v.clone() for k, v in m.state_dict().items()}
    y = m(torch.randn(2, 30))
    assert y.shape == (2, 10)
    assert m[0] is not first and m[0].weight.shape == (256, 30)
    assert torch.equal(m[0].bias, before["0.bias"])  # its spec did not change
    assert m[2] is last
    assert torch.equal(m[2].weight, before["2.weight"])


def test_reinit_of_a_custom_layer_keeps_its_unchanged_parameters():
    m = ls.build(ls.Sequential(CustomLinear(4), ls.Linear(2)), "torch", on_shape_change="reinit")
    m(torch.randn(2, 3))
    bias, last = m[0].bias, m[1]
    m(torch.randn(2, 5))
    assert m[0].weight.shape == (4, 5)
    assert m[0].bias is bias and m[1] is last


def test_seeded_reinit_continues_one_private_stream():
    net = ls.Sequential(ls.Linear(3))
    a = ls.build(net, "torch", seed=1, on_shape_change="reinit")
    b = ls.build(net, "torch", seed=1, on_shape_change="reinit")
    for m in (a, b):
        m(torch.zeros(1, 2))
        m(torch.zeros(1, 4))
    assert_same_state(a, b)
    torch.manual_seed(1)
    nn.Linear(2, 3)
    assert torch.equal(a[0].weight, nn.Linear(4, 3).weight)


# -- checkpoints ------------------------------------------------------------------------


def test_load_state_dict_materializes_an_uninitialized_model():
    torch.manual_seed(0)
    h = torch_mlp()
    m = ls.build(mlp(), "torch")
    m.load_state_dict(h.state_dict())
    assert m.initialized and type(m[0]) is nn.Linear
    assert_same_state(m, h)
    x = torch.randn(3, 20)
    assert torch.equal(m(x), h(x))


#: a first layer whose sizes the checkpoint must give, with the hand-written module
#: that wrote the checkpoint, and an input the loaded model runs on
FIRST_LAYERS = {
    "grouped conv": (lambda: ls.Conv2d(8, 3, groups=2), lambda: nn.Conv2d(4, 8, 3, groups=2),
                     (2, 4, 6, 6)),
    "transposed conv": (lambda: ls.ConvTranspose1d(6, 3, groups=3),
                        lambda: nn.ConvTranspose1d(3, 6, 3, groups=3), (2, 3, 5)),
    "layer norm 2d": (lambda: ls.LayerNorm(2), lambda: nn.LayerNorm((3, 5)), (2, 3, 5)),
    "lstm": (lambda: ls.LSTM(4, num_layers=2, bidirectional=True),
             lambda: nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True),
             (2, 5, 3)),
    "attention": (lambda: ls.MultiheadAttention(2), lambda: nn.MultiheadAttention(6, 2), (2, 4, 6)),
}


@pytest.mark.parametrize("case", sorted(FIRST_LAYERS))
def test_a_checkpoint_gives_the_native_modules_a_forward_would(case):
    """Loading into an unmaterialized model solves the sizes the checkpoint's shapes
    determine (a grouped conv's input channels are the weight's dim 1 times the
    groups): each node is the native module with those sizes, as after a forward."""
    make, make_torch, shape = FIRST_LAYERS[case]
    torch.manual_seed(0)
    h = make_torch()
    loaded = ls.build(ls.Sequential(make(), ls.Identity()), "torch")
    loaded.load_state_dict({f"0.{k}": v for k, v in h.state_dict().items()})
    ran = ls.build(ls.Sequential(make(), ls.Identity()), "torch")
    ran.materialize(shape)
    assert type(loaded[0]) is type(ran[0])
    assert repr(loaded) == repr(ran)
    x = torch.randn(shape)
    ran.load_state_dict(loaded.state_dict())
    loaded.eval()
    ran.eval()
    torch.testing.assert_close(loaded(x), ran(x), rtol=0, atol=0)


def test_load_state_dict_accepts_numpy_arrays():
    src = ls.build(mlp(), "numpy", seed=0)
    src.materialize((2, 20))
    m = ls.build(mlp(), "torch")
    m.load_state_dict(src.state_dict())
    for k, v in src.state_dict().items():
        np.testing.assert_array_equal(m.state_dict()[k].numpy(), v)


def test_mismatching_checkpoint_raises_and_leaves_the_model_unchanged():
    state = nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 11)).state_dict()
    m = ls.build(mlp(), "torch")
    with pytest.raises(
        ls.ShapeError,
        match=r"Linear at '2': `2\.weight` of shape \(10, 256\); got shape \(11, 256\)",
    ):
        m.load_state_dict(state)
    assert not m.initialized
    assert type(m.state_dict()["0.weight"]) is UninitializedParameter

    m.materialize((2, 20))
    before = {k: v.clone() for k, v in m.state_dict().items()}
    del state["2.bias"]
    with pytest.raises(ls.ShapeError, match=r"missing \['2\.bias'\], unexpected \[\]"):
        m.load_state_dict(state)
    for k, v in m.state_dict().items():
        assert torch.equal(v, before[k])


def test_non_strict_loading_checks_the_names_present():
    m = ls.build(mlp(), "torch", seed=0).materialize((2, 20))
    b2 = torch.ones(10)
    result = m.load_state_dict({"2.bias": b2}, strict=False)
    assert torch.equal(m[2].bias, b2)
    assert "0.weight" in result.missing_keys
    with pytest.raises(ls.ShapeError, match=r"`2\.bias` of shape \(10,\); got shape \(11,\)"):
        m.load_state_dict({"2.bias": torch.ones(11)}, strict=False)


def test_save_load_round_trip(tmp_path):
    m = ls.build(mlp(), "torch", seed=1).materialize((2, 20))
    path = tmp_path / "mlp.safetensors"
    ls.save(m, path)
    m2 = ls.build(mlp(), "torch")
    m2.load_state_dict(ls.load(path))
    assert_same_state(m, m2)
    with pytest.raises(ls.ShapeError, match=r"materialized parameters to save"):
        ls.save(ls.build(mlp(), "torch"), tmp_path / "empty.safetensors")


def test_loading_inside_a_bigger_module_materializes_it():
    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = ls.build(mlp(), "torch")

    src = Outer()
    src.body.materialize((2, 20))
    dst = Outer()
    dst.load_state_dict(src.state_dict())
    assert dst.body.initialized
    assert_same_state(src, dst)


# -- portable rng -------------------------------------------------------------------------


def test_portable_weights_equal_the_numpy_backends():
    x = np.random.default_rng(0).standard_normal((4, 20)).astype(np.float32)
    mn = ls.build(mlp(), "numpy", rng="portable", seed=3)
    yn = mn(x)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    mt = ls.build(mlp(), "torch", rng="portable", seed=3)
    yt = mt(torch.from_numpy(x))
    assert torch.equal(torch.get_rng_state(), before)
    for k, v in mn.state_dict().items():
        np.testing.assert_array_equal(mt.state_dict()[k].numpy(), v)
    np.testing.assert_allclose(yt.detach().numpy(), yn, rtol=1e-5, atol=1e-5)
    assert type(mt[0]) is nn.Linear


def test_portable_custom_layer_equals_numpy():
    net = ls.Sequential(CustomLinear(6), ls.GELU())
    mn = ls.build(net, "numpy", rng="portable", seed=2)
    mt = ls.build(net, "torch", rng="portable", seed=2)
    mn.materialize((2, 3))
    mt.materialize((2, 3))
    for k, v in mn.state_dict().items():
        np.testing.assert_array_equal(mt.state_dict()[k].numpy(), v)


# -- ops -------------------------------------------------------------------------------------


def test_dropout_op_with_a_generator_is_reproducible():
    from lazyshape_torch import init, ops

    x = torch.ones(1000)
    a = ops.dropout(x, 0.25, init.make_rng(3))
    b = ops.dropout(x, 0.25, init.make_rng(3))
    assert torch.equal(a, b)
    assert set(a.unique().tolist()) <= {0.0, torch.tensor(1 / 0.75).item()}
    assert torch.equal(ops.dropout(x, 1.0, init.make_rng(0)), torch.zeros(1000))
    assert init.make_rng(None) is None


def test_dropout_is_active_in_training_only():
    m = ls.build(ls.Sequential(ls.Dropout(0.5)), "torch")
    x = torch.ones(200)
    assert (m(x) == 0).any()
    m.eval()
    assert torch.equal(m(x), x)


# -- fast materialization: no placeholders unless looked at; stamped modules ----------


def count_placeholders(monkeypatch):
    """Patch `Pending.__init__` to count the placeholders made; return the counter."""
    from lazyshape_torch.model import Pending

    made = []
    init = Pending.__init__

    def counting(self, *args, **kw):
        made.append(1)
        init(self, *args, **kw)

    monkeypatch.setattr(Pending, "__init__", counting)
    return made


def test_materializing_unlooked_at_model_makes_no_placeholders(monkeypatch):
    made = count_placeholders(monkeypatch)
    torch.manual_seed(5)
    m = ls.build(mlp(), "torch").eval()
    m.materialize((2, 20))
    assert made == []
    assert [type(c) for c in m] == [nn.Linear, nn.ReLU, nn.Linear]
    assert not any(c.training for c in m)  # eval() before materialization reaches them
    torch.manual_seed(5)
    assert_same_state(m, torch_mlp())
    y = ls.build(mlp(), "torch", seed=0)(torch.zeros(3, 20))  # the first forward too
    assert y.shape == (3, 10) and made == []


@pytest.mark.parametrize(
    "look",
    [
        lambda m: m[0],
        lambda m: len(m),
        lambda m: repr(m),
        lambda m: list(m.children()),
        lambda m: m.state_dict(),
        lambda m: dict(m.named_parameters()),
        lambda m: dir(m),
        lambda m: setattr(m, "extra", nn.Identity()),
    ],
    ids=["index", "len", "repr", "children", "state_dict", "named_parameters", "dir",
         "set_child"],
)
def test_first_look_installs_the_placeholders(monkeypatch, look):
    made = count_placeholders(monkeypatch)
    torch.manual_seed(6)
    m = ls.build(mlp(), "torch")
    look(m)
    assert len(made) == 3
    assert type(m.state_dict()["0.weight"]) is UninitializedParameter
    assert repr(m[2].partial_shapes) == "{'weight': (10, 256), 'bias': (10,)}"
    m(torch.zeros(2, 20))
    assert [type(m[i]) for i in range(3)] == [nn.Linear, nn.ReLU, nn.Linear]
    torch.manual_seed(6)
    h = torch_mlp()
    for k, v in h.state_dict().items():
        assert torch.equal(m.state_dict()[k], v), k
    assert len(made) == 3


def test_child_set_before_materialization_stays():
    m = ls.build(mlp(), "torch")
    m.extra = nn.Linear(2, 2)
    assert list(m.state_dict())[:4] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    m.materialize((2, 20))
    assert type(m.extra) is nn.Linear and "extra.weight" in m.state_dict()
    assert type(m[0]) is nn.Linear


def test_deepcopy_of_an_unmaterialized_model_materializes_on_its_own():
    import copy

    m = ls.build(mlp(), "torch")
    c = copy.deepcopy(m)
    c.materialize((2, 20))
    assert type(c[0]) is nn.Linear and c[0].in_features == 20
    assert not m.initialized and type(m[0]).__name__ == "Pending"


# -- copies and pickles -----------------------------------------------------------------

COPIES = {
    "deepcopy": copy.deepcopy,
    "pickle": lambda m: pickle.loads(pickle.dumps(m)),  # what torch.save(m) does
}

#: a batch norm (placeholder buffers), functional blocks, a layer alone
COPIED = {
    "batch norm": (lambda: ls.Sequential(ls.Linear(8), ls.BatchNorm1d(), ls.Linear(2)), (4, 5)),
    "residual cnn": (small_cnn, (2, 3, 8, 8)),
    "layer alone": (lambda: ls.Linear(3), (2, 4)),
}


@pytest.mark.parametrize("how", sorted(COPIES))
@pytest.mark.parametrize("case", sorted(COPIED))
def test_a_copy_before_materialization_materializes_on_its_own(case, how):
    make, shape = COPIED[case]
    m = ls.build(make(), "torch", seed=0).double()  # placeholders moved, and looked at
    c = COPIES[how](m)
    assert type(c) is type(m) and not c.initialized and repr(c) == repr(m)
    assert [(k, type(v), v.dtype) for k, v in c.state_dict().items()] == [
        (k, type(v), v.dtype) for k, v in m.state_dict().items()
    ]
    lazy = {k: repr(v.partial_shape) for k, v in m.state_dict().items()}
    assert {k: repr(v.partial_shape) for k, v in c.state_dict().items()} == lazy
    c.materialize(shape)
    assert c.initialized and not m.initialized
    m.materialize(shape)  # the same seed: the same weights
    assert_same_state(c, m)
    assert all(p.dtype == torch.float64 for p in c.parameters())
    assert not {id(p) for p in c.parameters()} & {id(p) for p in m.parameters()}


@pytest.mark.parametrize("how", sorted(COPIES))
@pytest.mark.parametrize("case", sorted(COPIED))
def test_a_copy_after_materialization_computes_the_same(case, how):
    make, shape = COPIED[case]
    m = ls.build(make(), "torch", seed=0).materialize(shape).eval()
    c = COPIES[how](m)
    assert [type(x) for x in c.modules()] == [type(x) for x in m.modules()]
    assert_same_state(c, m)
    x = torch.randn(shape)
    assert torch.equal(c(x), m(x))
    wide = (shape[0] + 3, *shape[1:])  # resolution works in the copy: a new batch size...
    assert c(torch.randn(wide)).shape[0] == wide[0]
    with pytest.raises(ls.ShapeError):  # ... and a wrong input is refused
        c(torch.randn(shape[0], shape[1] + 1, *shape[2:]))
    with torch.no_grad():
        for p in c.parameters():
            p.add_(1.0)
    assert not torch.equal(c(x), m(x))  # independent tensors


def test_failed_materialization_leaves_no_half_built_tree(monkeypatch):
    from lazyshape_torch import native

    def broken(record, **kw):
        raise RuntimeError("factory failed")

    m = ls.build(mlp(), "torch")
    monkeypatch.setitem(native.NATIVE, ls.ReLU, broken)
    with pytest.raises(RuntimeError, match="factory failed"):
        m.materialize((2, 20))
    assert not m.initialized
    assert [type(c).__name__ for c in m] == ["Pending", "Pending", "Pending"]
    monkeypatch.undo()
    m.materialize((2, 20))
    assert [type(c) for c in m] == [nn.Linear, nn.ReLU, nn.Linear]


def test_a_node_name_torch_refuses_raises_at_build():
    x = ls.Input(("B", 4))
    net = ls.Model(x, ls.Linear(3, name="forward")(x))
    with pytest.raises(ValueError, match=r"the node 'forward' can't be a child of a torch module"):
        ls.build(net, "torch")
    nested = ls.Sequential(ls.Sequential(ls.Linear(3, name="training")))
    with pytest.raises(ValueError, match=r"the node '0\.training' can't be a child"):
        ls.build(nested, "torch")


@pytest.mark.parametrize(
    ("in_features", "out_features", "bias", "dtype"),
    [
        (20, 256, True, "float32"),
        (3, 7, False, "float32"),
        (1000, 5, True, "float64"),
        (512, 1024, True, "float32"),
        (48, 24, True, "float16"),
        (5, 6, True, "bfloat16"),
    ],
)
def test_linear_equals_the_constructed_nn_linear(in_features, out_features, bias, dtype):
    torch.manual_seed(11)
    m = ls.build(ls.Sequential(ls.Linear(out_features, bias=bias)), "torch", dtype=dtype)
    m.materialize((2, in_features))
    after = torch.get_rng_state()
    torch.manual_seed(11)
    h = nn.Linear(in_features, out_features, bias=bias, dtype=getattr(torch, dtype))
    assert torch.equal(torch.get_rng_state(), after)  # the same draws, in the same order
    assert_same_state(m[0], h)
    assert type(m[0]) is nn.Linear and repr(m[0]) == repr(h)
    assert list(vars(m[0])) == list(vars(h))
    assert [type(v) for v in vars(m[0]).values()] == [type(v) for v in vars(h).values()]
    assert all(type(p) is nn.Parameter and p.requires_grad for p in m[0].parameters())


def test_linear_bounds_equal_torchs_for_every_fan_in():
    models = [ls.build(ls.Linear(2), "torch") for _ in range(300)]
    torch.manual_seed(2)
    for fan_in, m in enumerate(models, start=1):
        m.materialize((1, fan_in))
    torch.manual_seed(2)
    for fan_in, m in enumerate(models, start=1):
        h = nn.Linear(fan_in, 2)
        assert torch.equal(m.weight, h.weight) and torch.equal(m.bias, h.bias), fan_in


def test_native_modules_are_independent_objects():
    m = ls.build(ls.Sequential(ls.Linear(4), ls.ReLU(), ls.Linear(4), ls.ReLU()), "torch")
    m.materialize((2, 3))
    seen = []
    m[1].register_forward_hook(lambda mod, args, out: seen.append(mod))
    m(torch.zeros(2, 3))
    assert seen == [m[1]]
    assert m[3]._forward_hooks == {} and m[2]._forward_hooks == {}
    assert m[1]._forward_hooks is not m[3]._forward_hooks
    assert m[0]._parameters is not m[2]._parameters
    assert m[0].weight.data_ptr() != m[2].weight.data_ptr()


@pytest.mark.parametrize(
    ("layer", "module"),
    [
        (lambda: ls.GELU("tanh"), lambda: nn.GELU(approximate="tanh")),
        (lambda: ls.LeakyReLU(0.2), lambda: nn.LeakyReLU(0.2)),
        (lambda: ls.Softmax(0), lambda: nn.Softmax(0)),
        (lambda: ls.Dropout(0.3), lambda: nn.Dropout(0.3)),
        (lambda: ls.Flatten(0, 1), lambda: nn.Flatten(0, 1)),
        (lambda: ls.Unflatten(1, (3, 4)), lambda: nn.Unflatten(1, (3, 4))),
        (ls.SiLU, lambda: nn.SiLU()),
    ],
)
def test_stateless_modules_equal_constructed_ones(layer, module):
    for _ in range(2):  # the first is constructed, the second stamped from it
        m = ls.build(ls.Sequential(layer()), "torch")
        m.materialize((2, 12, 1))
        h = module()
        assert type(m[0]) is type(h) and repr(m[0]) == repr(h)
        assert vars(m[0]).keys() == vars(h).keys()
        for k, v in vars(h).items():
            assert type(vars(m[0])[k]) is type(v), k
            if not isinstance(v, (dict, set)):
                assert vars(m[0])[k] == v, k


def test_global_registration_hooks_see_every_parameter_and_module():
    from torch.nn.modules.module import (
        register_module_module_registration_hook,
        register_module_parameter_registration_hook,
    )

    params, modules = [], []
    h1 = register_module_parameter_registration_hook(lambda mod, name, p: params.append(name))
    h2 = register_module_module_registration_hook(lambda mod, name, sub: modules.append(name))
    try:
        torch.manual_seed(3)
        m = ls.build(mlp(), "torch").materialize((2, 20))
    finally:
        h1.remove()
        h2.remove()
    assert params == ["weight", "bias", "weight", "bias"]
    assert modules == ["0", "1", "2"]
    torch.manual_seed(3)
    assert_same_state(m, torch_mlp())


def count_stamped(monkeypatch):
    """Patch the stamping of ``nn.Linear`` to count its calls; return the counter."""
    from lazyshape_torch import linear as native

    stamped = []
    stamp = native._stamp_linear

    def counting(*args):
        stamped.append(args[:2])
        return stamp(*args)

    monkeypatch.setattr(native, "_stamp_linear", counting)
    return stamped


def test_linear_is_constructed_for_real_when_the_stamp_does_not_match_torch(monkeypatch):
    from lazyshape_torch import linear as native

    assert native._linear_matches_torch()  # on this torch, the fast path is taken
    stamped = count_stamped(monkeypatch)
    ls.build(mlp(), "torch").materialize((2, 20))
    assert stamped == [(20, 256), (256, 10)]
    stamped.clear()
    monkeypatch.setattr(native, "_FAST_LINEAR", [False])
    torch.manual_seed(4)
    m = ls.build(mlp(), "torch").materialize((2, 20))
    assert stamped == []
    torch.manual_seed(4)
    assert_same_state(m, torch_mlp())
    assert type(m[0]) is nn.Linear

    def cannot_tell():
        raise RuntimeError("no comparison possible here")

    monkeypatch.setattr(native, "_FAST_LINEAR", [])  # a check that can't run: asked again later
    monkeypatch.setattr(native, "_compare_with_nn_linear", cannot_tell)
    torch.manual_seed(4)
    m = ls.build(mlp(), "torch").materialize((2, 20))
    assert native._FAST_LINEAR == [] and stamped == []
    torch.manual_seed(4)
    assert_same_state(m, torch_mlp())


def test_patched_torch_init_is_followed(monkeypatch):
    # as Hugging Face's no_init_weights does: torch.nn.init made a no-op
    stamped = count_stamped(monkeypatch)
    monkeypatch.setattr(nn.init, "kaiming_uniform_", lambda t, *args, **kw: t)
    torch.manual_seed(8)
    m = ls.build(mlp(), "torch").materialize((2, 20))
    after = torch.get_rng_state()
    torch.manual_seed(8)
    h = torch_mlp()
    assert stamped == []
    assert torch.equal(torch.get_rng_state(), after)  # only the biases were drawn
    assert torch.equal(m[0].bias, h[0].bias) and torch.equal(m[2].bias, h[2].bias)


def test_patched_register_parameter_sees_every_parameter(monkeypatch):
    # as accelerate's init_empty_weights does: register_parameter wrapped
    seen = []
    register = nn.Module.register_parameter

    def recording(self, name, param):
        seen.append((type(self).__name__, name))
        register(self, name, param)

    monkeypatch.setattr(nn.Module, "register_parameter", recording)
    ls.build(mlp(), "torch").materialize((2, 20))
    assert seen == [("Linear", "weight"), ("Linear", "bias")] * 2


def test_patched_module_init_sees_every_module(monkeypatch):
    made = []
    init = nn.Module.__init__

    def recording(self, *args, **kw):
        made.append(type(self).__name__)
        init(self, *args, **kw)

    ls.build(mlp(), "torch").materialize((2, 20))  # (the prototypes exist)
    monkeypatch.setattr(nn.Module, "__init__", recording)
    ls.build(mlp(), "torch").materialize((2, 20))
    assert made.count("Linear") == 2 and made.count("ReLU") == 1

