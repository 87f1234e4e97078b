"""Bad input everywhere gets one kind of answer: a `ShapeError`, `TypeError` or
`ValueError` naming what was wrong (never a raw ZeroDivisionError,
RecursionError, IndexError, a hang, silent acceptance of nonsense, or code
evaluated). Properties over every public layer constructor and the spec
parser."""

from __future__ import annotations

import inspect
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import lazyshape as ls

#: every public layer, with valid constructor arguments and an input it takes
BASE: dict[str, tuple[tuple, dict, object]] = {
    "AdaptiveAvgPool1d": ((2,), {}, (2, 3, 8)),
    "Attention": ((4, 2), {"rope": 10000.0}, (2, 5, 16)),
    "AdaptiveAvgPool2d": ((2,), {}, (2, 3, 8, 8)),
    "AdaptiveAvgPool3d": ((2,), {}, (2, 3, 4, 4, 4)),
    "AvgPool1d": ((2,), {}, (2, 3, 8)),
    "AvgPool2d": ((2,), {}, (2, 3, 8, 8)),
    "AvgPool3d": ((2,), {}, (2, 3, 4, 4, 4)),
    "BatchNorm1d": ((), {}, (2, 3, 8)),
    "BatchNorm2d": ((), {}, (2, 3, 8, 8)),
    "BatchNorm3d": ((), {}, (2, 3, 4, 4, 4)),
    "Conv1d": ((4, 3), {}, (2, 3, 8)),
    "Conv2d": ((4, 3), {}, (2, 3, 8, 8)),
    "Conv3d": ((4, 3), {}, (2, 3, 4, 4, 4)),
    "ConvTranspose1d": ((4, 3), {}, (2, 3, 8)),
    "ConvTranspose2d": ((4, 3), {}, (2, 3, 8, 8)),
    "ConvTranspose3d": ((4, 3), {}, (2, 3, 4, 4, 4)),
    "DropPath": ((0.1,), {}, (2, 3)),
    "Dropout": ((), {}, (2, 3)),
    "ELU": ((), {}, (2, 3)),
    "Embedding": ((10, 4), {}, ls.TensorSpec((2, 3), "int64")),
    "LearnedTensor": (((1, 1, "D"),), {"batch": True}, (2, 5, 4)),
    "Flatten": ((), {}, (2, 3, 4)),
    "GELU": ((), {}, (2, 3)),
    "GRU": ((4,), {}, (2, 5, 3)),
    "GroupNorm": ((2,), {}, (2, 4, 5)),
    "Hardsigmoid": ((), {}, (2, 3)),
    "Hardswish": ((), {}, (2, 3)),
    "Identity": ((), {}, (2, 3)),
    "InstanceNorm1d": ((), {}, (2, 3, 8)),
    "InstanceNorm2d": ((), {}, (2, 3, 8, 8)),
    "InstanceNorm3d": ((), {}, (2, 3, 4, 4, 4)),
    "LSTM": ((4,), {}, (2, 5, 3)),
    "LayerNorm": ((), {}, (2, 3, 4)),
    "LayerScale": ((), {}, (2, 3)),
    "LeakyReLU": ((), {}, (2, 3)),
    "Linear": ((4,), {}, (2, 3)),
    "MaxPool1d": ((2,), {}, (2, 3, 8)),
    "MaxPool2d": ((2,), {}, (2, 3, 8, 8)),
    "MaxPool3d": ((2,), {}, (2, 3, 4, 4, 4)),
    "Mish": ((), {}, (2, 3)),
    "MultiheadAttention": ((2,), {}, (2, 5, 4)),
    "Permute": ((0, 2, 1), {}, (2, 3, 4)),
    "PixelShuffle": ((2,), {}, (2, 8, 3, 3)),
    "PixelUnshuffle": ((2,), {}, (2, 3, 4, 4)),
    "RMSNorm": ((), {}, (2, 3, 4)),
    "RotaryEmbedding": ((), {}, (2, 4, 5, 8)),
    "ReLU": ((), {}, (2, 3)),
    "ReLU6": ((), {}, (2, 3)),
    "Reshape": ((-1, 6), {}, (2, 3, 2)),
    "SiLU": ((), {}, (2, 3)),
    "SwiGLU": ((8,), {}, (2, 5, 4)),
    "Sigmoid": ((), {}, (2, 3)),
    "Softmax": ((), {}, (2, 3)),
    "Softplus": ((), {}, (2, 3)),
    "Tanh": ((), {}, (2, 3)),
    "Transpose": ((1, 2), {}, (2, 3, 4)),
    "Unflatten": ((1, (2, 3)), {}, (2, 6)),
    "Upsample": ((), {"scale_factor": 2}, (2, 3, 8, 8)),
    "Add": ((), {}, [(2, 3), (2, 3)]),
    "Multiply": ((), {}, [(2, 3), (2, 3)]),
    "Concat": ((), {}, [(2, 3), (2, 3)]),
}

