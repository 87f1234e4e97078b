"""Normalization layers: BatchNorm1d/2d/3d, InstanceNorm1d/2d/3d, LayerNorm, RMSNorm,
GroupNorm.

Tables pin shapes and messages; hypothesis properties check the rules against
torch (the modules and ``torch.nn.functional``) in eval and training mode and
against ``jax.eval_shape``; every layer runs on every backend against the
hand-written torch module, in eval (NumPy, torch, JAX) and in training (torch
natively, JAX with explicit state)."""

from __future__ import annotations

import warnings
from collections import OrderedDict
from typing import Any

import numpy as np
import pytest
from _frameworks import optional
from hypothesis import given
from hypothesis import strategies as st

import lazyshape as ls
from lazyshape._layer import Context
from lazyshape.dims import bind_shape
from lazyshape.layers.norm import (
    BatchNorm1d,
    BatchNorm2d,
    BatchNorm3d,
    GroupNorm,
    InstanceNorm1d,
    InstanceNorm2d,
    InstanceNorm3d,
    LayerNorm,
    RMSNorm,
)

torch = optional("torch")
F = optional("torch.nn.functional")
nn = optional("torch.nn")
jax = optional("jax")
jnp = optional("jax.numpy")

SE = ls.ShapeError

# -- tables: shapes, parameters, messages ------------------------------------------

SHAPES = [
    # BatchNorm
    (BatchNorm1d, {}, (4, 3), (4, 3)),
    (BatchNorm1d, {}, ("B", 3, "L"), ("B", 3, "L")),
    (BatchNorm1d, {}, (4, 3, 2, 2), (SE, r"BatchNorm1d: expected an input with 2 or 3 dims \(N, C\) or \(N, C, L\); got input shape \(4, 3, 2, 2\) \(4 dims\)$")),
    (BatchNorm1d, {}, (3,), (SE, r"2 or 3 dims .*; got input shape \(3,\) \(1 dims\) \(is the batch dim missing\?\)")),
    (BatchNorm2d, {}, ("B", 16, "H", "W"), ("B", 16, "H", "W")),
    (BatchNorm2d, {}, (None, 3, None, None), (None, 3, None, None)),
    (BatchNorm2d, {}, (3, 8, 8), (SE, r"expected an input with 4 dims \(N, C, H, W\); got input shape \(3, 8, 8\) \(3 dims\) \(is the batch dim missing\?\)")),
    (BatchNorm2d, {"num_features": 4}, (2, 3, 5, 5), (SE, r"BatchNorm2d: expected input channels \(dim 1\) 4 \(`num_features`\); got input shape \(2, 3, 5, 5\)")),
    (BatchNorm2d, {"num_features": 3}, (2, 3, 5, 5), (2, 3, 5, 5)),
    (BatchNorm2d, {}, (1, 3, 1, 1), (1, 3, 1, 1)),  # fine in eval; training checks in forward
    (BatchNorm2d, {"track_running_stats": False}, (1, 3, 1, 1), (SE, r"expected more than 1 value per channel \(N \* prod\(spatial\) > 1\) \(batch statistics: `track_running_stats` \(=False\)\); got input shape \(1, 3, 1, 1\)")),
    (BatchNorm2d, {"track_running_stats": False}, ("B", 3, 1, 1), ("B", 3, 1, 1)),
    (BatchNorm3d, {}, (2, 3, 4, 5, 6), (2, 3, 4, 5, 6)),
    (BatchNorm3d, {}, (2, 3, 4, 5), (SE, r"5 dims \(N, C, D, H, W\); .*is the batch dim missing")),
    # InstanceNorm
    (InstanceNorm1d, {}, ("B", 3, "L"), ("B", 3, "L")),
    (InstanceNorm1d, {}, (4, 3), (SE, r"InstanceNorm1d: expected an input with 3 dims \(N, C, L\); got input shape \(4, 3\) \(2 dims\) \(is the batch dim missing\?\)")),
    (InstanceNorm2d, {}, (2, 3, 1, 1), (SE, r"expected more than 1 spatial element \(prod\(spatial\) > 1\) \(instance statistics: `track_running_stats` \(=False\)\); got input shape \(2, 3, 1, 1\)")),
    (InstanceNorm2d, {"track_running_stats": True}, (2, 3, 1, 1), (2, 3, 1, 1)),
    (InstanceNorm2d, {"affine": True, "num_features": 5}, (2, 3, 4, 4), (SE, r"expected input channels \(dim 1\) 5 \(`num_features`\)")),
    (InstanceNorm3d, {}, (1, 2, 2, 1, 1), (1, 2, 2, 1, 1)),
    # zero channels (torch's affine norms fail with an IndexError), and an empty batch
    # for an affine instance norm (the same); a plain instance norm takes one
    (BatchNorm2d, {}, (2, 0, 3, 3), (SE, r"BatchNorm2d: expected at least one channel \(dim 1\); got input shape \(2, 0, 3, 3\)")),
    (InstanceNorm1d, {"affine": True}, (2, 0, 3), (SE, r"at least one channel")),
    (InstanceNorm1d, {"affine": True}, (0, 2, 3), (SE, r"InstanceNorm1d: expected a non-empty batch \(dim 0\) for an instance norm with affine parameters; got input shape \(0, 2, 3\)")),
    (InstanceNorm1d, {}, (0, 2, 3), (0, 2, 3)),
    (BatchNorm1d, {}, (0, 2, 3), (0, 2, 3)),
    # LayerNorm
    (LayerNorm, {}, ("B", "T", 8), ("B", "T", 8)),
    (LayerNorm, {"normalized_ndim": 2}, ("B", 4, 5), ("B", 4, 5)),
    (LayerNorm, {"normalized_ndim": 2}, (4, 5), (SE, r"LayerNorm: expected an input with at least 3 dims \(N, \*normalized_shape\) for `normalized_ndim` \(=2\); got input shape \(4, 5\) \(2 dims\) \(is the batch dim missing\?\)")),
    (LayerNorm, {"normalized_shape": (4, 5)}, (2, 3, 4, 5), (2, 3, 4, 5)),
    (LayerNorm, {"normalized_shape": (4, 5)}, (2, 4, 6), (SE, r"expected the last 2 input dims to be \(4, 5\) \(`normalized_shape`\); got input shape \(2, 4, 6\)")),
    (LayerNorm, {"normalized_shape": 8}, ("B", 8), ("B", 8)),
    (LayerNorm, {}, (1, 1), (1, 1)),
    # RMSNorm: LayerNorm's shape rule
    (RMSNorm, {}, ("B", "T", 8), ("B", "T", 8)),
    (RMSNorm, {"normalized_ndim": 2}, ("B", 4, 5), ("B", 4, 5)),
    (RMSNorm, {"normalized_ndim": 2}, (4, 5), (SE, r"RMSNorm: expected an input with at least 3 dims \(N, \*normalized_shape\) for `normalized_ndim` \(=2\); got input shape \(4, 5\) \(2 dims\) \(is the batch dim missing\?\)")),
    (RMSNorm, {"normalized_shape": (4, 5)}, (2, 4, 6), (SE, r"RMSNorm: expected the last 2 input dims to be \(4, 5\) \(`normalized_shape`\); got input shape \(2, 4, 6\)")),
    (RMSNorm, {"eps": 1e-6, "normalized_shape": 8}, ("B", 8), ("B", 8)),
    # GroupNorm
    (lambda **kw: GroupNorm(2, **kw), {}, ("B", 4, "H", "W"), ("B", 4, "H", "W")),
    (lambda **kw: GroupNorm(2, **kw), {}, (2, 4), (2, 4)),
    (lambda **kw: GroupNorm(4, **kw), {}, (2, 6, 5), (SE, r"GroupNorm: expected input channels \(dim 1\) divisible by `num_groups` \(=4\); got input shape \(2, 6, 5\) \(6 channels\)")),
    (lambda **kw: GroupNorm(3, **kw), {}, (1, 3, 1, 1), (SE, r"expected N \* C/num_groups \* prod\(spatial\) > 1 to compute group statistics; got input shape \(1, 3, 1, 1\), `num_groups` \(=3\)")),
    (lambda **kw: GroupNorm(3, **kw), {}, (2, 3, 1, 1), (2, 3, 1, 1)),
    (lambda **kw: GroupNorm(2, **kw), {"num_channels": 6}, (2, 4, 3), (SE, r"expected input channels \(dim 1\) 6 \(`num_channels`\)")),
    (lambda **kw: GroupNorm(2, **kw), {}, (4,), (SE, r"expected an input with 2 dims \(N, C, \*\); got input shape \(4,\) \(1 dims\) \(is the batch dim missing\?\)")),
]


