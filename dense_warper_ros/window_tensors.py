"""A window's frames as the model's input tensors, shared by the single- and multi-person pipelines.

`view_of(frame)` says what a frame contributes: its heatmaps (J, h, w) and (2, 3) image -> heatmap
affine, or None (the frame is missing, or does not see the person being fused).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from dense_warper_ros.buffer import Frame
from dense_warper_ros.cameras import Camera

ViewOf = Callable[[Frame], "tuple[torch.Tensor, np.ndarray] | None"]


def stack_views(frames: Sequence[Frame | None], target_ns: int, view_of: ViewOf, shape: tuple[int, ...],
                dtype: torch.dtype, device: torch.device):
    """Frames (n,) -> heatmaps (n, *shape), affines (n, 2, 3) (identity where missing), times (n,)
    s relative to the target, valid (n,)."""
    n = len(frames)
    hm = torch.zeros((n, *shape), dtype=dtype, device=device)
    A = torch.eye(2, 3, dtype=torch.float64).repeat(n, 1, 1)
    times = torch.zeros(n, dtype=torch.float64)
    valid = torch.zeros(n, dtype=torch.bool)
    for i, f in enumerate(frames):
        view = None if f is None else view_of(f)
        if view is not None:
            hm[i] = view[0]
            A[i] = torch.from_numpy(np.asarray(view[1]))
            times[i] = (f.stamp_ns - target_ns) * 1e-9
            valid[i] = True
    return hm, A, times, valid


def stack_previous(previous: Sequence[Sequence[Frame]], K: int, target_ns: int, view_of: ViewOf,
                   shape: tuple[int, ...], dtype: torch.dtype, device: torch.device):
    """Each view's K earlier frames (newest first, padded with missing) -> heatmaps (V, K, *shape),
    affines (V, K, 2, 3), times (V, K), valid (V, K)."""
    per_view = [stack_views((tuple(earlier[:K]) + (None,) * K)[:K], target_ns, view_of, shape, dtype, device)
                for earlier in previous]
    return tuple(torch.stack(x) for x in zip(*per_view))


def projections(cameras: Sequence[Camera | None], batch: int) -> torch.Tensor:
    """(batch, V, 3, 4) pinhole projections of the window's cameras (identity where missing)."""
    P = torch.eye(3, 4, dtype=torch.float64).repeat(batch, len(cameras), 1, 1)
    for v, cam in enumerate(cameras):
        if cam is not None:
            P[:, v] = torch.from_numpy(cam.P)
    return P


def projected_box(camera: Camera, points: np.ndarray, *, margin: float, min_joints: int,
                  min_depth: float = 0.0) -> np.ndarray | None:
    """(x0, y0, x1, y1) square box around `points` (J, 3) projected into `camera`, its side the
    larger extent x `margin`; None with fewer than `min_joints` finite joints, any joint at or
    closer than `min_depth` (behind the camera), a side under 16 px or a centre off the image.
    Centre and side are whole pixels: the next frame's crop comes from this frame's pose, so a
    pose that differs in its last digits (another 2D backend, another CPU) would otherwise give
    another crop, other heatmaps and a replay that drifts apart by millimetres within a second."""
    pts = points[np.isfinite(points).all(axis=1)]
    if len(pts) < min_joints or np.any(camera.to_camera(pts)[:, 2] <= min_depth):
        return None
    uv = camera.project(pts)
    lo, hi = uv.min(0), uv.max(0)
    centre, side = np.round((lo + hi) / 2), float(np.round((hi - lo).max() * margin))
    if side < 16 or not (0 <= centre[0] < camera.width and 0 <= centre[1] < camera.height):
        return None
    return np.array([centre[0] - side / 2, centre[1] - side / 2, centre[0] + side / 2, centre[1] + side / 2])
