"""The additive mask a window attention adds to its logits, kept between inference forwards.

Swin's and SAM's window attentions add a relative-position bias, gathered from a learned
table, to every window's logits, and in shifted windows the shift mask as well. Built in
every forward that is a gather, an add and a cast to the half dtype per attention, and
SDPA's memory-efficient CUDA kernel copies any mask whose rows are not 8-element aligned
into padded rows: 3-4 small kernels per attention, ~100 per paper forward, and a CUDA graph
replays every one of them. None of it changes while the weights do not, so
`AttentionBias` keeps the bias gathered, cast and (on CUDA) in 8-aligned rows, and builds a
shifted window's mask with one add that rounds straight into aligned rows of the attention
dtype. The values are exactly those of the per-forward construction: the add runs in the
same promoted dtype and rounds once on store, as `(bias + mask).to(dtype)` did.

The cache is off until the owner of fixed weights turns it on (`keep_attention_biases`;
DepthEstimator does, training does not), and even then used only where the weights cannot
change under it and its tensors are real: without autograd, outside torch.compile /
torch.export tracing, and only while the table is the same tensor, storage, dtype and
version it was built from (an optimizer step, load_state_dict or .to() invalidates it;
writes through `.data` bypass the version counter: call `forget()`). A CUDA graph reads a
kept bias by address: after changing an estimator's weights in place, capture again
(GraphCache.clear()).
"""
from typing import Optional

import torch

from textdepth_ros.model.windows import relative_position_bias

# SDPA's memory-efficient kernel wants every stride but the last to be a multiple of 8
# elements; otherwise it pads the mask into a new tensor on every call.
CUDA_MASK_ALIGNMENT = 8


def aligned_empty(shape, dtype: torch.dtype, device: torch.device, alignment: Optional[int] = None) -> torch.Tensor:
    """An uninitialised tensor of `shape` whose rows start every `alignment` elements (a view
    into a buffer with padded rows); by default 8 on CUDA (for SDPA) and 1 (contiguous) elsewhere."""
    if alignment is None:
        alignment = CUDA_MASK_ALIGNMENT if torch.device(device).type == "cuda" else 1
    *outer, last = shape
    padded = -(-last // alignment) * alignment
    buffer = torch.empty((*outer, padded), dtype=dtype, device=device)
    return buffer if padded == last else buffer[..., :last]


def per_forward_mask(table: torch.Tensor, index: torch.Tensor, shift: Optional[torch.Tensor],
                     dtype: torch.dtype) -> torch.Tensor:
    """The mask built from scratch (training, compile, export): bias [heads, N, N], or with
    a shift mask [nW, N, N] their sum [nW, heads, N, N], in `dtype`."""
    bias = relative_position_bias(table, index)
    if shift is not None:
        bias = bias[None] + shift[:, None]
    return bias.to(dtype)


def _may_keep(table: torch.Tensor) -> bool:
    """Inference on real tensors: no autograd (the table cannot be in an optimizer step), no
    tracer (compile, export, jit: its tensors are stand-ins, and it should see the plain maths)."""
    if torch.is_grad_enabled() or torch.compiler.is_compiling() or torch.jit.is_tracing():
        return False
    return type(table) in (torch.Tensor, torch.nn.Parameter) and not torch.is_inference(table)


class AttentionBias:
    """One attention's additive mask, built once per weights and attention dtype.
    Not a module: nothing of it is saved, and the model's state dict is unchanged."""

    def __init__(self):
        self.enabled = False  # turned on by whoever owns fixed weights (inference.DepthEstimator)
        self._entries = {}  # "bias" (in the table's dtype) or an attention dtype -> tensor
        self._source = None  # the table (identity, device, dtype, storage, version) they were built from

    def __call__(self, table: torch.Tensor, index: torch.Tensor, shift: Optional[torch.Tensor],
                 dtype: torch.dtype) -> torch.Tensor:
        """What `per_forward_mask` returns (the same values), from the cache where it may be used."""
        if not (self.enabled and _may_keep(table)):
            return per_forward_mask(table, index, shift, dtype)
        # While a CUDA graph is captured, tensors made now live in the graph's pool and hold
        # nothing until it replays: read what was kept before (the warm-up), keep nothing new.
        keep = not (table.is_cuda and torch.cuda.is_current_stream_capturing())
        source = (id(table), table.device, table.dtype, table.data_ptr(), table._version)
        if source != self._source:
            if not keep:
                return per_forward_mask(table, index, shift, dtype)
            self.forget()
            self._source = source
        bias = self._kept("bias", lambda: relative_position_bias(table, index).contiguous(), keep)  # the table's dtype
        if shift is None:
            return self._kept(dtype, lambda: aligned_empty(bias.shape, dtype, bias.device).copy_(bias), keep)
        # The sum depends on the input size: one add per forward, computed in the promoted
        # dtype (as bias + mask was) and rounded on store into aligned rows of `dtype`.
        out = aligned_empty((shift.shape[0], *bias.shape), dtype, bias.device)
        return torch.add(bias[None], shift[:, None], out=out)

    def forget(self) -> None:
        """Drop what is kept (a CUDA graph captured from it must be captured again)."""
        self._entries.clear()
        self._source = None

    def _kept(self, key, build, keep: bool) -> torch.Tensor:
        tensor = self._entries.get(key)
        if tensor is None:
            tensor = build()
            if keep:
                self._entries[key] = tensor
        return tensor


def keep_attention_biases(model: torch.nn.Module, enabled: bool) -> int:
    """Turn the kept biases of every window attention in `model` on or off (before serving it:
    what was kept is dropped); returns how many attentions there are."""
    found = [m.attention_bias for m in model.modules() if isinstance(getattr(m, "attention_bias", None), AttentionBias)]
    for bias in found:
        bias.enabled = enabled
        bias.forget()
    return len(found)
