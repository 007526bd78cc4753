"""PixelFormer's released checkpoints -> textdepth checkpoints of the `baseline` variant.

PixelFormer (Agarwal & Arora, WACV 2023) saves `{'model': state_dict}` from a
DataParallel/DDP model (keys prefixed `module.`), sometimes with the optimizer and step
beside it. Our baseline computes what PixelFormer computes (test/test_pixelformer_parity.py),
so its weights only need renaming. The architecture (Swin size and window, decoder
widths, bins) is read off the tensors; the depth range is not stored, so the caller
gives it (NYU 10 m, KITTI 80 m).

Reading uses torch.load(weights_only=True): a file that would run code is refused.
"""
import re
from pathlib import Path

import torch

from textdepth_ros.errors import CheckpointError
from textdepth_ros.model.checkpoint import describe_mismatch, write_checkpoint
from textdepth_ros.model.swin import SWIN_SIZES, swin_name
from textdepth_ros.model.weights_io import check_tensors, read_state_dict

# PixelFormer's module names -> ours, applied in order to every key (after `module.`
# is stripped). SAM stages: PixelFormer's sam4..sam1 are our sam.stages[3]..[0].
RENAMES = [
    (r"^backbone\.norm(\d)\.", r"backbone.stage_norms.\1."),
    (r"^backbone\.layers\.(\d)\.downsample\.", lambda m: f"backbone.layers.{int(m.group(1)) + 1}.downsample."),
    (r"^backbone\.(?!stage_norms\.)", "backbone.swin."),
    (r"^decoder\.psp_modules\.(\d)\.1\.conv\.", r"pqi.branches.\1.0."),
    (r"^decoder\.psp_modules\.(\d)\.1\.gn\.", r"pqi.branches.\1.1."),
    (r"^decoder\.bottleneck\.conv\.", "pqi.bottleneck.0."),
    (r"^decoder\.bottleneck\.bn\.", "pqi.bottleneck.1."),
    (r"^sam(\d)\.", lambda m: f"sam.stages.{int(m.group(1)) - 1}."),
    (r"\.proj_e\.", ".proj_skip."),
    (r"\.proj_q\.", ".proj_query."),
    (r"\.norm_sam\.", ".norm."),
    (r"\.sam_block\.norm1\.", ".block.norm_q."),
    (r"\.sam_block\.normv\.", ".block.norm_skip."),
    (r"\.sam_block\.norm2\.", ".block.norm_mlp."),
    (r"\.sam_block\.attn\.q\.", ".block.attn.to_q."),
    (r"\.sam_block\.attn\.kv\.", ".block.attn.to_kv."),
    (r"\.sam_block\.attn\.", ".block.attn."),
    (r"\.sam_block\.mlp\.fc1\.", ".block.mlp.0."),
    (r"\.sam_block\.mlp\.fc2\.", ".block.mlp.2."),
    (r"^bcp\.fc1\.", "tbcp.mlp.0."),
    (r"^bcp\.fc2\.", "tbcp.mlp.2."),
    (r"^disp_head1\.conv1\.", "head.logits."),
]
# Stored by PixelFormer but not used by its forward: index buffers we recompute, and
# SAM's `proj` conv, which is built and never called.
UNUSED = re.compile(r"(relative_position_index$|^sam\d\.proj\.)")
# Keys only a PixelFormer checkpoint has.
SIGNATURE = ("backbone.patch_embed.proj.weight", "decoder.bottleneck.conv.weight", "sam4.norm_sam.weight",
             "bcp.fc1.weight", "disp_head1.conv1.weight")


