"""Training: loss and schedule by hand, exact resume, and a short run that learns."""
import math

import pytest
import torch

from textdepth_ros.data.generate import generate_dataset
from textdepth_ros.data.dataset import ListDataset, collate
from textdepth_ros.data.nyu import read_list
from textdepth_ros.data.scene_text import SceneText
from textdepth_ros.model import build_model
from textdepth_ros.model.checkpoint import read_checkpoint
from textdepth_ros.train import train
from textdepth_ros.training.config import load_train_config
from textdepth_ros.training.evaluate import evaluate_model
from textdepth_ros.training.loss import silog_loss
from textdepth_ros.training.optim import build_scheduler
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


def test_poly_schedule_and_weight_decay():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.AdamW([param], lr=4e-5, weight_decay=1e-2)
    sched = build_scheduler(opt, total_steps=10, end_ratio=0.1, power=0.9)
    lrs = []
    for _ in range(10):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(4e-5)
    assert lrs[5] == pytest.approx((4e-5 - 4e-6) * 0.5 ** 0.9 + 4e-6)
    assert sched.get_last_lr()[0] == pytest.approx(4e-6)  # 0.1 x at the end
    assert opt.param_groups[0]["weight_decay"] == 1e-2


def test_config_rejects_typos(repo_root, tmp_path):
    with pytest.raises(UserError, match="unknown training option 'train.lrr'"):
        load_train_config(repo_root / "config/train_tiny.yaml", ["train.lrr=1"])


@pytest.fixture(scope="module")
def small_data(tmp_path_factory):
    return generate_dataset(tmp_path_factory.mktemp("syn"), n_train=8, n_test=2, height=64, width=96, seed=1)


def test_resume_gives_the_same_weights(repo_root, small_data, tmp_path):
    # batch 2, accumulate 2, 8 images -> 2 steps/epoch; stop mid-epoch 1 at step 1, then resume to 3
    common = ["train.batch_size=2", "train.accumulate=2", "train.epochs=2", "data.test_list=null",
              "log.save_every=0", "train.amp=bf16"]
    whole = train(tiny_config(repo_root, small_data, tmp_path / "a", *common, "train.max_steps=3"))
    train(tiny_config(repo_root, small_data, tmp_path / "b", *common, "train.max_steps=1"))
    resumed = train(tiny_config(repo_root, small_data, tmp_path / "b", *common, "train.max_steps=3"), resume=True)
    assert whole["step"] == resumed["step"] == 3
    a, _, extra_a = read_checkpoint(tmp_path / "a/last.safetensors")
    b, _, extra_b = read_checkpoint(tmp_path / "b/last.safetensors")
    assert extra_a["step"] == extra_b["step"] == 3 and extra_b["epoch"] == 1
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    assert whole["losses"][-2:] == resumed["losses"][-2:]


def test_short_training_lowers_loss_and_abs_rel(repo_root, tmp_path):
    data = generate_dataset(tmp_path / "syn", n_train=16, n_test=4, height=96, width=128, seed=2)
    cfg = tiny_config(repo_root, data, tmp_path / "run", "train.epochs=3", "train.batch_size=4")
    torch.manual_seed(cfg["train"]["seed"])  # the same initial weights train() starts from
    untrained = build_model("tiny", pretrained=False)
    test_set = ListDataset(data["root"], read_list(data["test_list"]), SceneText())
    loader = torch.utils.data.DataLoader(test_set, batch_size=1, collate_fn=collate)
    before = evaluate_model(untrained, loader, torch.device("cpu"), progress=False)
    summary = train(cfg)
    losses = summary["losses"]
    assert len(losses) == 12
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
    after = summary["eval"]
    assert after["count"] == before["count"] == 4
    assert after["abs_rel"] < before["abs_rel"]
    print(f"loss {sum(losses[:3]) / 3:.3f} -> {sum(losses[-3:]) / 3:.3f}; abs_rel {before['abs_rel']:.3f} -> "
          f"{after['abs_rel']:.3f}; {summary['images_per_s']:.2f} images/s")
    assert (tmp_path / "run/best.safetensors").is_file() and (tmp_path / "run/last_state.pt").is_file()
    assert list((tmp_path / "run/tb").iterdir()) and "kitchen" in (tmp_path / "run/texts.txt").read_text()