BAD = [-1, 0, -(10**30), 10**30, 2.5, math.nan, math.inf, True, None, "x", "", [], [1, "a"],
       (0, 0), (-1,), (1, 2, 3, 4, 5), {"a": 1}, object(), b"1", 1j]

ANSWERS = (ls.ShapeError, TypeError, ValueError)


def _layers() -> list[str]:
    return sorted(
        n for n, o in vars(ls).items()
        if isinstance(o, type) and issubclass(o, ls.Layer) and not issubclass(o, ls.Module)
        and o is not ls.Layer
    )


def test_the_table_covers_every_public_layer():
    assert set(BASE) == set(_layers())


def _parameters(cls: type) -> list[inspect.Parameter]:
    return [p for p in inspect.signature(cls).parameters.values()
            if p.name != "name" and p.kind is not inspect.Parameter.VAR_POSITIONAL]


def _construct_and_infer(kind: str, param: inspect.Parameter, bad: object) -> None:
    """Build layer ``kind`` with ``param`` set to ``bad`` (the others valid) and
    infer it on an input it takes: it must accept, or answer in one of the clear
    ways naming the argument (at construction) or the layer's path (at
    inference); anything else propagates."""
    cls = getattr(ls, kind)
    args, kwargs, shape = BASE[kind]
    positional = [p.name for p in _parameters(cls)
                  if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD]
    call_args, call_kwargs = list(args), dict(kwargs)
    if param.name in positional and positional.index(param.name) < len(call_args):
        call_args[positional.index(param.name)] = bad
    else:
        call_kwargs[param.name] = bad
    try:
        layer = cls(*call_args, **call_kwargs)
    except ANSWERS as e:
        assert param.name in str(e), f"the error does not name the argument: {e}"
        return
    # accepted at construction: then inference answers in one of the same ways,
    # naming the layer's path
    inputs = shape if isinstance(shape, list) else [shape]
    try:
        ls.infer(ls.Sequential(layer), *inputs)
    except ANSWERS as e:
        assert "'0'" in str(e), f"the error does not name the layer's path: {e}"


def test_every_bad_value_of_every_hyperparameter_is_a_clear_error_or_harmless():
    failures = []
    for kind in sorted(BASE):
        for param in _parameters(getattr(ls, kind)):
            for bad in BAD:
                try:
                    _construct_and_infer(kind, param, bad)
                except Exception as e:  # noqa: BLE001 - collected and reported below
                    failures.append(f"{kind}({param.name}={bad!r}): {type(e).__name__}: {e}")
    assert not failures, "\n".join(failures)


def test_an_absurd_count_is_refused_at_construction():
    with pytest.raises(ls.ShapeError, match="num_layers"):
        ls.LSTM(4, num_layers=10**30)


VALUES = st.one_of(
    st.sampled_from(BAD),
    st.integers(),
    st.floats(),
    st.text(max_size=4),
    st.lists(st.integers(-3, 5), max_size=4),
    st.tuples(st.integers(-3, 5), st.integers(-3, 5)),
)


@given(data=st.data())
def test_a_bad_hyperparameter_is_a_clear_error_or_harmless(data):
    kind = data.draw(st.sampled_from(sorted(BASE)), label="layer")
    params = _parameters(getattr(ls, kind))
    if not params:
        return
    param = data.draw(st.sampled_from(params), label="parameter")
    _construct_and_infer(kind, param, data.draw(VALUES, label="value"))


SPEC_ALPHABET = st.sampled_from(list("BHW0123456789+-*/%() ") + ["//", "**", "max(", "min(",
                                                                  ",", "__import__", "'os'", "."])


@given(st.lists(SPEC_ALPHABET, max_size=12).map("".join))
def test_any_spec_string_is_a_dim_or_a_clear_error(text):
    try:
        inf = ls.infer(ls.Sequential(ls.Linear(3)), ("N", text))
    except ANSWERS as e:
        assert str(e)
        return
    assert inf.output.shape[-1] == 3


@pytest.mark.parametrize("text", [
    "B+", "2*", "B**99999", "B**2", "__import__('os').system('touch PWNED')", "B//0", "B % 0",
    "-B", "-B-1", "1e9", "", "(B", "B)", "B.x", "lambda: 1", "max(B)", "B if B else 2", "B" * 10_000,
    "(" * 500 + "B" + ")" * 500, "+".join(["B"] * 5000),
])
def test_malformed_and_hostile_specs_are_value_errors(text, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    try:
        ls.infer(ls.Sequential(ls.Linear(3)), ("N", text))
    except ANSWERS as e:
        assert "input0" in str(e) or "dim" in str(e)
    assert not Path("PWNED").exists()
