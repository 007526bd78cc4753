"""`textdepth bag-dataset`: RGB-D rosbags -> a train / held-out dataset that `train` and
`eval` read. End to end on a bag `make-bag` wrote from generated rooms (a short training
from it lowers the held-out AbsRel), and pairing / splitting / skipping on a bag written
message by message with the faults robots record (a depth frame missing, stamps off
beyond the tolerance, undecodable and unaligned frames, a repeated stamp, text that
starts late, a binned camera_info)."""
import csv
import json

import cv2
import numpy as np
import pytest
import torch

from textdepth_ros.bags import bagio
from textdepth_ros.cli import main as textdepth
from textdepth_ros.data.dataset import ListDataset, collate
from textdepth_ros.data.generate import generate_dataset
from textdepth_ros.data.nyu import load_depth, load_rgb, read_list
from textdepth_ros.data.scene_text import SceneText
from textdepth_ros.model import build_model
from textdepth_ros.train import train
from textdepth_ros.training.config import load_train_config
from textdepth_ros.training.evaluate import evaluate_model

H, W = 96, 128
START = 1_700_000_000 * 10**9
PERIOD = 100_000_000  # 10 Hz


def read_frames(out) -> list:
    with open(out / "frames.csv") as f:
        return list(csv.DictReader(f))


def assert_no_near_twins(frames, gap_ns):
    """No held-out frame is within the guard gap of a train frame of the same bag."""
    for test in (f for f in frames if f["split"] == "test"):
        nearest = min(abs(int(test["image_stamp_ns"]) - int(f["image_stamp_ns"]))
                      for f in frames if f["split"] == "train" and f["bag"] == test["bag"])
        assert nearest >= gap_ns, (test, nearest)


# ---------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def room_bag(tmp_path_factory):
    """40 generated rooms at 10 Hz (4 s), as make-bag writes a RealSense-like recording."""
    tmp = tmp_path_factory.mktemp("rooms")
    data = generate_dataset(tmp / "data", n_train=0, n_test=40, height=H, width=W, seed=5)
    assert textdepth(["make-bag", "--root", data["root"], "--list", data["test_list"], "--out", str(tmp / "bag")]) == 0
    return tmp / "bag"


def test_training_from_a_bag_lowers_held_out_abs_rel(room_bag, repo_root, tmp_path, capsys):
    out = tmp_path / "ds"
    # 4 blocks of 1 s: block 2 held out (frames 20-29), 0.15 s guard: 6 frames left out
    assert textdepth(["bag-dataset", str(room_bag), "--out", str(out), "--block-seconds", "1",
                      "--gap-seconds", "0.15"]) == 0
    printed = capsys.readouterr().out
    assert "27 train and 7 held-out frames" in printed and "skipped 6: within the guard gap" in printed
    frames = read_frames(out)
    assert [int(f["image_stamp_ns"]) for f in frames if f["split"] == "test"] == \
        [START + i * PERIOD for i in range(22, 29)]
    assert_no_near_twins(frames, 150_000_000)
    train_samples = read_list(out / "train_list.txt")
    assert all(s.focal == pytest.approx(518.8579 * W / 640, abs=1e-4) for s in train_samples)  # camera_info fx
    # The frames are the bag's: colour and millimetre depth as make-bag wrote them.
    bag_rgb, bag_depth = _first_frame(room_bag)
    np.testing.assert_array_equal(load_rgb(out, train_samples[0]), bag_rgb)
    np.testing.assert_array_equal(np.round(load_depth(out, train_samples[0]) * 1000), bag_depth)

    overrides = [f"data.root={out}", f"data.train_list={out}/train_list.txt", f"data.test_list={out}/test_list.txt",
                 f"data.captions_dir={out}", "eval.crop=none", "augment.border_mask=false", f"log.out_dir={tmp_path}/run",
                 "train.epochs=4", "train.batch_size=4", "log.save_every=0", "log.image_every=0"]
    cfg = load_train_config(repo_root / "config/train_tiny.yaml", overrides)
    torch.manual_seed(cfg["train"]["seed"])  # the weights train() starts from
    untrained = build_model("tiny", pretrained=False)
    held_out = ListDataset(out, read_list(out / "test_list.txt"), SceneText(captions_dir=out))
    assert held_out.text(0) == next(f["text"] for f in frames if f["split"] == "test")  # the captions are read
    loader = torch.utils.data.DataLoader(held_out, batch_size=1, collate_fn=collate)
    start = evaluate_model(untrained, loader, torch.device("cpu"), crop=None, progress=False)
    summary = train(cfg)
    end, best = summary["eval"], summary["best"]["abs_rel"]
    print(f"held-out AbsRel {start['abs_rel']:.4f} -> {end['abs_rel']:.4f} after {summary['step']} steps "
          f"(best {best['value']:.4f} at step {best['step']})")
    assert end["count"] == start["count"] == 7
    assert end["abs_rel"] < start["abs_rel"] - MARGIN

    # `eval` on the best checkpoint, with the captions, scores what training recorded.
    assert textdepth(["eval", "--checkpoint", str(tmp_path / "run/best_abs_rel.safetensors"), "--data-root", str(out),
                      "--test-list", str(out / "test_list.txt"), "--captions-dir", str(out), "--crop", "none",
                      "--num-workers", "0", "--out", str(tmp_path / "eval")]) == 0
    result = json.loads((tmp_path / "eval/results.json").read_text())
    assert result["count"] == 7 and result["abs_rel"] == pytest.approx(best["value"], rel=1e-6)


MARGIN = 0.0


def _first_frame(bag):
    reader = bagio.open_reader(bag)
    try:
        got = {}
        for topic, _, raw in bagio.iter_raw(reader, [bagio.DEFAULT_TOPICS["image"], bagio.DEFAULT_TOPICS["depth"]]):
            msg = bagio.decode(raw, bagio.IMAGE_TYPE)
            dtype, shape = (np.uint8, (H, W, 3)) if topic == bagio.DEFAULT_TOPICS["image"] else ("<u2", (H, W))
            got.setdefault(topic, np.frombuffer(bytes(msg.data), dtype).reshape(shape))
            if len(got) == 2:
                return got[bagio.DEFAULT_TOPICS["image"]], got[bagio.DEFAULT_TOPICS["depth"]]
    finally:
        reader.close()
