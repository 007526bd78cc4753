"""Training configuration: built-in defaults <- a YAML file <- `--set key=value`
overrides (dotted keys, YAML values). Unknown keys are errors, so a typo never
silently trains with a default."""
import copy

import yaml

from textdepth_ros.errors import UserError
from textdepth_ros.yaml_io import read_yaml_mapping

# PixelFormer's NYU recipe (DESIGN.md "Train recipe"); see config/train_nyu.yaml.
DEFAULTS = {
    "model": "paper",  # model config name or .yaml path
    "variant": None,  # baseline / trca / tbcp / full; None = as the model config says
    "data": {
        "root": None, "train_list": None, "test_list": None, "test_root": None,
        "text_template": "a photo of a {scene}", "captions_dir": None, "num_workers": 4,
    },
    "augment": {
        "rotate_degrees": 2.5, "flip": True, "color": True, "brightness": [0.75, 1.25],
        "border_mask": True, "cutdepth": True, "cutdepth_p": 0.75, "max_depth": 10.0,
    },
    "train": {
        "epochs": 20, "batch_size": 8, "accumulate": 1, "lr": 4.0e-5, "end_lr_ratio": 0.1,
        "poly_power": 0.9, "weight_decay": 1.0e-2, "variance_focus": 0.85, "loss_min_depth": 0.1,
        "amp": "none", "seed": 0, "max_steps": None, "device": "auto", "pretrained": True,
    },
    "eval": {
        "every_steps": 0, "flip_tta": True, "crop": "eigen", "min_depth": 1.0e-3, "max_depth": 10.0,
        "batch_size": 1, "best_metric": "abs_rel", "limit": None,
    },
    "log": {"out_dir": "runs/nyu", "log_every": 20, "image_every": 500, "save_every": 1000},
}


def _merge(base: dict, update: dict, where: str = "") -> dict:
    for key, value in update.items():
        if key not in base:
            raise UserError(f"unknown training option '{where}{key}' (known: {', '.join(base)})")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise UserError(f"training option '{where}{key}' must be a mapping")
            _merge(base[key], value, f"{where}{key}.")
        else:
            base[key] = value
    return base


def parse_override(text: str) -> dict:
    """'train.lr=1e-4' -> {'train': {'lr': 0.0001}}."""
    if "=" not in text:
        raise UserError(f"--set expects KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    for part in reversed(key.strip().split(".")):
        value = {part: value}
    return value


def load_train_config(path=None, overrides=()) -> dict:
    cfg = copy.deepcopy(DEFAULTS)
    if path:
        _merge(cfg, read_yaml_mapping(path, "training config"))
    for text in overrides:
        _merge(cfg, parse_override(text))
    validate(cfg)
    return cfg


def validate(cfg: dict) -> None:
    t, d = cfg["train"], cfg["data"]
    for key in ("root", "train_list"):
        if not d[key]:
            raise UserError(f"data.{key} is not set (in the YAML or with --set data.{key}=...)")
    if t["amp"] not in ("none", "bf16", "fp16"):
        raise UserError(f"train.amp must be none, bf16 or fp16, not {t['amp']!r}")
    if int(t["epochs"]) < 1 or int(t["batch_size"]) < 1 or int(t["accumulate"]) < 1:
        raise UserError("train.epochs, train.batch_size and train.accumulate must be >= 1")
    if cfg["eval"]["crop"] not in ("eigen", None, "none"):
        raise UserError("eval.crop must be eigen or none")
