"""`textdepth bag-dataset`: RGB-D rosbags -> a train / held-out dataset that `train` and
`eval` read. End to end on a bag `make-bag` wrote from generated rooms (a short training
from it lowers the held-out AbsRel), and pairing / splitting / skipping on a bag written
message by message with the faults robots record (a depth frame missing, stamps off
beyond the tolerance, undecodable and unaligned frames, a repeated stamp, text that
starts late, a binned camera_info)."""
import csv
import json

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
def rooms(tmp_path_factory):
    """40 generated rooms (NYU layout, 96x128)."""
    return generate_dataset(tmp_path_factory.mktemp("rooms") / "data", n_train=0, n_test=40, height=H, width=W, seed=5)


@pytest.fixture(scope="module")
def room_bag(rooms):
    """The rooms at 10 Hz (4 s), as make-bag writes a RealSense-like recording."""
    bag = rooms["root"] + "/../bag"
    assert textdepth(["make-bag", "--root", rooms["root"], "--list", rooms["test_list"], "--out", bag]) == 0
    return bag


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
                 "train.epochs=3", "train.batch_size=4", "log.save_every=0", "log.image_every=0",
                 "eval.every_epoch=false", "eval.every_steps=21"]  # evaluated once, at the end (step 21)
    cfg = load_train_config(repo_root / "config/train_tiny.yaml", overrides)
    torch.manual_seed(cfg["train"]["seed"])  # the weights train() starts from
    untrained = build_model("tiny", pretrained=False)
    held_out = ListDataset(out, read_list(out / "test_list.txt"), SceneText(captions_dir=out))
    assert held_out.text(0) == next(f["text"] for f in frames if f["split"] == "test")  # the captions are read
    loader = torch.utils.data.DataLoader(held_out, batch_size=1, collate_fn=collate)
    start = evaluate_model(untrained, loader, torch.device("cpu"), crop=None, progress=False)
    summary = train(cfg)
    end, best = summary["eval"], summary["best"]["abs_rel"]
    print(f"held-out AbsRel {start['abs_rel']:.4f} -> {end['abs_rel']:.4f} after {summary['step']} steps")
    assert summary["step"] == best["step"] == 21 and end["count"] == start["count"] == 7
    # Measured (docs/training-from-bags.md): end / start 0.41 here; 0.27, 0.51, 0.56 with data
    # seeds 6, 7 and train seed 1 (one torch thread; two threads round differently).
    assert end["abs_rel"] < 0.8 * start["abs_rel"]

    # `eval` on the best checkpoint, with the captions, scores what training recorded.
    assert textdepth(["eval", "--checkpoint", str(tmp_path / "run/best_abs_rel.safetensors"), "--data-root", str(out),
                      "--test-list", str(out / "test_list.txt"), "--captions-dir", str(out), "--crop", "none",
                      "--num-workers", "0", "--out", str(tmp_path / "eval")]) == 0
    result = json.loads((tmp_path / "eval/results.json").read_text())
    assert result["count"] == 7 and result["abs_rel"] == pytest.approx(best["value"], rel=1e-6)



def test_compressed_topics_and_two_bags(rooms, room_bag, tmp_path):
    """A second bag recorded as image_transport's compressed colour (png) and
    compressedDepth, sqlite3: its frames come out exact; each bag is a scene folder and
    the time blocks number on across bags (its two blocks are 4 and 5: both train)."""
    compressed = tmp_path / "bag"  # the same folder name as the first bag: its scene becomes bag_2
    assert textdepth(["make-bag", "--root", rooms["root"], "--list", rooms["test_list"], "--out", str(compressed),
                      "--limit", "12", "--image-format", "png", "--depth-format", "compressedDepth",
                      "--storage", "sqlite3"]) == 0
    out = tmp_path / "ds"
    assert textdepth(["bag-dataset", room_bag, str(compressed), "--out", str(out), "--block-seconds", "1",
                      "--gap-seconds", "0.15", "--text", "a room"]) == 0
    frames = read_frames(out)
    second = [f for f in frames if f["rgb"].startswith("bag_2/")]
    assert len(second) == 12 and {f["split"] for f in second} == {"train"} and {f["text"] for f in frames} == {"a room"}
    assert len(frames) == 34 + 12
    listed = {s.rgb: s for s in read_list(out / "train_list.txt")}
    originals = read_list(rooms["test_list"])
    for f in second:
        index = (int(f["image_stamp_ns"]) - START) // PERIOD
        np.testing.assert_array_equal(load_rgb(out, listed[f["rgb"]]), load_rgb(rooms["root"], originals[index]))
        np.testing.assert_array_equal(load_depth(out, listed[f["rgb"]]), load_depth(rooms["root"], originals[index]))


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


