"""``ls.summary``: a model's shapes, parameters, FLOPs and activation bytes,
with no data, as a table, a Markdown table or JSON.

The rows come from the resolution record (`Inference.layers`, one per
primitive node) and from the model's structure, walked once more without
running any rule, so that each container's rows know the container's real
input and output specs. Long symbolic sizes are printed through short aliases
(``H1 = (H - 1)//2 + 1``) listed under the table, and cells wrap so that every
line of the table fits `WIDTH` columns.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from ._dims import Dim, Sym, bind, format_dim, format_shape, free_symbols, prod
from ._graph import Module
from ._layer import Layer
from ._memory import format_bytes
from ._propagate import Inference, LayerRecord, infer
from ._specs import TensorSpec

__all__ = ["summary", "format_inference", "WIDTH"]

#: the widest line of a ``format="table"`` summary
WIDTH = 120

_FORMATS = ("table", "markdown", "json")


# -- the rows: primitive nodes and the containers around them ------------------------


class _Node:
    """A primitive node (``rec`` set) or a container of nodes, with the sums of
    everything under it."""

    __slots__ = ("path", "kind", "depth", "ins", "outs", "rec", "children", "parent",
                 "params", "buffers", "flops", "out_bytes", "n_tensors")

    def __init__(self, path: str, kind: str, ins: tuple[TensorSpec, ...],
                 rec: LayerRecord | None, parent: _Node | None) -> None:
        self.path = path
        self.kind = kind
        self.depth = 0 if parent is None else path.count(".") + 1
        self.ins = ins
        self.outs: tuple[TensorSpec, ...] = rec.outputs if rec is not None else ()
        self.rec = rec
        self.children: list[_Node] = []
        self.parent = parent
        self.params: Dim = 0
        self.buffers: Dim = 0
        self.flops: _Value = _Value.zero()
        self.out_bytes: _Value = _Value.zero()
        self.n_tensors = 0


class _Walker:
    """A tracer for `Module._steps` that runs no rule: a primitive's outputs are
    read from its record, and each container's inputs and outputs are those
    its walk is given and returns (so a residual block's output is its last
    node's, a two-input model's inputs are both of its inputs)."""

    __slots__ = ("records", "top")

    def __init__(self, records: dict[str, LayerRecord], root: _Node) -> None:
        self.records = records
        self.top = root

    def add(self, layer: Layer, ins: tuple[Any, ...], path: str) -> tuple[Any, ...]:
        rec = self.records[path]
        self.top.children.append(_Node(path, rec.kind, rec.inputs, rec, self.top))
        return rec.outputs


def _tree(inf: Inference) -> tuple[_Node, list[_Node]]:
    """The root node and every node in pre-order (execution order)."""
    model = inf.model
    root = _Node("", model.kind, inf.inputs, None, None)
    root.outs = inf.outputs
    records = {rec.path: rec for rec in inf.layers}
    if isinstance(model, Module):
        walker = _Walker(records, root)
        # `trace`'s loop, keeping each container's boundary (no recursion: any depth)
        stack = [(model._steps(walker, inf.inputs, ""), root)]
        sent: tuple[Any, ...] | None = None
        while stack:
            steps, node = stack[-1]
            try:
                child, args, path = steps.send(sent)  # type: ignore[arg-type]
            except StopIteration as done:
                stack.pop()
                node.outs = tuple(done.value)
                sent = node.outs
                if stack:
                    walker.top = stack[-1][1]
                continue
            sub = _Node(path, child.kind, tuple(args), None, node)
            node.children.append(sub)
            assert isinstance(child, Module)
            stack.append((child._steps(walker, tuple(args), path + "."), sub))
            walker.top = sub
            sent = None
        root.outs = inf.outputs
    else:  # a single layer: one node
        for rec in inf.layers:
            root.children.append(_Node(rec.path, rec.kind, rec.inputs, rec, root))
    order: list[_Node] = []
    todo = [root]
    while todo:
        node = todo.pop()
        order.append(node)
        todo.extend(reversed(node.children))
    return root, order


def _fill_sums(order: list[_Node], aliases: dict[Dim, str], flops: bool) -> None:
    """Each node's own counts, then every node's added into its parent's."""
    for node in order:
        rec = node.rec
        if rec is None:
            continue
        node.params = rec.num_params
        node.buffers = rec.num_buffers
        node.n_tensors = 0 if rec.shared else len(rec.params)
        out_dims = rec.outputs[0].shape if len(rec.outputs) == 1 else None
        if flops:
            node.flops = _Value.of(rec.flops, out_dims, aliases)
        node.out_bytes = _Value.of(rec.activation_bytes, out_dims, aliases)
    for node in reversed(order):
        up = node.parent
        if up is not None:
            up.params = up.params + node.params
            up.buffers = up.buffers + node.buffers
            up.n_tensors += node.n_tensors
            up.flops = up.flops + node.flops
            up.out_bytes = up.out_bytes + node.out_bytes


