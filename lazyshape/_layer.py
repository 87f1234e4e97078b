"""`Layer`: the base class of every layer, built-in or custom.

A layer holds hyperparameters only: no shapes, no arrays. It declares three
things, and everything else (inference, summaries, every backend, the
harness) is derived from them:

- ``output_spec(*inputs) -> TensorSpec`` (or a tuple of them): the shape rule;
- ``param_specs(*inputs) -> dict[str, ParamSpec]``: the parameter rule;
- ``forward(params, *xs)``: the computation, written once against `ls.ops`.

and, for layers whose sizes come from the input, ``resolved(*inputs)``: the
hyperparameters with those sizes filled in, which the propagation pass keeps
on each node's record (`LayerRecord.resolved`).

Calling a layer on symbolic tensors (`Input`) records a node of a functional
model; the output spec is computed at once, so ``h.shape`` is known.

Rules are pure: what a rule reports to the pass running it (an equality of
symbolic dims it had to assume, `assume_equal`) goes to that pass's own log,
bound in a `contextvars.ContextVar` (`ASSUMED`) for the duration of the pass, so passes
in different threads never see each other's. A rule whose output has the
model's dtype (which it cannot know) returns a spec of dtype None, which the
pass fills in, as it fills in a `ParamSpec` of dtype None.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any, ClassVar

from ._cost import Cost, Saved
from ._dims import Dim, SymbolicComparisonError, format_shape
from ._errors import ShapeError
from ._specs import FLOATING, ParamSpec, TensorSpec, promote_types

__all__ = [
    "Layer", "Context", "SymbolicTensor", "resolve_node", "format_hparam", "check_param_dtype",
    "shape_input_dtype", "assume_equal", "assume_at_least", "assume_at_most", "ASSUMED",
]

#: ``(kind, a, b)`` entries of the assumption log: ``a == b``, ``a >= b``, ``a <= b``
Assumed = tuple[str, "Dim", "Dim"]

#: the assumption log of the propagation pass running in this context (None
#: outside a pass: a functional model being defined keeps no log)
ASSUMED: ContextVar[list[Assumed] | None] = ContextVar("lazyshape_assumed", default=None)


def assume_equal(a: Dim, b: Dim) -> None:
    """Record that a rule assumed ``a == b`` without proof (the pass running the
    rule reports it in `Inference.assumptions`; ``C % 2 == 0`` becomes one of
    `Inference.conditions`)."""
    log = ASSUMED.get()
    if log is not None:
        log.append(("==", a, b))


def assume_at_least(d: Dim, k: Dim) -> None:
    """Record that a rule accepted ``d`` assuming ``d >= k``, which it could not
    decide (a symbolic size): the inference is valid only where it holds. The
    pass turns these into `Inference.valid_ranges` (``H >= 16``)."""
    log = ASSUMED.get()
    if log is not None:
        log.append((">=", d, k))


def assume_at_most(d: Dim, k: Dim) -> None:
    """Record that a rule accepted ``d`` assuming ``d <= k`` (``T <= max_len``);
    see `assume_at_least`."""
    log = ASSUMED.get()
    if log is not None:
        log.append(("<=", d, k))


class Context:
    """What a forward needs beyond params and inputs: the training flag, a
    source of randomness (backend-specific: a NumPy ``Generator``, a JAX key,
    ``None`` for torch's global RNG), and a place to put new buffer values.

    Only layers with ``needs_context = True`` receive it, as ``ctx=``. A layer
    never mutates its params: in training it calls ``ctx.update("running_mean",
    new)`` and the backend applies the update (torch: in place; JAX: returned
    from ``apply``)."""

    __slots__ = ("training", "rng", "path", "prefix", "updates")

    def __init__(self, training: bool = False, rng: Any = None) -> None:
        self.training = training
        self.rng = rng
        #: the path of the node running now, and its parameter prefix
        self.path = ""
        self.prefix = ""
        #: ``{canonical name: new value}`` of the buffers updated by this forward
        self.updates: dict[str, Any] = {}

    def update(self, name: str, value: Any) -> None:
        """Record a new value for the running node's buffer ``name`` (local name)."""
        self.updates[self.prefix + name] = value


def format_hparam(value: Any) -> str:
    """A hyperparameter as ``repr`` shows it: unknown (None) sizes print as ``?``."""
    if value is None:
        return "?"
    if isinstance(value, tuple):
        return format_shape(value)
    if isinstance(value, str):
        return repr(value)
    return str(value)


def param_prefix(layer: Layer, param_path: str) -> str:
    """What a node's local parameter names are appended to: ``param_path + "."``
    (``""`` at the root); for a `Layer.bare_param` layer, whose one local name
    is ``""``, the path itself (``"value"`` at the root)."""
    if layer.bare_param:
        return param_path or "value"
    return param_path + "." if param_path else ""


# "LeakyReLU" -> "leaky_relu", "ReLU" -> "relu", "BatchNorm2d" -> "batch_norm2d"
_SNAKE = re.compile(r"(?<=[a-z0-9])(?=[A-Z][a-z])")


def _output_spec_unimplemented(self: Layer, *inputs: TensorSpec) -> TensorSpec:
    """Shape rule: the output spec(s) for these input specs."""
    raise NotImplementedError(f"{self.kind} does not define output_spec")


def _no_params(self: Layer, *inputs: TensorSpec) -> dict[str, ParamSpec]:
    """Parameter rule: ``{name: ParamSpec}`` for these input specs (none)."""
    return {}


def _forward_unimplemented(self: Layer, params: Mapping[str, Any], *xs: Any) -> Any:
    """Computation on backend arrays, written with `ls.ops`."""
    raise NotImplementedError(f"{self.kind} does not define forward")


#: the values of `Layer.dtype_rule`
DTYPE_RULES = ("model", "promote")


class Layer:
    """Base class of every layer.

    Subclasses set hyperparameters in ``__init__`` (calling
    ``super().__init__()``) and override `output_spec`, `param_specs` and
    `forward`. ``name=`` becomes the layer's parameter prefix in a model.
    """

    #: hyperparameter names shown by ``repr``, in order (custom layers: public attributes)
    hparam_names: ClassVar[tuple[str, ...] | None] = None
    #: rank of the input the layer expects (used for partial shapes before any input;
    #: a layer may set it per instance)
    expected_ndim: int | None = None
    #: the dtype a bare shape tuple given to `infer` means for this layer's input
    #: (``"int64"`` for token ids of an `Embedding`); a floating one stands for
    #: the model's dtype (`shape_input_dtype`)
    input_dtype: ClassVar[str] = "float32"
    #: how many outputs ``output_spec`` returns
    num_outputs: ClassVar[int] = 1
    #: layers that need the training flag, randomness or buffer updates get ``ctx=``
    needs_context: ClassVar[bool] = False
    #: False when the class keeps the base class's empty parameter rule (set per class)
    has_params: ClassVar[bool] = False
    #: True for a layer that *is* one parameter (`LearnedTensor`): its rule gives
    #: one parameter of local name ``""``, whose canonical name is the layer's
    #: own path (``class_token``, ``encoder.pos_embedding``; ``value`` for a
    #: layer built alone), as torch names an ``nn.Parameter`` attribute
    bare_param: ClassVar[bool] = False
    #: what an output of dtype None (``TensorSpec(shape, None)`` from `output_spec`)
    #: gets: ``"model"``, the model's dtype, which is the parameters' (an
    #: `Embedding`'s vectors; a linear map of int inputs); ``"promote"``,
    #: `ls.ops.promote_types` of the inputs' and parameters' dtypes, what
    #: `ls.ops` arithmetic on them computes (an elementwise layer on int32: int32)
    dtype_rule: ClassVar[str] = "model"
    #: True when the rules (`output_spec`, `param_specs`, `costs`) are functions
    #: of the instance's attributes (``vars``, its ``name`` aside) and the input
    #: specs: a pass then gives the layers of a repeated block, on the inputs of
    #: the block it repeats, that block's answers without running their rules.
    #: A class whose rules read anything else (a counter, a global setting)
    #: sets False, and its rules run at every node.
    memo_rules: ClassVar[bool] = True
    #: attributes that the rules (`output_spec`, `param_specs`, `costs`) do not
    #: read, such as a drop probability: a repeated block whose layer differs
    #: from its counterpart only in them (a stochastic-depth schedule) takes
    #: its counterpart's answers all the same
    shape_free_attributes: ClassVar[tuple[str, ...]] = ()

    # The three methods a layer declares. Typed as callables (as torch types
    # ``nn.Module.forward``) so that each layer declares its own signature: one
    # spec / array per input, in order.

    #: shape rule: ``output_spec(*inputs) -> TensorSpec | tuple[TensorSpec, ...]``
    output_spec: Callable[..., TensorSpec | tuple[TensorSpec, ...]] = _output_spec_unimplemented
    #: parameter rule: ``param_specs(*inputs) -> {local name: ParamSpec}``
    param_specs: Callable[..., dict[str, ParamSpec]] = _no_params
    #: computation: ``forward(params, *xs)`` on backend arrays, written with `ls.ops`
    forward: Callable[..., Any] = _forward_unimplemented

    def costs(
        self, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]
    ) -> tuple[Cost, ...]:
        """The products this layer's forward computes on inputs and outputs of
        these specs, as `Cost` terms (FlopCounterMode's convention: matrix
        products, convolutions and attention count, 2 FLOPs per multiply-add;
        elementwise work counts 0). The default, no products, is right for
        elementwise, normalization, pooling and reshaping layers; a layer that
        multiplies matrices declares them (`matmul_cost`)."""
        return ()

    #: True when the output is a view of the first input (a reshape, a permutation,
    #: an identity): it takes no memory of its own
    aliases_input: ClassVar[bool] = False

    def saved(
        self, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]
    ) -> Saved:
        """What a training step's backward keeps of this layer's forward (as
        PyTorch's autograd saves it): which inputs and outputs, and the bytes of
        what else it keeps (pooling indices, dropout masks, attention's projected
        heads). The default keeps every input, which is right for linear maps,
        convolutions, normalizations and most activations; a view keeps
        nothing."""
        if self.aliases_input:
            return Saved()
        return Saved(tuple(range(len(inputs))))

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.has_params = cls.param_specs is not _no_params
        if cls.dtype_rule not in DTYPE_RULES:
            raise TypeError(
                f"{cls.__name__}.dtype_rule is one of {', '.join(map(repr, DTYPE_RULES))}; "
                f"got {cls.dtype_rule!r}"
            )

    name: str | None

    def __init__(self, *, name: str | None = None) -> None:
        if name is not None and (not isinstance(name, str) or not name or "." in name):
            raise ValueError(f"a layer name is a non-empty string without '.', got {name!r}")
        self.name = name

    @property
    def kind(self) -> str:
        """The layer kind, as errors and summaries name it (its class name)."""
        return type(self).__name__

    def pack_outputs(self, outs: tuple[Any, ...]) -> Any:
        """The user-facing structure of a multi-output layer's flat outputs
        (an LSTM's ``(out, h, c)`` is returned as ``(out, (h, c))``)."""
        return outs[0] if len(outs) == 1 else outs

    # -- description --------------------------------------------------------

    def hparams(self) -> dict[str, Any]:
        """The hyperparameters, ``None`` for sizes still to be inferred."""
        if self.hparam_names is not None:
            return {k: getattr(self, k) for k in self.hparam_names}
        return {
            k: v
            for k, v in vars(self).items()
            if not k.startswith("_") and k != "name"
            and (v is None or isinstance(v, (int, float, str, bool, tuple)))
        }

    def resolved(self, *inputs: TensorSpec) -> dict[str, Any]:
        """The hyperparameters with the sizes inferred from these input specs
        filled in (``{"in_features": 20, "out_features": 256, "bias": True}``
        for a `Linear` on ``(B, 20)``). The propagation pass asks once per node
        and keeps the answer on the node's `LayerRecord`; ``repr``, summaries,
        placeholders and each backend's native modules read it from there."""
        return self.hparams()

    def default_name(self) -> str:
        """The stem of generated node names (``Linear`` → ``linear``)."""
        return _SNAKE.sub("_", self.kind).lower()

    def __repr__(self) -> str:
        body = ", ".join(f"{k}={format_hparam(v)}" for k, v in self.hparams().items())
        return f"{self.kind}({body})"

    # -- functional API -----------------------------------------------------

    def __call__(self, *args: Any) -> Any:
        """Call on symbolic tensors (from `Input`) to record a node; returns the
        output symbolic tensor (a tuple when the layer has several outputs)."""
        if len(args) == 1 and isinstance(args[0], (list, tuple)):
            args = tuple(args[0])
        if not args or not all(isinstance(a, SymbolicTensor) for a in args):
            got = ", ".join(type(a).__name__ for a in args) or "nothing"
            raise TypeError(
                f"{self.kind} is called on symbolic tensors (ls.Input) to define a model; "
                f"got {got}. To run it on arrays, build it: ls.build(model, backend)."
            )
        call = _Call(self, args)
        specs = tuple(a.spec for a in args)
        outs, _ = resolve_node(self, specs, self.name or self.default_name())
        tensors = tuple(SymbolicTensor(call, i, s) for i, s in enumerate(outs))
        call.outputs = tensors
        return self.pack_outputs(tensors)


