"""The comparison methods of the accuracy benchmark, over an `EvidenceBank` of decoded 2D points.

All methods consume the same 2D evidence (the bank's soft-argmax of the same heatmaps) and the same
linear DLT (`data.bank_triangulation`: weights = heatmap peak); they differ only in which frames
they use and how they bring them to the target instant:

(a) `sync_interpolated`: a synchronised rig at 1/N of the instants (same image budget), each instant
    triangulated, the poses in between interpolated as the paper's authors did: root linear, every
    bone's direction by spherical interpolation along the tree, its length linear. Windowed by
    nature: the pose at t needs the next synchronised instant.
(b) `naive`: per camera one frame (`select_latest` causal, `select_nearest` windowed), triangulated as
    if simultaneous: time offsets ignored.
(c) `constant_velocity`: per camera two frames, each joint's 2D point moved linearly to the target
    instant (causal: extrapolated from the two newest; windowed: interpolated between the frames
    around the target), then triangulated.
(s) `spatio_temporal`: (c)'s frames, all views at once: each joint a 3D point moving at constant
    velocity, fitted to every frame at its own capture time (`triangulation.triangulate_moving`).
    Motion from geometry alone, with no per-view 2D guess (on request: it ties with (c)).
(e) `dense` (reference): every camera at every instant (N x the images).
(o) `oracle_motion` (analysis, synthetic only): (c)'s frames moved by the true motion.

`outlier` (heatmap px, None: off) turns on the same leave-one-out view rejection as the model's
`ModelConfig.outlier_threshold` (`triangulation.reject_outlier_views`), so that a benchmark can give
every method the same robust triangulation.

Frame selection works on capture times (stamps). Slot index -1 means "no frame".
"""
from __future__ import annotations

import numpy as np
import torch

from dense_warper_ros.buffer import TIMINGS
from dense_warper_ros.cameras import affine_scales
from dense_warper_ros.data.bank_triangulation import gather_points, triangulate
from dense_warper_ros.data.evidence import EvidenceBank
from dense_warper_ros.skeleton import H36M_PARENTS, NUM_JOINTS, PELVIS
from dense_warper_ros.triangulation import triangulate_moving

_EPS = 1e-9


# --- frame selection ---------------------------------------------------------------------------
def _per_camera(bank: EvidenceBank, slots: np.ndarray, c: int) -> tuple[np.ndarray, np.ndarray]:
    """Slots of camera c among `slots`, sorted by capture time: (indices, times)."""
    s = slots[bank.camera[slots] == c]
    order = np.argsort(bank.time[s], kind="stable")
    return s[order], bank.time[s[order]]


def select_latest(bank: EvidenceBank, slots: np.ndarray, targets: np.ndarray, count: int = 1) -> np.ndarray:
    """Per target (T,) and camera: the `count` newest slots captured at or before it.
    -> (T, V) if count == 1 else (T, V, count) oldest first; -1 where missing."""
    V = len(bank.cameras)
    out = np.full((len(targets), V, count), -1, dtype=int)
    for c in range(V):
        s, t = _per_camera(bank, slots, c)
        n = np.searchsorted(t, targets + _EPS, side="right")          # frames with time <= target
        for k in range(count):
            i = n - count + k
            ok = i >= 0
            out[ok, c, k] = s[i[ok]]
    return out[..., 0] if count == 1 else out


def select_previous(bank: EvidenceBank, slots: np.ndarray, sel: np.ndarray, count: int) -> np.ndarray:
    """Per selected frame (T, V) (-1: none): the `count` frames of the same camera among `slots`
    captured just before it, newest first (k = 0 the frame just before) -> (T, V, count), -1 where
    missing. The temporal-context DenseWarper's history (`model.PreviousFrames`)."""
    T, V = sel.shape
    out = np.full((T, V, count), -1, dtype=int)
    for c in range(V):
        s, _ = _per_camera(bank, slots, c)
        if len(s) == 0:
            continue
        pos_of = np.full(len(bank), -1, dtype=int)
        pos_of[s] = np.arange(len(s))
        pos = np.where(sel[:, c] >= 0, pos_of[np.maximum(sel[:, c], 0)], -1)     # (T,)
        for k in range(count):
            i = pos - 1 - k
            ok = (pos >= 0) & (i >= 0)
            out[ok, c, k] = s[i[ok]]
    return out


