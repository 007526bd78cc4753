"""`train.freeze`: the named modules keep their weights and buffers bit for bit through a
training run (eval mode: BatchNorm statistics and drop-path too) while the rest trains;
the log says how many parameters train; bad names are one line before anything is built.
The run is a warm start (`--init-from`), the small-budget route issue 22 is about."""
import re

import pytest
import torch
import yaml

from model_helpers import tiny_model
from textdepth_ros.cli import main as textdepth
from textdepth_ros.data.generate import generate_dataset
from textdepth_ros.errors import UserError
from textdepth_ros.model import build_model
from textdepth_ros.model.checkpoint import read_checkpoint, save_checkpoint
from textdepth_ros.model.config import load_model_config
from textdepth_ros.training.freeze import freeze

FROZEN = ("backbone", "pqi")  # pqi: its bottleneck BatchNorm would update its statistics in train mode


def train_args(repo_root, data, out, *overrides):
    return ["train", "--config", str(repo_root / "config/train_tiny.yaml"), "--out", str(out),
            "--set", f"data.root={data['root']}", "--set", f"data.train_list={data['train_list']}",
            "--set", "data.test_list=null", "--set", "train.batch_size=2", "--set", "train.max_steps=1",
            *[arg for o in overrides for arg in ("--set", o)]]


@pytest.fixture(scope="module")
def warm_frozen_run(repo_root, tmp_path_factory):
    """What a small budget does: the full model started from a baseline checkpoint
    (`--init-from`), backbone and PQI frozen, one step. The model config is tiny with a text
    tower as wide as the queries (64 -> 128), so TBCP can copy BCP exactly."""
    tmp = tmp_path_factory.mktemp("freeze")
    source = save_checkpoint(tmp / "baseline.safetensors", tiny_model("baseline", seed=5))
    wide = load_model_config("tiny")
    wide.update(name="tiny_wide_text", text_encoder=dict(wide["text_encoder"], embed_dim=128))
    (tmp / "tiny_wide_text.yaml").write_text(yaml.safe_dump(wide))
    data = generate_dataset(tmp / "syn", n_train=2, n_test=0, height=64, width=96, seed=1)
    out = tmp / "run"

    def args(*more):
        return train_args(repo_root, data, out, "variant=full", f"model={tmp / 'tiny_wide_text.yaml'}", *more)

    return source, out, args


def test_warm_start_with_a_frozen_visual_path(warm_frozen_run, capsys):
    """The log says what was loaded, how TRCA / TBCP start, the measured step-0 difference
    (<= 1e-5) and the trainable count; after training, the frozen modules' weights and
    buffers are bit-identical to the checkpoint's, the trained ones moved."""
    source, out, args = warm_frozen_run
    assert textdepth(args(f"train.freeze=[{', '.join(FROZEN)}]") + ["--init-from", str(source)]) == 0
    log = capsys.readouterr().out
    assert f"initialised from {source}" in log and "TRCA adds zero" in log and "TBCP computes BCP's bins" in log
    measured = re.search(r"step-0 depth vs the checkpoint's model: max relative difference (\S+) ", log)
    assert measured and float(measured.group(1)) <= 1e-5, log

    before, _, _ = read_checkpoint(source)
    after, config, _ = read_checkpoint(out / "last.safetensors")
    for key in after:
        if key.startswith(FROZEN):  # weights, BatchNorm statistics and its counter
            assert torch.equal(after[key], before[key]), key
        elif key.startswith(("sam.", "head.")):
            assert not torch.equal(after[key], before[key]), f"{key} did not train"
    assert after["trca.mlp.2.weight"].any()  # TRCA's output projection left zero: it learns

    model = build_model(config, pretrained=False)
    count = sum(p.numel() for n, p in model.named_parameters() if p.requires_grad and not n.startswith(FROZEN))
    logged = re.search(r"trainable [\d.]+ M of [\d.]+ M parameters \(([\d,]+)\); frozen: (.*)", log)
    assert logged, log
    assert int(logged.group(1).replace(",", "")) == count
    assert [part.split()[0] for part in logged.group(2).split(", ")] == ["backbone", "text_encoder", "pqi"]


def test_resuming_with_another_freeze_list_is_one_line(warm_frozen_run, capsys):
    _, out, args = warm_frozen_run
    if not (out / "last_state.pt").is_file():
        pytest.skip("needs the run above")
    code = textdepth(args("train.max_steps=2") + ["--resume"])  # the default: nothing frozen
    err = capsys.readouterr().err
    assert code == 2 and "train.freeze" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_frozen_modules_stay_in_eval_mode_while_the_rest_trains():
    model = tiny_model("full")
    assert freeze(model, ["decoder", "text_encoder"]) == ["pqi", "sam", "text_encoder"]
    model.train()
    frozen = (*model.pqi.modules(), *model.sam.modules(), *model.text_encoder.tower.modules())
    assert not any(m.training for m in frozen)
    assert all(m.training for m in model.backbone.modules()) and model.trca.training and model.head.training
    model.eval()
    model.train()
    assert not model.pqi.training and model.backbone.training
    assert not any(p.requires_grad for p in model.sam.parameters()) and model.head.logits.weight.requires_grad


def test_bad_freeze_lists(repo_root, tmp_path, capsys):
    data = {"root": tmp_path, "train_list": tmp_path / "none.txt"}
    assert textdepth(train_args(repo_root, data, tmp_path / "run", "train.freeze=[backbone, decoder, heads]")) == 2
    err = capsys.readouterr().err
    assert "unknown module 'heads'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()
    with pytest.raises(UserError, match="the 'baseline' variant has no trca"):
        freeze(tiny_model("baseline"), ["trca"])
    with pytest.raises(UserError, match="leaves nothing to train"):
        freeze(tiny_model("baseline"), ["backbone", "decoder", "tbcp", "head"])
