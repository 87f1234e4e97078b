"""Propagation: tables of (model, input specs) -> output spec | (ShapeError, regex),
with ints, symbols and unknown dims mixed."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import lazyshape as ls
from lazyshape.dims import Sym, format_dim, format_shape

B, H, W, T = Sym("B"), Sym("H"), Sym("W"), Sym("T")


def mlp() -> ls.Sequential:
    return ls.Sequential(ls.Linear(256), ls.ReLU(), ls.Linear(10, in_features=256))


SEQUENTIAL_TABLE = [
    # (model factory, input shape, expected output shape or (ShapeError, regex))
    (mlp, (2, 20), (2, 10)),
    (mlp, ("B", 20), (B, 10)),
    (mlp, ("B", "T", 20), (B, T, 10)),
    (mlp, (None, 20), "(?, 10)"),
    (mlp, ("B", None), (B, 10)),
    (lambda: ls.Sequential(ls.Linear(8, in_features=20)), (4, 30),
     (ls.ShapeError, r"Linear at '0': expected last input dim 20 \(in_features\); got input shape \(4, 30\)")),
    (lambda: ls.Sequential(ls.Linear(8)), (),
     (ls.ShapeError, r"Linear at '0': expected an input with at least 1 dims \(\*, in_features\); got input shape \(\) \(0 dims\)")),
    (lambda: ls.Sequential(ls.Flatten(), ls.Linear(5)), ("B", 3, "H", "W"), (B, 5)),
    (lambda: ls.Sequential(ls.Flatten(), ls.Linear(5)), (2, 3, 4, 5), (2, 5)),
    (lambda: ls.Sequential(ls.Flatten(2, 3)), ("B", 3, "H", "W"), (B, 3, H * W)),
    (lambda: ls.Sequential(ls.Flatten(0)), (2, 3, 4), (24,)),
    (lambda: ls.Sequential(ls.Flatten(2, 1)), (2, 3, 4),
     (ls.ShapeError, r"Flatten at '0': `start_dim` not after `end_dim`; got `start_dim` \(=2\), `end_dim` \(=1\)")),
    (lambda: ls.Sequential(ls.Flatten(3)), (2, 3),
     (ls.ShapeError, r"Flatten at '0': `start_dim` in \[-2, 1\] for an input with 2 dims; got `start_dim` \(=3\)")),
    (lambda: ls.Sequential(ls.Flatten(0)), (), (1,)),  # a scalar counts as 1-d (torch.flatten)
    (lambda: ls.Sequential(ls.Flatten(-1, 0)), (), (1,)),
    (lambda: ls.Sequential(ls.Flatten()), (),
     (ls.ShapeError, r"Flatten at '0': `start_dim` and `end_dim` in \[-1, 0\] for a 0-d input \(flattened as a 1-d one, as torch.flatten\); got `start_dim` \(=1\), `end_dim` \(=-1\) for input shape \(\)")),
    (lambda: ls.Sequential(ls.Flatten(0, -2)), (),
     (ls.ShapeError, r"Flatten at '0': `start_dim` and `end_dim` in \[-1, 0\] for a 0-d input .*; got `start_dim` \(=0\), `end_dim` \(=-2\)")),
    (lambda: ls.Sequential(ls.Unflatten(1, (3, -1))), (2, 12), (2, 3, 4)),
    (lambda: ls.Sequential(ls.Unflatten(1, (3, 4))), ("B", 12), (B, 3, 4)),
    (lambda: ls.Sequential(ls.Unflatten(1, (5, -1))), (2, 12),
     (ls.ShapeError, r"Unflatten at '0': `sizes` whose known sizes divide the input's element count; got sizes \(5, -1\) \(product 5\) for 12 elements")),
    (lambda: ls.Sequential(ls.Unflatten(1, (3, 5))), (2, 12),
     (ls.ShapeError, r"Unflatten at '0': `sizes` with as many elements as the input; got sizes \(3, 5\) \(15 elements\) for 12 elements")),
    (lambda: ls.Sequential(ls.Unflatten(-1, (2, -1))), ("B", "T", 2 * T), (B, T, 2, T)),
    (lambda: ls.Sequential(ls.Reshape(4, -1)), ("B", 8, 3), (B, 4, 6)),
    (lambda: ls.Sequential(ls.Reshape(-1)), ("B", 3, "H", "W"), (B, 3 * H * W)),
    (lambda: ls.Sequential(ls.Reshape(5, -1)), (2, 8, 3),
     (ls.ShapeError, r"Reshape at '0': a target shape whose known sizes divide")),
    (lambda: ls.Sequential(ls.Softmax(2)), (2, 3),
     (ls.ShapeError, r"Softmax at '0': `dim` in \[-2, 1\] for an input with 2 dims; got `dim` \(=2\)")),
    (lambda: ls.Sequential(ls.Softmax(0)), (), ()),  # a scalar counts as 1-d (torch)
    (lambda: ls.Sequential(ls.Softmax(-1)), (), ()),
    (lambda: ls.Sequential(ls.Softmax(1)), (),
     (ls.ShapeError, r"Softmax at '0': `dim` in \[-1, 0\] for a 0-d input \(a scalar counts as 1-d, as in torch\); got `dim` \(=1\) for input shape \(\)")),
    (lambda: ls.Sequential(ls.ReLU(), ls.GELU(), ls.Tanh(), ls.Sigmoid(), ls.SiLU(),
                           ls.LeakyReLU(0.2), ls.Softmax(), ls.Dropout(0.1), ls.Identity()),
     ("B", "T", 7), (B, T, 7)),
    (lambda: ls.Sequential(ls.Sequential(ls.Linear(4), ls.ReLU()), ls.Linear(2)), ("B", 3), (B, 2)),
    (lambda: ls.Sequential(ls.Sequential(ls.Linear(4), ls.Linear(3, in_features=5))), (2, 3),
     (ls.ShapeError, r"Linear at '0\.1': expected last input dim 5 \(in_features\); got input shape \(2, 4\)")),
]


@pytest.mark.parametrize(("factory", "shape", "expected"), SEQUENTIAL_TABLE)
def test_sequential_table(factory, shape, expected):
    model = factory()
    if isinstance(expected, tuple) and expected and expected[0] is ls.ShapeError:
        with pytest.raises(ls.ShapeError, match=expected[1]):
            ls.infer(model, shape)
        return
    out = ls.infer(model, shape).output
    if isinstance(expected, str):
        assert format_shape(out.shape) == expected
    else:
        assert out.shape == expected
    assert out.dtype == "float32"


def test_integer_input_to_linear_is_a_shape_error():
    with pytest.raises(ls.ShapeError, match=r"Linear at '0': expected a floating-point input; got dtype int64"):
        ls.infer(ls.Sequential(ls.Linear(3)), ls.TensorSpec((2, 4), "int64"))


def test_identity_keeps_any_dtype():
    assert ls.infer(ls.Sequential(ls.Identity()), ls.TensorSpec((2,), "int32")).output.dtype == "int32"


# -- functional API ---------------------------------------------------------------


def residual_block():
    x = ls.Input(("B", 16))
    h = ls.Linear(16, name="fc1")(x)
    h = ls.ReLU()(h)
    y = ls.Add()(x, h)
    return ls.Model(inputs=x, outputs=y)


def two_tower():
    a = ls.Input(("B", 8), name="a")
    b = ls.Input(("B", 4), name="b")
    ha = ls.Linear(6)(a)
    hb = ls.Linear(6)(b)
    return ls.Model(inputs=[a, b], outputs=[ls.Concat(dim=1)(ha, hb), ls.Multiply()(ha, hb)])


def test_functional_residual():
    model = residual_block()
    inf = ls.infer(model)
    assert inf.output.shape == (B, 16)
    assert list(inf.params) == ["fc1.weight", "fc1.bias"]
    assert [r.path for r in inf.layers] == ["fc1", "relu", "add"]
    assert ls.infer(model, (3, 16)).output.shape == (3, 16)


def test_functional_input_mismatch():
    with pytest.raises(ls.ShapeError, match=r"Input at 'input0': input 0 of shape \(B, 16\) \(dim 1 = 16\); got shape \(3, 15\)"):
        ls.infer(residual_block(), (3, 15))
    with pytest.raises(ls.ShapeError, match=r"Input at 'input0': input 0 of shape \(B, 16\) \(rank 2\); got shape \(3, 4, 16\)"):
        ls.infer(residual_block(), (3, 4, 16))


def test_functional_several_inputs_and_outputs():
    inf = ls.infer(two_tower())
    assert [o.shape for o in inf.outputs] == [(B, 12), (B, 6)]
    assert set(inf.params) == {"linear.weight", "linear.bias", "linear_1.weight", "linear_1.bias"}
    with pytest.raises(ValueError, match="use .outputs"):
        _ = inf.output


def test_symbolic_shape_is_known_while_defining():
    x = ls.Input(("B", 3, "H", "W"))
    h = ls.Flatten(2)(x)
    assert h.shape == (B, 3, H * W)
    with pytest.raises(ls.ShapeError, match=r"Linear at 'fc': expected last input dim 4 \(in_features\); got input shape \(B, 3, 5\)"):
        ls.Linear(2, in_features=4, name="fc")(ls.Input(("B", 3, 5)))


def test_undecidable_in_features_is_assumed_and_reported():
    x = ls.Input(("B", "H", "W"))
    model = ls.Model(x, ls.Linear(2, in_features=12, name="fc")(ls.Flatten(1)(x)))
    inf = ls.infer(model)
    assert inf.params["fc.weight"].shape == (2, 12)
    assert [(p, str(a), b) for p, a, b in inf.assumptions] == [("fc", "H*W", 12)]


def test_merge_of_different_constants_is_an_error():
    a = ls.Input(("B", 8))
    b = ls.Input(("B", 4))
    with pytest.raises(ls.ShapeError, match=r"Add at 'add': input shapes that broadcast together; got shapes \(B, 8\), \(B, 4\)"):
        ls.Add()(a, b)
    with pytest.raises(ls.ShapeError, match=r"Concat at 'concat': inputs equal on every dim but 1 \(`dim`=1\); got shapes \(B, 8, 2\), \(B, 4, 3\)"):
        ls.Concat()(ls.Input(("B", 8, 2)), ls.Input(("B", 4, 3)))


def test_merge_of_two_symbols_is_recorded_not_silently_assumed():
    a = ls.Input(("B", "N"))
    b = ls.Input(("B", "M"))
    model = ls.Model([a, b], ls.Add()(a, b))
    inf = ls.infer(model)
    assert inf.output.shape == (B, Sym("N"))
    assert [(p, str(x), str(y)) for p, x, y in inf.assumptions] == [("add", "N", "M")]
    assert "Assumed at 'add': N == M" in ls.summary(model)


def test_broadcasting_with_ones():
    a = ls.Input(("B", 1, 5))
    b = ls.Input((4, 1))
    out = ls.Multiply()(a, b)
    assert out.shape == (B, 4, 5)


def test_shared_layer_shares_parameters():
    fc = ls.Linear(8, name="shared")
    a = ls.Input(("B", 8))
    h = fc(fc(a))
    model = ls.Model(a, h)
    inf = ls.infer(model)
    assert list(inf.params) == ["shared.weight", "shared.bias"]
    assert [r.path for r in inf.layers] == ["shared", "shared@1"]
    assert inf.num_params == 8 * 8 + 8


def test_shared_layer_must_agree_on_shapes():
    fc = ls.Linear(8, name="fc")
    a = ls.Input(("B", 4))
    b = ls.Input(("B", 6))
    model = ls.Model([a, b], [fc(a), fc(b)])
    with pytest.raises(ls.ShapeError, match=r"Linear at 'fc@1': the same parameter shapes at every call of a shared layer \(first called at 'fc'\); got `fc.weight` \(8, 6\) here, \(8, 4\) at the first call"):
        ls.infer(model)


def test_model_requires_its_inputs():
    a = ls.Input((2, 3))
    b = ls.Input((2, 3))
    with pytest.raises(ValueError, match="not among the model's inputs"):
        ls.Model(a, ls.Add()(a, b))


def test_duplicate_names_rejected():
    with pytest.raises(ValueError, match="duplicate child name 'fc'"):
        ls.Sequential({"fc": ls.Linear(2), "x": ls.Linear(2, name="fc")}) and ls.Sequential(
            ls.Linear(2, name="fc"), ls.Linear(2, name="fc"))


@pytest.mark.parametrize(("layer", "stem"), [
    (ls.ReLU(), "relu"), (ls.LeakyReLU(), "leaky_relu"), (ls.GELU(), "gelu"), (ls.SiLU(), "silu"),
    (ls.Linear(2), "linear"), (ls.Multiply(), "multiply")])
def test_default_names(layer, stem):
    assert layer.default_name() == stem


def test_generated_names_are_stable():
    def make():
        x = ls.Input(("B", 4))
        h = ls.Linear(4)(x)
        h = ls.Linear(4)(h)
        return ls.Model(x, ls.ReLU()(h))

    assert list(ls.infer(make()).params) == list(ls.infer(make()).params) == [
        "linear.weight", "linear.bias", "linear_1.weight", "linear_1.bias"]


def test_deep_functional_model_has_no_recursion_limit():
    x = ls.Input(("B", 4))
    h = x
    for _ in range(3000):
        h = ls.ReLU()(h)
    assert ls.infer(ls.Model(x, h)).output.shape == (B, 4)


# -- Inference record ---------------------------------------------------------------


def test_inference_fields():
    inf = ls.infer(mlp(), ("B", 20))
    assert inf.num_params == 20 * 256 + 256 + 256 * 10 + 10
    assert inf.num_bytes == 4 * inf.num_params
    assert inf.unresolved == {}
    assert inf.params["0.weight"].shape == (256, 20)
    assert inf.params["0.weight"].dtype == "float32"
    assert [(r.path, r.kind) for r in inf.layers] == [("0", "Linear"), ("1", "ReLU"), ("2", "Linear")]
    assert inf.layers[0].inputs[0].shape == (B, 20)
    assert inf.layer("2").outputs[0].shape == (B, 10)


def test_unresolved_names_the_symbols_each_parameter_needs():
    inf = ls.infer(ls.Sequential(ls.Flatten(), ls.Linear(7)), ("B", 3, "H", None))
    assert inf.unresolved == {"1.weight": frozenset({"H", "input0.shape[3]"})}
    assert ls.dims.is_symbolic(inf.num_params)
    bound = ls.infer(ls.Sequential(ls.Flatten(), ls.Linear(7)), ("B", 3, "H", "W")).bind(H=4, W=5)
    assert bound.params["1.weight"].shape == (7, 60)
    assert bound.output.shape == (B, 7)


def test_batch_independence_check():
    class BatchWeight(ls.Layer):
        def output_spec(self, x):
            return x

        def param_specs(self, x):
            return {"w": ls.ParamSpec((x.shape[0], x.shape[1]))}

    with pytest.raises(ls.ShapeError, match=r"BatchWeight at '0': parameter shapes that do not depend on the batch dim; got `w` of shape \(B, 3\) from input shapes \(B, 3\)"):
        ls.infer(ls.Sequential(BatchWeight()), ("B", 3))
    assert ls.infer(ls.Sequential(BatchWeight()), ("B", 3), batch_dim=None).params["0.w"].shape == (B, 3)


def test_wrong_number_of_inputs():
    with pytest.raises(ls.ShapeError, match=r"Model: 2 input\(s\); got 1"):
        ls.infer(two_tower(), (2, 8))


def test_inputs_from_arrays_and_specs():
    np = pytest.importorskip("numpy")
    assert ls.infer(mlp(), np.zeros((3, 20), np.float32)).output.shape == (3, 10)
    f64 = ls.TensorSpec((3, 20), "float64")
    assert ls.infer(mlp(), f64, dtype="float64").output.dtype == "float64"
    with pytest.raises(TypeError, match="an input is a shape tuple, a TensorSpec or an array; got str"):
        ls.infer(mlp(), "B,20")


def test_cache_returns_the_same_inference():
    net = mlp()
    assert ls.infer(net, (2, 20)) is ls.infer(net, (2, 20))
    assert ls.infer(net, (2, 20)) is not ls.infer(net, (3, 20))


def test_custom_layer_errors_become_shape_errors():
    class Broken(ls.Layer):
        def output_spec(self, x):
            return ls.TensorSpec((x.shape[5],))

    with pytest.raises(ls.ShapeError, match=r"Broken at '0': the shape rule failed for these inputs; got IndexError: tuple index out of range \(input shapes \(2, 3\)\)"):
        ls.infer(ls.Sequential(Broken()), (2, 3))

    class NotASpec(ls.Layer):
        def output_spec(self, x):
            return x.shape

    with pytest.raises(ls.ShapeError, match=r"NotASpec at '0': output_spec to return a TensorSpec or a tuple of TensorSpecs; got tuple"):
        ls.infer(ls.Sequential(NotASpec()), (2, 3))


def test_summary_table():
    text = ls.summary(mlp(), ("B", 20))
    assert "0      Linear  (B, 20)      (B, 256)      weight (256, 20), bias (256,)   5,376" in text
    assert "Total params: 7,946" in text
    assert "Parameter memory: 31.0 KiB (float32)" in text
    sym = ls.summary(mlp(), ("B", None))
    assert "Total params: 256*? + 2826" in sym
    assert "Unresolved: 0.weight needs input0.shape[1]" in sym


def test_repr_shows_unknown_sizes_as_question_marks():
    assert repr(ls.Linear(256)) == "Linear(in_features=?, out_features=256, bias=True)"
    assert repr(mlp()).splitlines()[1] == "  (0): Linear(in_features=?, out_features=256, bias=True)"


def test_sequential_container_protocol():
    net = ls.Sequential({"fc": ls.Linear(4), "act": ls.ReLU()})
    assert len(net) == 2
    assert isinstance(net["fc"], ls.Linear) and net[0] is net["fc"]
    assert [type(layer).__name__ for layer in net] == ["Linear", "ReLU"]
    assert list(ls.infer(net, (1, 3)).params) == ["fc.weight", "fc.bias"]
    assert isinstance(net[1:], ls.Sequential) and len(net[1:]) == 1


@pytest.mark.parametrize(
    ("make", "regex"),
    [
        (lambda: ls.Linear(0), r"Linear: `out_features` to be a positive int; got `out_features` \(=0\)"),
        (lambda: ls.Linear(3, in_features=-2), r"Linear: `in_features` to be a positive int; got `in_features` \(=-2\)"),
        (lambda: ls.Dropout(1.5), r"Dropout: `p` in \[0, 1\]; got `p` \(=1.5\)"),
        (lambda: ls.Reshape(-1, -1), r"Reshape: `shape` of positive ints with at most one -1; got `shape` \(=\(-1, -1\)\)"),
        (lambda: ls.GELU("fast"), r"GELU: `approximate` 'none' or 'tanh'; got `approximate` \(='fast'\)"),
    ],
)
def test_bad_hyperparameters(make, regex):
    with pytest.raises(ls.ShapeError, match=regex):
        make()


# -- repeated blocks resolve once ------------------------------------------------------


def _resolved(model: ls.Layer, *inputs: object, replay: bool,
              monkeypatch: pytest.MonkeyPatch) -> ls.Inference:
    """`ls.infer` of a fresh copy, with repeated containers replayed or each walked."""
    import copy

    from lazyshape import _propagate

    with monkeypatch.context() as m:
        if not replay:
            m.setattr(_propagate._Pass, "enter",
                      lambda self, container, ins, prefix: (None, None))
        return ls.infer(copy.deepcopy(model), *inputs)


def _record(inf: ls.Inference) -> list[object]:
    return [(r.path, r.kind, r.inputs, r.outputs, r.params, r.flops, r.flops_backward,
             r.activation_bytes) for r in inf.layers] + [
        inf.assumptions, inf.bounds, inf.params, *_totals(inf), inf.peak_activation_bytes,
        inf.training_bytes]


def _totals(inf: ls.Inference) -> list[object]:
    return [inf.num_params, inf.num_buffers, inf.param_bytes, inf.flops, inf.activation_bytes]


def _fast_and_walked(model: ls.Layer, *inputs: object, monkeypatch: pytest.MonkeyPatch
                     ) -> tuple[ls.Inference, ls.Inference]:
    """`_resolved` with repeated containers replayed and with each walked, after
    checking that both give the same records and totals."""
    fast = _resolved(model, *inputs, replay=True, monkeypatch=monkeypatch)
    walked = _resolved(model, *inputs, replay=False, monkeypatch=monkeypatch)
    assert _record(fast) == _record(walked)
    return fast, walked


def _replayed(inf: ls.Inference) -> int:
    """How many nodes took another node's answer."""
    return len(inf._sources)


