"""Text encoder: the CLIP text tower alone (no vision tower), frozen, with a cache.

The paper encodes the scene description with CLIP ViT-L/14's text encoder. Its
embedding is 768-d (the paper says 1024), so every consumer reads `self.width`.
Embeddings are L2-normalised, as CLIP compares them. A cache keyed by the exact
string makes a repeated text free: `calls` counts real encoder forward passes.
"""
from collections import OrderedDict
from contextlib import nullcontext

import open_clip
import torch
import torch.nn.functional as F
from open_clip.model import CLIPTextCfg, _build_text_tower
from torch import nn

from textdepth_ros.errors import CheckpointError, WeightsUnavailableError
from textdepth_ros.model.weights_io import (
    cached_hub_file,
    check_tensors,
    hub_reachable,
    read_state_dict,
    resolve_weights_path,
    unwrap_state_dict,
)

TEXT_PREFIXES = ("", "text.", "model.", "module.")  # CLIP, CustomTextCLIP, wrapped checkpoints
CLIP_HUB_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def text_tower_config(cfg: dict):
    """(embed_dim, CLIPTextCfg) from an open_clip model name or an explicit text_cfg."""
    if cfg.get("clip_model"):
        model_cfg = open_clip.get_model_config(cfg["clip_model"])
        if model_cfg is None:
            raise WeightsUnavailableError(f"open_clip has no model config named {cfg['clip_model']}")
        text_cfg = dict(model_cfg["text_cfg"], **cfg.get("text_cfg", {}))
        return model_cfg["embed_dim"], CLIPTextCfg(**text_cfg)
    return cfg["embed_dim"], CLIPTextCfg(**cfg["text_cfg"])


class ClipTextEncoder(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        embed_dim, text_cfg = text_tower_config(cfg)
        self.tower = _build_text_tower(embed_dim, text_cfg, quick_gelu=bool(cfg.get("quick_gelu")))
        self.tokenizer = open_clip.get_tokenizer(cfg.get("tokenizer", "ViT-L-14"))
        self.width = embed_dim
        self.context_length = text_cfg.context_length
        self.cache_size = int(cfg.get("cache_size", 1024))
        self._cache: "OrderedDict[str, torch.Tensor]" = OrderedDict()
        self.calls = 0  # encoder forward passes (not cache hits)
        self.requires_grad_(False)
        self.tower.eval()

    def train(self, mode: bool = True):
        """Frozen: the tower stays in eval mode whatever the parent does."""
        super().train(mode)
        self.tower.eval()
        return self

    @torch.no_grad()
    def forward(self, texts) -> torch.Tensor:
        """[B] strings -> [B, width] unit-norm embeddings (float32)."""
        texts = list(texts)
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            self._encode_into_cache(missing)
        for t in texts:
            self._cache.move_to_end(t)
        out = torch.stack([self._cache[t] for t in texts])
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return out

    def _encode_into_cache(self, texts) -> None:
        device = self.tower.token_embedding.weight.device
        tokens = self.tokenizer(texts).to(device)  # truncated to 77 tokens, EOT kept
        # The text tower always runs in fp32: it runs once per new text, so speed is moot.
        no_amp = torch.autocast(device.type, enabled=False) if device.type in ("cpu", "cuda") else nullcontext()
        with no_amp:
            emb = self.tower(tokens).float()
        self.calls += 1
        for text, vec in zip(texts, F.normalize(emb, dim=-1)):
            self._cache[text] = vec

    def clear_cache(self) -> None:
        self._cache.clear()

    def _apply(self, fn, *args, **kwargs):
        # Moving the module (.to / .cuda / .half) invalidates cached tensors.
        self._cache = OrderedDict()
        return super()._apply(fn, *args, **kwargs)

    def _load_from_state_dict(self, *args, **kwargs):
        # New weights (the model's load_state_dict) make every cached embedding stale.
        self.clear_cache()
        return super()._load_from_state_dict(*args, **kwargs)

    def token_count(self, text: str) -> int:
        """Tokens the text needs before truncation (start and end tokens included)."""
        return len(self.tokenizer.encode(text)) + 2

    def load_pretrained(self, source: str, clip_model: str = None) -> dict:
        """Load text-tower weights from an open_clip tag ('openai', downloads where a hub
        is reachable) or a local file (open_clip / OpenAI CLIP state dict)."""
        path = self._locate(source, clip_model)
        state = unwrap_state_dict(read_clip_file(path))
        own = self.tower.state_dict()
        picked = pick_tower(state, own, TEXT_PREFIXES, lambda found: "token_embedding.weight" in found, path,
                            "text tower", "no token_embedding.weight")
        check_tensors(picked, f"CLIP text encoder file {path}", own)
        result = self.tower.load_state_dict(picked, strict=False)
        missing = [k for k in result.missing_keys if k != "attn_mask"]
        if missing:
            raise WeightsUnavailableError(f"{path}: text tower weights missing: {missing[:5]}")
        self.clear_cache()
        return {"file": str(path), "loaded": len(picked)}

    @staticmethod
    def _locate(source: str, clip_model: str):
        tags = open_clip.list_pretrained_tags_by_model(clip_model) if clip_model else []
        if source not in tags:
            return resolve_weights_path(source, "CLIP text encoder")
        pretrained_cfg = open_clip.get_pretrained_cfg(clip_model, source)
        repo_id = pretrained_cfg.get("hf_hub", "").strip("/")
        cached = cached_hub_file(repo_id, CLIP_HUB_FILES) if repo_id else None
        if cached:
            return cached
        hint = (f"Offline: download {CLIP_HUB_FILES[0]} of {repo_id or clip_model} elsewhere, put it in "
                "model/, and set text_encoder.pretrained to its path")
        if not hub_reachable():
            raise WeightsUnavailableError(f"cannot download CLIP {clip_model} '{source}' weights: no model hub reachable (or HF_HUB_OFFLINE is set). {hint}")
        try:
            return open_clip.download_pretrained(pretrained_cfg)
        except Exception as exc:  # noqa: BLE001 - a failed download fails in many ways
            raise WeightsUnavailableError(
                f"cannot download CLIP {clip_model} '{source}' weights ({type(exc).__name__}). {hint}"
            ) from None


def read_clip_file(path):
    """CLIP weights: safetensors / state dict, or OpenAI's TorchScript release. A
    TorchScript archive is restricted bytecode (no arbitrary pickled objects)."""
    try:
        return read_state_dict(path, "CLIP text encoder")
    except CheckpointError as first:
        try:
            return dict(torch.jit.load(str(path), map_location="cpu").state_dict())
        except Exception:  # noqa: BLE001 - report the plain reader's error, it is clearer
            raise first from None


def pick_tower(state: dict, own: dict, prefixes, found_it, path, tower: str, absent: str) -> dict:
    """One tower's tensors of a CLIP state dict, renamed as `own` (the tower's state dict)
    names them: under the first of `prefixes` for which `found_it(picked)` holds, each of
    `own`'s shape; else WeightsUnavailableError naming `path`, `tower` and what was `absent`."""
    for prefix in prefixes:
        picked = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix) and k[len(prefix):] in own}
        if found_it(picked):
            break
    else:
        raise WeightsUnavailableError(f"{path} holds no CLIP {tower} ({absent})")
    wrong = [k for k, v in picked.items() if v.shape != own[k].shape]
    if wrong:
        raise WeightsUnavailableError(
            f"{path}: {tower} shapes differ from the config for {wrong[:3]} "
            f"(e.g. file {tuple(picked[wrong[0]].shape)} vs model {tuple(own[wrong[0]].shape)})")
    return picked
