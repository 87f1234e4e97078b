"""Activations that may run in place (torch's ``inplace=True``), as torchvision's
models run theirs: decided from the program, so that nothing else can see the
overwritten tensor and autograd never needs it.

A call of an activation (or an add, its first input) may overwrite its input
when that input is read by this call alone, is neither a model input nor a
model output, and was made by a layer that returns a fresh tensor and does
not keep its output for its backward pass (a convolution, a batch norm, a
linear map, an add, a product), or passed on from such a layer by a layer
whose input nothing else reads (a dropout, stochastic depth, an identity:
the tensor itself in evaluation; in training, a fresh one whose backward
reads only its mask). A shared layer (one module) runs in place only if
every call of it may."""

from __future__ import annotations

from collections import Counter

from lazyshape.backend import Program

__all__ = ["INPLACE_KINDS", "FRESH_PRODUCERS", "PASS_ON", "inplace_layers"]

#: the activations whose torch modules take ``inplace`` and whose in-place form
#: autograd differentiates (as torchvision runs them), and `Add` (summing into
#: its first input)
INPLACE_KINDS = frozenset({"ReLU", "ReLU6", "SiLU", "Add"})
#: layers whose output is a fresh tensor their backward does not read (`Multiply`'s
#: reads its inputs, not its product)
FRESH_PRODUCERS = frozenset({
    "Conv1d", "Conv2d", "Conv3d", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "Linear", "Add",
    "Multiply",
})
#: one-input layers returning their input in evaluation (and, in training, a
#: fresh tensor their backward does not read): their output counts as made by
#: their input's producer when nothing else reads that input (torchvision's
#: EfficientNet adds into its stochastic depth's output)
PASS_ON = frozenset({"Dropout", "DropPath", "Identity"})


def inplace_layers(program: Program) -> set[int]:
    """The ids of the layers of ``program`` whose every call may run in place."""
    readers = Counter(slot for node in program.nodes for slot in node.ins)
    readers.update(program.outputs)
    producer: dict[int, str] = {}
    for node in program.nodes:
        kind = node.layer.kind
        if kind in PASS_ON and len(node.ins) == 1 and readers[node.ins[0]] == 1:
            kind = producer.get(node.ins[0], kind)  # (a model input's: none)
        for slot in node.outs:
            producer[slot] = kind
    safe: dict[int, bool] = {}
    for node in program.nodes:
        if node.layer.kind not in INPLACE_KINDS:
            continue
        ok = (
            (len(node.ins) == 1 or node.layer.kind == "Add")
            and readers[node.ins[0]] == 1
            and producer.get(node.ins[0]) in FRESH_PRODUCERS  # (a model input has none)
        )
        key = id(node.layer)
        safe[key] = safe.get(key, True) and ok
    return {key for key, ok in safe.items() if ok}
