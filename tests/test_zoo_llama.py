"""`zoo.llama` against Hugging Face transformers' ``LlamaForCausalLM`` (random
weights, no downloads): the same parameter names and shapes, a strict load into
the torch build, the same logits on torch (1e-5) and, from a checkpoint, on
NumPy and JAX (1e-4), with eager and SDPA attention, several RoPE bases,
grouped-query and multi-query heads, biases, an explicit head dim and a tied
head; the parameter counts of the rules equal the reference's, up to a
Llama-3-70B shape resolved symbolically with no allocation; config handling."""

from __future__ import annotations

import os
import tempfile
import time
import tracemalloc

import numpy as np
import pytest
from _reference import same_outputs_everywhere

import lazyshape as ls
from lazyshape import zoo
from lazyshape.dims import Sym

TINY = {"vocab_size": 100, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "intermediate_size": 128}

CASES = {
    # name: (LlamaConfig overrides, attention implementation)
    "gqa_eager": ({}, "eager"),
    "gqa_sdpa_theta_biases": ({"rope_parameters": {"rope_type": "default", "rope_theta": 500000.0},
                               "attention_bias": True, "mlp_bias": True}, "sdpa"),
    "mqa_sdpa_pad_token": ({"num_key_value_heads": 1, "pad_token_id": 0}, "sdpa"),
    "mha_eager_head_dim": ({"num_key_value_heads": 4, "head_dim": 8,
                            "rope_parameters": {"rope_type": "default", "rope_theta": 500.0}},
                           "eager"),
    "tied_sdpa": ({"tie_word_embeddings": True}, "sdpa"),
    "tied_eager_theta": ({"tie_word_embeddings": True, "rms_norm_eps": 1e-5,
                          "rope_parameters": {"rope_type": "default", "rope_theta": 1000.0}},
                         "eager"),
}

#: (batch, length) of the inputs compared
SIZES = ((1, 5), (3, 9))


def _transformers():
    """transformers' Llama (importable with the CPU build of torch once
    torchvision's ops are declared: `_reference`)."""
    from _reference import torchvision_models

    torchvision_models()
    from transformers import LlamaConfig, LlamaForCausalLM

    return LlamaConfig, LlamaForCausalLM


