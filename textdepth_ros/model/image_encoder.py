"""Image encoder: the image tower of the same CLIP model as the text tower, for
zero-shot scene recognition (the node's `text_source: auto`). Never part of the depth
network: built only when recognition is on (the paper's ViT-L/14 tower alone has
304 M parameters).

The tower is open_clip's own (`_build_vision_tower`) from the open_clip model config
the text tower comes from: `text_encoder.clip_model` (paper: ViT-L-14), else the
explicit `text_encoder.vision_cfg` beside `text_cfg` (the tiny config). Both towers
project into one `embed_dim` space, where CLIP compares them. Images are prepared with
open_clip's own evaluation transform (shortest side resized to the tower's size,
bicubic, centre crop, CLIP's mean/std).
"""
import math

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from open_clip.model import CLIPVisionCfg, _build_vision_tower
from open_clip.transform import image_transform
from PIL import Image
from torch import nn

from textdepth_ros.errors import UserError, WeightsUnavailableError
from textdepth_ros.model.text_encoder import ClipTextEncoder, pick_tower, read_clip_file
from textdepth_ros.model.weights_io import check_tensors, unwrap_state_dict

VISUAL_PREFIXES = ("visual.", "model.visual.", "module.visual.")  # CLIP / wrapped checkpoints
TEXT_CHECK_KEYS = ("token_embedding.weight", "text_projection")  # enough to tell two CLIPs apart
CLIP_LOGIT_SCALE = 100.0  # exp(logit_scale) of every released CLIP (training clamps it there)
MAX_PARAMETERS = 2_000_000_000


def vision_tower_config(te_cfg: dict):
    """(embed_dim, CLIPVisionCfg) of the CLIP whose text tower `te_cfg` (a validated
    model config's text_encoder section) describes."""
    if te_cfg.get("clip_model"):
        model_cfg = open_clip.get_model_config(te_cfg["clip_model"])
        vision = dict(model_cfg["vision_cfg"], **(te_cfg.get("vision_cfg") or {}))
        embed_dim = model_cfg["embed_dim"]
    elif te_cfg.get("vision_cfg"):
        vision, embed_dim = dict(te_cfg["vision_cfg"]), te_cfg["embed_dim"]
    else:
        raise UserError("scene recognition needs the CLIP image tower's config: the model config's text_encoder "
                        "names no clip_model and has no vision_cfg (see config/model/tiny.yaml)")
    vision["timm_model_pretrained"] = False  # a timm tower never downloads: the weights come from the CLIP file
    return embed_dim, CLIPVisionCfg(**vision)


def count_parameters(te_cfg: dict) -> int:
    """Parameters of the image tower, counted on the meta device (nothing allocated)."""
    embed_dim, vision = vision_tower_config(te_cfg)
    with torch.device("meta"):
        tower = _build_vision_tower(embed_dim, vision, quick_gelu=bool(te_cfg.get("quick_gelu")))
    return sum(p.numel() for p in tower.parameters())


class ClipImageEncoder(nn.Module):
    """rgb uint8 HxWx3 -> unit-norm CLIP image embedding [embed_dim], frozen."""

    def __init__(self, te_cfg: dict):
        super().__init__()
        count = count_parameters(te_cfg)
        if count > MAX_PARAMETERS:
            raise UserError(f"the CLIP image tower of this config has {count / 1e6:,.0f} M parameters, over the "
                            f"limit of {MAX_PARAMETERS / 1e6:,.0f} M (ViT-L/14's has 304 M)")
        embed_dim, vision = vision_tower_config(te_cfg)
        self.tower = _build_vision_tower(embed_dim, vision, quick_gelu=bool(te_cfg.get("quick_gelu")))
        self.width = embed_dim
        self.image_size = vision.image_size
        self.transform = image_transform(vision.image_size, is_train=False, mean=open_clip.OPENAI_DATASET_MEAN,
                                         std=open_clip.OPENAI_DATASET_STD)
        self.logit_scale = CLIP_LOGIT_SCALE  # the file's own when loaded
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True):
        """Frozen: always in eval mode."""
        return super().train(False)

    def prepare(self, rgb: np.ndarray) -> torch.Tensor:
        """HxWx3 uint8 RGB -> [3, S, S] float tensor, as open_clip prepares an image."""
        return self.transform(Image.fromarray(rgb))

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """[B, 3, S, S] prepared images -> [B, embed_dim] unit-norm embeddings (float32)."""
        return F.normalize(self.tower(images).float(), dim=-1)

    def load_pretrained(self, source: str, clip_model: str = None, text_tower: nn.Module = None) -> dict:
        """Image-tower weights (and CLIP's logit scale) from an open_clip tag or a local
        CLIP file, as ClipTextEncoder.load_pretrained finds them. With `text_tower`, the
        report says whether the file's text tower is that one (`text_tower_matches`):
        image and text embeddings only compare within one CLIP."""
        path = ClipTextEncoder._locate(source, clip_model)
        state = unwrap_state_dict(read_clip_file(path))
        own = self.tower.state_dict()
        picked = pick_tower(state, own, VISUAL_PREFIXES, bool, path, "image tower", "no 'visual.' weights")
        missing = [k for k in own if k not in picked]
        if missing:
            raise WeightsUnavailableError(f"{path}: image tower weights missing: {missing[:5]}")
        check_tensors(picked, f"CLIP image encoder file {path}", own)
        self.tower.load_state_dict(picked, strict=True)
        scale = next((state[p + "logit_scale"] for p in ("", "model.", "module.") if p + "logit_scale" in state), None)
        if scale is not None and scale.numel() == 1 and math.isfinite(float(scale)):
            self.logit_scale = min(math.exp(float(scale)), CLIP_LOGIT_SCALE)
        report = {"file": str(path), "loaded": len(picked), "logit_scale": self.logit_scale}
        if text_tower is not None:
            report["text_tower_matches"] = same_text_tower(state, text_tower)
        return report


def same_text_tower(state: dict, text_tower: nn.Module) -> bool:
    """Whether a CLIP state dict's text tower holds `text_tower`'s weights (compared on a
    few tensors that differ between any two trained CLIPs)."""
    own = text_tower.state_dict()
    for prefix in ("", "text.", "model.", "module."):
        found = {k: state.get(prefix + k) for k in TEXT_CHECK_KEYS}
        if all(v is not None for v in found.values()):
            return all(v.shape == own[k].shape and torch.equal(v.float(), own[k].detach().float().cpu())
                       for k, v in found.items())
    return False
