"""The torch built model: a real ``torch.nn.Module`` tree.

``ls.build(net, "torch")`` returns a `Sequential` (an ``nn.Sequential``) for an
``ls.Sequential``, a `Model` for a functional ``ls.Model``, a `TorchModel` for
a layer built alone. Its module tree mirrors the canonical parameter paths:
node ``"0"`` is child ``"0"``; ``"encoder.fc"`` is child ``"fc"`` of the
container ``"encoder"``, itself a torch module (`containers.Sequential`,
`containers.Model`) that runs its own children. So ``state_dict()`` keys are
those of the hand-written model, ``m.encoder(x)`` runs the encoder alone, and
hooks, torchinfo, torchview, deepcopy and pickle see an ordinary tree.

Before materialization each node is a `Pending` placeholder holding torch's own
``UninitializedParameter``\\ s; on the first forward (or `materialize`, or
`load_state_dict`) each placeholder becomes, in place, its native torch module
(``nn.Linear(20, 256)``), or a `LayerModule` for layers with no native module:
whoever holds a placeholder module or tensor (hooks, optimizers) holds the
real one afterwards, as with torch's lazy modules.

The placeholders are made on demand: a model of many layers that is
materialized before anyone looks at its children never builds them (they cost
more than the native modules). Until then the model has no ``_modules``
entry in its ``__dict__``; the first access to it (``m[0]``, ``repr``,
``state_dict()``, ``children()``, assigning a child, ...) goes through
``__getattr__``, which installs them.

The forward checks its inputs in eager mode only: a new input signature is
resolved by the core's `Runtime` (a `ShapeError` before any computation), a
known one costs a dict lookup. Under ``torch.compile``, ``torch.export`` or
FX tracing the forward is the containers' module calls and nothing else.

The model's dtype and device follow its tensors: moved before
materialization, the placeholders say where to materialize; moved after
(``m.double()``, ``m.to("meta")``, ``m.to_empty(...)``, any ``_apply``, or
``load_state_dict(..., assign=True)``), the tensors say what later inputs
must be. ``copy.deepcopy`` and pickling copy the tree as torch does, and the
lazyshape side (definition, materialized specs) as one blob (`_Definition`).
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.fx import Proxy
from torch.fx.proxy import TraceError
from torch.nn.parameter import UninitializedBuffer, UninitializedParameter

import lazyshape as ls
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
    format_hparam,
    format_shape,
    normalize_dtype,
)

from . import containers, init, native
from . import ops as ops  # importing the ops registers every family's native modules
from .inplace import inplace_layers

#: (`Sequential` and `Model` derive from `TorchModel`: the one built-model class the
#: backend protocol tests look for)
__all__ = ["TorchModel", "Pending", "PartialShape", "build_model"]

#: (non-strict export and FX run the forward in Python on symbolic shapes: the
#: eager checks step aside for those, see `_traced`)
_is_dynamo_compiling = native.is_dynamo_compiling
_is_exporting = getattr(torch.compiler, "is_exporting", lambda: False)


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
    children (placeholder containers). A bare-parameter node's one local name,
    ``""``, is its module's `native.BARE_NAME`."""
    if not local:
        return module, native.BARE_NAME
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
    child = owner._modules.get(leaf)
    if t is None and child is not None and getattr(child, "_ls_bare", False):
        return child._parameters.get(native.BARE_NAME)  # (a canonical name)
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
        lazy.__dict__.pop("partial_shape", None)
        table[leaf] = lazy


#: an ``nn.Module``'s hook tables: a placeholder's carry over to its native module
_HOOK_TABLES = (
    "_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
    "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_backward_hooks",
    "_backward_pre_hooks", "_state_dict_hooks", "_state_dict_pre_hooks",
    "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks",
)


def _become(pending: Pending, module: nn.Module) -> None:
    """Turn the placeholder ``pending`` into ``module`` in place (as torch's lazy
    modules become their ``cls_to_become``): whoever holds the placeholder
    module holds the native one, and the hooks registered on it (torchinfo's,
    a user's) stay, after the native module's own. ``_adopt`` first."""
    kept = pending.__dict__
    state = dict(module.__dict__)
    for name in _HOOK_TABLES:
        hooks = kept.get(name)
        if hooks is None:
            continue
        mine = list(hooks.items())
        hooks.clear()  # the same dict: the RemovableHandles given out stay valid
        hooks.update(state.get(name) or {})
        hooks.update(mine)
        state[name] = hooks
    if kept.get("_is_full_backward_hook") is not None:
        state["_is_full_backward_hook"] = kept["_is_full_backward_hook"]
    training = pending.training
    object.__setattr__(pending, "__class__", type(module))
    kept.clear()
    kept.update(state)
    if pending.training is not training:
        pending.train(training)


