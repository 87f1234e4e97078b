"""`ls.summary`: input and output columns, container rows and ``depth``,
parameters and buffers that add up, FLOPs and activation bytes, the 120-column
table, Markdown and JSON."""

from __future__ import annotations

import json
import re

import pytest

import lazyshape as ls
from lazyshape import zoo
from lazyshape._dims import bind, parse


def _shared_bn_model() -> ls.Model:
    """A CNN with BatchNorm (buffers) and a layer called twice (shared)."""
    x = ls.Input(("B", 3, "H", "W"))
    conv = ls.Conv2d(8, 3, padding=1, name="conv")
    h = ls.BatchNorm2d(name="bn")(conv(x))
    h = ls.ReLU(name="act")(h)
    same = ls.Conv2d(8, 3, padding=1, name="same")
    h = same(same(h))  # the second call shares the first's parameters
    y = ls.Sequential(ls.AdaptiveAvgPool2d(1), ls.Flatten(), ls.Linear(10), name="head")(h)
    return ls.Model(x, y)


def _json(*args, **kw):
    return json.loads(ls.summary(*args, format="json", **kw))


@pytest.mark.parametrize("depth", [None, 0, 1, 2])
@pytest.mark.parametrize("shape", [(2, 3, 16, 16), ("B", 3, "H", "W")])
def test_rows_add_up_to_the_totals(depth, shape):
    model = _shared_bn_model()
    inf = ls.infer(model, shape)
    assert inf.num_buffers == 8 + 8 + 1  # running mean and var, num_batches_tracked
    doc = _json(model, shape, depth=depth)
    rows = doc["layers"]
    assert sum(r["params"] for r in rows) == doc["total_params"] == inf.num_params
    assert sum(r["buffers"] for r in rows) == doc["buffers"] == inf.num_buffers
    assert doc["param_bytes"] == inf.param_bytes
    if type(inf.flops) is int:
        assert sum(r["flops"] for r in rows) == doc["flops"] == inf.flops
        assert sum(r["activation_bytes"] for r in rows) == inf.activation_bytes
        assert doc["activation_bytes"] == inf.activation_bytes
    else:  # expressions as strings: they add up as expressions
        total = sum((parse(r["flops"]) if isinstance(r["flops"], str) else r["flops"])
                    for r in rows)
        assert total == parse(doc["flops"]) == inf.flops
    shared = [r for r in rows if r["path"] == "same@1"]
    if depth is None:
        assert shared and shared[0]["params"] == 0 and shared[0]["flops"] != 0
        assert len(rows) == len(inf.layers)


def test_table_rows_add_up_and_show_buffers_apart():
    model = _shared_bn_model()
    table = ls.summary(model, (2, 3, 16, 16))
    header = table.splitlines()[0].split()
    assert header == ["Layer", "Kind", "Input", "shape", "Output", "shape", "Parameters",
                      "Params", "Buffers", "FLOPs", "Act.", "bytes"]
    bn = next(line for line in table.splitlines() if line.startswith("bn "))
    assert "weight, bias (8,)" in bn and re.search(r"\b16\s+17\b", bn)
    inf = ls.infer(model, (2, 3, 16, 16))
    flops = inf.layer("same@1").flops
    assert flops == 2 * (2 * 8 * 16 * 16) * (8 * 3 * 3)
    assert re.search(rf"^same@1 .*shared with 'same'\s+0\s+0\s+{flops:,}\s", table, re.M)
    params = buffers = 0
    head = table.splitlines()[0]
    end_params = head.index("Params") + len("Params")  # (right-aligned columns)
    end_buffers = head.index("Buffers") + len("Buffers")
    for rec in inf.layers:  # each primitive's row shows its record's counts
        line = next(ln for ln in table.splitlines() if ln.split() and ln.split()[0] == rec.path)
        assert int(line[:end_params].split()[-1].replace(",", "")) == rec.num_params
        params += int(line[:end_params].split()[-1].replace(",", ""))
        buffers += int(line[:end_buffers].split()[-1].replace(",", ""))
    assert (params, buffers) == (inf.num_params, inf.num_buffers)
    total = inf.num_params
    shown = f"{total:,}" if type(total) is int else str(total)
    assert f"Total params: {shown}" in table
    assert f"Buffers: {inf.num_buffers:,}" in table


