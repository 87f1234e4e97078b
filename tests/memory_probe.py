"""Measure the heap bytes of a real torch CPU forward or training step, next to
lazyshape's estimate; run in a fresh process by `test_memory_estimate.py`.

``python tests/memory_probe.py NAME SHAPE infer|train`` prints one JSON line:
``{"measured": bytes, "predicted": bytes}``.

The heap in use is glibc's ``mallinfo2`` (small chunks plus mmapped blocks,
where PyTorch's CPU allocator gets its memory), sampled after every leaf
module's forward and after every parameter's gradient is accumulated, so the
peak seen is the peak between operations (what lazyshape models; a kernel's
own scratch space inside one operation is not seen).

- ``infer``: the peak of a forward under ``torch.no_grad`` above the heap
  before it, after one warm-up forward (whose kernel caches persist), against
  ``peak_activation_bytes`` less the input's bytes (the input exists before).
- ``train``: the peak over two Adam steps (gradients kept between steps,
  ``zero_grad(set_to_none=False)``) above the heap before the model was
  built, against ``training_bytes``.
"""

from __future__ import annotations

import ctypes
import json
import sys
from typing import Any

import torch

import lazyshape as ls
from lazyshape import zoo
from lazyshape._cost import nbytes

#: a small Llama (the zoo's `llama` takes a config)
LLAMA = {"hidden_size": 512, "num_hidden_layers": 4, "num_attention_heads": 8,
         "num_key_value_heads": 2, "intermediate_size": 1376, "vocab_size": 32000}
TEXT = ("gpt2", "bert_base", "llama")


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
        "uordblks", "fordblks", "keepcost")]


_LIBC = ctypes.CDLL("libc.so.6")
_LIBC.mallinfo2.restype = _MallInfo2


def heap_in_use() -> int:
    """Bytes of the process heap in use (allocated chunks plus mmapped blocks)."""
    info = _LIBC.mallinfo2()
    return int(info.uordblks + info.hblkhd)


def measure(name: str, shape: tuple[int, ...], mode: str) -> dict[str, Any]:
    torch.set_num_threads(1)
    model = zoo.llama(LLAMA) if name == "llama" else getattr(zoo, name)()
    text = name in TEXT
    x = torch.randint(0, 1000, shape) if text else torch.randn(*shape)
    inf = ls.infer(model, ls.TensorSpec(shape, "int64") if text else shape)
    base = heap_in_use()
    m = ls.build(model, "torch", seed=0)
    m.materialize(x)
    peak = [0]

    def sample(*_: Any) -> None:
        peak[0] = max(peak[0], heap_in_use())

    for module in m.modules():
        if not list(module.children()):
            module.register_forward_hook(sample)
    if mode == "infer":
        m.eval()
        with torch.no_grad():
            m(x)
            before = peak[0] = heap_in_use()
            m(x)
        return {"measured": peak[0] - before,
                "predicted": inf.peak_activation_bytes - sum(nbytes(s) for s in inf.inputs)}
    for p in m.parameters():
        p.register_post_accumulate_grad_hook(sample)
    m.train()
    opt = torch.optim.Adam(m.parameters())
    for _ in range(2):
        opt.zero_grad(set_to_none=False)
        y = m(x)
        outs = list(y) if isinstance(y, tuple) else [y]
        sum(o.sum() for o in outs if o.is_floating_point()).backward()
        del y, outs
        sample()
        opt.step()
        sample()
    return {"measured": peak[0] - base, "predicted": inf.training_bytes}


if __name__ == "__main__":
    size = tuple(int(v) for v in sys.argv[2].split(","))
    print(json.dumps(measure(sys.argv[1], size, sys.argv[3])))
