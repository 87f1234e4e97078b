"""What a model costs before anything exists: symbolic FLOPs against the tools
that count them by running or compiling a model.

**FLOPs** (``CASES``): ResNet-18 (``zoo.resnet18()`` on ``("B", 3, "H", "W")``)
and GPT-2 small (``zoo.gpt2()`` on token ids ``("B", "T")``). Contenders, timed
interleaved in the same rounds, ratios taken per round:

- ``lazyshape``: ``ls.infer(model, spec).flops`` of a freshly defined model
  (defined untimed, a new one for every run, so nothing is cached); the answer
  is an expression in the symbols, valid for every batch and size;
- ``flop_counter``: ``torch.utils.flop_counter.FlopCounterMode`` around a
  ``no_grad`` forward of the reference model built under
  ``torch.device("meta")`` (torchvision's ``resnet18()``; transformers'
  ``GPT2Model(GPT2Config(attn_implementation="eager"))`` with random weights,
  no download), on the peers' example input: batch 1, 224x224 / T=128 int64 ids
  with an all-ones attention mask (on meta tensors transformers' SDPA path and
  its mask-less path call ``.item()``, which fails). The model is made once,
  untimed; only the counted forward is timed;
- ``jax_cost_analysis``: ``jax.jit(m.apply).lower(variables, x).compile()
  .cost_analysis()`` of ``m = ls.build(model, "jax")``, a fresh build for every
  run; the input is a ``jax.ShapeDtypeStruct`` and the variables are ``m.init``
  under ``jax.eval_shape``, untimed (lowering reads only shapes and dtypes: the
  concrete arrays of ``m.init`` lowered and compiled in the same time when
  tried). GPT-2's ids are int32 (JAX without x64);
- ``torchinfo``: ``torchinfo.summary(model, input_size=..., verbose=0)`` of the
  reference model on the CPU (random weights, made once untimed; int64 ids for
  GPT-2 through ``dtypes``), as its users call it: it runs a forward.

Targets: every peer / lazyshape at least `PEER_TARGETS` (100x for the FLOP
counter and JAX, 20x for torchinfo).

**Agreement** (untimed): lazyshape's count at the peers' example input (the
symbolic expression bound with ``ls.dims.bind`` and a concrete inference) equals
FlopCounterMode's on the torch build of the same model on the meta device
(target: a difference of 0), and is compared with FlopCounterMode on the
reference model, XLA's count (its own convention: it skips the padded taps of
a convolution and counts elementwise work) and torchinfo's mult-adds (its own
convention) as information.

**Overhead** (``OVERHEAD_TARGET``): ``ls.infer(fresh, spec)`` against
``inf = ls.infer(fresh, spec); inf.flops; inf.param_bytes; inf.activation_bytes``
on the symbolic specs, fresh models, interleaved; target at most 1.5x.
"""

from __future__ import annotations

import gc
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._report import Comparison, RatioCell
from ._timing import Stats, measure_interleaved, ratio_stats
from .zoo import _first_line, _prepared, _torchvision_models

__all__ = ["run", "CASES", "PEER_TARGETS", "OVERHEAD_TARGET"]

#: how many times faster than each peer lazyshape's symbolic FLOPs should be
PEER_TARGETS = {"flop_counter": 100.0, "jax_cost_analysis": 100.0, "torchinfo": 20.0}
#: infer + flops + param_bytes + activation_bytes over a plain infer
OVERHEAD_TARGET = 1.5


@dataclass(frozen=True)
class CostCase:
    """A zoo model, the symbolic spec lazyshape counts on, and the concrete
    example input the peers run (``ids``: integer token ids)."""

    name: str
    spec: tuple[Any, ...]
    example: tuple[int, ...]
    ids: bool
    description: str

    @property
    def values(self) -> dict[str, int]:
        """The example's value of each symbol of ``spec``."""
        return {d: v for d, v in zip(self.spec, self.example, strict=True)
                if isinstance(d, str)}


CASES: tuple[CostCase, ...] = (
    CostCase("resnet18", ("B", 3, "H", "W"), (1, 3, 224, 224), False,
             "zoo.resnet18() vs torchvision.models.resnet18()"),
    CostCase("gpt2", ("B", "T"), (1, 128), True,
             "zoo.gpt2() vs transformers.GPT2Model(GPT2Config())"),
)