def rule_error(layer: Layer, specs: tuple[TensorSpec, ...], path: str, e: Exception) -> Exception:
    """The `ShapeError` for an exception raised by a layer's rules: a
    `ShapeError` is placed at the layer; anything else is wrapped, naming it."""
    if isinstance(e, ShapeError):
        return e.located(layer.kind, path)
    if not isinstance(e, (SymbolicComparisonError, ValueError, TypeError, IndexError,
                          KeyError, AttributeError, ArithmeticError, NotImplementedError)):
        return e
    shapes = ", ".join(format_shape(s.shape) for s in specs)
    return ShapeError(
        "the shape rule failed for these inputs",
        f"{type(e).__name__}: {e} (input shapes {shapes})",
        kind=layer.kind,
        path=path,
    )


def check_outputs(
    layer: Layer,
    out: Any,
    path: str,
    dtype: str,
    specs: tuple[TensorSpec, ...] = (),
    local: Mapping[str, ParamSpec] | None = None,
) -> tuple[TensorSpec, ...]:
    """Normalize what ``output_spec`` returned to a tuple of specs, checked
    against ``layer.num_outputs``; an output of dtype None gets the model's
    ``dtype`` or, for a layer whose ``dtype_rule`` is ``"promote"``, the
    promotion of its inputs' (``specs``) and parameters' (``local``) dtypes."""
    if type(out) is TensorSpec:
        outs: tuple[TensorSpec, ...] = (out,)
    elif isinstance(out, tuple) and all(type(o) is TensorSpec for o in out):
        outs = out
    else:
        raise ShapeError(
            "output_spec to return a TensorSpec or a tuple of TensorSpecs",
            f"{type(out).__name__}",
            kind=layer.kind,
            path=path,
        )
    if len(outs) != layer.num_outputs:
        raise ShapeError(
            f"{layer.num_outputs} output spec(s) (num_outputs)",
            f"{len(outs)}",
            kind=layer.kind,
            path=path,
        )
    if any(o.dtype is None for o in outs):
        if layer.dtype_rule == "promote":
            dtype = promote_types(*(s.dtype for s in specs),
                                  *(p.dtype or dtype for p in (local or {}).values()))
        outs = tuple(o if o.dtype is not None else o.with_dtype(dtype) for o in outs)
    return outs


