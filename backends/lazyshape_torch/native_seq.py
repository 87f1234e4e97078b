"""Native torch modules for the seq layers (registered into native.NATIVE)."""

from __future__ import annotations