def select_nearest(bank: EvidenceBank, slots: np.ndarray, targets: np.ndarray, delay_s: float) -> np.ndarray:
    """Per target and camera: the slot nearest in time among those captured at most `delay_s` after
    the target (windowed timing; ties go to the earlier frame). -> (T, V), -1 where missing."""
    V = len(bank.cameras)
    out = np.full((len(targets), V), -1, dtype=int)
    for c in range(V):
        s, t = _per_camera(bank, slots, c)
        if len(s) == 0:
            continue
        n = np.searchsorted(t, targets + _EPS, side="right")
        prev = n - 1
        nxt = n
        has_prev = prev >= 0
        has_next = (nxt < len(t)) & (t[np.minimum(nxt, len(t) - 1)] <= targets + delay_s + _EPS)
        d_prev = np.where(has_prev, targets - t[np.maximum(prev, 0)], np.inf)
        d_next = np.where(has_next, t[np.minimum(nxt, len(t) - 1)] - targets, np.inf)
        use_next = d_next < d_prev - 1e-9                         # a tie goes to the earlier frame
        pick = np.where(use_next, nxt, prev)
        ok = has_prev | has_next
        out[ok, c] = s[pick[ok]]
    return out


def select_bracket(bank: EvidenceBank, slots: np.ndarray, targets: np.ndarray, timing: str,
                   delay_s: float) -> np.ndarray:
    """Two frames per camera for constant-velocity motion -> (T, V, 2) (earlier, later).

    causal: the two newest at or before the target. windowed: the newest at or before and the
    oldest after it within `delay_s`; without such a later frame, the causal pair."""
    pairs = select_latest(bank, slots, targets, count=2)
    if timing == "causal":
        return pairs
    if timing != "windowed":
        raise ValueError(f"Invalid value for timing: {timing!r}, expected one of {TIMINGS}")
    for c in range(len(bank.cameras)):
        s, t = _per_camera(bank, slots, c)
        if len(s) == 0:
            continue
        n = np.searchsorted(t, targets + _EPS, side="right")
        nxt = np.minimum(n, len(t) - 1)
        ok = (n < len(t)) & (n >= 1) & (t[nxt] <= targets + delay_s + _EPS)
        pairs[ok, c, 0] = s[n[ok] - 1]
        pairs[ok, c, 1] = s[nxt[ok]]
    return pairs


# --- triangulation -----------------------------------------------------------------------------
def outlier_px(bank: EvidenceBank, sel: np.ndarray, outlier: float | None) -> np.ndarray | None:
    """Slots (T, V) and a threshold in heatmap px -> per-view image px (T, V, 1) (each frame's
    crop scale), or None when `outlier` is None. A missing slot (-1) reads slot 0's scale: its
    weight is 0 anyway."""
    if outlier is None:
        return None
    scale = affine_scales(torch.as_tensor(bank.affines[np.maximum(sel, 0)], dtype=torch.float64)).numpy()
    return (outlier / np.maximum(scale, 1e-12))[..., None]


def _newer(frames: np.ndarray) -> np.ndarray:
    """(T, V, K) frames, oldest first -> (T, V) the newest there is (-1: none): its crop scales
    the outlier threshold of the point moved from them."""
    out = frames[..., 0].copy()
    for k in range(1, frames.shape[-1]):
        out = np.where(frames[..., k] >= 0, frames[..., k], out)
    return out


def naive(bank: EvidenceBank, sel: np.ndarray, outlier: float | None = None) -> np.ndarray:
    """(b) and (e): triangulate the selected frames (T, V) as if simultaneous -> (T, J, 3)."""
    uv, w = gather_points(bank, sel)
    return triangulate(bank.P, uv, w, outlier_px(bank, sel, outlier))


