"""mkdocs hooks: the benchmark plots (``benchmarks/results/bench-*.png``, made
by ``make bench``) are served as ``img/bench/<name>.png``, so the docs show the
committed results without a copy of them under ``docs/``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

RESULTS = Path(__file__).parent / "benchmarks" / "results"


def on_files(files: Files, config: Any) -> Files:
    for png in sorted(RESULTS.glob("bench-*.png")):
        if not png.name.startswith(("bench-quick", "bench-partial")):
            files.append(File.generated(config, f"img/bench/{png.name}", abs_src_path=str(png)))
    return files
