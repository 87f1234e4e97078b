"""The zoo against the reference implementations: torchvision's models (built
with random weights, no downloads) load into the torch build strictly and give
the same outputs; the NumPy and JAX builds with the same weights agree with
torch; the parameter counts from the rules are the references'."""

from __future__ import annotations

import pytest
from _reference import same_outputs_everywhere, torchvision_models, with_running_stats

import lazyshape as ls
from lazyshape import zoo

pytestmark = pytest.mark.torch


def _images(*shape: int) -> list:
    """Random images of ``shape`` at batch sizes 1 and 3."""
    import torch

    return [torch.randn(b, *shape, generator=torch.Generator().manual_seed(b)) for b in (1, 3)]


@pytest.mark.jax
def test_resnet50_is_torchvisions():
    ref = with_running_stats(torchvision_models().resnet50(), 2, 3, 64, 64)
    assert ls.infer(zoo.resnet50(), ("B", 3, 224, 224)).num_params == 25_557_032 == sum(
        p.numel() for p in ref.parameters())
    worst = same_outputs_everywhere(zoo.resnet50(), ref, _images(3, 64, 64))
    assert worst["torch"] <= 1e-5 and worst["numpy"] <= 1e-4 and worst["jax"] <= 1e-4, worst


@pytest.mark.jax
@pytest.mark.parametrize("name, count", [("mobilenet_v2", 3_504_872),
                                         ("efficientnet_b0", 5_288_548)])
def test_mobile_nets_are_torchvisions(name, count):
    ref = with_running_stats(getattr(torchvision_models(), name)(), 2, 3, 64, 64)
    model = getattr(zoo, name)
    assert ls.infer(model(), ("B", 3, 224, 224)).num_params == count == sum(
        p.numel() for p in ref.parameters())
    worst = same_outputs_everywhere(model(), ref, _images(3, 64, 64))
    assert worst["torch"] <= 1e-5 and worst["numpy"] <= 1e-4 and worst["jax"] <= 1e-4, worst


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
    gen = torch.Generator().manual_seed(0)
    ids = [torch.randint(0, cfg.vocab_size, (b, t), generator=gen) for b, t in ((1, 5), (3, 9))]
    worst = same_outputs_everywhere(model, ref, ids)
    assert worst["torch"] <= 1e-5 and worst["numpy"] <= 1e-4 and worst["jax"] <= 1e-4, worst


def _nonzero_learned_tensors(ref, suffixes):
    """``ref`` with its tensors named by ``suffixes`` drawn at random (torchvision
    initializes a class token and ViT's head to zeros, a layer scale to 1e-6:
    too small to show in an output)."""
    import torch

    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if name.endswith(suffixes):
                p.uniform_(0.5, 1.5)
    return ref


@pytest.mark.jax
def test_vit_is_torchvisions():
    import torch
    from torchvision.models.vision_transformer import VisionTransformer

    # ViT-B/16's count at 224x224 (197 positions)...
    assert ls.infer(zoo.vit_b_16(), ("B", 3, 224, 224)).num_params == 86_567_656 == sum(
        p.numel() for p in torchvision_models().vit_b_16().parameters())
    # ... and the outputs of a small one (the same code) at its image size
    torch.manual_seed(0)
    ref = VisionTransformer(image_size=32, patch_size=16, num_layers=2, num_heads=4,
                            hidden_dim=64, mlp_dim=128, num_classes=10).eval()
    # (torchvision zeroes the head too: the outputs would be zeros)
    ref = _nonzero_learned_tensors(ref, ("class_token", "heads.head.weight", "heads.head.bias"))
    # torch lists a module's own parameters (class_token) before its children's;
    # a lazyshape model lists them where they are used: the same keys, loaded strictly
    worst = same_outputs_everywhere(zoo.vit(16, 2, 4, 64, 128, 10), ref, _images(3, 32, 32),
                                    ordered=False)
    with torch.no_grad():
        assert ref(_images(3, 32, 32)[1]).std() > 0.1  # outputs that show a difference
    assert worst["torch"] <= 1e-5 and worst["numpy"] <= 1e-4 and worst["jax"] <= 1e-4, worst


@pytest.mark.jax
def test_convnext_tiny_is_torchvisions():
    ref = torchvision_models().convnext_tiny().eval()
    assert ls.infer(zoo.convnext_tiny(), ("B", 3, 224, 224)).num_params == 28_589_128 == sum(
        p.numel() for p in ref.parameters())
    ref = _nonzero_learned_tensors(ref, ("layer_scale",))
    worst = same_outputs_everywhere(zoo.convnext_tiny(), ref, _images(3, 64, 64), ordered=False)
    assert worst["torch"] <= 1e-5 and worst["numpy"] <= 1e-4 and worst["jax"] <= 1e-4, worst
