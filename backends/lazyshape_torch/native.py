"""Native torch modules for built-in layers, and the generic wrapper for every
other layer.

`NATIVE` maps a layer class (exact type: a subclass may change ``forward``) to
a factory building the equivalent ``torch.nn`` module. Each layer family
registers its factories with `register` in the backend module of the
family's name (``conv.py``: ``nn.Conv2d``); a factory's module exposes each
parameter spec under its local name (``weight``, ``bias``, ``running_mean``):
lazyshape's parameter names are torch's.

Layers with no entry run through `LayerModule`: its ``forward`` calls the
layer's own ``forward`` (written with ``ls.ops``, which dispatches to this
backend's ops) on its ``nn.Parameter``s.

Building a module of thousands of small layers is dominated by
``nn.Module.__init__``; modules with no parameters are stamped from a
prototype that torch constructed (`fresh`, `Prototype`), unless torch's
global registration hooks are in use or its constructors were patched
(`may_stamp`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import Parameter
from torch.nn.modules import module as _torch_module

from lazyshape.backend import (
    Context,
    Layer,
    LayerRecord,
    format_hparam,
)

#: ``factory(record, dtype=..., device=...) -> nn.Module | None``: the native
#: module of the node whose resolution record (`LayerRecord`) is given, built
#: from ``record.resolved`` (the layer's hyperparameters with every inferred
#: size filled in) and sized as ``record.params``; None means "run this node
#: through `LayerModule`" (a size is still unknown: see `sizes`).
Factory = Callable[..., nn.Module | None]


NATIVE: dict[type[Layer], Factory] = {}


#: True while dynamo traces (torch.compile, strict torch.export): constant-folded
#: there, a bare ``return False`` in eager (``is_compiling`` costs twice as much).
#: lazyshape's shape checks run in eager mode only, never in a traced graph.
is_dynamo_compiling = getattr(torch.compiler, "is_dynamo_compiling", torch.compiler.is_compiling)


def concrete(shape: Any) -> bool:
    """Whether every dim of ``shape`` is an int (not a symbol being traced: FX,
    non-strict export)."""
    return all(type(d) is int for d in shape)


#: native module class -> the forward pre-hook checking its input in training
#: (a `ShapeError` where torch would raise its own error), or None, for a module.
#: The hook is on a module only while it trains (`set_training_checks`): in
#: evaluation a module has no hook and takes torch's fast call path.
TRAINING_CHECKS: dict[type[nn.Module], Callable[[nn.Module], Callable[..., None] | None]] = {}


def set_training_checks(module: nn.Module, on: bool) -> None:
    """Install (``on``) or remove the `TRAINING_CHECKS` hook of ``module``."""
    pick = TRAINING_CHECKS.get(type(module))
    hook = None if pick is None else pick(module)
    if hook is None:
        return
    hooks = module._forward_pre_hooks
    present = [k for k, f in hooks.items() if f is hook]
    if on and not present:
        module.register_forward_pre_hook(hook)
    elif not on:
        for k in present:
            del hooks[k]


#: factories whose tensors are made from the specs' shapes (or that have none):
#: `native_module` skips checking what they built
_EXACT: set[Factory] = set()


def register(*layer_types: type[Layer], exact: bool = False) -> Callable[[Factory], Factory]:
    """Decorator: build ``layer_types`` natively with the decorated factory.
    ``exact``: the factory sizes every tensor from the specs (what it builds
    is then not checked against them)."""

    def deco(factory: Factory) -> Factory:
        for tp in layer_types:
            NATIVE[tp] = factory
        if exact:
            _EXACT.add(factory)
        return factory

    return deco


def register_stateless(
    layer_type: type[Layer], cls: type[nn.Module], rename: Mapping[str, str] | None = None
) -> None:
    """Build ``layer_type`` (a layer with no parameters) as ``cls(**resolved)``,
    its resolved hyperparameters being ``cls``'s arguments (``rename`` maps
    the ones torch names otherwise), stamped by `fresh`."""

    def factory(rec: LayerRecord, **kw: Any) -> nn.Module:
        hp = rec.resolved
        if rename:
            hp = {rename.get(k, k): v for k, v in hp.items()}
        return fresh(cls, **hp)

    register(layer_type, exact=True)(factory)


def sizes(rec: LayerRecord, *names: str) -> tuple[int, ...] | None:
    """The resolved hyperparameters ``names`` of ``rec`` as ints (a tuple-valued
    one, ``normalized_shape``, as a tuple of ints), or None when one is still
    unknown (a symbolic or None size: a node materialized from a checkpoint
    whose shapes don't determine it)."""
    out: list[Any] = []
    hp = rec.resolved
    for name in names:
        v = hp[name]
        if type(v) is int or isinstance(v, tuple) and all(type(d) is int for d in v):
            out.append(v)
        else:
            return None
    return tuple(out)


def native_module(rec: LayerRecord, *, dtype: torch.dtype, device: Any) -> nn.Module | None:
    """The native torch module of the node recorded in ``rec`` (created, hence
    initialized, by torch itself), or None when its layer type has no entry.
    ``dtype`` is the model's floating dtype."""
    layer = rec.layer
    factory = NATIVE.get(type(layer))
    if factory is None:
        return None
    module = factory(rec, dtype=dtype, device=device)
    if module is None:  # a size the factory needs is unknown: LayerModule
        return None
    if factory in _EXACT:
        return module
    params = module._parameters
    for local, spec in rec.params.items():
        got: Any = params.get(local)
        if got is None:
            got = module  # a buffer, or a dotted local name: `out_proj.weight`
            for seg in local.split("."):
                got = getattr(got, seg, None)
        if not isinstance(got, torch.Tensor) or got.shape != spec.shape:
            raise RuntimeError(
                f"native factory for {layer.kind} built {type(module).__name__} whose "
                f"`{local}` is {None if got is None else tuple(got.shape)}, "
                f"expected {spec.shape}"
            )
    return module


_REGISTRATION_HOOKS: tuple[Any, ...] = tuple(
    getattr(_torch_module, name, None)
    for name in (
        "_global_module_registration_hooks",
        "_global_parameter_registration_hooks",
        "_global_buffer_registration_hooks",
    )
)


_UNKNOWN_HOOKS = any(hooks is None for hooks in _REGISTRATION_HOOKS)


def global_registration_hooks() -> bool:
    """True when torch's global module/parameter/buffer registration hooks are in
    use (or can't be inspected): constructors must then run for real, so that
    the hooks see every registration."""
    modules, params, buffers = _REGISTRATION_HOOKS  # torch's dicts, mutated in place
    return _UNKNOWN_HOOKS or bool(modules or params or buffers)


def _constructors() -> tuple[Any, ...]:
    """What constructing an ``nn.Linear`` or a stateless module runs through,
    as currently bound (a library may patch one: Hugging Face's
    ``no_init_weights`` patches ``torch.nn.init``, accelerate's
    ``init_empty_weights`` patches ``register_parameter``, torchview's graph
    recorder patches ``torch.empty``)."""
    return (
        nn.Module.__init__, nn.Module.__setattr__, nn.Module.register_parameter,
        nn.Linear.__init__, nn.Linear.reset_parameters, nn.init.kaiming_uniform_,
        nn.init.uniform_, Parameter.__new__, torch.empty,
    )


_CONSTRUCTORS = _constructors()


def _check_may_stamp() -> bool:
    return not global_registration_hooks() and _constructors() == _CONSTRUCTORS


_STAMPING = threading.local()


def may_stamp() -> bool:
    """Whether modules may be stamped rather than constructed: no global
    registration hooks, and torch's constructors as they were at import
    (checked once per `stamping` block, else per call)."""
    ok = getattr(_STAMPING, "ok", None)
    return _check_may_stamp() if ok is None else ok


@contextlib.contextmanager
def stamping() -> Iterator[None]:
    """A block of factory calls (one materialization): `may_stamp` is decided
    once, on entry."""
    prev = getattr(_STAMPING, "ok", None)
    _STAMPING.ok = _check_may_stamp()
    try:
        yield
    finally:
        _STAMPING.ok = prev


class Prototype:
    """A module's state to stamp out equal modules without running ``__init__``."""

    __slots__ = ("cls", "init", "state", "copies")

    def __init__(self, module: nn.Module) -> None:
        self.cls = type(module)
        #: the constructor that made the prototype (stamping stops if it is patched)
        self.init = self.cls.__init__
        #: the mutable containers (hook dicts, ``_parameters``, ...): copied here (the
        #: module may be handed out) and per instance
        self.copies = tuple(
            k for k, v in module.__dict__.items() if isinstance(v, (dict, set, list))
        )
        self.state = dict(module.__dict__)
        for k in self.copies:
            self.state[k] = self.state[k].copy()

    def new(self, **attrs: Any) -> Any:
        """A new instance: the prototype's ``__dict__`` with fresh containers,
        then ``attrs`` (``in_features=...``, ``_parameters={...}``)."""
        d = self.state.copy()
        for k in self.copies:
            d[k] = d[k].copy()
        if attrs:
            d.update(attrs)
        obj = self.cls.__new__(self.cls)
        object.__setattr__(obj, "__dict__", d)
        return obj


_PROTOTYPES: dict[Any, Prototype] = {}


def fresh(cls: type[nn.Module], **kwargs: Any) -> nn.Module:
    """``cls(**kwargs)`` for a module with no parameters, buffers or children
    (``nn.ReLU()``, ``nn.GELU(approximate="tanh")``), stamped from a cached
    prototype: the same ``__dict__`` as the constructed module, at a fraction
    of the cost. Constructs it for real the first time, when the arguments
    aren't hashable, and when `may_stamp` says no (global registration hooks,
    a patched constructor)."""
    if not may_stamp():
        return cls(**kwargs)
    try:
        key = (cls, *[(k, type(v), v) for k, v in kwargs.items()])  # 1 and 1.0 differ
        proto = _PROTOTYPES.get(key)
    except TypeError:  # an unhashable argument
        return cls(**kwargs)
    if proto is None:
        module = cls(**kwargs)
        if not (module._parameters or module._buffers or module._modules) and (
            len(_PROTOTYPES) < 512  # else too many variants to cache
        ):
            _PROTOTYPES[key] = Prototype(module)
        return module
    if proto.init is not cls.__init__:  # the constructor was patched since
        return cls(**kwargs)
    return proto.new()  # type: ignore[no-any-return]


#: where a `Layer.bare_param` node's module holds its one tensor; its
#: ``state_dict`` names it by the node's path alone (see `bare_param_hooks`)
BARE_NAME = "value"


def _bare_save(module: nn.Module, state: dict[str, Any], prefix: str, meta: Any) -> None:
    if prefix + BARE_NAME in state:  # (the end of the dict: the module's own place)
        state[prefix[:-1]] = state.pop(prefix + BARE_NAME)


def bare_param_hooks(module: nn.Module) -> None:
    """Make ``module`` (a bare-parameter node's: its tensor is `BARE_NAME`) save
    its tensor under its own path, as torch names an ``nn.Parameter`` attribute
    of the container: ``class_token``, not ``class_token.value`` (its container,
    a `containers.Graph`, renames the key back when loading)."""
    module.__dict__["_ls_bare"] = True  # (a plain attribute: not a tensor or module)
    module._register_state_dict_hook(_bare_save)  # type: ignore[no-untyped-call]


class LayerModule(nn.Module):
    """A layer with no native module: ``forward`` runs ``layer.forward(params, *xs)``.

    Parameters are ``nn.Parameter``s (buffers for specs with ``trainable=False``)
    under the layer's local names, so ``state_dict`` keys are canonical."""

    def __init__(
        self,
        layer: Layer,
        tensors: Mapping[str, torch.Tensor],
        trainable: Mapping[str, bool],
        hparams: Mapping[str, Any] | None = None,
        path: str = "",
    ) -> None:
        super().__init__()
        self.layer = layer
        self._hparams = dict(layer.hparams() if hparams is None else hparams)
        self._path = path
        #: whether a local name is dotted (``query.weight``: ``weight`` of a child
        #: ``query``, as torch names a submodule's tensors)
        self._nested = any("." in local for local in tensors)
        self._bare = layer.bare_param
        if self._bare:
            bare_param_hooks(self)
        for local, t in tensors.items():
            owner: nn.Module = self
            *segs, leaf = local.split(".") if local else [BARE_NAME]
            for seg in segs:
                child = owner._modules.get(seg)
                if child is None:
                    child = nn.Module()
                    owner.add_module(seg, child)
                owner = child
            if trainable[local]:
                owner.register_parameter(
                    leaf, t if isinstance(t, nn.Parameter) else nn.Parameter(t)
                )
            else:
                owner.register_buffer(leaf, t)

    def _tensors(self) -> dict[str, Any]:
        """The layer's tensors by local name."""
        if self._bare:
            return {"": self._parameters[BARE_NAME]}
        if self._nested:
            return {**dict(self.named_parameters()), **dict(self.named_buffers())}
        params: dict[str, Any] = dict(self._parameters)
        if self._buffers:
            params.update(self._buffers)
        return params

    def forward(self, *xs: Any) -> Any:
        params = self._tensors()
        layer = self.layer
        if layer.needs_context:
            ctx = Context(training=self.training, rng=None)  # torch's global RNG
            ctx.path = self._path
            out = layer.forward(params, *xs, ctx=ctx)
            if ctx.updates:  # buffers (running statistics) are updated in place
                with torch.no_grad():
                    for local, value in ctx.updates.items():
                        params[local].copy_(value)
            return self._packed(out)
        return self._packed(layer.forward(params, *xs))

    def _packed(self, out: Any) -> Any:
        # a multi-output layer returns its user-facing structure, as a native module
        # does (an LSTM's ``(out, (h, c))``)
        return self.layer.pack_outputs(tuple(out)) if self.layer.num_outputs > 1 else out

    def _get_name(self) -> str:
        return self.layer.kind

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={format_hparam(v)}" for k, v in self._hparams.items())