def _hparams_text(hparams: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={format_hparam(v)}" for k, v in hparams.items())


class _LazyTensor:
    """A placeholder tensor as copied and pickled: torch reduces an uninitialized
    tensor to its class alone (dtype and device lost) and can't deep-copy an
    ``UninitializedBuffer``."""

    __slots__ = ("trainable", "requires_grad", "dtype", "device", "partial_shape")

    def __init__(self, t: Any) -> None:
        self.trainable = isinstance(t, UninitializedParameter)
        self.requires_grad = t.requires_grad
        self.dtype = t.dtype
        self.device = t.device
        self.partial_shape = t.__dict__.get("partial_shape")

    def make(self) -> Any:
        t: Any
        if self.trainable:
            t = UninitializedParameter(self.requires_grad, self.device, self.dtype)  # type: ignore[call-arg]
        else:
            t = UninitializedBuffer(device=self.device, dtype=self.dtype)  # type: ignore[call-arg]
        if self.partial_shape is not None:
            t.partial_shape = self.partial_shape
        return t


class _LazyState(nn.Module):
    """A module holding placeholders: saved, copied and pickled as they are."""

    def _save_to_state_dict(self, destination: Any, prefix: str, keep_vars: bool) -> None:
        _save_lazy(self, destination, prefix, keep_vars)

    def __getstate__(self) -> dict[str, Any]:
        state: dict[str, Any] = super().__getstate__()  # type: ignore[no-untyped-call]
        for table in ("_parameters", "_buffers"):
            state[table] = {
                k: _LazyTensor(t) if _is_lazy(t) else t for k, t in state[table].items()
            }
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        for table in ("_parameters", "_buffers"):
            state[table] = {
                k: t.make() if isinstance(t, _LazyTensor) else t for k, t in state[table].items()
            }
        super().__setstate__(state)  # type: ignore[no-untyped-call]


class Pending(_LazyState):
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
        if layer.bare_param:
            native.bare_param_hooks(self)
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

    def _apply(self, fn: Any, recurse: bool = True) -> Pending:
        super()._apply(fn, recurse)  # type: ignore[no-untyped-call]
        # a moved buffer is a new tensor: it gets its partial shape again
        for local, shape in self.partial_shapes.items():
            t = _tensor_at(self, local)
            if _is_lazy(t):
                t.partial_shape = shape
        return self

    def forward(self, *xs: Any) -> Any:
        raise RuntimeError(
            f"{self.layer.kind} at '{self.path}' is not materialized; call the whole "
            "model, or its materialize(...) / load_state_dict(...), first"
        )

    def _get_name(self) -> str:
        return self.layer.kind

    def extra_repr(self) -> str:
        return _hparams_text(self._hparams)


class _PendingChild(_LazyState):
    """A submodule of a `Pending` node, for dotted local names (``out_proj.weight``)."""


_INSTANCE_ATTRS: dict[type[nn.Module], frozenset[str]] = {}


def _taken(cls: type[nn.Module], name: str) -> bool:
    """Whether ``name`` is an attribute of ``cls``'s instances (so can't name a child)."""
    attrs = _INSTANCE_ATTRS.get(cls)
    if attrs is None:
        attrs = _INSTANCE_ATTRS[cls] = frozenset(cls().__dict__)
    return name in attrs or hasattr(cls, name)


def _container_classes(layer: Layer, prefix: str = "") -> dict[str, type[nn.Module]]:
    """``{path: container class}`` of the nested modules of ``layer``."""
    out: dict[str, type[nn.Module]] = {}
    if isinstance(layer, ls.Module):
        for key, child in layer.children():
            if isinstance(child, ls.Module):
                path = f"{prefix}.{key}" if prefix else key
                out[path] = containers.container_class(child)
                out.update(_container_classes(child, path))
    return out


class _Definition:
    """The lazyshape side of a built model (its definition, and what its
    `Runtime` knows: the program's arity, the materialized specs and
    inference), as deep-copied and pickled with the module, from which
    `runtime` makes the `Runtime` again (its caches are not copied)."""

    def __init__(self, model: TorchModel) -> None:
        rt = model._rt
        self.fields = (
            rt.model, rt.config, rt.program.n_inputs, rt.specs, rt.materialized,
            model._inference,
        )

    def runtime(self) -> tuple[Runtime, Inference | None]:
        """The runtime, as it was; and the inference of the last resolved inputs."""
        model, config, n_inputs, specs, materialized, inference = self.fields
        rt = Runtime(model, config, n_inputs)
        if materialized is not None and specs is not None:
            rt.commit(materialized)
            rt.specs = dict(specs)  # (their dtypes follow moves: see TorchModel._moved)
        return rt, inference


def _materialize(model: TorchModel, xs: tuple[Any, ...]) -> None:
    model._check(xs, None)


def _materialize_untraced(model: TorchModel, xs: tuple[Any, ...]) -> None:
    """The first call of an unmaterialized model under ``torch.compile``: a
    graph break, materializing from the real inputs. (Wrapped here, not at
    import: ``torch.compiler.disable`` imports dynamo, a second's work.)"""
    torch.compiler.disable(_materialize)(model, xs)  # type: ignore[no-untyped-call]


def _traced(xs: tuple[Any, ...]) -> bool:
    """Whether ``xs`` are being traced (FX proxies, or tensors of symbolic shape):
    the eager checks don't apply."""
    for x in xs:
        if isinstance(x, Proxy):
            return True
        if isinstance(x, torch.Tensor) and not native.concrete(x.shape):
            return True
    return False


#: TorchModel's own attributes: setting one doesn't install the placeholders
_INTERNAL = frozenset({
    "_ls_model", "_config", "_rt", "_dtype", "_device", "_inference", "_ready1", "_ready",
    "_rng_state", "_program", "_owner", "_node_mods", "_root", "_ls_plans", "_ls_chain",
    "_ls_kind", "training",
})


class TorchModel(containers.Graph, BuiltModel):
    """A lazyshape model built on torch: a ``torch.nn.Module`` (the class of a
    layer built alone; `Sequential` and `Model` derive from it).

    ``m(x)`` resolves (a `ShapeError` before any compute), materializes on the
    first call, and runs; ``m[0]``, ``m["fc"]``, ``len(m)`` and iteration work
    on the top-level children as on ``nn.Sequential``. Parameters follow
    torch's RNG in torch's order (``rng="native"``), or the portable streams
    (``rng="portable"``)."""

    def __init__(self, model: Layer, config: BuildConfig) -> None:
        super().__init__()
        rt = Runtime(model, config)
        self._ls_model = model
        self._ls_kind = model.kind
        self._ls_chain = False  # until the tree is built
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
        program = rt.program
        self._program = program
        owner: dict[str, int] = {}
        self._owner: list[int] = [
            owner.setdefault(node.param_path, i) for i, node in enumerate(program.nodes)
        ]
        self._node_mods: list[Any] = [None] * len(program.nodes)
        self._root: nn.Module | None = None
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
        torch child name (an attribute of its container: ``forward``, ``training``)."""
        classes = _container_classes(self._ls_model)
        for node in self._program.nodes:
            path = node.path
            if node.shared or path.isdecimal() or not path:
                continue
            prefix = ""
            for seg in path.split("."):
                if not seg.isdecimal():
                    taken = (
                        seg in self.__dict__ or hasattr(type(self), seg) if not prefix
                        else _taken(classes[prefix], seg)
                    )
                    if taken or not seg:
                        e = KeyError(
                            f"attribute '{seg}' already exists" if seg
                            else 'module name can\'t be empty string ""'
                        )
                        raise ValueError(
                            f"the node '{path}' can't be a child of a torch module ({e}); "
                            "give the layer another name="
                        )
                prefix = f"{prefix}.{seg}" if prefix else seg

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
            by_path: dict[str, nn.Module] = {}
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
                if mod.training is not self.training:
                    mod.train(self.training)
                mods.append(mod)
                by_path[node.path] = mod
            self._build_tree(by_path)
        except BaseException:
            if lazy:  # no half-built tree: the next look tries again
                del d["_modules"]
                self._ls_plans.clear()
            raise
        d["_node_mods"] = mods
        self._refresh()

    def _build_tree(self, modules: Mapping[str, nn.Module]) -> None:
        """Install the nodes' ``modules`` (by path) in new containers, and plan
        how each container runs them."""
        nodes = self._program.nodes
        if len(nodes) == 1 and not nodes[0].path:
            self._alias_root(modules[""])
            return
        containers.TreeBuilder(self, modules).plan(
            self, self._ls_model, self._program.n_inputs, ""
        )

    def _alias_root(self, mod: nn.Module) -> None:
        """A single layer built alone: its parameters are the model's (``mod`` is
        not a child: no prefix in ``state_dict``)."""
        object.__setattr__(self, "_root", mod)
        self._parameters.clear()
        self._parameters.update(mod._parameters)
        self._buffers.clear()
        self._buffers.update(mod._buffers)
        self._modules.clear()  # submodules of dotted local names (out_proj.weight)
        self._modules.update(mod._modules)

    def _install(self, path: str, mod: nn.Module) -> None:
        """Put ``mod`` in the place of the node at ``path`` (re-created by a shape change)."""
        if not path:
            self._alias_root(mod)
            return
        parent, _, key = path.rpartition(".")
        containers.module_at(self, parent)._modules[key] = mod

    def _refresh(self) -> None:
        d = self.__dict__
        mods = d["_node_mods"]
        d["_node_mods"] = [mods[o] for o in self._owner]
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
                f"the placeholders of this {self._ls_kind} were moved to different "
                f"dtypes or devices ({moves}); move the whole model (m.to(...)) "
                "before the first forward"
            )
        ((dtype, device),) = seen
        self._moved(dtype, device)

    def _follow_tensors(self) -> None:
        """After materialization, take the dtype and device the tensors were moved
        to (``m.double()``, ``m.to("meta")``, ``m.to_empty(device=...)``): later
        inputs are checked against them, and a re-initialization makes them."""
        for name, spec in (self._rt.specs or {}).items():
            if spec.dtype == self._dtype:  # the first tensor that follows the model's dtype
                t = _tensor_at(self, name)
                if isinstance(t, torch.Tensor):
                    self._moved(normalize_dtype(t.dtype), t.device)
                return

    def _moved(self, dtype: str, moved_to: torch.device) -> None:
        """The model's dtype and device are now ``dtype`` and ``moved_to``."""
        device: torch.device | None = moved_to
        if moved_to == torch.get_default_device() and self._device is None:
            device = None  # where new tensors go anyway
        if dtype == self._dtype and device == self._device:
            return
        old = self._dtype
        self._dtype = dtype
        self._device = device
        rt = self._rt
        rt.moved(dtype, device)
        if rt.specs is not None:
            # the specs the tensors were materialized with: those in the model's
            # dtype were moved with it (the core doesn't update them)
            rt.specs = {
                n: ParamSpec(s.shape, dtype, s.init, trainable=s.trainable)
                if s.dtype == old else s
                for n, s in rt.specs.items()
            }
        self._config = rt.config
        self._ready1.clear()
        self._ready.clear()

    def _apply(self, fn: Any, recurse: bool = True) -> TorchModel:
        # every move (to, half, double, cuda, to_empty, ...) goes through _apply
        super()._apply(fn, recurse)  # type: ignore[no-untyped-call]
        if self._rt.initialized:
            self._follow_tensors()
        return self

    def _prepare(self, xs: tuple[Any, ...]) -> None:
        with self._rt.lock:  # (materialize(...) comes here directly)
            self._follow_placeholders()
            inf, todo = self._rt.resolve(xs)  # ShapeError here: nothing changed
            if self._rt.program is not self._program:
                # a layer or Sequential called with another number of inputs: the
                # same nodes, wired to other input slots
                self._program = self._rt.program
                if "_modules" in self.__dict__ and self._root is None:
                    containers.TreeBuilder(self).plan(
                        self, self._ls_model, self._program.n_inputs, ""
                    )
                self._refresh()
            if todo or not self._rt.initialized:
                mode = "portable" if self._config.rng == "portable" else "native"
                self._allocate(inf, todo, mode)
            self._inference = inf

    def _allocate(self, inf: Inference, todo: list[str], mode: str) -> None:
        """(Re)create the nodes owning a parameter in ``todo`` (every node when
        uninitialized), each from its record in ``inf``. ``mode``: ``"native"``
        (torch's RNG), ``"portable"`` (the portable streams) or ``"empty"``
        (values come from a checkpoint).

        The new modules are all made first (a failing factory changes nothing);
        then each takes its node's place: a placeholder becomes it in place, a
        module re-created by a shape change is replaced, and a model whose tree
        was never looked at gets its tree built with them."""
        rt = self._rt
        program = self._program
        records = inf.layers
        first = not rt.initialized
        wanted = set() if first else set(todo)  # (the first time: every parameter)
        mods = self._node_mods
        device = self._device
        training = self.training
        dtype = init.torch_dtype(self._dtype)
        native_module = native.native_module
        in_place = inplace_layers(program)  # activations that may overwrite their input
        made: dict[int, nn.Module] = {}
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
                    if id(rec.layer) in in_place and "inplace" in mod.__dict__:
                        mod.__dict__["inplace"] = True
                if mod.training is not training:
                    mod.train(training)  # a module created after .eval() is in eval mode too
                native.set_training_checks(mod, training)
                made[i] = mod
            if mode == "portable":
                self._fill_portable(inf, made, [n for n in inf.params if n in wanted or first])
        # nothing below fails: the new modules take their places
        d = self.__dict__
        if "_modules" not in d:  # no placeholders were installed: build the tree with them
            d["_modules"] = {}
            self._build_tree({program.nodes[i].path: m for i, m in made.items()})
        else:
            for i, mod in made.items():
                current = mods[i]
                path = program.nodes[i].path
                if isinstance(current, Pending):
                    _adopt(current, mod)  # whoever holds a placeholder holds the tensor
                    _become(current, mod)  # ... and the module
                    made[i] = current
                    if not path:
                        self._alias_root(current)
                else:
                    self._install(path, mod)
        d["_node_mods"] = [made.get(i, m) for i, m in enumerate(mods)]
        rt.commit(inf)
        self._refresh()

    def _fill_portable(
        self, inf: Inference, made: Mapping[int, nn.Module], names: list[str]
    ) -> None:
        """Fill the new modules' tensors ``names`` with the portable streams'
        values: drawn straight into a CPU tensor's memory (no second copy of
        any tensor: peak memory is the parameters' bytes), else copied."""
        owners = {
            rec.prefix + k: (made[i], k)
            for i, rec in enumerate(inf.layers)
            if i in made
            for k in rec.params
        }
        specs = inf.params

        def tensor(name: str) -> torch.Tensor:
            return getattr(*_owner(*owners[name]))  # type: ignore[no-any-return]

        in_place: set[str] = set()

        def into(name: str) -> np.ndarray[Any, Any] | None:
            t = tensor(name)
            if (t.device.type != "cpu" or t.dtype == torch.bfloat16 or not t.is_contiguous()
                    or normalize_dtype(t.dtype) != (specs[name].dtype or self._dtype)):
                return None
            in_place.add(name)
            return t.detach().numpy()

        names = [n for n in names if not tensor(n).is_meta]  # no values on meta: no draws
        with torch.no_grad():
            for name, value in self._rt.portable_values(specs, names, into):
                if name not in in_place:
                    t = tensor(name)
                    t.copy_(init.from_numpy(value, normalize_dtype(t.dtype), t.device))

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

    # -- the forward ----------------------------------------------------------

    def forward(self, x: Any, *more: Any) -> Any:
        """Forward: ``m(x)``; ``m(x, y, ...)`` for a model of several inputs
        (``torch.export``'s ``dynamic_shapes`` follow this signature: ``({0: B},)``
        for one input, ``(dx, (dy, ...))`` for several).

        In eager mode a new input signature (shapes and dtypes) is resolved
        first: a `ShapeError` before anything is computed; the first call
        materializes. A known signature costs a dict lookup. Under
        ``torch.compile`` / ``torch.export`` / FX tracing, nothing but the
        children's calls is traced."""
        try:
            one = not more
        except TraceError:  # FX's symbolic trace passes *more as one proxy
            more, one = (), True
        if _is_dynamo_compiling():
            if not self._rt.initialized:
                _materialize_untraced(self, (x, *more))
        elif one:  # the hot path: as cheap as nn.Sequential plus one dict lookup
            try:
                hit = self._ready1.get(x.shape) is x.dtype
            except (AttributeError, TypeError):  # no shape, or a symbolic one
                hit = False
            if not hit:
                self._check((x,), None)
        else:
            self._check_many((x, *more))
        if one and self._ls_chain:  # (Graph._compute's chain, inlined: the hot path)
            for module in self._modules.values():
                x = module(x)  # type: ignore[misc]
            return x
        return self._compute(x, more)

    def _check_many(self, xs: tuple[Any, ...]) -> None:
        try:
            key: Any = tuple([(x.shape, x.dtype) for x in xs])
            hit = key in self._ready
        except (AttributeError, TypeError):
            key, hit = None, False
        if not hit:
            self._check(xs, key)

    def _check(self, xs: tuple[Any, ...], key: Any) -> None:
        """Resolve inputs of an unknown signature (``key`` for several inputs)
        and materialize if needed; remember the signature if it passes."""
        traced = _traced(xs)  # FX, or export's symbolic shapes: no eager checks
        if not self._rt.initialized and (traced or _is_exporting()):
            raise RuntimeError(
                f"this {self._ls_kind} is not materialized; call it once, or its "
                "materialize(...) / load_state_dict(...), before tracing or exporting it"
            )
        if traced:
            return
        with self._rt.lock:  # threads making the first call at once: one initialization
            self._prepare(xs)
            if len(xs) == 1:
                if isinstance(xs[0], torch.Tensor):
                    self._ready1[xs[0].shape] = xs[0].dtype
            elif key is not None:
                self._ready.add(key)

    def _compute(self, x: Any, more: tuple[Any, ...]) -> Any:
        root = self._root
        if root is not None:
            return root(x, *more)
        return super()._compute(x, more)

    # -- checkpoints ------------------------------------------------------------

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> Any:
        """Load tensors or NumPy arrays (canonical names). An uninitialized model
        is materialized from the state's shapes first. A mismatch raises
        `ShapeError` and changes nothing."""
        tensors = {n: _as_tensor(v) for n, v in state_dict.items()}
        shapes = {n: tuple(t.shape) for n, t in tensors.items()}
        rt = self._rt
        with rt.lock:
            self._follow_placeholders()
            if strict or not rt.initialized:
                inf = rt.check_state(shapes)
                if not rt.initialized:
                    self._allocate(inf, list(inf.params), "empty")
            else:
                _check_subset(rt.specs or {}, shapes, self._ls_kind)
            result = super().load_state_dict(tensors, strict=strict, assign=assign)
            if assign:  # the model's tensors are the state's now: their dtype and device
                self._follow_tensors()
            return result

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

    # -- copying and pickling -----------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        state: dict[str, Any] = super().__getstate__()  # type: ignore[no-untyped-call]
        state["_rt"] = _Definition(self)  # the Runtime's caches are not copied
        for name in ("_ls_model", "_inference", "_program"):
            del state[name]
        state["_ready1"] = {}
        state["_ready"] = set()
        if self._root is not None:  # aliases of the root's tables: made again
            state.update(_parameters={}, _buffers={}, _modules={})
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        definition = state.pop("_rt")
        super().__setstate__(state)  # type: ignore[no-untyped-call]  # (no "_rt" yet)
        rt, inference = definition.runtime()
        self.__dict__.update(
            _ls_model=rt.model, _rt=rt, _program=rt.program, _inference=inference
        )
        if self._root is not None:
            self._alias_root(self._root)

    # -- the rest of the public surface -------------------------------------------

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
            native.set_training_checks(self._root, mode)
        return self

    def __getitem__(self, key: int | str | slice) -> Any:
        if isinstance(key, str):
            return self._modules[key]
        items = list(self._modules.items())
        if isinstance(key, slice):
            return nn.Sequential(OrderedDict(items[key]))  # type: ignore[arg-type]
        return items[key][1]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[nn.Module]:
        return iter(self._modules.values())  # type: ignore[arg-type]

    def extra_repr(self) -> str:
        return self._root.extra_repr() if self._root is not None else ""


class Sequential(TorchModel, containers.Sequential):
    """A built ``ls.Sequential``: an ``nn.Sequential`` of its children."""


class Model(TorchModel, containers.Model):
    """A built functional ``ls.Model`` (or any other ``ls.Module``): its
    children's modules, run in the order of its graph."""


def build_model(model: Layer, config: BuildConfig) -> TorchModel:
    """The built model of ``model``: a `Sequential`, a `Model`, or a
    `TorchModel` for a layer alone."""
    if isinstance(model, ls.Sequential):
        return Sequential(model, config)
    if isinstance(model, ls.Module):
        return Model(model, config)
    return TorchModel(model, config)


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
