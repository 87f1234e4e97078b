"""Measurements that need a process of their own: ``python -m benchmarks._worker TASK JSON``.

Prints one JSON object on its last stdout line. Tasks:

- ``memory``: the resident-set high-water mark of one step (``resolve`` or
  ``init``) of one contender on one model, above the process's resident set
  just before the step (frameworks imported, model defined). The high-water
  mark is reset first (``/proc/self/clear_refs``), so what imports touched
  doesn't hide the step's own peak; without procfs, ``resource.getrusage``'s
  ``ru_maxrss`` is used unreset (and says so).
- ``scaling``: the memory of resolving an ``n``-layer stack (``Sequential`` or
  functional), the same way.
- ``coldstart``: what a user waits for in a fresh process: importing the
  framework, defining model C, its first shape resolution.
- ``keras``: Keras 3 (JAX backend) timings, repeated in this one process:
  ``resolve`` builds the functional model on a symbolic ``keras.Input`` inside
  a ``keras.StatelessScope`` (variables get shapes, no values), ``init``
  builds it outside (variables allocated and initialized).

Run by `benchmarks._proc`; every task sets its thread counts like the parent.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("KERAS_BACKEND", "jax")

import gc  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

_PROC_STATUS = "/proc/self/status"


def _status_kb(field: str) -> int | None:
    try:
        with open(_PROC_STATUS) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rss() -> int:
    """Current resident set, bytes."""
    kb = _status_kb("VmRSS")
    if kb is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return kb * 1024


def reset_peak() -> bool:
    """Reset the resident-set high-water mark (Linux >= 4.0); False if it can't."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return False
    return True


def peak() -> int:
    """Resident-set high-water mark, bytes."""
    kb = _status_kb("VmHWM")
    if kb is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return kb * 1024


def measure_peak(step: Callable[[], Any]) -> dict[str, Any]:
    """Run ``step`` once; its peak resident set above the set just before it."""
    gc.collect()
    base = rss()
    was_reset = reset_peak()
    t0 = time.perf_counter()
    keep = step()
    dt = time.perf_counter() - t0
    top = peak()
    del keep
    return {"baseline_bytes": base, "peak_bytes": top, "increase_bytes": max(0, top - base),
            "seconds": dt, "peak_reset": was_reset}


def _quiet() -> None:
    warnings.simplefilter("ignore")


def _torch_threads() -> None:
    import torch

    torch.set_num_threads(1)


# -- steps ------------------------------------------------------------------------

def _param_bytes(key: str) -> int:
    import lazyshape as ls

    from .models import REFERENCE, lazyshape_model

    ref = REFERENCE[key]
    spec = ls.TensorSpec(ref.input_shape, ref.input_dtype)
    nbytes = ls.infer(lazyshape_model(key), spec).num_bytes
    return int(nbytes)


def task_memory(step: str, contender: str, model: str) -> dict[str, Any]:
    _quiet()
    from . import steps

    steps.imports(contender)
    run = steps.make(step, contender, model)
    out = measure_peak(run)
    if step == "init":
        out["param_bytes"] = _param_bytes(model)
    return out


def task_scaling(n: int, api: str) -> dict[str, Any]:
    import lazyshape as ls

    from .scaling import stack

    gc.collect()
    before = rss()
    net = stack(n, api)
    defined = rss()
    shape = (8, 32)
    out = measure_peak(lambda: ls.infer(net, shape))
    out["define_bytes"] = defined - before
    out["layers"] = n
    return out


def task_coldstart(framework: str) -> dict[str, Any]:
    """Fresh process: import, define model C, resolve its shapes once."""
    _quiet()
    t0 = time.perf_counter()
    if framework == "lazyshape":
        import lazyshape as ls

        t1 = time.perf_counter()
        from lazyshape import zoo

        net = zoo.resnet18()
        t2 = time.perf_counter()
        ls.infer(net, (8, 3, 224, 224))
        t3 = time.perf_counter()
        mods = sorted(m for m in sys.modules if m.split(".")[0] in
                      ("torch", "jax", "scipy", "safetensors"))
        return {"import_s": t1 - t0, "define_s": t2 - t1, "first_infer_s": t3 - t2,
                "frameworks_imported": mods[:5]}
    from .steps import imports, make

    contender = {"torch": "torch_meta", "flax": "flax_eval_shape"}[framework]
    imports(contender)
    t1 = time.perf_counter()
    run = make("resolve", contender, "C")
    t2 = time.perf_counter()
    run()
    t3 = time.perf_counter()
    return {"import_s": t1 - t0, "define_s": t2 - t1, "first_infer_s": t3 - t2}


def task_keras(step: str, models: list[str], repeats: int, warmup: int,
               recursion_limit: int | None = None) -> dict[str, Any]:
    """``{model: timings}``; a model that fails at the default recursion limit is
    retried with ``recursion_limit`` when given (the failure is reported too)."""
    _quiet()
    t0 = time.perf_counter()
    import keras

    from . import keras_models

    import_s = time.perf_counter() - t0
    out: dict[str, Any] = {"import_s": import_s, "keras": keras.__version__,
                           "backend": keras.backend.backend()}
    for key in models:
        try:
            out[key] = _keras_times(keras, keras_models, step, key, repeats, warmup)
        except RecursionError as e:
            out[key] = {"error": f"RecursionError at the default limit "
                                 f"({sys.getrecursionlimit()}): {e}"}
            if recursion_limit is not None:
                sys.setrecursionlimit(recursion_limit)
                try:
                    res = _keras_times(keras, keras_models, step, key, repeats, warmup)
                except Exception as e2:
                    res = {"error": f"{type(e2).__name__}: {e2}"[:300]}
                res["default_limit_error"] = out[key]["error"]
                out[key] = res
        except Exception as e:
            out[key] = {"error": f"{type(e).__name__}: {e}"[:300]}
    return out


def _keras_times(keras: Any, keras_models: Any, step: str, key: str, repeats: int,
                 warmup: int) -> dict[str, Any]:
    samples: list[float] = []
    for i in range(warmup + repeats):
        keras.utils.clear_session()  # global name counters, deferred variables
        layers = keras_models.layers_of(key)  # layer objects: the definition, untimed
        gc.collect()
        gc.disable()
        try:
            t = time.perf_counter_ns()
            if step == "resolve":
                with keras.StatelessScope():
                    m = keras_models.wire(key, layers)
            else:
                m = keras_models.wire(key, layers)
                keras_models.block(m)
            dt = time.perf_counter_ns() - t
        finally:
            gc.enable()
        if i >= warmup:
            samples.append(dt)
    return {"samples_ns": samples, "median_ns": statistics.median(samples),
            "output_shape": list(m.output.shape),
            "num_params": int(m.count_params()) if step == "init" else None,
            "recursion_limit": sys.getrecursionlimit()}


TASKS: dict[str, Callable[..., dict[str, Any]]] = {
    "memory": task_memory, "scaling": task_scaling, "coldstart": task_coldstart,
    "keras": task_keras,
}


def main(argv: list[str]) -> int:
    task, args = argv[0], json.loads(argv[1]) if len(argv) > 1 else {}
    try:
        out = TASKS[task](**args)
    except RecursionError as e:
        out = {"error": f"RecursionError: {e}"}
    except Exception as e:  # reported by the parent as ERROR, never a crash of the run
        out = {"error": f"{type(e).__name__}: {e}"[:300]}
    print(json.dumps(out, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
