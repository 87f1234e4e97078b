"""The zoo against the reference implementations: torchvision's models (built
with random weights, no downloads) load into the torch build strictly and give
the same outputs; the NumPy and JAX builds with the same weights agree with
torch; the parameter counts from the rules are the references'."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest
from _reference import torchvision_models, with_running_stats

import lazyshape as ls
from lazyshape import zoo

pytestmark = pytest.mark.torch


def _same_outputs_everywhere(model: ls.Layer, ref, *shape: int, batches=(1, 3)) -> dict:
    """Load ``ref``'s state dict strictly into the torch build of ``model`` and
    compare outputs (eval mode, float32) at two batch sizes; then the NumPy and
    JAX builds, loaded from the torch build's checkpoint. Returns the largest
    difference per backend."""
    import torch

    state = ref.state_dict()
    m = ls.build(model, "torch")
    assert list(m.state_dict()) == list(state)  # the reference's keys, in its order
    m.load_state_dict(state, strict=True)
    m.eval()
    worst = {"torch": 0.0, "numpy": 0.0, "jax": 0.0}
    xs = [torch.randn(b, *shape, generator=torch.Generator().manual_seed(b)) for b in batches]
    with torch.no_grad():
        want = [ref(x).numpy() for x in xs]
        for x, w in zip(xs, want, strict=True):
            got = m(x).numpy()
            np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-5)
            worst["torch"] = max(worst["torch"], float(np.abs(got - w).max()))
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "ref.safetensors")
        ls.save(m, path)
        for backend in ("numpy", "jax"):
            built = ls.build(model, backend)
            ls.load(path, into=built)
            for x, w in zip(xs, want, strict=True):
                got = ls.to_numpy(built(ls.asarray(x.numpy(), backend)))
                np.testing.assert_allclose(got, w, rtol=1e-4, atol=1e-4)
                worst[backend] = max(worst[backend], float(np.abs(got - w).max()))
    return worst


@pytest.mark.jax
def test_resnet50_is_torchvisions():
    ref = with_running_stats(torchvision_models().resnet50(), 2, 3, 64, 64)
    assert ls.infer(zoo.resnet50(), ("B", 3, 224, 224)).num_params == 25_557_032 == sum(
        p.numel() for p in ref.parameters())
    worst = _same_outputs_everywhere(zoo.resnet50(), ref, 3, 64, 64)
    assert worst["torch"] <= 1e-5 and worst["numpy"] <= 1e-4 and worst["jax"] <= 1e-4, worst