dense = naive   # (e) is `naive` on the frames of every camera at the target instant


def constant_velocity(bank: EvidenceBank, pairs: np.ndarray, targets: np.ndarray,
                      outlier: float | None = None) -> np.ndarray:
    """(c): per view and joint, the 2D point moved linearly from two frames (T, V, 2) to the
    target (T,); a joint seen in only one of them is used as is. -> (T, J, 3)."""
    uv0, w0 = gather_points(bank, pairs[..., 0])                      # (T, V, J, 2), (T, V, J)
    uv1, w1 = gather_points(bank, pairs[..., 1])
    t0 = np.where(pairs[..., 0] >= 0, bank.time[np.maximum(pairs[..., 0], 0)], np.nan)   # (T, V)
    t1 = np.where(pairs[..., 1] >= 0, bank.time[np.maximum(pairs[..., 1], 0)], np.nan)
    dt = t1 - t0
    alpha = np.where(np.isfinite(dt) & (np.abs(dt) > _EPS), (targets[:, None] - t0) / np.where(
        np.abs(dt) > _EPS, dt, 1.0), 1.0)                              # (T, V)
    both = (w0 > 0) & (w1 > 0)
    moved = uv0 + (uv1 - uv0) * alpha[..., None, None]
    uv = np.where(both[..., None], moved, np.where((w1 > 0)[..., None], uv1, uv0))
    w = np.where(both, np.minimum(w0, w1), np.maximum(w0, w1))
    return triangulate(bank.P, uv, w, outlier_px(bank, _newer(pairs), outlier))


def spatio_temporal(bank: EvidenceBank, frames: np.ndarray, targets: np.ndarray, order: int = 1) -> np.ndarray:
    """(s): frames (T, V, K) (-1: none), every one at its own capture time, fitted by one moving
    point per joint (`order` 1: constant velocity) -> (T, J, 3) at the targets (T,). Plain DLT
    weights (heatmap peaks); no outlier rejection (it compares views at one instant)."""
    T, V, K = frames.shape
    flat = frames.reshape(T, V * K)
    uv, w = gather_points(bank, flat)                                  # (T, F, J, 2), (T, F, J)
    P = np.broadcast_to(np.repeat(bank.P, K, axis=0), (T, V * K, 3, 4))   # camera of each frame
    dt = np.where(flat >= 0, bank.time[np.maximum(flat, 0)] - targets[:, None], 0.0)
    X = triangulate_moving(*(torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float64)
                             for a in (P, uv, w, dt)), order=order)
    return X.numpy()


def oracle_motion(bank: EvidenceBank, frames: np.ndarray, gt: np.ndarray, outlier: float | None = None) -> np.ndarray:
    """(o), an analysis row, not a method: perfect motion on frames (T, V, K), e.g. the two that
    (c) and (d+) use. Each frame keeps its own detection error (decoded point minus its true
    projection) but moves by the true motion to the target, whose ground truth gt (T, J, 3) it
    reads; a view's frames are averaged with equal weight. What is left is detector noise: a method
    near or below this row gains from weighting and rejecting frames, no longer from moving them.
    Synthetic banks only (`bank.gt`)."""
    if bank.gt is None:
        raise ValueError("oracle_motion needs a bank with ground truth (synthetic data)")
    T, V = frames.shape[:2]
    uv_sum = np.zeros((T, V, NUM_JOINTS, 2))
    n = np.zeros((T, V, NUM_JOINTS))
    w = np.full((T, V, NUM_JOINTS), np.inf)
    truth = [cam.project(gt, distort=False) for cam in bank.cameras]  # V x (T, J, 2) at the target
    for k in range(frames.shape[2]):
        uv, wk = gather_points(bank, frames[..., k])                    # (T, V, J, 2), (T, V, J)
        safe = np.maximum(frames[..., k], 0)
        for c, cam in enumerate(bank.cameras):
            err = uv[:, c] - cam.project(bank.gt[safe[:, c]], distort=False)   # the frame's own error
            use = wk[:, c] > 0
            uv_sum[:, c] += np.where(use[..., None], truth[c] + err, 0.0)
            n[:, c] += use
            w[:, c] = np.where(use, np.minimum(w[:, c], wk[:, c]), w[:, c])
    ok = n > 0
    uv = np.where(ok[..., None], uv_sum / np.maximum(n, 1)[..., None], 0.0)
    return triangulate(bank.P, uv, np.where(ok, w, 0.0), outlier_px(bank, _newer(frames), outlier))