@pytest.mark.parametrize("name, spec, replayed", [
    ("vit_b_16", ("B", 3, 224, 224), 121),  # 11 of 12 encoder layers
    ("gpt2", ("B", "T"), 88),  # 11 of 12 blocks
    ("bert_base", ("B", "T"), 121),  # 11 of 12 encoder layers
    ("convnext_tiny", ("B", 3, "H", "W"), 154),  # every block but a stage's first
    ("resnet18", ("B", 3, "H", "W"), 7),  # layer1.1 repeats layer1.0
])
def test_repeated_blocks_resolve_as_when_each_is_walked(name, spec, replayed, monkeypatch):
    from lazyshape import zoo

    model = getattr(zoo, name)()
    fast, walked = _fast_and_walked(model, spec, monkeypatch=monkeypatch)
    assert (_replayed(fast), _replayed(walked)) == (replayed, 0)


def test_containers_of_one_structure_share_their_signature():
    """Equal signatures are one object (compared with ``is`` by the pass);
    hyperparameters are not part of a signature, structure is."""
    from lazyshape.zoo.convnext import cn_block

    a, b, c = cn_block(96), cn_block(192, stochastic_depth=0.1), cn_block(96)
    assert a._signature is b._signature is c._signature
    assert ls.Sequential(ls.Linear(4), ls.ReLU())._signature is not ls.Sequential(
        ls.ReLU(), ls.Linear(4))._signature
    assert a._primitives != c._primitives and len(a._primitives) == 11


