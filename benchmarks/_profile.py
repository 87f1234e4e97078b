"""``python -m benchmarks --profile``: where `ls.infer` spends its time.

Profiles ``ls.infer`` on fresh copies of the reference models with `cProfile`
(the garbage collector off, as in the timed regions) and prints the functions
with the most own time.
"""

from __future__ import annotations

import cProfile
import gc
import io
import pstats

from .models import REFERENCE, lazyshape_model

__all__ = ["profile_infer"]


def profile_infer(repeats: int = 20, top: int = 25, symbolic: bool = False) -> str:
    """The pstats report (sorted by own time) of ``repeats`` inferences per model."""
    import lazyshape as ls

    out = io.StringIO()
    for key, ref in REFERENCE.items():
        shape = ref.symbolic_shape if symbolic else ref.input_shape
        spec = ls.TensorSpec(shape, ref.input_dtype)
        nets = [lazyshape_model(key) for _ in range(repeats + 1)]
        ls.infer(nets.pop(), spec)  # warm-up
        gc.collect()
        gc.disable()
        prof = cProfile.Profile()
        try:
            prof.enable()
            for net in nets:
                ls.infer(net, spec)
            prof.disable()
        finally:
            gc.enable()
        out.write(f"== ls.infer({key}, {spec}) x {repeats} ==\n")
        stats = pstats.Stats(prof, stream=out)
        stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()
