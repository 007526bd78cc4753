"""Training: loss and schedule by hand, exact resume, and a short run that learns."""
import math

import pytest
import torch

from textdepth_ros.camera_scale import Camera
from textdepth_ros.data.generate import generate_dataset
from textdepth_ros.data.dataset import ListDataset, collate
from textdepth_ros.data.nyu import read_list
from textdepth_ros.data.scene_text import SceneText, scene_name
from textdepth_ros.model import build_model
from textdepth_ros.model.checkpoint import read_checkpoint
from textdepth_ros.serving.scene_recognition import scene_vocabulary
from textdepth_ros.train import train
from textdepth_ros.training.config import load_train_config
from textdepth_ros.training.evaluate import evaluate_model
from textdepth_ros.training.loss import silog_loss
from textdepth_ros.training.optim import build_optimizer, build_scheduler
from textdepth_ros.errors import UserError


def tiny_config(repo_root, data, out, *overrides):
    return load_train_config(repo_root / "config/train_tiny.yaml", [
        f"data.root={data['root']}", f"data.train_list={data['train_list']}", f"data.test_list={data['test_list']}",
        f"log.out_dir={out}", *overrides])


def test_silog_loss_by_hand():
    gt = torch.tensor([[[[1.0, 2.0, 0.05, 0.0]]]])  # the last two are below 0.1 m: ignored
    pred = torch.tensor([[[[2.0, 2.0, 7.0, 7.0]]]])
    d = torch.tensor([math.log(2.0), 0.0])
    expected = torch.sqrt((d ** 2).mean() - 0.85 * d.mean() ** 2) * 10.0
    torch.testing.assert_close(silog_loss(pred, gt), expected)
    assert silog_loss(pred, torch.zeros_like(gt)) is None


def test_poly_schedule_and_optimizers():
    param = torch.nn.Parameter(torch.zeros(1))
    model = torch.nn.Module()
    model.p = param
    opt = build_optimizer(model, "adam", 4e-5)
    sched = build_scheduler(opt, total_steps=10, end_ratio=0.1, power=0.9)
    lrs = []
    for _ in range(10):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(4e-5)
    assert lrs[5] == pytest.approx((4e-5 - 4e-6) * 0.5 ** 0.9 + 4e-6)  # PixelFormer's formula at global_step 5
    assert sched.get_last_lr()[0] == pytest.approx(4e-6)  # 0.1 x at the end
    # PixelFormer: torch.optim.Adam(params, lr) -- torch's defaults, no weight decay
    assert type(opt) is torch.optim.Adam
    assert {k: opt.param_groups[0][k] for k in ("betas", "eps", "weight_decay")} == \
        {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0}
    ours = build_optimizer(model, "adamw", 4e-5, 1e-2)
    assert type(ours) is torch.optim.AdamW and ours.param_groups[0]["weight_decay"] == 1e-2


def test_sampler_order_is_distributed_samplers():
    """8 processes x 1 image, seed 0: the order PixelFormer's DistributedSampler gave,
    padded the same way; starting part-way skips exactly the items done."""
    from torch.utils.data import DistributedSampler

    from textdepth_ros.training.distributed import Context, ResumableSampler

    for epoch in (0, 3):
        for rank in (0, 5):
            ours = ResumableSampler(37, Context(torch.device("cpu"), rank, 8), seed=0, images_per_step=8)
            torchs = DistributedSampler(range(37), num_replicas=8, rank=rank, shuffle=True, seed=0, drop_last=False)
            ours.set_epoch(epoch)
            torchs.set_epoch(epoch)
            assert list(ours) == list(torchs) and len(ours) == 5
            ours.start = 2
            assert list(ours) == list(torchs)[2:] and len(ours) == 3
    one = ResumableSampler(37, Context(torch.device("cpu")), seed=0, images_per_step=8)
    assert len(one) == 40 and sorted(set(one)) == list(range(37))  # padded to full steps of 8


def test_config_rejects_typos(repo_root, tmp_path):
    with pytest.raises(UserError, match="unknown training option 'train.lrr'"):
        load_train_config(repo_root / "config/train_tiny.yaml", ["train.lrr=1"])


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    return generate_dataset(tmp_path_factory.mktemp("syn"), n_train=8, n_test=2, height=64, width=96, seed=1)


