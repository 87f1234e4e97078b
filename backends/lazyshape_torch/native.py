"""Built-in lazyshape layers as native torch modules, and the generic wrapper
for every other layer.

`NATIVE` maps a layer class (exact type: a subclass may change ``forward``) to
a factory building the equivalent ``torch.nn`` module from the layer's
hyperparameters and its *parameter specs* (so a model materialized from a
checkpoint's shapes gets the same modules). A factory's module exposes each
parameter spec under its local name (``weight``, ``bias``, ``running_mean``):
lazyshape's parameter names are torch's. Supporting a new layer natively is
one `register` entry.

Layers with no entry run through `LayerModule`: its ``forward`` calls the
layer's own ``forward`` (written with ``ls.ops``, which dispatches to this
backend's ops) on its ``nn.Parameter``s.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import Parameter
from torch.nn.modules import module as _torch_module

import lazyshape as ls
from lazyshape._layer import Context, Layer, format_hparam
from lazyshape._specs import ParamSpec

__all__ = [
    "NATIVE", "Factory", "register", "native_module", "fresh", "stamping",
    "global_registration_hooks", "LayerModule",
]

#: ``factory(layer, specs, dtype=..., device=...) -> nn.Module | None``; ``specs``
#: are the layer's concrete parameter specs by local name; None means "run this
#: case through `LayerModule`" (no size can be read off the specs).
Factory = Callable[..., nn.Module | None]

NATIVE: dict[type[Layer], Factory] = {}

#: this file's factories, whose tensors are made from the specs' shapes (or that
#: have none): `native_module` skips checking what they built
_SIZED_FROM_SPECS: set[Factory] = set()


def register(*layer_types: type[Layer]) -> Callable[[Factory], Factory]:
    """Decorator: build ``layer_types`` natively with the decorated factory."""

    def deco(factory: Factory) -> Factory:
        for tp in layer_types:
            NATIVE[tp] = factory
        return factory

    return deco


def native_module(
    layer: Layer, specs: Mapping[str, ParamSpec], *, dtype: torch.dtype, device: Any
) -> nn.Module | None:
    """The native torch module of ``layer`` for these parameter specs (created,
    hence initialized, by torch itself), or None when the layer has no entry."""
    factory = NATIVE.get(type(layer))
    if factory is None:
        return None
    module = factory(layer, specs, dtype=dtype, device=device)
    if module is None:  # the factory can't size this case from specs: LayerModule
        return None
    if factory in _SIZED_FROM_SPECS:
        return module
    params = module._parameters
    for local, spec in specs.items():
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


# -- fast construction ----------------------------------------------------------
#
# ``nn.Linear(64, 64)`` costs ~50 us of Python, most of it ``Module.__init__``
# and ``Module.__setattr__`` (an ``isinstance(value, Parameter)`` through a
# Python metaclass per attribute), not the draws. A model of thousands of small
# layers is built faster by copying the ``__dict__`` of a module that torch
# constructed itself (a *prototype*), with fresh hook and parameter containers,
# and, for ``nn.Linear``, by drawing the parameters with the very calls
# ``reset_parameters`` makes. The result is a plain instance of the torch class,
# indistinguishable from a constructed one; `_linear_matches_torch` checks that
# against torch itself once per process. With torch's global registration hooks
# in use, or torch's constructors patched since import (`_may_stamp`), modules
# are constructed for real.


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
    ``init_empty_weights`` patches ``register_parameter``)."""
    return (
        nn.Module.__init__, nn.Module.__setattr__, nn.Module.register_parameter,
        nn.Linear.__init__, nn.Linear.reset_parameters, nn.init.kaiming_uniform_,
        nn.init.uniform_, Parameter.__new__,
    )


_CONSTRUCTORS = _constructors()


def _check_may_stamp() -> bool:
    return not global_registration_hooks() and _constructors() == _CONSTRUCTORS


_STAMPING = threading.local()


def _may_stamp() -> bool:
    """Whether modules may be stamped rather than constructed: no global
    registration hooks, and torch's constructors as they were at import
    (checked once per `stamping` block, else per call)."""
    ok = getattr(_STAMPING, "ok", None)
    return _check_may_stamp() if ok is None else ok  # type: ignore[no-any-return]


@contextlib.contextmanager
def stamping() -> Iterator[None]:
    """A block of factory calls (one materialization): `_may_stamp` is decided
    once, on entry."""
    prev = getattr(_STAMPING, "ok", None)
    _STAMPING.ok = _check_may_stamp()
    try:
        yield
    finally:
        _STAMPING.ok = prev


