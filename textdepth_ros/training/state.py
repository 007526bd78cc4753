"""Checkpoints of a run. Weights go to safetensors (best.safetensors, last.safetensors,
with the model config inside); what exact resume needs besides weights (optimizer,
LR schedule, grad scaler, RNG, position in the data) goes to last_state.pt, holding
only tensors and plain containers so it loads with torch.load(weights_only=True)."""
import os
from pathlib import Path

import torch

from textdepth_ros.errors import UserError
from textdepth_ros.model.checkpoint import load_checkpoint, save_checkpoint


def save_last(out_dir, model, optimizer, scheduler, scaler, progress: dict, extra: dict) -> None:
    out_dir = Path(out_dir)
    save_checkpoint(out_dir / "last.safetensors", model, extra=dict(extra, **progress))
    state = {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "progress": dict(progress),  # step, epoch, batch (micro-batches done in epoch), best
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    tmp = out_dir / "last_state.pt.tmp"
    torch.save(state, tmp)
    os.replace(tmp, out_dir / "last_state.pt")  # never a half-written state file


def load_last(out_dir, model, optimizer, scheduler, scaler, device) -> dict:
    """Restore everything save_last wrote; returns the progress dict."""
    out_dir = Path(out_dir)
    weights, state_path = out_dir / "last.safetensors", out_dir / "last_state.pt"
    if not weights.is_file() or not state_path.is_file():
        raise UserError(f"cannot resume: {weights} or {state_path} is missing")
    load_checkpoint(weights, model=model, device=device)
    state = torch.load(state_path, map_location="cpu", weights_only=True)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["rng_cpu"])
    if state["rng_cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng_cuda"])
    return state["progress"]
