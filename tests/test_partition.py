"""Partition rules: each parameter's shard and the bytes one device holds,
before anything exists; and `lazyshape plan`."""

from __future__ import annotations

import re

import pytest

import lazyshape as ls
from lazyshape import zoo
from lazyshape.__main__ import main

SMALL = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 8,
         "num_key_value_heads": 4, "intermediate_size": 128, "vocab_size": 256}


def test_megatron_splits_llama_by_columns_and_rows() -> None:
    model = zoo.llama(SMALL)
    inf = ls.infer(model, ("B", "T"), partition=ls.Partition.megatron({"model": "tp"}),
                   mesh_shape={"dp": 2, "tp": 4})
    shards = inf.shards
    q = shards["model.layers.0.self_attn.q_proj.weight"]
    assert (q.shape, q.axes, q.shard_shape) == ((64, 64), (("tp",), ()), (16, 64))
    k = shards["model.layers.0.self_attn.k_proj.weight"]
    assert k.shard_shape == (8, 64)  # 4 kv heads of 8: 32 rows over 4 devices
    o = shards["model.layers.1.self_attn.o_proj.weight"]
    assert (o.axes, o.shard_shape) == (((), ("tp",)), (64, 16))
    down = shards["model.layers.0.mlp.down_proj.weight"]
    assert down.shard_shape == (64, 32)
    assert shards["model.embed_tokens.weight"].shard_shape == (64, 64)
    norm = shards["model.norm.weight"]
    assert (norm.shard_shape, norm.rule) == ((64,), None)  # replicated
    assert inf.param_bytes_per_device == sum(s.shard_bytes for s in shards.values())
    whole = sum(4 * p.shape[0] * (p.shape[1] if len(p.shape) > 1 else 1)
                for p in inf.params.values())
    assert whole == inf.param_bytes
    # every matrix is split 4 ways, the norms are whole
    norms = sum(4 * p.shape[0] for n, p in inf.params.items() if n.endswith("norm.weight"))
    assert inf.param_bytes_per_device == (whole - norms) // 4 + norms


