"""JAX with the ecosystem's tools: flax's variables layout (``params`` apart from
``batch_stats``), ``mutable``, ``jax.grad`` and optax training loops on the zoo
models, and shape polymorphism (``jax.export`` / ``jax.eval_shape`` with
symbolic dims)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import lazyshape as ls
from lazyshape import zoo

try:
    import jax
    import jax.numpy as jnp
    import optax
    from jax import export
except ModuleNotFoundError as e:  # the tests skip without JAX (tests/conftest.py)
    if e.name not in ("jax", "jaxlib", "optax"):
        raise
    jax = jnp = optax = export = None

pytestmark = pytest.mark.jax

KEY = jax.random.key(0) if jax else None


def small_cnn() -> ls.Sequential:
    """Conv, BatchNorm (buffers), pooling and a head whose size does not depend
    on H, W: ``(B, 3, H, W) -> (B, 5)``."""
    return ls.Sequential(
        ls.Conv2d(8, 3, padding=1), ls.BatchNorm2d(), ls.ReLU(), ls.MaxPool2d(2),
        ls.Conv2d(8, 3, stride=2), ls.AvgPool2d(2, ceil_mode=True), ls.AdaptiveAvgPool2d(1),
        ls.Flatten(), ls.Linear(5),
    )


def build(model: ls.Layer, seed: int = 0) -> Any:
    """The model on JAX with portable init: NumPy draws, so building compiles
    no sampler (the tests stay fast)."""
    return ls.build(model, "jax", rng="portable", seed=seed)


def shapes(tree: Any) -> Any:
    return jax.tree.map(jnp.shape, tree)


def normal(*shape: int, seed: int = 0) -> Any:
    return jax.random.normal(jax.random.key(seed), shape, jnp.float32)


# -- the variables layout ------------------------------------------------------------


def test_init_puts_buffers_in_batch_stats_and_grad_works_on_params() -> None:
    m = build(small_cnn())
    x = normal(4, 3, 8, 8)
    variables = m.init(KEY, x)
    assert set(variables) == {"params", "batch_stats"}
    assert shapes(variables["batch_stats"]) == {
        "1": {"running_mean": (8,), "running_var": (8,), "num_batches_tracked": ()}
    }
    assert shapes(variables["params"]["1"]) == {"weight": (8,), "bias": (8,)}
    assert variables["batch_stats"]["1"]["num_batches_tracked"].dtype == jnp.int32
    # every leaf of params is a float: jax.grad and optax take them as they are
    params = variables["params"]
    assert all(jnp.issubdtype(leaf.dtype, jnp.floating) for leaf in jax.tree.leaves(params))
    grads = jax.jit(jax.grad(lambda p: jnp.sum(m.apply({**variables, "params": p}, x) ** 2)))(
        params
    )
    assert shapes(grads) == shapes(params)
    opt = optax.adam(1e-3)
    changes, _ = opt.update(grads, opt.init(params), params)
    assert shapes(changes) == shapes(params)
    # a model without buffers has params only
    assert set(build(ls.Linear(3)).init(KEY, (2, 4))) == {"params"}


def test_state_dicts_keep_torchs_flat_names(tmp_path: Any) -> None:
    m = build(small_cnn(), seed=1)
    x = normal(2, 3, 8, 8)
    y = m(x)
    assert set(m.variables) == {"params", "batch_stats"}  # the stored variables
    assert m.params is m.variables
    state = m.state_dict()
    assert {"1.running_mean", "1.running_var", "1.num_batches_tracked", "1.weight"} <= set(state)
    assert m.params["batch_stats"]["1"]["running_var"] is state["1.running_var"]
    ls.save(m, tmp_path / "cnn.safetensors")
    other = build(small_cnn())
    other.load_state_dict(ls.load(tmp_path / "cnn.safetensors"))
    np.testing.assert_array_equal(other(x), y)
    np.testing.assert_allclose(other.apply(other.params, x), y, rtol=1e-5, atol=1e-6)
    # assigning variables (after a training step) checks them like a checkpoint
    variables = m.init(KEY, x)
    _, updates = m.apply(variables, x, training=True, mutable=["batch_stats"])
    m.variables = {**variables, **updates}
    assert int(m.state_dict()["1.num_batches_tracked"]) == 1
    with pytest.raises(ls.ShapeError, match=r"missing \['1\.running_mean'"):
        m.variables = {"params": variables["params"]}


def test_mutable_returns_the_named_collections() -> None:
    m = build(small_cnn())
    x = normal(4, 3, 8, 8)
    variables = m.init(KEY, x)
    y, updates = m.apply(variables, x, training=True, mutable=["batch_stats"])
    assert set(updates) == {"batch_stats"}
    stats = updates["batch_stats"]["1"]
    assert int(stats["num_batches_tracked"]) == 1
    # torch's update of the running mean: 0.9 * 0 + 0.1 * the batch mean of conv 0's output
    conv = build(ls.Sequential(ls.Conv2d(8, 3, padding=1)))
    h = conv.apply({"params": {"0": variables["params"]["0"]}}, x)
    np.testing.assert_allclose(stats["running_mean"], 0.1 * h.mean(axis=(0, 2, 3)), rtol=1e-4,
                               atol=1e-6)
    assert shapes(updates["batch_stats"]) == shapes(variables["batch_stats"])
    # the same with a name, under jit; True names every collection, as flax's
    y2, same = jax.jit(lambda v, x: m.apply(v, x, training=True, mutable="batch_stats"))(
        variables, x
    )
    np.testing.assert_allclose(y2, y, rtol=1e-5, atol=1e-5)
    assert int(same["batch_stats"]["1"]["num_batches_tracked"]) == 1
    _, everything = m.apply(variables, x, training=True, mutable=True)
    assert set(everything) == {"params", "batch_stats"}
    assert everything["params"] is variables["params"]
    # evaluation: the running statistics, unchanged
    y_eval, kept = m.apply(variables, x, mutable=["batch_stats"])
    np.testing.assert_array_equal(y_eval, m.apply(variables, x))
    assert kept["batch_stats"] is variables["batch_stats"]
    # a model without buffers: nothing to update
    lin = build(ls.Linear(3))
    v = lin.init(KEY, (2, 4))
    out, none = lin.apply(v, jnp.ones((2, 4)), training=True, mutable=["batch_stats"])
    assert none == {} and out.shape == (2, 3)


def test_mutable_and_variables_errors() -> None:
    m = build(small_cnn())
    x = normal(4, 3, 8, 8)
    variables = m.init(KEY, x)
    message = (
        r"BatchNorm2d at '1' updates its buffers \(`1\.num_batches_tracked`\) in training; "
        r"call apply\(\.\.\., training=True, mutable=\['batch_stats'\]\)"
    )
    for mutable in ((), ["params"]):
        with pytest.raises(ValueError, match=message):
            m.apply(variables, x, training=True, mutable=mutable)
    with pytest.raises(ValueError, match=r"mutable names collections among \['params', "
                                         r"'batch_stats'\] \(or is True\); got \['batch_stat'\]"):
        m.apply(variables, x, mutable=["batch_stat"])
    # the params alone, as init returned them before: a clear error
    with pytest.raises(TypeError, match=r'variables are what init returns, \{"params": \.\.\., '
                                        r'"batch_stats": \.\.\.\}.*got \[\'0\', \'1\','):
        m.apply(variables["params"], x)
    with pytest.raises(ls.ShapeError, match=r"missing \['batch_stats: 1\.running_mean'"):
        m.apply({"params": variables["params"]}, x)
    swapped = {"params": {**variables["params"], "1": {**variables["params"]["1"],
                                                      "running_mean": jnp.zeros(8)}},
               "batch_stats": {"1": {k: v for k, v in variables["batch_stats"]["1"].items()
                                     if k != "running_mean"}}}
    with pytest.raises(ls.ShapeError, match=r"BatchNorm2d at '1': `1\.running_mean` in "
                                            r"variables\['batch_stats'\]; got `1\.running_mean` "
                                            r"in variables\['params'\]"):
        m.apply(swapped, x)


# -- training every zoo model with optax ----------------------------------------------


def _lenet() -> tuple[Any, tuple[Any, ...], Callable[[Any, Any], Any]]:
    x = normal(8, 1, 28, 28)
    labels = jnp.arange(8) % 10
    return zoo.lenet5(), (x,), lambda out, p: _xent(out, labels)


def _resnet() -> tuple[Any, tuple[Any, ...], Callable[[Any, Any], Any]]:
    x = normal(2, 3, 16, 16)
    labels = jnp.array([3, 7])
    return zoo.resnet18(num_classes=10), (x,), lambda out, p: _xent(out, labels)


def _gpt2() -> tuple[Any, tuple[Any, ...], Callable[[Any, Any], Any]]:
    ids = jax.random.randint(jax.random.key(3), (4, 9), 0, 50)
    model = zoo.gpt2(vocab_size=50, max_len=16, num_layers=2, embed_dim=32, num_heads=4,
                     mlp_dim=64)

    def next_token_loss(hidden: Any, params: Any) -> Any:
        # GPT-2's language-model head is the token embedding, transposed (tied)
        logits = hidden[:, :-1] @ params["wte"]["weight"].T
        return _xent(logits, ids[:, 1:])

    return model, (ids,), next_token_loss


def _lstm() -> tuple[Any, tuple[Any, ...], Callable[[Any, Any], Any]]:
    x = normal(6, 7, 4)
    labels = jnp.arange(6) % 5
    return zoo.lstm_classifier(num_classes=5, hidden_size=16), (x,), lambda out, p: _xent(out, labels)


def _xent(logits: Any, labels: Any) -> Any:
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


ZOO = {"lenet5": _lenet, "resnet18": _resnet, "gpt2": _gpt2, "lstm_classifier": _lstm}


@pytest.mark.parametrize("name", sorted(ZOO))
def test_optax_adam_trains_every_zoo_model(name: str) -> None:
    """The flax training step, written once for any model: gradients of
    ``variables["params"]``, the new ``batch_stats`` from ``mutable`` (none for
    a model without buffers), an optax update; the loss goes down."""
    model, inputs, loss_of = ZOO[name]()
    m = build(model)
    variables = m.init(KEY, *inputs)
    optimizer = optax.adam(1e-3)
    opt_state = optimizer.init(variables["params"])

    @jax.jit
    def step(variables: Any, opt_state: Any) -> Any:
        def loss_fn(params: Any) -> Any:
            out, updates = m.apply({**variables, "params": params}, *inputs, training=True,
                                   mutable=["batch_stats"])
            return loss_of(out, params), updates

        (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(variables["params"])
        changes, opt_state = optimizer.update(grads, opt_state, variables["params"])
        return {"params": optax.apply_updates(variables["params"], changes), **updates}, \
            opt_state, loss

    losses = []
    new = variables
    for _ in range(4):
        new, opt_state, loss = step(new, opt_state)
        losses.append(float(loss))
    assert all(b < a for a, b in zip(losses, losses[1:], strict=False)), losses
    assert jax.tree.structure(new) == jax.tree.structure(variables)
    if name == "resnet18":  # the running statistics were updated, every step
        stats = new["batch_stats"]
        assert int(stats["bn1"]["num_batches_tracked"]) == 4
        assert int(stats["layer4"]["1"]["bn2"]["num_batches_tracked"]) == 4
        assert not np.allclose(stats["bn1"]["running_var"], variables["batch_stats"]["bn1"]
                               ["running_var"])
    else:
        assert "batch_stats" not in new


# -- shape polymorphism ----------------------------------------------------------------


def _symbolic(spec: str, dtype: Any = None, constraints: tuple[str, ...] = ()) -> Any:
    return jax.ShapeDtypeStruct(export.symbolic_shape(spec, constraints=constraints),
                                dtype or jnp.float32)


def _export_and_compare(m: Any, variables: Any, spec: Any, xs: list[Any]) -> Any:
    """Export ``m.apply`` on a symbolic input spec; its outputs on each of ``xs``
    equal ``m.apply``'s. Returns the output avals."""
    exported = export.export(jax.jit(lambda v, x: m.apply(v, x)))(variables, spec)
    for x in xs:
        np.testing.assert_allclose(exported.call(variables, x), m.apply(variables, x),
                                   rtol=1e-5, atol=1e-5)
    return exported.out_avals


