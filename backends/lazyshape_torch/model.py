"""The torch built model: `TorchModel`, a real ``torch.nn.Module``.

Its module tree mirrors the canonical parameter paths (node ``"0"`` is child
``"0"``; ``"encoder.fc"`` is child ``"fc"`` of container ``"encoder"``), so
``state_dict()`` keys are the canonical names, and those of the hand-written
``nn.Sequential`` for a `Sequential`. Before materialization each node is a
`Pending` placeholder holding torch's own ``UninitializedParameter``s; on the
first forward (or `materialize`, or `load_state_dict`) each node becomes its
native torch module (``nn.Linear(20, 256)``), or a `LayerModule` for layers
with no native module.

The placeholders are made on demand: a model of many layers that is
materialized before anyone looks at its children never builds them (they cost
more than the native modules). Until then the model has no ``_modules``
entry in its ``__dict__``; the first access to it (``m[0]``, ``repr``,
``state_dict()``, ``children()``, assigning a child, ...) goes through
``__getattr__``, which installs them.

Resolution, the shape-change policy, placeholders' partial shapes, checkpoint
checks and portable values all come from the core's `Runtime`.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parameter import UninitializedBuffer, UninitializedParameter

from lazyshape import Module
from lazyshape.backend import (
    BuildConfig,
    BuiltModel,
    Dim,
    Inference,
    Layer,
    LayerRecord,
    ParamSpec,
    Runtime,
    ShapeError,
    Step,
    chain_steps,
    format_hparam,
    format_shape,
    normalize_dtype,
    pack_outputs,
    run_steps,
)

from . import init, native
from . import ops as ops  # importing the ops registers every family's native modules

__all__ = ["TorchModel", "Pending", "PartialShape"]


class PartialShape(tuple):  # type: ignore[type-arg]
    """A parameter shape that may still hold unknown dims; prints as ``(256, ?)``."""

    def __repr__(self) -> str:
        return format_shape(tuple(self))


def _is_lazy(t: Any) -> bool:
    return isinstance(t, (UninitializedParameter, UninitializedBuffer))


def _save_lazy(module: nn.Module, destination: Any, prefix: str, keep_vars: bool) -> None:
    # nn.Module._save_to_state_dict detaches, which an UninitializedParameter
    # refuses; save placeholders as they are (as torch's LazyModuleMixin does).
    for name, p in module._parameters.items():
        if p is not None:
            destination[prefix + name] = p if keep_vars or _is_lazy(p) else p.detach()
    for name, b in module._buffers.items():
        if b is not None and name not in module._non_persistent_buffers_set:
            destination[prefix + name] = b if keep_vars or _is_lazy(b) else b.detach()


def _owner(module: nn.Module, local: str, create: bool = False) -> tuple[nn.Module, str]:
    """The submodule holding a possibly dotted local name (``out_proj.weight`` is
    ``weight`` of child ``out_proj``) and the leaf name; ``create`` adds missing
    children (placeholder containers)."""
    *segs, leaf = local.split(".")
    for seg in segs:
        child = module._modules.get(seg)
        if child is None:
            if not create:
                raise AttributeError(f"{type(module).__name__} has no submodule {seg!r}")
            child = _PendingChild()
            module.add_module(seg, child)
        module = child
    return module, leaf


def _tensor_at(module: nn.Module, local: str) -> Any:
    """The parameter or buffer registered under a possibly dotted local name
    (None when there is none)."""
    try:
        owner, leaf = _owner(module, local)
    except AttributeError:
        return None
    t = owner._parameters.get(leaf)
    return owner._buffers.get(leaf) if t is None else t


def _adopt(pending: Pending, module: nn.Module) -> None:
    """Make the placeholders of ``pending`` the tensors of ``module``, its native
    replacement: whoever holds a placeholder (an optimizer built before the
    first forward, ``parameters()``, ``state_dict(keep_vars=True)``) holds the
    real tensor afterwards. Each placeholder is materialized in place with the
    new tensor's data, as torch's ``UninitializedParameter.materialize`` does
    for its lazy modules, and takes the new tensor's place in ``module``. A
    placeholder the user replaced (no longer uninitialized) is left alone."""
    for local in pending.partial_shapes:
        lazy = _tensor_at(pending, local)
        if not _is_lazy(lazy):
            continue
        owner, leaf = _owner(module, local)
        table = owner._parameters if leaf in owner._parameters else owner._buffers
        new = table.get(leaf)
        if new is None:
            continue
        lazy.data = new.data
        lazy.__class__ = lazy.cls_to_become
        lazy.__dict__.pop("partial_shape", None)  # (a moved buffer is a new tensor)
        table[leaf] = lazy


def _hparams_text(hparams: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={format_hparam(v)}" for k, v in hparams.items())


class Pending(nn.Module):
    """A node not materialized yet: ``UninitializedParameter``s (buffers:
    ``UninitializedBuffer``s) under the layer's local names, each with its
    partial shape (``partial_shapes``, and ``.partial_shape`` on the parameter).
    ``repr`` shows unknown sizes as ``?``."""

    def __init__(
        self,
        layer: Layer,
        specs: Mapping[str, ParamSpec],
        hparams: Mapping[str, Any],
        path: str,
        device: Any,
        dtype: str,
    ) -> None:
        super().__init__()
        self.layer = layer
        self.path = path
        self._hparams = dict(hparams)
        #: ``{local name: shape}``, unknown dims printing as ``?``
        self.partial_shapes: dict[str, PartialShape] = {}
        #: the local names in the model's dtype (``ParamSpec.dtype`` None, filled in)
        self.model_dtyped = [
            local for local, spec in specs.items() if spec.dtype in (None, dtype)
        ]
        for local, spec in specs.items():
            shape = PartialShape(spec.shape)
            dt = init.torch_dtype(spec.dtype or dtype)
            t: Any
            owner, leaf = _owner(self, local, create=True)
            if spec.trainable:
                t = UninitializedParameter(requires_grad=True, device=device, dtype=dt)  # type: ignore[call-arg]
                owner.register_parameter(leaf, t)
            else:
                t = UninitializedBuffer(device=device, dtype=dt)  # type: ignore[call-arg]
                owner.register_buffer(leaf, t)
            t.partial_shape = shape
            self.partial_shapes[local] = shape

    def placement(self) -> tuple[str, torch.device] | None:
        """The dtype (canonical name) and device of this node's placeholders that
        follow the model's dtype, as the user left them (``m.half()``,
        ``m.to("meta")`` move placeholders as they move any tensor); None when
        the node has none."""
        for local in self.model_dtyped:
            t = _tensor_at(self, local)
            if isinstance(t, torch.Tensor):
                return normalize_dtype(t.dtype), t.device
        return None

    def forward(self, *xs: Any) -> Any:
        raise RuntimeError(
            f"{self.layer.kind} at '{self.path}' is not materialized; call the whole "
            "model, or its materialize(...) / load_state_dict(...), first"
        )

    def _get_name(self) -> str:
        return self.layer.kind

    def extra_repr(self) -> str:
        return _hparams_text(self._hparams)

    def _save_to_state_dict(self, destination: Any, prefix: str, keep_vars: bool) -> None:
        _save_lazy(self, destination, prefix, keep_vars)


class _PendingChild(nn.Module):
    """A submodule of a `Pending` node, for dotted local names (``out_proj.weight``)."""

    def _save_to_state_dict(self, destination: Any, prefix: str, keep_vars: bool) -> None:
        _save_lazy(self, destination, prefix, keep_vars)


class _Container(nn.Module):
    """An intermediate segment of parameter paths (a nested lazyshape module)."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self._kind = kind

    def _get_name(self) -> str:
        return self._kind

    def forward(self, *xs: Any) -> Any:
        raise RuntimeError(f"{self._kind} containers of a built model run through the whole model")

    def __getitem__(self, key: int | str) -> nn.Module:
        return _child(self, key)  # type: ignore[no-any-return]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[nn.Module]:
        return iter(self._modules.values())  # type: ignore[arg-type]