def test_bytes_per_device_of_a_70b_llama_on_two_meshes() -> None:
    cfg = zoo.LLAMA_PRESETS["70b"]
    model = zoo.llama(cfg)
    rules = ls.Partition.megatron({"model": "tp"})
    base = ls.infer(model, ("B", "T"), dtype="bfloat16")
    assert base.num_params == 70_553_706_496
    norms = sum(p.shape[0] for n, p in base.params.items() if n.endswith("norm.weight"))
    for tp in (8, 4):
        inf = ls.infer(model, ("B", "T"), dtype="bfloat16", partition=rules,
                       mesh_shape={"dp": 64 // tp, "tp": tp})
        assert inf.param_bytes_per_device == 2 * ((base.num_params - norms) // tp + norms)
        mem = inf.memory_per_device("adam")
        assert mem.gradients == mem.params == inf.param_bytes_per_device
        assert mem.optimizer_state == 2 * mem.params


def test_activations_split_over_the_batch_axis() -> None:
    model = zoo.gpt2(num_layers=1)
    rules = ls.Partition.megatron({"model": "tp", "batch": "dp"})
    one = ls.infer(model, (2, 64), partition=rules, mesh_shape={"dp": 1, "tp": 2})
    eight = ls.infer(model, (16, 64), partition=rules, mesh_shape={"dp": 8, "tp": 2})
    assert (eight.memory_per_device().saved_activations
            == one.memory_per_device().saved_activations)
    assert eight.param_bytes_per_device == one.param_bytes_per_device


def test_a_rule_that_does_not_fit_names_the_parameter() -> None:
    model = ls.Sequential({"fc": ls.Linear(10), "out": ls.Linear(3)})
    mesh = {"tp": 4}
    with pytest.raises(ls.ShapeError, match=r"dim 0 of `fc.weight` divisible by 4") as e:
        ls.infer(model, (2, 8), partition=ls.Partition([("fc.weight", ("tp", None))]),
                 mesh_shape=mesh)
    assert e.value.path == "fc.weight"
    with pytest.raises(ls.ShapeError, match="no rule matches `fc.bias`"):
        ls.infer(model, (2, 8), mesh_shape=mesh, partition=ls.Partition(
            [("*.weight", (None, None))], strict=True))
    with pytest.raises(ls.ShapeError, match="no parameter matches 'head.weight'"):
        ls.infer(model, (2, 8), mesh_shape=mesh, partition=ls.Partition(
            [("head.weight", (None, "tp"))]))
    with pytest.raises(ls.ShapeError, match="one axis \\(or None\\) per dim of `out.bias`"):
        ls.infer(model, (2, 8), mesh_shape=mesh, partition=ls.Partition(
            [("out.bias", ("tp", None))]))
    with pytest.raises(ls.ShapeError, match="mesh axis 'dp'"):
        ls.infer(model, (2, 8), mesh_shape=mesh, partition=ls.Partition(
            [("fc.weight", ("dp", None))]))
    with pytest.raises(ValueError, match="partition="):
        ls.infer(model, (2, 8), mesh_shape=mesh)


def test_regex_rules_and_logical_axes_over_several_mesh_axes() -> None:
    model = ls.Sequential({"a": ls.Linear(16, bias=False), "b": ls.Linear(16, bias=False)})
    rules = ls.Partition([(re.compile(r"[ab]\.weight"), ("fsdp", None))],
                         {"fsdp": ("dp", "tp")})
    inf = ls.infer(model, (2, 16), partition=rules, mesh_shape={"dp": 2, "tp": 4})
    assert inf.shards["a.weight"].axes == (("dp", "tp"), ())
    assert inf.shards["b.weight"].shard_shape == (2, 16)
    with pytest.raises(ValueError, match="no partition"):
        _ = ls.infer(model, (2, 16)).shards


def test_plan_prints_what_a_device_holds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "lazyshape.zoo:llama", "--config", "70b", "--mesh", "dp=8,tp=8",
                 "--batch", "1", "--seq", "4096", "--dtype", "bfloat16",
                 "--device-memory", "80GiB"]) == 0
    out = capsys.readouterr().out
    assert "70,553,706,496 parameters, bfloat16" in out
    assert "mesh dp=8 x tp=8 (64 devices)" in out
    assert "input (8, 4096)" in out  # one sequence per data-parallel rank
    inf = ls.infer(zoo.llama(zoo.LLAMA_PRESETS["70b"]), ls.TensorSpec((8, 4096), "int64"),
                   dtype="bfloat16", partition=ls.Partition.megatron(
                       {"model": "tp", "batch": "dp"}), mesh_shape={"dp": 8, "tp": 8})
    mem = inf.memory_per_device()
    params = re.search(r"parameters\s+([\d.]+) GiB", out)
    assert params is not None and float(params.group(1)) == round(mem.params / 2**30, 1)
    assert "does not fit" in out  # (no activation recomputation)
    assert re.search(r"resolved in [\d.]+ ms", out)

    assert main(["plan", "lazyshape.zoo:llama", "--config", '{"hidden_size": 64, '
                 '"num_hidden_layers": 1, "num_attention_heads": 4, "intermediate_size": 64, '
                 '"vocab_size": 100}', "--mesh", "tp=2", "--seq", "16",
                 "--device-memory", "1GiB"]) == 0
    assert "fits (" in capsys.readouterr().out


def test_plan_rejects_a_bad_mesh(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "lazyshape.zoo:llama", "--mesh", "dp=two", "--seq", "8"]) == 2
    assert "a mesh like 'dp=8,tp=8'" in capsys.readouterr().err


@pytest.mark.parametrize("name,model,spec", [
    ("gpt2", lambda: zoo.gpt2(num_layers=2), ("B", "T")),
    ("vit", lambda: zoo.vit(num_layers=2), ("B", 3, 224, 224)),
    ("bert", lambda: zoo.bert({"num_hidden_layers": 2}), ("B", "T")),
    ("llama", lambda: zoo.llama(SMALL), ("B", "T")),
])
def test_megatron_splits_every_matrix_of_every_block(name: str, model: object, spec: object
                                                     ) -> None:
    inf = ls.infer(model(), spec, partition=ls.Partition.megatron({"model": "tp"}),  # type: ignore[operator]
                   mesh_shape={"tp": 2})
    blocks = re.compile(r"(^|\.)(h|layers?|encoder_layer_\d+)\.")
    matrices = [n for n, p in inf.params.items() if len(p.shape) == 2 and blocks.search(n)]
    assert matrices
    for n in matrices:
        assert any(inf.shards[n].axes), n  # split along one of its dims
