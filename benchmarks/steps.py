"""What each contender does at each step, written once for the in-process timings
and for the separate-process memory measurements.

A step factory takes a model key (``"A"`` ... ``"D"``, ``"gpt2"``, see
`benchmarks.models.REFERENCE`) and returns ``(setup, run)``: ``setup()``
defines a fresh model (and its input), untimed; ``run(state)`` is the step,
timed. Steps:

- ``resolve`` (shape inference, nothing allocated):
  - ``lazyshape``: ``ls.infer(model, (8, 32))`` on a freshly defined model
    (compiling its flat program included); ``lazyshape_symbolic`` from the
    symbolic input (``("B", 32)``, ``("B", 3, "H", "W")``, ...);
  - ``torch_meta``: the ``Lazy*`` model made under ``torch.device("meta")``
    and one ``no_grad`` forward of a meta input (GPT-2: the hand-written model
    on meta: torch has no lazy attention);
  - ``torch_lazy`` (model A only): the same on the CPU with a
    real batch;
  - ``flax_eval_shape``: ``jax.eval_shape(model.init, key, ShapeDtypeStruct)``;
  - ``python_floor`` (model A only): a bare loop doing the bookkeeping;
  - (Keras runs in its own process: `benchmarks.keras_models`.)
- ``init`` (a usable model: shapes resolved, parameters allocated and initialized):
  - ``lazyshape_numpy`` / ``_torch`` / ``_jax``: ``ls.build(model, backend)``
    and ``.materialize(input shape)`` (JAX: until the arrays are ready);
  - ``lazyshape_<backend>_portable``: the same with ``rng="portable"``;
  - ``torch_lazy``: PyTorch's lazy dry run: the ``Lazy*`` model and one
    ``no_grad`` forward of a real batch (it computes the forward too);
  - ``torch_hand``: constructing the hand-written torch model, sizes spelled out;
  - ``flax_init``: ``model.init(key, x)`` on a real batch (eager, until ready);
  - ``jax_hand``: hand-written JAX, one ``jax.random.uniform`` per parameter of
    the model's shapes (until ready): what JAX itself costs to draw them.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

from .models import (
    REFERENCE,
    Plan,
    channels_last,
    flax_model,
    lazyshape_model,
    torch_lazy_model,
    torch_model,
)

__all__ = ["STEPS", "NEEDS", "make", "imports", "floor_pass"]

Factory = Callable[[str], tuple[Callable[[], Any], Callable[[Any], Any]]]


# -- lazyshape -----------------------------------------------------------------------

def _ls_resolve(symbolic: bool) -> Factory:
    def factory(key: str) -> tuple[Callable[[], Any], Callable[[Any], Any]]:
        import lazyshape as ls

        ref = REFERENCE[key]
        shape = ref.symbolic_shape if symbolic else ref.input_shape
        return (lambda: lazyshape_model(key)), (lambda net: ls.infer(net, shape))

    return factory


def _ls_init(backend: str, rng: str = "native") -> Factory:
    def factory(key: str) -> tuple[Callable[[], Any], Callable[[Any], Any]]:
        import lazyshape as ls

        shape = REFERENCE[key].input_shape
        dtype = REFERENCE[key].input_dtype

        def run(net: Any) -> Any:
            m = ls.build(net, backend, seed=0 if backend != "torch" or rng != "native" else None,
                         rng=rng)
            m.materialize(ls.TensorSpec(shape, dtype))
            if backend == "jax":
                import jax

                jax.block_until_ready(m.params)
            return m

        return (lambda: lazyshape_model(key)), run

    return factory


def _jax_hand(key: str) -> tuple[Callable[[], Any], Callable[[Any], Any]]:
    import lazyshape as ls

    shapes = [tuple(int(d) for d in p.shape)
              for p in ls.infer(lazyshape_model(key), REFERENCE[key].input_shape).params.values()]

    def run(_: Any) -> Any:
        import jax

        k = jax.random.key(0)
        out = [jax.random.uniform(jax.random.fold_in(k, i), s, minval=-0.1, maxval=0.1)
               for i, s in enumerate(shapes)]
        return jax.block_until_ready(out)

    return (lambda: None), run


# -- the floor: a bare loop (model A) --------------------------------------------------

class _FloorLinear:
    __slots__ = ("out_features",)

    def __init__(self, out_features: int) -> None:
        self.out_features = out_features


class _FloorReLU:
    __slots__ = ()


def _floor_layers(plan: Plan) -> list[Any]:
    table: dict[str, Callable[..., Any]] = {"linear": _FloorLinear, "relu": _FloorReLU}
    return [table[kind](*args) for kind, *args in plan.steps]


def floor_pass(layers: list[Any], shape: tuple[int, ...]) -> list[Any]:
    """Per layer: the output shape tuple and ``{name: parameter shape tuple}``."""
    records = []
    for layer in layers:
        if type(layer) is _FloorLinear:
            out = layer.out_features
            params = {"weight": (out, shape[-1]), "bias": (out,)}
            shape = (*shape[:-1], out)
        else:
            params = {}
        records.append((shape, params))
    return records


def _floor(key: str) -> tuple[Callable[[], Any], Callable[[Any], Any]]:
    plan = REFERENCE[key].plan
    if plan is None or any(kind not in ("linear", "relu") for kind, *_ in plan.steps):
        raise NotImplementedError("the bare-loop floor is written for Linear/ReLU stacks")
    shape = REFERENCE[key].input_shape
    return (lambda: _floor_layers(plan)), (lambda layers: floor_pass(layers, shape))


# -- torch -----------------------------------------------------------------------------

def _torch_input(key: str, device: str) -> Any:
    import torch

    ref = REFERENCE[key]
    if ref.input_dtype == "int64":
        return torch.zeros(ref.input_shape, dtype=torch.int64, device=device)
    if device == "meta":
        return torch.empty(ref.input_shape, device=device)
    return torch.randn(ref.input_shape, generator=torch.Generator().manual_seed(0))


def _torch_dry_run(device: str) -> Factory:
    def factory(key: str) -> tuple[Callable[[], Any], Callable[[Any], Any]]:
        import torch

        def setup() -> Any:
            with warnings.catch_warnings():  # "Lazy modules are a new feature ..."
                warnings.simplefilter("ignore")
                if device == "meta":
                    with torch.device("meta"):
                        return torch_lazy_model(key), _torch_input(key, device)
                return torch_lazy_model(key), _torch_input(key, device)

        def run(state: Any) -> Any:
            net, x = state
            with torch.no_grad():
                net(x)
            return net

        return setup, run

    return factory


def _torch_hand(key: str) -> tuple[Callable[[], Any], Callable[[Any], Any]]:
    return (lambda: None), (lambda _: torch_model(key))


# -- flax ------------------------------------------------------------------------------

def _flax_input(key: str, abstract: bool) -> Any:
    import jax
    import jax.numpy as jnp

    ref = REFERENCE[key]
    shape = channels_last(key, ref.input_shape)
    dtype = jnp.int32 if ref.input_dtype == "int64" else jnp.float32
    if abstract:
        return jax.ShapeDtypeStruct(shape, dtype)
    if ref.input_dtype == "int64":
        return jnp.zeros(shape, dtype)
    return jax.random.normal(jax.random.key(1), shape, dtype)


def _flax_eval_shape(key: str) -> tuple[Callable[[], Any], Callable[[Any], Any]]:
    import jax

    x = _flax_input(key, abstract=True)
    rng = jax.random.key(0)
    return (lambda: flax_model(key)), (lambda m: jax.eval_shape(m.init, rng, x))


def _flax_init(key: str) -> tuple[Callable[[], Any], Callable[[Any], Any]]:
    import jax

    x = _flax_input(key, abstract=False)
    rng = jax.random.key(0)
    return (lambda: flax_model(key)), (lambda m: jax.block_until_ready(m.init(rng, x)))


#: step -> contender -> factory
STEPS: dict[str, dict[str, Factory]] = {
    "resolve": {
        "lazyshape": _ls_resolve(symbolic=False),
        "lazyshape_symbolic": _ls_resolve(symbolic=True),
        "python_floor": _floor,
        "torch_lazy": _torch_dry_run("cpu"),
        "torch_meta": _torch_dry_run("meta"),
        "flax_eval_shape": _flax_eval_shape,
    },
    "init": {
        "lazyshape_numpy": _ls_init("numpy"),
        "lazyshape_torch": _ls_init("torch"),
        "lazyshape_jax": _ls_init("jax"),
        "lazyshape_numpy_portable": _ls_init("numpy", "portable"),
        "lazyshape_torch_portable": _ls_init("torch", "portable"),
        "lazyshape_jax_portable": _ls_init("jax", "portable"),
        "torch_lazy": _torch_dry_run("cpu"),
        "torch_hand": _torch_hand,
        "flax_init": _flax_init,
        "jax_hand": _jax_hand,
    },
}

#: contender -> the module it needs (None: lazyshape and NumPy only)
NEEDS: dict[str, str | None] = {
    "lazyshape": None, "lazyshape_symbolic": None, "python_floor": None,
    "lazyshape_numpy": None, "lazyshape_torch": "torch", "lazyshape_jax": "jax",
    "lazyshape_numpy_portable": None, "lazyshape_torch_portable": "torch",
    "lazyshape_jax_portable": "jax",
    "torch_lazy": "torch", "torch_meta": "torch", "torch_hand": "torch",
    "flax_eval_shape": "flax", "flax_init": "flax", "jax_hand": "jax",
}


def imports(contender: str) -> None:
    """Import what a contender needs and, for lazyshape's, materialize a tiny
    model once on its backend (before a memory baseline is taken)."""
    import lazyshape  # noqa: F401

    need = NEEDS.get(contender)
    if need == "torch" or contender.startswith("lazyshape_torch"):
        import lazyshape_torch  # noqa: F401
        import torch

        torch.set_num_threads(1)
    if need in ("jax", "flax"):
        import jax  # noqa: F401
        import lazyshape_jax  # noqa: F401
    if need == "flax":
        import flax.linen  # noqa: F401
    if need == "jax":  # the first draw (XLA's client started) paid before the baseline
        import jax

        jax.block_until_ready(jax.random.uniform(jax.random.key(1), (2,)))
    backend = contender.split("_")[1] if contender.startswith("lazyshape_") else ""
    if backend in ("numpy", "torch", "jax"):  # the backend's modules loaded, its first use paid
        import lazyshape as ls

        rng = "portable" if contender.endswith("_portable") else "native"
        ls.build(ls.Sequential(ls.Linear(2), ls.LayerNorm()), backend, rng=rng).materialize((1, 3))


def make(step: str, contender: str, key: str) -> Callable[[], Any]:
    """Define the model now; return the step as a zero-argument callable."""
    setup, run = STEPS[step][contender](key)
    state = setup()
    return lambda: run(state)