# --- (a): synchronised at 1/N of the instants + interpolation ------------------------------------
def _slerp_dirs(d0: np.ndarray, d1: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Spherical interpolation of unit vectors (T, 3), (T, 3) at fractions a (T,)."""
    cos = np.clip((d0 * d1).sum(-1), -1.0, 1.0)
    theta = np.arccos(cos)
    small = theta < 1e-6
    opposite = theta > np.pi - 1e-6                # ill-defined; fall back to linear
    s = np.where(small | opposite, 1.0, np.sin(theta))
    w0 = np.where(small | opposite, 1 - a, np.sin((1 - a) * theta) / s)
    w1 = np.where(small | opposite, a, np.sin(a * theta) / s)
    out = w0[:, None] * d0 + w1[:, None] * d1
    return out / np.maximum(np.linalg.norm(out, axis=-1, keepdims=True), 1e-12)


def interpolate_poses(times: np.ndarray, poses: np.ndarray, query: np.ndarray) -> np.ndarray:
    """The paper's baseline interpolation: poses (S, J, 3) at sorted times (S,) -> (Q, J, 3) at
    query times (Q,): root linear, each bone's direction slerped and its length linear, rebuilt from
    the root along the tree. A joint missing at either end is interpolated linearly in position
    (NaN if missing at both); queries outside [times[0], times[-1]] are NaN (no extrapolation)."""
    times, poses, query = np.asarray(times, float), np.asarray(poses, float), np.asarray(query, float)
    Q = len(query)
    out = np.full((Q, NUM_JOINTS, 3), np.nan)
    if len(times) == 0 or Q == 0:
        return out
    i = np.clip(np.searchsorted(times, query, side="right") - 1, 0, max(len(times) - 2, 0))
    inside = (query >= times[0] - _EPS) & (query <= times[-1] + _EPS)
    if len(times) == 1:
        out[inside] = poses[0]
        return out
    j = i + 1
    a = np.clip((query - times[i]) / (times[j] - times[i]), 0.0, 1.0)
    A, B = poses[i], poses[j]                                          # (Q, J, 3)
    linear = A + (B - A) * a[:, None, None]
    out[:, PELVIS] = linear[:, PELVIS]
    for child, parent in enumerate(H36M_PARENTS):
        if parent < 0:
            continue
        b0, b1 = A[:, child] - A[:, parent], B[:, child] - B[:, parent]
        l0, l1 = np.linalg.norm(b0, axis=-1), np.linalg.norm(b1, axis=-1)
        d = _slerp_dirs(b0 / np.maximum(l0, 1e-12)[:, None], b1 / np.maximum(l1, 1e-12)[:, None], a)
        bone = d * (l0 + (l1 - l0) * a)[:, None]
        out[:, child] = out[:, parent] + bone
        bad = ~np.isfinite(out[:, child]).all(-1)
        out[bad, child] = linear[bad, child]
    out[~inside] = np.nan
    return out


def sync_interpolated(bank: EvidenceBank, sync_sel: np.ndarray, targets: np.ndarray,
                      outlier: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(a): sync_sel (S, V) slots of the synchronised instants -> poses (T, J, 3) at targets and the
    instant times (S,) used (mean capture time of each instant's frames)."""
    poses = naive(bank, sync_sel, outlier)
    t = np.where(sync_sel >= 0, bank.time[np.maximum(sync_sel, 0)], np.nan)
    inst = np.nanmean(np.where(np.isfinite(t), t, np.nan), axis=1)
    order = np.argsort(inst)
    return interpolate_poses(inst[order], poses[order], targets), inst[order]
