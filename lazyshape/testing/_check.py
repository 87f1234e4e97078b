"""`check_layer`: the conformance properties, run with hypothesis on every
installed backend.

For each example, a layer is drawn (its hyperparameters), then inputs: ones
it accepts (most examples), `probes` (mutations whose validity the oracles
decide) or ones it must reject. Then:

(a) the inferred output spec equals each backend's forward, shape and dtype;
(b) the rule and the framework fail together: the rule raises `ShapeError`
    exactly where the framework's own functional (torch, JAX; ONNX for
    successes) fails, accepted inputs run on every backend, and the oracles'
    shapes equal the rule's;
(c) symbolic inference then binding equals binding then inference (where the
    binding satisfies the equalities the rule assumed), and ONNX carries the
    same symbols through;
(d) allocated parameters equal their `ParamSpec`\\ s, names, shape and dtype;
(e) parameter shapes don't depend on the batch dim;
(f) with portable init, every backend gets the same weights and computes the
    same outputs (NumPy is the reference).
"""

from __future__ import annotations

import contextlib
import random
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NoReturn

import hypothesis
import numpy as np
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as Settings
from hypothesis import strategies as st
from hypothesis.errors import FlakyFailure
from hypothesis.strategies import SearchStrategy

import lazyshape as ls
from lazyshape._dims import bind, bind_shape, format_dim, free_symbols
from lazyshape._errors import ShapeError
from lazyshape._layer import Layer
from lazyshape._propagate import Inference
from lazyshape._specs import TensorSpec
from lazyshape.backend import get_backend

from ._boundary import (
    BOUNDARY_BACKENDS,
    describe_raw,
    raw_forward,
    rejects,
    smallest_accepted,
    with_dim,
)
from ._known import known_issue
from ._onnx import onnx_infer
from ._oracles import FLOATING, as_numpy_dtype
from ._primitives import Specs
from ._registry import (
    Deviation,
    LayerEntry,
    NotApplicable,
    Oracle,
    _as_layers,
    default_batch_axes,
    entry_for,
)
from ._report import PROPERTIES, LayerCheckError, construct_text, describe
from .strategies import PROBE_DTYPES, accepted_inputs, default_inputs, probes, symbolize

__all__ = ["check_layer", "CheckResult", "forward_on", "input_arrays", "scaled_settings"]