@pytest.mark.parametrize("make, kw, shape, expected", SHAPES)
def test_shape_table(make, kw, shape, expected):
    layer = make(**kw)
    if isinstance(expected, tuple) and expected and expected[0] is SE:
        with pytest.raises(SE, match=expected[1]):
            ls.infer(layer, shape)
        return
    out = ls.infer(layer, shape).output.shape
    assert len(out) == len(expected)
    for got, want in zip(out, expected, strict=True):
        assert want is None or str(got) == str(want)


def test_integer_input_is_rejected():
    with pytest.raises(SE, match=r"expected a floating-point input; got dtype int64"):
        ls.infer(BatchNorm2d(), ls.TensorSpec((2, 3, 4, 4), "int64"))
    with pytest.raises(SE, match=r"expected a floating-point input; got dtype int32"):
        ls.infer(LayerNorm(), ls.TensorSpec((2, 3), "int32"))


PARAMS = [
    (BatchNorm2d(), (2, 3, 4, 4), {
        "weight": ((3,), "float32", True), "bias": ((3,), "float32", True),
        "running_mean": ((3,), "float32", False), "running_var": ((3,), "float32", False),
        "num_batches_tracked": ((), "int64", False)}),
    (BatchNorm1d(affine=False), ("B", 5), {
        "running_mean": ((5,), "float32", False), "running_var": ((5,), "float32", False),
        "num_batches_tracked": ((), "int64", False)}),
    (BatchNorm2d(track_running_stats=False, bias=False), (2, 3, 4, 4), {"weight": ((3,), "float32", True)}),
    (InstanceNorm2d(), (2, 3, 4, 4), {}),
    (InstanceNorm1d(affine=True, track_running_stats=True), (2, 3, 4), {
        "weight": ((3,), "float32", True), "bias": ((3,), "float32", True),
        "running_mean": ((3,), "float32", False), "running_var": ((3,), "float32", False),
        "num_batches_tracked": ((), "int64", False)}),
    (LayerNorm(2), ("B", "T", 4, 5), {"weight": ((4, 5), "float32", True), "bias": ((4, 5), "float32", True)}),
    (LayerNorm(bias=False), ("B", 7), {"weight": ((7,), "float32", True)}),
    (LayerNorm(elementwise_affine=False), ("B", 7), {}),
    (RMSNorm(2), ("B", "T", 4, 5), {"weight": ((4, 5), "float32", True)}),
    (RMSNorm(elementwise_affine=False), ("B", 7), {}),
    (GroupNorm(2), ("B", 4, 9), {"weight": ((4,), "float32", True), "bias": ((4,), "float32", True)}),
    (GroupNorm(2, affine=False), ("B", 4, 9), {}),
]