Setup = Callable[[], Any]
Run = Callable[[Any], Any]


# -- the reference models ----------------------------------------------------------------

def _reference(case: CostCase, meta: bool) -> Any:
    """The reference torch model in eval mode, with random weights (on the meta
    device: no weights at all)."""
    import torch

    tv = _torchvision_models()  # transformers imports torchvision
    if case.name == "gpt2":
        from transformers import GPT2Config, GPT2Model

        # eager attention on meta: transformers' SDPA mask path calls .item()
        config = GPT2Config(attn_implementation="eager") if meta else GPT2Config()
        with torch.device("meta" if meta else "cpu"):
            return GPT2Model(config).eval()
    with torch.device("meta" if meta else "cpu"):
        return getattr(tv, case.name)().eval()


def _meta_inputs(case: CostCase) -> dict[str, Any]:
    """Keyword inputs of the reference model's forward on the meta device."""
    import torch

    if case.ids:
        ids = torch.zeros(case.example, dtype=torch.long, device="meta")
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "use_cache": False}
    return {"x": torch.empty(case.example, device="meta")}


def _count(forward: Callable[[], Any]) -> int:
    """FlopCounterMode's total for one ``no_grad`` call of ``forward``."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad(), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        forward()
    return int(counter.get_total_flops())


def _reference_forward(model: Any, case: CostCase) -> Callable[[], Any]:
    """The reference model's forward on its meta example input."""
    kwargs = _meta_inputs(case)
    if case.ids:
        return lambda: model(**kwargs)
    return lambda: model(kwargs["x"])


# -- the contenders ----------------------------------------------------------------------

def _fresh(case: CostCase) -> Any:
    from lazyshape import zoo

    return getattr(zoo, case.name)()


def _lazyshape_step(case: CostCase) -> tuple[Setup, Run]:
    import lazyshape as ls

    return (lambda: _fresh(case)), (lambda net: ls.infer(net, case.spec).flops)


def _flop_counter_step(case: CostCase) -> tuple[Setup, Run]:
    forward = _reference_forward(_reference(case, meta=True), case)
    return (lambda: forward), _count


def _jax_step(case: CostCase) -> tuple[Setup, Run]:
    import jax
    import jax.numpy as jnp

    import lazyshape as ls

    x = jax.ShapeDtypeStruct(case.example, jnp.int32 if case.ids else jnp.float32)

    def setup() -> tuple[Any, Any]:
        m = ls.build(_fresh(case), "jax")
        return m, jax.eval_shape(m.init, jax.random.key(0), x)

    def run(state: tuple[Any, Any]) -> float:
        m, variables = state
        analysis = jax.jit(m.apply).lower(variables, x).compile().cost_analysis()
        if isinstance(analysis, list):  # older jax: one dict per computation
            analysis = analysis[0]
        if not analysis:
            raise RuntimeError("cost_analysis() gave no figures on this platform")
        return float(analysis["flops"])

    return setup, run


def _torchinfo_step(case: CostCase) -> tuple[Setup, Run]:
    import torch
    import torchinfo

    model = _reference(case, meta=False)
    dtypes = [torch.long] if case.ids else None

    def run(m: Any) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torchinfo.summary(m, input_size=case.example, dtypes=dtypes, verbose=0)

    return (lambda: model), run


#: the peers: name -> (step factory, what it is)
PEERS: dict[str, tuple[Callable[[CostCase], tuple[Setup, Run]], str]] = {
    "flop_counter": (_flop_counter_step,
                     "FlopCounterMode around a no_grad forward of the reference model on "
                     "the meta device"),
    "jax_cost_analysis": (_jax_step,
                          "jax.jit(m.apply).lower(variables, x).compile().cost_analysis() "
                          "of the lazyshape JAX build"),
    "torchinfo": (_torchinfo_step,
                  "torchinfo.summary(reference, input_size, verbose=0) on the CPU"),
}


# -- agreement ---------------------------------------------------------------------------

