"""`ls.plot` and `lazyshape plot`: the graph drawn by Graphviz, read back from
the SVG it writes (node and edge titles, label texts, cluster boxes)."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
import xml.etree.ElementTree as ET
from collections import Counter

import pytest

import lazyshape as ls
from lazyshape import zoo
from lazyshape.__main__ import main
from lazyshape._dims import format_shape

REQUIRE_ALL = os.environ.get("LAZYSHAPE_REQUIRE_ALL", "") == "1"
# rendering needs the graphviz package and Graphviz's `dot` (`make pytest`
# installs both); elsewhere those tests skip, under LAZYSHAPE_REQUIRE_ALL they fail
renders = pytest.mark.skipif(
    not REQUIRE_ALL
    and (importlib.util.find_spec("graphviz") is None or shutil.which("dot") is None),
    reason="rendering needs the graphviz Python package and Graphviz's dot program",
)

SVG = "{http://www.w3.org/2000/svg}"
IMAGE = ("B", 3, "H", "W")
TOKENS = ("B", "T")


# -- reading the SVG back ----------------------------------------------------------
def _texts(g: ET.Element) -> list[str]:
    return ["".join(t.itertext()).replace("\xa0", " ") for t in g.iter(SVG + "text")]


def _box(g: ET.Element) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of every coordinate a group's path, polygon or ellipse names."""
    xs: list[float] = []
    ys: list[float] = []
    for el in g.iter():
        if el.tag == SVG + "ellipse":
            cx, cy, rx, ry = (float(el.get(k)) for k in ("cx", "cy", "rx", "ry"))
            xs += [cx - rx, cx + rx]
            ys += [cy - ry, cy + ry]
        points = el.get("d") if el.tag == SVG + "path" else el.get("points")
        if el.tag in (SVG + "path", SVG + "polygon") and points:
            nums = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", points)]
            xs += nums[0::2]
            ys += nums[1::2]
    return min(xs), min(ys), max(xs), max(ys)


def _inside(inner, outer) -> bool:
    return (outer[0] <= inner[0] and outer[1] <= inner[1]
            and inner[2] <= outer[2] and inner[3] <= outer[3])


class Drawing:
    """The nodes, edges and clusters of an SVG that `ls.plot` wrote."""

    def __init__(self, svg: str) -> None:
        root = ET.fromstring(svg)
        self.nodes: dict[str, ET.Element] = {}
        self.edges: list[tuple[str, str, list[str]]] = []  # (src, dst, label lines)
        self.shared: list[tuple[str, str]] = []
        self.clusters: dict[str, ET.Element] = {}
        for g in root.iter(SVG + "g"):
            kind = (g.get("class") or "").split()
            title = g.find(SVG + "title")
            if "cluster" in kind:
                self.clusters[g.get("id").removeprefix("cluster:")] = g
            elif "node" in kind:
                self.nodes[title.text] = g
            elif "edge" in kind:
                src, dst = title.text.split("->")
                if "shared" in kind:
                    self.shared.append((src, dst))
                else:
                    self.edges.append((src, dst, _texts(g)))

    def into(self, dst: str) -> list[tuple[str, str]]:
        """``(src, label)`` of the data edges into ``dst``."""
        return [(s, " ".join(t)) for s, d, t in self.edges if d == dst]


def _needs_graphviz() -> None:
    if not REQUIRE_ALL and (importlib.util.find_spec("graphviz") is None
                            or shutil.which("dot") is None):
        pytest.skip("rendering needs the graphviz Python package and Graphviz's dot program")


@pytest.fixture(scope="module")
def resnet(tmp_path_factory):
    _needs_graphviz()
    path = tmp_path_factory.mktemp("plot") / "resnet18.svg"
    model = zoo.resnet18()
    assert ls.plot(model, IMAGE, path=path) == path
    return ls.infer(model, IMAGE), Drawing(path.read_text())


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    _needs_graphviz()
    path = tmp_path_factory.mktemp("plot") / "gpt2.svg"
    model = zoo.gpt2()
    ls.plot(model, TOKENS, path=str(path))
    return ls.infer(model, TOKENS), Drawing(path.read_text())


