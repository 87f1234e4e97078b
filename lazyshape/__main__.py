"""The ``lazyshape`` command: ``lazyshape demo`` and ``lazyshape summary``."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from ._dims import parse
from ._errors import ShapeError
from ._layer import Layer

__all__ = ["main"]


def _input_shape(text: str) -> tuple[object, ...]:
    """``"B,3,224,224"`` → ``("B", 3, 224, 224)``; ``?`` is an unknown dim."""
    dims: list[object] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            raise argparse.ArgumentTypeError(f"empty dim in {text!r}")
        if part == "?":
            dims.append(None)
            continue
        try:
            dims.append(parse(part))
        except ValueError as e:
            raise argparse.ArgumentTypeError(f"bad dim {part!r} in {text!r}: {e}") from None
    return tuple(dims)


def _load_factory(spec: str) -> Layer:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise SystemExit(f"lazyshape summary: expected MODULE:FACTORY, got {spec!r}")
    cwd = os.getcwd()  # like `python -m`: modules in the working directory import
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    importlib.invalidate_caches()
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise SystemExit(f"lazyshape summary: cannot load {spec!r}: {e}") from None
    model = obj() if callable(obj) and not isinstance(obj, Layer) else obj
    if not isinstance(model, Layer):
        raise SystemExit(
            f"lazyshape summary: {spec!r} gave {type(model).__name__}, not a lazyshape model"
        )
    return model


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lazyshape`` command."""
    parser = argparse.ArgumentParser(prog="lazyshape", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="the deferred-initialization walkthrough on every backend")
    p_sum = sub.add_parser("summary", help="the summary table of a model, with no data")
    p_sum.add_argument("factory", help="MODULE:FACTORY returning a lazyshape model")
    p_sum.add_argument(
        "--input", action="append", type=_input_shape, default=[],
        help='an input shape such as "B,3,224,224" (repeat for several inputs)',
    )
    p_sum.add_argument("--dtype", default="float32", help="parameter dtype (default float32)")
    args = parser.parse_args(argv)

    if args.command == "demo":
        from ._demo import run_demo

        run_demo()
        return 0
    from ._summary import summary

    model = _load_factory(args.factory)
    try:
        print(summary(model, *args.input, dtype=args.dtype))
    except ShapeError as e:
        print(f"lazyshape summary: {e}", file=sys.stderr)
        return 1
    except TypeError as e:
        print(f"lazyshape summary: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
