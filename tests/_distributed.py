"""What the sharded-engine tests and their probe scripts (run in subprocesses)
share: the small Llama they shard, making JAX see several CPU devices, and
bitwise equality of torch tensors."""

from __future__ import annotations

import os
from typing import Any

#: the small Llama the sharded tests shard: 8 query heads, 4 key/value heads
LLAMA = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 8,
         "num_key_value_heads": 4, "intermediate_size": 128, "vocab_size": 256}


def force_host_devices(n: int = 8) -> None:
    """Make JAX, imported after this, see ``n`` CPU devices (it reads the flag
    once, at import)."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={n}".strip()


def same_bits(a: Any, b: Any) -> bool:
    """Whether two torch tensors are equal bit for bit (dtype, shape, bytes)."""
    import torch

    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.is_floating_point():
        return torch.equal(a.contiguous().view(torch.uint8), b.contiguous().view(torch.uint8))
    return bool(torch.equal(a, b))