def test_input_column_and_container_boundaries():
    inf = ls.infer(zoo.resnet18(), ("B", 3, "H", "W"))
    rows = {r["path"]: r for r in _json(zoo.resnet18(), ("B", 3, "H", "W"), depth=2)["layers"]}
    block = rows["layer2.0"]  # a residual block: its input feeds conv1 and the downsample
    assert block["kind"] == "Model"
    assert block["input"] == [["B", 64, "(H - 1)//4 + 1", "(W - 1)//4 + 1"]]
    assert block["output"] == [["B", 128, "(H - 1)//8 + 1", "(W - 1)//8 + 1"]]
    assert block["params"] == sum(r.num_params for r in inf.layers
                                  if r.path.startswith("layer2.0."))
    add = inf.layer("layer2.0.add")
    table = ls.summary(zoo.resnet18(), ("B", 3, "H", "W"), format="markdown")
    add_row = next(line for line in table.splitlines() if line.startswith("| layer2.0.add "))
    assert add_row.count("(B, 128, H3, W3)") == 3 and len(add.inputs) == 2  # two inputs, one output
    assert "| layer2.0 | Model | `(B, 64, H2, W2)` | `(B, 128, H3, W3)` |" in table


def test_a_two_input_container_takes_both_inputs():
    a, b = ls.Input(("B", 4)), ls.Input(("B", 6))
    inner = ls.Model([a, b], ls.Concat(dim=1)(ls.Linear(3)(a), b), name="inner")
    x, y = ls.Input(("B", 4)), ls.Input(("B", 6))
    model = ls.Model([x, y], ls.Linear(2, name="out")(inner(x, y)))
    rows = _json(model, depth=1)["layers"]
    assert [r["path"] for r in rows] == ["inner", "out"]
    assert rows[0]["input"] == [["B", 4], ["B", 6]] and rows[0]["output"] == [["B", 9]]
    assert rows[0]["params"] == 15 and rows[1]["params"] == 20


def test_depth_folds_rows_into_their_container():
    net = zoo.resnet18()
    inf = ls.infer(net, (1, 3, 64, 64))
    top = [r["path"] for r in _json(net, (1, 3, 64, 64), depth=1)["layers"]]
    assert top == ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4",
                   "avgpool", "flatten", "fc"]
    two = _json(net, (1, 3, 64, 64), depth=2)["layers"]
    assert [r["path"] for r in two if r["path"].startswith("layer3")] == ["layer3.0", "layer3.1"]
    assert sum(r["flops"] for r in two) == inf.flops
    everything = _json(net, (1, 3, 64, 64))["layers"]
    assert [r["path"] for r in everything] == [rec.path for rec in inf.layers]
    assert [r["kind"] for r in _json(net, (1, 3, 64, 64), depth=0)["layers"]] == ["Sequential"]
    # the table shows the containers above the rows as headers
    table = ls.summary(net, (1, 3, 64, 64), depth=2).splitlines()
    assert any(re.match(r"layer1\s+Sequential\s.*--\s*$", line) for line in table)
    assert not any(line.startswith("layer1.0.conv1") for line in table)
    full = ls.summary(net, (1, 3, 64, 64))
    assert re.search(r"^layer1\.0\s+Model\s", full, re.M)


def test_flops_and_bytes_columns_are_symbolic_and_exact():
    """The Markdown table is the text table unwrapped: each symbolic cell,
    its aliases replaced by what the footer says they stand for, is the
    record's exact FLOPs and output bytes."""
    net = zoo.resnet18()
    inf = ls.infer(net, ("B", 3, "H", "W"))
    text = ls.summary(net, ("B", 3, "H", "W"), format="markdown")
    where = re.search(r"^- Where: `(.*)`$", text, re.M)
    assert where is not None
    aliases = dict(item.split(" = ") for item in where.group(1).split(", "))
    assert aliases["H1"] == "(H - 1)//2 + 1" and aliases["W5"] == "(W - 1)//32 + 1"
    values = {k: parse(v) for k, v in aliases.items()}
    header = [c.strip() for c in text.splitlines()[0].strip("|").split("|")]
    checked = 0
    for rec in inf.layers:
        line = next(ln for ln in text.splitlines() if ln.startswith(f"| {rec.path} |"))
        cells = dict(zip(header, (c.strip().strip("`") for c in line.strip("|").split("|")), strict=True))
        assert bind(parse(cells["FLOPs"].replace(",", "")), values) == rec.flops
        if rec.activation_bytes == 0:  # a view: no memory of its own
            assert cells["Act. bytes"] == "0 B"
        else:
            assert bind(parse(cells["Act. bytes"]), values) == rec.activation_bytes
        checked += 1
    assert checked == len(inf.layers) == 69
    conv1 = next(ln for ln in text.splitlines() if ln.startswith("| conv1 |"))
    assert "`18816*B*H1*W1`" in conv1 and "`256*B*H1*W1`" in conv1
    flops = re.search(r"^- FLOPs \(forward\): `(.*)`$", text, re.M)
    assert flops is not None and bind(parse(flops.group(1)), values) == inf.flops
    assert (inf.bind(B=2, H=224, W=224).flops
            == bind(bind(parse(flops.group(1)), values), {"B": 2, "H": 224, "W": 224}))