def read_pixelformer_state(path) -> dict:
    """The network's tensors from a PixelFormer checkpoint file, wrapper and `module.` removed."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"PixelFormer checkpoint not found: {path}")
    state = read_state_dict(path, "PixelFormer checkpoint")
    if isinstance(state.get("model"), dict):
        state = state["model"]
    state = {str(k).removeprefix("module."): v for k, v in state.items()}
    lacking = [k for k in SIGNATURE if k not in state]
    if lacking:
        raise CheckpointError(f"{path} is not a PixelFormer checkpoint: it lacks {', '.join(lacking[:3])}")
    check_entries(state, f"PixelFormer checkpoint {path}")
    return state


# The tensors pixelformer_config reads the architecture from, and their number of dims.
ARCHITECTURE_DIMS = {"backbone.patch_embed.proj.weight": 4, "backbone.layers.0.blocks.0.attn.relative_position_bias_table": 2,
                     "decoder.bottleneck.conv.weight": 4, "bcp.fc1.weight": 2, "bcp.fc2.weight": 2,
                     **{f"sam{i}.norm_sam.weight": 1 for i in (1, 2, 3, 4)},
                     **{f"sam{i}.sam_block.attn.relative_position_bias_table": 2 for i in (1, 2, 3, 4)}}


def check_entries(state: dict, source: str) -> None:
    """Every entry a tensor whose values its file really stores, and the tensors the
    architecture is read from of the right rank, before anything is allocated from them:
    a zero-stride view of one stored value can claim billions (a 7.4 GB allocation at the
    first NaN check), and a 1-d tensor where a matrix belongs ended in an IndexError."""
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{source}: entry '{name}' is a {type(value).__name__}, not a tensor")
        stored = value.untyped_storage().nbytes() - value.storage_offset() * value.element_size()
        if value.numel() * value.element_size() > stored:
            raise CheckpointError(f"{source}: tensor '{name}' claims shape {tuple(value.shape)} "
                                  f"({value.numel():,} values) but its file stores {max(stored, 0):,} bytes for it "
                                  "(a zero-stride or overlapping view): refused before allocating it")
    for name, dims in ARCHITECTURE_DIMS.items():
        if name in state and (state[name].dim() != dims or state[name].numel() == 0):
            raise CheckpointError(f"{source}: tensor '{name}' has shape {tuple(state[name].shape)}, expected "
                                  f"{dims} non-empty dimensions")
    for name in (n for n in ARCHITECTURE_DIMS if n.endswith("relative_position_bias_table") and n in state):
        side = round(state[name].shape[0] ** 0.5)
        if side * side != state[name].shape[0] or side % 2 == 0:
            raise CheckpointError(f"{source}: tensor '{name}' has {state[name].shape[0]} rows, not (2w-1)^2 for a "
                                  "window w")


def _window(table: torch.Tensor) -> int:
    """(2w-1)^2 rows of a relative-position bias table -> w."""
    side = round(table.shape[0] ** 0.5)
    return (side + 1) // 2


def pixelformer_config(state: dict, max_depth: float) -> dict:
    """Our model config (baseline variant) for the architecture these tensors belong to."""
    embed = state["backbone.patch_embed.proj.weight"].shape[0]
    depths = tuple(len({k.split(".")[4] for k in state if k.startswith(f"backbone.layers.{i}.blocks.")}) for i in range(4))
    size = next((name for name, arch in SWIN_SIZES.items() if arch["embed_dim"] == embed and arch["depths"] == depths), None)
    if size is None:
        raise CheckpointError(f"unknown Swin in this PixelFormer checkpoint (width {embed}, blocks per stage {depths})")
    window = _window(state["backbone.layers.0.blocks.0.attn.relative_position_bias_table"])
    sam = [f"sam{i}.sam_block.attn.relative_position_bias_table" for i in (1, 2, 3, 4)]
    return {
        "name": f"pixelformer_{size}{window:02d}",
        "trca": False,
        "tbcp": False,
        "text_range": False,
        "backbone": {"timm_name": swin_name(size, window), "pretrained": None, "drop_path_rate": 0.3},
        "decoder": {
            "pqi_channels": int(state["decoder.bottleneck.conv.weight"].shape[0]),
            "pool_scales": [1, 2, 3, 6],
            "sam_dims": [int(state[f"sam{i}.norm_sam.weight"].shape[0]) for i in (1, 2, 3, 4)],
            "sam_heads": [int(state[key].shape[1]) for key in sam],
            "window_size": _window(state[sam[0]]),
        },
        "bins": {
            "n_bins": int(state["bcp.fc2.weight"].shape[0]),
            "mlp_hidden": int(state["bcp.fc1.weight"].shape[0]),
            "dataset_min": 1e-3,  # PixelFormer's evaluation floor
            "dataset_max": float(max_depth),
            "fixed_min": 0.1,  # PixelFormer's min_depth default, which its scripts never change
        },
    }


def rename_pixelformer_state(state: dict) -> dict:
    """PixelFormer's keys -> ours; unused entries dropped."""
    out = {}
    for key, value in state.items():
        if UNUSED.search(key):
            continue
        for pattern, replacement in RENAMES:
            key = re.sub(pattern, replacement, key)
        out[key] = value
    return out


def convert_pixelformer(state: dict, max_depth: float = 10.0):
    """(our state dict, our config) from PixelFormer's tensors; any key or shape that does
    not fit our baseline is a CheckpointError naming it."""
    from textdepth_ros.model.counting import build_on_meta
    from textdepth_ros.model.config import load_model_config

    if not max_depth > 0.1:
        raise CheckpointError(f"--max-depth must exceed PixelFormer's 0.1 m bin floor, got {max_depth}")
    config = load_model_config(pixelformer_config(state, max_depth))
    expected = build_on_meta(config).state_dict()
    # dtypes and NaN/inf, one line naming the tensor by PixelFormer's name
    check_tensors({k: v for k, v in state.items() if not UNUSED.search(k)}, "PixelFormer checkpoint")
    ours = rename_pixelformer_state(state)
    problem = describe_mismatch(expected, ours)
    if problem:
        raise CheckpointError(f"this PixelFormer checkpoint does not map onto {config['name']}: {problem}")
    return {k: ours[k].to(expected[k].dtype) for k in expected}, config


def import_pixelformer(checkpoint, out, max_depth: float = 10.0, camera=None) -> dict:
    """Read a PixelFormer checkpoint, write a textdepth checkpoint (atomically), with
    `camera` (camera_scale.py) as its training camera when given. Returns its config."""
    out = Path(out)
    if out.suffix != ".safetensors":
        raise CheckpointError(f"the output must be a .safetensors file, got {out}")
    state, config = convert_pixelformer(read_pixelformer_state(checkpoint), max_depth)
    write_checkpoint(out, state, config, extra={"imported_from": str(Path(checkpoint).name),
                                                "source": "PixelFormer (Agarwal & Arora, WACV 2023)",
                                                "max_depth": float(max_depth), "camera": camera})
    return config

