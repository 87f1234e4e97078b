"""Which of six wrong rules of a strided 1-d convolution ``check_layer`` catches,
with the inputs left to the harness and with valid inputs declared::

    python tests/harness_mutants.py [max_examples]

The wrong rules: output length with ceil instead of floor, dilation forgotten,
padding counted once, output dtype always float32, inputs too short accepted
(length clamped to 1), an output of length exactly 1 rejected. Prints, per rule
and mode, ``caught (<property>)`` or ``survived``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

import lazyshape as ls
from lazyshape.testing import LayerCheckError, check_layer

sys.path.insert(0, str(Path(__file__).parent))
from test_harness import STRIDED_HPARAMS, StridedConv1d  # noqa: E402

MUTANTS = ("ceil", "no dilation", "padding once", "float32 always", "too short accepted",
           "length 1 rejected")


def _length(layer: StridedConv1d, length: Any, mutant: str) -> Any:
    k, s, d, p = layer.kernel_size, layer.stride, layer.dilation, layer.padding
    if mutant == "ceil":
        return -((-(length + 2 * p - d * (k - 1) - 1)) // s) + 1
    if mutant == "no dilation":
        return (length + 2 * p - (k - 1) - 1) // s + 1
    if mutant == "padding once":
        return (length + p - d * (k - 1) - 1) // s + 1
    return (length + 2 * p - d * (k - 1) - 1) // s + 1


def mutant(name: str) -> type[StridedConv1d]:
    """`StridedConv1d` with the wrong rule ``name``."""

    class Mutant(StridedConv1d):
        def output_spec(self, x: ls.TensorSpec) -> ls.TensorSpec:
            if len(x.shape) != 3:
                raise ls.ShapeError("an (N, C, L) input", f"shape {x.shape}")
            n, _, length = x.shape
            out = _length(self, length, name)
            if name == "too short accepted" and isinstance(out, int):
                out = max(out, 1)
            if isinstance(out, int) and (out < 1 or name == "length 1 rejected" and out == 1):
                raise ls.ShapeError("an input long enough", f"length {length}")
            dtype = "float32" if name == "float32 always" else None
            return ls.TensorSpec((n, self.out_channels, out), dtype)

    Mutant.__name__ = Mutant.__qualname__ = "Mutant_" + name.replace(" ", "_")
    return Mutant


def declared(layer: Any) -> Any:
    """Valid inputs as the docs advise: ``(N, C, L)`` float32, L 6-12."""
    return st.tuples(st.builds(lambda n, c, length: ls.TensorSpec((n, c, length), "float32"),
                               st.integers(1, 3), st.integers(1, 3), st.integers(6, 12)))


def verdict(name: str, inputs: Any, max_examples: int) -> str:
    try:
        check_layer(mutant(name), inputs, hparams=STRIDED_HPARAMS, max_examples=max_examples,
                    backend_examples={"jax": 10})
    except LayerCheckError as e:
        return f"caught ({e.property})"
    return "survived"


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 60
    print("| wrong rule | undeclared inputs | declared inputs |\n|---|---|---|")
    for name in MUTANTS:
        print(f"| {name} | {verdict(name, None, n)} | {verdict(name, declared, n)} |")
