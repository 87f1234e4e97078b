"""Model structure: paths, shared layers, and agreement between the propagation
pass (which traces the structure without compiling) and the compiled program
the backends run."""

from __future__ import annotations

import pytest

import lazyshape as ls
from lazyshape import zoo
from lazyshape._graph import first_reader, program_of


def _shared_relu_model() -> ls.Model:
    x = ls.Input(("B", 8))
    relu = ls.ReLU(name="relu")
    block = ls.Sequential(ls.Linear(8), ls.ReLU(), name="blk")
    h = relu(block(x))
    h = relu(block(h))  # the same layer and the same container, called again
    return ls.Model(x, ls.Linear(3, name="head")(h))


def _models() -> list[tuple[str, ls.Layer, tuple[object, ...]]]:
    shared = ls.Linear(8)
    return [
        ("shared-calls", _shared_relu_model(), (("B", 8),)),
        ("same-instance-twice", ls.Sequential(shared, ls.ReLU(), shared), ((2, 8),)),
        ("lenet5", zoo.lenet5(), ((2, 1, 28, 28),)),
        ("resnet18", zoo.resnet18(), ((1, 3, 32, 32),)),
        ("gpt2", zoo.gpt2(vocab_size=50, max_len=16, num_layers=2, embed_dim=32, num_heads=2,
                          mlp_dim=64),
         ((2, 5),)),
        ("lstm", zoo.lstm_classifier(hidden_size=8, num_classes=3), ((2, 4, 6),)),
        ("single-layer", ls.Linear(4, name="fc"), ((2, 3),)),
    ]


@pytest.mark.parametrize("name,model,inputs", _models(), ids=[m[0] for m in _models()])
def test_pass_matches_the_compiled_program(name, model, inputs):
    inf = ls.infer(model, *inputs)
    program = program_of(model, len(inputs))
    got = [(r.path, r.param_path, r.kind) for r in inf.layers]
    want = [(n.path, n.param_path, n.layer.kind) for n in program.nodes]
    assert got == want
    assert len(set(r.path for r in inf.layers)) == len(inf.layers)  # paths are unique


def test_shared_calls_get_numbered_paths_and_share_parameters():
    inf = ls.infer(_shared_relu_model(), ("B", 8))
    paths = [r.path for r in inf.layers]
    assert paths == ["blk.0", "blk.1", "relu", "blk@1.0", "blk@1.1", "relu@1", "head"]
    by_path = {r.path: r for r in inf.layers}
    assert by_path["blk@1.0"].param_path == "blk.0"
    assert sorted(inf.params) == ["blk.0.bias", "blk.0.weight", "head.bias", "head.weight"]


def test_same_instance_twice_in_a_sequential_shares_parameters():
    fc = ls.Linear(8)
    inf = ls.infer(ls.Sequential(fc, ls.ReLU(), fc), (2, 8))
    assert sorted(inf.params) == ["0.bias", "0.weight"]
    assert inf.layers[2].param_path == "0"


def test_layer_names_cannot_contain_path_separators():
    with pytest.raises(ValueError, match=r"without '\.'"):
        ls.Linear(2, name="a.b")
    x = ls.Input(("B", 4))
    y = ls.Linear(2, name="fc@1")(x)  # `@k` numbers the k-th call of a layer
    with pytest.raises(ValueError, match=r"no '\.' or '@'"):
        ls.Model(x, y)


def test_bare_shape_dtype_comes_from_the_first_reader():
    emb = ls.Sequential(ls.Embedding(10, 4), ls.Flatten())
    assert first_reader(emb, 0) is emb[0]
    assert ls.infer(emb, (2, 3)).inputs[0].dtype == "int64"
    # a container that passes its input through untouched: the structure does
    # not say who reads it first; the compiled program does
    ids = ls.Input(("B", "T"), dtype="int64")
    passthrough = ls.Model(ids, ids)
    model = ls.Sequential(passthrough, ls.Embedding(10, 4))
    assert first_reader(model, 0) is None
    assert ls.infer(model, (2, 3)).inputs[0].dtype == "int64"
    assert ls.infer(model, (2, 3)).output.shape == (2, 3, 4)


def test_each_record_holds_its_nodes_local_parameters():
    from lazyshape._graph import program_of
    from lazyshape._runtime import node_values
    from lazyshape.zoo import gpt2

    fc = ls.Linear(6, name="fc")
    x = ls.Input(("B", 6))
    shared = ls.Model(x, fc(ls.ReLU()(fc(x))))
    cases = [
        (gpt2(vocab_size=11, max_len=8, num_layers=2, embed_dim=8, num_heads=2, mlp_dim=16),
         ((2, 4), "int64")),
        (shared, ((2, 6), "float32")),
        (ls.Linear(3), ((2, 5), "float32")),
        (ls.Sequential(ls.Sequential(ls.Linear(4), ls.ReLU()), ls.Linear(2)), ((2, 3), "float32")),
    ]
    for net, (shape, dtype) in cases:
        inf = ls.infer(net, ls.TensorSpec(shape, dtype))
        program = program_of(net, 1)
        assert [n.path for n in program.nodes] == [r.path for r in inf.layers]
        assert [n.param_path for n in program.nodes] == [r.param_path for r in inf.layers]
        groups = node_values(inf, inf.params)
        firsts = {}
        for rec, group in zip(inf.layers, groups, strict=True):
            assert group == {k: inf.params[rec.prefix + k] for k in rec.params}
            if rec.shared:  # a later call of a shared layer: the very dict of the first call
                assert group is firsts[rec.param_path]
            else:
                firsts[rec.path] = group
        assert sum(len(g) for g in firsts.values()) == len(inf.params)
        if net is cases[0][0]:  # dotted local names: `out_proj.weight` of node `h.0.attn`
            assert "out_proj.weight" in inf.layer("h.0.attn").params


@pytest.mark.parametrize("make", ["lenet5", "resnet18", "gpt2"])
@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_a_copy_of_a_definition_resolves_as_the_original(make, how):
    import copy
    import pickle

    from lazyshape import zoo

    net = getattr(zoo, make)()
    shape = {"lenet5": (2, 1, 28, 28), "resnet18": (2, 3, 32, 32), "gpt2": (2, 8)}[make]
    twin = copy.deepcopy(net) if how == "deepcopy" else pickle.loads(pickle.dumps(net))
    a, b = ls.infer(net, shape), ls.infer(twin, shape)
    assert twin is not net and type(twin) is type(net)
    assert [(r.path, r.outputs) for r in a.layers] == [(r.path, r.outputs) for r in b.layers]
    assert {k: p.shape for k, p in a.params.items()} == {k: p.shape for k, p in b.params.items()}