@pytest.mark.parametrize("layer, shape, expected", PARAMS)
def test_param_table(layer, shape, expected):
    params = ls.infer(layer, shape).params
    got = {k: (tuple(p.shape), p.dtype, p.trainable) for k, p in params.items()}
    assert got == expected
    assert list(got) == list(expected)  # torch's order: weight, bias, running_*, num_batches_tracked


def test_initial_values_are_torchs():
    inf = ls.infer(ls.Sequential(BatchNorm2d()), (2, 3, 4, 4))
    assert [repr(p.init) for p in inf.params.values()] == ["ones()", "zeros()", "zeros()", "ones()", "zeros()"]


def test_symbolic_channels_leave_parameters_unresolved():
    inf = ls.infer(ls.Sequential(BatchNorm2d()), ("B", "C", "H", "W"))
    assert {n: sorted(s) for n, s in inf.unresolved.items()} == {
        "0.weight": ["C"], "0.bias": ["C"], "0.running_mean": ["C"], "0.running_var": ["C"]}
    gn = ls.infer(GroupNorm(4), ("B", "C", 8))
    assert gn.assumptions  # C % 4 == 0 assumed, reported


CONSTRUCTION = [
    (lambda: BatchNorm2d(eps=-1.0), r"BatchNorm2d: `eps` to be a non-negative number; got `eps` \(=-1.0\)"),
    (lambda: BatchNorm1d(momentum=1.5), r"BatchNorm1d: `momentum` in \[0, 1\] or None; got `momentum` \(=1.5\)"),
    (lambda: BatchNorm3d(num_features=0), r"BatchNorm3d: `num_features` to be a positive int; got `num_features` \(=0\)"),
    (lambda: InstanceNorm2d(eps="1e-5"), r"InstanceNorm2d: `eps` to be a non-negative number; got `eps` \(='1e-5'\)"),
    (lambda: LayerNorm(0), r"LayerNorm: `normalized_ndim` to be a positive int; got `normalized_ndim` \(=0\)"),
    (lambda: LayerNorm(normalized_shape=(4, 0)), r"LayerNorm: `normalized_shape` to be a positive int or a non-empty tuple of them; got `normalized_shape` \(=\(4, 0\)\)"),
    (lambda: RMSNorm(eps=-1e-6), r"RMSNorm: `eps` to be a non-negative number; got `eps` \(=-1e-06\)"),
    (lambda: RMSNorm(normalized_shape=0), r"RMSNorm: `normalized_shape` to be a positive int or a non-empty tuple of them; got `normalized_shape` \(=0\)"),
    (lambda: LayerNorm(3, normalized_shape=(4, 5)), r"LayerNorm: `normalized_ndim` equal to len\(`normalized_shape`\); got `normalized_ndim` \(=3\), `normalized_shape` \(=\(4, 5\)\)"),
    (lambda: GroupNorm(0), r"GroupNorm: `num_groups` to be a positive int; got `num_groups` \(=0\)"),
    (lambda: GroupNorm(4, num_channels=6), r"GroupNorm: `num_channels` divisible by `num_groups`; got `num_channels` \(=6\), `num_groups` \(=4\)"),
]


@pytest.mark.parametrize("make, message", CONSTRUCTION)
def test_bad_hyperparameters_fail_at_construction(make, message):
    with pytest.raises(SE, match=message):
        make()


def test_repr_and_describe():
    assert repr(BatchNorm2d()) == (
        "BatchNorm2d(num_features=?, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)"
    )
    assert repr(InstanceNorm1d(bias=False)) == (
        "InstanceNorm1d(num_features=?, eps=1e-05, momentum=0.1, affine=False, "
        "track_running_stats=False, bias=False)"
    )
    assert repr(LayerNorm(normalized_shape=(4, 5))) == (
        "LayerNorm(normalized_ndim=2, normalized_shape=(4, 5), eps=1e-05, elementwise_affine=True)"
    )
    assert repr(RMSNorm()) == "RMSNorm(normalized_ndim=1, normalized_shape=?, elementwise_affine=True)"
    assert repr(RMSNorm(eps=1e-6, normalized_shape=8)) == (
        "RMSNorm(normalized_ndim=1, normalized_shape=(8,), eps=1e-06, elementwise_affine=True)"
    )
    assert repr(GroupNorm(2)) == (
        "GroupNorm(num_groups=2, num_channels=?, eps=1e-05, affine=True)"
    )
    spec = ls.TensorSpec(("B", 6, 8))
    assert BatchNorm1d().resolved(spec)["num_features"] == 6
    assert GroupNorm(3).resolved(spec)["num_channels"] == 6
    assert LayerNorm(2).resolved(spec)["normalized_shape"] == (6, 8)
    assert RMSNorm().resolved(spec)["normalized_shape"] == (8,)
    net = ls.Sequential(BatchNorm1d(), LayerNorm())
    assert "BatchNorm1d" in ls.summary(net, ("B", 6, 8))


@pytest.mark.torch
@pytest.mark.jax
def test_placeholders_show_partial_shapes_before_materialization():
    m = ls.build(LayerNorm(2), "torch")
    assert repr(m.state_dict()["weight"].partial_shape) == "(?, ?)"
    m = ls.build(ls.Sequential(BatchNorm1d(), GroupNorm(2)), "jax")
    assert repr(m.state_dict()["0.num_batches_tracked"]) == "<Uninitialized () int64>"
    assert repr(m.state_dict()["1.weight"]) == "<Uninitialized (?,) float32>"