def _agreement(case: CostCase, outputs: dict[str, Any]
               ) -> tuple[dict[str, Any], list[Comparison]]:
    """lazyshape's FLOPs at the example input against FlopCounterMode on the
    torch build (exact) and the peers' counts (information)."""
    import lazyshape as ls
    from lazyshape.dims import bind


    tag = f"cost {case.name} {case.example}"
    symbolic = ls.infer(_fresh(case), case.spec).flops
    bound = bind(symbolic, case.values)
    dtype = "int64" if case.ids else "float32"
    concrete = ls.infer(_fresh(case), ls.TensorSpec(case.example, dtype)).flops
    entry: dict[str, Any] = {"symbolic": str(symbolic), "bound": bound, "concrete": concrete}
    rows: list[Comparison] = []
    try:
        build = ls.build(_fresh(case), "torch", device="meta")
        x = next(iter(_meta_inputs(case).values()))  # the ids, or the image batch
        entry["flop_counter_torch_build"] = _count(lambda: build(x))
    except Exception as e:
        entry["error"] = traceback.format_exc()
        rows.append(Comparison(f"{tag}: |lazyshape - FlopCounterMode (torch build)|", "FLOPs",
                               target=0.0, error=_first_line(e)))
    else:
        theirs = entry["flop_counter_torch_build"]
        diff = max(abs(bound - theirs), abs(concrete - theirs))
        rows.append(Comparison(
            f"{tag}: |lazyshape - FlopCounterMode (torch build)|", "FLOPs", Stats.of([diff]),
            0.0, "<=", f"lazyshape {bound:,} (symbolic bound), {concrete:,} (concrete); "
                       f"FlopCounterMode on ls.build(..., 'torch', device='meta') {theirs:,}"))
    ref = outputs.get("flop_counter")
    if ref is not None:
        same = "equal" if ref == bound else f"differs by {ref - bound:+,}"
        rows.append(Comparison(f"{tag}: FlopCounterMode (reference) / lazyshape", "x",
                               Stats.of([ref / bound]),
                               note=f"{ref:,} on the reference model: {same}"))
    xla = outputs.get("jax_cost_analysis")
    if xla is not None:
        rows.append(Comparison(f"{tag}: XLA cost_analysis flops / lazyshape", "x",
                               Stats.of([xla / bound]),
                               note=f"{xla:,.0f} ({xla - bound:+,.0f}): XLA's convention "
                                    "(skips a convolution's padded taps, counts elementwise "
                                    "work)"))
    macs = outputs.get("torchinfo")
    if macs is not None:
        rows.append(Comparison(f"{tag}: 2 x torchinfo mult-adds / lazyshape", "x",
                               Stats.of([2 * macs / bound]),
                               note=f"{macs:,} mult-adds ({2 * macs - bound:+,} FLOPs): "
                                    "torchinfo's own convention"))
    entry.update({k: v for k, v in outputs.items() if v is not None})
    return entry, rows


def _describe(name: str, out: Any) -> Any:
    if name == "torchinfo":
        return int(out.total_mult_adds)
    if name == "lazyshape":
        return str(out)
    return out


# -- the section -------------------------------------------------------------------------

