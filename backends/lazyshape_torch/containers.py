"""The containers of a torch-built model: each nested lazyshape module is a torch
module holding its children and running them itself.

An ``ls.Sequential`` becomes a `Sequential` (an ``nn.Sequential``), a
functional ``ls.Model`` (or any other ``ls.Module``) a `Model`. Each holds the
modules of its direct children under their names, so the tree, its
``state_dict`` keys and its hooks are those of the hand-written torch model;
each runs its own sub-graph, so ``m.layer1(x)``, ``m[0](x)`` and forward hooks
on containers work as on hand-written code, and ``torch.compile`` or
``torch.export`` trace plain module calls.

How a container runs its children is a `Plan`, made by tracing the lazyshape
definition (`TreeBuilder`): one step per direct child call, reading and writing
numbered value slots, as the core's flat program does for primitive layers. A
step names its module by ``(owner, key)``, looked up when it runs, so replacing
a child (``m.fc = nn.Linear(512, 10)``) takes effect as in hand-written code.
A `Sequential` whose plan is a plain chain of its own children runs exactly
``nn.Sequential``'s loop over them.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from torch import nn

import lazyshape as ls
from lazyshape.backend import Layer, trace

from . import native

__all__ = ["Graph", "Sequential", "Model", "Plan", "TreeBuilder", "container_class", "module_at"]


def flatten(out: Any) -> list[Any]:
    """The leaves of a (nested) tuple of tensors, in order: a multi-output
    module returns torch's nesting (``(out, (h_n, c_n))``), slots hold leaves."""
    if isinstance(out, (tuple, list)):
        return [leaf for o in out for leaf in flatten(o)]
    return [out]


#: one call of a direct child: ``(owner, key, in0, ins, out0, outs)``. The module
#: is ``owner._modules[key]`` (owner None: the container itself; otherwise the
#: container where a shared layer's first call lives); ``ins`` / ``outs`` are
#: slot numbers, ``in0`` / ``out0`` the single one or -1
Step = tuple[nn.Module | None, str, int, tuple[int, ...], int, tuple[int, ...]]


class Plan:
    """How a container runs its direct children on ``n_inputs`` inputs.

    Slots ``0 .. n_inputs-1`` hold the inputs; each step's outputs fill new
    slots (a multi-output call's leaves, flattened). The container returns
    the value of its one output slot; the last call's own return value when
    that call gives every output (an LSTM's ``(out, (h, c))``); else the tuple
    of its output slots.

    A slot is let go after the last step that reads it (``dead``), as the
    locals of hand-written code are reassigned: a value no step needs any more
    is freed while the container still runs and its memory serves the next
    allocations (holding a block's every intermediate until it returns takes
    more memory, and the fresh pages for it take time)."""

    __slots__ = ("n_inputs", "steps", "outputs", "blank", "packs_last", "dead")

    def __init__(
        self, n_inputs: int, steps: tuple[Step, ...], outputs: tuple[int, ...], n_slots: int
    ) -> None:
        self.n_inputs = n_inputs
        self.steps = steps
        self.outputs = outputs
        #: the slots the steps fill, empty at the start of a run
        self.blank = (None,) * (n_slots - n_inputs)
        self.packs_last = len(outputs) > 1 and bool(steps) and steps[-1][5] == outputs
        #: per step, the slots no later step reads (nor the container returns)
        self.dead = _dead_slots(steps, outputs)

    def run(self, container: nn.Module, xs: tuple[Any, ...]) -> Any:
        """Run the steps of ``container`` on inputs ``xs``."""
        own: dict[str, Any] = container._modules
        vals = [*xs, *self.blank]
        out = None
        for (owner, key, i0, ins, o0, outs), dead in zip(self.steps, self.dead, strict=True):
            module: Any = (own if owner is None else owner._modules)[key]
            out = module(vals[i0]) if i0 >= 0 else module(*[vals[j] for j in ins])
            if o0 >= 0:
                vals[o0] = out
            else:
                for slot, leaf in zip(outs, flatten(out), strict=True):
                    vals[slot] = leaf
            for slot in dead:
                vals[slot] = None
        outputs = self.outputs
        if len(outputs) == 1:
            return vals[outputs[0]]
        if self.packs_last:
            return out
        return tuple([vals[s] for s in outputs])

    def is_chain(self) -> bool:
        """True when the plan is ``x = child(x)`` over the container's own children,
        each called once, in order (``nn.Sequential``'s loop)."""
        slot = 0
        keys = set()
        for owner, key, i0, _, o0, _ in self.steps:
            if owner is not None or key in keys or i0 != slot or o0 < 0:
                return False  # (a key seen before: a shared layer's second call)
            keys.add(key)
            slot = o0
        return self.n_inputs == 1 and self.outputs == (slot,)


