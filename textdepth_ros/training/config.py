"""Training configuration: built-in defaults <- a YAML file <- `--set key=value`
overrides (dotted keys, YAML values). Unknown keys are errors, so a typo never
silently trains with a default."""
import copy

import yaml

from textdepth_ros.data.augment import AugmentConfig
from textdepth_ros.errors import UserError
from textdepth_ros.metrics import METRIC_NAMES
from textdepth_ros.training.freeze import check_freeze
from textdepth_ros.training.optim import OPTIMIZERS
from textdepth_ros.yaml_io import read_yaml_mapping

# What PixelFormer's code ran on NYU (configs/arguments_train_nyu.txt + train.py +
# dataloader.py); config/train_nyu.yaml spells it out and says where ours differs.
DEFAULTS = {
    "model": "paper",  # model config name or .yaml path
    "model_max_depth": None,  # the bins' dataset_max (PixelFormer's --max_depth: 80 for KITTI); None: the config's
    "variant": None,  # baseline / trca / tbcp / full; None = as the model config says
    "data": {
        "dataset": "nyu",  # nyu (NYU's lists, mm PNGs) | kitti (BTS's Eigen lists, PNG/256, KB crop)
        "root": None, "train_list": None, "test_list": None, "test_root": None,
        "gt_root": None, "test_gt_root": None,  # where depth paths start (KITTI: kitti_gt); default: the roots
        "text_template": "a photo of a {scene}", "captions_dir": None, "text": None, "num_workers": 4,
    },
    "augment": {
        "rotate_degrees": 2.5, "flip": True, "color": True, "brightness": [0.75, 1.25],
        "border_mask": True, "cutdepth": "pixelformer", "cutdepth_p": 0.75, "max_depth": 10.0, "crop_size": None,
    },
    "train": {
        "epochs": 20, "batch_size": 8, "accumulate": 1, "lr": 4.0e-5, "end_lr_ratio": 0.1,
        "poly_power": 0.9, "optimizer": "adam", "weight_decay": 0.0, "variance_focus": 0.85, "loss_min_depth": 0.1,
        "amp": "none", "sync_bn": False, "seed": 0, "max_steps": None, "device": "auto", "pretrained": True,
        "freeze": [],  # module names kept fixed (training/freeze.py), e.g. [backbone]
    },
    "eval": {
        "every_steps": 1000, "every_epoch": False, "flip_tta": True, "crop": "eigen", "min_depth": 1.0e-3,
        "max_depth": 10.0, "batch_size": 1, "amp": "none", "best_metrics": list(METRIC_NAMES), "limit": None,
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
    for where, amp in (("train.amp", t["amp"]), ("eval.amp", cfg["eval"]["amp"])):
        if amp not in ("none", "bf16", "fp16"):
            raise UserError(f"{where} must be none, bf16 or fp16, not {amp!r}")
    if not isinstance(t["sync_bn"], bool):
        raise UserError(f"train.sync_bn must be true or false, not {t['sync_bn']!r}")
    if t["optimizer"] not in OPTIMIZERS:
        raise UserError(f"train.optimizer must be one of {', '.join(OPTIMIZERS)}, not {t['optimizer']!r}")
    best = cfg["eval"]["best_metrics"]
    if not isinstance(best, list) or not best or any(m not in METRIC_NAMES for m in best):
        raise UserError(f"eval.best_metrics must be a non-empty list of {', '.join(METRIC_NAMES)}, not {best!r}")
    AugmentConfig(**cfg["augment"])  # checks augment.cutdepth
    t["freeze"] = check_freeze(t["freeze"])
    if int(t["epochs"]) < 1 or int(t["batch_size"]) < 1 or int(t["accumulate"]) < 1:
        raise UserError("train.epochs, train.batch_size and train.accumulate must be >= 1")
    if cfg["eval"]["crop"] not in ("eigen", "garg", None, "none"):
        raise UserError("eval.crop must be eigen (NYU's, or KITTI's with data.dataset kitti), garg or none")
    if d["dataset"] not in DATASETS:
        raise UserError(f"data.dataset must be one of {', '.join(DATASETS)}, not {d['dataset']!r}")
    depth = cfg["model_max_depth"]
    if depth is not None and not (isinstance(depth, (int, float)) and 0 < depth < float("inf")):
        raise UserError(f"model_max_depth must be a positive number of metres or null, not {depth!r}")


DATASETS = ("nyu", "kitti")


def model_config(cfg: dict) -> dict:
    """The model config to build: cfg['model'] with model_max_depth as its bins' range."""
    from textdepth_ros.model.config import load_model_config

    model = load_model_config(cfg["model"])
    if cfg["model_max_depth"] is not None:
        model["bins"]["dataset_max"] = float(cfg["model_max_depth"])
    return model