# -- what the picture shows --------------------------------------------------------
@pytest.mark.parametrize("which", ["resnet", "gpt2"])
def test_every_layer_is_a_box_with_kind_path_and_parameter_count(which, request):
    inf, drawing = request.getfixturevalue(which)
    assert set(drawing.nodes) == {r.path for r in inf.layers} | {"@in0", "@out0"}
    for r in inf.layers:
        texts = drawing.nodes[r.path]
        lines = _texts(texts)
        assert lines[:2] == [r.kind, r.path]
        if r.shared:
            assert lines[2] == f"shared with {r.param_path}"
        else:
            trainable = sum(ls.dims.prod(p.shape) for p in r.params.values() if p.trainable)
            assert lines[2].startswith(f"{trainable:,} params")


@pytest.mark.parametrize("which", ["resnet", "gpt2"])
def test_each_edge_carries_the_symbolic_shape_the_layer_reads(which, request):
    inf, drawing = request.getfixturevalue(which)
    by_path = {r.path: r for r in inf.layers}
    for r in inf.layers:
        # the labels into a box are the shapes of its inputs, as the pass found them
        got = Counter(label for _, label in drawing.into(r.path))
        want = Counter(format_shape(s.shape) + ("" if s.dtype == inf.dtype else f" {s.dtype}")
                       for s in r.inputs)
        assert got == want, r.path
        # and each leaves a box that produces that shape
        for src, label in drawing.into(r.path):
            if src != "@in0":
                assert label in {format_shape(o.shape) for o in by_path[src].outputs}
    assert drawing.into("@out0") == [(inf.layers[-1].path, format_shape(inf.output.shape))]
    assert sum(len(r.inputs) for r in inf.layers) + 1 == len(drawing.edges)


def test_resnet_edges_are_symbolic_in_h_and_w(resnet):
    _, drawing = resnet
    assert drawing.into("conv1") == [("@in0", "(B, 3, H, W)")]
    assert drawing.into("layer1.0.conv1") == [("maxpool", "(B, 64, (H - 1)//4 + 1, (W - 1)//4 + 1)")]
    assert drawing.into("fc") == [("flatten", "(B, 512)")]
    assert _texts(drawing.nodes["@in0"]) == ["input", "(B, 3, H, W) float32"]
    assert _texts(drawing.nodes["@out0"]) == ["output", "(B, 1000) float32"]


def test_residual_adds_have_two_incoming_edges(resnet, gpt2):
    _, drawing = resnet
    # the identity skip, and the strided 1x1 projection of a downsampling block
    assert sorted(s for s, _ in drawing.into("layer1.0.add")) == ["layer1.0.bn2", "maxpool"]
    assert sorted(s for s, _ in drawing.into("layer2.0.add")) == [
        "layer2.0.bn2", "layer2.0.downsample.1"]
    assert sorted(s for s, _ in drawing.into("layer3.1.add")) == [
        "layer3.0.relu@1", "layer3.1.bn2"]
    # the input of layer2.0 fans out to its conv1 and its projection
    assert sorted(d for s, d, _ in drawing.edges if s == "layer1.1.relu@1") == [
        "layer2.0.conv1", "layer2.0.downsample.0"]
    _, drawing = gpt2
    assert sorted(s for s, _ in drawing.into("h.0.add_1")) == ["h.0.attn", "wpe"]
    assert sorted(s for s, _ in drawing.into("h.5.add_2")) == ["h.5.add_1", "h.5.mlp.c_proj"]


def test_shared_calls_are_linked_to_their_first_call(resnet):
    inf, drawing = resnet
    shared = [(r.param_path, r.path) for r in inf.layers if r.shared]
    assert len(shared) == 8  # the second ReLU of each of the 8 basic blocks
    assert sorted(drawing.shared) == sorted(shared)


def test_gpt2_edges_show_the_token_dtype_and_sequence_dim(gpt2):
    _, drawing = gpt2
    assert drawing.into("wte") == [("@in0", "(B, T) int64")]
    assert drawing.into("h.11.mlp.act") == [("h.11.mlp.c_fc", "(B, T, 3072)")]
    assert drawing.into("@out0") == [("ln_f", "(B, T, 768)")]


