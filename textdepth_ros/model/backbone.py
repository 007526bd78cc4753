"""Backbone: a timm Swin Transformer giving E1..E4 at 1/4, 1/8, 1/16, 1/32 (NCHW).

Like PixelFormer's backbone, every output stage gets its own LayerNorm. The final
norm and classifier head of the ImageNet model are dropped. Any input size divisible
by 32 works (dynamic_img_size); the assembled model pads other sizes.
"""
import timm
import torch
from torch import nn

from textdepth_ros.errors import WeightsUnavailableError
from textdepth_ros.model.weights_io import (
    check_tensors,
    hub_reachable,
    read_state_dict,
    resolve_weights_path,
    unwrap_state_dict,
)


class SwinBackbone(nn.Module):
    def __init__(self, timm_name: str, img_size, drop_path_rate: float = 0.0):
        super().__init__()
        self.swin = timm.create_model(
            timm_name,
            pretrained=False,
            num_classes=0,
            img_size=tuple(img_size),
            dynamic_img_size=True,
            drop_path_rate=drop_path_rate,
        )
        self.swin.norm = nn.Identity()  # replaced by the per-stage norms below
        self.channels = [int(info["num_chs"]) for info in self.swin.feature_info]
        self.stage_norms = nn.ModuleList(nn.LayerNorm(c) for c in self.channels)

    def forward(self, images: torch.Tensor):
        x = self.swin.patch_embed(images)  # NHWC
        features = []
        for stage, norm in zip(self.swin.layers, self.stage_norms):
            x = stage(x)
            features.append(norm(x).permute(0, 3, 1, 2).contiguous())
        return features

    def load_pretrained(self, path) -> dict:
        """Load ImageNet weights from a local file: timm layout or Microsoft's original
        Swin release (downsample at stage end, nested under 'model'). Returns the keys
        that did not load, for logging."""
        file = resolve_weights_path(path, "Swin backbone")
        state = unwrap_state_dict(read_state_dict(file, "Swin backbone"))
        state = timm.models.swin_transformer.checkpoint_filter_fn(state, self.swin)
        state = {k: v for k, v in state.items() if not k.startswith(("head.", "norm."))}
        own = self.swin.state_dict()
        check_tensors({k: v for k, v in state.items() if k in own}, f"Swin backbone file {file}", own)
        result = self.swin.load_state_dict(state, strict=False)
        if len(result.missing_keys) > len(state) // 2 or not state:
            raise WeightsUnavailableError(
                f"{file} does not look like a {type(self.swin).__name__} checkpoint: "
                f"{len(result.missing_keys)} backbone weights missing (e.g. {result.missing_keys[:3]})"
            )
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
        state = {k: v for k, v in source.state_dict().items() if not k.startswith(("head.", "norm."))}
        self.swin.load_state_dict(state, strict=False)
