"""``python -m benchmarks --profile``: where `ls.infer` spends its time.

Profiles ``ls.infer`` on fresh copies of the resolution models with
`cProfile` and prints the functions with the most own time.
"""

from __future__ import annotations

import cProfile
import io
import pstats

from .models import RESOLVE_MODELS, to_lazyshape
from .resolve import BATCH

__all__ = ["profile_infer"]


def profile_infer(repeats: int = 10, top: int = 25, symbolic: bool = False) -> str:
    """The pstats report (sorted by own time) of ``repeats`` inferences per model."""
    import lazyshape as ls

    out = io.StringIO()
    for plan in RESOLVE_MODELS:
        shape = ("B" if symbolic else BATCH, plan.in_features)
        nets = [to_lazyshape(plan) for _ in range(repeats + 1)]
        ls.infer(nets.pop(), shape)  # warm-up
        prof = cProfile.Profile()
        prof.enable()
        for net in nets:
            ls.infer(net, shape)
        prof.disable()
        out.write(f"== ls.infer({plan.name}, {shape}) x {repeats}, "
                  f"{plan.layers} modules each ==\n")
        stats = pstats.Stats(prof, stream=out)
        stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()