def test_export_with_a_symbolic_batch() -> None:
    m = build(ls.Sequential(ls.Linear(32), ls.ReLU(), ls.Linear(10)))
    variables = m.init(KEY, (1, 20))
    (out,) = _export_and_compare(m, variables, _symbolic("B, 20"),
                                 [normal(n, 20, seed=n) for n in (1, 3, 8)])
    assert str(out.shape) == "(B, 10)"
    # init from the symbolic spec gives the same variables
    jax.tree.map(np.testing.assert_array_equal, m.init(KEY, _symbolic("B, 20")), variables)
    # a shape problem is lazyshape's ShapeError, raised while tracing
    with pytest.raises(ls.ShapeError, match=r"Linear at '0'.*`0\.weight` of shape \(32, 21\); "
                                            r"got `0\.weight` of shape \(32, 20\)"):
        export.export(jax.jit(m.apply))(variables, _symbolic("B, 21"))


def test_export_with_symbolic_spatial_dims() -> None:
    """A network whose parameters don't depend on H, W exports with symbolic
    B, H, W (convolutions, max / ceil-mode average / adaptive pooling,
    BatchNorm in evaluation); LeNet's first Linear does depend on them, which
    is a ShapeError naming it (its batch alone may be symbolic)."""
    m = build(small_cnn())
    variables = m.init(KEY, (2, 3, 8, 8))
    xs = [normal(1, 3, 8, 8), normal(2, 3, 13, 10, seed=1)]
    (out,) = _export_and_compare(m, variables, _symbolic("B, 3, H, W"), xs)
    assert str(out.shape) == "(B, 5)"

    lenet = build(zoo.lenet5())
    lv = lenet.init(KEY, (1, 1, 28, 28))
    (logits,) = export.export(jax.jit(lenet.apply))(lv, _symbolic("B, 1, 28, 28")).out_avals
    assert str(logits.shape) == "(B, 10)"
    with pytest.raises(ls.ShapeError, match=r"`fc1\.weight` of shape \(120, .*H.*W.*\) needs H, W"):
        export.export(jax.jit(lenet.apply))(lv, _symbolic("B, 1, H, W"))


