"""The resample family: ``Upsample``, ``PixelShuffle``, ``PixelUnshuffle``.
Shape tables (concrete and symbolic), messages, construction errors, the
scale factors with an integer output-size formula, values equal to torch's own
modules on every backend, the torch native modules, JAX transforms, and the
harness's ``check_layer``."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from _frameworks import optional
from hypothesis import event, given
from hypothesis import strategies as st

import lazyshape as ls
from lazyshape.backend import get_backend
from lazyshape.dims import Sym, bind_shape, format_shape
from lazyshape.layers.resample import (
    PixelShuffle,
    PixelUnshuffle,
    Upsample,
    linear_matrix,
    nearest_indices,
    scale_fraction,
)
from lazyshape.testing import check_layer

torch = optional("torch")
F = optional("torch.nn.functional")
nn = optional("torch.nn")
jax = optional("jax")
jnp = optional("jax.numpy")

BACKENDS = [
    "numpy",
    pytest.param("torch", marks=pytest.mark.torch),
    pytest.param("jax", marks=pytest.mark.jax),
]
FRAMEWORK_ERRORS = (RuntimeError, ValueError, TypeError, NotImplementedError)


def out_shape(layer, shape):
    """The inferred output shape of ``layer`` on ``shape``, as text."""
    return format_shape(ls.infer(ls.Sequential(layer), shape).output.shape)


# -- rule tables ----------------------------------------------------------------------

SHAPES = [
    # (layer, input shape, expected output shape)
    (lambda: Upsample(scale_factor=2), ("B", 3, "H", "W"), "(B, 3, 2*H, 2*W)"),
    (lambda: Upsample(scale_factor=2), (2, 3, 5), "(2, 3, 10)"),
    (lambda: Upsample(scale_factor=2), (0, 3, 4), "(0, 3, 8)"),  # an empty batch, as torch
    (lambda: Upsample(scale_factor=3), ("N", "C", "D", 2, "W"), "(N, C, 3*D, 6, 3*W)"),
    (lambda: Upsample(scale_factor=1.5, mode="bilinear"), ("B", 3, "H", "W"),
     "(B, 3, (3*H)//2, (3*W)//2)"),
    (lambda: Upsample(scale_factor=1.5, mode="bilinear"), (1, 3, 5, 4), "(1, 3, 7, 6)"),
    (lambda: Upsample(scale_factor=0.5), ("B", 2, "L"), "(B, 2, L//2)"),
    (lambda: Upsample(scale_factor=0.3), ("B", 2, "L"), "(B, 2, (3*L)//10)"),
    (lambda: Upsample(scale_factor=0.3), (1, 2, 10), "(1, 2, 3)"),
    (lambda: Upsample(scale_factor=1 / 3, mode="trilinear"), ("N", 1, "D", "H", 7),
     "(N, 1, D//3, H//3, 2)"),
    (lambda: Upsample(scale_factor=2.2, mode="trilinear"), (1, 1, 2, 3, 4), "(1, 1, 4, 6, 8)"),
    (lambda: Upsample(scale_factor=(2, 0.5)), (1, 1, "H", 8), "(1, 1, 2*H, 4)"),
    (lambda: Upsample(scale_factor=0.7), (1, 1, 10), "(1, 1, 7)"),
    # float64 floor(90 * 0.7) is 62, one short of 7*90//10 (torch: 62)
    (lambda: Upsample(scale_factor=0.7), (1, 1, 90), "(1, 1, 62)"),
    (lambda: Upsample(size=5), (2, 3, 7), "(2, 3, 5)"),
    (lambda: Upsample(size=5), ("B", 3, "H", "W"), "(B, 3, 5, 5)"),
    (lambda: Upsample(size=(4, 6), mode="bilinear", align_corners=True), ("B", "C", "H", "W"),
     "(B, C, 4, 6)"),
    (lambda: Upsample(size=3, mode="linear"), (2, 4, 9), "(2, 4, 3)"),
    (lambda: PixelShuffle(2), ("B", "C", "H", "W"), "(B, C//4, 2*H, 2*W)"),
    (lambda: PixelShuffle(2), (2, 8, 3, 5), "(2, 2, 6, 10)"),
    (lambda: PixelShuffle(3), (18, 2, 1), "(2, 6, 3)"),  # (C, H, W): torch takes 3 dims
    (lambda: PixelShuffle(2), (2, 3, 8, 1, 1), "(2, 3, 2, 2, 2)"),  # more leading dims
    (lambda: PixelShuffle(2), (1, 0, 2, 2), "(1, 0, 4, 4)"),  # empty, as torch
    (lambda: PixelShuffle(1), ("B", "C", "H", "W"), "(B, C, H, W)"),
    (lambda: PixelUnshuffle(2), ("B", "C", "H", "W"), "(B, 4*C, H//2, W//2)"),
    (lambda: PixelUnshuffle(2), (2, 3, 4, 6), "(2, 12, 2, 3)"),
    (lambda: PixelUnshuffle(2), (3, 4, 2), "(12, 2, 1)"),
    (lambda: PixelUnshuffle(3), ("T", "B", 2, 3, 9), "(T, B, 18, 1, 3)"),
]


@pytest.mark.parametrize(("make", "shape", "expected"), SHAPES)
def test_output_shapes(make, shape, expected):
    assert out_shape(make(), shape) == expected


def test_symbolic_conditions_and_ranges():
    shuffle = ls.infer(ls.Sequential(PixelShuffle(2)), ("B", "C", "H", "W"))
    assert shuffle.conditions == ("C % 4 == 0 (at '0')",)
    unshuffle = ls.infer(ls.Sequential(PixelUnshuffle(3)), ("B", "C", "H", "W"))
    assert unshuffle.conditions == ("H % 3 == 0 (at '0')", "W % 3 == 0 (at '0')")
    # floor(3L/10) >= 1 exactly when L >= 4: the range the rule recorded
    assert ls.infer(ls.Sequential(Upsample(scale_factor=0.3)), ("B", 2, "L")).valid_ranges[
        "L"] == (4, None)
    assert ls.infer(ls.Sequential(Upsample(scale_factor=2)), ("B", 2, "L")).conditions == ()
    # a decided divisibility is no condition
    assert ls.infer(ls.Sequential(PixelShuffle(2)), ("B", 8, "H", "W")).conditions == ()


def test_output_dtype_is_the_inputs():
    up = ls.infer(ls.Sequential(Upsample(scale_factor=2)), ls.TensorSpec((1, 2, 3), "float64"))
    assert up.output.dtype == "float64"
    ids = ls.infer(ls.Sequential(PixelShuffle(2)), ls.TensorSpec((1, 4, 2, 2), "int64"))
    assert ids.output == ls.TensorSpec((1, 1, 4, 4), "int64")
    mask = ls.infer(ls.Sequential(PixelUnshuffle(2)), ls.TensorSpec((1, 1, 2, 2), "bool"))
    assert mask.output == ls.TensorSpec((1, 4, 1, 1), "bool")


BATCH = r" \(is the batch dim missing\?\)"

SHAPE_ERRORS = [
    # (layer, input, regex)
    (lambda: Upsample(scale_factor=2), (1, 2),
     r"^Upsample at '0': expected an input with 3, 4 or 5 dims \(N, C, \*spatial\): 1 to 3 "
     r"spatial dims; got input shape \(1, 2\) \(2 dims\)" + BATCH + "$"),
    (lambda: Upsample(size=2), (1, 1, 2, 2, 2, 2),
     r"expected an input with 3, 4 or 5 dims .*; got input shape \(1, 1, 2, 2, 2, 2\) \(6 dims\)$"),
    (lambda: Upsample(scale_factor=2, mode="bilinear"), (3, 8, 8),
     r"^Upsample at '0': expected an input with 4 dims \(N, C, H, W\) \(`mode` 'bilinear' "
     r"interpolates 2 spatial dims\); got input shape \(3, 8, 8\) \(3 dims\)" + BATCH + "$"),
    (lambda: Upsample(scale_factor=2, mode="linear"), (1, 3, 8, 8),
     r"expected an input with 3 dims \(N, C, L\) \(`mode` 'linear' interpolates 1 spatial "
     r"dim\); got input shape \(1, 3, 8, 8\) \(4 dims\)$"),
    (lambda: Upsample(size=(4, 4, 4)), (1, 3, 8, 8),
     r"expected an input with 5 dims \(N, C, D, H, W\) \(one spatial dim per entry of `size`\)"),
    (lambda: Upsample(scale_factor=(2, 2)), (1, 3, 8),
     r"expected an input with 4 dims .* \(one spatial dim per entry of `scale_factor`\)"),
    (lambda: Upsample(scale_factor=2), ls.TensorSpec((1, 1, 4), "int64"),
     r"^Upsample at '0': expected a floating-point input; got dtype int64$"),
    (lambda: Upsample(scale_factor=2, mode="bilinear"), ls.TensorSpec((1, 1, 4, 4), "uint8"),
     r"expected a floating-point input; got dtype uint8"),
    (lambda: Upsample(scale_factor=2), (1, 0, 4),
     r"^Upsample at '0': non-empty channel and spatial dims \(only the batch dim may be 0\); "
     r"got input shape \(1, 0, 4\)$"),
    (lambda: Upsample(size=3), ("B", 3, 0, "W"), r"non-empty channel and spatial dims"),
    (lambda: Upsample(scale_factor=0.3), (1, 2, 3),
     r"^Upsample at '0': an output of at least 1 along every spatial dim \(floor\(input \* "
     r"scale_factor\) >= 1\); got output spatial shape \(0,\) for input shape \(1, 2, 3\) "
     r"\[`scale_factor` \(=0.3\)\]$"),
    (lambda: Upsample(scale_factor=(1, 0.5)), ("B", 1, "H", 1),
     r"output spatial shape \(H, 0\) for input shape \(B, 1, H, 1\)"),
    (lambda: Upsample(scale_factor=1e300), (1, 1, 2),
     r"output sizes that fit in an int64; got floor\(2 \* 1e\+300\) for input size 2"),
    (lambda: Upsample(scale_factor=0.7), ("B", 1, "L"),
     r"^Upsample at '0': a `scale_factor` whose output size has an integer formula for a "
     r"symbolic input size .*; got `scale_factor` \(=0.7\) for the symbolic size L$"),
    (lambda: PixelShuffle(2), (1, 6, 4, 4),
     r"^PixelShuffle at '0': expected input channels \(dim -3\) divisible by "
     r"`upscale_factor`\*\*2 \(=4\); got input shape \(1, 6, 4, 4\) \(6 channels\)$"),
    (lambda: PixelShuffle(3), ("B", 12, "H", "W"), r"\(=9\); got input shape \(B, 12, H, W\)"),
    (lambda: PixelShuffle(2), (4, 4),
     r"^PixelShuffle at '0': expected an input with at least 3 dims \(\*, C, H, W\); got "
     r"input shape \(4, 4\) \(2 dims\)$"),
    (lambda: PixelUnshuffle(2), (1, 1, 3, 4),
     r"^PixelUnshuffle at '0': expected input height \(dim -2\) divisible by "
     r"`downscale_factor` \(=2\); got input shape \(1, 1, 3, 4\) \(3 height\)$"),
    (lambda: PixelUnshuffle(2), ("B", 1, "H", 5),
     r"expected input width \(dim -1\) divisible by `downscale_factor` \(=2\); got .* \(5 width\)"),
    (lambda: PixelUnshuffle(2), (0, 1, 2, 2),
     r"^PixelUnshuffle at '0': non-empty dims \(torch's pixel_unshuffle returns an empty "
     r"input unchanged, not unshuffled\); got input shape \(0, 1, 2, 2\)$"),
    (lambda: PixelUnshuffle(1), (5,), r"expected an input with at least 3 dims"),
]


@pytest.mark.parametrize(("make", "shape", "regex"), SHAPE_ERRORS)
def test_shape_errors(make, shape, regex):
    with pytest.raises(ls.ShapeError, match=regex):
        ls.infer(ls.Sequential(make()), shape)


HPARAM_ERRORS = [
    (lambda: Upsample(),
     r"^Upsample: exactly one of `size` and `scale_factor`; got `size` \(=None\), "
     r"`scale_factor` \(=None\)$"),
    (lambda: Upsample(size=2, scale_factor=2), r"exactly one of `size` and `scale_factor`"),
    (lambda: Upsample(scale_factor=2, mode="bicubic"),
     r"^Upsample: `mode` to be one of 'nearest', 'linear', 'bilinear', 'trilinear'; got "
     r"`mode` \(='bicubic'\)$"),
    (lambda: Upsample(scale_factor=2, align_corners=False),
     r"^Upsample: `align_corners` only with the interpolating modes \(linear, bilinear, "
     r"trilinear\); got `align_corners` \(=False\) with `mode` \(='nearest'\)$"),
    (lambda: Upsample(scale_factor=2, mode="bilinear", align_corners=1),
     r"`align_corners` to be a bool or None; got `align_corners` \(=1\)"),
    (lambda: Upsample(size=0),
     r"^Upsample: `size` to be a positive int or a tuple of 1 to 3 of them; got `size` \(=0\)$"),
    (lambda: Upsample(size=2.0), r"`size` to be a positive int"),
    (lambda: Upsample(size=[2, 2, 2, 2]), r"got `size` \(=\(2, 2, 2, 2\)\)"),
    (lambda: Upsample(scale_factor=-1.0),
     r"^Upsample: `scale_factor` to be a positive finite number or a tuple of 1 to 3 of them; "
     r"got `scale_factor` \(=-1.0\)$"),
    (lambda: Upsample(scale_factor=0), r"`scale_factor` to be a positive finite number"),
    (lambda: Upsample(scale_factor=math.inf), r"`scale_factor` \(=inf\)"),
    (lambda: Upsample(scale_factor=math.nan), r"`scale_factor` \(=nan\)"),
    (lambda: Upsample(scale_factor=True), r"`scale_factor` \(=True\)"),
    (lambda: Upsample(scale_factor=10**400), r"`scale_factor` to be a positive finite number"),
    (lambda: Upsample(scale_factor=(2, 0)), r"`scale_factor` \(=\(2, 0\)\)"),
    (lambda: Upsample(size=(2, 2, 2), mode="bilinear"),
     r"^Upsample: `size` with one entry per spatial dim: 2 for `mode` \(='bilinear'\); got "
     r"`size` \(=\(2, 2, 2\)\)$"),
    (lambda: Upsample(scale_factor=(2, 2), mode="linear"), r"`scale_factor` with one entry"),
    (lambda: PixelShuffle(0),
     r"^PixelShuffle: `upscale_factor` to be a positive int; got `upscale_factor` \(=0\)$"),
    (lambda: PixelShuffle(2.0), r"`upscale_factor` \(=2.0\)"),
    (lambda: PixelUnshuffle(-1),
     r"^PixelUnshuffle: `downscale_factor` to be a positive int; got `downscale_factor` "
     r"\(=-1\)$"),
]


@pytest.mark.parametrize(("make", "regex"), HPARAM_ERRORS)
def test_hyperparameter_errors(make, regex):
    with pytest.raises(ls.ShapeError, match=regex):
        make()


def test_repr_hparams_and_expected_rank():
    assert repr(Upsample(scale_factor=2)) == "Upsample(scale_factor=2.0, mode='nearest')"
    up = Upsample(size=[4, 6], mode="bilinear", align_corners=True)
    assert repr(up) == "Upsample(size=(4, 6), mode='bilinear', align_corners=True)"
    # torch's arguments, as nn.Upsample keeps them (scale factors as floats)
    assert Upsample(scale_factor=(2, 3)).hparams() == {"scale_factor": (2.0, 3.0),
                                                       "mode": "nearest"}
    assert Upsample(scale_factor=2).expected_ndim is None  # nearest: 1 to 3 spatial dims
    assert type(Upsample(scale_factor=np.float32(1.5)).scale_factor) is float
    assert Upsample(size=(3, 3)).expected_ndim == 4
    assert Upsample(scale_factor=2, mode="trilinear").expected_ndim == 5
    assert repr(PixelShuffle(3)) == "PixelShuffle(upscale_factor=3)"
    assert repr(PixelUnshuffle(2)) == "PixelUnshuffle(downscale_factor=2)"
    inf = ls.infer(ls.Sequential(Upsample(scale_factor=1.5, mode="linear")), (1, 2, 4))
    assert inf.layers[0].resolved == {"scale_factor": 1.5, "mode": "linear"}


def test_functional_model_and_summary():
    x = ls.Input(("B", 3, "H", "W"))
    h = ls.Conv2d(12, 3, padding=1, name="conv")(x)
    y = PixelShuffle(2, name="shuffle")(h)
    z = Upsample(scale_factor=0.5, mode="bilinear", name="down")(y)
    model = ls.Model(x, z)
    assert y.shape == (Sym("B"), 3, 2 * Sym("H"), 2 * Sym("W"))
    assert z.shape == (Sym("B"), 3, Sym("H"), Sym("W"))  # (2*H)//2 is H
    assert ls.infer(model, (2, 3, 5, 7)).output.shape == (2, 3, 5, 7)
    assert "PixelShuffle" in ls.summary(model, (2, 3, 5, 7))


# -- scale factors with an integer formula ------------------------------------------


@pytest.mark.parametrize(("scale", "fraction"), [
    (2.0, "2"), (1.5, "3/2"), (0.75, "3/4"), (0.3, "3/10"), (1 / 3, "1/3"), (2 / 3, "2/3"),
    (2.2, "11/5"), (1.1, "11/10"), (0.7, None), (0.29, None), (1.4, None), (0.123456789, None),
])
def test_scale_fraction(scale, fraction):
    got = scale_fraction(scale)
    assert (None if got is None else str(got)) == fraction
    near = Fraction(scale).limit_denominator()
    if fraction is None and float(near) == scale:
        # the float is p/q rounded down too far: float64 floor(d * scale) falls one
        # short of (d * p) // q at some sizes, so no formula is given
        d = np.arange(1, 10**5, dtype=np.int64)
        formula = (d * near.numerator) // near.denominator
        assert (np.floor(d * scale).astype(np.int64) != formula).any()


@given(st.one_of(
    st.integers(1, 400).flatmap(lambda q: st.integers(1, 4 * q).map(lambda p: p / q)),
    st.floats(0.01, 8.0),
))
def test_the_formula_is_torchs_float64_floor_wherever_it_is_given(scale):
    """Where `scale_fraction` gives ``p/q``, ``(d*p)//q`` is float64
    ``floor(d * scale)`` (torch's output size) for every size up to 2**18."""
    frac = scale_fraction(scale)
    event("no formula" if frac is None else "formula")
    if frac is None:
        return
    d = np.arange(1, 1 << 18, dtype=np.int64)
    torch_sizes = np.floor(d.astype(np.float64) * scale).astype(np.int64)
    assert np.array_equal((d * frac.numerator) // frac.denominator, torch_sizes)


@st.composite
def upsample_cases(draw):
    """A valid ``Upsample`` with a scale factor that has a formula, and a concrete
    input shape."""
    mode = draw(st.sampled_from(["nearest", "linear", "bilinear", "trilinear"]))
    n = {"linear": 1, "bilinear": 2, "trilinear": 3}.get(mode) or draw(st.integers(1, 3))
    scales = draw(st.tuples(*[st.sampled_from([0.5, 1.5, 2.0, 0.3, 1 / 3, 2.2, 1.7, 0.75])] * n))
    shape = (draw(st.integers(0, 3)), draw(st.integers(1, 3)),
             *draw(st.tuples(*[st.integers(1, 40)] * n)))
    return Upsample(scale_factor=scales, mode=mode), shape


@given(upsample_cases())
def test_symbolic_then_bind_equals_concrete(case):
    layer, shape = case
    names = ("N", "C", "D0", "D1", "D2")[: len(shape)]
    sym = ls.infer(ls.Sequential(layer), names).output.shape
    bound = bind_shape(sym, dict(zip(names, shape, strict=True)))
    try:
        concrete = ls.infer(ls.Sequential(layer), shape).output.shape
    except ls.ShapeError:
        assert any(d < 1 for d in bound[2:])  # too small: the formula says so too
        return
    assert bound == concrete


def test_nearest_indices_and_linear_matrix_are_torchs_tables():
    # float32 1/scale: 1/2.2 = 0.4545..., floor(i * 0.4545)
    assert nearest_indices(5, 11, 2.2).tolist() == [0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    # torch's 2-d kernel copies a kept size and halves a doubled one, whatever the scale
    assert nearest_indices(3, 3, 1.1, two_d=True).tolist() == [0, 1, 2]
    assert nearest_indices(3, 3, 1.1).tolist() == [0, 0, 1]
    assert nearest_indices(3, 6, 2.1, two_d=True).tolist() == [0, 0, 1, 1, 2, 2]
    m = linear_matrix(2, 4, 2.0, align_corners=False)
    np.testing.assert_array_equal(m, [[1, 0], [0.75, 0.25], [0.25, 0.75], [0, 1]])
    m = linear_matrix(3, 5, None, align_corners=True)
    np.testing.assert_array_equal(m, [[1, 0, 0], [0.5, 0.5, 0], [0, 1, 0], [0, 0.5, 0.5],
                                      [0, 0, 1]])
    np.testing.assert_array_equal(linear_matrix(4, 4, 1.3, align_corners=False), np.eye(4))
    assert linear_matrix(3, 7, 2.5, False, np.float64).dtype == np.float64


# -- values: torch's own modules are the reference on every backend -------------------

UPSAMPLES = {
    "nearest1d_x2": (dict(scale_factor=2), (2, 3, 7)),
    "nearest1d_x0.3": (dict(scale_factor=0.3), (2, 3, 17)),
    "nearest1d_size": (dict(size=11), (2, 3, 7)),
    "nearest2d_x2.2": (dict(scale_factor=2.2), (2, 3, 5, 4)),
    "nearest2d_x1.1": (dict(scale_factor=(1.1, 2.1)), (2, 2, 6, 3)),  # 2-d kernel's copy/halve
    "nearest2d_size_down": (dict(size=(3, 5)), (1, 2, 7, 11)),
    "nearest3d_x1.5": (dict(scale_factor=1.5), (1, 2, 3, 4, 5)),
    "nearest3d_x0.7": (dict(scale_factor=0.7), (1, 2, 4, 5, 9)),
    "linear_x2": (dict(scale_factor=2, mode="linear"), (2, 3, 6)),
    "linear_size_corners": (dict(size=13, mode="linear", align_corners=True), (2, 3, 6)),
    "bilinear_x2": (dict(scale_factor=2, mode="bilinear"), (2, 3, 5, 4)),
    "bilinear_x2_corners": (dict(scale_factor=2, mode="bilinear", align_corners=True),
                            (2, 3, 5, 4)),
    "bilinear_x1.7": (dict(scale_factor=1.7, mode="bilinear", align_corners=False),
                      (1, 2, 6, 7)),
    "bilinear_x1.7_corners": (dict(scale_factor=(1.7, 0.6), mode="bilinear",
                                   align_corners=True), (1, 2, 6, 7)),
    "bilinear_x0.3": (dict(scale_factor=0.3, mode="bilinear"), (1, 2, 11, 14)),
    "bilinear_size": (dict(size=(7, 3), mode="bilinear"), (2, 3, 5, 4)),
    "bilinear_size_corners": (dict(size=(9, 1), mode="bilinear", align_corners=True),
                              (2, 3, 5, 4)),
    "bilinear_size_kept": (dict(size=(5, 8), mode="bilinear"), (1, 1, 5, 4)),
    "trilinear_x1.5": (dict(scale_factor=1.5, mode="trilinear"), (1, 2, 3, 4, 5)),
    "trilinear_size_corners": (dict(size=(2, 5, 7), mode="trilinear", align_corners=True),
                               (1, 2, 3, 4, 5)),
}


@pytest.mark.torch  # the hand-written torch module is the reference on every backend
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(UPSAMPLES))
def test_upsample_equals_torch_on_every_backend(backend, case):
    kwargs, shape = UPSAMPLES[case]
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    inferred = ls.infer(ls.Sequential(Upsample(**kwargs)), shape).output
    m = ls.build(ls.Sequential(Upsample(**kwargs)), backend)
    y = ls.to_numpy(m(ls.asarray(x, backend)))
    ref = nn.Upsample(**kwargs)(torch.from_numpy(x)).numpy()
    assert y.shape == ref.shape == inferred.shape
    assert str(y.dtype) == inferred.dtype == "float32"
    if kwargs.get("mode", "nearest") == "nearest":
        np.testing.assert_array_equal(y, ref)  # a gather: the very values
    else:
        np.testing.assert_allclose(y, ref, rtol=1e-6, atol=1e-6)


@pytest.mark.torch
@pytest.mark.parametrize("case", sorted(UPSAMPLES))
def test_upsample_forward_through_ls_ops_on_torch_tensors(case):
    """The layer's own forward (``ls.ops``) on torch tensors, float32 and float64,
    equals torch's module (the torch backend builds the native module instead)."""
    kwargs, shape = UPSAMPLES[case]
    layer = Upsample(**kwargs)
    for dtype, tol in ((torch.float32, 1e-6), (torch.float64, 1e-12)):
        x = torch.from_numpy(np.random.default_rng(1).standard_normal(shape)).to(dtype)
        y = layer.forward({}, x)
        ref = nn.Upsample(**kwargs)(x)
        assert y.dtype == dtype
        torch.testing.assert_close(y, ref, rtol=tol, atol=tol)


@pytest.mark.torch
def test_numpy_forward_in_float64_and_half_precision():
    x = np.random.default_rng(2).standard_normal((2, 3, 5, 4))
    layer = Upsample(scale_factor=1.7, mode="bilinear")
    y = layer.forward({}, x)
    assert y.dtype == np.float64
    ref = F.interpolate(torch.from_numpy(x), scale_factor=1.7, mode="bilinear").numpy()
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-12)  # torch's float64 opmath
    half = layer.forward({}, x.astype(np.float16))
    assert half.dtype == np.float16
    np.testing.assert_allclose(half, ref, rtol=1e-2, atol=1e-2)
    nearest = Upsample(scale_factor=2.2).forward({}, x.astype(np.float16))
    ref16 = F.interpolate(torch.from_numpy(x.astype(np.float16)), scale_factor=2.2).numpy()
    np.testing.assert_array_equal(nearest, ref16)


@st.composite
def interpolate_cases(draw):
    """A layer configuration (maybe invalid at inference) and a concrete input."""
    mode = draw(st.sampled_from(["nearest", "nearest", "linear", "bilinear", "trilinear"]))
    n = draw(st.integers(1, 3))
    rank_n = {"linear": 1, "bilinear": 2, "trilinear": 3}.get(mode, n)
    kwargs = {"mode": mode}
    if draw(st.booleans()):
        kwargs["size"] = draw(st.one_of(st.integers(1, 9), st.tuples(*[st.integers(1, 9)] * rank_n)))
    else:
        scale = st.one_of(st.sampled_from([0.3, 0.7, 1.1, 2.2, 2.0, 0.5, 1.5]),
                          st.floats(0.2, 3.0))
        kwargs["scale_factor"] = draw(st.one_of(scale, st.tuples(*[scale] * rank_n)))
    if mode != "nearest":
        kwargs["align_corners"] = draw(st.sampled_from([None, False, True]))
    shape = [draw(st.integers(0, 2)), draw(st.integers(1, 2)), *draw(st.tuples(
        *[st.integers(1, 9)] * n))]
    if draw(st.integers(0, 9)) == 0:
        shape[draw(st.integers(1, n + 1))] = 0
    return kwargs, tuple(shape)


@pytest.mark.torch
@pytest.mark.jax
@given(interpolate_cases())
def test_upsample_fails_with_torch_and_computes_its_values(case):
    """The rule and ``F.interpolate`` fail together; where they succeed, the
    shapes agree and NumPy / JAX values equal torch's."""
    kwargs, shape = case
    layer = Upsample(**kwargs)
    try:
        rule = ls.infer(ls.Sequential(layer), shape).output.shape
    except ls.ShapeError:
        rule = None
    x = np.random.default_rng(sum(shape)).standard_normal(shape).astype(np.float32)
    try:
        ref = F.interpolate(torch.from_numpy(x), **kwargs)
    except FRAMEWORK_ERRORS:
        ref = None
    assert (rule is None) == (ref is None), (rule, None if ref is None else ref.shape)
    event("both reject" if rule is None else "both accept")
    if rule is None:
        return
    assert rule == tuple(ref.shape)
    exact = kwargs["mode"] == "nearest"
    tol = 0 if exact else 1e-5
    np.testing.assert_allclose(layer.forward({}, x), ref.numpy(), rtol=tol, atol=tol)
    if 0 < x.size <= 200:  # JAX compiles each shape: values on small inputs only
        np.testing.assert_allclose(layer.forward({}, jnp.asarray(x)), ref.numpy(), rtol=tol,
                                   atol=tol)


SHUFFLES = {
    "shuffle2": (lambda: PixelShuffle(2), (2, 8, 3, 5), "float32"),
    "shuffle3_3d": (lambda: PixelShuffle(3), (18, 2, 3), "float32"),
    "shuffle2_5d_int": (lambda: PixelShuffle(2), (2, 3, 8, 2, 1), "int64"),
    "unshuffle2": (lambda: PixelUnshuffle(2), (2, 3, 4, 6), "float32"),
    "unshuffle3_bool": (lambda: PixelUnshuffle(3), (2, 6, 3), "bool"),
    "unshuffle1": (lambda: PixelUnshuffle(1), (1, 2, 3, 4), "float32"),
}


@pytest.mark.torch
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(SHUFFLES))
def test_pixel_shuffles_equal_torch_on_every_backend(backend, case):
    make, shape, dtype = SHUFFLES[case]
    x = (np.random.default_rng(3).standard_normal(shape) * 4).astype(dtype)
    inferred = ls.infer(ls.Sequential(make()), ls.TensorSpec(shape, dtype)).output
    m = ls.build(ls.Sequential(make()), backend)
    y = ls.to_numpy(m(ls.asarray(x, backend)))
    layer = make()
    t = torch.from_numpy(x)
    ref = (F.pixel_shuffle(t, layer.upscale_factor) if isinstance(layer, PixelShuffle)
           else F.pixel_unshuffle(t, layer.downscale_factor)).numpy()
    assert y.shape == inferred.shape
    assert inferred.dtype == dtype
    assert str(y.dtype) == get_backend(backend).native_dtype(dtype)  # JAX: int64 as int32
    np.testing.assert_array_equal(y, ref)