# -- properties: the rules against torch and JAX --------------------------------------

CHANNEL_NORMS = {
    "BatchNorm1d": (BatchNorm1d, nn.BatchNorm1d, (2, 3)),
    "BatchNorm2d": (BatchNorm2d, nn.BatchNorm2d, (4,)),
    "BatchNorm3d": (BatchNorm3d, nn.BatchNorm3d, (5,)),
    "InstanceNorm1d": (InstanceNorm1d, nn.InstanceNorm1d, (3,)),
    "InstanceNorm2d": (InstanceNorm2d, nn.InstanceNorm2d, (4,)),
    "InstanceNorm3d": (InstanceNorm3d, nn.InstanceNorm3d, (5,)),
} if torch else {}


def _shape(
    draw: Any, rank: int, channels: int | None = None, small: bool = False
) -> tuple[int, ...]:
    # small: mostly 1s, so one value per channel (or spatial element) comes up often
    dim = st.sampled_from([1, 1, 2, 3]) if small else st.integers(1, 3)
    dims = draw(st.lists(dim, min_size=rank, max_size=rank))
    if channels is not None and rank >= 2:
        dims[1] = channels
    return tuple(dims)


@st.composite
def channel_norm_cases(draw):
    name = draw(st.sampled_from(sorted(CHANNEL_NORMS)))
    ranks = CHANNEL_NORMS[name][2]
    wrong = sorted({min(ranks) - 1, max(ranks) + 1})
    rank = draw(st.sampled_from([*ranks, *ranks, *ranks, *wrong]))  # mostly a valid rank
    channels = draw(st.integers(1, 4))
    shape = _shape(draw, rank, channels, small=True)
    kw = {
        "affine": draw(st.booleans()),
        "track_running_stats": draw(st.booleans()),
        "momentum": draw(st.sampled_from([0.1, None])),
        "num_features": draw(st.sampled_from([None, None, channels, channels % 4 + 1])),
    }
    return name, kw, shape, channels


def _run_torch(module: nn.Module, shape: tuple[int, ...], training: bool) -> tuple[int, ...] | None:
    """The output shape of a torch module, or None when torch rejects the input."""
    module.train(training)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            return tuple(module(torch.randn(shape)).shape)
    except (ValueError, RuntimeError, UserWarning):
        return None


def _infer(layer: Any, shape: tuple[Any, ...]) -> ls.Inference | None:
    try:
        return ls.infer(layer, shape)
    except SE:
        return None


def _jax_forward(layer: Any, shape: tuple[int, ...], training: bool) -> Any:
    """The layer's own forward on JAX arrays (params of the inferred shapes)."""
    specs = ls.infer(layer, shape).params
    params = {
        k: (jnp.zeros(p.shape, jnp.int32) if p.dtype == "int64" else jnp.ones(p.shape, jnp.float32))
        for k, p in specs.items()
    }
    x = jnp.asarray(np.random.default_rng(0).standard_normal(shape), jnp.float32)
    if layer.needs_context:
        return layer.forward(params, x, ctx=Context(training=training))
    return layer.forward(params, x)


def _jax_eval_shape(layer: Any, shape: tuple[int, ...]) -> tuple[int, ...]:
    specs = ls.infer(layer, shape).params
    params = {
        k: jax.ShapeDtypeStruct(p.shape, jnp.int32 if p.dtype == "int64" else jnp.float32)
        for k, p in specs.items()
    }

    def f(p, x):
        if layer.needs_context:
            return layer.forward(p, x, ctx=Context(training=False))
        return layer.forward(p, x)

    return tuple(jax.eval_shape(f, params, jax.ShapeDtypeStruct(shape, jnp.float32)).shape)


def _agree_in_training(layer: Any, module: nn.Module, shape: tuple[int, ...]) -> None:
    """In training, the built models raise a ShapeError exactly where torch
    rejects the input (the rule passed: the forward checks)."""
    torch_ok = _run_torch(module, shape, training=True) is not None
    m = ls.build(layer, "torch")
    m.train()
    try:
        m(torch.randn(shape))
        ls_ok = True
    except SE as e:
        assert "in training" in str(e)
        ls_ok = False
    assert ls_ok == torch_ok
    try:
        _jax_forward(layer, shape, training=True)
        jax_ok = True
    except SE:
        jax_ok = False
    assert jax_ok == torch_ok


@pytest.mark.torch
@pytest.mark.jax
@given(channel_norm_cases())
def test_channel_norm_rules_agree_with_torch(case):
    name, kw, shape, channels = case
    ls_cls, torch_cls, ranks = CHANNEL_NORMS[name]
    layer = ls_cls(**kw)
    num_features = kw["num_features"] or channels
    module = torch_cls(
        num_features, momentum=kw["momentum"], affine=kw["affine"],
        track_running_stats=kw["track_running_stats"],
    )
    inf = _infer(layer, shape)
    torch_out = _run_torch(module, shape, training=False)
    if name.startswith("Instance") and len(shape) == ranks[0] - 1:
        # torch reads this rank as one unbatched sample; lazyshape inputs are batched
        with pytest.raises(SE, match="is the batch dim missing"):
            ls.infer(layer, shape)
        return
    unused_size = not kw["affine"] and not kw["track_running_stats"]
    if inf is None and torch_out is not None:
        # a given size is checked even where torch ignores it
        assert name.startswith("Batch") and unused_size and kw["num_features"] != channels
        return
    assert (inf is None) == (torch_out is None), (inf, torch_out)
    if inf is None:
        return
    assert inf.output.shape == torch_out == _jax_eval_shape(layer, shape)
    _agree_in_training(layer, module, shape)


