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

from lazyshape.testing import LayerCheckError, check_layer

sys.path.insert(0, str(Path(__file__).parent))
from test_harness import MUTANTS, STRIDED_HPARAMS, declared_lengths, mutant  # noqa: E402


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
        print(f"| {name} | {verdict(name, None, n)} | {verdict(name, declared_lengths, n)} |")
