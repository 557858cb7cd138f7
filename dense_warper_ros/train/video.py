"""Training windows cut from a real synchronised recording (self-supervised fine-tuning).

Why: warps trained only on rendered Gaussian heatmaps move MoveNet's real heatmaps (wider, noisier,
multi-modal) too far; on the pose2sim demo they lost to naive interleaving. A synchronised video
has every camera at every frame, so an interleaved window can be cut from it anywhere and its dense
triangulation (`data.video.triangulated_detection_truth`) gives the time-correct target of every warp.

A window starting at frame f0 takes camera c at the frame f in [f0, f0 + V) with f mod V = c (the
benchmark's interleave), view v = camera v (one fixed rig, so one undistortion hook); with
`history` = K each view also gets its frames V, 2V, ... KV earlier. Only frames in
[lo, hi) are used, inputs and targets alike, so the frames after hi stay held out for the benchmark.
Batches have the keys and shapes of `train.windows.synthetic_windows`.
"""
from __future__ import annotations

import numpy as np
import torch

from dense_warper_ros.cameras import apply_affines, undistorter
from dense_warper_ros.data.evidence import EvidenceBank
from dense_warper_ros.data.video import PseudoGroundTruth, triangulated_detection_truth

Batch = dict[str, torch.Tensor]


class VideoWindows:
    """Random interleaved windows of frames [lo, hi) of a synchronised recording's bank."""

    def __init__(self, bank: EvidenceBank, frames: tuple[int, int], history: int = 0,
                 pgt: PseudoGroundTruth | None = None) -> None:
        self.bank, self.history = bank, history
        self.pgt = pgt if pgt is not None else triangulated_detection_truth(bank)
        V = len(bank.cameras)
        lo, hi = max(0, int(frames[0])), min(len(self.pgt.instants), int(frames[1]))
        self.starts = np.arange(lo + V * history, hi - V + 1)          # every frame of a window in [lo, hi)
        if len(self.starts) == 0:
            raise ValueError(f"video frames [{lo}, {hi}) hold no window of {V} frames with {history} "
                             f"earlier frame(s) per view")
        if (self.pgt.grid[lo:hi] < 0).any():
            raise ValueError(f"video frames [{lo}, {hi}): some camera misses some frame (not synchronised)")
        self.undistort = undistorter(list(bank.cameras))
        self._P = torch.as_tensor(bank.P, dtype=torch.float32)           # (V, 3, 4)
        self._size = bank.heatmaps(np.array([0])).shape[-1]              # heatmap px

    def batch(self, batch_size: int, rng: np.random.Generator) -> Batch:
        bank, pgt, K = self.bank, self.pgt, self.history
        V = len(bank.cameras)
        f0 = rng.choice(self.starts, size=batch_size)                    # (B,)
        cam = np.arange(V)
        frame = f0[:, None] + (cam[None, :] - f0[:, None]) % V           # (B, V) camera v's frame
        slots = pgt.grid[frame, cam[None, :]]                            # (B, V)
        t0 = pgt.instants[f0][:, None]
        poses = pgt.poses[frame]                                         # (B, V slots, J, 3)
        affines = bank.affines[slots]                                    # (B, V, 2, 3)
        B, J = batch_size, poses.shape[2]
        tgt = np.zeros((B, V, V, J, 2))
        vis = np.zeros((B, V, V, J), dtype=bool)
        for c, camera in enumerate(bank.cameras):
            # pinhole projection: the model's points are undistorted before the affine is applied
            uv = camera.project(poses, distort=False)                    # (B, V, J, 2)
            depth = camera.to_camera(poses)[..., 2]
            uv_hm = apply_affines(torch.as_tensor(affines[:, c, None]), torch.as_tensor(uv)).numpy()   # view c's crop
            tgt[:, c] = uv_hm
            vis[:, c] = ((depth > 0.05) & (uv_hm >= -0.5).all(-1) & (uv_hm <= self._size - 0.5).all(-1)
                         & pgt.reliable[frame])
        hm = bank.heatmaps(slots.ravel())
        out: Batch = {
            "heatmaps": hm.view(B, V, *hm.shape[1:]).float(),
            "P": self._P.expand(B, V, 3, 4).clone(),
            "affines": torch.as_tensor(affines, dtype=torch.float32),
            "times": torch.as_tensor(bank.time[slots] - t0, dtype=torch.float32),
            "valid": torch.ones(B, V, dtype=torch.bool),
            "poses": torch.as_tensor(poses, dtype=torch.float32),
            "pose_valid": torch.as_tensor(pgt.reliable[frame]),                # (B, V, J)
            "target_uv": torch.as_tensor(tgt, dtype=torch.float32),
            "target_visible": torch.as_tensor(vis),
        }
        if K:
            prev = frame[:, :, None] - V * np.arange(1, K + 1)[None, None, :]   # (B, V, K) newest first
            ps = pgt.grid[prev, cam[None, :, None]]
            hp = bank.heatmaps(ps.ravel())
            out["prev_heatmaps"] = hp.view(B, V, K, *hp.shape[1:]).float()
            out["prev_affines"] = torch.as_tensor(bank.affines[ps], dtype=torch.float32)
            out["prev_times"] = torch.as_tensor(bank.time[ps] - t0[..., None], dtype=torch.float32)
            out["prev_valid"] = torch.ones(B, V, K, dtype=torch.bool)
        return out