def _block(p: float = 0.0, heads: int = 2, eps: float = 1e-5) -> ls.Sequential:
    """``(B, T, E) -> (B, T, E)``: attention (which assumes ``E % heads == 0``)."""
    return ls.Sequential(ls.MultiheadAttention(heads), ls.Dropout(p), ls.LayerNorm(eps=eps))


def test_a_repeated_block_takes_the_first_ones_answers_and_refiles_its_assumptions(
        monkeypatch):
    """Blocks of one structure on equal inputs: each node after the first block
    takes the answer of the node in its place, with the assumption it made filed
    at its own path; a node whose layer differs (an epsilon) runs its rules, and
    the rest of the block still takes the first block's answers. A difference in
    an attribute the rules do not read (a drop probability) is no difference."""
    model = ls.Sequential(_block(), _block(p=0.5), _block(eps=1e-3))
    fast, _ = _fast_and_walked(model, ("B", "T", "E"), monkeypatch=monkeypatch)
    assert ls.Dropout.shape_free_attributes == ("p",)
    assert [r.resolved.get("p") for r in fast.layers[1::3]] == [0.0, 0.5, 0.0]
    assert fast._sources == {3: 0, 4: 1, 5: 2, 6: 0, 7: 1}  # node 8 runs its rules
    assert [(path, format_dim(a), b) for path, a, b in fast.assumptions] == [
        (f"{i}.0", "E % 2", 0) for i in range(3)]


