"""The resume point of a run: OUT/last.safetensors (weights + model config, usable as a
checkpoint on its own) and OUT/last_state.pt (what an exact resume needs besides the
weights: optimizer, LR schedule, grad scaler, the RNG states, the position in the
data, the bests so far), holding only tensors and plain containers so it loads with
torch.load(weights_only=True).

The two files are one unit. save_last stages both completely (`.new` files, flushed
to disk), and only then renames them over the old pair, weights first; the state
records the step and the SHA-256 of the weights file it belongs to. load_last checks
both, so a pair from different saves is never used: if a save was cut between the two
renames, the staged state that belongs to the new weights is still there and the
interrupted save is completed; anything else that does not match is refused with one
line. The state's structure is checked before any of it is used (state_check.py). A
save on a full or read-only disk is one line and leaves the previous pair in place.
"""
import hashlib
import json
import os
from pathlib import Path

import torch

from textdepth_ros.atomic_io import atomic_files, fsync_path
from textdepth_ros.errors import UserError
from textdepth_ros.model.checkpoint import load_checkpoint, save_checkpoint
from textdepth_ros.training.rng_state import rng_states, set_rng_states
from textdepth_ros.training.state_check import state_problem

WEIGHTS, STATE = "last.safetensors", "last_state.pt"
STAGED = ".new"


def file_sha256(path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def save_last(out_dir, model, optimizer, scheduler, scaler, progress: dict, extra: dict) -> None:
    out_dir = Path(out_dir)
    weights, state_path = out_dir / WEIGHTS, out_dir / STATE
    staged_weights, staged_state = out_dir / (WEIGHTS + STAGED), out_dir / (STATE + STAGED)
    try:  # both staged whole (atomic_files: a full or read-only disk is one UserError) or neither
        save_checkpoint(staged_weights, model, extra=dict(extra, **progress))
        state = {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "progress": dict(progress),  # step, epoch, batch (micro-batches done in epoch), best
            "rng": rng_states(),
            "weights_sha256": file_sha256(staged_weights),
        }
        with atomic_files(staged_state, what="training state") as (tmp,):
            torch.save(state, tmp)
    except BaseException:
        staged_weights.unlink(missing_ok=True)  # the previous pair stays the resume point
        raise
    os.replace(staged_weights, weights)  # from here until the next line the pair is split;
    os.replace(staged_state, state_path)  # load_last completes it from the staged state
    fsync_path(out_dir)


def _read_state(path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any reader error means a bad file
        raise UserError(f"cannot resume: {path} is unreadable ({type(exc).__name__})") from None


def _weights_step(path):
    """The step stored in a checkpoint's metadata (without reading its tensors)."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return json.loads((f.metadata() or {}).get("extra", "{}")).get("step")
    except Exception as exc:  # noqa: BLE001 - any reader error means a bad file
        raise UserError(f"cannot resume: {path} is unreadable ({type(exc).__name__})") from None


def _matches(state, weights_step, weights_sha: str) -> bool:
    return (isinstance(state, dict) and state.get("weights_sha256") == weights_sha
            and isinstance(state.get("progress"), dict) and state["progress"].get("step") == weights_step)


def check_pair(out_dir) -> dict:
    """The state that belongs to OUT/last.safetensors, or a UserError saying why none does.
    Completes a save that was cut between its two renames."""
    out_dir = Path(out_dir)
    weights, state_path, staged_state = out_dir / WEIGHTS, out_dir / STATE, out_dir / (STATE + STAGED)
    if not weights.is_file() or not state_path.is_file():
        raise UserError(f"cannot resume: {weights} or {state_path} is missing")
    weights_step, weights_sha = _weights_step(weights), file_sha256(weights)
    state = _read_state(state_path)
    if _matches(state, weights_step, weights_sha):
        return state
    if staged_state.is_file():
        try:
            staged = _read_state(staged_state)
        except UserError:
            staged = {}
        if _matches(staged, weights_step, weights_sha):
            os.replace(staged_state, state_path)
            print(f"note: completed the save of step {weights_step} that was interrupted ({state_path} was behind)")
            return staged
    if not isinstance(state, dict) or not isinstance(state.get("progress"), dict):
        raise UserError(f"cannot resume: {state_path} is not a training state written by textdepth train")
    state_step = state["progress"].get("step")
    if state_step != weights_step:
        why = f"is step {weights_step} but {state_path.name} is step {state_step}"
    elif "weights_sha256" not in state:
        why = f"cannot be checked against {state_path.name} (written without a weights hash by an older version)"
    else:
        why = f"and {state_path.name} are both step {weights_step} but from different saves (the weights hash differs)"
    raise UserError(f"cannot resume: {weights} {why}; they are not one save, so resuming would mix two runs "
                    f"(start without --resume, or put back a matching pair)")


def load_last(out_dir, model, optimizer, scheduler, scaler, device, checked: dict = None) -> dict:
    """Restore everything save_last wrote; returns the progress dict. `checked`: what this
    process's check_pair(out_dir) already returned (else it is checked here)."""
    state = checked if checked is not None else check_pair(out_dir)
    problem = state_problem(state, optimizer, scheduler, scaler)  # before any of it is used
    if problem:
        raise UserError(f"cannot resume: {Path(out_dir) / STATE} {problem} (edited, or from another version or "
                        "config? start without --resume, or put back the state that was saved)")
    load_checkpoint(Path(out_dir) / WEIGHTS, model=model, device=device)
    try:
        optimizer.load_state_dict(state["optimizer"])
    except ValueError:  # another set of trainable parameters
        saved = sum(len(g["params"]) for g in state["optimizer"]["param_groups"])
        now = sum(len(g["params"]) for g in optimizer.param_groups)
        raise UserError(f"cannot resume: the saved optimizer trains {saved} parameter tensors, this run {now} "
                        "(was train.freeze changed? resume with the run's own setting)") from None
    scheduler.load_state_dict(state["scheduler"])
    scaler.load_state_dict(state["scaler"])
    set_rng_states(state["rng"])
    return state["progress"]
