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


@pytest.mark.jax
@pytest.mark.parametrize("name, count", [("mobilenet_v2", 3_504_872),
                                         ("efficientnet_b0", 5_288_548)])
def test_mobile_nets_are_torchvisions(name, count):
    ref = with_running_stats(getattr(torchvision_models(), name)(), 2, 3, 64, 64)
    model = getattr(zoo, name)
    assert ls.infer(model(), ("B", 3, 224, 224)).num_params == count == sum(
        p.numel() for p in ref.parameters())
    worst = _same_outputs_everywhere(model(), ref, 3, 64, 64)
    assert worst["torch"] <= 1e-5 and worst["numpy"] <= 1e-4 and worst["jax"] <= 1e-4, worst


def _same_outputs_from_ids(model, ref, vocab: int, lengths=(5, 9)) -> dict:
    """As `_same_outputs_everywhere`, for a model on token ids ``(B, T)`` whose
    reference returns ``last_hidden_state`` and ``pooler_output``: batch 1 and 3."""
    import torch

    state = ref.state_dict()
    m = ls.build(model, "torch")
    assert list(m.state_dict()) == list(state)  # the reference's keys, in its order
    m.load_state_dict(state, strict=True)
    m.eval()
    gen = torch.Generator().manual_seed(0)
    ids = [torch.randint(0, vocab, (b, t), generator=gen) for b, t in zip((1, 3), lengths, strict=True)]
    worst = {"torch": 0.0, "numpy": 0.0, "jax": 0.0}
    with torch.no_grad():
        want = [(r.last_hidden_state.numpy(), r.pooler_output.numpy())
                for r in (ref(i) for i in ids)]
        for i, w in zip(ids, want, strict=True):
            got = [y.numpy() for y in m(i)]
            for g, ww in zip(got, w, strict=True):
                np.testing.assert_allclose(g, ww, rtol=1e-5, atol=1e-5)
                worst["torch"] = max(worst["torch"], float(np.abs(g - ww).max()))
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "ref.safetensors")
        ls.save(m, path)
        for backend in ("numpy", "jax"):
            built = ls.build(model, backend)
            ls.load(path, into=built)
            for i, w in zip(ids, want, strict=True):
                got = [ls.to_numpy(y) for y in built(ls.asarray(i.numpy(), backend))]
                for g, ww in zip(got, w, strict=True):
                    np.testing.assert_allclose(g, ww, rtol=1e-4, atol=1e-4)
                    worst[backend] = max(worst[backend], float(np.abs(g - ww).max()))
    return worst


@pytest.mark.jax
def test_bert_is_transformers_bert_model():
    import torch
    from transformers import BertConfig, BertModel

    assert ls.infer(zoo.bert_base(), ("B", "T")).num_params == 109_482_240  # bert-base
    cfg = BertConfig(vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=128, max_position_embeddings=32,
                     attn_implementation="eager")
    torch.manual_seed(0)
    ref = BertModel(cfg).eval()
    model = zoo.bert(cfg.to_dict())  # a config's mapping; unknown keys ignored
    assert ls.infer(model, ("B", "T")).num_params == sum(p.numel() for p in ref.parameters())
    worst = _same_outputs_from_ids(model, ref, cfg.vocab_size)
    assert worst["torch"] <= 1e-5 and worst["numpy"] <= 1e-4 and worst["jax"] <= 1e-4, worst