def shape_input_dtype(layer: Layer, dtype: str) -> str:
    """The dtype a bare shape tuple for ``layer``'s input means in a model of
    dtype ``dtype``: the model's dtype when the layer takes floating input (a
    float64 model takes float64 inputs), else ``layer.input_dtype`` (int64 ids
    for an `Embedding`)."""
    declared = layer.input_dtype
    if declared in FLOATING and dtype in FLOATING:
        return dtype
    return declared


def check_param_dtype(
    layer: Layer,
    x: TensorSpec | tuple[TensorSpec, ...],
    params: Mapping[str, ParamSpec],
    dtype: str,
    path: str,
) -> None:
    """A layer computes in its parameters' dtype: when any of its ``params``
    is left to the model's ``dtype`` (``ParamSpec.dtype`` None, as every
    built-in layer's are), each floating-point input (``x``: one spec or a
    tuple of them) must have that dtype. Raises `ShapeError` at the layer
    otherwise, as torch's kernels would (NumPy would promote, JAX demote).

    Integer and bool inputs are left to the layer's rule (an `Embedding`
    takes int ids; a `Linear` rejects them itself). Parameters that name their
    own dtype are the layer author's business.

    Called by the propagation pass for every node with parameters, after its
    rules ran, and only when the inputs may disagree with ``dtype``."""
    ins = (x,) if isinstance(x, TensorSpec) else x
    for i, s in enumerate(ins):
        got = s.dtype
        if got == dtype or got not in FLOATING:
            continue
        if all(p.dtype is not None for p in params.values()):
            return
        which = "input" if len(ins) == 1 else f"input {i}"
        raise ShapeError(
            f"floating-point inputs of the parameters' dtype {dtype}",
            f"{which} dtype {got} (cast it, or build the model with dtype={got!r})",
            kind=layer.kind,
            path=path,
        )


