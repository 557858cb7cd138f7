"""Temporal context: this project's extension of DenseWarper (not in the paper).

With `ModelConfig.temporal_context` = K > 0 (preset `lite_tc`), the warp of view c also reads c's
K earlier frames (`PreviousFrames`, passed as `previous=` to `DenseWarper.pose_at` /
`forward_window`):
  1. each earlier frame k is resampled into c's current crop (crops follow the root, so they move
     between frames) and fed as a difference map to the current heatmap plus a time plane
     (t_c - t_k) / time_scale_s (`warp_context`);
  2. with `velocity_prior`, the offsets start at c's constant-velocity displacement from frame k=0
     to the target (soft-argmax of both frames, extrapolated by (t* - t_c) / (t_c - t_0), clamped
     to a quarter of the heatmap), with a learned per-joint gain in the warp;
  3. with `view_confidence`, the warp gives a per-joint DLT log-weight for its view; with
     `history_weight`, a warped view's DLT weight is at most its previous frame's peak
     (`history_cap`);
  4. with `temporal_fusion`, frame k=0 itself is moved too (the same offsets plus its step to the
     current frame) and blended into the output with a learned per-joint weight (the moved frame's
     peak lands on the current one's, since its step comes from the same two detections: the blend
     reshapes the peak and its height, the DLT weight).
`previous=None` means no history; configs with K = 0 (the faithful method, `lite`, `paper`)
ignore `previous`.

Legend: B batch, V views, K earlier frames, J joints, h x w heatmap; N warped (batch, view) pairs.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from .cameras import apply_affines, invert_affines
from .heatmaps import compose_affines, resample_to_crop, soft_argmax
from .model_config import ModelConfig


class PreviousFrames(NamedTuple):
    """Each view's K earlier frames (temporal-context configs). k = 0 is the frame just before the
    current one of that view, k = 1 the one before, ... Times in the same time base as `times`."""

    heatmaps: torch.Tensor            # (B, V, K, J, h, w)
    affines: torch.Tensor             # (B, V, K, 2, 3) image -> heatmap px of each earlier frame
    times: torch.Tensor               # (B, V, K) float64 capture times, s
    valid: torch.Tensor               # (B, V, K) bool (missing frames False)


class FusionInput(NamedTuple):
    """A view's previous frame as `temporal_fusion` blends it in (N warped views, J joints)."""

    heatmaps: torch.Tensor            # (N, J, h, w) frame k=0 resampled into the current crop
    step: torch.Tensor                # (N, J, 2) (dx, dy) heatmap px from it to the current frame
    usable: torch.Tensor              # (N, J) bool: the joint is detected in both frames


def fit_previous(previous: PreviousFrames | None, K: int, B: int, V: int, J: int,
                 h: int) -> PreviousFrames | None:
    """None for models without temporal context (K = 0: they ignore it) or without history; else
    exactly K earlier frames per view (more are cut, fewer padded as missing), times float64 and
    validity bool. The shapes are checked against batch B, views V, joints J and heatmap side h."""
    if not K or previous is None:
        return None
    hm, A, t, ok = previous
    k = hm.shape[2] if hm.dim() == 6 else -1
    want = {"heatmaps": (hm, (B, V, k, J, h, h)), "affines": (A, (B, V, k, 2, 3)),
            "times": (t, (B, V, k)), "valid": (ok, (B, V, k))}
    for name, (x, shape) in want.items():
        if k < 0 or tuple(x.shape) != shape:
            raise ValueError(f"previous.{name} must be (B, V, K, ...) = {shape if k >= 0 else (B, V, 'K')}, "
                             f"got {tuple(x.shape)}")
    t = t.to(torch.float64)
    ok = ok.bool()
    if k > K:
        hm, A, t, ok = hm[:, :, :K], A[:, :, :K], t[:, :, :K], ok[:, :, :K]
    elif k < K:
        pad = K - k
        hm = torch.cat([hm, hm.new_zeros(B, V, pad, *hm.shape[3:])], 2)
        A = torch.cat([A, A.new_zeros(B, V, pad, 2, 3) + torch.eye(2, 3, dtype=A.dtype, device=A.device)], 2)
        t = torch.cat([t, t.new_zeros(B, V, pad)], 2)
        ok = torch.cat([ok, ok.new_zeros(B, V, pad)], 2)
    return PreviousFrames(hm, A, t, ok)