def test_unshuffle_inverts_shuffle_on_numpy():
    x = np.arange(2 * 3 * 4 * 6, dtype=np.float32).reshape(2, 3, 4, 6)
    down = PixelUnshuffle(2).forward({}, x)
    assert down.shape == (2, 12, 2, 3)
    np.testing.assert_array_equal(PixelShuffle(2).forward({}, down), x)
    # channel k*4 + i*2 + j of the output holds pixel (2h + i, 2w + j) of channel k
    np.testing.assert_array_equal(down[:, 1 * 4 + 1 * 2 + 0], x[:, 1, 1::2, 0::2])


@pytest.mark.torch
@pytest.mark.parametrize(("make", "cls", "shape"), [
    (lambda: Upsample(scale_factor=2.5, mode="bilinear", align_corners=True), "Upsample",
     (1, 2, 3, 4)),
    (lambda: Upsample(size=(2, 3, 4)), "Upsample", (1, 2, 3, 4, 5)),
    (lambda: PixelShuffle(2), "PixelShuffle", (2, 8, 3, 3)),
    (lambda: PixelUnshuffle(2), "PixelUnshuffle", (2, 2, 4, 4)),
])
def test_torch_native_module(make, cls, shape):
    layer = make()
    m = ls.build(ls.Sequential(layer), "torch").materialize(shape)
    assert type(m[0]) is getattr(nn, cls)
    hand = getattr(nn, cls)(**layer.hparams())
    assert repr(m[0]) == repr(hand)
    assert list(m.state_dict()) == []
    x = torch.from_numpy(np.random.default_rng(4).standard_normal(shape).astype(np.float32))
    assert torch.equal(m(x), hand(x))