def _rows(root: _Node, depth: int | None) -> Iterator[tuple[_Node, bool]]:
    """``(node, is_header)`` in order. Rows deeper than ``depth`` fold into their
    ancestor at ``depth`` (torchinfo's semantics: the model is depth 0, its
    children depth 1); a container shown with its children is a header row."""
    if depth == 0:
        yield root, False
        return
    todo = list(reversed(root.children))
    while todo:
        node = todo.pop()
        if node.rec is not None or (depth is not None and node.depth >= depth):
            yield node, False
            continue
        yield node, True
        todo.extend(reversed(node.children))


# -- values: exact, printed through aliases ------------------------------------------


class _Value:
    """A count (FLOPs, bytes) kept exactly (``dim``) and, for printing, as
    ``sum(coefficient * product of named dims) + rest``: a convolution's
    FLOPs ``18816*B*H1*W1`` instead of the expanded polynomial in ``H``, ``W``."""

    __slots__ = ("dim", "terms", "rest")

    def __init__(self, dim: Dim, terms: dict[tuple[str, ...], int], rest: Dim) -> None:
        self.dim = dim
        self.terms = terms
        self.rest = rest

    @staticmethod
    def zero() -> _Value:
        return _Value(0, {}, 0)

    @staticmethod
    def of(d: Dim, shape: tuple[Dim, ...] | None, aliases: dict[Dim, str]) -> _Value:
        """``d``, written as ``c * (product of the symbolic dims of shape)`` when
        it is exactly that (checked on the canonical form)."""
        if type(d) is int or shape is None:
            return _Value(d, {}, d)
        dims = [x for x in shape if type(x) is not int]
        names = [_dim_name(x, aliases) for x in dims]
        if not dims or any(n is None for n in names):
            return _Value(d, {}, d)
        m = prod(dims)
        sample = {s: 1009 + 17 * i for i, s in enumerate(sorted(free_symbols(d) | free_symbols(m)))}
        at_d, at_m = bind(d, sample), bind(m, sample)
        if type(at_d) is not int or type(at_m) is not int or at_m <= 0 or at_d % at_m:
            return _Value(d, {}, d)
        c = at_d // at_m
        if c <= 0 or c * m != d:
            return _Value(d, {}, d)
        return _Value(d, {tuple(n for n in names if n is not None): c}, 0)

    def __add__(self, other: _Value) -> _Value:
        terms = dict(self.terms)
        for k, c in other.terms.items():
            terms[k] = terms.get(k, 0) + c
        return _Value(self.dim + other.dim, terms, self.rest + other.rest)

    def text(self, aliases: dict[Dim, str]) -> str:
        """``18816*B*H1*W1``, ``1,024`` (an int, with separators)."""
        if type(self.dim) is int:
            return f"{self.dim:,}"
        if not aliases or (self.rest != 0 and not self.terms):
            return _alias_text(self.dim, aliases)  # (the canonical form: terms merged)
        parts = [("*".join(names) if c == 1 else f"{c}*" + "*".join(names))
                 for names, c in self.terms.items() if c]
        if self.rest != 0:
            parts.append(_alias_text(self.rest, aliases))
        return " + ".join(parts) if parts else "0"

    def bytes_text(self, aliases: dict[Dim, str], unit: bool = True) -> str:
        """``31.0 KiB``, ``256*B*H1*W1 B`` (without `` B`` in a bytes column)."""
        if type(self.dim) is int:
            return format_bytes(self.dim)
        return f"{self.text(aliases)} B" if unit else self.text(aliases)


