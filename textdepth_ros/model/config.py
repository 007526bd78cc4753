"""Model configuration: YAML files under config/model/, plain dicts in code.

A config fully describes an architecture, so it is stored inside every checkpoint and
a checkpoint alone rebuilds its model. Table 3's ablation variants are switches.
"""
import copy
from pathlib import Path


from textdepth_ros.errors import UserError
from textdepth_ros.model.swin import swin_architecture
from textdepth_ros.paths import config_dir
from textdepth_ros.yaml_io import read_yaml_mapping

# Table 3 of the paper: which text modules each variant has.
VARIANTS = {
    "baseline": {"trca": False, "tbcp": False},  # PixelFormer
    "trca": {"trca": True, "tbcp": False},
    "tbcp": {"trca": False, "tbcp": True},
    "full": {"trca": True, "tbcp": True},  # the paper's model
}

REQUIRED = {
    "backbone": ["timm_name"],
    "decoder": ["pqi_channels", "pool_scales", "sam_dims", "sam_heads", "window_size"],
    "bins": ["n_bins", "mlp_hidden", "dataset_min", "dataset_max", "fixed_min"],
}


def resolve_config_path(name_or_path) -> Path:
    """'tiny', 'paper', or a path to a YAML file."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if path.is_file():
            return path
        candidate = config_dir().parent / path  # "config/model/x.yaml" from anywhere
        if candidate.is_file():
            return candidate
        raise UserError(f"model config not found: {name_or_path}")
    candidate = config_dir() / "model" / f"{name_or_path}.yaml"
    if candidate.is_file():
        return candidate
    known = sorted(p.stem for p in (config_dir() / "model").glob("*.yaml"))
    raise UserError(f"unknown model config '{name_or_path}' (known: {', '.join(known)}, or a .yaml path)")


def load_model_config(name_or_path, variant: str = None) -> dict:
    """Read and validate a model config; `variant` overrides its trca/tbcp switches."""
    if isinstance(name_or_path, dict):
        cfg = copy.deepcopy(name_or_path)
    else:
        cfg = read_yaml_mapping(resolve_config_path(name_or_path), "model config")
    if variant is not None:
        cfg = with_variant(cfg, variant)
    validate(cfg)
    return cfg


def with_variant(cfg: dict, variant: str) -> dict:
    if variant not in VARIANTS:
        raise UserError(f"unknown variant '{variant}' (one of {', '.join(VARIANTS)})")
    cfg = copy.deepcopy(cfg)
    cfg.update(VARIANTS[variant])
    return cfg


def variant_name(cfg: dict) -> str:
    for name, switches in VARIANTS.items():
        if all(bool(cfg.get(k)) == v for k, v in switches.items()):
            return name
    raise AssertionError("unreachable: every trca/tbcp pair names a variant")


def uses_text(cfg: dict) -> bool:
    """The text encoder exists only when a module reads the text."""
    return bool(cfg.get("trca")) or bool(cfg.get("tbcp"))


def validate(cfg: dict) -> None:
    cfg.setdefault("trca", True)
    cfg.setdefault("tbcp", True)
    cfg.setdefault("text_range", True)
    for section, keys in REQUIRED.items():
        if not isinstance(cfg.get(section), dict):
            raise UserError(f"model config lacks section '{section}'")
        missing = [k for k in keys if k not in cfg[section]]
        if missing:
            raise UserError(f"model config section '{section}' lacks {', '.join(missing)}")
    if uses_text(cfg) and not isinstance(cfg.get("text_encoder"), dict):
        raise UserError("model config needs a 'text_encoder' section when trca or tbcp is on")
    dec, bins = cfg["decoder"], cfg["bins"]
    swin_architecture(cfg["backbone"]["timm_name"])  # a known Swin name, or one clear error
    if int(dec["pqi_channels"]) % 2:
        raise UserError("decoder.pqi_channels must be even (PQI's GroupNorm takes two channels per group)")
    if len(dec["sam_dims"]) != 4 or len(dec["sam_heads"]) != 4:
        raise UserError("decoder.sam_dims and decoder.sam_heads need 4 entries (1/4 .. 1/32)")
    for dim, heads in zip(dec["sam_dims"], dec["sam_heads"]):
        if dim % heads or dim % 4:
            raise UserError(f"SAM width {dim} must be divisible by its heads ({heads}) and by 4 (PixelShuffle)")
    if not 0 < bins["dataset_min"] < bins["fixed_min"] < bins["dataset_max"]:
        raise UserError("bins need 0 < dataset_min < fixed_min < dataset_max")
