"""Native torch modules for the conv layers (registered into native.NATIVE)."""

from __future__ import annotations
