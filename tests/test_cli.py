"""The command line: `lazyshape demo` and `lazyshape summary MODULE:FACTORY`."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

import lazyshape as ls
from lazyshape.__main__ import main


def test_summary_from_a_factory(tmp_path, monkeypatch, capsys):
    (tmp_path / "zoo_cli.py").write_text(textwrap.dedent("""
        import lazyshape as ls

        def mlp():
            return ls.Sequential(ls.Flatten(), ls.Linear(256), ls.ReLU(), ls.Linear(10))
    """))
    monkeypatch.chdir(tmp_path)
    assert main(["summary", "zoo_cli:mlp", "--input", "B,1,H,W"]) == 0
    out = capsys.readouterr().out
    assert "1      Linear   (B, H*W)      (B, 256)" in out
    assert "weight (256, H*W)" in out
    assert "Total params: 256*H*W + 2826" in out
    assert "Unresolved: 1.weight needs H, W" in out
    assert main(["summary", "zoo_cli:mlp", "--input", "B,1,28,28"]) == 0
    assert "Total params: 203,530" in capsys.readouterr().out


def test_summary_formats_depth_and_flops(tmp_path, monkeypatch, capsys):
    (tmp_path / "zoo_fmt.py").write_text(textwrap.dedent("""
        import lazyshape as ls

        def net():
            block = ls.Sequential(ls.Linear(8), ls.ReLU())
            return ls.Sequential({"block": block, "head": ls.Linear(2)})
    """))
    monkeypatch.chdir(tmp_path)
    assert main(["summary", "zoo_fmt:net", "--input", "B,4", "--format", "json", "--depth", "1"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [(r["path"], r["params"], r["flops"]) for r in doc["layers"]] == [
        ("block", 40, "64*B"), ("head", 18, "32*B")]
    assert doc["total_params"] == 58 and doc["inputs"] == [["B", 4]]
    assert main(["summary", "zoo_fmt:net", "--input", "B,4", "--format", "markdown",
                 "--no-flops"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| Layer | Kind | Input shape |") and "FLOPs" not in out
    assert "| block | Sequential | `(B, 4)` | `(B, 8)` |" in out
    with pytest.raises(SystemExit, match=r"argument --depth: expected an int >= 0, got '-2'"):
        main(["summary", "zoo_fmt:net", "--depth", "-2"])
    with pytest.raises(SystemExit, match=r"argument --format: invalid choice: 'xml'"):
        main(["summary", "zoo_fmt:net", "--format", "xml"])


def test_version(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out == f"lazyshape {version('lazyshape')}\n"


def test_summary_reports_shape_errors(tmp_path, monkeypatch, capsys):
    (tmp_path / "zoo_bad.py").write_text(
        "import lazyshape as ls\nnet = ls.Sequential(ls.Linear(4, in_features=3))\n"
    )
    monkeypatch.chdir(tmp_path)
    assert main(["summary", "zoo_bad:net", "--input", "B,5"]) == 1
    err = capsys.readouterr().err
    assert "Linear at '0': expected last input dim 3 (in_features); got input shape (B, 5)" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["summary", "nocolon"], "expected MODULE:FACTORY, got 'nocolon'"),
        (["summary", "no_such_module_xyz:f"], "cannot load 'no_such_module_xyz:f'"),
    ],
)
def test_summary_bad_factory(argv, message):
    with pytest.raises(SystemExit, match=message):
        main(argv)


def test_bad_input_spec_is_an_argument_error():
    with pytest.raises(SystemExit, match=r"argument --input: empty dim in 'B,,3'"):
        main(["summary", "x:y", "--input", "B,,3"])


def _run(argv: list[str], cwd) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lazyshape", *argv], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


MODULES = {
    "good.py": "import lazyshape as ls\ndef mlp():\n    return ls.Sequential(ls.Linear(4))\n",
    "syntax.py": "def broken(:\n",
    "raises.py": "raise RuntimeError('no GPU here')\n",
    "needs.py": "import no_such_dependency_xyz\n",
    "factories.py": (
        "import lazyshape as ls\n"
        "def refuses():\n    return ls.Sequential(ls.Linear(-4))\n"
        "def raises():\n    raise KeyError('config')\n"
        "def not_a_model():\n    return 42\n"
    ),
    "shapes.py": "import lazyshape as ls\nnet = ls.Sequential(ls.Linear(4, in_features=3))\n",
}

#: (argv, a fragment of the one line) for every kind of bad argument
BAD_INVOCATIONS = [
    ([], "the following arguments are required: command"),
    (["train"], "invalid choice: 'train'"),
    (["summary"], "the following arguments are required: factory"),
    (["summary", "good:mlp", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    (["summary", "nocolon"], "expected MODULE:FACTORY, got 'nocolon'"),
    (["summary", "no_such_module_xyz:f"], "ModuleNotFoundError: No module named 'no_such_module_xyz'"),
    (["summary", "good:missing"], "no 'missing' in 'good'"),
    (["summary", "syntax:broken"], "cannot load 'syntax:broken': SyntaxError"),
    (["summary", "raises:x"], "cannot load 'raises:x': RuntimeError: no GPU here"),
    (["summary", "needs:x"], "No module named 'no_such_dependency_xyz'"),
    (["summary", "factories:refuses"], "calling 'factories:refuses': ShapeError: Linear: `out_features`"),
    (["summary", "factories:raises"], "calling 'factories:raises': KeyError: 'config'"),
    (["summary", "factories:not_a_model"], "gave int, not a lazyshape model"),
    (["summary", "good:mlp", "--input", "B,,3"], "empty dim in 'B,,3'"),
    (["summary", "good:mlp", "--input", "B+"], "bad dim 'B+'"),
    (["summary", "good:mlp", "--input=-B,3"], "non-negative"),
    (["summary", "good:mlp", "--input", "__import__('os').getcwd()"], "unsupported"),
    (["summary", "good:mlp", "--input", "B,3", "--dtype", "float33"], "unsupported dtype 'float33'"),
    (["summary", "shapes:net", "--input", "B,5"], "expected last input dim 3 (in_features)"),
    (["summary", "missing_dir/model.py:net"], "no file 'missing_dir/model.py'"),
    (["summary", "./:net"], "cannot load './:net'"),
    (["summary", "binary.py:net"], "cannot load 'binary.py:net'"),
]


@pytest.mark.parametrize(("argv", "fragment"), BAD_INVOCATIONS,
                         ids=[" ".join(a) or "no-arguments" for a, _ in BAD_INVOCATIONS])
def test_every_bad_invocation_is_one_line_and_a_non_zero_exit(argv, fragment, tmp_path):
    for name, text in MODULES.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "binary.py").write_bytes(b"\xff\xfe\x00 not python \x80")
    proc = _run(argv, tmp_path)
    assert proc.returncode != 0
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert fragment in lines[0]


def test_a_model_file_by_path(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "net.py").write_text(MODULES["good.py"])
    proc = _run(["summary", "models/net.py:mlp", "--input", "B,3"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Total params: 16" in proc.stdout


def test_demo_replays_the_seed_on_every_backend():
    proc = subprocess.run(
        [sys.executable, "-m", "lazyshape", "demo"],
        capture_output=True, text=True, check=True, timeout=300,
    )
    out = proc.stdout
    assert proc.stderr == ""  # no warning spam from the overflowing batch
    for name in ls.backends():
        assert f"## backend: {name}" in out
    assert out.count("(0): Linear(in_features=?, out_features=256, bias=True)") == len(ls.backends())
    assert "0.weight: Placeholder (256, ?)" in out  # the NumPy backend's placeholder
    assert "Linear(in_features=20, out_features=256, bias=True)" in out
    assert "0      Linear  (B, 20)      (B, 256)      weight (256, 20), bias (256,)   5,376" in out
    assert "Total params: 7,946" in out
    assert out.count("identical to numpy: True") == len(ls.backends())
    if "torch" in ls.backends():
        assert "0.weight: UninitializedParameter (256, ?)" in out
        assert "type(m[0]) is torch.nn.modules.linear.Linear" in out
