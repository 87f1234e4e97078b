"""``python -m benchmarks.compare REV [--models A,C] [--rounds 7]``: shape
inference of this tree side by side with an earlier revision.

The revision is checked out in a temporary git worktree; each round runs one
fresh process per tree, alternately, each timing ``ls.infer`` on freshly
defined reference models (concrete and symbolic input; median of its repeats).
Reported per model: both medians and the median over rounds of the per-round
ratio this / REV, which machine-wide slowdowns affect both sides of. Each side
defines the reference models with its own ``benchmarks.models``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_CHILD = r"""
import gc, json, sys, time
tree, bench, keys = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
sys.path[:0] = [tree, tree + "/backends", bench]
import lazyshape as ls
from benchmarks.models import REFERENCE, lazyshape_model
out = {}
for key in keys:
    for symbolic in (False, True):
        ref = REFERENCE[key]
        shape = ref.symbolic_shape if symbolic else ref.input_shape
        times = []
        for _ in range(15 if len(lazyshape_model(key).program().nodes) > 500 else 60):
            model = lazyshape_model(key)
            gc.collect()
            gc.disable()
            t0 = time.perf_counter_ns()
            ls.infer(model, shape)
            times.append(time.perf_counter_ns() - t0)
            gc.enable()
        out[key + (" symbolic" if symbolic else "")] = statistics.median(times) / 1e3
print(json.dumps(out))
"""


def _run(tree: Path, keys: str) -> dict[str, float]:
    code = "import statistics\n" + _CHILD
    done = subprocess.run(
        [sys.executable, "-c", code, str(tree), str(ROOT), keys],
        capture_output=True, text=True, check=True,
    )
    result: dict[str, float] = json.loads(done.stdout)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rev", help="the git revision to compare with")
    parser.add_argument("--models", default="A,B,C,D,gpt2")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(base),
                        args.rev], check=True)
        try:
            runs: dict[str, list[dict[str, float]]] = {"this": [], "rev": []}
            for _ in range(args.rounds):
                runs["rev"].append(_run(base, args.models))
                runs["this"].append(_run(ROOT, args.models))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)],
                           check=True)
    print(f"ls.infer, this tree vs {args.rev} ({args.rounds} rounds, alternating processes)")
    for key in runs["this"][0]:
        this = statistics.median(r[key] for r in runs["this"])
        rev = statistics.median(r[key] for r in runs["rev"])
        ratio = statistics.median(t[key] / r[key] for t, r in zip(runs["this"], runs["rev"],
                                                                   strict=True))
        print(f"  {key:16s} {rev:10.1f} µs -> {this:10.1f} µs   this / rev {ratio:.3f}")


if __name__ == "__main__":
    main()