def _projection(hidden: int, heads: int = 2) -> ls.Sequential:
    return ls.Sequential(ls.MultiheadAttention(heads), ls.Dropout(0.0), ls.Linear(hidden))


def test_a_block_that_answers_otherwise_is_walked(monkeypatch):
    """A block of the first one's structure whose layer differs in a way that
    changes its outputs is walked on its own, nothing of the attempt kept."""
    x = ls.Input(("B", "T", "E"))
    a = _projection(8)(x)
    b = _projection(16)(x)  # the Linear answers otherwise: walked
    c = _projection(8, heads=4)(x)  # E % 4 == 0, filed at its own path; the rest replayed
    model = ls.Model(x, [a, b, c])
    fast, _ = _fast_and_walked(model, monkeypatch=monkeypatch)
    assert fast._sources == {7: 1, 8: 2}
    assert [format_shape(r.params["weight"].shape) for r in fast.layers if r.kind == "Linear"] == [
        "(8, E)", "(16, E)", "(8, E)"]
    assert [(path, format_dim(a), b) for path, a, b in fast.assumptions] == [
        ("sequential.0", "E % 2", 0), ("sequential_1.0", "E % 2", 0),
        ("sequential_2.0", "E % 4", 0)]
    # a block whose copy of a layer fails raises at that layer's own path
    bad = ls.Sequential(_block(), _block(heads=3))
    with pytest.raises(ls.ShapeError, match="'1.0'"):
        ls.infer(bad, ("B", "T", 8))


