"""``ls.save_sharded`` / ``ls.load_sharded`` on torch (``torch.distributed.
checkpoint``): a checkpoint saved on 4 gloo ranks under Megatron tensor
parallelism and FSDP2 loads onto 2 ranks under other rules, bit for bit. The
ranks run ``tests/torch_checkpoint_probe.py``; the one-process checks run
here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _distributed import LLAMA

import lazyshape as ls
from lazyshape import zoo

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")

PROBE = Path(__file__).with_name("torch_checkpoint_probe.py")
SEED = 1234


def _ranks(world: int, mode: str, root: Path) -> dict[str, Any]:
    out = root / f"{mode}.json"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(world),
         "--standalone", str(PROBE), mode, str(root), str(out)],
        capture_output=True, text=True, timeout=240, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    report: dict[str, Any] = json.loads(out.read_text())
    assert report["world"] == world
    return report


@pytest.fixture(scope="module")
def rounds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any],
                                                               dict[str, Any]]:
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    root = tmp_path_factory.mktemp("torch_ckpt")
    return root, _ranks(4, "save", root), _ranks(2, "load", root)


def test_4_ranks_save_their_shards(rounds):
    root, saved, _ = rounds
    assert saved["llama_saved"] == saved["llama_dtensors"] == 21
    assert saved["cnn_saved"] == 9 and saved["cnn_dtensors"] == 6  # FSDP2: parameters only
    for name in ("llama", "cnn"):
        assert sorted(p.name for p in (root / name).glob("*.distcp")) == [
            f"__{r}_0.distcp" for r in range(4)]


@pytest.mark.parametrize("name", ["llama", "cnn"])
def test_what_was_saved_is_the_trained_state(rounds, name):
    # the probe's "training": floats * 1.5 + 0.25, integers + 3, on the portable init
    root, _, _ = rounds
    net = zoo.llama(LLAMA) if name == "llama" else ls.Sequential(
        ls.Conv2d(8, 3, padding=1), ls.BatchNorm2d(), ls.ReLU(), ls.Flatten(), ls.Linear(16))
    ref = ls.build(net, "torch", rng="portable", seed=SEED)
    ref.materialize(ls.TensorSpec((2, 16), "int64") if name == "llama" else (2, 3, 6, 6))
    saved = ls.load(root / f"{name}.safetensors")
    for k, v in ref.state_dict().items():
        want = (v * 1.5 + 0.25 if v.is_floating_point() else v + 3).numpy()
        assert saved[k].tobytes() == want.tobytes(), k


@pytest.mark.parametrize("name", ["llama", "cnn"])
def test_2_ranks_load_it_bit_exact_under_other_rules(rounds, name):
    _, saved, loaded = rounds
    assert loaded[f"{name}_checked"] == saved[f"{name}_saved"]
    # every tensor held other values before loading (another seed; the saved were changed)
    assert loaded[f"{name}_differed_before"] == saved[f"{name}_saved"]
    placements = loaded[f"{name}_placements"]
    if name == "llama":  # Megatron split q_proj by rows over 4; here by columns over 2
        assert placements["model.layers.0.self_attn.q_proj.weight"] == ["S(1)"]
        assert placements["model.norm.weight"] == ["R"]
    else:  # FSDP2 split every parameter by rows; here only the head, by columns
        assert placements["4.weight"] == ["S(1)"] and placements["0.weight"] == ["R"]


# -- one process, no process group -------------------------------------------------

#: DCP warns that it assumes one process when there is no process group: here, it is
one_process = pytest.mark.filterwarnings("ignore:torch.distributed is disabled")


def _linear(width: int = 3) -> Any:
    m = ls.build(ls.Sequential(ls.Linear(4), ls.BatchNorm1d()), "torch", rng="portable", seed=1)
    return m.materialize((2, width))


@one_process
def test_one_process_round_trip(tmp_path):
    m = _linear()
    with torch.no_grad():
        m[0].weight.add_(1.0)
        m[1].num_batches_tracked.add_(5)
    ls.save_sharded(m, tmp_path / "ck")
    other = _linear()
    assert not torch.equal(other[0].weight, m[0].weight)
    assert ls.load_sharded(tmp_path / "ck", other) is other
    for k, v in m.state_dict().items():
        assert np.asarray(other.state_dict()[k]).tobytes() == np.asarray(v).tobytes(), k


@one_process
def test_a_checkpoint_that_does_not_fit_is_a_checkpoint_error(tmp_path):
    ls.save_sharded(_linear(), tmp_path / "ck")
    wider = _linear(5)
    before = wider[0].weight.clone()
    with pytest.raises(ls.CheckpointError, match=r"at `0.weight`: shape \(4, 3\); the model's "
                       r"is \(4, 5\)"):
        ls.load_sharded(tmp_path / "ck", wider)
    assert torch.equal(wider[0].weight, before)  # unchanged
    fewer = ls.build(ls.Sequential(ls.Linear(4)), "torch").materialize((2, 3))
    with pytest.raises(ls.CheckpointError, match=r"unexpected \['1.weight'") as e:
        ls.load_sharded(tmp_path / "ck", fewer)
    assert e.value.key == "1.weight"
    with pytest.raises(ls.CheckpointError, match=r"not a torch.distributed.checkpoint directory"):
        ls.load_sharded(tmp_path / "nothing", fewer)


@one_process
def test_tensors_without_storage_are_refused(tmp_path):
    m = ls.build(ls.Sequential(ls.Linear(4)), "torch", device="meta")
    m.materialize((2, 3))
    with pytest.raises(ls.ShapeError, match=r"`0.weight` has none \(the meta device"):
        ls.save_sharded(m, tmp_path / "ck")
    with pytest.raises(TypeError, match=r"loads into a model; got dict"):
        ls.load_sharded(tmp_path / "ck", {"w": torch.ones(2)})
