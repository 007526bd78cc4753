"""Our evaluation and training recipe against PixelFormer's own code
(/work/shared/reference/PixelFormer, imported, never copied): flip TTA + metrics on the
same predictions, the dataloader's augmentations with the same random draws, and the
recipe's numbers in its NYU arguments file. Skipped where the reference is absent."""
import importlib.util
import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from textdepth_ros.cli import main
from textdepth_ros.data.augment import AugmentConfig, Draws, apply
from textdepth_ros.data.nyu import load_depth, load_rgb, read_list
from textdepth_ros.metrics import METRIC_NAMES, evaluate_depth
from textdepth_ros.training.config import load_train_config
from textdepth_ros.training.evaluate import flip_tta_blend

_REPO = Path(__file__).resolve().parents[1]
_PLACES = [os.environ.get("TEXTDEPTH_PIXELFORMER_REFERENCE", ""), _REPO / "shared/reference/PixelFormer",
           _REPO.parent / "shared/reference/PixelFormer", "/work/shared/reference/PixelFormer"]
REFERENCE = next((Path(p) for p in _PLACES if p and Path(p, "pixelformer").is_dir()), Path(_PLACES[-1]))
needs_reference = pytest.mark.skipif(not (REFERENCE / "pixelformer/utils.py").is_file(),
                                     reason=f"PixelFormer reference code not found at {REFERENCE}")


def _import(name: str, relative: str):
    spec = importlib.util.spec_from_file_location(name, REFERENCE / relative)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ref_utils():
    return _import("pixelformer_utils", "pixelformer/utils.py")


@pytest.fixture(scope="module")
def ref_dataloader(ref_utils):
    saved = sys.modules.get("utils")
    sys.modules["utils"] = ref_utils  # dataloader.py does `from utils import ...`
    try:
        return _import("pixelformer_dataloader", "pixelformer/dataloaders/dataloader.py")
    finally:
        if saved is None:
            del sys.modules["utils"]
        else:
            sys.modules["utils"] = saved


def _ref_eval_one(ref_utils, pred, gt, min_depth=1e-3, max_depth=10.0):
    """The per-image lines of PixelFormer's eval.py / online_eval (NYU, --eigen_crop)."""
    pred = pred.copy()
    pred[pred < min_depth] = min_depth
    pred[pred > max_depth] = max_depth
    pred[np.isinf(pred)] = max_depth
    pred[np.isnan(pred)] = min_depth
    valid_mask = np.logical_and(gt > min_depth, gt < max_depth)
    eval_mask = np.zeros(valid_mask.shape)
    eval_mask[45:471, 41:601] = 1
    valid_mask = np.logical_and(valid_mask, eval_mask)
    return ref_utils.compute_errors(gt[valid_mask], pred[valid_mask])


@needs_reference
def test_flip_tta_blend_is_post_process_depth(ref_utils):
    torch.manual_seed(0)
    depth = torch.rand(2, 1, 48, 640) * 9 + 0.5
    flipped = torch.rand(2, 1, 48, 640) * 9 + 0.5
    ours, theirs = flip_tta_blend(depth, flipped), ref_utils.post_process_depth(depth, flipped)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    unflipped = torch.flip(flipped, dims=[3])
    torch.testing.assert_close(ours[..., 320], 0.5 * (depth + unflipped)[..., 320])  # the middle: the mean
    torch.testing.assert_close(ours[..., 0], unflipped[..., 0])  # left edge: the flipped pass
    torch.testing.assert_close(ours[..., -1], depth[..., -1])  # right edge: the plain pass
    assert not torch.allclose(ours[..., 10], 0.5 * (depth + unflipped)[..., 10])  # not a plain mean


