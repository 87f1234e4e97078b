"""The situations PyTorch's own lazy-module tests cover (``nn.LazyLinear``,
``nn.LazyConv*``, ``nn.LazyConvTranspose*``, ``nn.LazyBatchNorm*``,
``nn.LazyInstanceNorm*``), played against the torch backend: the inferred
sizes, the native module each layer becomes, state dicts before and after
materialization, loading into an uninitialized model, optimizers, copies,
dtype moves and hooks. Each model is compared with the hand-written torch
module given the same tensors."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

import lazyshape as ls

try:
    import torch
    from torch import nn
    from torch.nn.parameter import UninitializedBuffer, UninitializedParameter
except ModuleNotFoundError as e:  # the tests skip without torch (tests/conftest.py)
    if e.name != "torch":
        raise
    torch = nn = UninitializedBuffer = UninitializedParameter = None

pytestmark = pytest.mark.torch


def _lazy(m) -> bool:
    return any(isinstance(t, (UninitializedParameter, UninitializedBuffer))
               for t in m.state_dict(keep_vars=True).values())


def _twin(built, hand: nn.Module) -> nn.Module:
    """``hand`` holding ``built``'s tensors."""
    hand.load_state_dict(built.state_dict())
    return hand


# (layer, input shape, the hand-written module for that input)
CONVS = {
    "Conv1d": (lambda: ls.Conv1d(4, 3, stride=2, padding=1), (2, 3, 9),
               lambda: nn.Conv1d(3, 4, 3, stride=2, padding=1)),
    "Conv2d": (lambda: ls.Conv2d(4, (3, 2), dilation=2), (2, 3, 9, 8),
               lambda: nn.Conv2d(3, 4, (3, 2), dilation=2)),
    "Conv3d": (lambda: ls.Conv3d(4, 2, groups=1, bias=False), (1, 2, 4, 5, 6),
               lambda: nn.Conv3d(2, 4, 2, bias=False)),
    "ConvTranspose1d": (lambda: ls.ConvTranspose1d(4, 3, stride=2, output_padding=1), (2, 3, 5),
                        lambda: nn.ConvTranspose1d(3, 4, 3, stride=2, output_padding=1)),
    "ConvTranspose2d": (lambda: ls.ConvTranspose2d(6, 2, groups=2), (2, 4, 5, 5),
                        lambda: nn.ConvTranspose2d(4, 6, 2, groups=2)),
    "ConvTranspose3d": (lambda: ls.ConvTranspose3d(2, 2, padding=1), (1, 3, 4, 4, 4),
                        lambda: nn.ConvTranspose3d(3, 2, 2, padding=1)),
}

NORMS = {
    f"{kind}{d}d-{flags}": (kind, d, affine, track)
    for kind in ("BatchNorm", "InstanceNorm")
    for d in (1, 2, 3)
    for flags, (affine, track) in {
        "affine-tracked": (True, True), "plain": (False, False),
    }.items()
}


def test_linear_infers_in_features_and_becomes_nn_linear() -> None:
    m = ls.build(ls.Linear(10), "torch", seed=0)
    assert _lazy(m)
    assert isinstance(m.weight, UninitializedParameter)
    x = torch.randn(2, 5)
    y = m(x)
    assert not _lazy(m)
    assert type(m.weight) is nn.Parameter and m.weight.shape == (10, 5)
    torch.testing.assert_close(y, torch.nn.functional.linear(x, m.weight, m.bias))