def test_a_layer_whose_rules_are_not_pure_runs_them_at_every_node():
    """A class whose rules read more than its attributes says so with
    ``memo_rules = False``: its rules run in every repeated block."""
    calls: list[str] = []

    class Counted(ls.Linear):
        def output_spec(self, x):
            calls.append("out")
            return super().output_spec(x)

    def model() -> ls.Sequential:
        return ls.Sequential(*[ls.Sequential(Counted(8), ls.ReLU()) for _ in range(3)])

    ls.infer(model(), ("B", 8))
    assert calls == ["out"]  # the first block's

    class Impure(Counted):
        memo_rules = False

    calls.clear()
    inf = ls.infer(ls.Sequential(*[ls.Sequential(Impure(8), ls.ReLU()) for _ in range(3)]),
                   ("B", 8))
    assert calls == ["out"] * 3
    assert list(inf.params) == [f"{i}.0.{k}" for i in range(3) for k in ("weight", "bias")]
    # a layer given an attribute of its own, or one that is an array, runs its rules
    for note in (None, np.zeros(3)):
        first, odd = (ls.Sequential(Counted(8), ls.ReLU()) for _ in range(2))
        if note is not None:
            first[0].note = np.zeros(3)  # type: ignore[attr-defined]
        odd[0].note = np.zeros(3)  # type: ignore[attr-defined]
        calls.clear()
        ls.infer(ls.Sequential(first, odd), ("B", 8))
        assert calls == ["out"] * 2


