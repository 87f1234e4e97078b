"""Every ```python block in README.md and docs/*.md runs, in order, one namespace
per file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
#: the pages in docs/'s subfolders too, when they have examples (the API reference
#: pages are `::: name` directives, checked by the strict docs build instead)
PAGES = [
    ROOT / "README.md",
    *sorted(DOCS.glob("*.md")),
    *sorted(p for p in DOCS.glob("*/**/*.md") if "```python" in p.read_text()),
]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)

#: a page whose examples import a framework, or build on its backend, needs it
USES = {
    "torch": re.compile(r"^\s*(import|from) torch\b|[\"']torch[\"']", re.M),
    "jax": re.compile(r"^\s*(import|from) jax\b|[\"']jax[\"']", re.M),
    "onnx": re.compile(r"^\s*(import|from) onnx\b", re.M),
}
#: needs the examples don't spell out: check_layer's property (f), asserted in
#: testing.md, compares NumPy with a second backend
NEEDS = {"testing.md": {"torch"}}


def _page(page):
    code = "".join(BLOCK.findall(page.read_text()))
    needs = {name for name, pattern in USES.items() if pattern.search(code)}
    needs |= NEEDS.get(page.name, set())
    name = page.name if page.parent in (ROOT, DOCS) else str(page.relative_to(DOCS))
    return pytest.param(page, id=name, marks=[getattr(pytest.mark, n) for n in sorted(needs)])


@pytest.mark.parametrize("page", [_page(p) for p in PAGES])
def test_examples_run(page, capsys):
    blocks = BLOCK.findall(page.read_text())
    assert blocks, f"{page.name} has no python examples"
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    for i, code in enumerate(blocks):
        try:
            exec(compile(code, f"{page.name}[block {i}]", "exec"), namespace)
        except Exception as e:  # pragma: no cover - the failure message is the point
            raise AssertionError(f"{page.name} block {i} failed: {e!r}\n{code}") from e