@needs_reference
def test_textdepth_eval_matches_pixelformer_on_the_same_predictions(ref_utils, tmp_path):
    """`textdepth eval --checkpoint` on a 480x640 image = the model's two passes through
    PixelFormer's post_process_depth, its clamping / masks / Eigen crop and compute_errors
    (one image: 480x640 forwards are slow on CPU; averaging is tested in test_metrics)."""
    from textdepth_ros.data.generate import generate_dataset
    from textdepth_ros.model import build_model
    from textdepth_ros.model.checkpoint import save_checkpoint

    data = generate_dataset(tmp_path / "nyu", n_train=0, n_test=1, height=480, width=640, seed=11)
    torch.manual_seed(0)
    model = build_model("tiny", pretrained=False).eval()
    save_checkpoint(tmp_path / "m.safetensors", model)
    assert main(["eval", "--checkpoint", str(tmp_path / "m.safetensors"), "--data-root", data["root"],
                 "--test-list", data["test_list"], "--out", str(tmp_path / "out"), "--num-workers", "0"]) == 0
    ours = json.loads((tmp_path / "out/results.json").read_text())

    sums = np.zeros(9)
    for sample in read_list(data["test_list"]):
        image = torch.from_numpy(load_rgb(data["root"], sample).astype(np.float32) / 255.0).permute(2, 0, 1)[None]
        text = f"a photo of a {sample.scene.rsplit('_', 1)[0].replace('_', ' ')}"
        with torch.no_grad():
            pred = model(image, texts=[text])["depth"]
            pred_flipped = model(ref_utils.flip_lr(image), texts=[text])["depth"]
        pred = ref_utils.post_process_depth(pred, pred_flipped).numpy().squeeze()
        sums += np.array(_ref_eval_one(ref_utils, pred, load_depth(data["root"], sample)), np.float64)
    theirs = dict(zip(METRIC_NAMES, sums))
    assert ours["count"] == 1
    assert {name: ours[name] for name in METRIC_NAMES} == theirs  # to the last bit


@needs_reference
def test_metrics_match_compute_errors_on_hard_cases(ref_utils):
    rng = np.random.default_rng(3)
    gt = rng.uniform(0.2, 9.9, (480, 640)).astype(np.float32)
    gt[rng.random(gt.shape) < 0.2] = 0  # holes
    pred = (gt * rng.lognormal(0, 0.2, gt.shape)).astype(np.float32)
    pred[0, 100], pred[100, 100], pred[101, 100], pred[102, 100] = np.inf, np.nan, 42.0, -3.0
    ours = evaluate_depth(pred, gt, crop="eigen")
    theirs = {name: float(value) for name, value in zip(METRIC_NAMES, _ref_eval_one(ref_utils, pred, gt))}
    assert ours == theirs  # float32 as its numpy code (in float64, d1 moves by 7e-6 here)


class _Scripted:
    """Stands in for the `random` module in PixelFormer's dataloader: returns the given
    numbers in the order its code asks for them (uniform(a, b) returns the value itself)."""

    def __init__(self, values):
        self.values = list(values)

    def random(self):
        return self.values.pop(0)

    def uniform(self, low, high):
        value = self.values.pop(0)
        assert low <= value <= high
        return value