def test_a_layer_shared_across_repeated_blocks_keeps_its_first_calls_parameters(
        monkeypatch):
    shared = ls.Linear(8)
    model = ls.Sequential(*[ls.Sequential(shared, ls.ReLU(), ls.Linear(8)) for _ in range(3)])
    fast, _ = _fast_and_walked(model, ("B", 8), monkeypatch=monkeypatch)
    assert list(fast.params) == ["0.0.weight", "0.0.bias", "0.2.weight", "0.2.bias",
                                 "1.2.weight", "1.2.bias", "2.2.weight", "2.2.bias"]
    assert list(fast.params) == list(ls.infer(model, ("B", 8)).params)
    assert fast._shared_replays and fast.num_params == 4 * (8 * 8 + 8)  # counted once
    # a replayed block whose layers are its own counts them, times its repeats
    inf = ls.infer(ls.Sequential(*[ls.Sequential(ls.Linear(8), ls.BatchNorm1d())
                                   for _ in range(5)]), ("B", 8))
    assert not inf._shared_replays and len(inf._sources) == 8
    assert (inf.num_params, inf.num_buffers) == (5 * (8 * 8 + 8 + 2 * 8), 5 * (2 * 8 + 1))


def test_a_block_repeating_blocks_that_repeat_resolves_as_walked(monkeypatch):
    """A stage of repeated blocks repeated whole: the second stage takes the
    first's answers, those of its replayed block included, each node from the
    node whose rules ran. Totals read before the records equal those read after."""
    def stage() -> ls.Sequential:
        return ls.Sequential(_block(), _block(p=0.5))

    model = ls.Sequential(stage(), stage(), ls.Linear(4))
    fast = _resolved(model, ("B", "T", "E"), replay=True, monkeypatch=monkeypatch)
    totals = _totals(fast)  # (before the records are read)
    walked = _resolved(model, ("B", "T", "E"), replay=False, monkeypatch=monkeypatch)
    assert _record(fast) == _record(walked)
    assert totals == _totals(walked)
    assert fast._sources == {3: 0, 4: 1, 5: 2, **{6 + t: t % 3 for t in range(6)}}
    assert [r.path for r in fast.layers] == [
        f"{s}.{b}.{k}" for s in range(2) for b in range(2) for k in range(3)] + ["2"]
    assert [segment[0] for segment in fast._segments] == [6]  # the second stage, whole
    assert fast._counted() == [(0, 4), (1, 4), (2, 4), (12, 1)]  # rules ran once per answer
    assert [(path, format_dim(a), b) for path, a, b in fast.assumptions] == [
        (f"{s}.{b}.0", "E % 2", 0) for s in range(2) for b in range(2)]