class _Prototype:
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


_PROTOTYPES: dict[Any, _Prototype] = {}


def fresh(cls: type[nn.Module], **kwargs: Any) -> nn.Module:
    """``cls(**kwargs)`` for a module with no parameters, buffers or children
    (``nn.ReLU()``, ``nn.GELU(approximate="tanh")``), stamped from a cached
    prototype: the same ``__dict__`` as the constructed module, at a fraction
    of the cost. Constructs it for real the first time, when the arguments
    aren't hashable, and when `_may_stamp` says no (global registration hooks,
    a patched constructor)."""
    if not _may_stamp():
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
            _PROTOTYPES[key] = _Prototype(module)
        return module
    if proto.init is not cls.__init__:  # the constructor was patched since
        return cls(**kwargs)
    return proto.new()  # type: ignore[no-any-return]


_LINEAR: dict[bool, _Prototype] = {}  # bias -> prototype
_LINEAR_BOUNDS: dict[int, tuple[float, float]] = {}  # fan_in -> (weight bound, bias bound)
_FAST_LINEAR: list[bool] = []  # [verdict of `_linear_matches_torch`], once per process


def _linear_bounds(fan_in: int) -> tuple[float, float]:
    """The uniform bounds of ``nn.Linear.reset_parameters`` for ``fan_in`` > 0:
    ``kaiming_uniform_(weight, a=sqrt(5))`` (``sqrt(3) * gain / sqrt(fan_in)``,
    torch's own ``calculate_gain``) and the bias's ``1 / sqrt(fan_in)``,
    computed with torch's float expressions."""
    bounds = _LINEAR_BOUNDS.get(fan_in)
    if bounds is None:
        gain = nn.init.calculate_gain("leaky_relu", math.sqrt(5))
        std = gain / math.sqrt(fan_in)
        bounds = _LINEAR_BOUNDS[fan_in] = (math.sqrt(3.0) * std, 1 / math.sqrt(fan_in))
    return bounds


_make_subclass = Tensor._make_subclass


def _stamp_linear(
    in_features: int, out_features: int, bias: bool, dtype: Any, device: Any
) -> nn.Linear:
    """``nn.Linear(in_features, out_features, bias, dtype=, device=)`` with both
    sizes > 0: torch's parameter tensors (``torch.empty``), filled by the
    ``uniform_`` calls ``reset_parameters`` makes, in its order (weight, then
    bias), from the same RNG, wrapped as ``nn.Parameter(t)`` does; the module
    stamped from a prototype."""
    proto = _LINEAR.get(bias)
    if proto is None:
        with torch.device("meta"):  # draws nothing from any RNG
            proto = _LINEAR[bias] = _Prototype(nn.Linear(1, 1, bias=bias))
    bounds = _LINEAR_BOUNDS.get(in_features) or _linear_bounds(in_features)
    w = torch.empty(out_features, in_features, dtype=dtype, device=device)
    w.uniform_(-bounds[0], bounds[0])
    plain = type(w) is Tensor  # else (a tensor subclass) Parameter's own path
    params: dict[str, Any] = {
        "weight": _make_subclass(Parameter, w, True) if plain else Parameter(w), "bias": None
    }
    if bias:
        b = torch.empty(out_features, dtype=dtype, device=device)
        b.uniform_(-bounds[1], bounds[1])
        params["bias"] = _make_subclass(Parameter, b, True) if plain else Parameter(b)
    return proto.new(  # type: ignore[no-any-return]
        in_features=in_features, out_features=out_features, _parameters=params
    )


def _linear_matches_torch() -> bool:
    """Whether `_stamp_linear` makes what ``nn.Linear`` makes on this torch: the
    same ``__dict__`` (keys, value types, sizes), bit-identical parameters, and
    the same RNG consumption. Checked once per process, on the CPU in a forked
    RNG; when it fails, ``nn.Linear`` is constructed for real. (If the check
    itself can't run, e.g. under a tensor mode, this call answers False.)"""
    if not _FAST_LINEAR:
        try:
            ok = _compare_with_nn_linear()
        except Exception:  # can't tell now: construct for real, ask again later
            return False
        _FAST_LINEAR.append(ok)
    return _FAST_LINEAR[0]


