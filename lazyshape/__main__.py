"""The ``lazyshape`` command: ``lazyshape demo`` and ``lazyshape summary``."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

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


def _depth(text: str) -> int:
    """``--depth N``: an int >= 0."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int >= 0, got {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"expected an int >= 0, got {text!r}")
    return n


def _version() -> str:
    """The installed distribution's version."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lazyshape")
    except PackageNotFoundError:  # run from a source tree that is not installed
        from . import __version__

        return __version__


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


def _load_factory(spec: str, *args: Any) -> Layer:
    """The model named by ``MODULE:FACTORY`` or ``path/to/file.py:FACTORY``
    (a model object, or a callable returning one, called with ``args``)."""
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
        model = obj(*args) if callable(obj) and not isinstance(obj, Layer) else obj
    except Exception as e:  # the factory failed (a layer refusing its arguments, say)
        _fail("calling", spec, e)
    if not isinstance(model, Layer):
        raise SystemExit(
            f"lazyshape summary: {spec!r} gave {type(model).__name__}, not a lazyshape model"
        )
    return model


def _add_model_args(p: argparse.ArgumentParser) -> None:
    """The model and its inputs, as every command that reads a model takes them."""
    p.add_argument(
        "factory", help="MODULE:FACTORY or path/to/file.py:FACTORY giving a lazyshape model"
    )
    p.add_argument(
        "--input", action="append", type=_input_shape, default=[],
        help='an input shape such as "B,3,224,224" (repeat for several inputs)',
    )


def _add_plot_parser(sub: argparse._SubParsersAction[_Parser]) -> None:
    p = sub.add_parser("plot", help="a picture of a model's graph (SVG, PNG or DOT), with no data")
    _add_model_args(p)
    p.add_argument(
        "-o", "--output", default="model.svg",
        help="the file to write: .svg, .png, .dot or .gv; - prints the DOT text "
        "(default model.svg)",
    )
    p.add_argument("--rankdir", default="TB", choices=("TB", "LR", "BT", "RL"),
                   help="the direction of the graph (default TB, top to bottom)")
    p.add_argument("--dtype", default="float32", help="parameter dtype (default float32)")


def _run_plot(args: argparse.Namespace) -> int:
    from ._plot import plot

    try:
        model = _load_factory(args.factory)
    except SystemExit as e:  # the loader's messages name the summary command
        raise SystemExit(str(e.code).replace("lazyshape summary:", "lazyshape plot:", 1)) from None
    out = None if args.output == "-" else args.output
    try:
        result = plot(model, *args.input, path=out, dtype=args.dtype, rankdir=args.rankdir)
    # a shape problem, Graphviz missing or an unwritable path: 1; a bad argument: 2
    except (ShapeError, ImportError, RuntimeError, OSError) as e:
        print(f"lazyshape plot: {_one_line(str(e))}", file=sys.stderr)
        return 1
    except (TypeError, ValueError) as e:
        print(f"lazyshape plot: {_one_line(str(e))}", file=sys.stderr)
        return 2
    if out is None:
        sys.stdout.write(str(result))
    else:
        print(f"wrote {result}")
    return 0


def _add_plan_parser(sub: argparse._SubParsersAction[_Parser]) -> None:
    p = sub.add_parser("plan", help="what one device of a mesh holds in a training step")
    p.add_argument("factory", help="MODULE:FACTORY or path/to/file.py:FACTORY "
                                   "(called with --config when given)")
    p.add_argument("--config", help="a config for the factory: a preset name (the zoo's "
                                    "llama: 7b, 13b, 8b, 70b), inline JSON or a JSON file")
    p.add_argument("--mesh", required=True, help='the device mesh, e.g. "dp=8,tp=8"')
    p.add_argument("--batch", type=int, default=1,
                   help="sequences (or samples) per data-parallel rank (default 1)")
    p.add_argument("--seq", type=int, help="sequence length: the input is token ids "
                                           "(global batch, seq)")
    p.add_argument("--input", action="append", type=_input_shape, default=[],
                   help="an input shape instead of --seq, global batch first")
    p.add_argument("--dtype", default="float32", help="parameter dtype (default float32)")
    p.add_argument("--optimizer", default="adam",
                   choices=("adam", "adamw", "sgd", "sgd_momentum"))
    p.add_argument("--device-memory", help='say whether it fits, e.g. "80GiB"')


def _run_plan(args: argparse.Namespace) -> int:
    from . import zoo
    from ._plan import format_plan, load_config, parse_mesh, plan
    from ._specs import TensorSpec

    try:
        mesh = parse_mesh(args.mesh)
        config = None if args.config is None else load_config(args.config, zoo.LLAMA_PRESETS)
    except ValueError as e:
        print(f"lazyshape plan: {_one_line(str(e))}", file=sys.stderr)
        return 2
    model = _load_factory(args.factory) if config is None else _load_factory(args.factory,
                                                                             config)
    dp = mesh.get("dp", 1)
    if args.input:
        inputs: tuple[Any, ...] = tuple(args.input)
    elif args.seq is not None:
        inputs = (TensorSpec((args.batch * dp, args.seq), "int64"),)
    else:
        print("lazyshape plan: give --seq (token ids) or --input", file=sys.stderr)
        return 2

    def run() -> str:
        inf, seconds = plan(model, inputs, mesh, dtype=args.dtype, optimizer=args.optimizer)
        title = args.factory + ("" if args.config is None else f" --config {args.config}")
        return format_plan(inf, seconds, title=title, optimizer=args.optimizer,
                           device_memory=args.device_memory)

    return _printed("plan", run)


def _printed(command: str, run: Callable[[], str]) -> int:
    """Print what ``run`` returns; a shape problem is one line on stderr and exit
    status 1, a bad argument (TypeError, ValueError) status 2."""
    try:
        print(run())
    except ShapeError as e:
        print(f"lazyshape {command}: {_one_line(str(e))}", file=sys.stderr)
        return 1
    except (TypeError, ValueError) as e:
        print(f"lazyshape {command}: {_one_line(str(e))}", file=sys.stderr)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lazyshape`` command. Every bad argument, module,
    spec or path exits non-zero with one line on stderr (``SystemExit`` with
    the message when called in-process)."""
    parser = _Parser(prog="lazyshape", description=__doc__)
    parser.add_argument("--version", action="version", version=f"lazyshape {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("demo", help="the deferred-initialization walkthrough on every backend")
    _add_plot_parser(sub)
    _add_plan_parser(sub)
    p_sum = sub.add_parser("summary", help="the summary table of a model, with no data")
    _add_model_args(p_sum)
    p_sum.add_argument("--dtype", default="float32", help="parameter dtype (default float32)")
    p_sum.add_argument("--format", choices=("table", "markdown", "json"), default="table",
                       help="a text table (default), a Markdown table, or JSON")
    p_sum.add_argument("--depth", type=_depth, default=None,
                       help="fold rows deeper than N into their container (default: every node)")
    p_sum.add_argument("--flops", action=argparse.BooleanOptionalAction, default=True,
                       help="show the FLOPs column and total (default: yes)")
    args = parser.parse_args(argv)

    if args.command == "demo":
        from ._demo import run_demo

        run_demo()
        return 0
    if args.command == "plot":
        return _run_plot(args)
    if args.command == "plan":
        return _run_plan(args)
    from ._summary import summary

    model = _load_factory(args.factory)
    return _printed("summary", lambda: summary(model, *args.input, dtype=args.dtype,
                                               depth=args.depth, format=args.format,
                                               flops=args.flops))


if __name__ == "__main__":
    raise SystemExit(main())