def _dim_name(d: Dim, aliases: dict[Dim, str]) -> str | None:
    """How ``d`` prints as a factor: its alias, a symbol's name; None when it
    would need parentheses."""
    if d in aliases:
        return aliases[d]
    text = format_dim(d)
    return text if isinstance(d, Sym) or " " not in text else None


def _make_aliases(inf: Inference, nodes: list[_Node]) -> dict[Dim, str]:
    """``{dim: "H1"}`` for the long symbolic dims of the shapes shown, named
    after their symbol (``d1`` when they have several) in order of
    appearance, never reusing an input symbol's name."""
    taken = {s for spec in inf.inputs for d in spec.shape for s in free_symbols(d)}
    aliases: dict[Dim, str] = {}
    counts: dict[str, int] = {}
    for node in nodes:
        for spec in (*node.ins, *node.outs):
            for d in spec.shape:
                if type(d) is int or isinstance(d, Sym) or d in aliases:
                    continue
                text = format_dim(d)
                if "//" not in text and "%" not in text and len(text) <= 12:
                    continue
                syms = sorted(free_symbols(d))
                base = syms[0] if len(syms) == 1 and syms[0].isidentifier() else "d"
                while True:
                    counts[base] = counts.get(base, 0) + 1
                    name = f"{base}{counts[base]}"
                    if name not in taken:
                        break
                aliases[d] = name
    return aliases


def _alias_text(d: Dim, aliases: dict[Dim, str]) -> str:
    """``format_dim(d)`` with every parenthesized aliased sub-expression (and
    ``d`` itself) replaced by its alias."""
    if d in aliases:
        return aliases[d]
    text = format_dim(d)
    for dim, name in sorted(aliases.items(), key=lambda kv: -len(format_dim(kv[0]))):
        text = text.replace(f"({format_dim(dim)})", name)
    return text


def _shape_text(shape: tuple[Dim, ...], aliases: dict[Dim, str]) -> str:
    if not aliases:
        return format_shape(shape)
    dims = [_alias_text(d, aliases) if type(d) is not int else str(d) for d in shape]
    return f"({dims[0]},)" if len(dims) == 1 else "(" + ", ".join(dims) + ")"


def _shapes_text(specs: tuple[TensorSpec, ...], aliases: dict[Dim, str]) -> str:
    return ", ".join(_shape_text(s.shape, aliases) for s in specs) or "-"


def _count(d: Dim, aliases: dict[Dim, str] | None = None) -> str:
    if type(d) is int:
        return f"{d:,}"
    return _alias_text(d, aliases) if aliases else format_dim(d)


def _bytes(d: Dim) -> str:
    return format_bytes(d) if type(d) is int else f"{format_dim(d)} B"


def _param_text(node: _Node, aliases: dict[Dim, str]) -> str:
    """The trainable parameters' shapes, names of equal shape grouped
    (``weight, bias (64,)``); buffers are counted in their own column."""
    rec = node.rec
    if rec is None:
        return f"{node.n_tensors} tensors" if node.n_tensors else "-"
    if rec.shared and rec.params:
        return f"shared with '{rec.param_path}'"
    groups: list[tuple[list[str], str]] = []
    for name, p in rec.params.items():
        if not p.trainable:
            continue
        shape = _shape_text(p.shape, aliases)
        if groups and groups[-1][1] == shape:
            groups[-1][0].append(name)
        else:
            groups.append(([name], shape))
    return ", ".join(f"{', '.join(names)} {shape}" for names, shape in groups) or "-"


# -- the footer -----------------------------------------------------------------------


def _range_text(name: str, lo: int, hi: int | None) -> str:
    if hi is None:
        return f"{name} >= {lo}"
    if lo == 1:
        return f"{name} <= {hi}"
    return f"{lo} <= {name} <= {hi}"


