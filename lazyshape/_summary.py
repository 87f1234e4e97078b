"""``ls.summary``: a table of a model's shapes and parameters, with no data."""

from __future__ import annotations

from typing import Any

from ._dims import Dim, format_dim, format_shape
from ._layer import Layer
from ._propagate import Inference, infer

__all__ = ["summary", "format_inference"]


def _count(d: Dim) -> str:
    return f"{d:,}" if type(d) is int else format_dim(d)


def _bytes(d: Dim) -> str:
    if type(d) is not int:
        return f"{format_dim(d)} B"
    size = float(d)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    return f"{d} B"


def format_inference(inf: Inference) -> str:
    """Render an `Inference` as the summary table."""
    rows = [("Layer", "Kind", "Output shape", "Parameters", "# Params")]
    for rec in inf.layers:
        outs = ", ".join(format_shape(o.shape) for o in rec.outputs)
        if rec.path != rec.param_path and rec.params:
            params = f"shared with '{rec.param_path}'"
        else:
            params = ", ".join(f"{k} {format_shape(p.shape)}" for k, p in rec.params.items())
        rows.append((rec.path or rec.kind.lower(), rec.kind, outs, params or "-",
                     _count(rec.num_params)))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]

    def line(r: tuple[str, ...]) -> str:
        cells = [r[i].ljust(widths[i]) for i in range(4)] + [r[4].rjust(widths[4])]
        return "  ".join(cells).rstrip()

    rule = "-" * len(line(rows[0]))
    out = [line(rows[0]), rule, *(line(r) for r in rows[1:]), rule]
    ins = ", ".join(format_shape(s.shape) for s in inf.inputs)
    out.append(f"Input shape(s): {ins}")
    out.append(f"Total params: {_count(inf.num_params)}")
    if inf.num_buffers != 0:
        out.append(f"Buffers: {_count(inf.num_buffers)}")
    out.append(f"Parameter memory: {_bytes(inf.num_bytes)} ({inf.dtype})")
    for name, syms in inf.unresolved.items():
        out.append(f"Unresolved: {name} needs {', '.join(sorted(syms))}")
    for path, a, b in inf.assumptions:
        out.append(f"Assumed at '{path}': {format_dim(a)} == {format_dim(b)}")
    bounded = [_range_text(name, lo, hi) for name, (lo, hi) in inf.valid_ranges.items()
               if (lo, hi) != (1, None)]
    if bounded:
        out.append("Valid for: " + ", ".join(bounded))
    return "\n".join(out)


def _range_text(name: str, lo: int, hi: int | None) -> str:
    if hi is None:
        return f"{name} >= {lo}"
    if lo == 1:
        return f"{name} <= {hi}"
    return f"{lo} <= {name} <= {hi}"


def summary(model: Layer, *inputs: Any, dtype: Any = "float32") -> str:
    """A table of every node: path, kind, output shape, parameter shapes and
    counts; then totals and parameter bytes. Inputs as for `infer`."""
    return format_inference(infer(model, *inputs, dtype=dtype))
