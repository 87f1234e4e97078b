"""`Layer`: the base class of every layer, built-in or custom.

A layer holds hyperparameters only: no shapes, no arrays. It declares three
things, and everything else (inference, summaries, every backend, the
harness) is derived from them:

- ``output_spec(*inputs) -> TensorSpec`` (or a tuple of them): the shape rule;
- ``param_specs(*inputs) -> dict[str, ParamSpec]``: the parameter rule;
- ``forward(params, *xs)``: the computation, written once against `ls.ops`.

Calling a layer on symbolic tensors (`Input`) records a node of a functional
model; the output spec is computed at once, so ``h.shape`` is known.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from ._dims import SymbolicComparisonError, format_shape
from ._errors import ShapeError
from ._specs import ParamSpec, TensorSpec
from .layers._common import FLOATING

__all__ = [
    "Layer", "Context", "SymbolicTensor", "resolve_node", "format_hparam", "check_param_dtype",
    "shape_input_dtype",
]


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


# "LeakyReLU" -> "leaky_relu", "ReLU" -> "relu", "BatchNorm2d" -> "batch_norm2d"
_SNAKE = re.compile(r"(?<=[a-z0-9])(?=[A-Z][a-z])")


class Layer:
    """Base class of every layer.

    Subclasses set hyperparameters in ``__init__`` (calling
    ``super().__init__()``) and override `output_spec`, `param_specs` and
    `forward`. ``name=`` becomes the layer's parameter prefix in a model.
    """

    #: hyperparameter names shown by ``repr``, in order (custom layers: public attributes)
    hparam_names: ClassVar[tuple[str, ...] | None] = None
    #: rank of the input the layer expects (used for partial shapes before any input)
    expected_ndim: ClassVar[int | None] = None
    #: the dtype a bare shape tuple given to `infer` means for this layer's input
    #: (``"int64"`` for token ids of an `Embedding`); a floating one stands for
    #: the model's dtype (`shape_input_dtype`)
    input_dtype: ClassVar[str] = "float32"
    #: how many outputs ``output_spec`` returns
    num_outputs: ClassVar[int] = 1
    #: layers that need the training flag, randomness or buffer updates get ``ctx=``
    needs_context: ClassVar[bool] = False

    name: str | None

    def __init__(self, *, name: str | None = None) -> None:
        if name is not None and (not isinstance(name, str) or not name or "." in name):
            raise ValueError(f"a layer name is a non-empty string without '.', got {name!r}")
        self.name = name

    @property
    def kind(self) -> str:
        """The layer kind, as errors and summaries name it (its class name)."""
        return type(self).__name__

    # -- the three methods a layer declares --------------------------------

    def output_spec(self, *inputs: TensorSpec) -> TensorSpec | tuple[TensorSpec, ...]:
        """Shape rule: the output spec(s) for these input specs."""
        raise NotImplementedError(f"{self.kind} does not define output_spec")

    def param_specs(self, *inputs: TensorSpec) -> dict[str, ParamSpec]:
        """Parameter rule: ``{name: ParamSpec}`` for these input specs."""
        return {}

    def forward(self, params: Mapping[str, Any], *xs: Any) -> Any:
        """Computation on backend arrays, written with `ls.ops`."""
        raise NotImplementedError(f"{self.kind} does not define forward")

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

    def describe(self, *inputs: TensorSpec) -> dict[str, Any]:
        """The hyperparameters with inferred sizes filled in from input specs."""
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


def check_outputs(layer: Layer, out: Any, path: str) -> tuple[TensorSpec, ...]:
    """Normalize what ``output_spec`` returned to a tuple of specs, checked
    against ``layer.num_outputs``."""
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


def resolve_node(
    layer: Layer, specs: tuple[TensorSpec, ...], path: str
) -> tuple[tuple[TensorSpec, ...], dict[str, ParamSpec]]:
    """Run a layer's shape and parameter rules; every failure becomes a
    `ShapeError` naming the layer's path and kind. (A functional model being
    defined has no dtype yet: `check_param_dtype` runs when it is inferred.)"""
    try:
        out = layer.output_spec(*specs)
        params = layer.param_specs(*specs)
    except Exception as e:
        raise rule_error(layer, specs, path, e) from e
    return check_outputs(layer, out, path), params


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
