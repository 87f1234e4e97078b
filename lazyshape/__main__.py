"""The ``lazyshape`` command: ``lazyshape demo`` and ``lazyshape summary``."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import NoReturn

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


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (no usage block)."""

    def error(self, message: str) -> NoReturn:
        raise SystemExit(f"{self.prog}: {message} (see {self.prog} --help)")


def _one_line(text: str) -> str:
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def _fail(what: str, spec: str, e: BaseException) -> NoReturn:
    detail = _one_line(str(e))
    reason = f"{type(e).__name__}: {detail}" if detail else type(e).__name__
    raise SystemExit(f"lazyshape summary: {what} {spec!r}: {reason}")


def _import(module_name: str, spec: str) -> ModuleType:
    """A module by dotted name (found like ``python -m``: the working directory
    first) or by the path of a ``.py`` file."""
    if module_name.endswith(".py") or os.sep in module_name or "/" in module_name:
        path = Path(module_name)
        if not path.is_file():
            raise SystemExit(f"lazyshape summary: cannot load {spec!r}: no file {str(path)!r}")
        found = importlib.util.spec_from_file_location(path.stem, path)
        if found is None or found.loader is None:
            raise SystemExit(f"lazyshape summary: cannot load {spec!r}: not a Python file")
        module = importlib.util.module_from_spec(found)
        found.loader.exec_module(module)
        return module
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    importlib.invalidate_caches()
    return importlib.import_module(module_name)


def _load_factory(spec: str) -> Layer:
    """The model named by ``MODULE:FACTORY`` or ``path/to/file.py:FACTORY``
    (a model object, or a callable returning one)."""
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise SystemExit(f"lazyshape summary: expected MODULE:FACTORY, got {spec!r}")
    try:
        module = _import(module_name, spec)
    except SystemExit:
        raise
    except Exception as e:  # the user's module failed to import: one line, no traceback
        _fail("cannot load", spec, e)
    if not hasattr(module, attr):
        raise SystemExit(f"lazyshape summary: cannot load {spec!r}: no {attr!r} in {module_name!r}")
    obj = getattr(module, attr)
    try:
        model = obj() if callable(obj) and not isinstance(obj, Layer) else obj
    except Exception as e:  # the factory failed (a layer refusing its arguments, say)
        _fail("calling", spec, e)
    if not isinstance(model, Layer):
        raise SystemExit(
            f"lazyshape summary: {spec!r} gave {type(model).__name__}, not a lazyshape model"
        )
    return model


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lazyshape`` command. Every bad argument, module,
    spec or path exits non-zero with one line on stderr (``SystemExit`` with
    the message when called in-process)."""
    parser = _Parser(prog="lazyshape", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("demo", help="the deferred-initialization walkthrough on every backend")
    p_sum = sub.add_parser("summary", help="the summary table of a model, with no data")
    p_sum.add_argument(
        "factory", help="MODULE:FACTORY or path/to/file.py:FACTORY giving a lazyshape model"
    )
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
        print(f"lazyshape summary: {_one_line(str(e))}", file=sys.stderr)
        return 1
    except (TypeError, ValueError) as e:
        print(f"lazyshape summary: {_one_line(str(e))}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