def test_a_layer_first_called_in_a_replayed_block_keeps_its_parameters_there(monkeypatch):
    """A layer whose first call is in a replayed block and which is called again
    later: the later call reads the parameters at the first call's path."""
    blocks = [ls.Sequential(ls.Linear(8), ls.ReLU()) for _ in range(2)]
    again = blocks[1][0]
    model = ls.Sequential(*blocks, again, ls.Sequential(again, ls.ReLU()))
    fast, walked = _fast_and_walked(model, ("B", 8), monkeypatch=monkeypatch)
    assert [(r.path, r.param_path) for r in fast.layers] == [
        (r.path, r.param_path) for r in walked.layers]
    assert [r.param_path for r in fast.layers if r.kind == "Linear"] == ["0.0", "1.0", "1.0",
                                                                         "1.0"]
    assert list(fast.params) == ["0.0.weight", "0.0.bias", "1.0.weight", "1.0.bias"]
    assert fast.num_params == 2 * (8 * 8 + 8)
    assert [segment[0] for segment in fast._segments] == [2]  # the second block, whole


_KINDS = ("linear", "relu", "dropout", "norm", "attention")


def _layer(kind: str, draw: st.DrawFn) -> ls.Layer:
    if kind == "linear":
        return ls.Linear(draw(st.sampled_from([4, 8])))
    if kind == "relu":
        return ls.ReLU()
    if kind == "dropout":
        return ls.Dropout(draw(st.sampled_from([0.0, 0.1])))
    if kind == "norm":
        return ls.LayerNorm(eps=draw(st.sampled_from([1e-5, 1e-3])))
    return ls.MultiheadAttention(draw(st.sampled_from([1, 2, 4])))