def _flops(quick: bool) -> tuple[dict[str, Any], list[Comparison], list[RatioCell]]:
    repeats = ({"lazyshape": 7, "flop_counter": 3, "jax_cost_analysis": 1, "torchinfo": 3}
               if quick else
               {"lazyshape": 21, "flop_counter": 11, "jax_cost_analysis": 5, "torchinfo": 11})
    section: dict[str, Any] = {}
    comparisons: list[Comparison] = []
    cells: list[RatioCell] = []
    for case in CASES:
        tag = f"cost {case.name}"
        entry: dict[str, Any] = {"model": case.description, "symbolic_input": case.spec,
                                 "peer_example_input": case.example, "outputs": {},
                                 "fastest_untimed_run_ms": {}}
        section[case.name] = entry
        try:
            lazy, out, est = _prepared("lazyshape", *_lazyshape_step(case),
                                       repeats["lazyshape"])
        except Exception as e:  # report, go on
            entry["error"] = traceback.format_exc()
            comparisons.append(Comparison(f"{tag}: lazyshape flops", "ms", error=_first_line(e)))
            continue
        entry["outputs"]["lazyshape"] = _describe("lazyshape", out)
        entry["fastest_untimed_run_ms"]["lazyshape"] = est / 1e6
        contenders = [lazy]
        counts: dict[str, Any] = {}
        errors: dict[str, str] = {}
        for peer, (factory, _) in PEERS.items():
            try:
                c, out, est = _prepared(peer, *factory(case), repeats[peer])
            except Exception as e:
                errors[peer] = _first_line(e)
                entry.setdefault("errors", {})[peer] = traceback.format_exc()
                continue
            counts[peer] = _describe(peer, out)
            entry["fastest_untimed_run_ms"][peer] = est / 1e6
            contenders.append(c)
            del out
        gc.collect()
        stats = measure_interleaved(contenders)
        by_name = {c.name: c for c in contenders}
        entry["contenders"] = {c.name: c.record(stats[c.name]) for c in contenders}
        comparisons.append(Comparison(
            f"{tag}: lazyshape ls.infer(fresh, {case.spec}).flops", "ms",
            stats["lazyshape"].scaled(1e-6),
            note=f"fresh model per run, {lazy.number} per sample; symbolic, every size"))
        for peer, (_, what) in PEERS.items():
            metric = f"{tag}: {peer} / lazyshape"
            if peer in errors:
                comparisons.append(Comparison(metric, "x", target=PEER_TARGETS[peer], op=">=",
                                              error=errors[peer]))
                continue
            ratio = ratio_stats(by_name[peer], lazy)
            comparisons.append(Comparison(
                metric, "x", ratio, PEER_TARGETS[peer], ">=",
                f"{what}, {case.example}; {stats[peer].median / 1e6:,.1f} ms per run, "
                f"{by_name[peer].repeats} timed"))
            cells.append(RatioCell("cost", f"{case.name} {case.spec}", peer,
                                   ratio_stats(lazy, by_name[peer])))
        del contenders, by_name, lazy
        gc.collect()
        try:
            entry["agreement"], rows = _agreement(case, counts)
        except Exception as e:
            entry["agreement"] = {"error": traceback.format_exc()}
            rows = [Comparison(f"cost {case.name} {case.example}: agreement", "FLOPs",
                               error=_first_line(e))]
        comparisons += rows
    return section, comparisons, cells


def _overhead(quick: bool) -> tuple[dict[str, Any], list[Comparison], list[RatioCell]]:
    import lazyshape as ls

    repeats = 11 if quick else 31
    section: dict[str, Any] = {}
    comparisons: list[Comparison] = []
    cells: list[RatioCell] = []

    for case in CASES:
        metric = f"cost {case.name}: infer + flops + bytes / infer"

        def plain(net: Any, case: CostCase = case) -> Any:
            return ls.infer(net, case.spec)

        def with_costs(net: Any, case: CostCase = case) -> Any:
            inf = ls.infer(net, case.spec)
            return inf.flops, inf.param_bytes, inf.activation_bytes

        def setup(case: CostCase = case) -> Any:
            return _fresh(case)

        try:
            ours = _prepared("infer", setup, plain, repeats)[0]
            more = _prepared("infer_costs", setup, with_costs, repeats)[0]
        except Exception as e:
            section[case.name] = {"error": traceback.format_exc()}
            comparisons.append(Comparison(metric, "x", target=OVERHEAD_TARGET,
                                          error=_first_line(e)))
            continue
        stats = measure_interleaved([ours, more])
        ratio = ratio_stats(more, ours)
        section[case.name] = {
            "symbolic_input": case.spec, "ratio": ratio.to_dict(),
            **{c.name: {"repeats": c.repeats, "models_per_sample": c.number,
                        "ms": stats[c.name].scaled(1e-6).to_dict(), "samples_ns": c.samples}
               for c in (ours, more)}}
        comparisons.append(Comparison(
            metric, "x", ratio, OVERHEAD_TARGET, "<=",
            f"{case.spec}, fresh model per run: {stats['infer'].median / 1e6:.2f} ms plain, "
            f"{stats['infer_costs'].median / 1e6:.2f} ms with .flops, .param_bytes, "
            ".activation_bytes"))
        cells.append(RatioCell("cost", f"{case.name} {case.spec}", "plain infer", ratio))
        del ours, more
        gc.collect()
    return section, comparisons, cells


def run(quick: bool) -> tuple[dict[str, Any], list[Comparison], list[RatioCell]]:
    flops, flop_rows, flop_cells = _flops(quick)
    overhead, over_rows, over_cells = _overhead(quick)
    section = {"flops": flops, "overhead": overhead,
               "targets": {"peer_over_lazyshape": PEER_TARGETS,
                           "costs_over_infer": OVERHEAD_TARGET}}
    return section, flop_rows + over_rows, flop_cells + over_cells