@st.composite
def layer_norm_cases(draw):
    k = draw(st.integers(1, 3))
    rank = draw(st.integers(1, 4))
    shape = _shape(draw, rank)
    given_shape = None
    if draw(st.booleans()):
        base = list(shape[-k:]) if rank >= k else [2] * k
        if draw(st.booleans()):
            base[draw(st.integers(0, k - 1))] += 1
        given_shape = tuple(base)
    return k, given_shape, draw(st.booleans()), draw(st.booleans()), shape


@pytest.mark.torch
@pytest.mark.jax
@pytest.mark.parametrize("kind", ["LayerNorm", "RMSNorm"])
@given(case=layer_norm_cases())
def test_layer_norm_rule_agrees_with_torch(kind, case):
    k, given_shape, affine, bias, shape = case
    normalized = given_shape or (tuple(shape[-k:]) if len(shape) >= k else (2,) * k)
    if kind == "LayerNorm":
        layer = LayerNorm(k, elementwise_affine=affine, bias=bias, normalized_shape=given_shape)
        module = nn.LayerNorm(normalized, elementwise_affine=affine, bias=bias)
    else:  # the same rule; no bias
        layer = RMSNorm(k, elementwise_affine=affine, normalized_shape=given_shape)
        module = nn.RMSNorm(normalized, elementwise_affine=affine)
    inf = _infer(layer, shape)
    torch_out = _run_torch(module, shape, training=False)
    if len(shape) == k and torch_out is not None:
        # torch normalizes an input with no batch dim; lazyshape never normalizes the batch dim
        assert inf is None
        return
    assert (inf is None) == (torch_out is None)
    if inf is not None:
        assert inf.output.shape == torch_out == _jax_eval_shape(layer, shape)
        assert tuple(inf.params.get("weight", ls.ParamSpec(normalized)).shape) == normalized


@st.composite
def group_norm_cases(draw):
    groups = draw(st.integers(1, 4))
    channels = draw(st.integers(1, 8))
    rank = draw(st.integers(1, 4))
    shape = _shape(draw, rank, channels)
    num_channels = draw(st.none() | st.sampled_from([groups, 2 * groups]))
    return groups, channels, num_channels, draw(st.booleans()), shape


@pytest.mark.torch
@pytest.mark.jax
@given(group_norm_cases())
def test_group_norm_rule_agrees_with_torch_functional(case):
    groups, channels, num_channels, affine, shape = case
    layer = GroupNorm(groups, affine=affine, num_channels=num_channels)
    size = num_channels or channels
    weight = torch.ones(size) if affine else None
    try:
        torch_out = tuple(F.group_norm(torch.randn(shape), groups, weight, weight).shape)
    except (ValueError, RuntimeError):
        torch_out = None
    inf = _infer(layer, shape)
    if inf is None and torch_out is not None:
        assert not affine and num_channels != channels  # a given size is always checked
        return
    assert (inf is None) == (torch_out is None), (inf, torch_out)
    if inf is not None:
        assert inf.output.shape == torch_out == _jax_eval_shape(layer, shape)


@st.composite
def symbolic_cases(draw):
    family = draw(st.sampled_from(["BatchNorm2d", "InstanceNorm2d", "LayerNorm", "GroupNorm"]))
    channels = draw(st.sampled_from([2, 4]))
    shape = _shape(draw, 4, channels)
    if family == "BatchNorm2d":
        layer = BatchNorm2d(track_running_stats=draw(st.booleans()))
    elif family == "InstanceNorm2d":
        layer = InstanceNorm2d(affine=draw(st.booleans()))
    elif family == "LayerNorm":
        layer = LayerNorm(draw(st.integers(1, 3)))
    else:
        layer = GroupNorm(draw(st.sampled_from([1, 2, 4])))
    names = ("B", "C", "H", "W")
    sym = tuple(n if draw(st.booleans()) else d for n, d in zip(names, shape, strict=True))
    return layer, sym, dict(zip(names, shape, strict=True)), shape


@given(symbolic_cases())
def test_symbolic_then_bind_equals_bind_then_infer(case):
    layer, sym, values, shape = case
    concrete = _infer(layer, shape)
    if concrete is None:
        return
    symbolic = ls.infer(layer, sym)  # never stricter than a concrete shape
    used = {k: v for k, v in values.items() if k in sym}
    assert bind_shape(symbolic.output.shape, used) == concrete.output.shape
    bound = symbolic.bind(**used)
    assert bound.output.shape == concrete.output.shape
    for name, spec in concrete.params.items():
        assert bind_shape(symbolic.params[name].shape, used) == spec.shape
        assert bound.params[name].shape == spec.shape


# -- every layer on every backend --------------------------------------------------------