def _footer(inf: Inference, root: _Node, aliases: dict[Dim, str],
            flops: bool) -> list[tuple[str, str]]:
    """``(label, text)`` lines under the table."""
    out = [("Input shape(s)", ", ".join(format_shape(s.shape) for s in inf.inputs) or "-"),
           ("Total params", _count(inf.num_params))]
    if inf.num_buffers != 0:
        out.append(("Buffers", _count(inf.num_buffers)))
    out.append(("Parameter memory", f"{_bytes(inf.param_bytes)} ({inf.dtype})"))
    if flops:
        total = inf.flops
        shown = root.flops.text(aliases) if root.flops.dim == total else _count(total, aliases)
        out.append(("FLOPs (forward)", shown))
    act = inf.activation_bytes
    shown = (root.out_bytes.bytes_text(aliases) if root.out_bytes.dim == act
             else _bytes(act))
    out.append(("Activation memory", shown))
    for name, syms in inf.unresolved.items():
        out.append(("Unresolved", f"{name} needs {', '.join(sorted(syms))}"))
    for path, a, b in inf.assumptions:
        out.append((f"Assumed at '{path}'", f"{format_dim(a)} == {format_dim(b)}"))
    bounded = [_range_text(name, lo, hi) for name, (lo, hi) in inf.valid_ranges.items()
               if (lo, hi) != (1, None)]
    if bounded:
        out.append(("Valid for", ", ".join(bounded)))
    others = [c for c in inf.conditions if " == " not in c]  # (equalities: "Assumed" above)
    if others:
        out.append(("Also requires", ", ".join(others)))
    used = [(name, dim) for dim, name in aliases.items()]
    if used:
        out.append(("Where", ", ".join(f"{name} = {format_dim(dim)}" for name, dim in used)))
    return out


# -- layout ----------------------------------------------------------------------------

#: where a cell may break: between list items and terms first, then after ``*``,
#: ``.`` or ``(`` and inside CamelCase; anywhere only when it must
_BREAK_COARSE = re.compile(r"(?<=, )|(?= \+ )")
_BREAK = re.compile(r"(?<=, )|(?= \+ )|(?= - )|(?<=\*)|(?<=\.)|(?<=\()|(?<=[a-z])(?=[A-Z])")


def _pieces(text: str, width: int) -> list[str]:
    out: list[str] = []
    for piece in _BREAK_COARSE.split(text):
        if len(piece) <= width:
            out.append(piece)
            continue
        for small in _BREAK.split(piece):
            while len(small) > width:
                out.append(small[:width])
                small = small[width:]
            out.append(small)
    return [p for p in out if p]


