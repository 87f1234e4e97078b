"""Reference implementations for the zoo's equivalence tests (test oracles only:
torchvision and transformers are in the dev set-up, never runtime dependencies).

torchvision's wheel is linked against the CUDA build of torch; with the CPU
build its C++ ops do not load and ``import torchvision`` fails registering a
fake kernel for ``torchvision::nms``. Its models are pure Python: declaring the
schemas of the two ops it registers without a guard makes them importable.
"""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def _torchvision_schemas() -> Any:
    import torch

    try:
        torch.ops.torchvision.nms  # noqa: B018 - its own ops loaded: nothing to declare
        return None
    except (AttributeError, RuntimeError):
        pass
    lib = torch.library.Library("torchvision", "DEF")
    for op in ("nms", "qnms"):
        lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    return lib  # kept alive: the schemas last as long as the library object


def torchvision_models() -> Any:
    """``torchvision.models``, importable with the CPU build of torch."""
    _torchvision_schemas()
    from torchvision import models

    return models


def with_running_stats(model: Any, *shape: int, seed: int = 0) -> Any:
    """``model`` (a torch module) after one training-mode forward of random data
    of ``shape``, so its batch norms' running statistics are not the initial
    ones (as in a trained checkpoint); returned in eval mode."""
    import torch

    torch.manual_seed(seed)
    model.train()
    with torch.no_grad():
        model(torch.randn(*shape))
    return model.eval()


def _leaves(out: Any) -> list[Any]:
    """The output tensors of a model call, in order: a tensor, a tuple of them, or
    a transformers output (its ``last_hidden_state``, ``pooler_output``,
    ``logits`` fields that are set)."""
    if isinstance(out, (tuple, list)):
        return [leaf for o in out for leaf in _leaves(o)]
    fields = ("last_hidden_state", "pooler_output", "logits")
    if any(hasattr(out, f) for f in fields):
        return [getattr(out, f) for f in fields if getattr(out, f, None) is not None]
    return [out]


def same_outputs_everywhere(model: Any, ref: Any, inputs: list[Any], ordered: bool = True,
                            state: Any = None) -> dict[str, float]:
    """Load the torch module ``ref``'s state dict strictly into the torch build of
    the lazyshape ``model`` (its keys first checked to be the reference's, in its
    order unless ``ordered`` is False) and compare outputs on each of ``inputs``
    (torch tensors; eval mode) within 1e-5; then the NumPy and JAX builds, loaded
    from the torch build's checkpoint, within 1e-4. ``state``: the state dict
    to load, when not ``ref``'s own. Returns the largest difference per backend."""
    import os
    import tempfile

    import numpy as np
    import torch

    import lazyshape as ls

    state = ref.state_dict() if state is None else state
    m = ls.build(model, "torch")
    keys = list(m.state_dict())
    assert keys == list(state) if ordered else sorted(keys) == sorted(state)
    m.load_state_dict(state, strict=True)
    m.eval()
    worst = {"torch": 0.0, "numpy": 0.0, "jax": 0.0}

    def compare(backend: str, got: list[Any], want: list[Any], tol: float) -> None:
        assert len(got) == len(want), (backend, len(got), len(want))
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, w, rtol=tol, atol=tol)
            worst[backend] = max(worst[backend], float(np.abs(g - w).max()))

    with torch.no_grad():
        wants = [[t.numpy() for t in _leaves(ref(x))] for x in inputs]
    # outputs that can show a difference (a zero-initialized head gives zeros)
    spread = min(float(np.std(w)) for want in wants for w in want)
    assert spread > 1e-3, f"the reference's outputs hardly vary (std {spread:.1e})"
    with torch.no_grad():
        for x, want in zip(inputs, wants, strict=True):
            compare("torch", [t.numpy() for t in _leaves(m(x))], want, 1e-5)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "ref.safetensors")
        ls.save(m, path)
        for backend in ("numpy", "jax"):
            built = ls.build(model, backend)
            ls.load(path, into=built)
            for x, want in zip(inputs, wants, strict=True):
                out = built(ls.asarray(x.numpy(), backend))
                compare(backend, [np.asarray(ls.to_numpy(y)) for y in _leaves(out)], want, 1e-4)
    return worst