def test_concrete_sizes_print_numbers_and_units():
    table = ls.summary(zoo.resnet18(), (1, 3, 224, 224))
    inf = ls.infer(zoo.resnet18(), (1, 3, 224, 224))
    assert f"FLOPs (forward): {inf.flops:,}" in table
    assert "Where:" not in table
    conv1 = next(line for line in table.splitlines() if line.startswith("conv1 "))
    assert "(1, 3, 224, 224)" in conv1
    md = ls.summary(zoo.resnet18(), (1, 3, 224, 224), format="markdown")
    assert "| conv1 | Conv2d | `(1, 3, 224, 224)` | `(1, 64, 112, 112)` |" in md
    assert f"{inf.layer('conv1').flops:,}" in conv1 and "3.1 MiB" in conv1


def test_flops_false_drops_the_column():
    net = ls.Sequential(ls.Linear(8), ls.ReLU(), ls.Linear(2))
    assert "FLOPs" in ls.summary(net, ("B", 4))
    table = ls.summary(net, ("B", 4), flops=False)
    assert "FLOPs" not in table and "Act. bytes" in table
    doc = _json(net, ("B", 4), flops=False)
    assert "flops" not in doc and all("flops" not in r for r in doc["layers"])
    assert _json(net, ("B", 4))["flops"] == "96*B"  # 2*4*8 + 2*8*2 per row


@pytest.mark.parametrize(
    ("factory", "inputs"),
    [
        (zoo.resnet18, [("B", 3, "H", "W")]),
        (zoo.resnet50, [("B", 3, "H", "W")]),
        (zoo.mobilenet_v2, [("B", 3, "H", "W")]),
        (zoo.lenet5, [("B", 1, "H", "W")]),
        (zoo.gpt2, [("B", "T")]),
        (lambda: zoo.llama({"vocab_size": 1000, "hidden_size": 64, "intermediate_size": 128,
                            "num_hidden_layers": 2, "num_attention_heads": 4,
                            "num_key_value_heads": 2}), [("B", "T")]),
        (zoo.vit_b_16, [("B", 3, 224, 224)]),
        (zoo.lstm_classifier, [("B", "T", 12)]),
    ],
    ids=["resnet18", "resnet50", "mobilenet_v2", "lenet5", "gpt2", "llama", "vit_b_16", "lstm"],
)
def test_every_line_fits_120_columns(factory, inputs):
    net = factory()
    for depth in (None, 1):
        table = ls.summary(net, *inputs, depth=depth)
        widest = max(table.splitlines(), key=len)
        assert len(widest) <= 120, widest
    inf = ls.infer(net, *inputs)
    total = inf.num_params
    shown = f"{total:,}" if type(total) is int else str(total)
    assert f"Total params: {shown}" in table


def test_valid_ranges_and_conditions_in_the_footer():
    table = ls.summary(zoo.gpt2(), ("B", "T"))
    assert "Valid for: T <= 1024" in table
    doc = _json(zoo.gpt2(), ("B", "T"))
    assert doc["valid_ranges"] == {"B": [1, None], "T": [1, 1024]}
    lenet = ls.summary(zoo.lenet5(), ("B", 1, "H", "W"))
    inf = ls.infer(zoo.lenet5(), ("B", 1, "H", "W"))
    lo = inf.valid_ranges["H"][0]
    assert lo > 1 and f"H >= {lo}" in lenet


def test_markdown_is_a_table():
    text = ls.summary(ls.Sequential(ls.Linear(8), ls.ReLU()), ("B", 4), format="markdown")
    lines = text.splitlines()
    assert lines[0] == "| Layer | Kind | Input shape | Output shape | Parameters | Params | FLOPs | Act. bytes |"
    assert lines[1] == "|---|---|---|---|---|---:|---:|---:|"
    assert lines[2] == "| 0 | Linear | `(B, 4)` | `(B, 8)` | `weight (8, 4), bias (8,)` | `40` | `64*B` | `32*B` |"
    assert "- Total params: `40`" in lines


def test_bad_options_are_clear_errors():
    net = ls.Sequential(ls.Linear(8))
    with pytest.raises(ValueError, match=r"`format` is one of 'table', 'markdown', 'json'; got 'html'"):
        ls.summary(net, (2, 4), format="html")
    with pytest.raises(ValueError, match=r"`depth` is None or an int >= 0; got -1"):
        ls.summary(net, (2, 4), depth=-1)
    with pytest.raises(ValueError, match=r"`depth` is None or an int >= 0; got 1.5"):
        ls.summary(net, (2, 4), depth=1.5)
