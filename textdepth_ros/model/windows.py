"""Window attention pieces shared by the Swin backbone and the SAM decoder: cutting a
feature map into non-overlapping windows and back, Swin's relative-position bias,
the shifted-window mask, and the attention itself: on GPUs one fused
F.scaled_dot_product_attention kernel with the bias and mask as attn_mask; on CPU
PixelFormer's own softmax(q k^T) v, which rounds as the reference does (depth within
5e-7 per pixel of PixelFormer's instead of 1.4e-5) and is faster there for 49-token
windows (measured: 8.3 s vs 10.0 s for a Swin-T forward at 480x640 on 2 cores).

Everything that depends only on sizes (the bias index, the shift mask) is computed
once: the index is a buffer, the mask is cached per padded feature size and device. The
bias itself depends on the weights and is kept by model/attention_bias.py.
"""
import torch
import torch.nn.functional as F

# Logit added between tokens that the cyclic shift brought together from different
# image regions: Swin's (and PixelFormer's) -100, not -inf, so the numbers match.
SHIFT_MASK_VALUE = -100.0


def pad_to_windows(x: torch.Tensor, window: int) -> torch.Tensor:
    """[B, H, W, C] -> [B, Hp, Wp, C], zeros appended right and bottom to whole windows."""
    h, w = x.shape[1:3]
    return F.pad(x, (0, 0, 0, (-w) % window, 0, (-h) % window))


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """[B, H, W, C] (H, W multiples of window) -> [B * nW, window*window, C], batch-major."""
    b, h, w, c = x.shape
    x = x.view(b, h // window, window, w // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, c)


def window_reverse(windows: torch.Tensor, window: int, h: int, w: int) -> torch.Tensor:
    """Inverse of window_partition."""
    c = windows.shape[-1]
    b = windows.shape[0] // ((h // window) * (w // window))
    x = windows.view(b, h // window, w // window, window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)


def relative_position_index(window: int) -> torch.Tensor:
    """Swin's index into the (2w-1)^2 bias table for every pair of window positions."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]


def relative_position_bias(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """[(2w-1)^2, heads] table -> [heads, N, N] bias, N = w*w."""
    n = index.shape[0]
    return table[index.view(-1)].view(n, n, -1).permute(2, 0, 1)


_shift_masks = {}


@torch.compiler.assume_constant_result
def shift_mask(hp: int, wp: int, window: int, shift: int, device) -> torch.Tensor:
    """[nW, N, N] additive mask (0 or -100) for shifted windows on a padded Hp x Wp grid,
    as Swin builds it: after the roll, tokens from different regions of the padded map
    (split at -window and -shift along each axis) must not attend to each other.
    Cached: it depends only on its arguments. Built on `device` itself, and a constant to
    torch.compile (no mask ops, and no CPU work, inside a compiled or captured forward)."""
    key = (hp, wp, window, shift, str(device))
    mask = _shift_masks.get(key)
    if mask is None:
        region = torch.zeros(hp, wp, device=device)
        cuts = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
        for i, rows in enumerate(cuts):
            for j, cols in enumerate(cuts):
                region[rows, cols] = 3 * i + j
        ids = window_partition(region[None, :, :, None], window)[..., 0]  # [nW, N]
        differs = ids[:, None, :] != ids[:, :, None]
        mask = torch.zeros(differs.shape, device=device).masked_fill(differs, SHIFT_MASK_VALUE)
        # Cache real tensors only: a tracer's stand-in (torch.export's FakeTensor) would poison
        # every later eager forward, and memory from a CUDA graph's private pool is not ours.
        if type(mask) is torch.Tensor and not (mask.is_cuda and torch.cuda.is_current_stream_capturing()):
            _shift_masks[key] = mask
    return mask


def window_attention(q, k, v, attn_mask: torch.Tensor, scale: float = None) -> torch.Tensor:
    """softmax(q k^T * scale + attn_mask) v inside each window. q, k, v [B*nW, heads, N, d];
    attn_mask in q's dtype: the bias [heads, N, N] or bias + shift mask [nW, heads, N, N]
    (model/attention_bias.py)."""
    windows = attn_mask.shape[0] if attn_mask.dim() == 4 else q.shape[0]
    if q.shape[0] != windows:  # a batch of images: the same mask for each
        batch = q.shape[0] // windows
        attn_mask = attn_mask[None].expand(batch, -1, -1, -1, -1).reshape(q.shape[0], *attn_mask.shape[1:])
    if q.device.type == "cpu":  # the reference's arithmetic (see the module docstring)
        scale = q.shape[-1] ** -0.5 if scale is None else scale
        return ((q * scale) @ k.transpose(-2, -1) + attn_mask).softmax(-1) @ v
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=scale)
