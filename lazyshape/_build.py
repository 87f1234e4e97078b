"""``ls.build``: hand a model to a backend."""

from __future__ import annotations

from typing import Any

from ._backends import get_backend
from ._layer import Layer
from ._partition import Partition
from ._runtime import BuildConfig

__all__ = ["build"]


def build(
    model: Layer,
    backend: str = "numpy",
    *,
    seed: int | None = None,
    rng: str = "native",
    dtype: Any = "float32",
    device: Any = None,
    on_shape_change: str = "error",
    max_param_bytes: int | float | None = None,
    mesh: Any = None,
    partition: Partition | None = None,
) -> Any:
    """Build ``model`` on ``backend`` (``"numpy"``, ``"torch"``, ``"jax"``).

    Nothing is allocated until the first call, `materialize` or
    `load_state_dict`. ``rng="native"`` draws from the framework's own RNG
    (torch: the global RNG in torch's order; JAX: a key per parameter path;
    NumPy: one ``Generator``); ``rng="portable"`` gives bit-identical initial
    weights on every backend for the same ``seed``. ``on_shape_change="reinit"``
    re-initializes parameters whose shape a new input changes; the default
    raises `ShapeError` and changes nothing. Parameters that would need more
    than ``max_param_bytes`` (default: the memory the process can still
    allocate) are refused before anything is allocated: `MemoryLimitError`.

    ``mesh`` (a ``jax.sharding.Mesh``) with ``partition`` (a `Partition`)
    creates each parameter already split over the mesh's devices, on a backend
    that builds sharded (JAX: ``init`` under ``jax.jit`` with ``out_shardings``);
    the mesh's axis names and sizes are the ``mesh_shape`` the rules are
    checked against, and a rule that does not fit raises `ShapeError` before
    anything is allocated.
    """
    if not isinstance(model, Layer):
        raise TypeError(f"build takes a lazyshape layer or model, got {type(model).__name__}")
    config = BuildConfig(
        seed=seed, rng=rng, dtype=dtype, device=device, on_shape_change=on_shape_change,
        max_param_bytes=max_param_bytes, backend=backend, mesh=mesh, partition=partition,
    )
    target = get_backend(backend)
    if mesh is not None and not getattr(target, "builds_sharded", False):
        raise ValueError(
            f"the {backend} backend does not build on a mesh (mesh=, partition=); build "
            "on JAX, or on torch build on the meta device and shard the built model"
        )
    return target.build(model, config)
