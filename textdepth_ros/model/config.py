"""Model configuration: YAML files under config/model/, plain dicts in code.

A config fully describes an architecture, so it is stored inside every checkpoint and
a checkpoint alone rebuilds its model. Table 3's ablation variants are switches.
"""
import copy
from pathlib import Path

from textdepth_ros.errors import UserError
from textdepth_ros.model.config_schema import OPENAI_CLIP_VOCAB, apply_schema
from textdepth_ros.paths import config_dir
from textdepth_ros.yaml_io import read_yaml_mapping

# Table 3 of the paper: which text modules each variant has.
VARIANTS = {
    "baseline": {"trca": False, "tbcp": False},  # PixelFormer
    "trca": {"trca": True, "tbcp": False},
    "tbcp": {"trca": False, "tbcp": True},
    "full": {"trca": True, "tbcp": True},  # the paper's model
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
    """Read and validate a model config (a name, a YAML path or a dict given in code);
    `variant` overrides its trca/tbcp switches."""
    if isinstance(name_or_path, dict):
        cfg, where = copy.deepcopy(name_or_path), "model config"
    else:
        path = resolve_config_path(name_or_path)
        cfg, where = read_yaml_mapping(path, "model config"), f"model config {path}"
    if variant is not None:
        cfg = with_variant(cfg, variant)
    validate(cfg, where)
    return cfg


def config_from_checkpoint(cfg, where: str) -> dict:
    """The config stored in a checkpoint, validated like a user's YAML before anything is
    built. Its pretrained sources are dropped: the checkpoint holds the weights, and a
    file someone sent must not start downloads."""
    if not isinstance(cfg, dict):
        raise UserError(f"{where}: the model config is a {type(cfg).__name__}, not a mapping")
    cfg = copy.deepcopy(cfg)
    validate(cfg, where)
    cfg["backbone"]["pretrained"] = None
    if cfg.get("text_encoder"):
        cfg["text_encoder"]["pretrained"] = None
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


def validate(cfg: dict, where: str = "model config") -> None:
    """Types, ranges and known keys (config_schema.py), then the rules between keys. Runs
    before anything is allocated; the first problem is one UserError naming `where`."""
    try:
        apply_schema(cfg)
        _check_text_encoder(cfg)
        _check_decoder_and_bins(cfg)
    except UserError as exc:
        raise UserError(f"{where}: {exc}") from None


def _check_text_encoder(cfg: dict) -> None:
    if not uses_text(cfg):
        return
    te = cfg.get("text_encoder")
    if not te:
        raise UserError("a 'text_encoder' section is needed when trca or tbcp is on")
    tower = dict(te.get("text_cfg") or {})
    if te.get("clip_model"):
        tower = dict(open_clip_text_cfg(te["clip_model"]), **tower)
    else:
        missing = [k for k in ("context_length", "vocab_size", "width", "heads", "layers") if k not in tower]
        if missing or "embed_dim" not in te:
            lacking = [f"text_cfg.{k}" for k in missing] + ([] if "embed_dim" in te else ["embed_dim"])
            raise UserError(f"text_encoder without clip_model needs {', '.join(lacking)}")
    if tower["width"] % tower["heads"]:
        raise UserError(f"text_encoder width {tower['width']} is not divisible by its heads ({tower['heads']})")
    if tower.get("vocab_size", OPENAI_CLIP_VOCAB) < OPENAI_CLIP_VOCAB:
        raise UserError(f"text_encoder vocab_size {tower['vocab_size']} is below the tokenizer's {OPENAI_CLIP_VOCAB}")
    vision = te.get("vision_cfg") or {}
    if vision.get("width", 0) % vision.get("head_width", 64):
        raise UserError(f"text_encoder.vision_cfg width {vision['width']} is not divisible by its head_width "
                        f"({vision.get('head_width', 64)})")
    if vision.get("patch_size", 0) > vision.get("image_size", 224):
        raise UserError(f"text_encoder.vision_cfg patch_size {vision['patch_size']} is larger than its image_size")
    tokens = open_clip_text_cfg(te["tokenizer"]).get("context_length", 77)
    if tower.get("context_length", 77) < tokens:
        raise UserError(f"text_encoder context_length {tower['context_length']} is shorter than the "
                        f"{tokens} tokens the '{te['tokenizer']}' tokenizer gives")


def _check_decoder_and_bins(cfg: dict) -> None:
    dec, bins = cfg["decoder"], cfg["bins"]
    if dec["pqi_channels"] % 2:
        raise UserError("decoder.pqi_channels must be even (PQI's GroupNorm takes two channels per group)")
    for dim, heads in zip(dec["sam_dims"], dec["sam_heads"]):
        if dim % heads or dim % 4:
            raise UserError(f"SAM width {dim} must be divisible by its heads ({heads}) and by 4 (PixelShuffle)")
    if not bins["dataset_min"] < bins["fixed_min"] < bins["dataset_max"]:
        raise UserError("bins need 0 < dataset_min < fixed_min < dataset_max")


def open_clip_text_cfg(name: str) -> dict:
    """The text_cfg of an open_clip model config that config_schema already checked is
    built in (so this never reaches a hub)."""
    import open_clip

    return open_clip.get_model_config(name).get("text_cfg", {})