@pytest.mark.parametrize("which", ["resnet", "gpt2"])
def test_clusters_nest_as_the_paths_do(which, request):
    inf, drawing = request.getfixturevalue(which)
    prefixes = {".".join(r.path.split(".")[:i])
                for r in inf.layers for i in range(1, r.path.count(".") + 1)}
    assert set(drawing.clusters) == prefixes
    boxes = {p: _box(g) for p, g in drawing.clusters.items()}
    for prefix, box in boxes.items():
        parent = prefix.rpartition(".")[0]
        if parent:
            assert _inside(box, boxes[parent]), (prefix, parent)
        label = _texts(drawing.clusters[prefix])[0]
        assert label.startswith(prefix + "  · ")
    for r in inf.layers:
        node = _box(drawing.nodes[r.path])
        for prefix, box in boxes.items():
            # inside exactly the clusters of its path's prefixes
            assert _inside(node, box) == r.path.startswith(prefix + "."), (r.path, prefix)


def test_resnet_cluster_labels_name_the_container_kind(resnet):
    _, drawing = resnet
    assert _texts(drawing.clusters["layer1"])[0] == "layer1  ·  Sequential"
    assert _texts(drawing.clusters["layer2.0"])[0] == "layer2.0  ·  Model"
    assert _texts(drawing.clusters["layer2.0.downsample"])[0] == "layer2.0.downsample  ·  Sequential"


# -- other models, formats and failures --------------------------------------------
def test_dot_text_of_a_functional_model_with_two_inputs_and_a_shared_layer():
    x, y = ls.Input(("B", 8)), ls.Input(("B", 4))
    fc = ls.Linear(8, name="fc")
    a = fc(x)
    out = ls.Concat(dim=1, name="cat")(fc(a), y)
    dot = ls.plot(ls.Model([x, y], [out, a]), path=None)
    assert isinstance(dot, str) and dot.startswith("digraph")
    for line in ['"@in0" -> "fc" [label="(B, 8)"];', '"fc" -> "fc@1" [label="(B, 8)"];',
                 '"fc@1" -> "cat" [label="(B, 8)"];', '"@in1" -> "cat" [label="(B, 4)"];',
                 '"cat" -> "@out0" [label="(B, 12)"];', '"fc" -> "@out1" [label="(B, 8)"];']:
        assert line in dot
    assert re.search(r'"fc" -> "fc@1" \[style=dashed.*class="shared"\]', dot)
    assert "<B>input 1</B>" in dot and "<B>output 1</B>" in dot
    assert "shared with fc" in dot


def test_dot_text_numbers_the_outputs_of_a_multi_output_layer():
    dot = ls.plot(ls.Sequential(ls.LSTM(6, return_state=True)), ("B", "T", 4), path=None)
    assert '"0" -> "@out0" [label="[0] (B, T, 6)"];' in dot
    assert '"0" -> "@out2" [label="[2] (1, B, 6)"];' in dot


def test_dot_text_needs_neither_graphviz_nor_dot(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "graphviz", None)  # `import graphviz` fails
    monkeypatch.setenv("PATH", str(tmp_path))
    dot = ls.plot(zoo.lenet5(), ("B", 1, 28, 28), path=None)
    assert '"@in0" -> "conv1" [label="(B, 1, 28, 28)"];' in dot
    written = ls.plot(zoo.lenet5(), ("B", 1, 28, 28), path=tmp_path / "lenet.gv")
    assert written.read_text() == dot


@renders
def test_odd_names_and_a_lone_layer_render(tmp_path):
    # names with DOT / HTML syntax in them, and a layer with no path at all
    model = ls.Sequential({'a<b>&"c"': ls.Sequential({"x y": ls.Linear(4)}), "d\\e": ls.ReLU()})
    drawing = Drawing(ls.plot(model, ("B", 3), path=tmp_path / "odd.svg").read_text())
    assert set(drawing.nodes) == {"@in0", 'a<b>&"c".x y', "d\\e", "@out0"}
    assert set(drawing.clusters) == {'a<b>&"c"'}
    assert _texts(drawing.nodes['a<b>&"c".x y']) == ["Linear", 'a<b>&"c".x y', "16 params"]
    drawing = Drawing(ls.plot(ls.Linear(4), ("B", 3), path=tmp_path / "lone.svg").read_text())
    assert _texts(drawing.nodes["@layer"]) == ["Linear", "16 params"]
    assert drawing.into("@layer") == [("@in0", "(B, 3)")]


