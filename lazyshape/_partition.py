"""Partition rules: which parameter dims are split over which mesh axes.

``ls.Partition`` maps parameter paths to *logical* axis names per dim
(``("*.q_proj.weight", ("model", None))``: rows split over ``"model"``,
columns whole), and logical names to mesh axes (``{"model": "tp"}``). From the
resolved parameter specs and a mesh shape (``{"dp": 2, "tp": 4}``) it gives
each parameter's shard shape and the bytes each device holds, before anything
exists. The engines that materialize the shards (JAX's ``NamedSharding``,
PyTorch's DTensor placements) read the same per-parameter mesh axes.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from ._dims import Dim, format_shape, prod
from ._errors import ShapeError
from ._specs import ParamSpec, itemsize

__all__ = ["Partition", "ShardSpec", "shard_params"]

#: what a rule says of one dim: a logical axis name, several (split over their
#: product), or None (not split)
AxisSpec = str | tuple[str, ...] | None


class ShardSpec(NamedTuple):
    """One parameter, partitioned: its full ``shape``, the mesh axes each dim is
    split over (``axes``: a tuple of mesh-axis names per dim, empty for a whole
    dim), the ``shard_shape`` one device holds and its ``shard_bytes``, and the
    ``rule`` that matched (None: replicated by default)."""

    shape: tuple[Dim, ...]
    axes: tuple[tuple[str, ...], ...]
    shard_shape: tuple[Dim, ...]
    shard_bytes: Dim
    rule: str | None


class Partition:
    """Ordered rules from parameter paths to logical axis names per dim.

    ``Partition([(pattern, (axis_or_None, ...)), ...], mesh_axes=None,
    strict=False)``:

    - ``pattern``: a glob over canonical parameter names (``"*.q_proj.weight"``,
      ``fnmatch`` syntax), or a compiled regular expression
      (``re.compile(r".*\\.(q|k|v)_proj\\.weight")``, matched in full);
    - one entry per dim of the parameter: a logical axis name, a tuple of names
      (split over their product) or None (whole);
    - ``mesh_axes``: ``{logical: mesh axis or tuple of mesh axes}``; a logical
      name not in it is a mesh axis of the same name;
    - the first rule matching a parameter decides; a parameter no rule matches
      is replicated, or an error with ``strict=True``.

    A rule that matches no parameter of the model (unless ``allow_unused``), a
    rule with the wrong number
    of dims for a parameter, and a dim its mesh axes do not divide are
    `ShapeError`s naming the parameter path.
    """

    def __init__(
        self,
        rules: Iterable[tuple[str | re.Pattern[str], Sequence[AxisSpec]]],
        mesh_axes: Mapping[str, str | Sequence[str]] | None = None,
        *,
        strict: bool = False,
        allow_unused: bool = False,
    ) -> None:
        self.rules: tuple[tuple[str | re.Pattern[str], tuple[AxisSpec, ...]], ...] = tuple(
            (_check_pattern(p), _check_axes(p, axes)) for p, axes in rules
        )
        self.mesh_axes: dict[str, tuple[str, ...]] = {
            k: (v,) if isinstance(v, str) else tuple(v) for k, v in (mesh_axes or {}).items()
        }
        self.strict = bool(strict)
        #: a rule set written for several models keeps rules a given model has no
        #: parameter for (`megatron`); otherwise such a rule is an error
        self.allow_unused = bool(allow_unused)

    @classmethod
    def megatron(
        cls, mesh_axes: Mapping[str, str | Sequence[str]] | None = None, *, strict: bool = False
    ) -> Partition:
        """Megatron-style tensor parallelism for the zoo's transformers (GPT-2,
        Llama, ViT, BERT) over the logical axis ``"model"``: the query, key,
        value, gate and up projections split by output rows (column
        parallel), the attention output and down projections by input columns
        (row parallel), Llama's token embeddings and head by vocabulary rows;
        norms, biases of row-parallel maps, position embeddings and the token
        embeddings of GPT-2 and BERT whole (their vocabularies, 50,257 and
        30,522 tokens, divide by no usual tensor-parallel size; add a rule
        before these to split a padded one). Weights are in torch's ``(out,
        in)`` layout."""
        col, row = ("model", None), (None, "model")
        return cls(
            [
                # Llama (transformers' names)
                ("*.self_attn.[qkv]_proj.weight", col),
                ("*.self_attn.[qkv]_proj.bias", ("model",)),
                ("*.self_attn.o_proj.weight", row),
                ("*.mlp.gate_proj.weight", col),
                ("*.mlp.up_proj.weight", col),
                ("*.mlp.down_proj.weight", row),
                ("*embed_tokens.weight", col),
                ("lm_head.weight", col),
                # BERT (transformers' names)
                ("*.attention.self.query.weight", col),
                ("*.attention.self.key.weight", col),
                ("*.attention.self.value.weight", col),
                ("*.attention.self.query.bias", ("model",)),
                ("*.attention.self.key.bias", ("model",)),
                ("*.attention.self.value.bias", ("model",)),
                ("*.attention.output.dense.weight", row),
                ("*.intermediate.dense.weight", col),
                ("*.intermediate.dense.bias", ("model",)),
                ("*.output.dense.weight", row),
                # GPT-2 and ViT: torch's packed attention and numbered MLPs
                ("*.in_proj_weight", col),
                ("*.in_proj_bias", ("model",)),
                ("*.out_proj.weight", row),
                ("*.mlp.0.weight", col),
                ("*.mlp.0.bias", ("model",)),
                ("*.mlp.3.weight", row),
                ("*.mlp.c_fc.weight", col),
                ("*.mlp.c_fc.bias", ("model",)),
                ("*.mlp.c_proj.weight", row),
            ],
            mesh_axes,
            strict=strict,
            allow_unused=True,
        )

    def match(self, name: str) -> tuple[int, tuple[AxisSpec, ...]] | None:
        """``(rule index, axes)`` of the first rule matching ``name``, or None."""
        for i, (pattern, axes) in enumerate(self.rules):
            if isinstance(pattern, str):
                if fnmatch.fnmatchcase(name, pattern):
                    return i, axes
            elif pattern.fullmatch(name):
                return i, axes
        return None

    def mesh_of(self, logical: str) -> tuple[str, ...]:
        """The mesh axes a logical axis name is split over."""
        return self.mesh_axes.get(logical, (logical,))

    def __repr__(self) -> str:
        rules = ", ".join(f"({_pattern_text(p)!r}, {axes!r})" for p, axes in self.rules)
        return f"Partition([{rules}], strict={self.strict})"


def _pattern_text(p: str | re.Pattern[str]) -> str:
    return p if isinstance(p, str) else f"re:{p.pattern}"


def _check_pattern(p: object) -> str | re.Pattern[str]:
    if isinstance(p, (str, re.Pattern)):
        return p
    raise TypeError(f"a partition rule's pattern is a glob string or a compiled regex; got {p!r}")


def _check_axes(p: object, axes: object) -> tuple[AxisSpec, ...]:
    if not isinstance(axes, (tuple, list)):
        raise TypeError(
            f"the rule {p!r} gives one axis name (or None) per dim, as a tuple; got {axes!r}"
        )
    out: list[AxisSpec] = []
    for a in axes:
        if a is None or isinstance(a, str):
            out.append(a)
        elif isinstance(a, (tuple, list)) and all(isinstance(x, str) for x in a):
            out.append(tuple(a))
        else:
            raise TypeError(f"the rule {p!r}: an axis is a name, a tuple of names or None; "
                            f"got {a!r}")
    return tuple(out)


def shard_params(
    params: Mapping[str, ParamSpec],
    partition: Partition,
    mesh_shape: Mapping[str, int],
    dtype: str = "float32",
) -> dict[str, ShardSpec]:
    """Each parameter's `ShardSpec` under ``partition`` on a mesh of
    ``mesh_shape`` (``{"dp": 2, "tp": 4}``). Raises `ShapeError` naming the
    parameter for a rule of the wrong rank, a mesh axis the mesh lacks, a dim
    its axes do not divide, a parameter no rule matches (``strict``), and a
    rule that matches no parameter."""
    for axis, size in mesh_shape.items():
        if type(size) is not int or size < 1:
            raise ValueError(f"mesh axis {axis!r} has size {size!r}; a size is an int >= 1")
    used = [False] * len(partition.rules)
    out: dict[str, ShardSpec] = {}
    for name, p in params.items():
        found = partition.match(name)
        item = itemsize(p.dtype or dtype)
        if found is None:
            if partition.strict:
                raise ShapeError("a partition rule for every parameter (strict=True)",
                                 f"no rule matches `{name}` {format_shape(p.shape)}",
                                 kind="Partition", path=name)
            whole = tuple(() for _ in p.shape)
            out[name] = ShardSpec(p.shape, whole, p.shape, prod(p.shape) * item, None)
            continue
        i, axes = found
        used[i] = True
        rule = _pattern_text(partition.rules[i][0])
        if len(axes) != len(p.shape):
            raise ShapeError(
                f"one axis (or None) per dim of `{name}` (rule {rule!r})",
                f"{len(axes)} axes {axes!r} for shape {format_shape(p.shape)}",
                kind="Partition", path=name)
        mesh: list[tuple[str, ...]] = []
        shard: list[Dim] = []
        for k, (d, a) in enumerate(zip(p.shape, axes, strict=True)):
            names = () if a is None else (a,) if isinstance(a, str) else a
            over = tuple(m for n in names for m in partition.mesh_of(n))
            for m in over:
                if m not in mesh_shape:
                    raise ShapeError(
                        f"mesh axes among {', '.join(mesh_shape) or 'none'} (rule {rule!r})",
                        f"mesh axis {m!r} for dim {k} of `{name}`",
                        kind="Partition", path=name)
            ways = 1
            for m in over:
                ways *= mesh_shape[m]
            if type(d) is int and d % ways:
                split = " x ".join(f"{m}={mesh_shape[m]}" for m in over)
                raise ShapeError(
                    f"dim {k} of `{name}` divisible by {ways} ({split}; rule {rule!r})",
                    f"shape {format_shape(p.shape)}",
                    kind="Partition", path=name)
            mesh.append(over)
            shard.append(d // ways if ways > 1 else d)
        out[name] = ShardSpec(p.shape, tuple(mesh), tuple(shard), prod(shard) * item, rule)
    unused = [_pattern_text(partition.rules[i][0]) for i, u in enumerate(used) if not u]
    if unused and not partition.allow_unused:
        raise ShapeError("every partition rule to match a parameter",
                         f"no parameter matches {', '.join(map(repr, unused))}",
                         kind="Partition", path="")
    return out

