"""Run a `benchmarks._worker` task in a fresh Python process and read its JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["run_worker"]

ROOT = Path(__file__).resolve().parent.parent


def run_worker(task: str, timeout: float = 300, env: dict[str, str] | None = None,
               **args: Any) -> dict[str, Any]:
    """The worker's JSON result; ``{"error": ...}`` if it failed or timed out."""
    full_env = dict(os.environ)
    full_env.setdefault("OPENBLAS_NUM_THREADS", "1")
    full_env["KERAS_BACKEND"] = "jax"
    full_env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if env:
        full_env.update(env)
    cmd = [sys.executable, "-m", "benchmarks._worker", task, json.dumps(args)]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, env=full_env, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        return {"error": f"exit {proc.returncode}: " + " | ".join(tail)[:300]}
    out: dict[str, Any] = json.loads(lines[-1])
    return out