def _write_480x640_sample(root: Path):
    rng = np.random.default_rng(7)
    (root / "kitchen_0001").mkdir(parents=True)
    rgb = cv2.GaussianBlur(rng.integers(0, 256, (480, 640, 3)).astype(np.uint8), (0, 0), 2)
    depth_mm = np.add.outer(np.linspace(800, 9000, 480), np.linspace(0, 900, 640)).astype(np.uint16)
    depth_mm[rng.random(depth_mm.shape) < 0.05] = 0  # Kinect holes
    cv2.imwrite(str(root / "kitchen_0001/rgb_00000.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))  # PNG: both decoders agree
    cv2.imwrite(str(root / "kitchen_0001/sync_depth_00000.png"), depth_mm)
    line = "kitchen_0001/rgb_00000.png kitchen_0001/sync_depth_00000.png kitchen_0001/dense/sync_depth_dense_00000.png"
    (root / "list.txt").write_text(line + "\n")  # the layout of PixelFormer's dense train list


# (rotation random(), CutDepth a b c d, flip random(), jitter random(), gamma, brightness)
DRAWS = [
    (0.93, (0.30, 0.20, 0.90, 0.70), 0.80, 0.70, 1.07, 0.81),  # patch, flip, jitter (clips the metres)
    (0.08, (0.90, 0.50, 0.50, 0.50), 0.20, 0.30, None, None),  # a >= 0.75: no patch; no flip, no jitter
    (0.50, (0.05, 0.85, 0.40, 1.00), 0.60, 0.10, None, None),  # no rotation; patch at the bottom, flipped
    (0.31, (0.70, 0.00, 1.00, 1.00), 0.40, 0.95, 0.91, 1.24),  # patch cut off at row 480; jitter
]


@needs_reference
@pytest.mark.parametrize("draws", DRAWS)
def test_augmentation_equals_pixelformer_dataloader(ref_dataloader, tmp_path, draws):
    _write_480x640_sample(tmp_path)
    rotation, cut, flip, jitter, gamma, brightness = draws
    args = SimpleNamespace(mode="train", dataset="nyu", data_path=str(tmp_path), gt_path=str(tmp_path),
                           filenames_file=str(tmp_path / "list.txt"), input_height=480, input_width=640,
                           do_kb_crop=False, do_random_rotate=True, degree=2.5, use_right=False)
    reference = ref_dataloader.DataLoadPreprocess(args, "train", transform=ref_dataloader.preprocessing_transforms("train"))
    script = [rotation, *cut, flip, jitter] + ([gamma, brightness] if jitter > 0.5 else [])
    ref_dataloader.random = _Scripted(script)
    np.random.seed(5)
    colours = tuple(np.random.RandomState(5).uniform(0.9, 1.1, size=3))  # what its np.random draws next
    theirs = reference[0]

    sample = read_list(tmp_path / "list.txt")[0]
    ours = Draws(angle=(rotation - 0.5) * 2 * 2.5, cut=cut, flip=flip > 0.5,
                 color=(gamma, brightness, colours) if jitter > 0.5 else None)
    image, depth = apply(load_rgb(tmp_path, sample), load_depth(tmp_path, sample), ours, AugmentConfig())
    normalized = ref_dataloader.ToTensor("train").normalize(torch.from_numpy(image.transpose(2, 0, 1).copy()))
    torch.testing.assert_close(normalized, theirs["image"], rtol=0, atol=0)
    torch.testing.assert_close(torch.from_numpy(depth)[None], theirs["depth"], rtol=0, atol=0)
    assert ref_dataloader.random.values == []  # it drew exactly what we scripted


@needs_reference
def test_nyu_recipe_is_pixelformers_arguments_file(repo_root):
    """config/train_nyu.yaml against configs/arguments_train_nyu.txt and what train.py
    does with it (weight decay and adam_eps are parsed there, never used)."""
    words = (REFERENCE / "configs/arguments_train_nyu.txt").read_text().split()
    args = {w[2:]: (words[i + 1] if i + 1 < len(words) and not words[i + 1].startswith("--") else True)
            for i, w in enumerate(words) if w.startswith("--")}
    cfg = load_train_config(repo_root / "config/train_nyu.yaml", ["data.root=x", "data.train_list=x"])
    t, a, e = cfg["train"], cfg["augment"], cfg["eval"]
    assert (t["batch_size"], t["epochs"], t["lr"]) == (int(args["batch_size"]), int(args["num_epochs"]),
                                                        float(args["learning_rate"]))
    assert a["rotate_degrees"] == float(args["degree"]) and args["do_random_rotate"] is True
    assert e["every_steps"] == int(args["eval_freq"]) and e["crop"] == "eigen" and args["eigen_crop"] is True
    assert (e["min_depth"], e["max_depth"]) == (float(args["min_depth_eval"]), float(args["max_depth_eval"]))
    assert a["max_depth"] == float(args["max_depth"])
    train_py = (REFERENCE / "pixelformer/train.py").read_text()
    assert "torch.optim.Adam([{'params': model.module.parameters()}],\n                                lr=args.learning_rate)" in train_py
    assert (t["optimizer"], t["weight_decay"], t["amp"], e["amp"]) == ("adam", 0.0, "none", "none")
    assert a["cutdepth"] == "pixelformer" and e["best_metrics"] == list(METRIC_NAMES) and e["flip_tta"]


@needs_reference
def test_pixelformers_own_lists_load():
    train = read_list(REFERENCE / "data_splits/nyudepthv2_train_files_with_gt_dense.txt")
    assert len(train) == 36253  # every line, none rejected
    first = train[0]
    assert (first.rgb, first.depth, first.scene) == ("bedroom_0130/rgb_00000.jpg", "bedroom_0130/sync_depth_00000.png",
                                                     "bedroom_0130")
    assert all(s.depth.split("/")[-1].startswith("sync_depth_") and s.focal == 518.8579 for s in train)
    assert len({s.scene for s in train}) > 200  # scene folders, for the text template
    test = read_list(REFERENCE / "data_splits/nyudepthv2_test_files_with_gt.txt")
    assert len(test) == 654 and test[0].rgb == "bathroom/rgb_00045.jpg"