def _dead_slots(steps: tuple[Step, ...], outputs: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """For each step, the slots it or an earlier step reads or fills that no later
    step reads and that are not ``outputs``: free once the step has run."""
    last: dict[int, int] = {}
    for i, (_, _, _, ins, _, outs) in enumerate(steps):
        for slot in (*ins, *outs):
            last[slot] = i
    dead: list[list[int]] = [[] for _ in steps]
    kept = set(outputs)
    for slot, i in last.items():
        if slot not in kept:
            dead[i].append(slot)
    return tuple(tuple(d) for d in dead)


class Graph(nn.Module):
    """A container running its plan (see `Plan`); the base of `Sequential`,
    `Model` and the built model itself."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        #: ``{number of inputs: plan}``
        self._ls_plans: dict[int, Plan] = {}
        #: True when the one-input plan is a plain chain of the children
        self._ls_chain = False
        #: the lazyshape kind this container stands for (its name in ``repr``)
        self._ls_kind = type(self).__name__

    def forward(self, x: Any, *more: Any) -> Any:
        """Run the children on ``x`` (and ``more`` inputs for a multi-input
        module); returns what the lazyshape module returns."""
        return self._compute(x, more)

    def _compute(self, x: Any, more: tuple[Any, ...]) -> Any:
        if self._ls_chain and not more:
            for module in self._modules.values():
                x = module(x)  # type: ignore[misc]
            return x
        plan = self._ls_plans.get(1 + len(more))
        if plan is None:
            known = ", ".join(str(n) for n in sorted(self._ls_plans)) or "none"
            raise TypeError(
                f"{self._ls_kind} was built for {known} input(s), called with {1 + len(more)}"
            )
        return plan.run(self, (x, *more))

    def train(self, mode: bool = True) -> Graph:
        """``nn.Module.train``; a native child that checks its input in training
        (BatchNorm) gets its check hook while it trains only."""
        super().train(mode)
        for child in self._modules.values():
            if child is not None and not isinstance(child, Graph):
                native.set_training_checks(child, mode)
        return self

    def _get_name(self) -> str:
        return self._ls_kind

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str,
                              *args: Any) -> None:
        # a bare-parameter child (`ls.LearnedTensor`) is saved under its own path;
        # its module holds the tensor as `native.BARE_NAME`
        for key, child in self._modules.items():
            if getattr(child, "_ls_bare", False) and prefix + key in state_dict:
                state_dict[f"{prefix}{key}.{native.BARE_NAME}"] = state_dict.pop(prefix + key)
        super()._load_from_state_dict(state_dict, prefix, *args)


class Sequential(Graph, nn.Sequential):
    """A nested ``ls.Sequential``: an ``nn.Sequential`` of its children (the
    calls of a layer shared with another place are not children: they run the
    module where its parameters live). ``seq["name"]`` indexes by name too."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._ls_chain = True  # made by hand or by slicing: nn.Sequential's loop

    def __getitem__(self, idx: Any) -> Any:
        if isinstance(idx, str):
            return self._modules[idx]
        return super().__getitem__(idx)


class Model(Graph):
    """A nested functional ``ls.Model`` (or any other ``ls.Module``): its
    children's modules, run in the order of its graph. ``block["conv1"]``,
    ``block[0]``, ``len(block)`` and iteration go over its children."""

    def __getitem__(self, key: int | str) -> nn.Module:
        if isinstance(key, str):
            return self._modules[key]  # type: ignore[return-value]
        return list(self._modules.values())[key]  # type: ignore[return-value]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[nn.Module]:
        return iter(self._modules.values())  # type: ignore[arg-type]


def container_class(layer: Layer) -> type[Graph]:
    """The container class of a nested lazyshape module."""
    return Sequential if isinstance(layer, ls.Sequential) else Model


def module_at(root: nn.Module, path: str) -> nn.Module:
    """The module at a dotted path below ``root`` (``root`` itself for ``""``)."""
    module = root
    if path:
        for seg in path.split("."):
            module = module._modules[seg]  # type: ignore[assignment]
    return module


class TreeBuilder:
    """Makes the plans of a built model by tracing its lazyshape definition,
    creating the containers (and installing ``modules``, the primitive layers'
    modules by path) on the way when given them.

    The trace visits the calls in the order of the core's flat program, with
    the same paths (``layer1.0.conv1``; ``relu@1`` for a second call), so the
    tree's children are registered in program order: the ``state_dict`` order
    of the hand-written model."""

    def __init__(self, root: Graph, modules: Mapping[str, nn.Module] | None = None) -> None:
        self.root = root
        self.modules = modules
        #: id(layer) -> the path of its first call (where its module lives)
        self.first: dict[int, str] = {}
        #: children may be set in ``_modules`` directly (what ``add_module`` does for
        #: an index), unless torch's global registration hooks must see them
        self.direct = not native.global_registration_hooks()

    def plan(self, container: Graph, layer: Layer, n_inputs: int, prefix: str) -> Plan:
        """Trace ``layer`` (the definition of ``container``, at path ``prefix``)
        on ``n_inputs`` inputs; its plan, stored on ``container``."""
        if n_inputs == 1 and type(layer) is ls.Sequential:
            chain = self._chain(container, layer, prefix)
            if chain is not None:
                return chain
        tracer = _Tracer(self, container, prefix, n_inputs)
        ins = tuple(range(n_inputs))
        if isinstance(layer, ls.Module):
            outs = trace(layer, tracer, ins, prefix)
        else:  # a layer built alone, under its name
            outs = tracer.add(layer, ins, layer.name or "")
        plan = Plan(n_inputs, tuple(tracer.steps), tuple(outs), tracer.n_slots)
        container._ls_plans[n_inputs] = plan
        if n_inputs == 1 and isinstance(container, Sequential):
            container._ls_chain = plan.is_chain()
        return plan

    def _chain(self, container: Graph, layer: ls.Sequential, prefix: str) -> Plan | None:
        """The plan of a `Sequential` of distinct primitive one-output layers
        (most models' bulk), made without tracing: ``x = child(x)`` in order.
        None for any other."""
        children = list(layer.children())
        seen = self.first
        ids = {id(child) for _, child in children}
        if len(ids) != len(children) or not ids.isdisjoint(seen):
            return None
        for _, child in children:
            if isinstance(child, ls.Module) or child.num_outputs != 1:
                return None
        modules = self.modules
        steps: list[Step] = []
        for slot, (key, child) in enumerate(children):
            path = prefix + key
            seen[id(child)] = path
            if modules is not None:
                self.register(container, key, modules[path])
            steps.append((None, key, slot, (slot,), slot + 1, (slot + 1,)))
        n = len(steps)
        plan = Plan(1, tuple(steps), (n,), n + 1)
        container._ls_plans[1] = plan
        if isinstance(container, Sequential):
            container._ls_chain = True
        return plan

    def container(self, parent: nn.Module, key: str, layer: Layer) -> Graph:
        """Child ``key`` of ``parent``: the container of the nested module
        ``layer`` (its first call), made and registered if it isn't there yet."""
        found = parent._modules.get(key)
        if isinstance(found, Graph):
            return found
        made = container_class(layer)()
        made._ls_kind = layer.kind
        made.train(self.root.training)
        self.register(parent, key, made)
        return made

    def register(self, parent: nn.Module, key: str, module: nn.Module) -> None:
        """Register ``module`` as child ``key`` of ``parent``."""
        if self.direct and key.isdecimal():  # an index is never an attribute name
            parent._modules[key] = module
            return
        try:
            parent.add_module(key, module)
        except KeyError as e:
            raise ValueError(
                f"the node '{key}' can't be a child of a torch module ({e}); "
                "give the layer another name="
            ) from e


class _Tracer:
    """Takes one container's direct child calls from the core's `trace` (its
    ``Tracer`` protocol: ``add(layer, input values, path) -> output values``),
    values being slot numbers of the container's plan; nested containers come
    as calls of their own (``opaque``)."""

    opaque = True

    def __init__(self, builder: TreeBuilder, container: Graph, prefix: str, n_inputs: int) -> None:
        self.builder = builder
        self.container = container
        #: the container's own path, and the length of its children's prefix
        self.path = prefix[:-1]
        self.cut = len(prefix)
        self.steps: list[Step] = []
        self.n_slots = n_inputs

    def add(self, layer: Layer, ins: tuple[int, ...], path: str) -> tuple[int, ...]:
        b = self.builder
        first = b.first.setdefault(id(layer), path)
        owner: nn.Module | None = None
        if first == path:  # the layer's first call: its module is a child here
            key = path[self.cut:]
        else:  # a shared layer's later call: its module lives where the first is
            owner_path, _, key = first.rpartition(".")
            if owner_path != self.path:
                owner = module_at(b.root, owner_path)
        if isinstance(layer, ls.Module):
            sub = (
                b.container(self.container, key, layer) if first == path
                else module_at(b.root, first)
            )
            assert isinstance(sub, Graph)
            plan = sub._ls_plans.get(len(ins)) or b.plan(sub, layer, len(ins), first + ".")
            n_out = len(plan.outputs)
        else:
            n_out = layer.num_outputs
            if b.modules is not None and first == path:
                b.register(self.container, key, b.modules[path])
        start = self.n_slots
        self.n_slots = start + n_out
        outs = (start,) if n_out == 1 else tuple(range(start, start + n_out))
        self.steps.append((
            owner, key, ins[0] if len(ins) == 1 else -1, ins, start if n_out == 1 else -1, outs,
        ))
        return outs