_NO_PARAMS: dict[str, ParamSpec] = {}  # shared by layers without parameters; never mutated


def resolve_node(
    layer: Layer, specs: tuple[TensorSpec, ...], path: str, dtype: str = "float32"
) -> tuple[tuple[TensorSpec, ...], dict[str, ParamSpec]]:
    """Run a layer's shape and parameter rules on its input specs: its output
    specs (an output of the model's dtype, None, gets ``dtype``) and its local
    parameter specs. Every failure becomes a `ShapeError` naming the layer's
    ``path`` and kind.

    The one place rules are run: by the propagation pass for every node, and
    by a layer called on symbolic tensors (a functional model being defined,
    whose dtype is not known yet: float32). The parameters' dtype is checked
    against the inputs' by the pass (`check_param_dtype`)."""
    try:
        if len(specs) == 1:  # the common case: no argument tuple to unpack
            x = specs[0]
            out = layer.output_spec(x)
            local = layer.param_specs(x) if layer.has_params else _NO_PARAMS
        else:
            out = layer.output_spec(*specs)
            local = layer.param_specs(*specs) if layer.has_params else _NO_PARAMS
    except Exception as e:  # every failure of a rule names the layer
        raise rule_error(layer, specs, path, e) from e
    if type(out) is TensorSpec and layer.num_outputs == 1:
        if out.dtype is not None:
            return (out,), local
        if layer.dtype_rule == "model":  # `check_outputs`'s answer, without its checks
            return (TensorSpec._make(out.shape, dtype),), local
    return check_outputs(layer, out, path, dtype, specs, local), local


class _Call:
    """One call of a layer on symbolic tensors (a node of a functional graph)."""

    __slots__ = ("layer", "inputs", "outputs")

    def __init__(self, layer: Layer | None, inputs: tuple[SymbolicTensor, ...]) -> None:
        self.layer = layer
        self.inputs = inputs
        self.outputs: tuple[SymbolicTensor, ...] = ()


class SymbolicTensor:
    """A tensor of a model being defined: an `Input`, or a layer's output.

    ``.shape`` and ``.dtype`` are known (symbolic where the input was)."""

    __slots__ = ("call", "index", "spec", "input_name")

    def __init__(self, call: _Call, index: int, spec: TensorSpec, input_name: str | None = None):
        self.call = call
        self.index = index
        self.spec = spec
        self.input_name = input_name

    @property
    def shape(self) -> tuple[Any, ...]:
        """The (possibly symbolic) shape."""
        return self.spec.shape

    @property
    def dtype(self) -> str:
        """The dtype name."""
        return self.spec.dtype

    def __repr__(self) -> str:
        src = self.input_name or (self.call.layer.kind if self.call.layer else "?")
        return f"<SymbolicTensor {format_shape(self.spec.shape)} {self.spec.dtype} from {src}>"