_CONTAINER_ATTRS: list[frozenset[str]] = []


def _container_attrs() -> frozenset[str]:
    """The instance attributes of a `_Container` (names its children can't take)."""
    if not _CONTAINER_ATTRS:
        _CONTAINER_ATTRS.append(frozenset(_Container("Module").__dict__))
    return _CONTAINER_ATTRS[0]


def _child(module: nn.Module, key: int | str | slice) -> Any:
    if isinstance(key, str):
        return module._modules[key]
    items = list(module._modules.items())
    if isinstance(key, slice):
        return nn.Sequential(OrderedDict(items[key]))  # type: ignore[arg-type]
    return items[key][1]


def _module_kinds(layer: Layer, prefix: str = "") -> dict[str, str]:
    """``{path prefix: kind}`` of the nested modules of ``layer``."""
    out: dict[str, str] = {}
    if isinstance(layer, Module):
        for key, child in layer.children():
            path = f"{prefix}.{key}" if prefix else key
            if isinstance(child, Module):
                out[path] = child.kind
                out.update(_module_kinds(child, path))
    return out


#: TorchModel's own attributes: setting one doesn't install the placeholders
_INTERNAL = frozenset({
    "_ls_model", "_config", "_rt", "_dtype", "_device", "_inference", "_ready1", "_ready",
    "_rng_state", "_kinds_cache", "_program", "_owner", "_node_mods", "_root",
    "_chain", "_steps", "training",
})