def test_chained_lazy_linears_infer_one_after_the_other() -> None:
    net = ls.Sequential(ls.Linear(7), ls.ReLU(), ls.Linear(3), ls.Linear(2))
    m = ls.build(net, "torch", seed=0)
    x = torch.randn(4, 5)
    y = m(x)
    assert [type(c) for c in m] == [nn.Linear, nn.ReLU, nn.Linear, nn.Linear]
    assert [(c.in_features, c.out_features) for c in m if isinstance(c, nn.Linear)] == [
        (5, 7), (7, 3), (3, 2)]
    hand = _twin(m, nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3), nn.Linear(3, 2)))
    torch.testing.assert_close(y, hand(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(CONVS))
def test_convolutions_infer_in_channels(name: str) -> None:
    layer, shape, make_hand = CONVS[name]
    m = ls.build(ls.Sequential(layer()), "torch", seed=0)
    assert isinstance(m[0].weight, UninitializedParameter)
    x = torch.randn(*shape)
    y = m(x)
    hand = make_hand()
    assert type(m[0]) is type(hand)
    assert m[0].in_channels == hand.in_channels
    assert {k: v.shape for k, v in m.state_dict().items()} == {
        f"0.{k}": v.shape for k, v in hand.state_dict().items()}
    hand.load_state_dict({k.removeprefix("0."): v for k, v in m.state_dict().items()})
    torch.testing.assert_close(y, hand(x), rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(NORMS))
def test_norms_infer_num_features_and_track_statistics(name: str) -> None:
    kind, d, affine, track = NORMS[name]
    layer = getattr(ls, f"{kind}{d}d")(affine=affine, track_running_stats=track)
    m = ls.build(ls.Sequential(layer), "torch", seed=0)
    shape = (3, 4, *(5,) * d) if kind == "BatchNorm" or d > 1 else (3, 4, 5)
    x = torch.randn(*shape)
    m.train()
    y = m(x)
    hand = getattr(nn, f"{kind}{d}d")(4, affine=affine, track_running_stats=track)
    assert type(m[0]) is type(hand)
    assert m[0].num_features == 4
    hand_state = hand.state_dict()
    assert {k: (v.shape, v.dtype) for k, v in m.state_dict().items()} == {
        f"0.{k}": (v.shape, v.dtype) for k, v in hand_state.items()}
    # the hand-written module from the state before that training step: the
    # same output and the same running statistics after it
    m2 = ls.build(ls.Sequential(getattr(ls, f"{kind}{d}d")(affine=affine,
                                                           track_running_stats=track)),
                  "torch", seed=0)
    m2.materialize(x)
    hand.load_state_dict({k.removeprefix("0."): v for k, v in m2.state_dict().items()})
    hand.train()
    torch.testing.assert_close(y, hand(x), rtol=0, atol=0)
    for k, v in hand.state_dict().items():
        torch.testing.assert_close(m.state_dict()[f"0.{k}"], v, rtol=0, atol=0)
    m.eval()
    hand.eval()
    torch.testing.assert_close(m(x), hand(x), rtol=0, atol=0)


def test_state_dict_before_materialization_has_the_hand_written_keys() -> None:
    net = ls.Sequential(ls.Conv2d(4, 3), ls.BatchNorm2d(), ls.Flatten(), ls.Linear(3))
    m = ls.build(net, "torch", seed=0)
    hand = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(64, 3))
    before = m.state_dict()
    assert list(before) == list(hand.state_dict())
    assert all(isinstance(v, (UninitializedParameter, UninitializedBuffer))
               for v in before.values())
    m(torch.randn(2, 1, 6, 6))
    after = m.state_dict()
    assert {k: v.shape for k, v in after.items()} == {
        k: v.shape for k, v in hand.state_dict().items()}


def test_loading_into_an_uninitialized_model_materializes_it() -> None:
    hand = nn.Sequential(nn.Conv1d(3, 5, 2), nn.BatchNorm1d(5), nn.ReLU(), nn.Flatten(),
                         nn.Linear(5 * 6, 2))
    x = torch.randn(4, 3, 7)
    hand.train()
    hand(x)  # statistics that are not the initial ones
    hand.eval()
    net = ls.Sequential(ls.Conv1d(5, 2), ls.BatchNorm1d(), ls.ReLU(), ls.Flatten(), ls.Linear(2))
    m = ls.build(net, "torch", seed=0)
    m.load_state_dict(hand.state_dict())
    assert not _lazy(m)
    m.eval()
    torch.testing.assert_close(m(x), hand(x), rtol=0, atol=0)


