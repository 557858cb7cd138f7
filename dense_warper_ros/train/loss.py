"""Losses of stage 2 as small pure functions.

The method's 2D loss (the paper's training objective): Barron's general robust loss (Barron, CVPR 2019)
with alpha = -10 and scale c on the L1 distance x = |dx| + |dy| between the soft-argmax of a warped
heatmap and its target, both in heatmap px:

    rho(x) = |a - 2| / a * (((x / c)^2 / |a - 2| + 1)^(a / 2) - 1)
           = 1.2 * (1 - (1 + (x / c)^2 / 12)^-5)          for a = -10,

quadratic for x << c, saturating at 1.2 for x >> c (left/right swaps and misses cost a bounded
amount). The method uses c = 8 px at 96 px heatmaps; the same reach at 48 px is c = 4.
Target (the released code's mistake fixed): for (view c, slot i) the pose at slot i's time
projected into view c, not view c's own-time pose.
"""
from __future__ import annotations

import torch


def barron_rho(x: torch.Tensor, *, alpha: float = -10.0, scale: float = 8.0) -> torch.Tensor:
    """Barron's general robust loss, elementwise, for alpha not in {0, 2}. x (...) -> (...)."""
    if alpha in (0.0, 2.0):
        raise ValueError(f"alpha {alpha} is a limit case of the general form; use another alpha")
    if scale <= 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    b = abs(alpha - 2.0)
    return b / alpha * (((x / scale) ** 2 / b + 1.0) ** (alpha / 2.0) - 1.0)


def robust_2d_loss(uv: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, *,
                   alpha: float = -10.0, scale: float = 8.0, gain: float = 1000.0) -> torch.Tensor:
    """Mean robust loss over the masked entries, times `gain` (the method's x 1000).

    uv, target (..., 2) heatmap px; mask (...) bool. Returns a scalar; 0 (with a graph) when the
    mask is empty, so a batch without visible joints does not break the step.
    """
    if uv.shape != target.shape or uv.shape[:-1] != mask.shape or uv.shape[-1] != 2:
        raise ValueError(f"uv {tuple(uv.shape)}, target {tuple(target.shape)} and mask "
                         f"{tuple(mask.shape)} must be (..., 2), (..., 2) and (...)")
    x = (uv - target).abs().sum(-1)                              # (...) L1 distance, px
    x = torch.where(mask, x, torch.zeros_like(x))                # no NaN from masked entries
    rho = barron_rho(x, alpha=alpha, scale=scale)
    return gain * (rho * mask).sum() / mask.sum().clamp_min(1)


def mpjpe_3d_loss(pred: torch.Tensor, gt: torch.Tensor, *, root: int = 0,
                  mask: torch.Tensor | None = None) -> torch.Tensor:
    """Root-aligned MPJPE in mm over finite predictions: pred, gt (..., J, 3) metres -> scalar.

    Where the root itself is not triangulated (or masked) the pose is skipped (no alignment
    possible). `mask` (..., J) bool: joints whose ground truth counts (pseudo ground truth).
    """
    if pred.shape != gt.shape or pred.shape[-1] != 3:
        raise ValueError(f"pred {tuple(pred.shape)} and gt {tuple(gt.shape)} must be equal (..., J, 3)")
    ok = torch.isfinite(pred).all(-1)                            # (..., J)
    if mask is not None:
        ok = ok & mask
    ok = ok & ok[..., root:root + 1]
    p = torch.where(ok[..., None], pred, torch.zeros_like(pred))
    p = p - p[..., root:root + 1, :]
    g = gt - gt[..., root:root + 1, :]
    err = torch.linalg.vector_norm(torch.where(ok[..., None], p - g, torch.zeros_like(p)), dim=-1)
    return 1000.0 * (err * ok).sum() / ok.sum().clamp_min(1)
