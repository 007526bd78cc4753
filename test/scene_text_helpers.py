"""A small real CLIP in open_clip's own format, with the tiny config's towers, for the
scene-recognition tests: written to a file the way released CLIP weights come, and the
similarities computed from it independently of our code, by open_clip's CLIP class."""
import numpy as np
import open_clip
import torch
import yaml
from PIL import Image

from textdepth_ros.model.config import load_model_config

TINY = load_model_config("tiny")["text_encoder"]


def tiny_clip(seed: int = 0):
    """open_clip's whole CLIP model with the tiny config's text and image towers."""
    torch.manual_seed(seed)
    return open_clip.model.CLIP(embed_dim=TINY["embed_dim"], vision_cfg=TINY["vision_cfg"],
                                text_cfg=TINY["text_cfg"]).eval()


def write_clip_file(path, seed: int = 0):
    """A CLIP state dict file (as open_clip saves one) with a trained-like logit scale."""
    clip = tiny_clip(seed)
    state = clip.state_dict()
    state["logit_scale"] = torch.tensor(np.log(100.0), dtype=torch.float32)
    torch.save(state, path)
    return path


def text_side(clip_file):
    """What the recognizer reads of a depth model (as the onnxruntime backend keeps it):
    the tiny config's text tower, its weights from `clip_file`, without the Swin network."""
    from types import SimpleNamespace

    from textdepth_ros.model.text_encoder import ClipTextEncoder

    cfg = load_model_config("tiny")
    cfg["text_encoder"]["pretrained"] = str(clip_file)
    encoder = ClipTextEncoder(cfg["text_encoder"])
    encoder.load_pretrained(str(clip_file))
    return SimpleNamespace(text_encoder=encoder, config=cfg, variant="full")


def tiny_config_with_clip(path, clip_file):
    """config/model/tiny.yaml with its CLIP text tower taken from `clip_file`."""
    cfg = load_model_config("tiny")
    cfg["text_encoder"]["pretrained"] = str(clip_file)
    path.write_text(yaml.safe_dump(cfg))
    return path


class OpenClipReference:
    """Cosine similarities of an image with texts by open_clip alone: its CLIP class
    loading the file, its evaluation transform, its tokenizer."""

    def __init__(self, clip_file):
        self.clip = tiny_clip(seed=123)  # other random weights, all replaced by the file's
        self.clip.load_state_dict(torch.load(clip_file, weights_only=True))
        self.transform = open_clip.image_transform(TINY["vision_cfg"]["image_size"], is_train=False)
        self.tokenizer = open_clip.get_tokenizer("ViT-L-14")

    @torch.no_grad()
    def similarities(self, rgb: np.ndarray, texts) -> np.ndarray:
        image = self.clip.encode_image(self.transform(Image.fromarray(rgb))[None], normalize=True)
        text = self.clip.encode_text(self.tokenizer(list(texts)), normalize=True)
        return (image @ text.T)[0].numpy()


def scene_image(seed: int, height: int = 480, width: int = 640) -> np.ndarray:
    """A camera-sized frame: a colour gradient of its own per seed, with noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    t = (xx / width * rng.uniform(0, 1) + yy / height * rng.uniform(0, 1))[..., None] / 2
    image = a * (1 - t) + b * t + rng.normal(0, 12, (height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8)