CASES = {
    "bn1d-2d": (BatchNorm1d, lambda: nn.BatchNorm1d(3), (6, 3)),
    "bn1d-3d": (BatchNorm1d, lambda: nn.BatchNorm1d(3), (4, 3, 5)),
    "bn2d": (BatchNorm2d, lambda: nn.BatchNorm2d(3), (2, 3, 4, 4)),
    "bn3d": (BatchNorm3d, lambda: nn.BatchNorm3d(2), (2, 2, 2, 3, 3)),
    "bn2d-no-affine": (lambda: BatchNorm2d(affine=False), lambda: nn.BatchNorm2d(3, affine=False), (2, 3, 4, 4)),
    "bn2d-no-stats": (lambda: BatchNorm2d(track_running_stats=False), lambda: nn.BatchNorm2d(3, track_running_stats=False), (2, 3, 4, 4)),
    "bn2d-bare": (lambda: BatchNorm2d(affine=False, track_running_stats=False), lambda: nn.BatchNorm2d(3, affine=False, track_running_stats=False), (2, 3, 4, 4)),
    "bn2d-cumulative": (lambda: BatchNorm2d(momentum=None, eps=1e-3), lambda: nn.BatchNorm2d(3, momentum=None, eps=1e-3), (2, 3, 4, 4)),
    "bn2d-no-bias": (lambda: BatchNorm2d(bias=False, momentum=0.3), lambda: nn.BatchNorm2d(3, bias=False, momentum=0.3), (2, 3, 4, 4)),
    "in1d": (InstanceNorm1d, lambda: nn.InstanceNorm1d(3), (2, 3, 6)),
    "in1d-given": (lambda: InstanceNorm1d(num_features=3), lambda: nn.InstanceNorm1d(3), (2, 3, 6)),
    "in2d-affine": (lambda: InstanceNorm2d(affine=True), lambda: nn.InstanceNorm2d(3, affine=True), (2, 3, 4, 4)),
    "in2d-stats": (lambda: InstanceNorm2d(track_running_stats=True), lambda: nn.InstanceNorm2d(3, track_running_stats=True), (2, 3, 4, 4)),
    "in3d-affine-stats": (lambda: InstanceNorm3d(affine=True, track_running_stats=True, momentum=0.2), lambda: nn.InstanceNorm3d(2, affine=True, track_running_stats=True, momentum=0.2), (2, 2, 2, 3, 3)),
    "in2d-stats-no-momentum": (lambda: InstanceNorm2d(track_running_stats=True, momentum=None), lambda: nn.InstanceNorm2d(3, track_running_stats=True, momentum=None), (2, 3, 4, 4)),
    "ln": (LayerNorm, lambda: nn.LayerNorm(5), (2, 3, 5)),
    "ln2": (lambda: LayerNorm(2, eps=1e-3), lambda: nn.LayerNorm((4, 5), eps=1e-3), (2, 3, 4, 5)),
    "ln-no-bias": (lambda: LayerNorm(bias=False), lambda: nn.LayerNorm(5, bias=False), (2, 5)),
    "ln-no-affine": (lambda: LayerNorm(elementwise_affine=False), lambda: nn.LayerNorm(5, elementwise_affine=False), (2, 3, 5)),
    "ln-no-affine-given": (lambda: LayerNorm(elementwise_affine=False, normalized_shape=5), lambda: nn.LayerNorm(5, elementwise_affine=False), (2, 3, 5)),
    "rms": (RMSNorm, lambda: nn.RMSNorm(5), (2, 3, 5)),
    "rms2-eps": (lambda: RMSNorm(2, eps=1e-3), lambda: nn.RMSNorm((4, 5), eps=1e-3), (2, 3, 4, 5)),
    "rms-no-affine": (lambda: RMSNorm(elementwise_affine=False), lambda: nn.RMSNorm(5, elementwise_affine=False), (2, 3, 5)),
    "gn": (lambda: GroupNorm(2), lambda: nn.GroupNorm(2, 4), (2, 4, 3, 3)),
    "gn-1": (lambda: GroupNorm(1), lambda: nn.GroupNorm(1, 3), (2, 3, 5)),
    "gn-no-affine": (lambda: GroupNorm(3, affine=False), lambda: nn.GroupNorm(3, 6, affine=False), (2, 6, 4)),
    "gn-no-affine-given": (lambda: GroupNorm(3, affine=False, num_channels=6), lambda: nn.GroupNorm(3, 6, affine=False), (2, 6, 4)),
}
BACKENDS = [
    "numpy",
    pytest.param("torch", marks=pytest.mark.torch),
    pytest.param("jax", marks=pytest.mark.jax),
]


def _data(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * 2 + 1).astype(np.float32)


def _trained_torch(make_torch: Any, seed: int = 0) -> nn.Sequential:
    """A hand-written torch model with non-trivial weights and running statistics."""
    h = nn.Sequential(make_torch())
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in h.state_dict().items():
            if name.endswith("num_batches_tracked"):
                t.fill_(5)
            elif name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=g))
    return h.eval()


@pytest.mark.torch
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_eval_agrees_with_torch_and_numpy(backend, case):
    make, make_torch, shape = CASES[case]
    x = _data(shape)
    net = ls.Sequential(make())
    inferred = ls.infer(net, shape)
    h = _trained_torch(make_torch)
    state = h.state_dict()
    expected = h(torch.from_numpy(x)).detach().numpy()

    m = ls.build(ls.Sequential(make()), backend, rng="portable", seed=3)
    m.load_state_dict(state)  # uninitialized: materialized from the state's shapes
    assert m.initialized
    if hasattr(m, "eval"):
        m.eval()
    y = ls.to_numpy(m(ls.asarray(x, backend)))
    assert y.shape == tuple(inferred.output.shape) == expected.shape
    assert str(y.dtype) == inferred.output.dtype
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)

    ref = ls.build(ls.Sequential(make()), "numpy")
    ref.load_state_dict(state)
    np.testing.assert_allclose(y, ref(x), rtol=1e-4, atol=1e-4)
    assert list(m.state_dict()) == list(inferred.params) == list(state)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", ["bn2d", "in2d-affine", "ln2", "rms", "gn"])
