"""The assembled network: PixelFormer + CLIP text prior (paper Fig. 1).

    image -> Swin -> E1..E4 ; text -> CLIP text tower -> F_text
    E4 <- TRCA(E4, F_text)                  (eq. 1; off in the baseline / +TBCP variants)
    Q4 = PQI(E4) ; Q1 = SAM decoder(E1..E4, Q4)
    centres = TBCP(Q4, F_text)              (eq. 2-5; PixelFormer's BCP when off)
    depth, uncertainty = head(Q1, centres)  (eq. 6), x4 upsampling

Input: RGB in [0, 1], any size (padded to a multiple of 32, output cropped back).
"""
import torch
import torch.nn.functional as F
from torch import nn

from textdepth_ros.errors import UserError
from textdepth_ros.model.backbone import SwinBackbone
from textdepth_ros.model.config import load_model_config, uses_text, variant_name
from textdepth_ros.model.head import BinHead
from textdepth_ros.model.pqi import PyramidPoolingQueries
from textdepth_ros.model.sam import SkipAttentionDecoder
from textdepth_ros.model.tbcp import BCP, TBCP
from textdepth_ros.model.text_encoder import ClipTextEncoder
from textdepth_ros.model.trca import TRCA

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
STRIDE = 32  # the backbone's coarsest reduction

# Top-level modules, in the order `textdepth info` reports them.
PARTS = ("backbone", "text_encoder", "trca", "decoder", "tbcp", "head")
PRETRAINED_PARTS = ("backbone", "text_encoder")  # parts with ImageNet / CLIP weights of their own


class TextDepthNet(nn.Module):
    def __init__(self, config: dict):
        super().__init__()
        self.config = config
        bb, dec, bins = config["backbone"], config["decoder"], config["bins"]
        self.backbone = SwinBackbone(bb["timm_name"], bb.get("drop_path_rate", 0.0))
        ch = self.backbone.channels
        self.text_encoder = ClipTextEncoder(config["text_encoder"]) if uses_text(config) else None
        width = self.text_encoder.width if self.text_encoder is not None else None
        self.trca = TRCA(ch[3], width) if config["trca"] else None
        self.pqi = PyramidPoolingQueries(ch[3], dec["pqi_channels"], dec["pool_scales"])
        self.sam = SkipAttentionDecoder(ch, dec["pqi_channels"], dec["sam_dims"], dec["sam_heads"], dec["window_size"])
        if config["tbcp"]:
            self.tbcp = TBCP(dec["pqi_channels"], width, bins["n_bins"], bins["mlp_hidden"], bins["dataset_min"],
                             bins["dataset_max"], bins["fixed_min"], text_range=config.get("text_range", True))
        else:
            self.tbcp = BCP(dec["pqi_channels"], bins["n_bins"], bins["mlp_hidden"], bins["fixed_min"], bins["dataset_max"])
        self.head = BinHead(dec["sam_dims"][0], bins["n_bins"])
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.frozen = ()  # modules kept in eval mode while the rest trains (training/freeze.py)

    def train(self, mode: bool = True):
        """The frozen modules stay in eval mode: no drop-path, BatchNorm on its statistics."""
        super().train(mode)
        for name in self.frozen:
            getattr(self, name).eval()
        return self

    @property
    def variant(self) -> str:
        return variant_name(self.config)

    @property
    def uses_text(self) -> bool:
        return self.text_encoder is not None

    def parts(self) -> dict:
        """name -> modules, for counting; the decoder is PQI + SAM stages."""
        return {
            "backbone": [self.backbone],
            "text_encoder": [self.text_encoder],
            "trca": [self.trca],
            "decoder": [self.pqi, self.sam],
            "tbcp": [self.tbcp],
            "head": [self.head],
        }

    def encode_text(self, texts) -> torch.Tensor:
        """Cached CLIP embeddings [B, C] of a list of strings."""
        if self.text_encoder is None:
            raise UserError(f"the '{self.variant}' variant has no text encoder")
        return self.text_encoder(texts)

    def forward(self, images: torch.Tensor, texts=None, text_embedding: torch.Tensor = None) -> dict:
        """images [B, 3, H, W] RGB in [0, 1]; texts: B strings (or text_embedding [B, C]).
        Returns depth and uncertainty [B, 1, H, W] in metres (float32), bin_centers
        [B, n_bins] and depth_range [B, 2] (the bins' d_min, d_max)."""
        h, w = images.shape[-2:]
        x = (images - self.mean.to(images.dtype)) / self.std.to(images.dtype)
        x = F.pad(x, (0, (-w) % STRIDE, 0, (-h) % STRIDE), mode="replicate")
        f_text = None
        if self.text_encoder is not None:
            if text_embedding is None:
                if texts is None:
                    raise UserError("this model reads a scene text: pass texts (or text_embedding)")
                text_embedding = self.text_encoder(texts)
            f_text = text_embedding.to(x.device)
        e1, e2, e3, e4 = self.backbone(x)
        if self.trca is not None:
            e4 = self.trca(e4, f_text)
        q4 = self.pqi(e4)
        q1 = self.sam([e1, e2, e3, e4], q4)
        centres, depth_range = self.tbcp(q4, f_text)
        depth, uncertainty = self.head(q1, centres)
        return {
            "depth": depth[..., :h, :w],
            "uncertainty": uncertainty[..., :h, :w],
            "bin_centers": centres,
            "depth_range": depth_range,
        }

    def load_pretrained(self, parts=PRETRAINED_PARTS) -> dict:
        """Load the pretrained weights the config names (Swin, CLIP) into `parts`.
        Returns a report keyed by the parts that loaded something."""
        report = {}
        source = self.config["backbone"].get("pretrained") if "backbone" in parts else None
        if source == "hub":
            self.backbone.load_from_hub(self.config["backbone"]["timm_name"])
            report["backbone"] = "hub"
        elif source:
            report["backbone"] = self.backbone.load_pretrained(source)
        if "text_encoder" in parts and self.text_encoder is not None and self.config["text_encoder"].get("pretrained"):
            te = self.config["text_encoder"]
            report["text_encoder"] = self.text_encoder.load_pretrained(te["pretrained"], te.get("clip_model"))
        return report


# A config can ask for any size within config_schema's per-key bounds; their product can
# still be huge. 5x the paper model (400 M), 8 GB of float32 weights.
MAX_PARAMETERS = 2_000_000_000


def build_on_meta(cfg: dict) -> TextDepthNet:
    """The model with shapes only (PyTorch's meta device): nothing is allocated."""
    with torch.device("meta"):
        return TextDepthNet(cfg).eval()


def check_model_size(cfg: dict) -> int:
    """Parameters the config describes, counted on the meta device; too many is a UserError
    before a byte is allocated."""
    count = sum(p.numel() for p in build_on_meta(cfg).parameters())
    if count > MAX_PARAMETERS:
        raise UserError(f"model config '{cfg.get('name', '?')}' describes {count / 1e6:,.0f} M parameters, "
                        f"over the limit of {MAX_PARAMETERS / 1e6:,.0f} M (the paper model has 400 M)")
    return count


def build_model(config, variant: str = None, pretrained: bool = True) -> TextDepthNet:
    """A model from a config name/path/dict, validated and size-checked before anything is
    allocated. `pretrained` loads the Swin and CLIP weights the config names (skip it when
    a checkpoint will overwrite them anyway)."""
    cfg = load_model_config(config, variant)
    check_model_size(cfg)
    model = TextDepthNet(cfg)
    if pretrained:
        model.load_pretrained()
    return model
