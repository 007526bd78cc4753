"""Every random generator a training step can touch, as plain tensors and containers (so
a state holding them loads with torch.load(weights_only=True)), and back."""
import random

import numpy as np
import torch


def rng_states() -> dict:
    """Every random generator a training step can touch: torch (CPU, CUDA), and numpy's
    and Python's global ones (unused by our own code; a model or library may draw)."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"key": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "python": [list(random.getstate()[1]), random.getstate()[0]],
    }


def set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    n = states["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    internal, version = states["python"]
    random.setstate((version, tuple(internal), None))
