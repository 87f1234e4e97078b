"""`Inference.valid_ranges` and `conditions`: the sizes for which a symbolic
inference holds, derived from what the rules assumed. Checked against
lazyshape itself (just inside infers, just outside is a ShapeError) and against
torch's own modules (just inside runs, just outside fails)."""

from __future__ import annotations

import pytest
from _frameworks import optional

import lazyshape as ls
from lazyshape import zoo

torch = optional("torch")
nn = optional("torch.nn")


def _features():
    """LeNet-5's feature extractor: two unpadded 5x5 convs, each pooled 2x2."""
    return ls.Sequential(ls.Conv2d(6, 5), ls.MaxPool2d(2), ls.Conv2d(16, 5), ls.MaxPool2d(2))


#: name -> (lazyshape model, symbolic input, expected ranges, the torch model, a
#: concrete input for given symbol values)
CASES = {
    "lenet features": (
        _features, ("B", 1, "H", "W"), {"B": (1, None), "H": (16, None), "W": (16, None)},
        lambda: nn.Sequential(nn.Conv2d(1, 6, 5), nn.MaxPool2d(2), nn.Conv2d(6, 16, 5),
                              nn.MaxPool2d(2)),
        lambda v: (2, 1, v.get("H", 20), v.get("W", 20)),
    ),
    "reflect pad, ceil pool, dilation": (
        lambda: ls.Sequential(ls.Conv1d(4, 3, padding=2, padding_mode="reflect"),
                              ls.MaxPool1d(3, stride=2, ceil_mode=True),
                              ls.Conv1d(4, 3, dilation=2)),
        ("B", 2, "L"), None,
        lambda: nn.Sequential(nn.Conv1d(2, 4, 3, padding=2, padding_mode="reflect"),
                              nn.MaxPool1d(3, stride=2, ceil_mode=True),
                              nn.Conv1d(4, 4, 3, dilation=2)),
        lambda v: (2, 2, v.get("L", 30)),
    ),
    "transposed conv": (
        lambda: ls.Sequential(ls.ConvTranspose1d(4, 3, stride=2, padding=3)),
        ("B", 2, "L"), None,
        lambda: nn.Sequential(nn.ConvTranspose1d(2, 4, 3, stride=2, padding=3)),
        lambda v: (2, 2, v.get("L", 30)),
    ),
    "avg pool 3d": (
        lambda: ls.Sequential(ls.AvgPool3d(3, stride=1, padding=1)),
        ("B", 2, "D", 5, 5), None,
        lambda: nn.Sequential(nn.AvgPool3d(3, stride=1, padding=1)),
        lambda v: (2, 2, v.get("D", 9), 5, 5),
    ),
}


def _torch_runs(make_torch, shape) -> bool:
    try:
        with torch.no_grad():
            make_torch()(torch.zeros(shape))
    except RuntimeError:
        return False
    return True


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_range_holds_exactly_to_its_bound(case):
    make, spec, expected, _, _ = CASES[case]
    inf = ls.infer(make(), spec)
    if expected is not None:
        assert inf.valid_ranges == expected
    bounded = {s: r for s, r in inf.valid_ranges.items() if r != (1, None)}
    assert bounded, inf.valid_ranges  # every case has one
    for sym, (lo, hi) in bounded.items():
        assert hi is None  # (these are lower bounds)
        inf.bind(**{sym: lo})  # just inside: infers
        with pytest.raises(ls.ShapeError):
            inf.bind(**{sym: lo - 1})  # just outside: the rules reject it


@pytest.mark.torch
@pytest.mark.parametrize("case", sorted(CASES))
def test_torch_runs_exactly_inside_the_range(case):
    make, spec, _, make_torch, concrete = CASES[case]
    inf = ls.infer(make(), spec)
    for sym, (lo, _) in inf.valid_ranges.items():
        if lo == 1:
            continue
        assert _torch_runs(make_torch, concrete({sym: lo}))
        assert not _torch_runs(make_torch, concrete({sym: lo - 1}))


def test_an_upper_bound_gpt2_positions():
    net = zoo.gpt2(vocab_size=50, max_len=16, num_layers=1, embed_dim=8, num_heads=2, mlp_dim=16)
    inf = ls.infer(net, ("B", "T"))
    assert inf.valid_ranges == {"B": (1, None), "T": (1, 16)}
    inf.bind(T=16)
    with pytest.raises(ls.ShapeError, match=r"at most `max_len` \(=16\) positions"):
        inf.bind(T=17)
    assert "Valid for: T <= 16" in ls.summary(net, ("B", "T"))


@pytest.mark.torch
def test_an_upper_bound_fails_in_torch_too():
    net = zoo.gpt2(vocab_size=50, max_len=16, num_layers=1, embed_dim=8, num_heads=2, mlp_dim=16)
    m = ls.build(net, "torch").materialize((2, 16))
    torch_modules = list(m.children())
    ids = torch.zeros(2, 17, dtype=torch.int64)
    with torch.no_grad(), pytest.raises(RuntimeError):  # the raw modules, no lazyshape check
        torch_modules[1](torch_modules[0](ids))  # token embedding, then positions


def test_what_is_not_a_range_is_a_condition():
    inf = ls.infer(ls.Sequential(ls.Conv2d(8, 3, groups=2)), ("B", None, "H", "W"))
    assert inf.valid_ranges == {"B": (1, None), "input0.shape[1]": (1, None),
                                "H": (3, None), "W": (3, None)}
    assert inf.conditions == ("input0.shape[1] % 2 == 0 (at '0')",)
    x, y = ls.Input(("B", "C")), ls.Input(("B", "D"))
    merged = ls.infer(ls.Model([x, y], ls.Add(name="add")(x, y)))
    assert merged.conditions == ("C == D (at 'add')",)
    # two symbols in one bound: a condition, not a range
    two = ls.infer(ls.Sequential(ls.Flatten(), ls.Unflatten(1, (4, -1))), ("B", "H", "W"))
    assert all(r == (1, None) for r in two.valid_ranges.values())
    assert two.conditions and all("H*W" in c for c in two.conditions)


def test_concrete_inputs_have_nothing_to_assume():
    inf = ls.infer(_features(), (2, 1, 28, 28))
    assert inf.valid_ranges == {} and inf.conditions == () and inf.bounds == ()
    assert "Valid for" not in ls.summary(_features(), (2, 1, 28, 28))


def test_lenet_summary_says_where_it_is_valid():
    assert "Valid for: H >= 16, W >= 16" in ls.summary(zoo.lenet5(), ("B", 1, "H", "W"))
