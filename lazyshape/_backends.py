"""Backend discovery: the ``lazyshape.backends`` entry-point group, and the
protocol every backend object implements.

Built-in backends are registered exactly as a third-party backend would be:
the core never imports one, and never names one. Loading a backend's entry
point must not import its framework: the object (``BACKEND``) only names the
framework's array modules; its methods import the framework on first use.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "Backend", "backends", "get_backend", "backend_for", "register_backend",
    "unregister_backend", "asarray", "to_numpy",
]


@runtime_checkable
class Backend(Protocol):
    """What a backend object provides (``lazyshape.backend`` has the rest of the
    boundary: the runtime, resolution records, placeholders, the consistency
    check).

    A backend is registered in the ``lazyshape.backends`` entry-point group
    (``name = "package:BACKEND"``) or by `register_backend`."""

    #: the backend's name, as ``ls.build(model, name)`` takes it
    name: str
    #: top-level modules whose array types this backend owns (``("torch",)``);
    #: ``ls.ops`` dispatches an array to the backend owning its type's module
    array_modules: tuple[str, ...]
    #: where the backend is listed by ``ls.backends()`` (smaller first)
    order: int

    def available(self) -> bool:
        """True when the framework can be imported."""
        ...

    def ops(self) -> Any:
        """The backend's NN-op module: the op protocol, the same names and
        signatures in every backend (`lazyshape.backend.check_backend`)."""
        ...

    def build(self, model: Any, config: Any) -> Any:
        """The built model for this backend (``config``: a `BuildConfig`)."""
        ...

    def export(self, model: Any, plan: Any) -> Any:
        """The framework's exported program of a built, materialized ``model``
        whose dynamic dims are ``plan``'s symbols (``plan``: an `ExportPlan`);
        ``NotImplementedError`` for a framework with no export format."""
        ...

    def asarray(self, value: Any, dtype: str | None = None) -> Any:
        """A backend array from a NumPy array (or anything array-like)."""
        ...

    def to_numpy(self, x: Any) -> np.ndarray[Any, Any]:
        """A NumPy copy of one of this backend's arrays (bfloat16 through
        ``ml_dtypes``)."""
        ...

    def is_placeholder(self, x: Any) -> bool:
        """True for a parameter of a model not materialized yet (torch's
        ``UninitializedParameter``; the core's `Placeholder` elsewhere)."""
        ...

    def forward(self, model: Any, *xs: Any) -> Any:
        """Run a built (materialized) model on this backend's arrays in
        evaluation mode, recording no gradients, leaving the model as it was."""
        ...

    def native_dtype(self, dtype: str) -> str:
        """The dtype an array of canonical dtype ``dtype`` has on this backend
        (JAX without x64 holds 64-bit types in 32 bits)."""
        ...


class _Registry:
    """The installed backends by name, loaded from the entry points once.

    The one piece of process-wide state of the core: a registry of plugins,
    like Python's own codec registry. Loading happens once, under a lock;
    lookups after that only read."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_name: dict[str, Backend] = {}
        self.by_type: dict[type, Backend] = {}
        self.scanned = False

    def scan(self) -> None:
        if self.scanned:
            return
        with self.lock:
            if self.scanned:
                return
            from importlib.metadata import entry_points  # on first use: ~30 ms to import

            for ep in entry_points(group="lazyshape.backends"):
                if ep.name in self.by_name:
                    continue
                try:
                    self.by_name[ep.name] = ep.load()
                except (ImportError, AttributeError):  # a broken backend must not break the core
                    continue
            self.scanned = True


_REGISTRY = _Registry()


def register_backend(backend: Backend) -> None:
    """Register a backend object by hand (entry points are the usual way); it
    replaces a backend of the same name."""
    _REGISTRY.scan()
    with _REGISTRY.lock:
        _REGISTRY.by_name[backend.name] = backend
        _REGISTRY.by_type.clear()


def unregister_backend(name: str) -> None:
    """Remove the backend registered under ``name`` (a no-op when there is none)."""
    _REGISTRY.scan()
    with _REGISTRY.lock:
        _REGISTRY.by_name.pop(name, None)
        _REGISTRY.by_type.clear()


def backends() -> list[str]:
    """Names of the installed backends whose framework imports, in their
    ``order``: ``"numpy"`` (always there) first."""
    _REGISTRY.scan()
    found = [b for b in _REGISTRY.by_name.values() if b.available()]
    return [b.name for b in sorted(found, key=lambda b: (getattr(b, "order", 100), b.name))]


def get_backend(name: str) -> Backend:
    """The backend registered under ``name``; an unknown name lists the installed
    ones and says which extra installs a known framework's backend."""
    _REGISTRY.scan()
    backend = _REGISTRY.by_name.get(name)
    if backend is None or not backend.available():
        hint = ""
        if backend is not None or name.isidentifier():
            hint = f' (pip install "lazyshape[{name}]" if it is a framework lazyshape supports)'
        raise ValueError(f"unknown backend {name!r}; installed backends: {backends()}{hint}")
    return backend


def backend_for(x: Any) -> Backend:
    """The backend owning array ``x`` (by the top-level module of its type)."""
    tp = type(x)
    found = _REGISTRY.by_type.get(tp)
    if found is not None:
        return found
    _REGISTRY.scan()
    top = tp.__module__.split(".", 1)[0]
    for backend in _REGISTRY.by_name.values():
        if top in backend.array_modules:
            _REGISTRY.by_type[tp] = backend  # a memo: a race stores the same value
            return backend
    raise TypeError(
        f"no installed lazyshape backend handles arrays of type {tp.__module__}.{tp.__name__}; "
        f"installed backends: {backends()}"
    )


def asarray(value: Any, backend: str = "numpy", dtype: str | None = None) -> Any:
    """``value`` (a NumPy array or anything array-like) as an array of ``backend``."""
    return get_backend(backend).asarray(value, dtype)


def to_numpy(x: Any) -> np.ndarray[Any, Any]:
    """A NumPy copy of an array of any installed backend (a NumPy array or a
    scalar as it is)."""
    if isinstance(x, (np.ndarray, np.generic, int, float, bool, complex)):
        return np.asarray(x)
    return backend_for(x).to_numpy(x)
