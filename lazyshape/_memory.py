"""The memory guard: a model whose parameters would not fit is refused before
anything is allocated, with the bytes it would need and its largest tensors.

The limit is `ls.build`'s ``max_param_bytes``; by default the memory this
process can still use: the machine's available memory (``MemAvailable``), the
container's (cgroup ``memory.max`` less ``memory.current``) and the address
space left under ``ulimit -v``, whichever is least, read at materialization.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping

from ._specs import ParamSpec, itemsize

__all__ = [
    "MemoryLimitError", "available_bytes", "check_param_memory", "format_bytes", "on_host",
    "parse_bytes",
]


class MemoryLimitError(MemoryError):
    """Materializing the parameters would need more memory than the limit.

    Raised before anything is allocated; the model is unchanged. Attributes:
    ``needed`` and ``limit`` (bytes), ``largest`` (``[(name, shape, bytes)]``,
    the largest tensors first)."""

    __module__ = "lazyshape"

    def __init__(
        self,
        needed: int,
        limit: int,
        largest: list[tuple[str, tuple[int, ...], int]],
        dtype: str,
        source: str,
    ) -> None:
        self.needed = needed
        self.limit = limit
        self.largest = largest
        tensors = ", ".join(
            f"`{n}` {shape} {format_bytes(b)}" for n, shape, b in largest
        )
        super().__init__(
            f"the parameters need {format_bytes(needed)} ({dtype}), more than the "
            f"{format_bytes(limit)} {source}; the largest: {tensors}. Nothing was "
            "allocated: ls.infer resolves the model's shapes without memory; build "
            "with max_param_bytes= to change the limit"
        )


def format_bytes(n: int) -> str:
    """``1536`` → ``"1.5 KiB"``; ``64`` → ``"64 B"``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if size < 1024 or unit == "PiB":
            return f"{n:,} B" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "PB": 10**15,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40, "PIB": 2**50}


def parse_bytes(size: int | float | str) -> int:
    """Bytes from a number or a size with a unit: ``"80GiB"`` → 85899345920,
    ``"1.5 GB"`` → 1500000000 (``KiB``... are powers of 1024, ``KB``... of 1000;
    case-insensitive)."""
    if isinstance(size, bool):
        raise TypeError(f"a size is a number of bytes or a string like '80GiB'; got {size!r}")
    if isinstance(size, (int, float)):
        if size < 0:
            raise ValueError(f"a size is not negative; got {size!r}")
        return int(size)
    if not isinstance(size, str):
        raise TypeError(f"a size is a number of bytes or a string like '80GiB'; got {size!r}")
    text = size.strip()
    digits = text.rstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ").strip()
    unit = text[len(text.rstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")):].upper()
    try:
        value = float(digits.replace(",", "").replace("_", ""))
    except ValueError:
        value = -1.0
    if unit not in _UNITS or value < 0:
        raise ValueError(
            f"a size like '80GiB', '512 MB' or a number of bytes; got {size!r}"
        )
    return int(value * _UNITS[unit])


def _read_int(path: str, field: str | None = None) -> int | None:
    """An integer from a /proc or /sys file (a ``field:`` line's, in kB when
    the file says so); None when the file or field is absent."""
    try:
        with open(path) as f:
            if field is None:
                text = f.read().strip()
                return int(text) if text.isdigit() else None
            for line in f:
                if line.startswith(field + ":"):
                    parts = line.split()
                    scale = 1024 if len(parts) > 2 and parts[2] == "kB" else 1
                    return int(parts[1]) * scale
    except (OSError, ValueError):
        return None
    return None


def available_bytes() -> int | None:
    """The memory this process can still allocate: the least of the machine's
    available memory, the container's limit less its use, and the address
    space left under ``ulimit -v``; None when none of them can be read."""
    found: list[int] = []
    avail = _read_int("/proc/meminfo", "MemAvailable")
    if avail is None and hasattr(os, "sysconf"):
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError):
            avail = None
    if avail is not None:
        found.append(avail)
    cg_max = _read_int("/sys/fs/cgroup/memory.max")
    cg_cur = _read_int("/sys/fs/cgroup/memory.current")
    if cg_max is not None and cg_cur is not None:
        found.append(max(cg_max - cg_cur, 0))
    try:
        import resource
    except ImportError:  # not on POSIX
        resource = None  # type: ignore[assignment]
    if resource is not None:
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            used = _read_int("/proc/self/status", "VmSize") or 0
            found.append(max(soft - used, 0))
    return min(found) if found else None


def on_host(device: object) -> bool:
    """Whether parameters on ``device`` (None: the default) live in this
    machine's memory (not a GPU's, not torch's ``meta``)."""
    return device is None or "cpu" in str(device).lower()


def check_param_memory(
    specs: Mapping[str, ParamSpec],
    names: Iterable[str],
    dtype: str,
    limit: int | float | None,
    device: object = None,
) -> None:
    """Raise `MemoryLimitError` when the parameters ``names`` of ``specs``
    (concrete shapes; a dtype of None is ``dtype``) need more bytes than
    ``limit`` (None: `available_bytes`, for parameters on the host)."""
    if limit is None and not on_host(device):
        return
    names = list(names)
    total = 0
    for n in names:
        spec = specs[n]
        total += math.prod(spec.shape) * itemsize(spec.dtype or dtype)  # type: ignore[assignment]
    if limit is None:
        found = available_bytes()
        if found is None or total <= found:
            return
        limit, source = found, "this process can still allocate"
    else:
        if total <= limit:
            return
        source = "allowed (max_param_bytes)"
    sizes = []
    for n in names:
        shape = tuple(int(d) for d in specs[n].shape)
        sizes.append((math.prod(shape) * itemsize(specs[n].dtype or dtype), n, shape))
    sizes.sort(key=lambda t: -t[0])
    largest = [(n, shape, b) for b, n, shape in sizes[:3]]
    raise MemoryLimitError(total, int(limit), largest, dtype, source)
