"""`textdepth make-bag` under faults: a bag appears whole or not at all. The full disk is
a real small tmpfs (fs_helpers); the signals are real signals to a real process."""
import os
import shutil
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
import yaml

from fs_helpers import require_private_mounts, run_on_tmpfs
from textdepth_ros.atomic_io import STAGING_MARKER
from textdepth_ros.data.generate import generate_dataset

MAKE_BAG = [sys.executable, "-m", "textdepth_ros.cli", "make-bag"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return generate_dataset(tmp_path_factory.mktemp("data"), n_train=0, n_test=6, height=96, width=128, seed=3)


def list_args(dataset):
    return ["--root", dataset["root"], "--list", dataset["test_list"]]


def assert_one_line(result, code=2):
    assert result.returncode == code, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("make-bag:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr  # tqdm's bar aside


def folder_sizes(folder):
    return {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*"))}


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_a_full_disk_leaves_no_partial_bag(dataset, tmp_path, storage):
    require_private_mounts()
    disk = tmp_path / "disk"
    # 6 frames of 96x128 need ~370 KB; the disk has 128 KiB. mcap buffers its chunks, so
    # there the disk fills inside close(); sqlite3 fills during the writes.
    result, listing = run_on_tmpfs(disk, [*MAKE_BAG, *list_args(dataset), "--out", disk / "bag", "--storage", storage],
                                   size_kb=128)
    assert_one_line(result)
    assert "cannot write bag" in result.stderr and ("No space left" in result.stderr or "full" in result.stderr)
    assert listing == {}, listing


def test_overwrite_on_a_full_disk_keeps_the_previous_bag(dataset, tmp_path):
    require_private_mounts()
    old = tmp_path / "old"
    assert subprocess.run([*MAKE_BAG, *list_args(dataset), "--out", old, "--limit", "1"],
                          capture_output=True, timeout=300).returncode == 0
    before = folder_sizes(old)
    disk = tmp_path / "disk"
    result, listing = run_on_tmpfs(disk, [*MAKE_BAG, *list_args(dataset), "--out", disk / "bag", "--overwrite"],
                                   size_kb=160, prepare=f"cp -r {old} {disk}/bag")
    assert_one_line(result)
    assert listing == {"bag": listing["bag"], **{f"bag/{k}": v for k, v in before.items()}}, listing


@pytest.fixture
def slow_input(tmp_path):
    """300 frames at 240x320 (hard links of one image): long enough to signal mid-write."""
    rgb = tmp_path / "rgb"
    rgb.mkdir()
    image = (np.random.default_rng(0).random((240, 320, 3)) * 255).astype(np.uint8)
    cv2.imwrite(str(rgb / "f0000.png"), image)
    for i in range(1, 300):
        os.link(rgb / "f0000.png", rgb / f"f{i:04d}.png")
    return ["--rgb-dir", rgb, "--text", "a test pattern"]


def staging_folders(out):
    return sorted(out.parent.glob(f".{out.name}.partial-*"))


def start_and_wait_for_staging(argv, out, timeout=120):
    proc = subprocess.Popen([*MAKE_BAG, *map(str, argv)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    while not any((s / out.name).exists() for s in staging_folders(out)):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "make-bag never started writing"
        time.sleep(0.02)
    return proc


def test_sigterm_mid_write_removes_the_partial_bag(tmp_path, slow_input):
    out = tmp_path / "bag"
    proc = start_and_wait_for_staging([*slow_input, "--out", out], out)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr, stderr
    assert not out.exists() and staging_folders(out) == []


def test_a_sigkill_leftover_is_recognised_and_cleared_but_foreign_folders_are_not(tmp_path, slow_input):
    out = tmp_path / "bag"
    proc = start_and_wait_for_staging([*slow_input, "--out", out], out)
    proc.kill()
    proc.communicate(timeout=60)
    (leftover,) = staging_folders(out)
    assert (leftover / STAGING_MARKER).is_file() and not out.exists()
    foreign = tmp_path / f".{out.name}.partial-not-ours"  # same name pattern, no marker: not ours
    foreign.mkdir()
    result = subprocess.run([*MAKE_BAG, *map(str, slow_input), "--out", out, "--overwrite", "--limit", "2"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"removed {leftover}" in result.stderr
    assert staging_folders(out) == [foreign]
    meta = yaml.safe_load((out / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["message_count"] == 2 * 2 + 1  # images, camera infos, one text (no depth folder)


def test_overwrite_still_refuses_a_folder_that_is_not_a_bag(dataset, tmp_path):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"precious")
    result = subprocess.run([*MAKE_BAG, *list_args(dataset), "--out", out, "--overwrite"],
                            capture_output=True, text=True, timeout=300)
    assert_one_line(result)
    assert "not a bag folder" in result.stderr
    assert folder_sizes(out) == {"holiday.jpg": 8} and staging_folders(out) == []
    shutil.rmtree(out)


@pytest.mark.parametrize("metadata", [
    b"rosbag2_bagfile_information: " + b"[" * 200_000 + b"]" * 200_000 + b"\n",  # 200k-deep nesting
    b"rosbag2_bagfile_information:\n  version: [1, 2\n  x: 3\n",                # PyYAML's multi-line error
    b"rosbag2_bagfile_information:\n  version: \xff\xfe\n",                       # not UTF-8
])
def test_a_hostile_metadata_yaml_is_one_line(tmp_path, capsys, metadata):
    from textdepth_ros.cli import main as textdepth

    bag = tmp_path / "bag"
    bag.mkdir()
    (bag / "metadata.yaml").write_bytes(metadata)
    assert textdepth(["bag-eval", str(bag), "--offline"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("textdepth bag-eval: error: cannot open bag"), err