def test_gpt2_eval_shape_and_export_with_symbolic_batch_and_length() -> None:
    m = build(zoo.gpt2(vocab_size=50, max_len=16, num_layers=2, embed_dim=32, num_heads=4,
                       mlp_dim=64))
    variables = m.init(KEY, ls.TensorSpec((1, 4), "int32"))
    out = jax.eval_shape(m.apply, variables, _symbolic("B, T", jnp.int32))
    assert str(out.shape) == "(B, T, 32)" and out.dtype == jnp.float32
    ids = [jax.random.randint(jax.random.key(n), (n, t), 0, 50) for n, t in ((1, 16), (3, 5))]
    _export_and_compare(m, variables, _symbolic("B, T", jnp.int32), ids)
    # with the bound lazyshape infers (T <= max_len) declared, the same
    (low, high), = [ls.infer(m.model, ("B", "T")).valid_ranges["T"]]
    assert (low, high) == (1, 16)
    bounded = _symbolic("B, T", jnp.int32, constraints=(f"T <= {high}",))
    (hidden,) = export.export(jax.jit(m.apply))(variables, bounded).out_avals
    assert str(hidden.shape) == "(B, T, 32)"


def test_lstm_exports_with_a_symbolic_length() -> None:
    m = build(zoo.lstm_classifier(num_classes=5, hidden_size=8))
    variables = m.init(KEY, (1, 3, 4))
    (out,) = _export_and_compare(m, variables, _symbolic("B, T, 4"),
                                 [normal(2, 7, 4)])
    assert str(out.shape) == "(B, 5)"


