"""Robustness: whatever the inputs, the only exception that escapes `ls.infer`,
`ls.build` + ``materialize``, or a forward for a shape problem is `ShapeError`,
and its ``.path`` names a real node of the model (or one of its inputs).

`perturbed_inputs` draws valid and invalid inputs for a model (wrong rank,
zero, changed, huge and negative sizes, other dtypes);
`check_model` runs one model on them everywhere and raises `ModelCheckError`
when anything else escapes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

import lazyshape as ls
from lazyshape._errors import ShapeError
from lazyshape._graph import program_of
from lazyshape._layer import Layer
from lazyshape._specs import TensorSpec

from ._check import _flat, _quiet, input_arrays
from ._known import known_issue
from ._report import describe, spec_text

__all__ = ["check_model", "perturbed_inputs", "ModelCheckError", "HUGE", "node_paths"]

#: a size no allocation survives: only `infer` (and the checks before
#: allocation) may see it
HUGE = 1 << 40
#: inputs up to this many elements are run through a forward
MAX_FORWARD_ELEMENTS = 1 << 14
#: parameters up to this many bytes are materialized
MAX_PARAM_BYTES = 1 << 24

FUZZ_DTYPES = ("float64", "float16", "int32", "int64", "bool")
#: the floating dtypes JAX holds in 32 bits unless x64 is on


class ModelCheckError(AssertionError):
    """Something other than a well-placed `ShapeError` escaped."""


@st.composite
def perturbed_inputs(
    draw: Any,
    specs: Sequence[TensorSpec],
    *,
    negative: bool = True,
    huge: bool = True,
    dtypes: Sequence[str] = FUZZ_DTYPES,
) -> tuple[Any, ...]:
    """Inputs for a model that accepts ``specs``: ``specs`` themselves (a third
    of the time), or with one to three perturbations: a dim added or dropped,
    a size set to 0, 1, another small value or `HUGE`, a dtype switched (to
    one of ``dtypes``), or (``negative``, the default) a size set to -1 (then
    the input is a shape tuple: a spec cannot hold it)."""
    out: list[Any] = list(specs)
    if draw(st.integers(0, 2)) == 0:
        return tuple(out)
    ops = ["rank+", "rank-", "zero", "one", "resize", "dtype"]
    if huge:
        ops.append("huge")
    if negative:
        ops.append("negative")
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(out) - 1))
        spec = out[i]
        if not isinstance(spec, TensorSpec):
            continue
        shape = list(spec.shape)
        op = draw(st.sampled_from(ops))
        if op == "dtype":
            out[i] = TensorSpec._make(spec.shape, draw(st.sampled_from(list(dtypes))))
            continue
        if op == "rank+":
            shape.insert(draw(st.integers(0, len(shape))), draw(st.integers(1, 4)))
        elif shape and op == "rank-":
            del shape[draw(st.integers(0, len(shape) - 1))]
        elif shape:
            k = draw(st.integers(0, len(shape) - 1))
            shape[k] = {"zero": 0, "one": 1, "huge": HUGE, "negative": -1}.get(op) or draw(
                st.integers(2, 9)
            )
        if op == "negative" and shape:  # a 0-d input has no size to set
            out[i] = tuple(shape)
        else:
            out[i] = TensorSpec._make(tuple(shape), spec.dtype)
    return tuple(out)


def node_paths(model: Layer, n_inputs: int) -> set[str]:
    """Paths a `ShapeError` may name: every node, and ``input<i>``."""
    program = program_of(model, n_inputs)
    paths = {node.path for node in program.nodes}
    paths |= {f"input{i}" for i in range(program.n_inputs)}
    return paths


def _numel(x: Any) -> int:
    shape = x.shape if isinstance(x, TensorSpec) else x
    n = 1
    for d in shape:
        n *= int(d)
    return n


def _concrete(inputs: Sequence[Any]) -> bool:
    return all(
        isinstance(x, TensorSpec) and not x.is_symbolic and x.dtype != "bfloat16" for x in inputs
    )


class _Judge:
    def __init__(self, model: Layer, inputs: Sequence[Any]) -> None:
        self.model = model
        self.inputs = tuple(inputs)
        self.paths = node_paths(model, len(inputs) or 1)

    def fail(self, stage: str, problem: str, e: BaseException | None = None) -> None:
        ins = ", ".join(spec_text(x) if isinstance(x, TensorSpec) else repr(x)
                        for x in self.inputs)
        lines = [
            f"robustness: {problem}",
            f"  stage   {stage}",
            f"  inputs  {ins}",
        ]
        if e is not None:
            lines.append(f"  error   {describe(e)}")
        lines.append(f"  paths   {sorted(self.paths)}")
        lines.append("model:")
        lines.append("  " + repr(self.model).replace("\n", "\n  "))
        raise ModelCheckError("\n".join(lines)) from e

    def agrees(
        self, stage: str, what: str, error: ShapeError | None, fn: Any, *args: Any
    ) -> tuple[bool, Any]:
        """Run ``fn(*args)``, which must fail (with a `ShapeError` naming a node)
        exactly where ``infer`` failed with ``error``: ``(succeeded, result)``."""
        try:
            with _quiet():
                result = fn(*args)
        except Exception as e:
            self.shape_error(stage, e)
            if error is None:
                self.fail(stage, f"{what} raised where infer succeeded", e)
            return False, None
        if error is not None:
            self.fail(stage, f"{what} succeeded where infer raised", error)
        return True, result

    def shape_error(self, stage: str, e: BaseException) -> ShapeError:
        if not isinstance(e, ShapeError):
            self.fail(stage, f"{type(e).__name__} escaped instead of ShapeError", e)
        assert isinstance(e, ShapeError)
        model_level = e.path == "" and e.kind in (self.model.kind, "Model", "Sequential")
        if e.path not in self.paths and not model_level:
            self.fail(stage, f"the ShapeError names no node of the model (path {e.path!r})", e)
        return e


def check_model(
    model: Layer,
    *inputs: Any,
    backends: Sequence[str] | None = None,
    forward: bool = True,
    seed: int = 0,
    skip_known: bool = True,
    stats: dict[str, int] | None = None,
) -> ShapeError | None:
    """Run ``model`` on ``inputs`` (specs or shape tuples) through `ls.infer`, and
    on every backend through ``build`` + ``materialize`` and a forward (when the
    sizes are small); raise `ModelCheckError` if anything but a `ShapeError`
    naming a real node escapes, if the stages disagree on whether the inputs
    are valid, or if a forward's output shapes differ from the inferred ones.
    Returns the `ShapeError` the inputs cause, or None when they are valid.

    ``skip_known``: inputs that reach a node hitting a recorded bug
    (`KNOWN_ISSUES`) stop after `ls.infer` (a backend-specific one skips that
    backend's forward). ``stats`` counts the outcomes (``"valid"``,
    ``"ShapeError"``, ``"known:<id>"``, ``"no forward"``: sizes too large to allocate or
    inputs that are not concrete specs)."""
    counts = stats if stats is not None else {}

    def count(key: str) -> None:
        counts[key] = counts.get(key, 0) + 1

    judge = _Judge(model, inputs)
    try:
        inf = ls.infer(model, *inputs)
        error: ShapeError | None = None
    except Exception as e:
        error = judge.shape_error("ls.infer", e)
        inf = None
    count("valid" if error is None else "ShapeError")
    names = list(backends) if backends is not None else ls.backends()
    skip_forward: set[str] = set()
    if inf is not None and skip_known:
        for rec in inf.layers:
            issue = known_issue(rec.layer, rec.inputs)
            if issue is not None:
                count(f"known:{issue.id}")
                return error
            for name in names:
                issue = known_issue(rec.layer, rec.inputs, name)
                if issue is not None:
                    count(f"known:{issue.id}")
                    skip_forward.add(name)
    small_params = inf is not None and type(inf.num_bytes) is int and (
        inf.num_bytes <= MAX_PARAM_BYTES
    )
    for name in names:
        if inf is not None and not small_params:
            break
        m = ls.build(model, name, rng="portable", seed=seed)
        judge.agrees(f"{name}: materialize", "materialize", error, m.materialize, *inputs)
    if not forward or not _concrete(inputs) or any(
        _numel(x) > MAX_FORWARD_ELEMENTS for x in inputs
    ):
        count("no forward")
        return error
    if inf is not None and not small_params:
        count("no forward")
        return error
    arrays = input_arrays(None, model, tuple(inputs), seed)
    for name in names:
        if name in skip_forward:
            continue
        backend = ls.backend.get_backend(name)
        if any(backend.native_dtype(x.dtype) != x.dtype for x in inputs):
            count("no forward")  # e.g. JAX without x64: a float64 array arrives as float32
            continue
        m = ls.build(model, name, rng="portable", seed=seed)
        if hasattr(m, "eval"):
            m.eval()
        xs = [ls.asarray(a, name) for a in arrays]
        ok, y = judge.agrees(f"{name}: forward", "the forward", error, m, *xs)
        if not ok:
            continue
        assert inf is not None
        ys = [ls.to_numpy(a) for a in _flat(y)]
        got = [tuple(a.shape) for a in ys]
        want = [tuple(int(d) for d in o.shape) for o in inf.outputs]
        if got != want:
            judge.fail(f"{name}: forward", f"output shapes {got} differ from the inferred {want}")
    return error