class TorchModel(nn.Module, BuiltModel):
    """A lazyshape model built on torch: a ``torch.nn.Module``.

    ``m(x)`` resolves (a `ShapeError` before any compute), materializes on the
    first call, and runs; ``m[0]``, ``m["fc"]``, ``len(m)`` and iteration work
    on the top-level children as on ``nn.Sequential``. Parameters follow
    torch's RNG in torch's order (``rng="native"``), or the portable streams
    (``rng="portable"``)."""

    def __init__(self, model: Layer, config: BuildConfig) -> None:
        super().__init__()
        rt = Runtime(model, config)
        self._ls_model = model
        self._config = config
        self._rt = rt
        self._dtype = config.dtype
        self._device = None if config.device is None else torch.device(config.device)
        self._inference: Inference | None = None
        #: input signatures checked against the current parameters: ``{shape: dtype}``
        #: for one input (the hot path: no tuple to build), ``{((shape, dtype), ...)}``
        #: for several
        self._ready1: dict[Any, Any] = {}
        self._ready: set[Any] = set()
        self._rng_state: Any = None
        self._kinds_cache: dict[str, str] | None = None
        program = rt.program
        self._program = program
        owner: dict[str, int] = {}
        self._owner: list[int] = [
            owner.setdefault(node.param_path, i) for i, node in enumerate(program.nodes)
        ]
        self._node_mods: list[Any] = [None] * len(program.nodes)
        self._root: nn.Module | None = None
        self._chain: tuple[nn.Module, ...] | None = None
        self._steps: list[Step] | None = None
        nodes = program.nodes
        self._check_child_names()
        if len(nodes) == 1 and not nodes[0].path:
            # a single layer built alone: its placeholders are the model's own
            # parameters (one node: cheap), made now
            self._install_placeholders()
        else:
            del self.__dict__["_modules"]  # installed on first access: see __getattr__

    # -- module tree ----------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        d = self.__dict__
        if "_modules" not in d and "_rt" in d:  # the first look at the module tree
            try:
                self._install_placeholders()
            except AttributeError as e:  # not "no such attribute": a failure
                raise RuntimeError(f"installing the placeholders failed: {e!r}") from e
            if name == "_modules":
                return d["_modules"]
        return super().__getattr__(name)

    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__
        if name not in _INTERNAL and "_modules" not in d and "_rt" in d:
            self._install_placeholders()  # a child, parameter or buffer set by a user
        super().__setattr__(name, value)

    def _check_child_names(self) -> None:
        """Raise now (not when the tree is built) for a node whose path can't be a
        torch child name (an attribute of the module: ``forward``, ``training``)."""
        for node in self._program.nodes:
            path = node.path
            if node.shared or path.isdecimal() or not path:
                continue
            for k, seg in enumerate(path.split(".")):
                if seg.isdecimal():
                    continue
                if k == 0:
                    taken = seg in self.__dict__ or hasattr(TorchModel, seg)
                else:
                    taken = seg in _container_attrs() or hasattr(_Container, seg)
                if taken or not seg:
                    e = KeyError(
                        f"attribute '{seg}' already exists" if seg
                        else 'module name can\'t be empty string ""'
                    )
                    raise ValueError(
                        f"the node '{path}' can't be a child of a torch module ({e}); "
                        "give the layer another name="
                    )

    @property
    def _kinds(self) -> dict[str, str]:
        """``{path prefix: kind}`` of the nested lazyshape modules."""
        if self._kinds_cache is None:
            self._kinds_cache = _module_kinds(self._ls_model)
        return self._kinds_cache

    def _install_placeholders(self) -> None:
        """Install a `Pending` placeholder per node (the model is not materialized)."""
        d = self.__dict__
        lazy = "_modules" not in d
        if lazy:
            d["_modules"] = {}
        try:
            rt = self._rt
            inf = rt.partial()
            records = inf.layers if inf is not None else None
            mods: list[Any] = []
            for i, node in enumerate(self._program.nodes):
                if node.shared:
                    mods.append(mods[self._owner[i]])
                    continue
                if records is not None:  # the node's record: partial shapes, sizes known so far
                    rec = records[i]
                    hp, local = rec.resolved, rec.params
                else:
                    hp, local = node.layer.hparams(), {}
                mod = Pending(node.layer, local, hp, node.path, self._device, self._dtype)
                mods.append(mod)
                self._install(node.path, mod)
        except BaseException:
            if lazy:  # no half-built tree: the next look tries again
                del d["_modules"]
            raise
        d["_node_mods"] = mods
        self._refresh()

    def _install(self, path: str, mod: nn.Module) -> None:
        if mod.training is not self.training:
            mod.train(self.training)  # a module created after .eval() is in eval mode too
        if not path:  # a single layer built alone: its parameters are the model's
            object.__setattr__(self, "_root", mod)  # not a child: no prefix in state_dict
            self._parameters.clear()
            self._parameters.update(mod._parameters)
            self._buffers.clear()
            self._buffers.update(mod._buffers)
            self._modules.clear()  # submodules of dotted local names (out_proj.weight)
            self._modules.update(mod._modules)
            return
        if path.isdecimal() and not native.global_registration_hooks():
            # a Sequential's index: never an attribute name: what add_module does
            self.__dict__["_modules"][path] = mod
            return
        *parents, leaf = path.split(".")
        parent: nn.Module = self
        prefix = ""
        for seg in parents:
            prefix = f"{prefix}.{seg}" if prefix else seg
            child = parent._modules.get(seg)
            if child is None:
                child = _Container(self._kinds.get(prefix, "Module"))
                parent.add_module(seg, child)
            parent = child
        if leaf in parent._modules:
            parent._modules[leaf] = mod
        else:
            try:
                parent.add_module(leaf, mod)
            except KeyError as e:
                raise ValueError(
                    f"the node '{path}' can't be a child of a torch module ({e}); "
                    "give the layer another name="
                ) from e

    def _refresh(self) -> None:
        d = self.__dict__
        mods = [d["_node_mods"][o] for o in self._owner]
        d["_node_mods"] = mods
        d["_steps"] = None  # built by the first _run (a chain's forward never needs them)
        chain = chain_steps(self._program, mods)  # a Sequential: the nn.Sequential loop
        d["_chain"] = None if chain is None else tuple(chain)
        self._ready1.clear()
        self._ready.clear()

    # -- resolution and materialization --------------------------------------

    def _follow_placeholders(self) -> None:
        """Before materialization, take the dtype and device the placeholders were
        moved to (``m.half()``, ``m.to(torch.float64)``, ``m.to("meta")``): the
        model resolves and materializes in them, as torch's lazy modules
        materialize in their parameters' current dtype and device."""
        if self._rt.initialized or "_modules" not in self.__dict__:
            return
        seen = {p for m in self._node_mods if isinstance(m, Pending) and (p := m.placement())}
        if not seen:
            return
        if len(seen) > 1:
            moves = ", ".join(sorted(f"{dt} on {dev}" for dt, dev in seen))
            raise ValueError(
                f"the placeholders of this {self._ls_model.kind} were moved to different "
                f"dtypes or devices ({moves}); move the whole model (m.to(...)) "
                "before the first forward"
            )
        ((dtype, moved_to),) = seen
        device: torch.device | None = moved_to
        if moved_to == torch.get_default_device() and self._device is None:
            device = None  # where new tensors go anyway
        if dtype != self._dtype or device != self._device:
            self._dtype = dtype
            self._device = device
            self._rt.moved(dtype, device)
            self._config = self._rt.config

    def _prepare(self, xs: tuple[Any, ...]) -> None:
        self._follow_placeholders()
        inf, todo = self._rt.resolve(xs)  # ShapeError here: nothing changed
        if self._rt.program is not self._program:
            # a layer or Sequential called with another number of inputs: the
            # same nodes, wired to other input slots
            self._program = self._rt.program
            self._refresh()
        if todo or not self._rt.initialized:
            self._allocate(inf, todo, "portable" if self._config.rng == "portable" else "native")
        self._inference = inf

    def _allocate(self, inf: Inference, todo: list[str], mode: str) -> None:
        """(Re)create the nodes owning a parameter in ``todo`` (every node when
        uninitialized), each from its record in ``inf``. ``mode``: ``"native"``
        (torch's RNG), ``"portable"`` (the portable streams) or ``"empty"``
        (values come from a checkpoint)."""
        rt = self._rt
        specs = inf.params
        d = self.__dict__
        if "_modules" not in d:  # no placeholders were installed: build the tree directly
            d["_modules"] = {}
            try:
                self._allocate(inf, todo, mode)
            except BaseException:  # back to no tree (the placeholders on the next look)
                del d["_modules"]
                d["_node_mods"] = [None] * len(self._program.nodes)
                raise
            return
        program = self._program
        records = inf.layers
        first = not rt.initialized
        wanted = set() if first else set(todo)  # (the first time: every parameter)
        mods = self._node_mods
        device = self._device
        modules = d["_modules"]
        training = self.training
        direct = not native.global_registration_hooks()
        dtype = init.torch_dtype(self._dtype)
        native_module = native.native_module
        no_keep: dict[str, torch.Tensor] = {}
        with self._draws(mode), native.stamping():
            for i, (node, rec) in enumerate(zip(program.nodes, records, strict=True)):
                if node.shared:
                    continue
                local = rec.params
                current = mods[i]
                keep = no_keep
                if not first and current is not None and not isinstance(current, Pending):
                    names = [(k, rec.prefix + k) for k in local]
                    if not any(n in wanted for _, n in names):
                        continue
                    # parameters whose spec didn't change keep their values
                    keep = {k: getattr(*_owner(current, k)) for k, n in names if n not in wanted}
                mod = native_module(rec, dtype=dtype, device=device)
                if mod is None:
                    mod = self._layer_module(rec, mode, keep)
                else:
                    for k, t in keep.items():
                        setattr(*_owner(mod, k), t)
                if isinstance(current, Pending):
                    _adopt(current, mod)  # whoever holds a placeholder holds the tensor
                mods[i] = mod
                path = node.path
                if direct and mod.training is training and path.isdecimal():
                    modules[path] = mod  # a Sequential's index: what _install does
                else:
                    self._install(path, mod)
            if mode == "portable":
                fill = [n for n in specs if n in wanted or first]
                owners = {
                    rec.prefix + k: (mod, k)
                    for rec, mod in zip(records, mods, strict=True)
                    if not rec.shared
                    for k in rec.params
                }
                with torch.no_grad():
                    for name, value in rt.portable_values(specs, fill):
                        t = getattr(*_owner(*owners[name]))
                        t.copy_(init.from_numpy(value, normalize_dtype(t.dtype), t.device))
        rt.commit(inf)
        self._refresh()

    def _layer_module(
        self, rec: LayerRecord, mode: str, keep: Mapping[str, torch.Tensor]
    ) -> nn.Module:
        """A `LayerModule` for a layer with no native module: its parameters
        drawn with ``torch.nn.init`` (``mode="native"``) or left empty."""
        tensors: dict[str, torch.Tensor] = {}
        for k, spec in rec.params.items():
            if k in keep:
                tensors[k] = keep[k]
                continue
            shape = tuple(int(d) for d in spec.shape)
            dt = spec.dtype or self._dtype
            if mode == "native":
                with self._device or contextlib.nullcontext():
                    tensors[k] = init.sample(
                        spec.init.primitive(shape), shape, dt, None, rec.prefix + k
                    )
            else:
                tensors[k] = torch.empty(shape, dtype=init.torch_dtype(dt), device=self._device)
        trainable = {k: s.trainable for k, s in rec.params.items()}
        return native.LayerModule(rec.layer, tensors, trainable, rec.resolved, rec.path)

    @contextlib.contextmanager
    def _draws(self, mode: str) -> Iterator[None]:
        """Where the initial draws happen. Native without a seed: torch's global
        RNG, in program order. Native with a seed: a private stream continuing
        across materializations (the first starts at ``manual_seed(seed)``),
        the global RNG untouched. Otherwise no draws count: the global RNG is
        restored afterwards."""
        if mode == "native" and self._config.seed is None:
            yield
            return
        dev = self._device
        cuda = [dev.index or 0] if dev is not None and dev.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            if mode == "native":
                if self._rng_state is None:
                    torch.manual_seed(self._config.seed)
                else:
                    torch.set_rng_state(self._rng_state[0])
                    for d, s in zip(cuda, self._rng_state[1], strict=True):
                        torch.cuda.set_rng_state(s, d)
            yield
            if mode == "native":
                self._rng_state = (
                    torch.get_rng_state(),
                    [torch.cuda.get_rng_state(d) for d in cuda],
                )

    # -- the public surface -------------------------------------------------

    def forward(self, *xs: Any) -> Any:
        """Forward: ``m(x)``; several inputs for a multi-input model."""
        if len(xs) == 1:  # the hot path: as cheap as nn.Sequential plus one dict lookup
            x = xs[0]
            try:
                hit = self._ready1.get(x.shape) is x.dtype
            except AttributeError:
                hit = False
            if not hit:
                self._prepare(xs)
                if isinstance(x, torch.Tensor):
                    self._ready1[x.shape] = x.dtype
            chain = self._chain
            if chain is not None:
                for mod in chain:
                    x = mod(x)
                return x
        else:
            try:
                key: Any = tuple([(x.shape, x.dtype) for x in xs])
            except AttributeError:
                key = None
            if key is None or key not in self._ready:
                self._prepare(xs)
                if key is not None:
                    self._ready.add(key)
        return self._run(xs)

    def _run(self, xs: tuple[Any, ...]) -> Any:
        """Run the program (any graph), each node's module a step."""
        steps = self._steps
        if steps is None:
            steps = self._steps = [
                m if len(node.outs) == 1 else _flat_outputs(m)
                for m, node in zip(self._node_mods, self._program.nodes, strict=True)
            ]
        return pack_outputs(self._program, run_steps(self._program, steps, xs))

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> Any:
        """Load tensors or NumPy arrays (canonical names). An uninitialized model
        is materialized from the state's shapes first. A mismatch raises
        `ShapeError` and changes nothing."""
        tensors = {n: _as_tensor(v) for n, v in state_dict.items()}
        shapes = {n: tuple(t.shape) for n, t in tensors.items()}
        rt = self._rt
        self._follow_placeholders()
        if strict or not rt.initialized:
            inf = rt.check_state(shapes)
            if not rt.initialized:
                self._allocate(inf, list(inf.params), "empty")
        else:
            _check_subset(rt.specs or {}, shapes, self._ls_model.kind)
        return super().load_state_dict(tensors, strict=strict, assign=assign)

    def _load_from_state_dict(
        self,
        state_dict: Any,
        prefix: str,
        local_metadata: Any,
        strict: bool,
        missing_keys: Any,
        unexpected_keys: Any,
        error_msgs: Any,
    ) -> None:
        # Reached directly when this model sits inside a bigger nn.Module.
        if not self._rt.initialized:
            self._follow_placeholders()
            shapes = {
                k[len(prefix) :]: tuple(v.shape)
                for k, v in state_dict.items()
                if k.startswith(prefix)
            }
            inf = self._rt.check_state(shapes)
            self._allocate(inf, list(inf.params), "empty")
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def _save_to_state_dict(self, destination: Any, prefix: str, keep_vars: bool) -> None:
        _save_lazy(self, destination, prefix, keep_vars)

    def train(self, mode: bool = True) -> TorchModel:
        if "_modules" not in self.__dict__:
            # no module tree yet: the modules made later take self.training
            if not isinstance(mode, bool):
                raise ValueError("training mode is expected to be boolean")
            self.training = mode
            return self
        super().train(mode)
        if self._root is not None:
            self._root.train(mode)
        return self

    def __getitem__(self, key: int | str | slice) -> Any:
        return _child(self, key)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[nn.Module]:
        return iter(self._modules.values())  # type: ignore[arg-type]

    def _get_name(self) -> str:
        return self._ls_model.kind

    def extra_repr(self) -> str:
        return self._root.extra_repr() if self._root is not None else ""


