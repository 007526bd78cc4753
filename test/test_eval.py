"""`textdepth eval`: flip TTA, --pred-dir, --nyu-mat, results.json / CSV, --compare."""
import csv
import json

import cv2
import numpy as np
import pytest
import torch

from textdepth_ros.cli import main
from textdepth_ros.data.generate import generate_dataset
from textdepth_ros.data.nyu import load_depth, read_list
from textdepth_ros.metrics import METRIC_NAMES
from textdepth_ros.model import build_model
from textdepth_ros.training.evaluate import flip_tta_blend, predict

from test_data import write_labeled_mat


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return generate_dataset(tmp_path_factory.mktemp("nyu"), n_train=0, n_test=3, height=96, width=128, seed=5)


def test_flip_tta_fuses_the_two_passes_as_pixelformer():
    torch.manual_seed(0)
    model = build_model("tiny", pretrained=False).eval()
    images = torch.rand(2, 3, 96, 128)
    texts = ["a photo of a kitchen", "a photo of a bedroom"]
    with torch.no_grad():
        plain = model(images, texts=texts)["depth"]
        mirrored = model(torch.flip(images, dims=[3]), texts=texts)["depth"]
    expected = flip_tta_blend(plain, mirrored)  # = PixelFormer's post_process_depth (test_pixelformer_protocol)
    torch.testing.assert_close(predict(model, images, texts, flip_tta=True), expected)
    middle = 0.5 * (plain + torch.flip(mirrored, dims=[3]))
    torch.testing.assert_close(expected[..., 13:-13], middle[..., 13:-13])  # a plain mean past 10 % of the width
    torch.testing.assert_close(predict(model, images, texts, flip_tta=False), plain)
    assert not torch.allclose(expected, plain)  # the flip actually changes something


def _write_preds(dataset, pred_dir, scale):
    for sample in read_list(dataset["test_list"]):
        path = (pred_dir / sample.rgb).with_suffix(".npy")
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, load_depth(dataset["root"], sample) * scale)


def test_pred_dir_results_json_and_csv(dataset, tmp_path, capsys):
    _write_preds(dataset, tmp_path / "perfect", 1.0)
    out = tmp_path / "out"
    assert main(["eval", "--pred-dir", str(tmp_path / "perfect"), "--data-root", dataset["root"],
                 "--test-list", dataset["test_list"], "--out", str(out), "--compare"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert list(results) == [*METRIC_NAMES, "count"]
    assert results["count"] == 3 and results["abs_rel"] == 0.0 and results["d1"] == 1.0
    rows = list(csv.reader(open(out / "per_image.csv")))
    assert rows[0] == ["name", *METRIC_NAMES] and len(rows) == 4
    printed = capsys.readouterr().out
    assert "PixelFormer" in printed and "0.090" in printed and "0.322" in printed and "0.319" in printed

    _write_preds(dataset, tmp_path / "half", 0.5)  # every pixel half as far: abs_rel exactly 0.5
    assert main(["eval", "--pred-dir", str(tmp_path / "half"), "--data-root", dataset["root"],
                 "--test-list", dataset["test_list"], "--out", str(out), "--crop", "none"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["abs_rel"] == pytest.approx(0.5) and results["d1"] == 0.0


def test_missing_prediction_is_a_user_error(dataset, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["eval", "--pred-dir", str(tmp_path / "empty"), "--data-root", dataset["root"],
                 "--test-list", dataset["test_list"], "--out", str(tmp_path / "o")]) == 2
    assert "missing prediction" in capsys.readouterr().err


def test_nyu_mat_with_pred_dir(tmp_path):
    scenes = ["kitchen"] * 10
    _, depths = write_labeled_mat(tmp_path / "nyu.mat", 10, scenes)
    for index in (0, 1, 8):  # the official test images among the first 10
        (tmp_path / "pred/kitchen").mkdir(parents=True, exist_ok=True)
        np.save(tmp_path / f"pred/kitchen/rgb_{index:05d}.npy", depths[index] * 1.05)  # stays below the 10 m clamp
    assert main(["eval", "--nyu-mat", str(tmp_path / "nyu.mat"), "--pred-dir", str(tmp_path / "pred"),
                 "--out", str(tmp_path / "out")]) == 0
    results = json.loads((tmp_path / "out/results.json").read_text())
    assert results["count"] == 3 and results["abs_rel"] == pytest.approx(0.05, rel=1e-4)


def test_checkpoint_eval_runs(dataset, tmp_path):
    from textdepth_ros.model.checkpoint import save_checkpoint

    torch.manual_seed(0)
    save_checkpoint(tmp_path / "m.safetensors", build_model("tiny", pretrained=False), extra={"step": 0})
    assert main(["eval", "--checkpoint", str(tmp_path / "m.safetensors"), "--data-root", dataset["root"],
                 "--test-list", dataset["test_list"], "--out", str(tmp_path / "out"), "--num-workers", "0",
                 "--limit", "2"]) == 0
    assert json.loads((tmp_path / "out/results.json").read_text())["count"] == 2


class _RunsCode:
    """Pickles to a call that creates a file: what a malicious .npy could hold."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import pathlib

        return pathlib.Path.touch, (pathlib.Path(self.marker),)


def _copy_dataset(dataset, to):
    import shutil

    shutil.copytree(dataset["root"], to)
    return str(to), str(to / "test_list.txt")


@pytest.mark.parametrize("case", ["pickled npy", "prediction size", "gt size", "unreadable image (workers)"])
def test_eval_bad_input_is_one_line_and_no_results(dataset, tmp_path, capsys, case):
    from test_train import _only_error_line

    root, test_list = _copy_dataset(dataset, tmp_path / "data")
    first = read_list(test_list)[0]
    source = ["--pred-dir", str(tmp_path / "pred")]
    _write_preds({"root": root, "test_list": test_list}, tmp_path / "pred", 1.0)
    pred_path = (tmp_path / "pred" / first.rgb).with_suffix(".npy")
    if case == "pickled npy":
        np.save(pred_path, np.array([_RunsCode(tmp_path / "code_ran")], dtype=object), allow_pickle=True)
    elif case == "prediction size":
        np.save(pred_path, np.ones((48, 64), np.float32))
    elif case == "gt size":
        cv2.imwrite(f"{root}/{first.depth}", np.full((48, 64), 2000, np.uint16))  # the RGB is 96x128
    else:
        (tmp_path / "data" / first.rgb).write_bytes(b"not a jpeg")
    if "workers" in case:
        from textdepth_ros.model.checkpoint import save_checkpoint

        torch.manual_seed(0)
        save_checkpoint(tmp_path / "m.safetensors", build_model("tiny", pretrained=False))
        source = ["--checkpoint", str(tmp_path / "m.safetensors"), "--num-workers", "2"]
    code = main(["eval", *source, "--data-root", root, "--test-list", test_list, "--out", str(tmp_path / "out")])
    line = _only_error_line(capsys.readouterr().err, "eval")
    assert code == 2 and not (tmp_path / "out").exists()
    expected = {"pickled npy": "holds pickled Python objects, not a numeric array; refused", "prediction size": "prediction is 48x64, its ground truth",
                "gt size": "is 48x64 but its image", "unreadable image (workers)": "cannot read image"}
    assert expected[case] in line
    assert not (tmp_path / "code_ran").exists()  # the pickle was never loaded
