"""Native torch modules for the pool layers (registered into native.NATIVE)."""

from __future__ import annotations
