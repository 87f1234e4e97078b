"""``ls.export`` on JAX: ``jax.export`` of ``apply(variables, *xs)`` with a
symbolic dimension per lazyshape symbol, its range from the rules as
constraints."""

from __future__ import annotations

from typing import Any


def export(model: Any, plan: Any) -> Any:
    """The ``jax.export.Exported`` of ``model.apply(variables, *xs)`` (variables
    as an argument: the exported function is called with them), each symbol
    a ``jax.export.symbolic_shape`` dimension constrained to its range."""
    import jax
    from jax import export as jax_export

    from lazyshape.backend import normalize_dtype

    names = sorted(plan.ranges)
    env: dict[str, Any] = {}
    if names:
        constraints = []
        for name in names:
            lo, hi = plan.ranges[name]
            if lo > 1:
                constraints.append(f"{name} >= {lo}")
            if hi is not None:
                constraints.append(f"{name} <= {hi}")
        syms = jax_export.symbolic_shape(", ".join(names), constraints=constraints)
        env = dict(zip(names, syms, strict=True))
    args = []
    for spec, axes in zip(plan.inputs, plan.dims, strict=True):
        shape = tuple(env[axes[k]] if k in axes else int(d) for k, d in enumerate(spec.shape))
        dtype = _jax_dtype(normalize_dtype(spec.dtype))
        args.append(jax.ShapeDtypeStruct(shape, getattr(jax.numpy, dtype)))  # type: ignore[no-untyped-call]
    variables = model.variables
    structure = jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), variables  # type: ignore[no-untyped-call]
    )
    fn = jax.jit(lambda v, *xs: model.apply(v, *xs))
    return jax_export.export(fn)(structure, *args)


def _jax_dtype(dtype: str) -> str:
    import jax

    if jax.config.read("jax_enable_x64"):  # type: ignore[no-untyped-call]
        return dtype
    return {"float64": "float32", "int64": "int32", "complex128": "complex64"}.get(dtype, dtype)
