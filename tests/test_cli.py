"""The command line: `lazyshape demo` and `lazyshape summary MODULE:FACTORY`."""

from __future__ import annotations

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
    assert "1      Linear   (B, 256)" in out
    assert "weight (256, H*W)" in out
    assert "Total params: 256*H*W + 2826" in out
    assert "Unresolved: 1.weight needs H, W" in out
    assert main(["summary", "zoo_cli:mlp", "--input", "B,1,28,28"]) == 0
    assert "Total params: 203,530" in capsys.readouterr().out


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


def test_bad_input_spec_is_an_argument_error(capsys):
    with pytest.raises(SystemExit):
        main(["summary", "x:y", "--input", "B,,3"])
    assert "empty dim in 'B,,3'" in capsys.readouterr().err


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
    assert "0      Linear  (B, 256)      weight (256, 20), bias (256,)     5,376" in out
    assert "Total params: 7,946" in out
    assert out.count("identical to numpy: True") == len(ls.backends())
    if "torch" in ls.backends():
        assert "0.weight: UninitializedParameter (256, ?)" in out
        assert "type(m[0]) is torch.nn.modules.linear.Linear" in out
