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
