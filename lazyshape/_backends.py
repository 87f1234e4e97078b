"""Backend discovery: the ``lazyshape.backends`` entry-point group.

Built-in backends are registered exactly as a third-party backend would be.
Loading a backend's entry point must not import its framework: the object
(``BACKEND``) only names the framework's array modules; `Backend.ops` and
`Backend.build` import it on first use.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol, runtime_checkable

__all__ = ["Backend", "backends", "get_backend", "backend_for", "register_backend", "asarray"]


@runtime_checkable
class Backend(Protocol):
    """What a backend provides (see DESIGN.md, "Backends")."""

    #: the backend's name (``"numpy"``, ``"torch"``, ``"jax"``)
    name: str
    #: top-level modules whose array types this backend owns (``("torch",)``)
    array_modules: tuple[str, ...]

    def available(self) -> bool:
        """True when the framework can be imported."""
        ...

    def ops(self) -> Any:
        """The backend's NN-op module (see ``lazyshape_numpy.ops`` for the protocol)."""
        ...

    def build(self, model: Any, config: Any) -> Any:
        """The built model for this backend."""
        ...

    def asarray(self, value: Any, dtype: str | None = None) -> Any:
        """A backend array from a NumPy array (or anything array-like)."""
        ...


_REGISTRY: dict[str, Backend] = {}
_SCANNED = False
_BY_MODULE: dict[type, Backend] = {}


def _scan() -> None:
    global _SCANNED
    if _SCANNED:
        return
    _SCANNED = True
    from importlib.metadata import entry_points  # on first use: it costs ~30 ms to import

    for ep in entry_points(group="lazyshape.backends"):
        if ep.name in _REGISTRY:
            continue
        try:
            _REGISTRY[ep.name] = ep.load()
        except (ImportError, AttributeError):  # a broken backend must not break the core
            continue
    if "numpy" not in _REGISTRY:  # running from a source tree without metadata
        mod = importlib.import_module("lazyshape_numpy")
        _REGISTRY["numpy"] = mod.BACKEND


def register_backend(backend: Backend) -> None:
    """Register a backend object by hand (entry points are the usual way)."""
    _scan()
    _REGISTRY[backend.name] = backend
    _BY_MODULE.clear()


def backends() -> list[str]:
    """Names of the installed backends whose framework imports: ``"numpy"`` always."""
    _scan()
    names = [n for n, b in _REGISTRY.items() if b.available()]
    order = {"numpy": 0, "torch": 1, "jax": 2}
    return sorted(names, key=lambda n: (order.get(n, 3), n))


def get_backend(name: str) -> Backend:
    """The backend registered under ``name``; an unknown name lists the installed ones."""
    _scan()
    backend = _REGISTRY.get(name)
    if backend is None or not backend.available():
        raise ValueError(f"unknown backend {name!r}; installed backends: {backends()}")
    return backend


def backend_for(x: Any) -> Backend:
    """The backend owning array ``x`` (by the module of its type)."""
    tp = type(x)
    found = _BY_MODULE.get(tp)
    if found is not None:
        return found
    _scan()
    top = tp.__module__.split(".", 1)[0]
    for backend in _REGISTRY.values():
        if top in backend.array_modules:
            _BY_MODULE[tp] = backend
            return backend
    raise TypeError(
        f"no installed lazyshape backend handles arrays of type {tp.__module__}.{tp.__name__}; "
        f"installed backends: {backends()}"
    )


def asarray(value: Any, backend: str = "numpy", dtype: str | None = None) -> Any:
    """``value`` (a NumPy array or anything array-like) as an array of ``backend``."""
    return get_backend(backend).asarray(value, dtype)