def _compare_with_nn_linear() -> bool:
    ok = True
    with torch.random.fork_rng(devices=[]):
        for bias in (True, False):
            torch.manual_seed(0)
            real = nn.Linear(5, 3, bias=bias, device="cpu")
            after_real = torch.get_rng_state()
            torch.manual_seed(0)
            fast = _stamp_linear(5, 3, bias, torch.float32, "cpu")
            ok = ok and torch.equal(torch.get_rng_state(), after_real)
            mine = fast.__dict__
            ok = ok and list(real.__dict__) == list(mine)
            for k, v in real.__dict__.items():
                ok = ok and type(v) is type(mine[k])
                if not isinstance(v, (dict, set, list)):
                    ok = ok and v == mine[k]
            ok = ok and list(real.state_dict()) == list(fast.state_dict())
            ok = ok and all(
                type(a) is type(b) and a.requires_grad == b.requires_grad and torch.equal(a, b)
                for a, b in zip(real.parameters(), fast.parameters(), strict=True)
            )
    return ok


# -- entries ------------------------------------------------------------------


@register(ls.Linear)
def _linear(layer: Any, specs: Mapping[str, ParamSpec], *, dtype: Any, device: Any) -> nn.Module:
    out_features, in_features = specs["weight"].shape
    out_features, in_features = int(out_features), int(in_features)
    bias = "bias" in specs
    if (
        in_features > 0
        and out_features > 0
        and _may_stamp()
        and (_FAST_LINEAR[0] if _FAST_LINEAR else _linear_matches_torch())
    ):
        return _stamp_linear(in_features, out_features, bias, dtype, device)
    return nn.Linear(in_features, out_features, bias=bias, dtype=dtype, device=device)


_SIZED_FROM_SPECS.add(_linear)


def _stateless(cls: type[nn.Module], kwargs: Callable[[Any], dict[str, Any]]) -> Factory:
    def factory(layer: Any, specs: Mapping[str, ParamSpec], **kw: Any) -> nn.Module:
        return fresh(cls, **kwargs(layer))

    return factory


for _tp, _cls, _kwargs in [
    (ls.ReLU, nn.ReLU, lambda layer: {}),
    (ls.Tanh, nn.Tanh, lambda layer: {}),
    (ls.Sigmoid, nn.Sigmoid, lambda layer: {}),
    (ls.SiLU, nn.SiLU, lambda layer: {}),
    (ls.Identity, nn.Identity, lambda layer: {}),
    (ls.GELU, nn.GELU, lambda layer: {"approximate": layer.approximate}),
    (ls.LeakyReLU, nn.LeakyReLU, lambda layer: {"negative_slope": layer.negative_slope}),
    (ls.Softmax, nn.Softmax, lambda layer: {"dim": layer.dim}),
    (ls.Dropout, nn.Dropout, lambda layer: {"p": layer.p}),
    (ls.Flatten, nn.Flatten, lambda layer: {"start_dim": layer.start_dim,
                                            "end_dim": layer.end_dim}),
    (ls.Unflatten, nn.Unflatten, lambda layer: {"dim": layer.dim,
                                                "unflattened_size": tuple(layer.sizes)}),
]:
    _SIZED_FROM_SPECS.add(register(_tp)(_stateless(_cls, _kwargs)))


# -- the generic wrapper --------------------------------------------------------


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
        for local, t in tensors.items():
            if trainable[local]:
                self.register_parameter(
                    local, t if isinstance(t, nn.Parameter) else nn.Parameter(t)
                )
            else:
                self.register_buffer(local, t)

    def forward(self, *xs: Any) -> Any:
        params: dict[str, Any] = dict(self._parameters)
        if self._buffers:
            params.update(self._buffers)
        layer = self.layer
        if layer.needs_context:
            ctx = Context(training=self.training, rng=None)  # torch's global RNG
            ctx.path = self._path
            out = layer.forward(params, *xs, ctx=ctx)  # type: ignore[call-arg]
            if ctx.updates:  # buffers (running statistics) are updated in place
                with torch.no_grad():
                    for local, value in ctx.updates.items():
                        self._buffers[local].copy_(value)  # type: ignore[union-attr]
            return out
        return layer.forward(params, *xs)

    def _get_name(self) -> str:
        return self.layer.kind

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={format_hparam(v)}" for k, v in self._hparams.items())


# The layer families' native entries register themselves on import.
from . import native_conv, native_norm, native_pool, native_seq  # noqa: E402, F401
