"""Backbone: a Swin Transformer giving E1..E4 at 1/4, 1/8, 1/16, 1/32 (NCHW).

Like PixelFormer's backbone, every output stage gets its own LayerNorm (the ImageNet
model's final norm and classifier are not used). The blocks compute what PixelFormer's
Swin computes (swin.py); the weights load from timm's or Microsoft's releases.
"""
import re

import timm
import torch
from torch import nn

from textdepth_ros.errors import WeightsUnavailableError
from textdepth_ros.model.swin import SwinTransformer, swin_architecture
from textdepth_ros.model.weights_io import (
    check_tensors,
    hub_reachable,
    read_state_dict,
    resolve_weights_path,
    unwrap_state_dict,
)


def swin_state_from_release(state: dict) -> dict:
    """A Swin ImageNet checkpoint in timm's layout or Microsoft's original one (patch
    merging stored at the end of stages 1-3 instead of the start of 2-4) -> our names.
    Drops the classifier, the final norm and the buffers Swin recomputes."""
    microsoft = "layers.0.downsample.reduction.weight" in state
    out = {}
    for key, value in state.items():
        if key.startswith(("head.", "norm.")) or key.endswith(("relative_position_index", "attn_mask")):
            continue
        if microsoft:
            key = re.sub(r"^layers\.(\d+)\.downsample", lambda m: f"layers.{int(m.group(1)) + 1}.downsample", key)
        out[key] = value
    return out


class SwinBackbone(nn.Module):
    def __init__(self, timm_name: str, drop_path_rate: float = 0.0):
        super().__init__()
        arch = swin_architecture(timm_name)
        self.swin = SwinTransformer(arch["embed_dim"], arch["depths"], arch["heads"], arch["window"], drop_path_rate)
        self.channels = self.swin.channels
        self.stage_norms = nn.ModuleList(nn.LayerNorm(c) for c in self.channels)

    def forward(self, images: torch.Tensor):
        return [norm(x).permute(0, 3, 1, 2).contiguous() for x, norm in zip(self.swin(images), self.stage_norms)]

    def load_pretrained(self, path) -> dict:
        """Load ImageNet weights from a local file: timm layout or Microsoft's original
        Swin release (downsample at stage end, nested under 'model'). Returns the keys
        that did not load, for logging."""
        file = resolve_weights_path(path, "Swin backbone")
        state = swin_state_from_release(unwrap_state_dict(read_state_dict(file, "Swin backbone")))
        return self._load_swin_state(state, f"Swin backbone file {file}")

    def _load_swin_state(self, state: dict, source: str) -> dict:
        own = self.swin.state_dict()
        reshaped = [k for k in state if k in own and own[k].shape != state[k].shape]
        missing = [k for k in own if k not in state]
        if reshaped or not state or len(missing) > len(own) // 2:
            detail = (f"shapes differ (e.g. {reshaped[0]} {tuple(state[reshaped[0]].shape)} vs {tuple(own[reshaped[0]].shape)})"
                      if reshaped else f"{len(missing)} backbone weights missing (e.g. {missing[:3]})")
            raise WeightsUnavailableError(f"{source} does not look like a checkpoint of this Swin backbone: {detail}")
        check_tensors({k: v for k, v in state.items() if k in own}, source, own)
        result = self.swin.load_state_dict(state, strict=False)
        return {"missing": result.missing_keys, "unexpected": result.unexpected_keys}

    def load_from_hub(self, timm_name: str) -> None:
        """timm's own download (needs a reachable hub)."""
        if not hub_reachable():
            raise WeightsUnavailableError(
                f"cannot download {timm_name}: no model hub reachable (or HF_HUB_OFFLINE is set); download its checkpoint elsewhere "
                "and set backbone.pretrained to the file"
            )
        try:
            source = timm.create_model(timm_name, pretrained=True, num_classes=0)
        except Exception as exc:  # noqa: BLE001 - offline shows up as many exception types
            raise WeightsUnavailableError(
                f"cannot download {timm_name} from the model hub ({type(exc).__name__}); "
                "download its checkpoint elsewhere and set backbone.pretrained to the file"
            ) from None
        self._load_swin_state(swin_state_from_release(source.state_dict()), f"timm's download of {timm_name}")