@pytest.mark.torch
@pytest.mark.jax
@pytest.mark.parametrize("kwargs", [
    dict(scale_factor=1.5, mode="bilinear"),
    dict(size=(7, 2), mode="bilinear", align_corners=True),
    dict(scale_factor=2.2),
])
def test_jax_jit_grad_vmap(kwargs):
    m = ls.build(ls.Sequential(Upsample(**kwargs)), "jax")
    x = np.random.default_rng(5).standard_normal((2, 3, 5, 4)).astype(np.float32)
    params = m.init(0, x)
    y = jax.jit(m.apply)(params, x)
    np.testing.assert_allclose(y, m.apply(params, x), rtol=1e-6, atol=1e-6)
    g = jax.grad(lambda a: (m.apply(params, a) ** 2).sum())(jnp.asarray(x))
    xt = torch.from_numpy(x).requires_grad_(True)
    (nn.Upsample(**kwargs)(xt) ** 2).sum().backward()
    np.testing.assert_allclose(g, xt.grad.numpy(), rtol=1e-4, atol=1e-4)
    v = jax.vmap(lambda a: m.apply(params, a))(np.stack([x, 2 * x]))
    np.testing.assert_allclose(v[1], m.apply(params, 2 * x), rtol=1e-5, atol=1e-5)


@pytest.mark.jax
def test_jax_export_of_a_symbolic_spatial_size_is_a_value_error():
    up = ls.build(ls.Sequential(Upsample(scale_factor=2)), "jax")
    with pytest.raises(ValueError, match="concrete spatial sizes"):
        ls.export(up, ("B", 3, "H", "W"))
    exported = ls.export(up, ("B", 3, 4, 4))  # a symbolic batch is fine
    assert str(exported.out_avals[0].shape) == "(B, 3, 8, 8)"
    shuffle = ls.build(ls.Sequential(PixelShuffle(2)), "jax")
    out = ls.export(shuffle, ("B", "C", "H", "W")).out_avals[0].shape
    assert [str(d) for d in out[2:]] == ["2*H", "2*W"]


# -- the harness -----------------------------------------------------------------------


@pytest.mark.torch  # property (f) compares NumPy with a second backend
@pytest.mark.parametrize("cls", [Upsample, PixelShuffle, PixelUnshuffle])
def test_check_layer(cls):
    result = check_layer(cls, max_examples=20, backend_examples={"jax": 3})
    for p in "abcdef":
        assert result.counts[p] > 0, (p, result)