def test_portable_init_is_identical_on_every_backend(backend, case):
    make, _, shape = CASES[case]
    x = _data(shape)
    m = ls.build(ls.Sequential(make()), backend, rng="portable", seed=1)
    if hasattr(m, "eval"):
        m.eval()
    y = ls.to_numpy(m(ls.asarray(x, backend)))
    ref = ls.build(ls.Sequential(make()), "numpy", rng="portable", seed=1)
    np.testing.assert_allclose(y, ref(x), rtol=1e-5, atol=1e-5)
    ours = {k: ls.to_numpy(v) for k, v in m.state_dict().items()}
    for name, value in ref.state_dict().items():
        np.testing.assert_array_equal(ours[name], value)


@pytest.mark.torch
def test_numpy_uses_the_running_statistics():
    h = _trained_torch(lambda: nn.BatchNorm2d(3))
    m = ls.build(ls.Sequential(BatchNorm2d()), "numpy")
    m.load_state_dict(h.state_dict())
    x = _data((1, 3, 1, 1))  # one value per channel: fine in evaluation
    np.testing.assert_allclose(m(x), h(torch.from_numpy(x)).detach().numpy(), rtol=1e-5, atol=1e-5)


# -- torch: native modules, train and eval ----------------------------------------------


def _assert_same_state(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert sa[k].dtype == sb[k].dtype, k
        assert torch.equal(sa[k], sb[k]), k


@pytest.mark.torch
@pytest.mark.parametrize("case", sorted(CASES))
def test_torch_native_equals_the_hand_written_module_in_train_and_eval(case):
    make, make_torch, shape = CASES[case]
    torch.manual_seed(0)
    m = ls.build(ls.Sequential(make()), "torch").materialize(shape)
    torch.manual_seed(0)
    h = nn.Sequential(make_torch())
    _assert_same_state(m, h)
    assert type(m[0]) is type(h[0])
    assert repr(m[0]) == repr(h[0])
    for step in range(3):  # training forwards update the running statistics
        x = torch.from_numpy(_data(shape, seed=step))
        y, want = m(x), h(x)
        assert torch.equal(y, want)
    _assert_same_state(m, h)
    m.eval()
    h.eval()
    x = torch.from_numpy(_data(shape, seed=9))
    assert torch.equal(m(x), h(x))


@pytest.mark.torch
def test_torch_load_torchvision_style_batch_norm_state():
    # torchvision's ResNet stem: conv1 / bn1 / ...; the bn state carries num_batches_tracked
    h = nn.Sequential(OrderedDict(bn1=nn.BatchNorm2d(4), ln=nn.LayerNorm(6)))
    h.train()
    for seed in range(4):
        h(torch.from_numpy(_data((3, 4, 5, 6), seed)))
    h.eval()
    state = h.state_dict()
    assert int(state["bn1.num_batches_tracked"]) == 4
    m = ls.build(ls.Sequential({"bn1": BatchNorm2d(), "ln": LayerNorm()}), "torch")
    assert not m.initialized
    sd = m.state_dict()
    assert repr(sd["bn1.running_mean"].partial_shape) == "(?,)"
    assert repr(sd["bn1.num_batches_tracked"].partial_shape) == "()"
    m.load_state_dict(state)
    assert m.initialized
    assert type(m.bn1) is nn.BatchNorm2d and type(m.ln) is nn.LayerNorm
    _assert_same_state(m, h)
    m.eval()
    x = torch.from_numpy(_data((2, 4, 5, 6), 9))
    assert torch.equal(m(x), h(x))
    with pytest.raises(SE, match=r"BatchNorm2d at 'bn1': `bn1.weight` of shape \(4,\); got shape \(3,\)"):
        bad = nn.Sequential(OrderedDict(bn1=nn.BatchNorm2d(3), ln=nn.LayerNorm(6)))
        m.load_state_dict(bad.state_dict())
    _assert_same_state(m, h)


@pytest.mark.torch
def test_torch_training_with_one_value_per_channel_is_a_shape_error():
    m = ls.build(ls.Sequential(BatchNorm2d()), "torch")
    m(torch.randn(2, 3, 1, 1))  # materialized in training mode
    with pytest.raises(SE, match=r"BatchNorm2d: expected more than 1 value per channel \(N \* prod\(spatial\) > 1\) in training; got input shape \(1, 3, 1, 1\)"):
        m(torch.randn(1, 3, 1, 1))
    assert int(m[0].num_batches_tracked) == 1  # nothing was computed or updated
    m.eval()
    assert m(torch.randn(1, 3, 1, 1)).shape == (1, 3, 1, 1)

    m = ls.build(ls.Sequential(BatchNorm1d()), "torch")
    with pytest.raises(SE, match=r"more than 1 value per channel .* in training; got input shape \(1, 3\)"):
        m(torch.randn(1, 3))

    m = ls.build(ls.Sequential(InstanceNorm2d(track_running_stats=True)), "torch")
    with pytest.raises(SE, match=r"InstanceNorm2d: expected more than 1 spatial element \(prod\(spatial\) > 1\) in training; got input shape \(2, 3, 1, 1\)"):
        m(torch.randn(2, 3, 1, 1))
    m.eval()
    assert m(torch.randn(2, 3, 1, 1)).shape == (2, 3, 1, 1)

    # the generic wrapper (no native module) checks in its forward too
    m = ls.build(ls.Sequential(InstanceNorm2d(track_running_stats=True, num_features=3)), "torch")
    m(torch.randn(2, 3, 2, 2))
    with pytest.raises(SE, match=r"more than 1 spatial element"):
        m(torch.randn(2, 3, 1, 1))


@pytest.mark.torch
def test_torch_model_after_eval_keeps_running_statistics():
    m = ls.build(ls.Sequential(BatchNorm1d()), "torch")
    m.eval()
    x = torch.randn(4, 3)
    m(x)
    assert int(m[0].num_batches_tracked) == 0
    assert torch.equal(m[0].running_mean, torch.zeros(3))


# -- JAX: running statistics as explicit state --------------------------------------------

TRAINED = sorted(c for c in CASES if c.startswith(("bn", "in")))


@pytest.mark.jax
@pytest.mark.torch
@pytest.mark.parametrize("case", TRAINED)
def test_jax_training_matches_torch(case):
    make, make_torch, shape = CASES[case]
    m = ls.build(ls.Sequential(make()), "jax")
    h = nn.Sequential(make_torch()).train()
    params = m.init(jax.random.key(0), shape)
    step = jax.jit(lambda p, x: m.apply(p, x, training=True, mutable=["batch_stats"]))
    for i in range(3):
        x = _data(shape, seed=i)
        y, updates = step(params, x)
        params = {**params, **updates}
        np.testing.assert_allclose(
            np.asarray(y), h(torch.from_numpy(x)).detach().numpy(), rtol=1e-4, atol=1e-4
        )
    want = h.state_dict()
    flat = {f"0.{k}": v for c in params.values() for k, v in c.get("0", {}).items()}
    assert sorted(flat) == sorted(want)  # (jit returns dicts in sorted key order)
    for name, value in want.items():  # running statistics and num_batches_tracked
        np.testing.assert_allclose(np.asarray(flat[name]), value.numpy(), rtol=1e-5, atol=1e-5)
    h.eval()
    x = _data(shape, seed=7)
    np.testing.assert_allclose(
        np.asarray(jax.jit(m.apply)(params, x)), h(torch.from_numpy(x)).detach().numpy(),
        rtol=1e-4, atol=1e-4,
    )


@pytest.mark.jax
def test_jax_training_without_mutable_is_an_error_only_when_buffers_change():
    m = ls.build(ls.Sequential(BatchNorm2d()), "jax")
    x = _data((2, 3, 4, 4))
    params = m.init(jax.random.key(0), x.shape)
    with pytest.raises(ValueError, match=r"BatchNorm2d at '0' updates its buffers \(`0.num_batches_tracked`\) in training; call apply\(\.\.\., training=True, mutable=\['batch_stats'\]\)"):
        m.apply(params, x, training=True)
    for layer in (LayerNorm(), GroupNorm(3), BatchNorm2d(track_running_stats=False)):
        mm = ls.build(ls.Sequential(layer), "jax")
        p = mm.init(jax.random.key(0), x.shape)
        y = mm.apply(p, x, training=True)  # batch statistics, no state to update
        y2, p2 = mm.apply(p, x, training=True, mutable=True)
        np.testing.assert_array_equal(y, y2)
        assert jax.tree_util.tree_structure(p2) == jax.tree_util.tree_structure(p)


@pytest.mark.jax
def test_jax_training_with_one_value_per_channel_is_a_shape_error():
    m = ls.build(ls.Sequential(BatchNorm2d()), "jax")
    params = m.init(jax.random.key(0), (1, 3, 1, 1))
    x = _data((1, 3, 1, 1))
    with pytest.raises(SE, match=r"BatchNorm2d at '0': expected more than 1 value per channel \(N \* prod\(spatial\) > 1\) in training; got input shape \(1, 3, 1, 1\)"):
        m.apply(params, x, training=True, mutable=True)
    assert m.apply(params, x).shape == (1, 3, 1, 1)  # evaluation: running statistics


def test_the_shared_forward_checks_training_inputs_on_numpy_arrays_too():
    layer = BatchNorm1d()
    params = {"weight": np.ones(3, np.float32), "bias": np.zeros(3, np.float32),
              "running_mean": np.zeros(3, np.float32), "running_var": np.ones(3, np.float32),
              "num_batches_tracked": np.zeros((), np.int64)}
    x = _data((1, 3))
    with pytest.raises(SE, match=r"BatchNorm1d: expected more than 1 value per channel"):
        layer.forward(params, x, ctx=Context(training=True))
    np.testing.assert_allclose(layer.forward(params, x, ctx=Context()), x / np.sqrt(1 + 1e-5), rtol=1e-6)


@pytest.mark.jax
@pytest.mark.parametrize(
    "make", [lambda: LayerNorm(2), lambda: GroupNorm(2), lambda: InstanceNorm2d(affine=True)]
)
def test_jax_grad_and_vmap(make):
    x = _data((2, 4, 3, 3))
    m = ls.build(ls.Sequential(make()), "jax")
    params = m.init(jax.random.key(0), x.shape)
    grads = jax.grad(lambda p: jnp.sum(m.apply(p, x, training=True) ** 3))(params)
    assert jax.tree_util.tree_structure(grads) == jax.tree_util.tree_structure(params)
    batched = jax.vmap(lambda xi: m.apply(params, xi))(jnp.stack([x, x + 1]))
    np.testing.assert_allclose(batched[1], m.apply(params, x + 1), rtol=1e-5, atol=1e-5)


@pytest.mark.jax
def test_jax_grad_through_batch_norm_training():
    x = _data((2, 4, 3, 3))
    m = ls.build(ls.Sequential(BatchNorm2d()), "jax")
    variables = m.init(jax.random.key(0), x.shape)

    def loss(p):
        y, new = m.apply({**variables, "params": p}, x, training=True, mutable=["batch_stats"])
        return jnp.sum(y * jnp.arange(y.size).reshape(y.shape)), new

    # the buffers (num_batches_tracked is an integer) are apart from the params
    grads, new = jax.grad(loss, has_aux=True)(variables["params"])
    assert grads["0"]["weight"].shape == (4,)
    assert int(new["batch_stats"]["0"]["num_batches_tracked"]) == 1

