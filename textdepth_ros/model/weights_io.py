"""Reading weight files safely: safetensors, or torch.load(weights_only=True).
Nothing here can execute code stored in a file."""
from pathlib import Path

import torch

from textdepth_ros.errors import CheckpointError, WeightsUnavailableError
from textdepth_ros.paths import find_model_file


def resolve_weights_path(path, what: str) -> Path:
    """A pretrained file a model config names, looked up as every model file is
    (paths.find_model_file). Missing -> one clear error naming where it was looked for."""
    return find_model_file(path, f"{what} weights")


def read_state_dict(path: Path, what: str = "weights") -> dict:
    """Tensors of a .safetensors file or of a plain torch state dict (no pickled code)."""
    path = Path(path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - every reader error means the same to a user
        raise CheckpointError(f"cannot read {what} file {path}: {_reason(exc)}") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{what} file {path} holds a {type(state).__name__}, not a state dict")
    return state


def _reason(exc: Exception) -> str:
    """One short line for a reader error (torch's own messages run to paragraphs)."""
    text = str(exc).strip()
    if "Weights only load failed" in text:
        return "it stores Python objects besides tensors, which could run code when unpickled (refused)"
    if "PytorchStreamReader" in text or "zip archive" in text:
        return "truncated or not a PyTorch file (" + text.splitlines()[0].split(". ")[0] + ")"
    return text.splitlines()[0] if text else type(exc).__name__


FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)  # what training and release files hold


def check_tensors(state: dict, source: str, expected: dict = None) -> None:
    """Refuse weights a model should never run with, naming the first bad tensor: a dtype
    outside float32/float16/bfloat16 (or, given the model's `expected` state dict, of
    another family than the model's tensor: int8 for a float weight), or NaN/inf values
    (a diverged run: the network would publish NaN depth with nothing to say so)."""
    for name, tensor in state.items():
        want = expected[name].dtype if expected is not None and name in expected else None
        if tensor.is_floating_point():
            if tensor.dtype not in FLOAT_DTYPES or (want is not None and not want.is_floating_point):
                raise CheckpointError(f"{source}: tensor '{name}' is {_dtype_name(tensor.dtype)}, expected "
                                      f"{_dtype_name(want) if want is not None else 'float32, float16 or bfloat16'}")
            bad = int((~torch.isfinite(tensor)).sum())
            if bad:
                raise CheckpointError(f"{source}: tensor '{name}' holds {bad} NaN/inf values (of {tensor.numel()}): "
                                      "the weights are corrupt (a diverged or broken training run?)")
        elif tensor.dtype != torch.int64 or (want is not None and want != torch.int64):  # counters (BatchNorm)
            raise CheckpointError(f"{source}: tensor '{name}' is {_dtype_name(tensor.dtype)}, expected "
                                  f"{_dtype_name(want) if want is not None else 'float32, float16 or bfloat16'}")


def _dtype_name(dtype) -> str:
    return str(dtype).replace("torch.", "")


def unwrap_state_dict(state: dict) -> dict:
    """Training checkpoints nest their weights under 'model' or 'state_dict'."""
    for key in ("model", "state_dict", "module"):
        if key in state and isinstance(state[key], dict):
            return state[key]
    return state


def hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    """Whether a download may start: not when HF_HUB_OFFLINE says no, nor when a quick
    connect test fails (an offline machine gets a clear error at once instead of minutes
    of download retries)."""
    import os
    import socket

    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def cached_hub_file(repo_id: str, filenames) -> str:
    """A file already in the local Hugging Face cache, or None."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for name in filenames:
        found = try_to_load_from_cache(repo_id, name)
        if isinstance(found, str):
            return found
    return None
