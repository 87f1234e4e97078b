"""The model zoo: defined once, resolved with no data, run on every backend."""

from __future__ import annotations

import numpy as np
import pytest

import lazyshape as ls
from lazyshape import zoo
from lazyshape.dims import Sym

B, T = Sym("B"), Sym("T")
BACKENDS = [
    "numpy",
    pytest.param("torch", marks=pytest.mark.torch),
    pytest.param("jax", marks=pytest.mark.jax),
]


def test_lenet_first_linear_follows_the_image_size():
    net = zoo.lenet5()
    small = ls.infer(net, ("B", 1, 28, 28))
    large = ls.infer(net, ("B", 1, 32, 32))
    assert small.params["fc1.weight"].shape == (120, 16 * 4 * 4)
    assert large.params["fc1.weight"].shape == (120, 16 * 5 * 5)
    assert small.output.shape == large.output.shape == (B, 10)
    sym = ls.infer(net, ("B", 1, "H", "W"))
    assert sym.unresolved["fc1.weight"] == frozenset({"H", "W"})
    # ((H - 4)//2 - 4)//2 == H//4 - 3, kept in canonical (expanded) form
    assert str(sym.params["fc1.weight"].shape[1]) == "16*(H//4)*(W//4) - 48*(H//4) - 48*(W//4) + 144"
    assert sym.bind(H=28, W=28).params["fc1.weight"].shape == (120, 256)


def test_resnet18_has_torchvisions_parameter_count_and_names():
    inf = ls.infer(zoo.resnet18(), ("B", 3, 224, 224))
    assert inf.num_params == 11_689_512
    assert inf.output.shape == (B, 1000)
    names = list(inf.params)
    assert names[:3] == ["conv1.weight", "bn1.weight", "bn1.bias"]
    assert "layer1.0.conv1.weight" in names and "layer2.0.downsample.0.weight" in names
    assert "layer4.1.bn2.num_batches_tracked" in names and names[-2:] == ["fc.weight", "fc.bias"]
    assert ls.infer(zoo.resnet18(), ("B", 3, "H", "W")).output.shape == (B, 1000)
    # spatial dims flow through as expressions
    conv1 = ls.infer(zoo.resnet18(), ("B", 3, "H", "W")).layer("conv1").outputs[0]
    assert str(conv1.shape[2]) == "(H - 1)//2 + 1"


def test_gpt2_small_symbolic_summary_shows_T_flowing_through():
    net = zoo.gpt2()
    inf = ls.infer(net, ("B", "T"))
    assert inf.inputs[0].dtype == "int64"
    assert inf.num_params == 124_439_808  # GPT-2 small (its LM head is tied to wte)
    assert inf.output.shape == (B, T, 768)
    assert all(rec.outputs[0].shape[:2] == (B, T) for rec in inf.layers)
    text = ls.summary(net, ("B", "T"))
    assert "h.11.mlp.c_fc  Linear           (B, T, 768)            (B, T, 3072)" in text
    with pytest.raises(ls.ShapeError, match=r"PositionEmbedding at 'wpe': at most `max_len` \(=1024\) positions; got input shape \(2, 2000, 768\)"):
        ls.infer(net, (2, 2000))


def test_lstm_classifier():
    inf = ls.infer(zoo.lstm_classifier(), ("B", "T", 12))
    assert inf.output.shape == (B, 5)
    assert inf.params["lstm.weight_ih_l0"].shape == (256, 12)
    assert inf.params["lstm.weight_hh_l1"].shape == (256, 64)


def _run(model, backend, x, seed=0):
    m = ls.build(model, backend, rng="portable", seed=seed)
    if hasattr(m, "eval"):
        m.eval()  # torch: running statistics, no dropout (NumPy is inference only)
    return ls.to_numpy(m(ls.asarray(x, backend)))


CASES = {
    "lenet28": (zoo.lenet5, lambda r: r.standard_normal((2, 1, 28, 28)).astype(np.float32)),
    "lenet32": (zoo.lenet5, lambda r: r.standard_normal((2, 1, 32, 32)).astype(np.float32)),
    "resnet18": (zoo.resnet18, lambda r: r.standard_normal((1, 3, 64, 64)).astype(np.float32)),
    # GPT-2 small's stack (12 blocks, 768, 12 heads, 3072) with a small vocabulary, so
    # CI doesn't allocate the 38M-parameter token table four times
    "gpt2": (lambda: zoo.gpt2(vocab_size=1000, max_len=64),
             lambda r: r.integers(0, 1000, (2, 16)).astype(np.int64)),
    "lstm": (zoo.lstm_classifier, lambda r: r.standard_normal((2, 7, 12)).astype(np.float32)),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_zoo_runs_and_agrees_on_every_backend(case, backend):
    make, data = CASES[case]
    x = data(np.random.default_rng(0))
    expected = _run(make(), "numpy", x)
    assert expected.shape == tuple(ls.infer(make(), x).output.shape)
    y = _run(make(), backend, x)
    assert y.shape == expected.shape
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


def _torch_resnet18():
    """A hand-written torchvision-style ResNet-18 (same module names), for the
    state-dict test: no torchvision needed."""
    import torch
    from torch import nn

    class BasicBlock(nn.Module):
        def __init__(self, inplanes, planes, stride=1):
            super().__init__()
            self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.relu = nn.ReLU()
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.downsample = None
            if stride != 1 or inplanes != planes:
                self.downsample = nn.Sequential(
                    nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

        def forward(self, x):
            h = self.relu(self.bn1(self.conv1(x)))
            h = self.bn2(self.conv2(h))
            skip = x if self.downsample is None else self.downsample(x)
            return self.relu(h + skip)

    class ResNet18(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU()
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            chans = [64, 64, 128, 256, 512]
            for i in range(1, 5):
                stride = 1 if i == 1 else 2
                setattr(self, f"layer{i}", nn.Sequential(
                    BasicBlock(chans[i - 1], chans[i], stride), BasicBlock(chans[i], chans[i])))
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(512, 1000)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            for i in range(1, 5):
                x = getattr(self, f"layer{i}")(x)
            return self.fc(torch.flatten(self.avgpool(x), 1))

    return ResNet18()


@pytest.mark.torch
def test_torchvision_state_dict_loads_into_the_lazy_torch_resnet():
    import torch

    torch.manual_seed(0)
    hand = _torch_resnet18()
    # make the running statistics non-trivial, as in a trained checkpoint
    hand.train()
    with torch.no_grad():
        hand(torch.randn(4, 3, 64, 64))
    hand.eval()
    state = hand.state_dict()
    m = ls.build(zoo.resnet18(), "torch")
    assert not m.initialized
    assert list(m.state_dict()) == list(state)  # torchvision's keys, before any data
    m.load_state_dict(state)  # materializes from the checkpoint's shapes
    assert m.initialized
    m.eval()
    assert type(m.layer1[0].conv1) is torch.nn.Conv2d
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(m(x), hand(x), rtol=1e-5, atol=1e-5)
    bad = dict(state)
    bad["fc.weight"] = torch.zeros(10, 256)
    fresh = ls.build(zoo.resnet18(), "torch")
    with pytest.raises(ls.ShapeError, match=r"Linear at 'fc': `fc.weight` of shape \(1000, 512\); got shape \(10, 256\)"):
        fresh.load_state_dict(bad)
    assert not fresh.initialized