def _flatten(out: Any) -> list[Any]:
    """The leaves of a (nested) tuple of tensors, in order."""
    if isinstance(out, (tuple, list)):
        return [leaf for o in out for leaf in _flatten(o)]
    return [out]


def _flat_outputs(mod: nn.Module) -> Step:
    """The step of a multi-output node: a native module returns torch's nesting
    (``(out, (h_n, c_n))``), the program's slots take its leaves."""
    return lambda *xs: tuple(_flatten(mod(*xs)))


def _as_tensor(value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    arr = np.asarray(value)
    return init.from_numpy(arr, normalize_dtype(arr.dtype), None)  # type: ignore[no-any-return]


def _check_subset(
    specs: Mapping[str, ParamSpec], shapes: Mapping[str, tuple[int, ...]], kind: str
) -> dict[str, ParamSpec]:
    """``strict=False`` on a materialized model: the names present must fit."""
    for name, got in shapes.items():
        spec = specs.get(name)
        if spec is not None and tuple(spec.shape) != got:
            shape: tuple[Dim, ...] = spec.shape
            raise ShapeError(
                f"`{name}` of shape {format_shape(shape)}",
                f"shape {format_shape(got)}",
                kind=kind,
                path=name.rpartition(".")[0],
            )
    return dict(specs)
