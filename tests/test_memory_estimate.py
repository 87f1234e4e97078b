"""Memory from the rules against measurement, and its semantics by hand.

`peak_activation_bytes` and `training_bytes` are checked against the heap of
a real torch CPU forward and training step (`memory_probe.py`, each in a
fresh process) on the zoo's models: within 15%, as documented.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import lazyshape as ls
from lazyshape import zoo
from lazyshape._dims import bind

PROBE = Path(__file__).with_name("memory_probe.py")

IMAGES = "8,3,224,224"
CASES = [
    *[(name, IMAGES, "infer") for name in (
        "resnet50", "mobilenet_v2", "efficientnet_b0", "convnext_tiny", "vit_b_16")],
    *[(name, "8,128", "infer") for name in ("gpt2", "bert_base", "llama")],
    ("resnet18", IMAGES, "train"),
    ("efficientnet_b0", "4,3,224,224", "train"),
    ("vit_b_16", "2,3,224,224", "train"),
    ("llama", "8,128", "train"),
]


@pytest.mark.torch
@pytest.mark.parametrize("name,shape,mode", CASES, ids=["-".join(c) for c in CASES])
def test_the_estimate_is_within_15_percent_of_torch(name: str, shape: str, mode: str) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, str(PROBE), name, shape, mode], env=env,
                         capture_output=True, text=True, timeout=600, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    ratio = got["predicted"] / got["measured"]
    assert 0.85 <= ratio <= 1.15, got


def test_peak_of_a_chain_frees_each_value_after_its_reader() -> None:
    mlp = ls.Sequential(ls.Linear(32), ls.ReLU(), ls.Linear(10))
    inf = ls.infer(mlp, (8, 16))
    x, h, r, y = 8 * 16 * 4, 8 * 32 * 4, 8 * 32 * 4, 8 * 10 * 4
    assert inf.activation_bytes == h + r + y
    # the input stays (the caller's); at the ReLU both its input and output live
    assert inf.peak_activation_bytes == x + h + r


def test_a_view_takes_no_memory_and_a_residual_input_stays_live() -> None:
    x = ls.Input(("B", 64))
    h = ls.Linear(64, name="fc")(x)
    v = ls.Reshape((-1, 8, 8), name="view")(h)
    f = ls.Flatten(name="flat")(v)
    y = ls.Add(name="add")(x, f)
    inf = ls.infer(ls.Model(x, y), (4, 64))
    one = 4 * 64 * 4
    assert inf.activation_bytes == 2 * one  # fc and add; the views are fc's storage
    assert inf.peak_activation_bytes == 3 * one  # x, fc's output, the sum


def test_a_nested_containers_input_is_held_until_it_returns() -> None:
    block = ls.Sequential(ls.Linear(64), ls.ReLU(), ls.Linear(64), name="block")
    model = ls.Sequential(ls.Linear(64), block)
    inf = ls.infer(model, (4, 64))
    one = 4 * 64 * 4
    # at block.1: the model's input, the block's input (held by its caller),
    # block.0's output and block.1's output
    assert inf.peak_activation_bytes == 4 * one


def test_training_bytes_by_part() -> None:
    model = ls.Sequential(ls.Linear(32), ls.BatchNorm1d(), ls.ReLU(), ls.Linear(10))
    inf = ls.infer(model, (8, 16))
    mem = inf.memory()
    params = (16 * 32 + 32 + 32 + 32 + 32 * 10 + 10) * 4
    buffers = (32 + 32) * 4 + 8  # running statistics, and the int64 batch counter
    assert (mem.params, mem.gradients, mem.buffers) == (params, params, buffers)
    assert mem.optimizer_state == 2 * params
    assert inf.memory("sgd").optimizer_state == 0
    assert inf.memory("sgd_momentum").optimizer_state == params
    # kept for backward: the BatchNorm's input (the first Linear's output), the
    # ReLU's output (the last Linear's input); the model's input is the caller's
    assert mem.saved_activations == 2 * 8 * 32 * 4
    assert mem.outputs == 2 * 8 * 10 * 4
    assert mem.total == inf.training_bytes == sum(mem[:-1])
    with pytest.raises(ValueError, match="optimizer"):
        inf.memory("lion")


def test_memory_is_symbolic_and_binds_to_the_concrete_figures() -> None:
    model = zoo.resnet18()
    sym = ls.infer(model, ("B", 3, "H", "W"))
    concrete = ls.infer(model, (4, 3, 96, 128))
    values = {"B": 4, "H": 96, "W": 128}
    for what in ("activation_bytes", "peak_activation_bytes", "training_bytes", "flops"):
        assert bind(getattr(sym, what), values) == getattr(concrete, what), what


def test_solve_finds_the_largest_batch_that_fits() -> None:
    model = zoo.resnet50()
    inf = ls.infer(model, ("B", 3, "H", "W"))
    budget = 80 * 2**30
    b = inf.solve("80GiB", metric="training_bytes", for_="B", H=224, W=224)
    assert b > 1
    assert ls.infer(model, (b, 3, 224, 224)).training_bytes <= budget
    assert ls.infer(model, (b + 1, 3, 224, 224)).training_bytes > budget
    # any metric, a budget in bytes or FLOPs
    flops = ls.infer(model, (7, 3, 224, 224)).flops
    assert inf.solve(flops, metric="flops", H=224, W=224) == 7
    assert inf.solve(flops - 1, metric="flops", H=224, W=224) == 6


def test_solve_for_a_sequence_length_within_its_valid_range() -> None:
    llama = zoo.llama({"hidden_size": 256, "num_hidden_layers": 2, "num_attention_heads": 4,
                       "num_key_value_heads": 2, "intermediate_size": 512,
                       "vocab_size": 1000})
    inf = ls.infer(llama, ("B", "T"))
    t = inf.solve("2GiB", for_="T", B=4)
    assert ls.infer(llama, (4, t)).training_bytes <= 2 * 2**30
    assert ls.infer(llama, (4, t + 1)).training_bytes > 2 * 2**30
    gpt = ls.infer(zoo.gpt2(num_layers=1), ("B", "T"))
    assert gpt.valid_ranges["T"] == (1, 1024)
    assert gpt.solve("1TiB", for_="T", B=1) == 1024  # the position table ends there


def test_solve_says_what_is_missing_or_impossible() -> None:
    inf = ls.infer(zoo.resnet18(), ("B", 3, "H", "W"))
    with pytest.raises(ValueError, match="H=..., W=..."):
        inf.solve("1GiB")
    with pytest.raises(ValueError, match="even at B=1"):
        inf.solve("1MiB", H=224, W=224)
    with pytest.raises(ValueError, match="metric is one of"):
        inf.solve("1GiB", metric="speed", H=224, W=224)
    with pytest.raises(ValueError, match="not symbols of the inputs"):
        inf.solve("1GiB", H=224, W=224, T=3)
    with pytest.raises(ValueError, match="a size like"):
        inf.solve("lots", H=224, W=224)


ZOO_SPECS = [
    ("resnet18", ("B", 3, "H", "W")), ("convnext_tiny", ("B", 3, "H", "W")),
    ("vit_b_16", ("B", 3, 224, 224)), ("gpt2", ("B", "T")), ("lstm_classifier", ("B", "T", 16)),
]


@pytest.mark.parametrize("name,spec", ZOO_SPECS, ids=[n for n, _ in ZOO_SPECS])
def test_the_records_add_up_to_the_totals(name: str, spec: tuple[object, ...]) -> None:
    """The totals are tallied over equal shapes and shared specs; each record
    computes its own: the two must agree, symbolically."""
    inf = ls.infer(getattr(zoo, name)(), spec)
    records = inf.layers
    for total in ("flops", "activation_bytes", "param_bytes", "num_params", "num_buffers"):
        assert getattr(inf, total) == sum((getattr(r, total) for r in records), 0), total
    # and by hand: float32 parameters, int64 step counters
    assert inf.param_bytes == sum(
        (ls.dims.prod(p.shape) * {"float32": 4, "int64": 8}[p.dtype]
         for p in inf.params.values()), 0)


def test_totals_count_a_shape_met_in_two_dtypes_in_each() -> None:
    """A layer that hands on its input's shape tuple in another dtype (a cast)
    makes a tensor of that shape in each dtype: both are counted."""

    class Half(ls.Layer):
        def output_spec(self, x):
            return x.with_dtype("float16")  # the same shape tuple

        def forward(self, params, x):
            return x

    inf = ls.infer(ls.Sequential(ls.ReLU(), Half(), ls.ReLU()), ("B", 8))
    b = ls.Sym("B")
    assert inf.layers[0].outputs[0].shape is inf.layers[1].outputs[0].shape
    assert inf.activation_bytes == b * 8 * 4 + 2 * (b * 8 * 2)
    assert inf.activation_bytes == sum((r.activation_bytes for r in inf.layers), 0)
