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

from collections import OrderedDict
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


class ContextCache:
    """The target-independent part of `warp_context`, kept per frame across targets.

    What the warp of a view's frame reads about its earlier frames (the context planes, the joint
    motion between the two frames, frame k=0 moved into the current crop) depends on that frame and
    its history only; of the velocity prior only the scaling by the target's lead changes. In
    streaming each frame is warped to the next V-1 targets, so computing it once per frame saves
    most of that work. Set `keys` before each `pose_at`: keys[b][v] names view v's frame and its
    history in batch item b (e.g. (camera, stamp, earlier stamps)); None: not cached. The caller
    clears the cache when frames with the same keys may change (a reset)."""

    def __init__(self, capacity: int = 64):
        self.capacity = capacity
        self.keys: list[list] | None = None
        self._rows: OrderedDict = OrderedDict()

    def clear(self) -> None:
        self._rows.clear()

    def lookup(self, bi: torch.Tensor, ci: torch.Tensor, compute) -> tuple:
        """The pairs' (bi, ci (N,)) parts, computing `compute(index)` for the rows not cached
        (`compute(None)`: all of them)."""
        keys = [None if self.keys is None else self.keys[b][c] for b, c in zip(bi.tolist(), ci.tolist())]
        missing = [i for i, k in enumerate(keys) if k is None or k not in self._rows]
        if missing:
            every = len(missing) == len(keys)
            parts = compute(None if every else torch.tensor(missing, device=bi.device))
            self._store([keys[i] for i in missing], parts)
            if every:
                return parts
        rows = [self._rows[k] for k in keys]
        return tuple(None if rows[0][j] is None else torch.stack([r[j] for r in rows])
                     for j in range(len(rows[0])))

    def _store(self, keys: list, parts: tuple) -> None:
        """Row i of `parts` under keys[i] (None: not kept); the oldest rows beyond capacity go."""
        for i, k in enumerate(keys):
            if k is None:
                continue
            self._rows[k] = tuple(None if p is None else p[i] for p in parts)
            self._rows.move_to_end(k)
        while len(self._rows) > self.capacity:
            self._rows.popitem(last=False)


def warp_context(config: ModelConfig, x: torch.Tensor, A_cur: torch.Tensor, previous: PreviousFrames | None,
                 bi: torch.Tensor, ci: torch.Tensor, t_cur: torch.Tensor, t_target: torch.Tensor,
                 cache: ContextCache | None = None
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
    (`FusionInput`, else None). `cache`: reuse what earlier targets computed for the same frames.
    """
    c = config
    K = c.temporal_context
    N, J, h, w = x.shape
    if previous is None or N == 0:
        ctx = torch.zeros(N, K * (J + 1), h, w, dtype=x.dtype, device=x.device)
        prior = torch.zeros(N, J, 2, dtype=x.dtype, device=x.device) if c.velocity_prior else None
        return ctx, prior, None

    def compute(m: torch.Tensor | None) -> tuple:               # m: the pairs to compute, None: all
        if m is None:
            return _frame_context(c, x, A_cur, previous, bi, ci, t_cur)
        return _frame_context(c, x[m], A_cur[m], previous, bi[m], ci[m], t_cur[m])
    ctx, delta, use, g0, moved = cache.lookup(bi, ci, compute) if cache is not None else compute(None)
    if not (c.velocity_prior or c.temporal_fusion):
        return ctx, None, None
    lim = 0.25 * h
    zero = torch.zeros_like(delta)
    disp = torch.where(use[..., None], (delta * ((t_target - t_cur) / g0).to(delta.dtype)[:, None, None])
                       .clamp(-lim, lim), zero)
    fuse = None
    if c.temporal_fusion:
        step = torch.where(use[..., None], delta.clamp(-lim, lim), zero)
        fuse = FusionInput(moved, step.to(x.dtype), use)
    return ctx, disp.to(x.dtype) if c.velocity_prior else None, fuse


def _frame_context(c: ModelConfig, x: torch.Tensor, A_cur: torch.Tensor, previous: PreviousFrames,
                   bi: torch.Tensor, ci: torch.Tensor, t_cur: torch.Tensor) -> tuple:
    """The target-independent part of `warp_context` for N pairs -> context (N, K*(J+1), h, w),
    joint motion from frame k=0 to the current frame delta (N, J, 2) px, usable (N, J) bool, the
    frames' gap g0 (N,) s (1 where frame k=0 is missing) and frame k=0 in the current crop
    (N, J, h, w), zero where missing."""
    K = c.temporal_context
    N, J, h, w = x.shape
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
        return ctx, None, None, None, None
    delta, use = _joint_motion(c.decoder, x, hp[:, 0], Ap[:, 0], A_cur, ok[:, 0])
    g0 = torch.where(ok[:, 0], gap[:, 0], torch.ones_like(gap[:, 0]))
    return ctx, delta, use, g0, R[:, 0] * okf[:, 0]


@torch.no_grad()
def _joint_motion(decoder: dict, x: torch.Tensor, hp0: torch.Tensor, Ap0: torch.Tensor, A_cur: torch.Tensor,
                  ok0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each joint's motion from frame k=0 (hp0 (N, J, h, w) in crop Ap0 (N, 2, 3), ok0 (N,) bool) to
    the current frame x (N, J, h, w) in crop A_cur, in the current crop's px -> (N, J, 2), and the
    usable joints (N, J) bool (detected in both frames). `warp_context` scales it to the target's
    lead (the constant-velocity displacement, clamped to a quarter of the heatmap)."""
    u_c, _, ok_c, _ = soft_argmax(x.detach(), **decoder)                      # (N, J, 2)
    u_p, _, ok_p, _ = soft_argmax(hp0.detach(), **decoder)                    # prev crop px
    u_p = apply_affines(compose_affines(A_cur.to(u_p.dtype), invert_affines(Ap0.to(u_p.dtype))), u_p)
    return u_c - u_p, ok_c & ok_p & ok0[:, None]


def history_cap(hm: torch.Tensor, bi: torch.Tensor, ci: torch.Tensor, previous: PreviousFrames) -> torch.Tensor:
    """(B, V, J) caps on the DLT weights (step 3, `history_weight`): each warped view's (bi, ci (N,))
    previous-frame peak (where that frame exists), +inf elsewhere. hm (B, V, J, h, w). The warp moves
    a joint by what the two frames say, so its point is only as sure as the weaker detection (a miss
    or a wrong peak in either frame)."""
    cap = torch.full(hm.shape[:3], float("inf"), dtype=hm.dtype, device=hm.device)
    prev_peak = previous.heatmaps[bi, ci, 0].to(hm.dtype).amax(dim=(-2, -1))   # (N, J)
    missing = ~previous.valid[bi, ci, 0].bool()[:, None]
    return cap.index_put((bi, ci), prev_peak.masked_fill(missing, float("inf")))
