"""JAX's symbolic dims as lazyshape dims, and shape arithmetic that keeps them.

Under ``jax.export`` with shape polymorphism (``jax.export.symbolic_shape("B,
T")``) an array's shape holds JAX dim expressions (``B``, ``2*B``,
``floordiv(H, 2) + 1``) that refuse ``int()`` and undecidable comparisons.

- `input_specs` hands the shape rules the inputs as `TensorSpec`\\ s over the
  lazyshape symbols of the same names (JAX's ``B`` is ``ls.Sym("B")``), so the
  rules check a symbolic batch exactly as ``ls.infer(model, ("B", 20))`` does
  and a shape problem is a `ShapeError` at trace time;
- the ops compute sizes from the arrays' own shapes, never with ``int(d)``,
  and take another path where a concrete size is needed (`is_concrete`), so a
  symbolic size flows into JAX unchanged.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Sequence
from typing import Any

from jax.export import is_symbolic_dim

from lazyshape.backend import Dim, TensorSpec, normalize_dtype
from lazyshape.dims import Sym, dim_max, dim_min

__all__ = ["input_specs", "is_concrete", "lazyshape_dim"]


def is_concrete(shape: Sequence[Any]) -> bool:
    """Whether every dim of ``shape`` is an int (no JAX symbolic dim)."""
    return not any(is_symbolic_dim(d) for d in shape)


def input_specs(xs: tuple[Any, ...]) -> tuple[Any, ...]:
    """The inputs as the shape rules read them: ``xs`` unchanged unless some
    array (or ``jax.ShapeDtypeStruct``) has a symbolic dim, so the resolution
    cache keeps keying on concrete shapes; such an array becomes a
    `TensorSpec` of its dtype whose dims are `lazyshape_dim`\\ s (an array of
    shape ``(B, 20)`` is ``TensorSpec((Sym("B"), 20))``). Shape tuples and
    specs pass through."""
    if not any(_symbolic(x) for x in xs):
        return xs
    return tuple(
        TensorSpec(tuple(lazyshape_dim(d) for d in x.shape), normalize_dtype(x.dtype))
        if _symbolic(x) else x
        for x in xs
    )


def _symbolic(x: Any) -> bool:
    shape = getattr(x, "shape", None)
    return type(x) is not TensorSpec and shape is not None and not is_concrete(shape)


def lazyshape_dim(d: Any) -> Dim:
    """A JAX dim as a lazyshape dim: an int as itself; a symbolic one as the
    same expression over lazyshape symbols, read from its text, which JAX
    documents and ``jax.export.symbolic_shape`` parses back (``B``, ``2*B^2``,
    ``floordiv(H - 1, 2) + 1``, ``mod``, ``max``, ``min``). A form this
    reader does not know becomes one opaque symbol named by its text: the
    rules then treat it as an unknown size of its own."""
    if not is_symbolic_dim(d):
        return int(d)
    text = str(d)
    try:
        tree = ast.parse(text.replace("^", "**"), mode="eval")  # JAX's power is `^`
        dim: Dim = _from_ast(tree.body)
        return dim
    except (SyntaxError, ValueError, TypeError):
        return Sym(text)


_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
}
_CALLS: dict[str, Callable[[Any, Any], Any]] = {
    "floordiv": lambda a, b: a // b,
    "mod": lambda a, b: a % b,
    "max": dim_max,
    "min": dim_min,
}


def _from_ast(node: ast.expr) -> Any:
    if isinstance(node, ast.Constant) and type(node.value) is int:
        return node.value
    if isinstance(node, ast.Name):
        return Sym(node.id)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return -_from_ast(node.operand)
    if isinstance(node, ast.BinOp):
        left = _from_ast(node.left)
        if isinstance(node.op, ast.Pow) and isinstance(node.right, ast.Constant):
            exponent = node.right.value
            if type(exponent) is int and exponent >= 1:
                out = left
                for _ in range(exponent - 1):
                    out = out * left
                return out
        fn = _BINARY.get(type(node.op))
        if fn is not None:
            return fn(left, _from_ast(node.right))
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id in _CALLS and len(node.args) == 2 and not node.keywords):
        return _CALLS[node.func.id](_from_ast(node.args[0]), _from_ast(node.args[1]))
    raise ValueError(f"not a dim expression: {ast.unparse(node)}")