def test_a_forward_needing_a_bound_on_a_symbolic_dim_names_the_layer() -> None:
    """A dilated max pooling slices the input at sizes that are valid only for
    H, W >= 5, reflect padding needs H, W > 1: JAX can't decide that of a bare
    symbol, which is a ShapeError at the layer; declared as constraints, the
    export works."""
    reflect = build(ls.Sequential(ls.Conv2d(2, 3, padding=1, padding_mode="reflect")))
    with pytest.raises(ls.ShapeError, match=r"Conv2d at '0': input sizes this layer's forward "
                                            r"can use while symbolic.*reflect"):
        jax.eval_shape(reflect.apply, reflect.init(KEY, (1, 3, 4, 4)), _symbolic("B, 3, H, W"))
    m = build(ls.Sequential(ls.Conv2d(2, 1), ls.MaxPool2d(3, 2, dilation=2)))
    variables = m.init(KEY, (1, 3, 9, 9))
    with pytest.raises(ls.ShapeError, match=r"MaxPool2d at '1': input sizes this layer's forward "
                                            r"can use while symbolic"):
        export.export(jax.jit(m.apply))(variables, _symbolic("B, 3, H, W"))
    # the bounds are the rules' valid ranges
    ranges = ls.infer(m.model, ("B", 3, "H", "W")).valid_ranges
    assert (ranges["H"], ranges["W"]) == ((5, None), (5, None))
    bounded = _symbolic("B, 3, H, W", constraints=("H >= 5", "W >= 5"))
    _export_and_compare(m, variables, bounded, [normal(2, 3, 9, 11)])


def test_jax_dims_become_lazyshape_dims() -> None:
    from lazyshape_jax.shapes import lazyshape_dim

    b, h, w = export.symbolic_shape("B, H, W")
    B, H, W = ls.Sym("B"), ls.Sym("H"), ls.Sym("W")
    assert lazyshape_dim(7) == 7
    assert lazyshape_dim(b) == B
    assert lazyshape_dim(2 * b * b * h - 3) == 2 * B * B * H - 3
    assert lazyshape_dim((h - 1) // 2 + w % 3) == (H - 1) // 2 + W % 3
    (mx,) = export.symbolic_shape("max(B, H) + min(W, 4)")
    assert lazyshape_dim(mx) == ls.dims.max(B, H) + ls.dims.min(W, 4)
