"""`plot`: a picture of a model's graph, every edge labelled with its
(symbolic) shape, drawn by Graphviz.

The graph is the flat program every backend runs (`_graph.program_of`): one
box per layer call, in the order of `Inference.layers`, wired by the value
slots the nodes read and write. Nested containers become nested Graphviz
clusters, found from the path prefixes (``layer1.0.conv1`` lies in
``layer1`` and ``layer1.0``). The DOT text is written here, by hand, so that
it needs nothing installed; only rendering it to SVG or PNG needs the
``graphviz`` Python package (imported on use) and Graphviz's ``dot`` program.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, overload

from ._dims import Dim, format_shape
from ._graph import Module, program_of
from ._layer import Layer
from ._propagate import Inference, LayerRecord, infer
from ._specs import TensorSpec

__all__ = ["plot", "to_dot"]

#: what each file suffix gets: a Graphviz output format, or the DOT text itself
_FORMATS = {".svg": "svg", ".png": "png", ".dot": "dot", ".gv": "dot"}
_RANKDIRS = ("TB", "LR", "BT", "RL")

_INSTALL_PACKAGE = "pip install 'lazyshape[plot]'"
_INSTALL_DOT = (
    "install Graphviz from your system's packages (apt-get install graphviz, "
    "dnf install graphviz, brew install graphviz or conda install graphviz)"
)

#: box colours by layer family (the module a built-in layer class lives in)
_FILL = {
    "conv": "#d4e4f7",
    "linear": "#d4e4f7",
    "attention": "#d4e4f7",
    "recurrent": "#d4e4f7",
    "embedding": "#e4dcf3",
    "norm": "#fbefc4",
    "activation": "#d9eed9",
    "merge": "#f9d5bb",
    "pool": "#e6e6e6",
    "reshape": "#e6e6e6",
    "resample": "#e6e6e6",
}
_FILL_OTHER = "#ffffff"
_FILL_IO = "#ececec"

_HEADER = """\
digraph model {{
  graph [rankdir={rankdir}, fontname="Helvetica", fontsize=10, nodesep=0.25, ranksep=0.3,
         labeljust=l, style="rounded", color="#9a9a9a", pencolor="#9a9a9a", newrank=true];
  node [shape=box, style="rounded,filled", fontname="Helvetica", fontsize=11,
        margin="0.14,0.04", penwidth=0.8, color="#555555"];
  edge [fontname="Helvetica", fontsize=9, fontcolor="#333333", color="#555555",
        arrowsize=0.6];
"""


# ---------------------------------------------------------------------------------
# Text helpers
# ---------------------------------------------------------------------------------
def _quote(text: str) -> str:
    """A DOT quoted string for a label, where Graphviz reads backslash escapes."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _quote_id(text: str) -> str:
    """A DOT quoted string for a node name, where only ``\\"`` is an escape."""
    return '"' + text.replace('"', '\\"') + '"'


def _html(text: str) -> str:
    """Text inside a DOT HTML-like label."""
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def _count(n: Dim) -> str:
    return f"{n:,}" if isinstance(n, int) else str(n)


def _spec_text(spec: TensorSpec, dtype: str) -> str:
    """An edge label: the shape, and the dtype when it is not the model's."""
    shape = format_shape(spec.shape)
    return shape if spec.dtype == dtype else f"{shape}\n{spec.dtype}"


def _family(layer: Layer) -> str:
    module = type(layer).__module__
    if module.startswith("lazyshape.layers."):
        return module.rsplit(".", 1)[1]
    return ""


# ---------------------------------------------------------------------------------
# Boxes and clusters
# ---------------------------------------------------------------------------------
def _param_line(r: LayerRecord) -> str:
    """``9,408 params``, ``128 params + 129 buffers``, or the owner of a shared call."""
    if r.shared:
        return f"shared with {r.param_path}"
    params: Dim = 0
    buffers: Dim = 0
    for p in r.params.values():
        n: Dim = 1
        for d in p.shape:
            n = n * d
        if p.trainable:
            params = params + n
        else:
            buffers = buffers + n
    text = f"{_count(params)} params"
    if not (isinstance(buffers, int) and buffers == 0):
        text += f" + {_count(buffers)} buffers"
    return text


def _box(r: LayerRecord) -> str:
    # (Graphviz refuses an empty <FONT>: a lone unnamed layer has no path line)
    path = f"<BR/><FONT POINT-SIZE=\"9\">{_html(r.path)}</FONT>" if r.path else ""
    label = (f"<<B>{_html(r.kind)}</B>{path}"
             f"<BR/><FONT POINT-SIZE=\"9\" COLOR=\"#444444\">{_html(_param_line(r))}</FONT>>")
    fill = _FILL.get(_family(r.layer), _FILL_OTHER)
    extra = ', style="rounded,filled,dashed"' if r.shared else ""
    return f"label={label}, fillcolor=\"{fill}\", tooltip={_quote(r.path)}{extra}"


def _io_box(title: str, spec: TensorSpec) -> str:
    label = (f"<<B>{_html(title)}</B><BR/><FONT POINT-SIZE=\"9\">"
             f"{_html(format_shape(spec.shape))} {_html(spec.dtype)}</FONT>>")
    return f'label={label}, shape=ellipse, style=filled, fillcolor="{_FILL_IO}"'


_CALL = re.compile(r"@\d+$")


def _container(model: Layer, prefix: str) -> Layer | None:
    """The container at ``prefix`` (``"layer1.0"``; a later call ``blk@1`` is
    the container ``blk``), or None when the path does not lead to one."""
    layer: Layer = model
    for name in prefix.split("."):
        if not isinstance(layer, Module):
            return None
        name = _CALL.sub("", name)
        layer = next((c for k, c in layer.children() if k == name), None)  # type: ignore[assignment]
        if layer is None:
            return None
    return layer


def _cluster_label(model: Layer, prefix: str) -> str:
    found = _container(model, prefix)
    kind = f"  \u00b7  {found.kind}" if found is not None else ""
    call = _CALL.search(prefix.rsplit(".", 1)[-1])
    shared = f" (shared with {_CALL.sub('', prefix)})" if call else ""
    return f"{prefix}{kind}{shared}"


# ---------------------------------------------------------------------------------
# The DOT text
# ---------------------------------------------------------------------------------
def _node_id(r: LayerRecord) -> str:
    # a path never starts with '@' (child names are free of it), so these
    # names for the inputs, outputs and an unnamed root layer cannot collide
    return r.path or "@layer"


def _clustered(model: Layer, ids: list[str], boxes: list[str], paths: list[str]) -> list[str]:
    """The node statements, each inside the nested clusters of its path's
    prefixes (``layer1`` then ``layer1.0`` for ``layer1.0.conv1``), clusters
    and nodes in execution order."""
    # the cluster tree: prefix -> its items in order, each a node statement or
    # ("cluster", prefix); "" is the root
    items: dict[str, list[tuple[str, str]]] = {"": []}
    for node_id, box, path in zip(ids, boxes, paths, strict=True):
        parent = ""
        parts = path.split(".")[:-1]
        for i in range(len(parts)):
            prefix = ".".join(parts[: i + 1])
            if prefix not in items:
                items[prefix] = []
                items[parent].append(("cluster", prefix))
            parent = prefix
        items[parent].append(("node", f"{_quote_id(node_id)} [{box}];"))
    # written with an explicit stack: any depth of nesting
    out: list[str] = []
    numbers = {prefix: i for i, prefix in enumerate(items)}
    stack: list[Iterator[tuple[str, str]]] = [iter(items[""])]
    while stack:
        item = next(stack[-1], None)
        pad = "  " * len(stack)
        if item is None:
            stack.pop()
            if stack:
                out.append("  " * len(stack) + "}")
            continue
        what, text = item
        if what == "node":
            out.append(pad + text)
            continue
        out.append(f"{pad}subgraph cluster_{numbers[text]} {{")
        out.append(f"{pad}  label={_quote(_cluster_label(model, text))}; "
                   f"id={_quote('cluster:' + text)};")
        stack.append(iter(items[text]))
    return out


def to_dot(inf: Inference, *, rankdir: str = "TB") -> str:
    """The Graphviz DOT text of an `Inference`'s graph (what `plot` draws).

    One box per layer call (kind, path, parameter count), one ellipse per
    model input and output, one edge per value a node reads, labelled with its
    shape; nested containers as nested clusters; a later call of a shared
    layer drawn dashed and linked to its first call by a dashed line."""
    if rankdir not in _RANKDIRS:
        raise ValueError(f"plot's `rankdir` is one of {', '.join(_RANKDIRS)}; got {rankdir!r}")
    records = inf.layers
    program = program_of(inf.model, len(inf.inputs))
    nodes = program.nodes
    if [n.path for n in nodes] != [r.path for r in records]:  # pragma: no cover - a bug
        raise RuntimeError("plot: the compiled program and the inference disagree (a bug)")

    # slot -> (producer's DOT id, its output spec, its output number or -1)
    producer: dict[int, tuple[str, TensorSpec, int]] = {}
    multi_in = len(inf.inputs) > 1
    lines = [_HEADER.format(rankdir=rankdir)]
    for i, spec in enumerate(inf.inputs):
        node_id = f"@in{i}"
        producer[i] = (node_id, spec, -1)
        title = f"input {i}" if multi_in else "input"
        lines.append(f"  {_quote_id(node_id)} [{_io_box(title, spec)}];")

    ids = [_node_id(r) for r in records]
    lines.extend(_clustered(inf.model, ids, [_box(r) for r in records],
                            [r.path for r in records]))

    edges: list[str] = []
    first_call = {r.path: node_id for r, node_id in zip(records, ids, strict=True)}
    for node, r, node_id in zip(nodes, records, ids, strict=True):
        for slot in node.ins:
            src, spec, out = producer[slot]
            text = _spec_text(spec, inf.dtype)
            if out >= 0:
                text = f"[{out}] {text}"
            edges.append(f"  {_quote_id(src)} -> {_quote_id(node_id)} [label={_quote(text)}];")
        many = len(node.outs) > 1
        for j, (slot, spec) in enumerate(zip(node.outs, r.outputs, strict=True)):
            producer[slot] = (node_id, spec, j if many else -1)
        if r.shared and r.param_path in first_call:
            edges.append(
                f"  {_quote_id(first_call[r.param_path])} -> {_quote_id(node_id)} "
                '[style=dashed, color="#8a8a8a", arrowhead=none, constraint=false, '
                'class="shared"];'
            )

    multi_out = len(program.outputs) > 1
    for i, slot in enumerate(program.outputs):
        node_id = f"@out{i}"
        src, spec, out = producer[slot]
        title = f"output {i}" if multi_out else "output"
        lines.append(f"  {_quote_id(node_id)} [{_io_box(title, spec)}];")
        text = _spec_text(spec, inf.dtype)
        if out >= 0:
            text = f"[{out}] {text}"
        edges.append(f"  {_quote_id(src)} -> {_quote_id(node_id)} [label={_quote(text)}];")
    return "\n".join([*lines, *edges, "}", ""])


# ---------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------
def _render(dot: str, fmt: str) -> bytes:
    """``dot`` rendered by Graphviz to ``fmt`` (``"svg"``, ``"png"``)."""
    try:
        import graphviz  # type: ignore[import-untyped, unused-ignore]
    except ImportError as e:
        raise ImportError(
            f"rendering {fmt.upper()} needs the graphviz Python package: "
            f"{_INSTALL_PACKAGE} (path=None or a .dot path gives the DOT text without it)"
        ) from e
    try:
        data: bytes = graphviz.pipe("dot", fmt, dot.encode("utf-8"), quiet=True)
    except graphviz.ExecutableNotFound as e:
        raise RuntimeError(
            f"rendering {fmt.upper()} needs Graphviz's `dot` program, which is not on "
            f"PATH: {_INSTALL_DOT} (path=None or a .dot path gives the DOT text without it)"
        ) from e
    except graphviz.CalledProcessError as e:  # pragma: no cover - dot refusing our text
        detail = (e.stderr or b"").decode("utf-8", "replace").strip()
        raise RuntimeError(f"Graphviz's `dot` failed: {detail}") from e
    return data


@overload
def plot(
    model: Layer, *inputs: Any, path: None, dtype: Any = ..., rankdir: str = ...
) -> str: ...


@overload
def plot(
    model: Layer,
    *inputs: Any,
    path: str | os.PathLike[str] = ...,
    dtype: Any = ...,
    rankdir: str = ...,
) -> Path: ...


def plot(
    model: Layer,
    *inputs: Any,
    path: str | os.PathLike[str] | None = "model.svg",
    dtype: Any = "float32",
    rankdir: str = "TB",
) -> str | Path:
    """Draw the graph of ``model`` on ``inputs``, with no data.

    Inputs are as for `infer`: shape tuples such as ``("B", 3, "H", "W")``,
    `TensorSpec`s or arrays. Each layer call is a box (kind, path, parameter
    count); each edge carries the shape of the tensor it passes, symbolic when
    the input is (``(B, 64, (H - 1)//4 + 1, (W - 1)//4 + 1)``); nested
    containers are nested clusters; the model's inputs and outputs are
    ellipses; the later calls of a shared layer are dashed boxes linked to
    the first call by a dashed line.

    ``path``'s suffix picks the format: ``.svg`` or ``.png`` are rendered by
    Graphviz; ``.dot`` or ``.gv`` write the DOT text. The written path is
    returned. With ``path=None`` nothing is written and the DOT text is
    returned. ``rankdir`` is Graphviz's direction: ``"TB"`` (top to bottom),
    ``"LR"``, ``"BT"`` or ``"RL"``.

    Raises `ShapeError` for any shape problem (as `infer` does); `ImportError`
    when rendering needs the ``graphviz`` Python package and it is missing
    (``pip install 'lazyshape[plot]'``); `RuntimeError` when Graphviz's
    ``dot`` program is not on ``PATH`` (install the system package
    ``graphviz``); `ValueError` for an unknown suffix or ``rankdir``.
    """
    fmt = None
    if path is not None:
        suffix = Path(path).suffix.lower()
        fmt = _FORMATS.get(suffix)
        if fmt is None:
            raise ValueError(
                f"plot writes a file ending in {', '.join(_FORMATS)} (or path=None for the DOT "
                f"text); got path={os.fspath(path)!r}"
            )
    dot = to_dot(infer(model, *inputs, dtype=dtype), rankdir=rankdir)
    if path is None or fmt is None:
        return dot
    target = Path(path)
    if fmt == "dot":
        target.write_text(dot, encoding="utf-8")
    else:
        target.write_bytes(_render(dot, fmt))
    return target
