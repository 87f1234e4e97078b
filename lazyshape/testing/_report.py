"""Failure reports: the property, the layer, the inputs, and what each side did.

A report is the message of a `LayerCheckError` (an ``AssertionError``); it
ends with the lines that reproduce the failure without the harness.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lazyshape._dims import format_shape
from lazyshape._specs import TensorSpec

__all__ = [
    "PROPERTIES",
    "LayerCheckError",
    "describe",
    "format_failure",
    "spec_text",
    "construct_text",
]

#: the conformance properties, by letter (DESIGN.md, "The harness")
PROPERTIES: dict[str, str] = {
    "a": "the inferred output spec equals each backend's forward (shape and dtype)",
    "b": "the rule and the framework fail together",
    "c": "symbolic inference then binding equals binding then inference",
    "d": "allocated parameters equal their ParamSpecs (shape and dtype)",
    "e": "parameter shapes don't depend on the batch dim",
    "f": "with portable init, the backends agree numerically",
}


class LayerCheckError(AssertionError):
    """A conformance property failed; the message is the full report.

    Attributes: ``property`` (a letter, see `PROPERTIES`), ``layer`` (its
    repr), ``inputs`` (the input specs), ``results`` (``{side: what it did}``),
    ``fix`` (lines of advice, for a dtype disagreement), ``hypothesis_seed``
    (the seed of a run that was not derandomized)."""

    def __init__(
        self,
        prop: str,
        layer: str,
        inputs: Sequence[TensorSpec],
        problem: str,
        results: Mapping[str, str],
        construct: str | None = None,
        fix: Sequence[str] = (),
    ) -> None:
        self.property = prop
        self.layer = layer
        self.inputs = tuple(inputs)
        self.problem = problem
        self.results = dict(results)
        self.fix = tuple(fix)
        self.hypothesis_seed: int | None = None
        super().__init__(format_failure(prop, layer, inputs, problem, results, construct, fix))


def construct_text(layer: Any) -> str:
    """Code that rebuilds ``layer`` (best effort: its repr when that is valid
    Python, else its class called with its known hyperparameters)."""
    text = repr(layer)
    if "?" in text or "\n" in text:
        hp = {k: v for k, v in layer.hparams().items() if v is not None}
        text = f"{type(layer).__name__}(" + ", ".join(f"{k}={v!r}" for k, v in hp.items()) + ")"
    if type(layer).__module__.startswith("lazyshape."):
        text = "ls." + text
    return text


def spec_text(spec: TensorSpec) -> str:
    """``TensorSpec((2, B, 3), float32)`` as a constructor call one can paste."""
    dims = ", ".join(repr(str(d)) if type(d) is not int else str(d) for d in spec.shape)
    if len(spec.shape) == 1:
        dims += ","
    return f"ls.TensorSpec(({dims}), {spec.dtype!r})"


def describe(value: Any) -> str:
    """A short description of what one side produced: an output spec, a shape
    and dtype, or an exception."""
    if isinstance(value, BaseException):
        text = str(value).strip().splitlines()[0] if str(value).strip() else ""
        if len(text) > 300:
            text = text[:297] + "..."
        return f"raised {type(value).__name__}: {text}"
    if isinstance(value, TensorSpec):
        return f"{format_shape(value.shape)} {value.dtype}"
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], str):
        return f"{format_shape(tuple(value[0]))} {value[1]}"
    return str(value)


def format_failure(
    prop: str,
    layer: str,
    inputs: Sequence[TensorSpec],
    problem: str,
    results: Mapping[str, str],
    construct: str | None = None,
    fix: Sequence[str] = (),
) -> str:
    width = max([len(k) for k in results] + [6])
    lines = [
        f"property ({prop}) failed: {PROPERTIES.get(prop, prop)}",
        f"  {problem}",
        f"  {'layer':<{width}}  {layer}",
        f"  {'inputs':<{width}}  " + ", ".join(
            f"{format_shape(s.shape)} {s.dtype}" for s in inputs
        ),
    ]
    for side, what in results.items():
        lines.append(f"  {side:<{width}}  {what}")
    if fix:
        lines.append("fix:")
        lines.extend(f"  {line}" for line in fix)
    lines.append("reproduce:")
    lines.append(f"  layer = {construct or layer}")
    args = ", ".join(spec_text(s) for s in inputs)
    lines.append(f"  ls.infer(layer, {args})")
    return "\n".join(lines)
