"""Known bugs of built-in layers that the harness found, each recorded with a
narrow predicate so `check_layer` can skip the examples that hit it (and count
them as ``known:<id>``) while the bug is open.

Each issue is reproduced by a strict ``xfail`` test in ``tests/test_harness.py``:
when the bug is fixed that test starts passing, fails as XPASS, and the entry
here is to be deleted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lazyshape._layer import Layer

from ._primitives import Specs

__all__ = ["KnownIssue", "KNOWN_ISSUES", "known_issue"]



@dataclass(frozen=True)
class KnownIssue:
    """A recorded bug: ``id``, the layer kinds it affects, what goes wrong, and
    a predicate on ``(layer, input specs)`` selecting the examples that hit it."""

    id: str
    kinds: frozenset[str]
    summary: str
    applies: Callable[[Layer, Specs], bool]
    #: the backends whose forward hits it (None: the rule itself, every backend)
    backends: frozenset[str] | None = None


#: none open: every bug the harness found so far is fixed, and pinned by a
#: regression test in ``tests/test_harness.py``
KNOWN_ISSUES: list[KnownIssue] = []


def known_issue(
    layer: Layer, specs: Specs, backend: str | None = None
) -> KnownIssue | None:
    """The known issue ``(layer, specs)`` hits, if any (built-in kinds only):
    with ``backend=None`` the issues of the rule, else those of that backend's
    forward."""
    kind = type(layer).__name__
    if not type(layer).__module__.startswith("lazyshape."):
        return None
    for issue in KNOWN_ISSUES:
        if (backend is None) != (issue.backends is None):
            continue
        if backend is not None and backend not in (issue.backends or ()):
            continue
        if kind in issue.kinds and issue.applies(layer, specs):
            return issue
    return None
