"""Start TRCA and TBCP so that the network still computes the checkpoint's depth (Net2Net's
function-preserving growth; ReZero's / ControlNet's zero-initialised outputs), yet learns.

The modules stay as the paper defines them; only their initial weights are chosen:

TRCA (eq. 1) is a residual, E4 + MLP(...): its last projection starts at zero, so E4 passes
unchanged. The layers before it keep their random init: the zero layer's gradient is its
input (non-zero), and they get gradients once it has moved (step 2). Zeroing both layers
of a branch would leave both at zero for ever.

TBCP (eq. 2-5) takes over from PixelFormer's BCP, b = softmax(W2 GELU(W1 GAP(Q4))):
- align (the 1x1 conv Q4 -> C) is the identity into its first Cq channels (needs the text
  width C >= Cq; it commutes with the average pooling), so F_gap[:Cq] = GAP(Q4) exactly;
- the gate (eq. 3) on those channels starts at s = 1 - LEAK: F_fu = F_gap + LEAK (F_text -
  F_gap). s = 1 exactly would be exact, but sigmoid' = s(1 - s) = 0 there: the gate and the
  text would never get a gradient through these channels;
- the 3-layer MLP computes W2 GELU(W1 x) exactly: its first layer writes [x; -x] and its
  second W1 (GELU(x) - GELU(-x)) = W1 x, an identity, since GELU(x) - GELU(-x) =
  x Phi(x) + x (1 - Phi(x)) = x (needs hidden >= 2 Cq and >= BCP's hidden);
- the range head (text range) starts at BCP's [fixed_min, dataset_max]: its last layer's
  weight at zero, its bias at the logits of that range. d_max = dataset_max sits on the
  sigmoid's bound, so it too starts LEAK short of it.
What BCP does not use starts at TBCP's own init and reaches the output only through a
weight that starts at zero: align's and the gate's channels beyond Cq (where the text goes
in with the gate open, s ~ 0.5), the MLP's spare hidden units.

Exactness: up to rounding, the difference at step 0 comes from the LEAK terms alone: the
depth moves by at most ~LEAK relatively through d_max and by ~LEAK |F_text - F_gap| /
|F_gap| through the gate. With C < Cq (a text tower narrower than the queries, e.g. the
tiny test config) GAP(Q4) cannot pass the C-wide fusion: align then keeps the C directions
W1 is most sensitive to (its top right singular vectors) and the start is approximate.
"""
import math

import torch

LEAK = 1e-6  # how far below 1 a sigmoid that BCP needs at exactly 1 starts


def logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def silence_trca(trca) -> None:
    """TRCA adds nothing to E4 at step 0: its output projection starts at zero."""
    with torch.no_grad():
        trca.mlp[-1].weight.zero_()
        trca.mlp[-1].bias.zero_()


def bcp_tensors(state: dict, prefix: str = "tbcp.mlp."):
    """W1, b1, W2, b2 of a BCP state dict (ours: tbcp.mlp.0 / .2), or None."""
    keys = [f"{prefix}0.weight", f"{prefix}0.bias", f"{prefix}2.weight", f"{prefix}2.bias"]
    return tuple(state[k] for k in keys) if all(k in state for k in keys) else None


def tbcp_from_bcp(tbcp, w1, b1, w2, b2, d_min: float, d_max: float) -> dict:
    """Set TBCP to compute BCP(W1, b1, W2, b2) with the range [d_min, d_max]. Returns
    {'exact': bool, 'note': str}; where TBCP's sizes cannot hold BCP it is left untouched
    and 'exact' is None."""
    c, cq = tbcp.align.weight.shape[:2]
    hidden, hidden_bcp = tbcp.widths_mlp[0].weight.shape[0], w1.shape[0]
    k = min(c, cq)  # channels of GAP(Q4) that fit through the fusion
    if w2.shape[0] != tbcp.widths_mlp[-1].weight.shape[0] or w1.shape[1] != cq:
        return {"exact": None, "note": f"BCP's shape ({w1.shape[1]} -> {hidden_bcp} -> {w2.shape[0]} bins) "
                                       "does not match this TBCP; TBCP keeps its own init"}
    if hidden < max(2 * k, hidden_bcp):
        return {"exact": None, "note": f"TBCP's hidden width {hidden} is below max(2 x {k}, {hidden_bcp}) that "
                                       "copying BCP needs; TBCP keeps its own init"}
    problem = _set_range(tbcp, d_min, d_max)
    if problem:
        return {"exact": None, "note": problem + "; TBCP keeps its own init"}
    w1 = w1.double()
    if k == cq:
        basis = torch.eye(cq, dtype=torch.float64)
    else:  # the k input directions W1 is most sensitive to
        basis = torch.linalg.svd(w1, full_matrices=False).Vh[:k].T
    with torch.no_grad():
        align, gate, (l1, _, l2, _, l3) = tbcp.align, tbcp.gate, tbcp.widths_mlp
        align.weight[:k] = basis.T.reshape(k, cq, 1, 1).to(align.weight)
        align.bias[:k] = 0
        gate.weight[:k] = 0
        gate.bias[:k] = logit(1.0 - LEAK)
        l1.weight[:2 * k] = 0
        l1.weight[:k, :k] = torch.eye(k)
        l1.weight[k:2 * k, :k] = -torch.eye(k)
        l1.bias[:2 * k] = 0
        projected = (w1 @ basis).to(l2.weight)
        l2.weight[:hidden_bcp] = 0
        l2.weight[:hidden_bcp, :k] = projected
        l2.weight[:hidden_bcp, k:2 * k] = -projected
        l2.bias[:hidden_bcp] = b1
        l3.weight.zero_()
        l3.weight[:, :hidden_bcp] = w2
        l3.bias.copy_(b2)
    if k == cq:
        return {"exact": True, "note": f"TBCP computes BCP's bins (gate and range {LEAK:g} short of saturation)"}
    return {"exact": False, "note": f"TBCP approximates BCP: its text width {c} is below the {cq} query channels, "
                                    f"so only {k} directions of GAP(Q4) pass (W1's top singular vectors)"}


def _set_range(tbcp, d_min: float, d_max: float):
    """Start TBCP's range at [d_min, d_max]; a reason string where it cannot."""
    if not tbcp.text_range:
        if math.isclose(tbcp.fixed_min, d_min, rel_tol=1e-7) and math.isclose(tbcp.hi, d_max, rel_tol=1e-7):
            return None
        return f"TBCP's fixed range [{tbcp.fixed_min}, {tbcp.hi}] is not BCP's [{d_min}, {d_max}]"
    lo, hi = tbcp.lo, tbcp.hi
    if not lo < d_min < d_max <= hi:
        return f"BCP's range [{d_min}, {d_max}] m is not inside TBCP's ({lo}, {hi}] m"
    frac_max = min((d_max - lo) / (hi - lo), 1.0 - LEAK)  # text_depth_range: d_max = lo + (hi - lo) s(a)
    d_max0 = lo + (hi - lo) * frac_max
    frac_min = (d_min - lo) / (d_max0 - lo)  # d_min = lo + (d_max - lo) s(b)
    last = tbcp.range_head[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.tensor([logit(frac_max), logit(frac_min)]))
    return None