# ---------------------------------------------------------------- a bag with faults
def _colour(i, h=H, w=W):
    return np.full((h, w, 3), (i * 7 % 256, 40, 200), np.uint8)


def _depth_mm(i, h=H, w=W):
    return np.full((h, w), 1000 + 10 * i, np.uint16)


def write_faulty_bag(path, storage="sqlite3", frames=30, text_times=((150, "a first text"), (2050, "a second text")),
                     depth_offset_ms=None, depth_encoding=None):
    """A RealSense-like bag written message by message, with the faults of FAULTS.
    Stamps t_i = START + i * 100 ms; text at START + the given milliseconds. Camera
    info as a binned sensor: a 2x calibration (fx 200) with binning 2 (fx 100 for the image)."""
    topics = bagio.DEFAULT_TOPICS
    depth_offset_ms = depth_offset_ms or {}
    with bagio.BagWriter(path, storage) as bag:
        for topic, msgtype in ((topics["image"], bagio.IMAGE_TYPE), (topics["depth"], bagio.IMAGE_TYPE),
                               (topics["camera_info"], bagio.CAMERA_INFO_TYPE)):
            bag.add_topic(topic, msgtype)
        bag.add_topic(topics["text"], bagio.STRING_TYPE, transient_local=True)
        messages = [(START + ms * 1_000_000, topics["text"], bagio.string_message(text)) for ms, text in text_times]
        for i in range(frames):
            t = START + i * PERIOD
            info = bagio.camera_info_message({"fx": 200.0, "fy": 200.0, "cx": 127.5, "cy": 95.5}, 2 * H, 2 * W, t, "cam")
            info.binning_x = info.binning_y = 2
            colour = bagio.image_message(_colour(i), "rgb8", t, "cam")
            if i == 6:
                colour.data = colour.data[:100]  # truncated: unreadable
            messages += [(t, topics["image"], colour), (t, topics["camera_info"], info)]
            if i == 10:  # the camera sent this stamp twice: the second copy is dropped
                messages.append((t + 1, topics["image"], bagio.image_message(_colour(99), "rgb8", t, "cam")))
            if i == 3:
                continue  # depth frame lost
            depth = bagio.image_message(_depth_mm(i), "16UC1", t, "cam")
            if depth_encoding:
                depth.encoding = depth_encoding
            if i == 7:
                depth.encoding = "8UC1"  # not a depth encoding
            elif i == 8:
                depth = bagio.image_message(np.zeros((H, W), np.uint16), "16UC1", t, "cam")
            elif i == 9:
                depth = bagio.image_message(_depth_mm(i, H // 2, W // 2), "16UC1", t, "cam")  # not aligned
            elif i == 11:  # 32FC1 metres, NaN = no reading (REP 117)
                metres = _depth_mm(i).astype(np.float32) / 1000
                metres[0, :5] = np.nan
                depth = bagio.image_message(metres, "32FC1", t, "cam")
            stamp = t + {4: 30, 5: 4, **depth_offset_ms}.get(i, 0) * 1_000_000  # 30 ms: beyond the tolerance
            depth.header = bagio.header(stamp, "cam")
            messages.append((stamp, topics["depth"], depth))
        for log_time, topic, msg in sorted(messages, key=lambda m: m[0]):
            bag.write(topic, log_time, msg)
    return path


FAULTS = {  # what bag-dataset must report for write_faulty_bag with 1.5 s blocks, half held out, 0.15 s gap
    "before the first scene text": 2,  # frames 0, 1
    "no depth frame within the sync tolerance": 2,  # 3 (lost), 4 (30 ms off)
    "depth frames without an image": 1,  # 4's
    "unreadable colour image": 1,  # 6
    "unreadable depth image": 1,  # 7
    "no valid depth pixel": 1,  # 8
    "depth size differs from the colour image (not aligned to colour)": 1,  # 9
    "image stamp repeated (the first one is kept)": 1,  # 10's copy
    "within the guard gap of a train/held-out boundary": 3,  # 14, 15, 16 around 1.5 s
}


def test_pairing_and_splitting_skip_what_cannot_be_used(tmp_path, capsys):
    bag = write_faulty_bag(tmp_path / "robot_run")
    out = tmp_path / "ds"
    assert textdepth(["bag-dataset", str(bag), "--out", str(out), "--block-seconds", "1.5", "--gap-seconds", "0.15",
                      "--test-fraction", "0.5"]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "dataset.json").read_text())
    assert summary["skipped"] == FAULTS
    assert all(f"skipped {n}: {reason}" in printed for reason, n in FAULTS.items())
    assert "8UC1" in summary["skipped_examples"]["unreadable depth image"]
    frames = read_frames(out)
    stamps = {split: [(int(f["image_stamp_ns"]) - START) // PERIOD for f in frames if f["split"] == split]
              for split in ("train", "test")}
    assert stamps == {"test": [2, 5, 10, 11, 12, 13], "train": list(range(17, 30))}  # block 0 held out
    assert_no_near_twins(frames, 150_000_000)
    assert {int(f["depth_stamp_ns"]) - int(f["image_stamp_ns"]) for f in frames} == {0, 4_000_000}  # 5: 4 ms off
    by_index = {(int(f["image_stamp_ns"]) - START) // PERIOD: f for f in frames}
    assert by_index[17]["text"] == "a first text" and by_index[21]["text"] == "a second text"

    samples = {s.rgb: s for split in ("train", "test") for s in read_list(out / f"{split}_list.txt")}
    assert len(samples) == 19 and {s.focal for s in samples.values()} == {100.0}  # binning 2 applied to fx 200
    frame10, frame11 = samples[by_index[10]["rgb"]], samples[by_index[11]["rgb"]]
    np.testing.assert_array_equal(load_rgb(out, frame10), _colour(10))  # the first copy of the stamp
    expected = _depth_mm(11).astype(np.float64)
    expected[0, :5] = 0  # NaN: no reading
    np.testing.assert_array_equal(np.round(load_depth(out, frame11) * 1000), expected)
    assert SceneText(captions_dir=out).text_for(frame10) == "a first text"

    # Run again over it: --overwrite replaces a dataset bag-dataset wrote, here with every 2nd of the 26 pairs
    assert textdepth(["bag-dataset", str(bag), "--out", str(out), "--block-seconds", "1.5", "--gap-seconds", "0.15",
                      "--test-fraction", "0.5", "--stride", "2", "--overwrite"]) == 0
    again = json.loads((out / "dataset.json").read_text())
    assert again["skipped"]["skipped by --stride"] == 13 and again["options"]["stride"] == 2
    assert len(read_frames(out)) == len(list(out.glob("robot_run/rgb_*.png"))) < 19
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging folder left


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("error:") == 1, err
    return err.replace("\r", "\n").strip().splitlines()[-1]


@pytest.mark.parametrize("case", ["missing topic", "bad option", "depth too far off", "no readable depth",
                                  "not a dataset folder"])
def test_bad_input_is_one_line_and_leaves_nothing(tmp_path, capsys, case):
    out = tmp_path / "ds"
    argv = ["bag-dataset", "--out", str(out), "--block-seconds", "1.5", "--gap-seconds", "0.15", "--test-fraction", "0.5"]
    if case == "missing topic":
        argv += [str(write_faulty_bag(tmp_path / "bag", "mcap", frames=4)), "--depth-topic", "/nope"]
        expected = "the bag has no depth topic '/nope'"
    elif case == "bad option":
        argv += [str(tmp_path / "never_read"), "--test-fraction", "1.5"]
        expected = "--test-fraction must be between 0 and 1"
    elif case == "depth too far off":  # every depth 30 ms after its image, tolerance 10 ms
        argv.append(str(write_faulty_bag(tmp_path / "bag", "mcap", frames=12, depth_offset_ms=dict.fromkeys(range(12), 30))))
        expected = "no colour frame paired with a depth frame"
    elif case == "no readable depth":  # found while writing: the staged folder goes
        argv.append(str(write_faulty_bag(tmp_path / "bag", "mcap", frames=25, depth_encoding="8UC1")))
        expected = "no usable train frame"  # (frame 11 of the held-out block is 32FC1: usable)
    else:
        out.mkdir()
        (out / "notes.txt").write_text("mine")
        argv += [str(write_faulty_bag(tmp_path / "bag", "mcap", frames=4)), "--overwrite"]
        expected = "refusing to overwrite"
    assert textdepth(argv) == 2
    line = _one_error_line(capsys)
    assert line.startswith("textdepth bag-dataset: error: ") and expected in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == (["bag"] if case != "bad option" else []) + \
        (["ds"] if case == "not a dataset folder" else [])  # no dataset, no staging folder
    if case == "depth too far off":
        assert "12 no depth frame within the sync tolerance" in line
    if case == "no readable depth":
        assert "unreadable depth image" in line and "8UC1" in line