def warp_context(config: ModelConfig, x: torch.Tensor, A_cur: torch.Tensor, previous: PreviousFrames | None,
                 bi: torch.Tensor, ci: torch.Tensor, t_cur: torch.Tensor, t_target: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor | None, FusionInput | None]:
    """What the warp of each of N pairs (batch bi, view ci, both (N,)) reads about its view's
    earlier frames (steps 1, 2 and 4 of the module doc).

    x (N, J, h, w) current heatmaps, A_cur (N, 2, 3) their crops, t_cur (N,) float64 their capture
    times, t_target (N,) float64 the target times; `previous` (B, V, K, ...) from `fit_previous`.
    Returns context (N, K*(J+1), h, w): per earlier frame k, its heatmap resampled into the current
    crop minus x, then a plane (t_cur - t_k) / time_scale_s (all zero for a missing frame); the
    constant-velocity displacement (N, J, 2) heatmap px from frame k=0 to the target time (zero
    where a joint is undetected in either frame, or None without a velocity prior); and, with
    `temporal_fusion`, frame k=0 in the current crop with its step to the current frame
    (`FusionInput`, else None).
    """
    c = config
    K = c.temporal_context
    N, J, h, w = x.shape
    if previous is None or N == 0:
        ctx = torch.zeros(N, K * (J + 1), h, w, dtype=x.dtype, device=x.device)
        prior = torch.zeros(N, J, 2, dtype=x.dtype, device=x.device) if c.velocity_prior else None
        return ctx, prior, None
    hp = previous.heatmaps[bi, ci].to(x.dtype)              # (N, K, J, h, w)
    Ap = previous.affines[bi, ci].to(x.dtype)               # (N, K, 2, 3)
    gap = t_cur[:, None] - previous.times[bi, ci].to(t_cur)  # (N, K) s, > 0 for earlier frames
    ok = previous.valid[bi, ci].bool() & torch.isfinite(gap) & (gap > 1e-4)
    R = resample_to_crop(hp.flatten(0, 1), Ap.flatten(0, 1),
                         A_cur.to(x.dtype).repeat_interleave(K, 0)).view(N, K, J, h, w)
    okf = ok.to(x.dtype)[:, :, None, None, None]
    diff = (R - x[:, None]) * okf                           # (N, K, J, h, w)
    tplane = (torch.where(ok, gap, torch.zeros_like(gap)) / c.time_scale_s).to(x.dtype)
    tplane = tplane[:, :, None, None, None].expand(N, K, 1, h, w)
    ctx = torch.cat([diff, tplane], dim=2).reshape(N, K * (J + 1), h, w)
    if not (c.velocity_prior or c.temporal_fusion):
        return ctx, None, None
    disp, step, use = _constant_velocity(c.decoder, x, hp[:, 0], Ap[:, 0], A_cur, gap[:, 0], ok[:, 0],
                                         t_target - t_cur)
    fuse = FusionInput(R[:, 0] * okf[:, 0], step.to(x.dtype), use) if c.temporal_fusion else None
    return ctx, disp.to(x.dtype) if c.velocity_prior else None, fuse


@torch.no_grad()
def _constant_velocity(decoder: dict, x: torch.Tensor, hp0: torch.Tensor, Ap0: torch.Tensor, A_cur: torch.Tensor,
                       gap0: torch.Tensor, ok0: torch.Tensor, ahead_s: torch.Tensor
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each joint's motion from frame k=0 (hp0 (N, J, h, w) in crop Ap0 (N, 2, 3), gap0 (N,) s
    before the current frame, ok0 (N,) bool) to the current frame x (N, J, h, w) in crop A_cur,
    extrapolated ahead_s (N,) float64 further. Returns the displacement to the target and the step
    from frame k=0 to the current frame, both (N, J, 2) heatmap px clamped to a quarter of the
    heatmap and zero where unusable, and the usable joints (N, J) bool (detected in both frames)."""
    u_c, _, ok_c, _ = soft_argmax(x.detach(), **decoder)                      # (N, J, 2)
    u_p, _, ok_p, _ = soft_argmax(hp0.detach(), **decoder)                    # prev crop px
    u_p = apply_affines(compose_affines(A_cur.to(u_p.dtype), invert_affines(Ap0.to(u_p.dtype))), u_p)
    g0 = torch.where(ok0, gap0, torch.ones_like(gap0))
    ahead = ahead_s / g0                                                      # (N,) float64
    disp = (u_c - u_p) * ahead.to(u_c.dtype)[:, None, None]                # (N, J, 2)
    use = ok_c & ok_p & ok0[:, None]
    lim = 0.25 * x.shape[-2]
    disp = torch.where(use[..., None], disp.clamp(-lim, lim), torch.zeros_like(disp))
    step = torch.where(use[..., None], (u_c - u_p).clamp(-lim, lim), torch.zeros_like(u_c))
    return disp, step, use


def history_cap(hm: torch.Tensor, bi: torch.Tensor, ci: torch.Tensor, previous: PreviousFrames) -> torch.Tensor:
    """(B, V, J) caps on the DLT weights (step 3, `history_weight`): each warped view's (bi, ci (N,))
    previous-frame peak (where that frame exists), +inf elsewhere. hm (B, V, J, h, w). The warp moves
    a joint by what the two frames say, so its point is only as sure as the weaker detection (a miss
    or a wrong peak in either frame)."""
    cap = torch.full(hm.shape[:3], float("inf"), dtype=hm.dtype, device=hm.device)
    prev_peak = previous.heatmaps[bi, ci, 0].to(hm.dtype).amax(dim=(-2, -1))   # (N, J)
    missing = ~previous.valid[bi, ci, 0].bool()[:, None]
    return cap.index_put((bi, ci), prev_peak.masked_fill(missing, float("inf")))