def _reference(overrides, attn, seed=0):
    """A tiny ``LlamaForCausalLM`` in eval mode with random weights, scaled so
    the logits are far from zero (transformers' init gives tiny ones)."""
    import torch

    config_class, model_class = _transformers()
    cfg = config_class(**{**TINY, **overrides}, attn_implementation=attn)
    torch.manual_seed(seed)
    ref = model_class(cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in ref.parameters():  # (a tied weight once)
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return cfg, ref.eval()


def _checkpoint(ref):
    """``ref``'s state as a checkpoint holds it: a tied model's head is the
    embedding (transformers' own files leave out ``lm_head.weight`` then)."""
    state = ref.state_dict()
    if ref.config.tie_word_embeddings:
        assert ref.lm_head.weight is ref.model.embed_tokens.weight
        del state["lm_head.weight"]
    return state


#: a decoder layer's parameters in the order of its computation
_LAYER_ORDER = {"input_layernorm": 0, "self_attn": 1, "post_attention_layernorm": 2, "mlp": 3}


def _computation_order(keys):
    """transformers' keys (modules in registration order: in each layer
    ``self_attn``, ``mlp``, the two norms) in the order of the computation."""
    def rank(item):
        pos, key = item
        parts = key.split(".")
        if parts[:2] == ["model", "layers"]:
            return (1, int(parts[2]), _LAYER_ORDER[parts[3]], pos)
        return (0 if parts[1] == "embed_tokens" else 2, 0, 0, pos)

    return [k for _, k in sorted(enumerate(keys), key=rank)]


def _ids(vocab):
    import torch

    g = torch.Generator().manual_seed(1)
    return [torch.randint(0, vocab, (b, t), generator=g) for b, t in SIZES]


@pytest.mark.torch
@pytest.mark.jax
@pytest.mark.parametrize("case", list(CASES))
def test_llama_is_transformers_llama_for_causal_lm(case):
    import torch

    cfg, ref = _reference(*CASES[case])
    model = zoo.llama(cfg.to_dict())  # a config's mapping; unknown keys ignored
    inf = ls.infer(model, ("B", "T"))
    assert inf.output.shape == (Sym("B"), Sym("T"), cfg.vocab_size)
    assert inf.num_params == sum(p.numel() for p in ref.parameters())  # (tied: counted once)

    state = _checkpoint(ref)
    assert {k: tuple(p.shape) for k, p in inf.params.items()} == {
        k: tuple(v.shape) for k, v in state.items()}  # transformers' names and shapes
    assert list(ls.build(model, "torch").state_dict()) == list(inf.params) == (
        _computation_order(list(state)))
    ids = _ids(cfg.vocab_size)
    with torch.no_grad():
        assert ref(ids[1]).logits.std() > 0.1  # logits far from zero: the check can fail
    worst = same_outputs_everywhere(model, ref, ids, ordered=False, state=state)
    assert worst["torch"] <= 1e-5 and worst["numpy"] <= 1e-4 and worst["jax"] <= 1e-4, worst


@pytest.mark.torch
def test_a_later_token_changes_no_earlier_logits():
    import torch

    cfg, ref = _reference({}, "sdpa")
    m = ls.build(zoo.llama(cfg.to_dict()), "torch")
    m.load_state_dict(_checkpoint(ref), strict=True)
    m.eval()
    ids = _ids(cfg.vocab_size)[1]
    changed = ids.clone()
    changed[:, 6:] = (changed[:, 6:] + 1) % cfg.vocab_size
    with torch.no_grad():
        y, y2 = m(ids), m(changed)
    torch.testing.assert_close(y[:, :6], y2[:, :6], rtol=1e-6, atol=1e-6)
    assert not torch.allclose(y[:, 6:], y2[:, 6:], atol=1e-3)


@pytest.mark.torch
@pytest.mark.jax
def test_a_tied_head_is_the_embedding_weight():
    import jax
    import jax.numpy as jnp
    import torch

    cfg, ref = _reference({"tie_word_embeddings": True}, "sdpa")
    model = zoo.llama(cfg.to_dict())
    inf = ls.infer(model, ("B", "T"))
    assert "lm_head.weight" not in inf.params
    head = inf.layer("lm_head")
    assert head.shared and head.param_path == "model.embed_tokens" and head.num_params == 0
    assert "shared with 'model.embed_tokens'" in ls.summary(model, ("B", "T"), format="markdown")

    ids = _ids(cfg.vocab_size)
    with torch.no_grad():
        want = [ref(i).logits.numpy() for i in ids]
    # transformers' checkpoint file of a tied model (no lm_head.weight) loads as it is
    with tempfile.TemporaryDirectory() as d:
        ref.save_pretrained(d)
        file = os.path.join(d, "model.safetensors")
        built = {}
        for backend in ("torch", "numpy", "jax"):
            m = built[backend] = ls.build(model, backend)
            ls.load(file, into=m)
            if backend == "torch":
                m.eval()
            for i, w in zip(ids, want, strict=True):
                got = ls.to_numpy(ls.backend.get_backend(backend).forward(
                    m, ls.asarray(i.numpy(), backend)))
                tol = 1e-5 if backend == "torch" else 1e-4
                np.testing.assert_allclose(got, w, rtol=tol, atol=tol)

    # one weight, two uses: its gradient sums the lookup's and the head's
    i = ids[1]
    ref.zero_grad()
    (ref(i).logits ** 2).mean().backward()
    want_grad = ref.model.embed_tokens.weight.grad.numpy()
    assert np.abs(want_grad).max() > 1e-4
    m = built["torch"]
    (m(i) ** 2).mean().backward()
    got = m.get_parameter("model.embed_tokens.weight").grad.numpy()
    np.testing.assert_allclose(got, want_grad, rtol=1e-4, atol=1e-6)
    mj = built["jax"]
    grads = jax.grad(lambda v: jnp.mean(mj.apply(v, jnp.asarray(i.numpy())) ** 2))(mj.variables)
    np.testing.assert_allclose(np.asarray(grads["params"]["model"]["embed_tokens"]["weight"]),
                               want_grad, rtol=1e-4, atol=1e-6)
    # the rows no token looks up get the head's share only (a copy would get none)
    unused = np.setdiff1d(np.arange(cfg.vocab_size), i.numpy())
    assert unused.size and np.abs(got[unused]).min() > 0


@pytest.mark.torch
def test_llama3_70b_resolves_symbolically_with_no_allocation():
    import torch

    cfg = {"hidden_size": 8192, "num_hidden_layers": 80, "num_attention_heads": 64,
           "num_key_value_heads": 8, "intermediate_size": 28672, "vocab_size": 128256,
           "rms_norm_eps": 1e-5, "tie_word_embeddings": False,
           "rope_parameters": {"rope_type": "default", "rope_theta": 500000.0}}
    start = time.perf_counter()
    inf = ls.infer(zoo.llama(cfg), ("B", "T"))
    seconds = time.perf_counter() - start
    print(f"Llama-3-70B shapes: defined and resolved in {seconds * 1000:.1f} ms")

    config_class, model_class = _transformers()
    with torch.device("meta"):  # shapes only: no memory
        ref = model_class(config_class(**cfg))
    count = sum(p.numel() for p in ref.parameters())
    assert inf.num_params == count
    print(f"Llama-3-70B shapes: {count:,} parameters")
    assert {k: tuple(p.shape) for k, p in inf.params.items()} == {
        k: tuple(v.shape) for k, v in ref.state_dict().items()}
    assert len(inf.params) == 1 + 80 * 9 + 2
    assert inf.params["model.layers.79.self_attn.k_proj.weight"].shape == (1024, 8192)
    assert inf.output.shape == (Sym("B"), Sym("T"), 128256)
    assert not inf.conditions and not inf.unresolved

    tracemalloc.start()
    try:
        ls.infer(zoo.llama(cfg), ("B", "T"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20, peak  # the weights would take 282 GB in float32

    # the default config is LlamaConfig's (a Llama-2-7B shape)
    with torch.device("meta"):
        default = model_class(config_class())
    assert ls.infer(zoo.llama(), ("B", "T")).num_params == sum(
        p.numel() for p in default.parameters()) == 6_738_415_616


# -- config handling (no framework) ----------------------------------------------------


def _attention(model, i=0):
    return model["model"]["layers"][str(i)]["self_attn"]


def test_config_keys():
    plain = zoo.llama(TINY)
    assert _attention(plain).rope == 10000.0  # transformers' default base
    assert (_attention(plain).num_kv_heads, _attention(plain).head_dim) == (2, 16)
    # a top-level rope_theta (older configs) or rope_parameters (transformers 5)
    for extra in ({"rope_theta": 500.0},
                  {"rope_parameters": {"rope_type": "default", "rope_theta": 500.0}},
                  {"rope_theta": 500.0, "rope_parameters": {"rope_type": "default",
                                                            "rope_theta": 500}},
                  {"rope_theta": 500.0, "rope_parameters": None, "rope_scaling": None}):
        assert _attention(zoo.llama({**TINY, **extra})).rope == 500.0, extra
    # unknown keys are ignored; num_key_value_heads defaults to the heads
    mha = ls.infer(zoo.llama({**TINY, "num_key_value_heads": None, "model_type": "llama",
                              "max_position_embeddings": 4, "pretraining_tp": 1}), (2, 9))
    assert mha.params["model.layers.0.self_attn.k_proj.weight"].shape == (64, 64)
    assert mha.output.shape == (2, 9, 100)  # longer than max_position_embeddings: RoPE
    biased = ls.infer(zoo.llama({**TINY, "attention_bias": True, "mlp_bias": True,
                                 "head_dim": 8}), ("B", "T"))
    assert biased.params["model.layers.1.self_attn.q_proj.bias"].shape == (32,)
    assert biased.params["model.layers.1.self_attn.o_proj.weight"].shape == (64, 32)
    assert biased.params["model.layers.1.mlp.down_proj.bias"].shape == (64,)
    assert "lm_head.bias" not in biased.params


def test_a_tied_config_has_one_weight():
    inf = ls.infer(zoo.llama({**TINY, "tie_word_embeddings": True}), ("B", "T"))
    untied = ls.infer(zoo.llama(TINY), ("B", "T"))
    assert set(untied.params) - set(inf.params) == {"lm_head.weight"}
    assert untied.num_params - inf.num_params == 100 * 64
    assert inf.output.shape == untied.output.shape == (Sym("B"), Sym("T"), 100)


ERRORS = [
    ({"rope_parameters": {"rope_type": "llama3", "rope_theta": 5e5, "factor": 8.0}},
     r"^llama: `rope_parameters` with rope_type 'default' \(Llama's plain RoPE: the scaled "
     r"variants are not expressed\); got `rope_parameters\['rope_type'\]` \(='llama3'\)$"),
    ({"rope_scaling": {"type": "linear", "factor": 2.0}},
     r"`rope_scaling` with rope_type 'default'.*got `rope_scaling\['rope_type'\]` "
     r"\(='linear'\)"),
    ({"rope_theta": 10.0, "rope_parameters": {"rope_type": "default", "rope_theta": 500.0}},
     r"one RoPE base: .*got `rope_parameters\['rope_theta'\]` \(=500.0\), `rope_theta` "
     r"\(=10.0\)"),
    ({"rope_parameters": {"full_attention": {"rope_type": "default", "rope_theta": 1e4}}},
     r"`rope_parameters` one mapping of rope_type and rope_theta"),
    ({"rope_theta": -1.0}, r"a RoPE base \(`rope_theta`\) that is a positive finite number"),
    ({"hidden_act": "gelu"}, r"^llama: `hidden_act` 'silu' \(Llama's SwiGLU MLP\); got "
                             r"`hidden_act` \(='gelu'\)$"),
    ({"num_key_value_heads": 3},
     r"`num_key_value_heads` dividing `num_attention_heads` .*got `num_attention_heads` "
     r"\(=4\), `num_key_value_heads` \(=3\)"),
    ({"attention_dropout": 0.1}, r"`attention_dropout` 0 .*got `attention_dropout` \(=0.1\)"),
    ({"hidden_size": 66}, r"`hidden_size` divisible by `num_attention_heads` \(or `head_dim` "
                          r"given\); got `hidden_size` \(=66\), `num_attention_heads` \(=4\)"),
    ({"hidden_size": 60}, r"an even `head_dim` \(RoPE rotates .*got `head_dim` \(=15\)"),
    ({"head_dim": 7}, r"an even `head_dim`.*got `head_dim` \(=7\)"),
    ({"pad_token_id": 100}, r"`pad_token_id` in \[0, 99\].*got `pad_token_id` \(=100\)"),
    ({"vocab_size": "100"}, r"`vocab_size` to be a positive int; got `vocab_size` \(='100'\)"),
    ({"num_hidden_layers": 0}, r"`num_hidden_layers` to be a positive int"),
    ({"tie_word_embeddings": "yes"}, r"`tie_word_embeddings` to be a bool"),
    ({"rms_norm_eps": 0.0}, r"`rms_norm_eps` to be a positive finite number"),
]


@pytest.mark.parametrize("overrides, message", ERRORS)
def test_a_config_it_cannot_express_is_an_error_naming_the_key(overrides, message):
    with pytest.raises(ls.ShapeError, match=message):
        zoo.llama({**TINY, **overrides})


def test_a_config_is_a_mapping():
    with pytest.raises(TypeError, match="a mapping of LlamaConfig's keys"):
        zoo.llama(["hidden_size", 64])  # type: ignore[arg-type]


def test_tied_embedding_rules():
    emb = zoo.TiedEmbedding(10, 8)
    both = ls.Sequential({"embed": emb, "head": emb})
    inf = ls.infer(both, ("B", "T"))
    assert inf.output.shape == (Sym("B"), Sym("T"), 10)
    assert list(inf.params) == ["embed.weight"] and inf.num_params == 80
    x = np.array([[1, 2, 3]])
    m = ls.build(both, "numpy", seed=0)
    y = m(x)
    w = m.state_dict()["embed.weight"]
    np.testing.assert_allclose(y, w[x] @ w.T, rtol=1e-6)
    with pytest.raises(ls.ShapeError, match=r"integer ids \(int32 or int64\) to embed, or "
                                            r"floating vectors"):
        ls.infer(ls.Sequential(zoo.TiedEmbedding(10, 8)), ls.TensorSpec((2, 3), "bool"))
    with pytest.raises(ls.ShapeError, match=r"expected last input dim 8 \(in_features\)"):
        ls.infer(ls.Sequential(zoo.TiedEmbedding(10, 8)), ls.TensorSpec(("B", "T", 6), "float32"))
