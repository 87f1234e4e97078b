"""Optional frameworks for test modules: `optional` gives a module, or None where
its framework is not installed (the tests marked for that framework are then
skipped, see conftest.py), so one test module runs with NumPy alone too."""

from __future__ import annotations

import importlib
from typing import Any

#: the top-level modules whose absence means "framework not installed"
FRAMEWORK_MODULES = ("torch", "jax", "jaxlib")


def optional(name: str) -> Any:
    """``importlib.import_module(name)``, or None when a framework it needs is
    missing; any other missing module is an error."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name in FRAMEWORK_MODULES:
            return None
        raise
