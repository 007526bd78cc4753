"""KITTI (Eigen split) as PixelFormer runs it, against its own code
(/work/shared/reference/PixelFormer, imported, never copied) on generated KITTI-layout
data (no KITTI here): its eval.py's eval() on the same predictions and ground truth gives
the numbers `textdepth eval --dataset kitti` gives (KB crop of image and ground truth,
Garg and KITTI-Eigen crops, 1e-3..80 m, depth PNG / 256, BTS's list layout), its
dataloader's KITTI training branch gives our training sample for the same random draws,
and config/train_kitti.yaml is its KITTI arguments file. Skipped where the reference is
absent."""
import ast
import json
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from tqdm import tqdm

from test_pixelformer_protocol import REFERENCE, _Scripted, needs_reference, ref_dataloader, ref_utils  # noqa: F401
from textdepth_ros.cli import main
from textdepth_ros.data import kitti
from textdepth_ros.data.augment import AugmentConfig, Draws, apply
from textdepth_ros.data.dataset import ListDataset
from textdepth_ros.data.nyu import load_rgb
from textdepth_ros.data.scene_text import SceneText
from textdepth_ros.metrics import METRIC_NAMES
from textdepth_ros.training.config import load_train_config

DATE, DRIVE = "2011_09_26", "2011_09_26_drive_0002_sync"
TEXT = "a photo of a street"


def write_kitti(root: Path, frames=((376, 1241), (375, 1242)), with_gt=(True, False)) -> dict:
    """Raw images and annotated depth in BTS's layout, and an Eigen-style list (a line
    with 'None' where a frame has no ground truth, as eigen_test_files_with_gt.txt has).
    1241x376 puts the KB crop at a half-pixel margin (left = int(12.5))."""
    rng = np.random.default_rng(0)
    lines = []
    for i, ((h, w), gt) in enumerate(zip(frames, with_gt)):
        rgb_rel = f"{DATE}/{DRIVE}/image_02/data/{i:010d}.png"
        depth_rel = f"{DRIVE}/proj_depth/groundtruth/image_02/{i:010d}.png"
        (root / "raw" / rgb_rel).parent.mkdir(parents=True, exist_ok=True)
        rgb = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3)).astype(np.uint8), (0, 0), 3)
        cv2.imwrite(str(root / "raw" / rgb_rel), rgb)  # PNG: cv2 and PIL decode it alike
        if gt:
            # lidar-like: sparse points in the lower two thirds, 0.5..95 m (some beyond the 80 m cap)
            depth = np.zeros((h, w), np.float32)
            rows = np.arange(h)[:, None] >= h // 3
            points = rows & (rng.random((h, w)) < 0.08)
            depth[points] = rng.uniform(0.5, 95.0, points.sum())
            path = root / "gt" / DATE / depth_rel
            path.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(path), np.round(depth * 256).astype(np.uint16))
        lines.append(f"{rgb_rel} {depth_rel if gt else 'None'} 721.5377")
    (root / "eigen_test.txt").write_text("\n".join(lines) + "\n")
    return {"raw": str(root / "raw"), "gt": str(root / "gt"), "list": str(root / "eigen_test.txt")}


def reference_eval(ref_utils, data, crop: str):
    """PixelFormer's eval.py eval() on our data: the function is read from its file with
    ast and run as written, except that its three .cuda() device moves become .cpu()
    (no GPU here); its arguments are those of configs/arguments_eval_kittieigen.txt."""
    source = (REFERENCE / "pixelformer/eval.py").read_text()
    function = next(n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == "eval")

    class ToCpu(ast.NodeTransformer):
        def visit_Call(self, node):
            self.generic_visit(node)
            if isinstance(node.func, ast.Attribute) and node.func.attr == "cuda":
                return ast.Call(func=ast.Attribute(value=node.func.value, attr="cpu", ctx=ast.Load()), args=[], keywords=[])
            return node

    module = ast.fix_missing_locations(ast.Module(body=[ToCpu().visit(function)], type_ignores=[]))
    args = SimpleNamespace(dataset="kitti", do_kb_crop=True, min_depth_eval=1e-3, max_depth_eval=80.0,
                           garg_crop=crop == "garg", eigen_crop=crop == "eigen", data_path_eval=data["raw"],
                           gt_path_eval=data["gt"], filenames_file_eval=data["list"], use_right=False)
    namespace = {"torch": torch, "np": np, "tqdm": tqdm, "args": args, "compute_errors": ref_utils.compute_errors,
                 "post_process_depth": ref_utils.post_process_depth, "flip_lr": ref_utils.flip_lr}
    exec(compile(module, str(REFERENCE / "pixelformer/eval.py"), "exec"), namespace)
    return namespace["eval"], args