def dense_list(data, path):
    """The generated train list rewritten in the layout of PixelFormer's dense list
    (three paths, no leading '/', no focal)."""
    lines = []
    for line in open(data["train_list"]).read().split("\n"):
        if line:
            rgb, depth, _ = line.split()
            lines.append(f"{rgb[1:]} {depth[1:]} {depth[1:].replace('sync_depth_', 'dense/sync_depth_dense_')}")
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_resume_is_exact_across_evaluations_and_epochs(repo_root, small_data, tmp_path):
    """Stopped at an epoch end (after that epoch's evaluation), resumed, stopped
    mid-epoch, resumed to the end: the weights, the best checkpoint and every loss equal
    an uninterrupted run's, bit for bit. With a worker process and PixelFormer's dense
    list layout. (It used to differ: evaluation drew from the global RNG, and a text's
    embedding depended on the batch it was first encoded in.)"""
    # batch 2, accumulate 2, 8 images -> 2 steps/epoch, 2 epochs, evaluated each epoch
    common = ["train.batch_size=2", "train.accumulate=2", "train.epochs=2", "log.save_every=0", "eval.limit=1",
              "data.num_workers=1", f"data.train_list={dense_list(small_data, tmp_path / 'dense.txt')}"]
    whole = train(tiny_config(repo_root, small_data, tmp_path / "a", *common))
    parts = [train(tiny_config(repo_root, small_data, tmp_path / "b", *common, "train.max_steps=2")),
             train(tiny_config(repo_root, small_data, tmp_path / "b", *common, "train.max_steps=3"), resume=True),
             train(tiny_config(repo_root, small_data, tmp_path / "b", *common), resume=True)]
    assert whole["step"] == parts[-1]["step"] == 4
    assert whole["losses"] == [loss for part in parts for loss in part["losses"]]
    for name in ("last.safetensors", "best_abs_rel.safetensors"):
        a, _, extra_a = read_checkpoint(tmp_path / "a" / name)
        b, _, extra_b = read_checkpoint(tmp_path / "b" / name)
        assert extra_a["step"] == extra_b["step"] and extra_a.get("metrics") == extra_b.get("metrics")
        differ = [key for key in a if not torch.equal(a[key], b[key])]
        assert not differ, f"{name}: {len(differ)} of {len(a)} tensors differ, e.g. {differ[:3]}"
    assert whole["best"] == parts[-1]["best"]


def test_short_training_lowers_loss_and_abs_rel(repo_root, tmp_path):
    data = generate_dataset(tmp_path / "syn", n_train=16, n_test=4, height=96, width=128, seed=2)
    # 6 epochs of 4 steps: after 3, AbsRel was still within the noise of the untrained model's
    cfg = tiny_config(repo_root, data, tmp_path / "run", "train.epochs=6", "train.batch_size=4")
    torch.manual_seed(cfg["train"]["seed"])  # the same initial weights train() starts from
    untrained = build_model("tiny", pretrained=False)
    test_set = ListDataset(data["root"], read_list(data["test_list"]), SceneText())
    loader = torch.utils.data.DataLoader(test_set, batch_size=1, collate_fn=collate)
    before = evaluate_model(untrained, loader, torch.device("cpu"), progress=False)
    summary = train(cfg)
    losses = summary["losses"]
    assert len(losses) == 24
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
    after = summary["eval"]
    assert after["count"] == before["count"] == 4
    assert after["abs_rel"] < before["abs_rel"]
    print(f"loss {sum(losses[:3]) / 3:.3f} -> {sum(losses[-3:]) / 3:.3f}; abs_rel {before['abs_rel']:.3f} -> "
          f"{after['abs_rel']:.3f}; {summary['images_per_s']:.2f} images/s")
    assert (tmp_path / "run/best_abs_rel.safetensors").is_file() and (tmp_path / "run/last_state.pt").is_file()
    # the training camera: the list's focal column (NYU's scaled to 128 px wide) at the images' size
    camera = read_checkpoint(tmp_path / "run/best_abs_rel.safetensors")[2]["camera"]
    assert camera == Camera(103.7716, 103.7716, 128, 96)
    assert list((tmp_path / "run/tb").iterdir()) and "kitchen" in (tmp_path / "run/texts.txt").read_text()
    # The checkpoint records the scene types and template its texts came from (the node's text_source auto).
    trained_scenes = sorted({scene_name(s.scene) for s in read_list(data["train_list"])})
    assert scene_vocabulary(tmp_path / "run/best_abs_rel.safetensors")[:2] == ("a photo of a {scene}", trained_scenes)


def _only_error_line(err: str, command: str) -> str:
    """stderr of a failed command: no traceback, and the one error line last (a progress
    bar cleared before it may precede it)."""
    assert "Traceback" not in err and err.count("error:") == 1, err
    last = err.replace("\r", "\n").strip().splitlines()[-1]
    assert last.startswith(f"textdepth {command}: error: "), err
    return last


@pytest.mark.parametrize("case", ["missing list", "empty list", "wrong root", "unreadable image"])
def test_train_bad_input_is_one_line(repo_root, small_data, tmp_path, capsys, case):
    from textdepth_ros.cli import main

    root, train_list = small_data["root"], small_data["train_list"]
    if case == "missing list":
        train_list = str(tmp_path / "nope.txt")
    elif case == "empty list":
        train_list = str(tmp_path / "empty.txt")
        (tmp_path / "empty.txt").write_text("\n")
    elif case == "wrong root":
        root = str(tmp_path)
    else:  # a file that exists but is no image: found only when a worker process reads it
        import shutil

        root = str(shutil.copytree(small_data["root"], tmp_path / "broken"))
        first = read_list(train_list)[0].rgb
        (tmp_path / "broken" / first).write_bytes(b"not a jpeg")
    code = main(["train", "--config", str(repo_root / "config/train_tiny.yaml"), "--out", str(tmp_path / "run"),
                 "--set", f"data.root={root}", "--set", f"data.train_list={train_list}", "--set", "data.test_list=null",
                 "--set", "data.num_workers=1", "--set", "train.batch_size=2"])
    line = _only_error_line(capsys.readouterr().err, "train")
    assert code == 2
    expected = {"missing list": "list file not found", "empty list": "has no entries",
                "wrong root": "file(s) of the train list are missing under", "unreadable image": "cannot read image"}
    assert expected[case] in line
