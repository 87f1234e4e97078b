"""Native torch modules for the norm layers (registered into native.NATIVE)."""

from __future__ import annotations
