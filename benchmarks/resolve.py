"""Shape inference without allocation, from a concrete and from a symbolic input.

On every reference model (`benchmarks.models.REFERENCE`), each contender of
`benchmarks.steps` ``resolve`` step gets a freshly defined model per repeat
(defined untimed): lazyshape concrete and symbolic, PyTorch's ``Lazy*``
modules on the meta device, ``jax.eval_shape`` of the flax ``init``, and
Keras 3 building on a symbolic ``Input`` (JAX backend, inside a
``StatelessScope``: shapes, no values; its own process). Model A also gets
a bare-loop floor and torch's lazy dry run on the CPU.
"""

from __future__ import annotations

from typing import Any

from ._report import Comparison, RatioCell
from ._stepbench import StepResult, add_keras, keras_step, time_step
from .models import REFERENCE

__all__ = ["run", "PEERS"]

#: the peers of the shape-only step (Keras is added from its own process)
PEERS = ("torch_meta", "flax_eval_shape", "keras")
#: models with per-layer and peer targets
TARGET_MODELS = ("A", "B", "C", "D")


def _describe(name: str, out: Any) -> Any:
    if name.startswith("lazyshape"):
        return [d if type(d) is int else str(d) for d in out.output.shape]
    if name == "python_floor":
        return list(out[-1][0])
    if name.startswith("torch"):
        return f"{type(out).__name__} (meta)" if name == "torch_meta" else type(out).__name__
    if name == "flax_eval_shape":
        import jax

        return int(sum(x.size for x in jax.tree_util.tree_leaves(out.get("params", out))))
    return None


def run(quick: bool) -> tuple[dict[str, Any], list[Comparison], list[RatioCell]]:
    keys = list(REFERENCE)
    # --quick: Keras on model B only (its import alone takes seconds)
    keras = keras_step("resolve", ["B"] if quick else [k for k in keys if k != "gpt2"], quick)
    section: dict[str, Any] = {}
    comparisons: list[Comparison] = []
    cells: list[RatioCell] = []
    for key in keys:
        names = ["lazyshape", "lazyshape_symbolic", "torch_meta", "flax_eval_shape"]
        if key == "A":
            names += ["python_floor", "torch_lazy"]
        res = time_step("resolve", key, names, quick, _describe)
        if key in keras:
            add_keras(res, "keras", keras[key])
        layers = _layers(key)
        section[key] = {"model": REFERENCE[key].description, "layers": layers,
                        "input": REFERENCE[key].input_shape,
                        "symbolic_input": REFERENCE[key].symbolic_shape, **res.to_dict()}
        comparisons += _compare(res, layers)
        cells += [RatioCell("resolve", key, p, res.ratio("lazyshape", p)) for p in PEERS
                  if res.has(p)]
    return section, comparisons, cells


def _layers(key: str) -> int:
    import lazyshape as ls

    from .models import lazyshape_model

    ref = REFERENCE[key]
    return len(ls.infer(lazyshape_model(key), ls.TensorSpec(ref.input_shape,
                                                            ref.input_dtype)).layers)


def _compare(res: StepResult, layers: int) -> list[Comparison]:
    key = res.key
    tag = f"resolve {key}"
    targets = key in TARGET_MODELS
    out: list[Comparison] = []

    def missing(metric: str, unit: str, *names: str) -> bool:
        for n in names:
            if not res.has(n):
                out.append(Comparison(metric, unit, note=res.missing.get(n, "not measured"),
                                      skipped=True))
                return True
        return False

    if not missing(f"{tag}: lazyshape total", "µs", "lazyshape"):
        st = res.stats["lazyshape"]
        out.append(Comparison(f"{tag}: lazyshape total", "µs", st.scaled(1e-3),
                              note=f"{REFERENCE[key].input_shape}; {layers} layers"))
        target = 1.0 if key == "A" else 3.0 if targets else None
        out.append(Comparison(f"{tag}: lazyshape per layer", "µs", st.scaled(1e-3 / layers),
                              target, "<=", "concrete input"))
    if not missing(f"{tag}: symbolic / concrete", "x", "lazyshape", "lazyshape_symbolic"):
        out.append(Comparison(f"{tag}: lazyshape_symbolic / lazyshape", "x",
                              res.ratio("lazyshape_symbolic", "lazyshape"),
                              4.0 if targets else None, "<=",
                              f"symbolic input {REFERENCE[key].symbolic_shape}"))
    for peer in (*PEERS, "torch_lazy", "python_floor"):
        if not res.has(peer):
            if peer in PEERS:
                missing(f"{tag}: {peer} / lazyshape", "x", peer)
            continue
        r = res.ratio(peer, "lazyshape")
        if peer == "python_floor":
            out.append(Comparison(f"{tag}: lazyshape / python_floor", "x",
                                  res.ratio("lazyshape", "python_floor"),
                                  note="overhead over a bare loop"))
            continue
        target, note = None, "how many times faster lazyshape is"
        if peer == "torch_lazy":
            target, note = 20.0, "LazyLinear stack on the CPU, one forward"
        elif peer == "torch_meta" and key == "A":
            target, note = 50.0, "meta-device dry run"
        note += "; " + res.external_notes[peer] if peer in res.external_notes else ""
        out.append(Comparison(f"{tag}: {peer} / lazyshape", "x", r, target, ">=", note))
    present = [p for p in PEERS if res.has(p)]
    if targets and present:
        fastest = min(present, key=lambda p: res.get(p).median)  # type: ignore[union-attr]
        out.append(Comparison(f"{tag}: fastest peer / lazyshape", "x",
                              res.ratio(fastest, "lazyshape"), 50.0, ">=",
                              f"fastest peer: {fastest}"))
    if present and not missing(f"{tag}: fastest peer / lazyshape_symbolic", "x",
                               "lazyshape_symbolic"):
        fastest = min(present, key=lambda p: res.get(p).median)  # type: ignore[union-attr]
        out.append(Comparison(f"{tag}: fastest peer / lazyshape_symbolic", "x",
                              res.ratio(fastest, "lazyshape_symbolic"), 150.0, ">=",
                              f"symbolic resolution, no data; fastest peer: {fastest}"))
    return out