class CheckResult:
    """What `check_layer` ran: ``counts[p]`` examples exercised property ``p``
    (``"b:torch"``, ``"c:onnx"``...: per oracle), out of ``examples``;
    ``counts["case:<c>"]`` examples were of case ``c`` (``valid``: declared
    inputs; ``candidate``: undeclared ones, drawn from the ranks and sizes the
    rule accepts; ``probe``: mutations; ``invalid``: declared invalid), and
    ``counts["rejected"]`` (``"rejected:<c>"`` per case) were inputs the rule
    rejected, which reach property b only; `rejected` is that fraction."""

    def __init__(self, kind: str, backends: Sequence[str]) -> None:
        self.kind = kind
        self.backends = tuple(backends)
        self.examples = 0
        self.counts: dict[str, int] = {p: 0 for p in PROPERTIES}
        #: the seed of a run that was not derandomized (None: derandomized)
        self.hypothesis_seed: int | None = None

    def hit(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1

    @property
    def rejected(self) -> float:
        """The fraction of examples whose inputs the rule rejected."""
        return self.counts.get("rejected", 0) / self.examples if self.examples else 0.0

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={v}" for k, v in sorted(self.counts.items()))
        seed = "" if self.hypothesis_seed is None else f"; hypothesis_seed={self.hypothesis_seed}"
        return f"CheckResult({self.kind}: {self.examples} examples{seed}; {body})"


def scaled_settings(factor: float = 1.0, **overrides: Any) -> Settings:
    """The loaded hypothesis profile with ``max_examples`` scaled by ``factor``
    (so a test keeps its share of the budget in every profile)."""
    base = Settings.default or Settings()  # (typed Optional; set once a profile is loaded)
    n = max(1, int(round(base.max_examples * factor)))
    return Settings(base, max_examples=n, **overrides)


# -- arrays and backends -------------------------------------------------------------


def input_arrays(
    entry: LayerEntry | None, layer: Layer, specs: Specs, seed: int = 0
) -> list[np.ndarray[Any, Any]]:
    """NumPy inputs for ``specs``: the entry's ``values`` hook, else standard
    normal floats, small non-negative ints and random bools."""
    rng = np.random.default_rng(seed)
    out = []
    for i, s in enumerate(specs):
        shape = tuple(int(d) for d in s.shape)
        if entry is not None and entry.values is not None:
            out.append(np.asarray(entry.values(layer, i, s, rng)))
            continue
        dt = as_numpy_dtype(s.dtype)
        if s.dtype in FLOATING:
            out.append(rng.standard_normal(shape).astype(dt))
        elif s.dtype == "bool":
            out.append(rng.random(shape) < 0.5)
        else:
            out.append(rng.integers(0, 3, shape).astype(dt))
    return out


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    # frameworks warn on legitimate edge cases (torch: "Initializing zero-element
    # tensors is a no-op"); warnings are not what the properties judge
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _flat(y: Any) -> list[Any]:
    if isinstance(y, (tuple, list)):
        return [a for item in y for a in _flat(item)]
    return [y]


def forward_on(
    backend: str, layer: Layer, specs: Specs, arrays: Sequence[Any], seed: int = 0,
    dtype: str = "float32",
) -> tuple[list[np.ndarray[Any, Any]], dict[str, np.ndarray[Any, Any]]]:
    """Build ``layer`` on ``backend`` (model ``dtype``) with portable init,
    materialize it from ``specs``, run a forward on ``arrays`` (each made an
    array of its spec's dtype) in evaluation mode; return the flat outputs and
    the state dict, as NumPy arrays."""
    m = ls.build(layer, backend, rng="portable", seed=seed, dtype=dtype)
    m.materialize(*specs)
    state = {k: ls.to_numpy(v) for k, v in m.state_dict().items()}
    xs = [ls.asarray(a, backend, s.dtype) for a, s in zip(arrays, specs, strict=True)]
    y = get_backend(backend).forward(m, *xs)  # evaluation mode, no gradients
    return [ls.to_numpy(a) for a in _flat(y)], state


def _expected_dtype(backend: str, dtype: str) -> str:
    """The dtype ``backend`` holds for ``dtype`` (JAX without x64: 32 bits)."""
    return get_backend(backend).native_dtype(dtype)


#: the model dtypes a layer with no oracle is also run in (`_Run.model_dtypes`)
MODEL_DTYPES = ("float64", "float16", "bfloat16")


def _representable(specs: Specs) -> bool:
    # NumPy has no bfloat16 of its own (ml_dtypes' does not convert to torch)
    return all(s.dtype != "bfloat16" for s in specs)


# -- the properties ------------------------------------------------------------------


class _Run:
    """One example: a layer and inputs, checked property by property."""

    def __init__(self, check: _Check, layer: Layer, specs: Specs, case: str,
                 where: str = "") -> None:
        self.check = check
        self.layer = layer
        self.specs = specs
        self.case = case
        self.text = repr(layer)
        #: appended to a failure's problem (an edge probe's position)
        self.where = where
        #: whether this run's checks count in `CheckResult.counts` (a probe's
        #: sub-runs don't: they are counted as probes)
        self.counting = case not in ("edge", "dtype")

    def fail(self, prop: str, problem: str, results: dict[str, str],
             fix: Sequence[str] = ()) -> NoReturn:
        where = f" ({self.where})" if self.where else ""
        raise LayerCheckError(
            prop, self.text, self.specs, f"[{self.case} inputs] {problem}{where}", results,
            construct_text(self.layer), fix,
        )

    # (b) -------------------------------------------------------------------------
    def rule(self) -> Inference | ShapeError:
        try:
            return ls.infer(self.layer, *self.specs, batch_dim=None)
        except ShapeError as e:
            return e
        except Exception as e:  # anything else escaping infer is a bug
            self.fail("b", "ls.infer raised something other than ShapeError",
                      {"rule": describe(e)})

    def oracles(self, rule: Inference | ShapeError, count: bool = True) -> None:
        res = self.check.result
        ok = isinstance(rule, Inference)
        if isinstance(rule, Inference):
            rule_text = "; ".join(describe(o) for o in rule.outputs)
        else:
            rule_text = describe(rule)
        if self.case == "valid" and not ok:
            self.fail("b", "the rule rejects inputs the layer's strategy declares valid",
                      {"rule": rule_text})
        if self.case == "invalid" and ok:
            self.fail("b", "the rule accepts inputs the layer's strategy declares invalid",
                      {"rule": rule_text})
        judged = self.case in ("valid", "invalid")  # the rule itself was judged
        all_float = all(s.dtype in FLOATING for s in self.specs)
        for oracle in self.check.oracles:
            if not oracle.rejects and not ok:
                continue  # (it can't judge a rejection: see below)
            try:
                with _quiet():
                    got: Any = oracle.fn(self.layer, self.specs)
            except (NotApplicable, ImportError):  # ImportError: the framework isn't installed
                continue
            except Deviation as e:
                got = e
            except Exception as e:
                got = e
            failed = isinstance(got, BaseException)
            sides = {"rule": rule_text, oracle.name: describe(got) if failed else
                     "; ".join(describe(o) for o in got)}
            if not oracle.rejects and (failed or not ok):
                continue  # only an oracle that rejects reliably judges rejections
            if ok and failed:
                self.fail("b", f"the rule accepts inputs {oracle.name} rejects", sides)
            if not ok and not failed:
                if not oracle.dtypes and not all_float:
                    continue  # a shape-only oracle can't judge a dtype rejection
                if self.case == "invalid":
                    self.fail("b", f"{oracle.name} accepts inputs the layer's strategy "
                              "declares invalid (the strategy or the rule is wrong)", sides)
                self.fail("b", f"the rule rejects inputs {oracle.name} accepts", sides)
            if isinstance(rule, Inference) and not failed:
                self._same_outputs(rule, got, oracle, sides)
            judged = True
            if count:
                res.hit(f"b:{oracle.name}")
        if judged and count:
            res.hit("b")

    def _same_outputs(self, rule: Inference, got: Any, oracle: Oracle,
                      sides: dict[str, str]) -> None:
        if len(got) != len(rule.outputs):
            self.fail("b", f"{oracle.name} computes {len(got)} outputs", sides)
        for spec, (shape, dtype) in zip(rule.outputs, got, strict=True):
            if tuple(spec.shape) != tuple(shape):
                self.fail("b", f"the rule's output shape differs from {oracle.name}'s", sides)
            if oracle.dtypes and spec.dtype != dtype:
                self.fail("b", f"the rule's output dtype differs from {oracle.name}'s", sides)

    # (b) at the rule's edges ---------------------------------------------------------
    def boundaries(self) -> None:
        """At the smallest size of each int dim the rule accepts, the framework
        must accept too, and one below it reject (see `lazyshape.testing._boundary`):
        judged by the layer's oracles where it has some, else by its own forward
        on a framework."""
        check = self.check
        if self.case not in ("valid", "candidate"):
            return
        if check.oracles:
            self._oracle_edges()
            return
        backend = next((b for b in BOUNDARY_BACKENDS if b in check.backends), None)
        if backend is None:
            return
        for i, k in self._int_dims():
            edge = smallest_accepted(self.layer, self.specs, i, k)
            at = with_dim(self.specs, i, k, edge)
            got = raw_forward(self.layer, at, backend, check.seed)
            where = f"input {i} dim {k} = {edge}, the smallest size the rule accepts"
            if isinstance(got, BaseException):
                self._edge_fail(at, f"the rule accepts inputs {backend} rejects ({where})",
                                backend, got)
            if edge == 0:
                continue
            below = with_dim(self.specs, i, k, edge - 1)
            got = raw_forward(self.layer, below, backend, check.seed)
            if not rejects(got):
                self._edge_fail(below, f"the rule rejects inputs {backend} accepts "
                                f"(input {i} dim {k} = {edge - 1}, one below the smallest "
                                "size the rule accepts)", backend, got)
        self._edges_probed()

    def _int_dims(self) -> list[tuple[int, int]]:
        return [(i, k) for i, spec in enumerate(self.specs)
                for k, d in enumerate(spec.shape) if type(d) is int]

    def _edges_probed(self) -> None:
        self.check.result.hit("b:edges")
        if self.case == "candidate":  # (declared valid inputs counted "b" already)
            self.check.result.hit("b")

    def _oracle_edges(self) -> None:
        """The edges of a layer with oracles: the rule and the oracles must agree at
        the smallest accepted size of each dim and one below it (where an oracle
        fails, or lazyshape documents a `Deviation`, the rule must reject)."""
        for i, k in self._int_dims():
            edge = smallest_accepted(self.layer, self.specs, i, k)
            if edge != self.specs[i].shape[k]:  # (else: the example itself, judged)
                at = with_dim(self.specs, i, k, edge)
                where = f"input {i} dim {k} = {edge}, the smallest size the rule accepts"
                _Run(self.check, self.layer, at, "edge", where).judge_edge()
            if edge > 0:
                below = with_dim(self.specs, i, k, edge - 1)
                where = (f"input {i} dim {k} = {edge - 1}, one below the smallest size "
                         "the rule accepts")
                _Run(self.check, self.layer, below, "edge", where).judge_edge()
        self._edges_probed()

    def judge_edge(self) -> None:
        rule = self.rule()
        if self.check.skip_known and known_issue(self.layer, self.specs) is not None:
            return
        self.oracles(rule, count=False)

    def _edge_fail(self, specs: Specs, problem: str, backend: str, got: Any) -> NoReturn:
        rule = self.check_rule(specs)
        self.specs = specs  # the report shows the inputs at the edge
        self.fail("b", problem, {"rule": rule, backend: describe_raw(got)})

    def check_rule(self, specs: Specs) -> str:
        try:
            inf = ls.infer(self.layer, *specs, batch_dim=None)
        except Exception as e:  # noqa: BLE001 - reported as the rule's answer
            return describe(e)
        return "; ".join(describe(o) for o in inf.outputs)

    # (a), (d), (f), and (b) for the backends ---------------------------------------
    def backends(self, inf: Inference) -> None:
        check = self.check
        if not check.backends or not any(p in check.properties for p in "adf"):
            return
        if not _representable(self.specs):
            return
        arrays = input_arrays(check.entry_of(self.layer), self.layer, self.specs, check.seed)
        outs: dict[str, Any] = {}
        spared: list[str] = []  # backends past their `backend_examples` budget

        def run(name: str) -> None:
            try:
                with _quiet():
                    outs[name] = forward_on(name, self.layer, self.specs, arrays, check.seed)
            except Exception as e:
                outs[name] = e

        for name in check.backends:
            if check.skip_known:
                issue = known_issue(self.layer, self.specs, name)
                if issue is not None:
                    check.result.hit(f"known:{issue.id}")
                    continue
            budget = check.backend_examples.get(name)
            if budget is not None:
                if check.forwards.get(name, 0) >= budget:
                    spared.append(name)
                    continue
                check.forwards[name] = check.forwards.get(name, 0) + 1
            run(name)
        try:
            self._judge_backends(inf, outs)
        except LayerCheckError:
            if not spared:
                raise
            # a failure: its report gives every backend's answer
            for name in spared:
                run(name)
            self._judge_backends(inf, outs)
            raise

    def dtypes(self) -> None:
        """Every dtype, for the first example of each layer drawn (and input ranks
        and dtypes): the model in each of `MODEL_DTYPES`, then the inputs in
        each of the probe dtypes (ints, bool)."""
        check = self.check
        if self.case not in ("valid", "candidate"):
            return
        key = (construct_text(self.layer), tuple((s.ndim, s.dtype) for s in self.specs))
        if key in check.swept:
            return
        check.swept.add(key)
        for dtype in MODEL_DTYPES:
            self.model_dtypes(dtype)
        for dtype in check.probe_dtypes:
            self.input_dtype(dtype)
        check.result.hit("a:dtypes")

    def input_dtype(self, dtype: str) -> None:
        """The inputs in ``dtype``: the oracles judge whether the rule may accept
        them (property b); where it does, every backend's forward must too, in
        the rule's output dtypes (property a)."""
        specs = tuple(TensorSpec._make(s.shape, dtype) for s in self.specs)
        if specs == self.specs:
            return
        run = _Run(self.check, self.layer, specs, "dtype", f"every input in {dtype}")
        rule = run.rule()
        if "b" in self.check.properties:
            run.oracles(rule, count=False)
        if isinstance(rule, Inference):
            run.backends(rule)

    def model_dtypes(self, dtype: str) -> None:
        """On float32 (or non-floating) inputs: the same inputs and the model in
        ``dtype`` (one of `MODEL_DTYPES`) on each backend that computes in it:
        the rule's output dtypes must be the forward's (property a). A backend
        with no kernel for the dtype, or without the dtype (JAX without x64,
        NumPy's bfloat16), or past its `backend_examples` budget, is skipped."""
        check = self.check
        if not self.specs or any(s.dtype in FLOATING and s.dtype != "float32" for s in self.specs):
            return
        # float32 inputs follow the model; others (an Embedding's ids) stay
        specs = tuple(TensorSpec._make(s.shape, dtype) if s.dtype == "float32" else s
                      for s in self.specs)
        try:
            inf = ls.infer(self.layer, *specs, batch_dim=None, dtype=dtype)
        except Exception:  # noqa: BLE001 - refusing another dtype is the rule's right
            return
        expected = "; ".join(describe(o) for o in inf.outputs)
        arrays = input_arrays(check.entry_of(self.layer), self.layer, self.specs, check.seed)
        for name in check.backends:
            if _expected_dtype(name, dtype) != dtype or dtype == "bfloat16" and name == "numpy":
                continue
            budget = check.backend_examples.get(name)
            if budget is not None:
                if check.forwards.get(name, 0) >= budget:
                    continue
                check.forwards[name] = check.forwards.get(name, 0) + 1
            try:
                with _quiet():
                    ys, _ = forward_on(name, self.layer, specs, arrays, check.seed, dtype)
            except Exception:  # noqa: BLE001 - no kernel for it: can't judge here
                continue
            got = "; ".join(describe((y.shape, str(y.dtype))) for y in ys)
            for spec, y in zip(inf.outputs, ys, strict=False):
                if str(y.dtype) != _expected_dtype(name, spec.dtype):
                    self.specs = specs
                    self.fail("a", f"the {name} backend's output dtype differs "
                              f"(model and inputs in {dtype})",
                              {"rule": expected, name: got})

    def _judge_backends(self, inf: Inference, outs: dict[str, Any]) -> None:
        res = self.check.result if self.counting else CheckResult("", ())
        expected = "; ".join(describe(o) for o in inf.outputs)
        sides = {"rule": expected}
        for name, got in outs.items():
            if isinstance(got, BaseException):
                sides[name] = describe(got)
            else:
                sides[name] = "; ".join(f"{describe((a.shape, str(a.dtype)))}" for a in got[0])
        for name, got in outs.items():
            if isinstance(got, BaseException):
                what = "ShapeError" if isinstance(got, ShapeError) else "fails"
                self.fail("b", f"the rule accepts these inputs but the {name} backend {what}",
                          sides)
        # (a) shapes and dtypes of the forward
        for name, (ys, _) in outs.items():
            if len(ys) != len(inf.outputs):
                self.fail("a", f"the {name} backend returns {len(ys)} outputs", sides)
            for spec, y in zip(inf.outputs, ys, strict=True):
                if tuple(y.shape) != tuple(spec.shape):
                    self.fail("a", f"the {name} backend's output shape differs", sides)
                if str(y.dtype) != _expected_dtype(name, spec.dtype):
                    self.fail("a", f"the {name} backend's output dtype differs", sides,
                              self._dtype_fix(inf, outs))
        res.hit("a")
        # (d) parameters as allocated
        if "d" in self.check.properties:
            for name, (_, state) in outs.items():
                self._params_match(name, inf, state)
            if "torch" in outs:
                self._native_params(inf)
            res.hit("d")
        # (f) numerical agreement with the first backend (NumPy)
        if "f" in self.check.properties and len(outs) > 1:
            self._agree(outs)
            res.hit("f")

    def _dtype_fix(self, inf: Inference, outs: dict[str, Any]) -> list[str]:
        """What to change when the rule's output dtype is not the backends'."""
        got = {name: ls.backend.normalize_dtype(ys[0].dtype) for name, (ys, _) in outs.items()}
        # JAX without x64 holds 64-bit dtypes in 32 bits: judge by the others
        full = {n: d for n, d in got.items() if _expected_dtype(n, "float64") == "float64"}
        answers = set((full or got).values())
        inputs = ", ".join(sorted({s.dtype for s in self.specs}))
        fix: list[str] = []
        if len(answers) > 1:
            fix.append("the backends disagree with each other: compute with ls.ops functions "
                       "(ls.ops.multiply(x, w), ls.ops.matmul(x, w)), which promote alike on "
                       "every backend, rather than operators on arrays (x * w), which follow "
                       "each framework's own promotion")
        else:
            (answer,) = answers
            model = inf.dtype
            params = [str(p.dtype) for p in inf.params.values()]
            promoted = ls.ops.promote_types(*(s.dtype for s in self.specs), *params)
            if answer == model and params:
                fix.append(f"the forward computes in the parameters' dtype ({model}): return "
                           "TensorSpec(shape, None) from output_spec (None is the model's dtype)")
            elif answer == promoted:
                fix.append(f"the forward computes in the promoted dtype ({promoted}): return "
                           "TensorSpec(shape, None) from output_spec and declare "
                           'dtype_rule = "promote" on the class')
            else:
                fix.append(f"the forward computes in {answer}: return it from output_spec")
        if self.case in ("probe", "dtype"):
            dtypes = {s.dtype for s in self.specs}
            rest = tuple(d for d in self.check.probe_dtypes if d not in dtypes)
            fix.append(f"or, if the layer is not meant for {inputs} inputs, reject them in "
                       "output_spec (raise ls.ShapeError) or leave them out of the probes: "
                       f"check_layer(..., probe_dtypes={rest!r})")
        return fix

    def _params_match(self, backend: str, inf: Inference, state: dict[str, Any]) -> None:
        specs = inf.params
        if list(state) != list(specs):
            self.fail("d", f"the {backend} backend's parameter names differ from the rule's",
                      {"rule": str(list(specs)), backend: str(list(state))})
        for k, spec in specs.items():
            a = state[k]
            want = (tuple(int(d) for d in spec.shape), _expected_dtype(backend, str(spec.dtype)))
            got = (tuple(a.shape), str(a.dtype))
            if want != got:
                self.fail("d", f"`{k}` as allocated by {backend} differs from its ParamSpec",
                          {"ParamSpec": describe(want), backend: describe(got)})

    def _native_params(self, inf: Inference) -> None:
        """For a subclass of a built-in kind that overrides its rules: the
        parameter shapes of the torch module the built-in kind becomes, for the
        same resolved hyperparameters, must be the rule's (a rule one row off
        in a weight the forward never reads is caught here)."""
        reference = getattr(get_backend("torch"), "base_native_shapes", None)
        if reference is None or len(inf.layers) != 1:
            return
        rec = inf.layers[0]
        shapes = reference(rec)
        if not shapes:
            return
        for k, spec in rec.params.items():
            want = tuple(int(d) for d in spec.shape)
            if k in shapes and shapes[k] != want:
                self.fail("d", f"`{k}` of the rule differs from the built-in kind's torch module",
                          {"ParamSpec": str(want), "torch": str(shapes[k])})

    def _agree(self, outs: dict[str, Any]) -> None:
        entry = self.check.entry_of(self.layer)
        rtol = self.check.rtol or (entry.rtol if entry else 1e-4)
        atol = self.check.atol or (entry.atol if entry else 1e-5)
        (ref_name, (ref_ys, ref_state)), *others = outs.items()
        for name, (ys, state) in others:
            for k, v in ref_state.items():
                if not np.array_equal(np.asarray(v, np.float64), np.asarray(state[k], np.float64),
                                      equal_nan=True):
                    self.fail("f", f"portable init gives `{k}` different values on "
                              f"{ref_name} and {name}", {ref_name: str(v.ravel()[:6]),
                                                          name: str(state[k].ravel()[:6])})
            for i, (a, b) in enumerate(zip(ref_ys, ys, strict=True)):
                a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
                if not np.allclose(a64, b64, rtol=rtol, atol=atol, equal_nan=True):
                    diff = float(np.nanmax(np.abs(a64 - b64))) if a64.size else 0.0
                    self.fail("f", f"output {i} differs between {ref_name} and {name} "
                              f"(max abs diff {diff:.3g}, rtol={rtol}, atol={atol})",
                              {ref_name: str(a.ravel()[:6]), name: str(b.ravel()[:6])})

    # (c) ---------------------------------------------------------------------------
    def symbolic(self, inf: Inference, sym_specs: Specs, env: dict[str, int]) -> None:
        if not env:
            return
        res = self.check.result
        sides = {"concrete": "; ".join(describe(o) for o in inf.outputs)}
        try:
            sym = ls.infer(self.layer, *sym_specs, batch_dim=None)
        except Exception as e:
            sides["symbolic"] = describe(e)
            self.fail("c", "the rule fails on symbolic inputs "
                      + ", ".join(describe(s) for s in sym_specs)
                      + f" (binding {env}) but succeeds on the concrete ones", sides)
        sides["symbolic"] = "; ".join(describe(o) for o in sym.outputs)
        sides["binding"] = str(env)
        for _, a, b in sym.assumptions:  # the rule assumed a == b: does the binding agree?
            if _bound(a, env) != _bound(b, env):
                return
        if len(sym.outputs) != len(inf.outputs):
            self.fail("c", "symbolic and concrete inference give different output counts", sides)
        for s_out, c_out in zip(sym.outputs, inf.outputs, strict=True):
            if _bound_shape(s_out.shape, env) != tuple(c_out.shape) or s_out.dtype != c_out.dtype:
                self.fail("c", "binding the symbolic output spec does not give the concrete one",
                          sides)
        if list(sym.params) != list(inf.params):
            self.fail("c", "symbolic and concrete inference give different parameters",
                      {"symbolic": str(list(sym.params)), "concrete": str(list(inf.params))})
        for k, p in sym.params.items():
            if _bound_shape(p.shape, env) != tuple(inf.params[k].shape):
                self.fail("c", f"binding the symbolic `{k}` does not give the concrete one",
                          {"symbolic": describe((p.shape, str(p.dtype))),
                           "concrete": describe((inf.params[k].shape, str(inf.params[k].dtype))),
                           "binding": str(env)})
        res.hit("c")
        if any(o.name == "onnx" for o in self.check.oracles):
            self._onnx_symbolic(sym, sym_specs)

    def _onnx_symbolic(self, sym: Inference, sym_specs: Specs) -> None:
        try:
            with _quiet():
                got = onnx_infer(self.layer, sym_specs)
        except NotApplicable:
            return
        except Exception:  # ONNX could not infer symbolically: nothing to compare
            return
        compared = False
        for spec, (dims, _) in zip(sym.outputs, got, strict=False):
            if dims is None or len(dims) != spec.ndim:
                continue
            for ours, theirs in zip(spec.shape, dims, strict=True):
                if isinstance(theirs, str):
                    compared = True
                    if format_dim(ours) != theirs:
                        self.fail("c", "ONNX carries a symbolic dim through the op that the "
                                  "rule does not", {"rule": describe(spec),
                                                    "onnx": str(dims)})
        if compared:
            self.check.result.hit("c:onnx")

    # (e) ---------------------------------------------------------------------------
    def batch(self, inf: Inference) -> None:
        axes = self.check.batch_axes(self.layer, self.specs)
        used = [(s, a) for s, a in zip(self.specs, axes, strict=False)
                if a is not None and a < s.ndim]
        values = {int(s.shape[a]) for s, a in used}
        if not used or len(values) != 1 or next(iter(values)) < 1:
            return
        batched = []
        for s, a in zip(self.specs, axes, strict=False):
            if a is None or a >= s.ndim:
                batched.append(s)
                continue
            shape = list(s.shape)
            shape[a] = ls.Sym("B")
            batched.append(TensorSpec._make(tuple(shape), s.dtype))
        sides = {"concrete": str({k: tuple(p.shape) for k, p in inf.params.items()})}
        try:
            sym = ls.infer(self.layer, *batched, batch_dim=None)
        except Exception as e:
            sides["batch B"] = describe(e)
            self.fail("e", "the rule fails when the batch dim is symbolic", sides)
        for k, p in sym.params.items():
            if "B" in p.symbols:
                sides["batch B"] = f"`{k}` {describe((p.shape, str(p.dtype)))}"
                self.fail("e", f"`{k}` depends on the batch dim", sides)
            if k not in inf.params or tuple(p.shape) != tuple(inf.params[k].shape):
                sides["batch B"] = str({n: tuple(q.shape) for n, q in sym.params.items()})
                self.fail("e", "the parameters change when the batch dim is symbolic", sides)
        self.check.result.hit("e")


def _bound(d: Any, env: dict[str, int]) -> Any:
    if type(d) is int:
        return d
    if not free_symbols(d) <= env.keys():
        return d
    return bind(d, env)


def _bound_shape(shape: tuple[Any, ...], env: dict[str, int]) -> tuple[Any, ...]:
    try:
        return tuple(bind_shape(shape, env))
    except ZeroDivisionError:
        return shape


# -- check_layer -------------------------------------------------------------------


class _Check:
    def __init__(
        self,
        layers: SearchStrategy[Layer],
        inputs: Callable[[Layer], SearchStrategy[Specs]] | None,
        invalid: Callable[[Layer], SearchStrategy[Specs]] | None,
        oracles: Sequence[Oracle] | None,
        entry: LayerEntry | None,
        backends: Sequence[str],
        properties: str,
        probe_dtypes: Sequence[str],
        seed: int,
        rtol: float | None,
        atol: float | None,
        batch_axes: Callable[[Layer, Specs], tuple[int | None, ...]] | None,
        kind: str,
        backend_examples: Mapping[str, int] | None = None,
        skip_known: bool = True,
    ) -> None:
        self.layers = layers
        self._inputs = inputs
        self._invalid = invalid
        self._oracles = oracles
        self.entry = entry
        self.backends = tuple(backends)
        self.properties = properties
        self.probe_dtypes = tuple(probe_dtypes)
        self.seed = seed
        self.rtol = rtol
        self.atol = atol
        self._batch_axes = batch_axes
        self.backend_examples = dict(backend_examples or {})
        #: forwards run so far per backend (against ``backend_examples``)
        self.forwards: dict[str, int] = {}
        self.skip_known = skip_known
        self.result = CheckResult(kind, backends)
        self.oracles: tuple[Oracle, ...] = ()
        #: per undeclared layer (its construction text): the inputs its rule accepts
        self._accepted: dict[str, SearchStrategy[Specs] | None] = {}
        #: the layers (construction text, input ranks and dtypes) whose dtypes
        #: were all probed
        self.swept: set[tuple[str, tuple[tuple[int, str], ...]]] = set()

    def entry_of(self, layer: Layer) -> LayerEntry | None:
        return self.entry if self.entry is not None else entry_for(layer)

    def declares_inputs(self, layer: Layer) -> bool:
        """Whether the inputs drawn for ``layer`` are declared valid (else they are
        candidates: the rule decides, as for probes)."""
        return self._inputs is not None or self.entry_of(layer) is not None

    def inputs_of(self, layer: Layer) -> SearchStrategy[Specs]:
        if self._inputs is not None:
            return self._inputs(layer)
        entry = self.entry_of(layer)
        if entry is not None:
            return entry.inputs(layer)
        # undeclared: the ranks and sizes the rule accepts, asked once per layer
        # (hyperparameters); the probes still mutate them (ranks, sizes, dtypes)
        key = construct_text(layer)
        if key not in self._accepted:
            self._accepted[key] = accepted_inputs(layer)
        found = self._accepted[key]
        return default_inputs(layer) if found is None else found

    def invalid_of(self, layer: Layer) -> SearchStrategy[Specs] | None:
        if self._invalid is not None:
            return self._invalid(layer)
        entry = self.entry_of(layer)
        return entry.invalid(layer) if entry is not None and entry.invalid else None

    def oracles_of(self, layer: Layer) -> tuple[Oracle, ...]:
        if self._oracles is not None:
            return tuple(self._oracles)
        entry = self.entry_of(layer)
        return entry.oracles if entry is not None else ()

    def batch_axes(self, layer: Layer, specs: Specs) -> tuple[int | None, ...]:
        if self._batch_axes is not None:
            return self._batch_axes(layer, specs)
        entry = self.entry_of(layer)
        return entry.batch_axes_of(layer, specs) if entry else default_batch_axes(layer, specs)

    def example(self, data: Any) -> None:
        layer = data.draw(self.layers, label="layer")
        self.oracles = self.oracles_of(layer)
        invalid = self.invalid_of(layer)
        cases = ["valid"] * 5 + ["probe"] * 2 + (["invalid"] * 2 if invalid is not None else [])
        case = data.draw(st.sampled_from(cases), label="case")
        valid = data.draw(self.inputs_of(layer), label="valid inputs")
        if case == "probe":
            specs = data.draw(probes(valid, self.probe_dtypes), label="probe inputs")
        elif case == "invalid":
            assert invalid is not None
            specs = data.draw(invalid, label="invalid inputs")
        else:
            specs = valid
            if not self.declares_inputs(layer):
                case = "candidate"  # default inputs: the rule decides what it accepts
        specs = tuple(specs)
        self.result.examples += 1
        if self.skip_known:
            issue = known_issue(layer, specs)
            if issue is not None:
                self.result.hit(f"known:{issue.id}")
                return
        run = _Run(self, layer, specs, case)
        rule = run.rule()
        self.result.hit(f"case:{case}")
        if not isinstance(rule, Inference):
            self.result.hit("rejected")
            self.result.hit(f"rejected:{case}")
        if "b" in self.properties:
            run.oracles(rule)
        if not isinstance(rule, Inference):
            return
        run.backends(rule)
        if "e" in self.properties:
            run.batch(rule)
        # the probes around the example: its edges, its other dtypes
        if "b" in self.properties:
            run.boundaries()
        if "a" in self.properties:
            run.dtypes()
        if "c" in self.properties:  # last: a draw that overruns ends the example here
            sym_specs, env = data.draw(
                symbolize(specs, self.batch_axes(layer, specs)), label="symbolic inputs"
            )
            run.symbolic(rule, sym_specs, env)


def _layer_strategy(layer_factory: Any, hparams: Any) -> tuple[SearchStrategy[Layer], str]:
    if isinstance(layer_factory, SearchStrategy):
        return layer_factory, "layers"
    if isinstance(layer_factory, Layer):
        return st.just(layer_factory), type(layer_factory).__name__
    if isinstance(layer_factory, type) and issubclass(layer_factory, Layer):
        entry = entry_for(layer_factory) if hparams is None else None
        if entry is not None and entry.layer_type is layer_factory:
            return entry.layers, layer_factory.__name__
        return _as_layers(layer_factory, hparams), layer_factory.__name__
    if callable(layer_factory):
        name = getattr(layer_factory, "__name__", "layer_factory")
        if hparams is None:
            return st.builds(layer_factory), name
        return _as_layers(layer_factory, hparams), name
    raise TypeError(
        "check_layer takes a layer class, a layer, a zero-argument factory or a hypothesis "
        f"strategy of layers; got {type(layer_factory).__name__}"
    )


def _as_inputs(inputs: Any) -> Callable[[Layer], SearchStrategy[Specs]] | None:
    if inputs is None or callable(inputs) and not isinstance(inputs, SearchStrategy):
        return inputs
    if isinstance(inputs, SearchStrategy):
        return lambda layer: inputs
    fixed = tuple(s if isinstance(s, TensorSpec) else TensorSpec(s) for s in inputs)
    return lambda layer: st.just(fixed)


def check_layer(
    layer_factory: Any,
    inputs: Any = None,
    *,
    hparams: Any = None,
    invalid: Callable[[Layer], SearchStrategy[Specs]] | None = None,
    oracles: Sequence[Oracle] | None = None,
    backends: Sequence[str] | None = None,
    properties: str = "abcdef",
    probe_dtypes: Sequence[str] = PROBE_DTYPES,
    max_examples: int | None = None,
    settings: Settings | None = None,
    seed: int = 0,
    rtol: float | None = None,
    atol: float | None = None,
    batch_axes: Callable[[Layer, Specs], tuple[int | None, ...]] | None = None,
    backend_examples: Mapping[str, int] | None = None,
    skip_known: bool = True,
    hypothesis_seed: int | None = None,
) -> CheckResult:
    """Check a layer's shape and parameter rules against every installed backend
    and the external oracles, with hypothesis; raise `LayerCheckError` (an
    ``AssertionError``) with a minimal reproducer on the first failure.

    ``layer_factory``: a layer class (registered kinds draw their
    hyperparameters from their entry; others are built with ``hparams``, a
    dict of strategies, or with no arguments), a zero-argument factory, a
    layer, or a strategy of layers.

    ``inputs``: what the layer accepts: a function ``layer -> strategy of
    tuples of TensorSpec``, a strategy of such tuples, or one fixed tuple of
    specs/shapes (default: the registered entry's, else one float32 input of
    rank 1 to 4). ``invalid``: a function ``layer -> strategy`` of inputs it
    must reject. ``oracles``: external references (default: the entry's).

    ``properties``: the letters to run (see `PROPERTIES`); ``backends``:
    default every installed one; ``probe_dtypes``: the dtypes mutated inputs
    switch to. ``max_examples`` / ``settings``: default the loaded hypothesis
    profile's. ``backend_examples``: at most this many examples run a given
    backend's forward (``{"jax": 10}``: JAX compiles each new shape; default
    every example). ``skip_known``: skip examples that hit a known, recorded
    bug of a built-in layer (`KNOWN_ISSUES`; counted as ``known:<id>``).
    ``hypothesis_seed``: the seed of the random draws when the settings are
    not derandomized (default: a fresh one, given in the result and in
    a failure's report, so that passing it back replays the run).
    Returns a `CheckResult` with the example count per property.
    """
    layers, kind = _layer_strategy(layer_factory, hparams)
    # a subclass of a registered kind inherits its entry (inputs, oracles)
    entry = entry_for(layer_factory) if isinstance(layer_factory, type) else None
    names = list(backends) if backends is not None else ls.backends()
    check = _Check(
        layers, _as_inputs(inputs), invalid, oracles, entry, names, properties,
        probe_dtypes, seed, rtol, atol, batch_axes, kind, backend_examples, skip_known,
    )
    base = settings if settings is not None else Settings.default or Settings()
    s = Settings(
        base,
        max_examples=max_examples if max_examples is not None else base.max_examples,
        deadline=None,
        report_multiple_bugs=False,
        # the explain phase reruns a failure hundreds of times to annotate lines:
        # the report already says what failed
        phases=tuple(p for p in base.phases if p is not Phase.explain),
        suppress_health_check=[
            HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large,
        ],
    )

    @s
    @given(st.data())
    def run(data: Any) -> None:
        check.example(data)

    if not s.derandomize:
        if hypothesis_seed is None:
            hypothesis_seed = random.SystemRandom().getrandbits(32)
        run = hypothesis.seed(hypothesis_seed)(run)
        check.result.hypothesis_seed = hypothesis_seed
    try:
        try:
            run()
        except FlakyFailure as e:
            # a failure whose replay differed (a backend past its `backend_examples`
            # budget on the replay): the failure itself stands
            found = [x for x in e.exceptions if isinstance(x, LayerCheckError)]
            if not found:
                raise
            raise found[0] from None
    except LayerCheckError as e:
        e.hypothesis_seed = check.result.hypothesis_seed
        if e.hypothesis_seed is not None:
            e.args = (f"{e.args[0]}\nthis run's draws: check_layer(..., hypothesis_seed="
                      f"{e.hypothesis_seed}) replays them",)
        raise
    return check.result
