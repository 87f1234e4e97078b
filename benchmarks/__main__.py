"""``python -m benchmarks [--quick] [--only SECTION] [--out PATH] [--no-plots] [--profile]
[--breakdown]``."""

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

from . import coldstart, cost, forward, harness, init, memory, resolve, scaling, sharded, zoo  # noqa: E402
from ._report import (  # noqa: E402
    Comparison,
    RatioCell,
    environment,
    render_markdown,
    render_ratios,
    render_table,
    write_results,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "bench.json"
SECTIONS = {"resolve": resolve.run, "init": init.run, "forward": forward.run,
            "scaling": scaling.run, "memory": memory.run, "coldstart": coldstart.run,
            "harness": harness.run, "zoo": zoo.run, "cost": cost.run,
            "sharded": sharded.run}


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
    settings["keras"] = "KERAS_BACKEND=jax, separate processes"
    return settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="fewer repeats and cases (under 2 minutes; CI's smoke run)")
    parser.add_argument("--only", choices=sorted(SECTIONS), action="append",
                        help="run only this section (repeatable)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON path; the Markdown table and PNG plots go beside it. "
                             "Default: results/bench.json for a full run, bench-quick.json "
                             "for --quick, bench-partial.json for --only (never clobbering "
                             "the full run's figures)")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--profile", action="store_true",
                        help="print a cProfile of ls.infer on the reference models and exit")
    parser.add_argument("--breakdown", action="store_true",
                        help="print the time of the rules, the walk, each total and the "
                             "cold-cache penalty of symbolic resolutions of zoo models, "
                             "and exit")
    args = parser.parse_args(argv)

    if args.profile:
        from ._profile import profile_infer

        print(profile_infer())
        print(profile_infer(symbolic=True))
        return 0
    if args.breakdown:
        from ._profile import breakdown, format_breakdown

        print(format_breakdown(breakdown()))
        return 0

    out = args.out
    if out is None:
        suffix = "-partial" if args.only else "-quick" if args.quick else ""
        out = DEFAULT_OUT.with_name(f"bench{suffix}.json")
    start = time.perf_counter()
    settings = _settings()
    if hasattr(os, "getloadavg"):  # other processes on the machine skew every figure
        settings["load_average_at_start"] = "/".join(f"{x:.2f}" for x in os.getloadavg())
    sections: dict[str, Any] = {}
    comparisons: list[Comparison] = []
    cells: list[RatioCell] = []
    for name in args.only or list(SECTIONS):
        t0 = time.perf_counter()
        print(f"[benchmarks] {name} ...", file=sys.stderr, flush=True)
        section, rows, ratio_cells = SECTIONS[name](args.quick)
        sections[name] = section
        comparisons += rows
        cells += ratio_cells
        settings[f"{name}_s"] = round(time.perf_counter() - t0, 1)
        print(f"[benchmarks] {name} done in {settings[f'{name}_s']} s", file=sys.stderr,
              flush=True)
    settings["wall_time_s"] = round(time.perf_counter() - start, 1)
    if hasattr(os, "getloadavg"):
        settings["load_average_at_end"] = "/".join(f"{x:.2f}" for x in os.getloadavg())
    env = environment(args.quick, settings, ROOT)
    print("Ratios lazyshape / peer (median; below 1: lazyshape costs less)\n")
    print(render_ratios(cells))
    print("\nEvery figure and target\n")
    print(render_table(comparisons))
    print()
    print("settings: " + "; ".join(f"{k}={v}" for k, v in settings.items()))
    doc = write_results(out, env, sections, comparisons, cells)
    pngs: list[Path] = []
    if not args.no_plots:
        try:
            from .plots import draw_all
        except ImportError as e:  # matplotlib is in the bench extra
            print(f"no plots: {e}", file=sys.stderr)
        else:
            pngs = draw_all(doc, out.with_suffix(""))
            out.with_suffix(".md").write_text(
                render_markdown(comparisons, env, cells, [p.name for p in pngs]))
    failed = sum(c.status == "FAIL" for c in comparisons)
    errors = sum(c.status == "ERROR" for c in comparisons)
    print(f"wrote {out}, {out.with_suffix('.md')}" + "".join(f", {p.name}" for p in pngs))
    print(f"{sum(c.status == 'PASS' for c in comparisons)} targets met, {failed} missed, "
          f"{errors} errors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
