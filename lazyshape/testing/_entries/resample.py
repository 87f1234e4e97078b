"""Harness entries of the resample family: ``Upsample``, ``PixelShuffle``,
``PixelUnshuffle``.

Oracles: ``torch.nn.functional.interpolate`` / ``pixel_shuffle`` /
``pixel_unshuffle``; under ``jax.eval_shape``, ``jax.image.resize`` to the
output size torch computes (``size``, or ``floor(d * scale_factor)`` in
float64) and plain ``jnp`` reshapes and transposes; ONNX ``Resize`` (with
``axes``: ``sizes``, or ``scales`` when float32 holds the scale factor
exactly, ONNX computing ``floor(d * scale)`` in float32 where torch uses
float64), ``DepthToSpace`` (``CRD``) and ``SpaceToDepth`` (4-d inputs only,
as ONNX defines them).

``Upsample`` layers are drawn with the scale factors whose output size has an
integer formula for a symbolic size (`lazyshape.layers.resample.scale_fraction`),
so that symbolic inference (property c) covers every drawn layer; a scale
such as 0.7 has none, and symbolic sizes are a `ShapeError` there (see the
rule tables in tests/test_resample.py).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import strategies as st

from lazyshape.layers.resample import UPSAMPLE_MODES, PixelShuffle, PixelUnshuffle, Upsample

from .._onnx import BUILDERS, Graph, onnx_oracle
from .._oracles import jax_oracle, require_float, require_nonempty, torch_oracle
from .._primitives import Specs
from .._registry import Deviation, NotApplicable, register
from ..strategies import batch_sizes
from ._common import FLOAT, NON_FLOAT, is_float, spec, spec_of

#: the largest spatial side drawn, by number of spatial dims
_MAX_SIDE = {1: 8, 2: 6, 3: 4}
#: scale factors with an integer output-size formula for symbolic sizes
SCALES = (0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 0.3, 1 / 3, 2 / 3, 1.7, 2.2)
#: the dtypes the pixel (un)shuffles are drawn with (they take any)
_ANY_DTYPE = st.sampled_from([FLOAT, FLOAT, "int64", "bool"])


# -- Upsample --------------------------------------------------------------------


def _ranks(layer: Any) -> list[int]:
    """The numbers of spatial dims ``layer`` takes."""
    return [layer.expected_ndim - 2] if layer.expected_ndim is not None else [1, 2, 3]


def _scales(layer: Any, n: int) -> tuple[float | None, ...]:
    s = layer.scale_factor
    return s if isinstance(s, tuple) else (s,) * n


def _min_side(scale: float | None) -> int:
    """The smallest input size whose output ``floor(d * scale)`` is at least 1."""
    if scale is None:
        return 1
    d = 1
    while math.floor(d * scale) < 1:
        d += 1
    return d


@st.composite
def _upsample_layers(draw: Any) -> Any:
    mode = draw(st.sampled_from(["nearest", "nearest", "linear", "bilinear", "trilinear"]))
    n = UPSAMPLE_MODES[mode] or draw(st.integers(1, 3))
    per_dim = draw(st.booleans())
    kwargs: dict[str, Any] = {"mode": mode}
    if draw(st.booleans()):
        sizes = draw(st.tuples(*[st.integers(1, 6)] * n))
        kwargs["size"] = sizes if per_dim else sizes[0]
    else:
        scales = draw(st.tuples(*[st.sampled_from(SCALES)] * n))
        kwargs["scale_factor"] = scales if per_dim else scales[0]
    if mode != "nearest":
        kwargs["align_corners"] = draw(st.sampled_from([None, False, True]))
    return Upsample(**kwargs)


@st.composite
def _upsample_valid(draw: Any, layer: Any) -> Specs:
    n = draw(st.sampled_from(_ranks(layer)))
    spatial = []
    for s in _scales(layer, n):
        lo = _min_side(s)
        spatial.append(draw(st.integers(lo, max(lo, _MAX_SIDE[n]))))
    return (spec((draw(batch_sizes()), draw(st.integers(1, 3)), *spatial)),)


def _upsample_inputs(layer: Any) -> Any:
    return _upsample_valid(layer)


@st.composite
def _upsample_broken(draw: Any, layer: Any) -> Specs:
    (x,) = draw(_upsample_valid(layer))
    shape = list(x.shape)
    n = len(shape) - 2
    small = [k for k, s in enumerate(_scales(layer, n)) if _min_side(s) > 1]
    hows = ["dtype", "rank", "zero"] + (["small"] if small else [])
    how = draw(st.sampled_from(hows))
    if how == "dtype":
        return (spec(shape, draw(st.sampled_from(NON_FLOAT))),)
    if how == "rank":
        ranks = _ranks(layer)
        wrong = [r for r in range(0, 7) if r - 2 not in ranks]
        r = draw(st.sampled_from(wrong))
        return (spec((shape * 3)[:r]),)
    if how == "small":
        k = draw(st.sampled_from(small))
        shape[k + 2] = _min_side(_scales(layer, n)[k]) - 1
        return (spec(shape),)
    shape[draw(st.integers(1, n + 1))] = 0  # channels or a spatial dim
    return (spec(shape),)


def _upsample_invalid(layer: Any) -> Any:
    return _upsample_broken(layer)


def _t_upsample(layer: Any, x: Any) -> Any:
    import torch.nn.functional as F

    require_float(spec_of(x))  # torch's nearest and bilinear kernels also take uint8
    return F.interpolate(x, size=layer.size, scale_factor=layer.scale_factor, mode=layer.mode,
                         align_corners=layer.align_corners)


def _j_upsample(layer: Any, x: Any) -> Any:
    import jax

    require_float(spec_of(x))
    n = x.ndim - 2
    if n not in _ranks(layer):
        raise ValueError(f"Upsample({layer.mode!r}) takes {_ranks(layer)} spatial dims, not {n}")
    require_nonempty(x.shape, 1)
    if layer.size is not None:
        out = layer.size if isinstance(layer.size, tuple) else (layer.size,) * n
    else:  # torch's output size, float64
        sf = layer.scale_factor
        factors = sf if isinstance(sf, tuple) else (sf,) * n
        out = tuple(math.floor(int(d) * f) for d, f in zip(x.shape[2:], factors, strict=True))
    require_nonempty(out, 0)
    method = "nearest" if layer.mode == "nearest" else "linear"
    return jax.image.resize(x, (*x.shape[:2], *out), method)


def _onnx_upsample(layer: Any, g: Graph, xs: list[str], specs: Specs) -> list[str]:
    n = specs[0].ndim - 2
    axes = list(range(2, n + 2))
    if layer.mode == "nearest":  # torch's legacy nearest: floor(i / scale)
        attrs: dict[str, Any] = {"mode": "nearest", "nearest_mode": "floor",
                                 "coordinate_transformation_mode": "asymmetric"}
    else:
        attrs = {"mode": "linear", "coordinate_transformation_mode":
                 "align_corners" if layer.align_corners else "pytorch_half_pixel"}
    attrs["axes"] = axes
    if layer.size is not None:
        sizes = layer.size if isinstance(layer.size, tuple) else (layer.size,) * n
        return g.node("Resize", [xs[0], "", "", g.const(list(sizes))], **attrs)
    scales = _scales(layer, n)
    if any(float(np.float32(s)) != s for s in scales):
        raise NotApplicable("ONNX's Resize computes floor(d * scale) in float32, torch in "
                            "float64: only scale factors float32 holds exactly compare")
    return g.node("Resize", [xs[0], "", g.const(list(scales), "float32")], **attrs)


register(Upsample, layers=_upsample_layers(), inputs=_upsample_inputs,
         invalid=_upsample_invalid,
         oracles=(torch_oracle(_t_upsample), jax_oracle(_j_upsample), onnx_oracle()),
         accepts=lambda s: 3 <= s.ndim <= 5 and is_float(s))
BUILDERS["Upsample"] = _onnx_upsample


# -- PixelShuffle, PixelUnshuffle ---------------------------------------------------


def _factor(layer: Any) -> int:
    return int(layer.upscale_factor if isinstance(layer, PixelShuffle)
               else layer.downscale_factor)


@st.composite
def _shuffle_valid(draw: Any, layer: Any) -> Specs:
    r = _factor(layer)
    lead = draw(st.lists(batch_sizes(), min_size=0, max_size=2))
    if isinstance(layer, PixelShuffle):
        c, h, w = draw(st.integers(1, 3)) * r * r, draw(st.integers(1, 4)), draw(st.integers(1, 4))
    else:
        c, h, w = draw(st.integers(1, 3)), draw(st.integers(1, 3)) * r, draw(st.integers(1, 3)) * r
    return (spec((*lead, c, h, w), draw(_ANY_DTYPE)),)


def _shuffle_inputs(layer: Any) -> Any:
    return _shuffle_valid(layer)


@st.composite
def _shuffle_broken(draw: Any, layer: Any) -> Specs:
    (x,) = draw(_shuffle_valid(layer))
    shape = list(x.shape)
    r = _factor(layer)
    hows = ["rank"] + (["indivisible"] if r > 1 else [])
    if draw(st.sampled_from(hows)) == "rank":  # fewer than 3 dims: the last 0 to 2
        keep = draw(st.integers(0, 2))
        return (spec(shape[len(shape) - keep:], x.dtype),)
    if isinstance(layer, PixelShuffle):
        k, d = -3, shape[-3]
    else:
        k = draw(st.sampled_from([-2, -1]))
        d = shape[k]
    shape[k] = d + draw(st.integers(1, r * r - 1 if k == -3 else r - 1))
    return (spec(shape, x.dtype),)


def _shuffle_invalid(layer: Any) -> Any:
    return _shuffle_broken(layer)


def _empty_unshuffle(layer: Any, shape: Any) -> None:
    if isinstance(layer, PixelUnshuffle) and 0 in tuple(int(d) for d in shape):
        raise Deviation("torch's CPU pixel_unshuffle returns an empty input unchanged (its "
                        "meta kernel gives the unshuffled shape); lazyshape rejects it")


def _t_shuffle(layer: Any, x: Any) -> Any:
    import torch.nn.functional as F

    if isinstance(layer, PixelShuffle):
        return F.pixel_shuffle(x, layer.upscale_factor)
    _empty_unshuffle(layer, x.shape)
    return F.pixel_unshuffle(x, layer.downscale_factor)


def _j_shuffle(layer: Any, x: Any) -> Any:
    import jax.numpy as jnp

    if x.ndim < 3:
        raise ValueError(f"expected at least 3 dims, got {x.ndim}")
    _empty_unshuffle(layer, x.shape)
    r = _factor(layer)
    *lead, c, h, w = x.shape
    k = len(lead)
    if isinstance(layer, PixelShuffle):  # a reshape that fails unless r*r divides c
        y = jnp.reshape(x, (*lead, c // (r * r), r, r, h, w))
        return jnp.reshape(jnp.transpose(y, (*range(k), k, k + 3, k + 1, k + 4, k + 2)),
                           (*lead, c // (r * r), h * r, w * r))
    y = jnp.reshape(x, (*lead, c, h // r, r, w // r, r))
    return jnp.reshape(jnp.transpose(y, (*range(k), k, k + 2, k + 4, k + 1, k + 3)),
                       (*lead, c * r * r, h // r, w // r))


def _onnx_shuffle(layer: Any, g: Graph, xs: list[str], specs: Specs) -> list[str]:
    if specs[0].ndim != 4:
        raise NotApplicable("ONNX's DepthToSpace and SpaceToDepth take 4-d inputs only")
    if isinstance(layer, PixelShuffle):
        return g.node("DepthToSpace", xs, blocksize=layer.upscale_factor, mode="CRD")
    return g.node("SpaceToDepth", xs, blocksize=layer.downscale_factor)


_cls: Any
for _cls in (PixelShuffle, PixelUnshuffle):
    register(_cls, layers=st.integers(1, 3).map(_cls), inputs=_shuffle_inputs,
             invalid=_shuffle_invalid,
             oracles=(torch_oracle(_t_shuffle), jax_oracle(_j_shuffle), onnx_oracle()),
             accepts=lambda s: s.ndim >= 3)
    BUILDERS[_cls.__name__] = _onnx_shuffle
