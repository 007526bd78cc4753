"""`textdepth import-pixelformer` on hostile zip checkpoints and failing disks: the file's
entries are validated (types, stored size against the claimed shape, the rank of the
tensors the architecture is read from) before anything is allocated from them; every
failure is one line, exit 2, no output. The full disk is real (a small tmpfs)."""
import sys

import pytest
import torch

from fs_helpers import require_private_mounts, run_on_tmpfs
from pixelformer_reference import build_reference
from test_predict_faults import peak_rss_mb
from textdepth_ros.cli import main as textdepth

IMPORT = [sys.executable, "-m", "textdepth_ros.cli", "import-pixelformer"]


@pytest.fixture(scope="module")
def pixelformer_state():
    """A PixelFormer checkpoint's entries as its train.py saves them (DataParallel names)."""
    return {f"module.{k}": v for k, v in build_reference("tiny07", max_depth=80.0, seed=3).state_dict().items()}


def save_with(path, state: dict, **changes):
    torch.save({"model": {**state, **{f"module.{k}": v for k, v in changes.items()}}, "global_step": 100}, path)
    return path


def assert_refused(result_code, err, message, out):
    assert result_code == 2 and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err
    assert not out.exists() and not list(out.parent.glob(".out*")), err


def test_a_zero_stride_tensor_claiming_billions_is_refused_before_allocating(tmp_path, pixelformer_state):
    # One stored float viewed as 40000x40000 (6.4 GB as float32): the import peaked at 14 GB.
    view = torch.zeros(1).expand(40000, 40000)
    source = save_with(tmp_path / "nyu.pth", pixelformer_state, **{"sam2.sam_block.attn.q.weight": view})
    out = tmp_path / "out.safetensors"
    result, peak_mb = peak_rss_mb([*IMPORT, "--checkpoint", source, "--out", out])
    assert peak_mb < 1500, f"import-pixelformer peaked at {peak_mb:.0f} MB: it allocated the view"
    assert_refused(result.returncode, result.stderr, "claims shape (40000, 40000) (1,600,000,000 values)", out)


@pytest.mark.parametrize("name, value, message", [
    ("bcp.fc2.weight", torch.tensor(1.0), "'bcp.fc2.weight' has shape (), expected 2 non-empty dimensions"),
    ("sam3.sam_block.attn.relative_position_bias_table", torch.zeros(169),
     "has shape (169,), expected 2 non-empty dimensions"),
    ("sam2.norm_sam.weight", 3, "entry 'sam2.norm_sam.weight' is a int, not a tensor"),
    ("decoder.bottleneck.bn.weight", "abc", "is a str, not a tensor"),
    ("bcp.fc1.bias", [1.0, 2.0], "is a list, not a tensor"),
], ids=["0-d", "1-d", "int", "str", "list"])
def test_wrong_ranks_and_non_tensors_are_one_line(tmp_path, pixelformer_state, capsys, name, value, message):
    source = save_with(tmp_path / "nyu.pth", pixelformer_state, **{name: value})
    out = tmp_path / "out.safetensors"
    code = textdepth(["import-pixelformer", "--checkpoint", str(source), "--out", str(out)])
    assert_refused(code, capsys.readouterr().err, message, out)


def test_out_on_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, pixelformer_state):
    require_private_mounts()
    source = save_with(tmp_path / "nyu.pth", pixelformer_state)
    disk = tmp_path / "disk"
    result, listing = run_on_tmpfs(disk, [*IMPORT, "--checkpoint", source, "--out", disk / "out.safetensors"],
                                   size_kb=256)
    assert_refused(result.returncode, result.stderr, "No space left on device", disk / "out.safetensors")
    assert listing == {}, listing
