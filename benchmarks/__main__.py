"""``python -m benchmarks [--quick] [--only resolve|forward] [--out PATH] [--profile]``."""

from __future__ import annotations

import os
import sys

# One BLAS thread, set before anything imports NumPy: on a 2-core machine a
# multi-threaded OpenBLAS makes small matmuls erratic (0.3 ms one run, 20 ms the
# next). A value already in the environment wins; OPENBLAS_CORETYPE is left alone.
_BLAS_THREADS_PRESET = "OPENBLAS_NUM_THREADS" in os.environ
_NUMPY_PREIMPORTED = "numpy" in sys.modules
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from . import forward, resolve  # noqa: E402
from ._report import Comparison, environment, render_table, write_results  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "issue2.json"
SECTIONS = {"resolve": resolve.run, "forward": forward.run}


def _settings() -> dict[str, Any]:
    """Fix what makes numbers unstable, and say what was fixed."""
    settings: dict[str, Any] = {
        "timer": "time.perf_counter_ns",
        "gc": "gc.freeze() of what exists, gc.collect() before and gc.disable() inside "
              "each timed region",
        "statistic": "median, IQR (q1-q3), min/max in JSON",
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "unset"),
    }
    try:
        import torch
    except ImportError:
        settings["torch"] = "not installed"
    else:
        torch.set_num_threads(1)
        settings["torch_num_threads"] = torch.get_num_threads()
    blas = os.environ["OPENBLAS_NUM_THREADS"]
    if _NUMPY_PREIMPORTED:
        blas += " (numpy was imported before; may not apply)"
    elif not _BLAS_THREADS_PRESET:
        blas += " (set by benchmarks)"
    settings["OPENBLAS_NUM_THREADS"] = blas
    settings["jax_threads"] = "XLA default"
    return settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repeats (< 1 minute)")
    parser.add_argument("--only", choices=sorted(SECTIONS), action="append",
                        help="run only this section (repeatable)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON path; the Markdown table goes beside it (.md). Default: "
                             "results/issue2.json for a full run, issue2-quick.json for "
                             "--quick, issue2-partial.json for --only (never clobbering "
                             "the full run's figures)")
    parser.add_argument("--profile", action="store_true",
                        help="print a cProfile of ls.infer on the resolution models and exit")
    args = parser.parse_args(argv)

    if args.profile:
        from ._profile import profile_infer

        print(profile_infer())
        print(profile_infer(symbolic=True))
        return 0

    out = args.out
    if out is None:
        suffix = "-partial" if args.only else "-quick" if args.quick else ""
        out = DEFAULT_OUT.with_name(f"issue2{suffix}.json")
    start = time.perf_counter()
    settings = _settings()
    if hasattr(os, "getloadavg"):  # other processes on the machine skew every figure
        settings["load_average_at_start"] = "/".join(f"{x:.2f}" for x in os.getloadavg())
    sections: dict[str, Any] = {}
    comparisons: list[Comparison] = []
    for name in args.only or list(SECTIONS):
        print(f"[benchmarks] {name} ...", file=sys.stderr, flush=True)
        section, rows = SECTIONS[name](args.quick)
        sections[name] = section
        comparisons += rows
    settings["wall_time_s"] = round(time.perf_counter() - start, 1)
    if hasattr(os, "getloadavg"):
        settings["load_average_at_end"] = "/".join(f"{x:.2f}" for x in os.getloadavg())
    env = environment(args.quick, settings, ROOT)
    print(render_table(comparisons))
    print()
    print("settings: " + "; ".join(f"{k}={v}" for k, v in settings.items()))
    write_results(out, env, sections, comparisons)
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