class OurPredictions:
    """The model PixelFormer's eval() calls: our network's depth for each of its two
    passes (plain, then flipped), computed from OUR loader's image of that frame, after
    checking that its input is that image (KB crop, normalized as its ToTensor does)."""

    def __init__(self, net, items, normalize):
        self.net, self.items, self.normalize, self.calls, self.outputs = net, items, normalize, 0, []

    def __call__(self, image):
        item = self.items[self.calls // 2]
        flipped = self.calls % 2 == 1
        ours = torch.flip(item["image"], dims=[2]) if flipped else item["image"]
        torch.testing.assert_close(image[0], self.normalize(ours), rtol=0, atol=1e-6)  # the same pixels in
        with torch.no_grad():
            depth = self.net(ours[None], texts=[TEXT])["depth"]
        self.calls += 1
        self.outputs.append(depth)
        return depth


def assert_same_numbers(ours: dict, theirs: torch.Tensor) -> None:
    """Ours (results.json) = eval()'s float32 means: it accumulates in a float32 tensor,
    so its d1..d3 (float64 means of booleans in compute_errors) are rounded to float32
    there; the other metrics are float32 on both sides already."""
    assert {n: np.float32(ours[n]) for n in METRIC_NAMES} == dict(zip(METRIC_NAMES, theirs[:9].numpy()))
    assert all(ours[n] == float(theirs[i]) for i, n in enumerate(METRIC_NAMES) if n not in ("d1", "d2", "d3"))


def _reference_loader(ref_dataloader, args):
    samples = ref_dataloader.DataLoadPreprocess(args, "online_eval",
                                                transform=ref_dataloader.preprocessing_transforms("online_eval"))
    return SimpleNamespace(data=torch.utils.data.DataLoader(samples, batch_size=1, shuffle=False, num_workers=0))


@needs_reference
def test_kitti_eval_matches_pixelformer_eval(ref_utils, ref_dataloader, tmp_path):
    """`textdepth eval --dataset kitti` (Garg crop, flip TTA, a checkpoint) = eval.py's
    eval() with post_process on the same network outputs; then the fused predictions as
    --pred-dir (352x1216, PixelFormer's own output size; and once as a full 1241x376
    frame, which is KB-cropped as its image was) under the Garg and the Eigen crop."""
    from textdepth_ros.model import build_model
    from textdepth_ros.model.checkpoint import save_checkpoint

    data = write_kitti(tmp_path)
    torch.manual_seed(0)
    net = build_model("tiny", pretrained=False).eval()
    save_checkpoint(tmp_path / "m.safetensors", net)
    common = ["--dataset", "kitti", "--data-root", data["raw"], "--gt-root", data["gt"], "--test-list", data["list"],
              "--text", TEXT, "--num-workers", "0"]
    assert main(["eval", "--checkpoint", str(tmp_path / "m.safetensors"), *common, "--out", str(tmp_path / "ours")]) == 0
    ours = json.loads((tmp_path / "ours/results.json").read_text())

    dataset = ListDataset(data["raw"], kitti.read_kitti_list(data["list"]), SceneText(text=TEXT),
                          depth_loader=kitti.load_kitti_depth, depth_root=data["gt"], kb_crop=True)
    items = [dataset[i] for i in range(len(dataset)) if dataset.samples[i].depth is not None]
    assert items[0]["image"].shape == (3, 352, 1216) and items[0]["depth"].shape == (1, 352, 1216)
    assert kitti.kb_crop_box(376, 1241) == (24, 12)  # int((1241 - 1216) / 2)
    evaluate, args = reference_eval(ref_utils, data, "garg")
    model = OurPredictions(net, items, ref_dataloader.ToTensor("online_eval").normalize)
    theirs = evaluate(model, _reference_loader(ref_dataloader, args), post_process=True)
    assert model.calls == 2 and ours["count"] == 1  # the frame without ground truth is skipped by both
    assert_same_numbers(ours, theirs)

    # The same predictions from files, as a PixelFormer user has them: 352x1216, fused.
    fused = ref_utils.post_process_depth(*model.outputs).numpy().squeeze()
    pred_path = (tmp_path / "pred" / dataset.samples[0].rgb).with_suffix(".npy")
    pred_path.parent.mkdir(parents=True)
    np.save(pred_path, fused)
    for crop, full_frame in (("garg", False), ("eigen", False), ("eigen", True)):
        if full_frame:
            frame = np.zeros((376, 1241), np.float32)
            frame[24:, 12:12 + 1216] = fused
            np.save(pred_path, frame)
        assert main(["eval", "--pred-dir", str(tmp_path / "pred"), *common, "--crop", crop,
                     "--out", str(tmp_path / crop)]) == 0
        ours = json.loads((tmp_path / crop / "results.json").read_text())
        evaluate, args = reference_eval(ref_utils, data, crop)
        theirs = evaluate(lambda image: torch.from_numpy(fused)[None, None], _reference_loader(ref_dataloader, args))
        assert_same_numbers(ours, theirs)
    # the crops differ here, so each was really applied
    assert json.loads((tmp_path / "garg/results.json").read_text()) != json.loads((tmp_path / "eigen/results.json").read_text())


# (rotation random(), crop x, crop y, flip random(), jitter random(), gamma, brightness)
KITTI_DRAWS = [
    (0.93, 61, 0, 0.80, 0.70, 1.07, 0.93),  # rotation, crop in the middle, flip, jitter
    (0.50, 0, 0, 0.20, 0.30, None, None),  # no rotation, crop at the left edge, nothing else
    (0.12, 96, 0, 0.60, 0.95, 0.91, 1.08),  # crop at the right edge, flip, jitter
]


@needs_reference
@pytest.mark.parametrize("draws", KITTI_DRAWS)
def test_kitti_training_sample_equals_pixelformer_dataloader(ref_dataloader, repo_root, tmp_path, draws):
    """KB crop, rotation by up to 1 degree, depth / 256, the random 352x1120 window, flip
    and the KITTI brightness range, with the random numbers scripted into its dataloader."""
    data = write_kitti(tmp_path, frames=((375, 1242),), with_gt=(True,))
    rotation, x, y, flip, jitter, gamma, brightness = draws
    args = SimpleNamespace(mode="train", dataset="kitti", data_path=data["raw"], gt_path=data["gt"],
                           filenames_file=data["list"], input_height=352, input_width=1120, do_kb_crop=True,
                           do_random_rotate=True, degree=1.0, use_right=False)
    reference = ref_dataloader.DataLoadPreprocess(args, "train", transform=ref_dataloader.preprocessing_transforms("train"))
    ref_dataloader.random = _ScriptedWithInts([rotation, x, y, flip, jitter] + ([gamma, brightness] if jitter > 0.5 else []))
    np.random.seed(5)
    colours = tuple(np.random.RandomState(5).uniform(0.9, 1.1, size=3))
    theirs = reference[0]
    assert ref_dataloader.random.values == []

    cfg = load_train_config(repo_root / "config/train_kitti.yaml", [f"data.root={data['raw']}", "data.train_list=x"])
    augment_cfg = AugmentConfig(**cfg["augment"])
    sample = kitti.read_kitti_list(data["list"])[0]
    image, depth = load_rgb(data["raw"], sample), kitti.load_kitti_depth(data["gt"], sample)
    box = kitti.kb_crop_box(*image.shape[:2])
    ours = Draws(angle=(rotation - 0.5) * 2 * 1.0, cut=(0.5, 0.5, 0.5, 0.5), flip=flip > 0.5,
                 color=(gamma, brightness, colours) if jitter > 0.5 else None, crop=(y, x))
    image, depth = apply(kitti.kb_crop(image, box), kitti.kb_crop(depth, box), ours, augment_cfg)
    normalized = ref_dataloader.ToTensor("train").normalize(torch.from_numpy(image.transpose(2, 0, 1).copy()))
    torch.testing.assert_close(normalized, theirs["image"], rtol=0, atol=0)
    torch.testing.assert_close(torch.from_numpy(depth)[None], theirs["depth"], rtol=0, atol=0)
    assert depth.shape == (352, 1120)


class _ScriptedWithInts(_Scripted):
    """_Scripted plus randint(a, b), which its random_crop calls (x first, then y)."""

    def randint(self, low, high):
        value = self.values.pop(0)
        assert low <= value <= high
        return value


def test_kitti_training_items_come_from_the_kb_crop(repo_root, tmp_path):
    """What `train` reads with config/train_kitti.yaml: BTS's list, depth under the GT
    root, a 352x1120 window of the KB crop (here without rotation / flip / jitter, so the
    window can be found), the fixed text."""
    data = write_kitti(tmp_path, frames=((375, 1242), (370, 1224)), with_gt=(True, True))
    cfg = load_train_config(repo_root / "config/train_kitti.yaml", [
        f"data.root={data['raw']}", f"data.gt_root={data['gt']}", f"data.train_list={data['list']}",
        "augment.rotate_degrees=0", "augment.flip=false", "augment.color=false"])
    from textdepth_ros.train import _datasets

    train_set, _ = _datasets(cfg)
    for index, (height, width) in enumerate(((375, 1242), (370, 1224))):
        item = train_set[index]
        assert item["image"].shape == (3, 352, 1120) and item["text"] == TEXT
        sample = train_set.samples[index]
        full = kitti.load_kitti_depth(data["gt"], sample)
        cropped = kitti.kb_crop(full, kitti.kb_crop_box(height, width))
        depth = item["depth"][0].numpy()
        offsets = [x for x in range(1216 - 1120 + 1) if np.array_equal(cropped[:, x:x + 1120], depth)]
        assert len(offsets) == 1 and depth.max() > 80  # metres (/256), nothing capped in training data


@needs_reference
def test_kitti_recipe_is_pixelformers_arguments_files(repo_root):
    def arguments(name):
        words = (REFERENCE / "configs" / name).read_text().split()
        return {w[2:]: (words[i + 1] if i + 1 < len(words) and not words[i + 1].startswith("--") else True)
                for i, w in enumerate(words) if w.startswith("--")}

    train_args, eval_args = arguments("arguments_train_kittieigen.txt"), arguments("arguments_eval_kittieigen.txt")
    cfg = load_train_config(repo_root / "config/train_kitti.yaml", ["data.root=x", "data.train_list=x"])
    t, a, e, d = cfg["train"], cfg["augment"], cfg["eval"], cfg["data"]
    assert train_args["dataset"] == "kitti" == d["dataset"] and train_args["do_kb_crop"] is True
    assert (t["batch_size"], t["epochs"], t["lr"]) == (int(train_args["batch_size"]), int(train_args["num_epochs"]),
                                                        float(train_args["learning_rate"]))
    assert list(a["crop_size"]) == [int(train_args["input_height"]), int(train_args["input_width"])]
    assert a["rotate_degrees"] == float(train_args["degree"]) and train_args["do_random_rotate"] is True
    assert cfg["model_max_depth"] == float(train_args["max_depth"]) == float(eval_args["max_depth"])
    assert e["every_steps"] == int(train_args["eval_freq"]) and e["crop"] == "garg"
    assert train_args["garg_crop"] is True and eval_args["garg_crop"] is True
    for args in (train_args, eval_args):
        assert (e["min_depth"], e["max_depth"]) == (float(args["min_depth_eval"]), float(args["max_depth_eval"]))
    assert (t["optimizer"], t["weight_decay"]) == ("adam", 0.0)  # its weight decay and adam_eps are never used
    # What its code does for dataset != nyu (no argument for these)
    loader = (REFERENCE / "pixelformer/dataloaders/dataloader.py").read_text()
    assert "brightness = random.uniform(0.9, 1.1)" in loader and tuple(a["brightness"]) == (0.9, 1.1)
    assert "if self.args.dataset == 'nyu':\n                depth_gt = depth_gt / 1000.0" in loader
    assert a["cutdepth"] == "none" and a["border_mask"] is False  # both under `if self.args.dataset == 'nyu'`
    train_py = (REFERENCE / "pixelformer/train.py").read_text()
    assert "mask = depth_gt > 1.0" in train_py and t["loss_min_depth"] == 1.0
    from textdepth_ros.training.config import model_config

    assert d["text"] == kitti.KITTI_TEXT == TEXT  # eval --dataset kitti's default text
    assert model_config(cfg)["bins"]["dataset_max"] == 80.0 and model_config(cfg)["bins"]["fixed_min"] == 0.1


def test_kitti_bad_input_is_one_line(repo_root, tmp_path, capsys):
    from textdepth_ros.errors import UserError

    data = write_kitti(tmp_path, frames=((300, 1000),), with_gt=(True,))  # smaller than the KB crop
    (tmp_path / "pred").mkdir()
    assert main(["eval", "--pred-dir", str(tmp_path / "pred"), "--dataset", "kitti", "--data-root", data["raw"],
                 "--gt-root", data["gt"], "--test-list", data["list"], "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "is 1000x300: the KITTI (KB) crop needs at least 1216x352" in err
    assert main(["eval", "--pred-dir", str(tmp_path / "pred"), "--data-root", data["raw"], "--gt-root", data["gt"],
                 "--test-list", data["list"], "--out", str(tmp_path / "out")]) == 2
    assert "--gt-root is for --dataset kitti" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    with pytest.raises(UserError, match="augment.crop_size must be"):
        load_train_config(repo_root / "config/train_kitti.yaml", ["data.root=x", "data.train_list=x",
                                                                   "augment.crop_size=[352]"])
    with pytest.raises(UserError, match="data.dataset must be one of nyu, kitti"):
        load_train_config(repo_root / "config/train_kitti.yaml", ["data.root=x", "data.train_list=x",
                                                                   "data.dataset=kitty"])