def test_a_shared_container_is_a_cluster_per_call():
    x = ls.Input(("B", 8))
    block = ls.Sequential(ls.Linear(8), ls.ReLU(), name="blk")
    dot = ls.plot(ls.Model(x, block(block(x))), path=None)
    assert 'label="blk  \u00b7  Sequential"; id="cluster:blk";' in dot
    assert 'label="blk@1  \u00b7  Sequential (shared with blk)"; id="cluster:blk@1";' in dot
    assert '"blk.1" -> "blk@1.0" [label="(B, 8)"];' in dot


@renders
def test_png_is_written(tmp_path):
    path = ls.plot(zoo.resnet18(), IMAGE, path=tmp_path / "resnet18.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 200 and height > 2000  # ~70 boxes top to bottom
    lr = ls.plot(zoo.resnet18(), IMAGE, path=tmp_path / "lr.png", rankdir="LR").read_bytes()
    assert int.from_bytes(lr[16:20], "big") > int.from_bytes(lr[20:24], "big")  # left to right


def test_missing_dot_is_a_clear_error(tmp_path, monkeypatch):
    pytest.importorskip("graphviz")
    monkeypatch.setenv("PATH", str(tmp_path))  # no `dot` anywhere on it
    with pytest.raises(RuntimeError, match=r"needs Graphviz's `dot` program, which is not on "
                       r"PATH: install Graphviz .*apt-get install graphviz"):
        ls.plot(zoo.lenet5(), ("B", 1, 28, 28), path=tmp_path / "lenet.svg")
    assert not (tmp_path / "lenet.svg").exists()


def test_missing_graphviz_package_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "graphviz", None)
    with pytest.raises(ImportError, match=r"needs the graphviz Python package: "
                       r"pip install 'lazyshape\[plot\]'"):
        ls.plot(zoo.lenet5(), ("B", 1, 28, 28), path=tmp_path / "lenet.png")


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"path": "model.pdf"}, ValueError,
         r"plot writes a file ending in .svg, .png, .dot, .gv .*got path='model.pdf'"),
        ({"path": None, "rankdir": "up"}, ValueError, r"`rankdir` is one of TB, LR, BT, RL; got 'up'"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        ls.plot(zoo.lenet5(), ("B", 1, 28, 28), **kwargs)


def test_shape_errors_surface_before_drawing(tmp_path):
    with pytest.raises(ls.ShapeError, match=r"Conv2d at 'conv1'"):
        ls.plot(zoo.resnet18(), ("B", 3), path=tmp_path / "r.svg")
    assert not (tmp_path / "r.svg").exists()


# -- the command line --------------------------------------------------------------
@renders
def test_cli_plot_writes_svg(tmp_path, capsys):
    out = tmp_path / "resnet.svg"
    assert main(["plot", "lazyshape.zoo:resnet18", "--input", "B,3,H,W", "-o", str(out)]) == 0
    assert capsys.readouterr().out == f"wrote {out}\n"
    drawing = Drawing(out.read_text())
    assert drawing.into("layer4.0.conv1") == [
        ("layer3.1.relu@1", "(B, 256, (H - 1)//16 + 1, (W - 1)//16 + 1)")]


def test_cli_plot_prints_dot_and_reports_errors(tmp_path, monkeypatch, capsys):
    assert main(["plot", "lazyshape.zoo:gpt2", "--input", "B,T", "-o", "-", "--rankdir", "LR"]) == 0
    dot = capsys.readouterr().out
    assert dot.startswith("digraph model {") and "rankdir=LR" in dot
    assert '"h.0.ln_1" -> "h.0.attn" [label="(B, T, 768)"];' in dot
    assert main(["plot", "lazyshape.zoo:resnet18", "--input", "B,3", "-o", "-"]) == 1
    assert "lazyshape plot: Conv2d at 'conv1'" in capsys.readouterr().err
    with pytest.raises(SystemExit, match=r"lazyshape plot: cannot load 'lazyshape.zoo:nope'"):
        main(["plot", "lazyshape.zoo:nope"])
    if importlib.util.find_spec("graphviz") is not None:
        monkeypatch.setenv("PATH", str(tmp_path))
        out = tmp_path / "m.svg"
        assert main(["plot", "lazyshape.zoo:lenet5", "--input", "B,1,28,28", "-o", str(out)]) == 1
        assert "apt-get install graphviz" in capsys.readouterr().err