def test_a_state_dict_that_does_not_fit_changes_nothing() -> None:
    m = ls.build(ls.Sequential(ls.Linear(4), ls.Linear(2)), "torch", seed=0)
    bad = nn.Sequential(nn.Linear(3, 4), nn.Linear(5, 2)).state_dict()  # 4 -> 5: no input fits
    with pytest.raises(ls.ShapeError, match="1.weight"):
        m.load_state_dict(bad)
    assert _lazy(m)
    m(torch.randn(2, 3))
    before = {k: v.clone() for k, v in m.state_dict().items()}
    with pytest.raises(ls.ShapeError):
        m.load_state_dict(bad)
    for k, v in m.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_an_optimizer_built_after_materialization_trains_as_on_the_hand_written_model() -> None:
    torch.manual_seed(0)
    x, t = torch.randn(16, 6), torch.randn(16, 1)
    m = ls.build(ls.Sequential(ls.Linear(8), ls.Tanh(), ls.Linear(1)), "torch", seed=0)
    m(x)
    hand = _twin(m, nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 1)))
    losses = []
    for model in (m, hand):
        opt = torch.optim.Adam(model.parameters(), lr=0.01)
        run = []
        for _ in range(10):
            loss = (model(x) - t).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            run.append(loss.item())
        losses.append(run)
    assert losses[0] == losses[1]
    assert losses[0][-1] < losses[0][0]


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
@pytest.mark.parametrize("when", ["before", "after"])
def test_copies_of_a_lazy_model(how: str, when: str) -> None:
    net = ls.Sequential(ls.Conv2d(3, 3), ls.BatchNorm2d(), ls.Flatten(), ls.Linear(2))
    m = ls.build(net, "torch", seed=0)
    x = torch.randn(2, 2, 5, 5)
    if when == "after":
        m(x)
    c = copy.deepcopy(m) if how == "deepcopy" else pickle.loads(pickle.dumps(m))
    assert _lazy(c) == (when == "before")
    m.eval()
    c.eval()
    if when == "before":  # each materializes on its own first call, from the same seed
        assert _lazy(m)
    torch.testing.assert_close(c(x), m(x), rtol=0, atol=0)
    for p, q in zip(m.parameters(), c.parameters(), strict=True):
        assert p is not q


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("dtype", ["float64", "float16", "bfloat16"])
def test_dtype_moves(dtype: str, when: str) -> None:
    to = getattr(torch, dtype)
    m = ls.build(ls.Sequential(ls.Linear(4), ls.LayerNorm(), ls.Linear(2)), "torch", seed=0)
    x = torch.randn(3, 5)
    if when == "after":
        m(x)
    m.to(to)
    y = m(x.to(to))
    assert y.dtype == to
    assert {p.dtype for p in m.parameters()} == {to}
    hand = _twin(m, nn.Sequential(nn.Linear(5, 4), nn.LayerNorm(4), nn.Linear(4, 2)).to(to))
    torch.testing.assert_close(y, hand(x.to(to)), rtol=0, atol=0)
    with pytest.raises(ls.ShapeError, match="dtype"):
        m(x.to(torch.float32 if dtype != "float32" else torch.float64))


def test_hooks_registered_before_materialization_fire_on_the_first_call_and_after() -> None:
    m = ls.build(ls.Sequential(ls.Linear(4), ls.ReLU(), ls.Linear(2)), "torch", seed=0)
    seen: list[tuple[str, tuple[int, ...]]] = []
    m.register_forward_pre_hook(lambda mod, args: seen.append(("pre", tuple(args[0].shape))))
    m.register_forward_hook(lambda mod, args, out: seen.append(("post", tuple(out.shape))))
    first = m[0]
    first.register_forward_hook(lambda mod, args, out: seen.append(("0", tuple(out.shape))))
    m(torch.randn(3, 6))
    assert first is m[0] and isinstance(first, nn.Linear)  # the placeholder became it
    m(torch.randn(5, 6))
    assert seen == [("pre", (3, 6)), ("0", (3, 4)), ("post", (3, 2)),
                    ("pre", (5, 6)), ("0", (5, 4)), ("post", (5, 2))]


def test_a_model_inside_a_hand_written_module_materializes_with_it() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = ls.build(ls.Sequential(ls.Linear(8), ls.ReLU()), "torch", seed=0)
            self.head = nn.Linear(8, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.body(x))

    net = Net()
    assert _lazy(net)
    y = net(torch.randn(2, 3))
    assert y.shape == (2, 1) and not _lazy(net)
    assert [k for k in net.state_dict()] == ["body.0.weight", "body.0.bias", "head.weight",
                                             "head.bias"]
    assert np.isfinite(y.detach().numpy()).all()


def test_batch_norm_checks_a_training_input_whatever_the_mode_changes() -> None:
    m = ls.build(ls.Sequential(ls.Linear(4), ls.BatchNorm1d(), ls.Linear(2)), "torch", seed=0)
    m(torch.randn(3, 5))
    one = torch.randn(1, 5)
    m.eval()
    assert not m[1]._forward_pre_hooks  # evaluation: torch's hook-free call path
    assert m(one).shape == (1, 2)  # running statistics: a batch of one is fine
    m.train()
    before = m[1].running_mean.clone()
    with pytest.raises(ls.ShapeError, match="BatchNorm1d"):
        m(one)  # torch would raise its own ValueError
    assert torch.equal(m[1].running_mean, before)
    m[1].eval()  # a frozen BatchNorm inside a training model
    assert m(one).shape == (1, 2)
    hand = _twin(m, nn.Sequential(nn.Linear(5, 4), nn.BatchNorm1d(4), nn.Linear(4, 2)))
    hand.train()
    hand[1].eval()
    torch.testing.assert_close(m(one), hand(one), rtol=0, atol=0)