def _wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` characters, broken between list
    items or terms where it can, after ``*`` ``.`` ``(`` where it must, and
    anywhere as a last resort."""
    if len(text) <= width:
        return [text]
    lines: list[str] = []
    cur = ""
    for piece in _pieces(text, width):
        if cur and len(cur) + len(piece.rstrip()) > width:
            lines.append(cur.rstrip())
            cur = piece.lstrip()
        else:
            cur += piece
    if cur.strip():
        lines.append(cur.rstrip())
    return lines


def _widths(natural: list[int], typical: list[int], floor: list[int], weight: list[float],
            budget: int) -> list[int]:
    """Column widths within ``budget``: each column first gives what only its
    longest cells need (down to its ``typical`` cell), then the column with the
    largest weighted width gives a character at a time, down to its
    ``floor``, then to 4."""
    widths = list(natural)
    n = len(widths)
    first = [max(t, f) for t, f in zip(typical, floor, strict=True)]
    for low, weights in ((first, [1.0] * n), (floor, weight), ([4] * n, [1.0] * n)):
        while sum(widths) > budget:
            k = max(range(n), key=lambda i: (widths[i] > low[i], widths[i] * weights[i]))
            if widths[k] <= low[k]:
                break
            widths[k] -= 1
    return widths


def _table(header: list[str], rows: list[list[str]], right: list[bool], weight: list[float],
           footer: list[tuple[str, str]], width: int) -> str:
    n = len(header)
    natural = [max(len(r[i]) for r in [header, *rows]) for i in range(n)]
    typical = []
    for i in range(n):
        sizes = sorted(len(r[i]) for r in rows) or [0]
        typical.append(max(len(header[i]), sizes[(len(sizes) - 1) * 9 // 10]))
    typical[1] = natural[1]  # (a kind is one word: wrap other columns first)
    # a column narrower than its longest unbreakable piece breaks words: last resort
    floor = [max(len(p.strip()) for r in [header, *rows] for p in _BREAK.split(r[i]))
             for i in range(n)]
    # two spaces between columns, one between two right-aligned (count) columns
    seps = ["" if i == 0 else " " if right[i - 1] and right[i] else "  " for i in range(n)]
    widths = _widths(natural, typical, floor, weight, width - sum(map(len, seps)))

    def lines(cells: list[str]) -> list[str]:
        parts = [_wrap(c, w) for c, w in zip(cells, widths, strict=True)]
        out = []
        for k in range(max(len(p) for p in parts)):
            row = [(p[k] if k < len(p) else "") for p in parts]
            cols = zip(seps, row, widths, right, strict=True)
            out.append("".join(sep + (c.rjust(w) if r else c.ljust(w))
                               for sep, c, w, r in cols).rstrip())
        return out

    rule = "-" * min(width, sum(widths) + sum(map(len, seps)))
    out = [*lines(header), rule]
    for r in rows:
        out.extend(lines(r))
    out.append(rule)
    for label, text in footer:
        out.extend(_wrap_line(f"{label}: {text}", width))
    return "\n".join(out)


def _wrap_line(text: str, width: int) -> list[str]:
    """A footer line wrapped to ``width``, continued with an indent."""
    if len(text) <= width:
        return [text]
    first = _wrap(text, width)[0]
    rest = _wrap(text[len(first):].lstrip(), width - 4)
    return [first, *("    " + line for line in rest)]


def _md_cell(text: str, code: bool) -> str:
    text = text.replace("|", "\\|")
    return f"`{text}`" if code and text not in ("-", "--", "") else text


def _markdown(header: list[str], rows: list[list[str]], right: list[bool], code: list[bool],
              footer: list[tuple[str, str]]) -> str:
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---:" if r else "---" for r in right) + "|"]
    for r in rows:
        out.append("| " + " | ".join(_md_cell(c, k) for c, k in zip(r, code, strict=True)) + " |")
    out.append("")
    out.extend(f"- {label}: `{text}`" for label, text in footer)
    return "\n".join(out)


# -- JSON -------------------------------------------------------------------------------


def _json_dim(d: Dim) -> int | str:
    return d if type(d) is int else format_dim(d)


def _json_shapes(specs: tuple[TensorSpec, ...]) -> list[list[int | str]]:
    return [[_json_dim(d) for d in s.shape] for s in specs]


def _json(inf: Inference, root: _Node, depth: int | None, flops: bool) -> str:
    layers = []
    for node, header in _rows(root, depth):
        if header:
            continue
        row: dict[str, Any] = {
            "path": node.path, "kind": node.kind,
            "input": _json_shapes(node.ins), "output": _json_shapes(node.outs),
            "params": _json_dim(node.params), "buffers": _json_dim(node.buffers),
        }
        if flops:
            row["flops"] = _json_dim(node.flops.dim)
        row["activation_bytes"] = _json_dim(node.out_bytes.dim)
        layers.append(row)
    doc: dict[str, Any] = {
        "inputs": _json_shapes(inf.inputs),
        "outputs": _json_shapes(inf.outputs),
        "layers": layers,
        "total_params": _json_dim(inf.num_params),
        "buffers": _json_dim(inf.num_buffers),
        "param_bytes": _json_dim(inf.param_bytes),
    }
    if flops:
        doc["flops"] = _json_dim(inf.flops)
    doc["activation_bytes"] = _json_dim(inf.activation_bytes)
    doc["dtype"] = inf.dtype
    doc["valid_ranges"] = {k: [lo, hi] for k, (lo, hi) in inf.valid_ranges.items()}
    doc["conditions"] = list(inf.conditions)
    # one line per row and per shape list: readable, and still one JSON document
    lines = []
    for key, value in doc.items():
        if key == "layers":
            rows = ",\n".join(f"    {json.dumps(row)}" for row in value)
            lines.append(f'  "layers": [\n{rows}\n  ]' if rows else '  "layers": []')
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value)}")
    return "{\n" + ",\n".join(lines) + "\n}"


# -- entry points -------------------------------------------------------------------------


def format_inference(inf: Inference, *, depth: int | None = None, format: str = "table",
                     flops: bool = True) -> str:
    """Render an `Inference` as `summary` does (same options)."""
    if format not in _FORMATS:
        raise ValueError(
            f"summary: `format` is one of {', '.join(map(repr, _FORMATS))}; got {format!r}"
        )
    if depth is not None and (type(depth) is not int or depth < 0):
        raise ValueError(f"summary: `depth` is None or an int >= 0; got {depth!r}")
    root, order = _tree(inf)
    aliases = {} if format == "json" else _make_aliases(inf, order)
    _fill_sums(order, aliases, flops)
    if format == "json":
        return _json(inf, root, depth, flops)

    show_buffers = inf.num_buffers != 0
    # (weight: which columns give up width first when the table is too wide)
    columns = [("Layer", False, False, 1.3), ("Kind", False, False, 1.2),
               ("Input shape", False, True, 0.9), ("Output shape", False, True, 0.9),
               ("Parameters", False, True, 1.25), ("Params", True, True, 0.8)]
    if show_buffers:
        columns.append(("Buffers", True, True, 0.8))
    if flops:
        columns.append(("FLOPs", True, True, 1.0))
    columns.append(("Act. bytes", True, True, 1.0))
    header = [c[0] for c in columns]
    right = [c[1] for c in columns]
    code = [c[2] for c in columns]
    rows = []
    for node, is_header in _rows(root, depth):
        cells = [node.path or node.kind.lower(), node.kind,
                 _shapes_text(node.ins, aliases), _shapes_text(node.outs, aliases)]
        if is_header:
            cells += ["", "--"] + (["--"] if show_buffers else []) + (["--"] if flops else [])
            cells.append("--")
        else:
            cells += [_param_text(node, aliases), _count(node.params, aliases)]
            if show_buffers:
                cells.append(_count(node.buffers, aliases))
            if flops:
                cells.append(node.flops.text(aliases))
            cells.append(node.out_bytes.bytes_text(aliases, unit=False))
        rows.append(cells)
    footer = _footer(inf, root, aliases, flops)
    if format == "markdown":
        return _markdown(header, rows, right, code, footer)
    return _table(header, rows, right, [c[3] for c in columns], footer, WIDTH)


def summary(model: Layer, *inputs: Any, depth: int | None = None, format: str = "table",
            flops: bool = True, dtype: Any = "float32") -> str:
    """A summary of ``model`` for ``inputs`` (shape tuples such as
    ``("B", 3, "H", "W")``, `TensorSpec`s or arrays, as for `infer`), with no
    data and no backend.

    One row per node: its path (``layer1.0.conv1``), kind, input and output
    shapes, trainable parameter shapes, trainable parameter and buffer counts
    (the rows add up to the totals; a later call of a shared layer counts 0),
    forward FLOPs (FlopCounterMode's convention) and the bytes of its outputs;
    each an expression when the inputs are symbolic. Then the totals, the
    parameter and activation memory and the valid ranges of the symbols.

    - ``depth``: rows deeper than ``depth`` fold into their container at that
      depth, which then shows their sums (``depth=1``: the model's direct
      children). ``None`` shows every node, with each container as a header
      row (``--`` in its count columns).
    - ``format``: ``"table"`` (text, every line at most 120 characters; long
      symbolic sizes print as aliases listed after ``Where:``),
      ``"markdown"``, or ``"json"`` (exact values: ints, or expressions as
      strings; ``layers`` holds the rows, containers shown with their children
      left out, so each column adds up to its total).
    - ``flops=False`` leaves out the FLOPs.
    """
    return format_inference(infer(model, *inputs, dtype=dtype), depth=depth, format=format,
                            flops=flops)