@st.composite
def _repeated_blocks(draw: st.DrawFn) -> ls.Sequential:
    """Stages of blocks of one template, each block drawing its own
    hyperparameters (often equal to the others'), some with a residual add, some
    sharing a layer with the block before; a stage may repeat the one before
    (a copy, or its very blocks called again)."""
    import copy

    stages: list[ls.Layer] = []
    for _ in range(draw(st.integers(1, 3))):
        again = draw(st.sampled_from(["no", "copy", "same"])) if stages else "no"
        if again == "copy":
            stages.append(copy.deepcopy(stages[-1]))
            continue
        if again == "same":
            stages.append(ls.Sequential(*stages[-1]))  # (its layers called again)
            continue
        template = draw(st.lists(st.sampled_from(_KINDS), min_size=1, max_size=4))
        residual = draw(st.booleans())
        blocks: list[ls.Layer] = []
        previous: list[ls.Layer] = []
        for _ in range(draw(st.integers(2, 4))):
            layers = [previous[i] if previous and draw(st.integers(0, 5)) == 0
                      else _layer(kind, draw) for i, kind in enumerate(template)]
            previous = layers
            body = ls.Sequential(*layers)
            if residual:
                x = ls.Input(("B", "T", None))
                blocks.append(ls.Model(x, ls.Add()(body(x), x)))
            else:
                blocks.append(body)
        stages.append(ls.Sequential(*blocks))
    return ls.Sequential(*stages)


def _outcome(model: ls.Layer, spec: tuple[object, ...], replay: bool,
             monkeypatch: pytest.MonkeyPatch) -> object:
    try:
        return _record(_resolved(model, spec, replay=replay, monkeypatch=monkeypatch))
    except ls.ShapeError as e:
        return str(e)


@given(model=_repeated_blocks(), spec=st.sampled_from([("B", "T", "E"), (2, 3, 8), ("B", 5, 4)]))
def test_replayed_blocks_answer_as_walked_ones(model, spec):
    """Any model of repeated blocks (hyperparameters that differ or not, residual
    adds, layers shared between blocks) resolves to the same records, totals,
    assumptions and errors with the replay as with every block walked."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        fast = _outcome(model, spec, True, monkeypatch)
        walked = _outcome(model, spec, False, monkeypatch)
    assert fast == walked
