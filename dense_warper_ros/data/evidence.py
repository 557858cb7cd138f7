"""Synthetic 2D evidence: heatmaps of projected ground truth, with a detector-like noise model.

The observed keypoints are the projected ground truth plus the errors of `data.detector_noise`
(time-correlated offsets and bias, left/right swaps, misses), per camera along its slots in time.

Heatmaps follow the method's crop (`cameras.root_crop_affine`): a 2 m box around the root projected
into the image at the root's depth, resampled to `size` x `size`; the crop affine (image -> heatmap
px) travels with the heatmaps. Unit-peak Gaussians are rendered with `heatmaps.render_gaussians`; a
missed or out-of-image joint is an all-zero channel.

Two consumers:
- the benchmark: an `EvidenceBank` holds every capture slot any method may use, so all methods see
  the very same noise draws (same slot -> same heatmap);
- training: `train.windows.synthetic_windows` draws batches of interleaved windows with `observe`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from dense_warper_ros.cameras import Camera, apply_affine, invert_affine, root_crop_affine
from dense_warper_ros.data.detector_noise import NoiseConfig, detector_noise, swap_pairs
from dense_warper_ros.data.rigs import config_from_dict
from dense_warper_ros.heatmaps import render_gaussians, soft_argmax
from dense_warper_ros.skeleton import NUM_JOINTS, PELVIS


@dataclass(frozen=True)
class HeatmapConfig:
    """Heatmap rendering in the method's crop convention."""

    size: int = 48                    # heatmap side, px (the paper: 96; the lite model: 48)
    sigma: float = 2.5                # Gaussian sigma, heatmap px (the paper: 3 at 96; the method's
                                      # soft-argmax, temperature 0.05, is unbiased from about 2.5)
    box_m: float = 2.0                # side of the crop box around the root, metres

    def __post_init__(self) -> None:
        if self.size < 8:
            raise ValueError(f"heatmap: size must be >= 8 px, got {self.size}")
        if self.sigma <= 0 or self.box_m <= 0:
            raise ValueError(f"heatmap: sigma and box_m must be > 0, got {self.sigma}, {self.box_m}")


def heatmap_from_dict(data: Mapping[str, Any] | None) -> HeatmapConfig:
    return config_from_dict(HeatmapConfig, data, "heatmap")


@dataclass(frozen=True, eq=False)
class Observations:
    """2D evidence of S capture slots (not yet rendered)."""

    uv_true: np.ndarray      # (S, J, 2) projected ground truth, image px
    uv_obs: np.ndarray       # (S, J, 2) what the simulated detector reports, image px
    present: np.ndarray      # (S, J) bool: detected (not missed; in front, in the image and the crop)
    affines: np.ndarray      # (S, 2, 3) image -> heatmap px (root crop)


def observe(cameras: Sequence[Camera], camera: np.ndarray, times: np.ndarray, joints: np.ndarray,
            noise: NoiseConfig, heatmap: HeatmapConfig, rng: np.random.Generator) -> Observations:
    """Simulated detections of joints (S, J, 3) seen by camera[camera[s]] at times[s].

    The noise processes run per camera along its slots in time order, so call this once with all
    slots of a sequence: slots of one camera share one correlated error trajectory.
    """
    S = len(camera)
    uv_true = np.zeros((S, NUM_JOINTS, 2))
    uv_obs = np.zeros_like(uv_true)
    present = np.zeros((S, NUM_JOINTS), dtype=bool)
    affines = np.zeros((S, 2, 3))
    for c, cam in enumerate(cameras):
        idx = np.flatnonzero(camera == c)
        if idx.size == 0:
            continue
        idx = idx[np.argsort(times[idx], kind="stable")]
        X = joints[idx]                                              # (n, J, 3)
        uv = cam.project(X)                                          # (n, J, 2)
        depth = cam.to_camera(X)[..., 2]
        offset, swapped, missed = detector_noise(rng, times[idx], noise, cam.width / noise.reference_px)
        A = np.stack([root_crop_affine(cam, x[PELVIS], box_mm=heatmap.box_m * 1000.0,
                                       out_size=heatmap.size) for x in X])     # (n, 2, 3)
        uv_hm = np.einsum("nij,nkj->nki", A[..., :2], uv) + A[:, None, :, 2]   # (n, J, 2)
        # Seen only inside the image and inside the crop (a detector on the crop cannot see further).
        inside = ((depth > 0.05) & (uv[..., 0] >= -0.5) & (uv[..., 0] <= cam.width - 0.5)
                  & (uv[..., 1] >= -0.5) & (uv[..., 1] <= cam.height - 0.5)
                  & (uv_hm >= -0.5).all(-1) & (uv_hm <= heatmap.size - 0.5).all(-1))
        uv_true[idx] = uv
        uv_obs[idx] = swap_pairs(uv + offset, swapped)
        present[idx] = swap_pairs(inside, swapped) & ~missed
        affines[idx] = A
    return Observations(uv_true, uv_obs, present, affines)


def render_observations(obs: Observations, idx: np.ndarray, heatmap: HeatmapConfig,
                        dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Heatmaps (n, J, h, w) of slots idx (n,)."""
    idx = np.asarray(idx)
    A = obs.affines[idx]                                             # (n, 2, 3)
    uv_hm = np.einsum("nij,nkj->nki", A[..., :2], obs.uv_obs[idx]) + A[:, None, :, 2]
    return render_gaussians(torch.as_tensor(uv_hm, dtype=dtype), heatmap.size, heatmap.sigma,
                            valid=torch.as_tensor(obs.present[idx]))


def decode_heatmaps(heatmaps: torch.Tensor, affines: np.ndarray, cameras: Sequence[Camera] | None = None,
                    camera: np.ndarray | None = None, **soft_argmax_kw) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps (n, J, h, w) + affines (n, 2, 3) -> image points (n, J, 2) and confidence (n, J)
    (the peak, 0 where invalid). With cameras, points are undistorted to the pinhole model."""
    uv_hm, peak, valid, _ = soft_argmax(heatmaps, **soft_argmax_kw)
    uv_hm = uv_hm.double().numpy()
    uv = np.stack([apply_affine(invert_affine(A), p) for A, p in zip(affines, uv_hm)]) if len(uv_hm) \
        else np.zeros((0, heatmaps.shape[1], 2))
    if cameras is not None and camera is not None:
        for c, cam in enumerate(cameras):
            sel = camera == c
            if sel.any() and cam.has_distortion:
                uv[sel] = cam.undistort_points(uv[sel])
    conf = np.where(valid.numpy(), peak.double().numpy(), 0.0)
    return uv, conf


# --- the benchmark's bank of capture slots -------------------------------------------------------
def slot_keys(camera: np.ndarray, nominal: np.ndarray) -> list[tuple[int, int]]:
    """Hashable identity of capture slots: (camera, nominal time in microseconds)."""
    return list(zip(np.asarray(camera).astype(int).tolist(),
                    np.round(np.asarray(nominal) * 1e6).astype(np.int64).tolist()))


@dataclass(eq=False)
class EvidenceBank:
    """Every capture slot of a sequence that any method may use, with its heatmaps' decoded points.

    S slots; the same slot (camera, nominal time) is one entry, so every method that uses it sees
    the same evidence. `heatmaps(idx)` gives (n, J, h, w) tensors on demand (rendered for
    synthetic data, stored for real video).
    """

    cameras: list[Camera]
    camera: np.ndarray                      # (S,) int
    nominal: np.ndarray                     # (S,) s, trigger instant (the slot's identity)
    time: np.ndarray                        # (S,) s, real capture time (the stamp)
    affines: np.ndarray                     # (S, 2, 3) image -> heatmap px
    heatmap_fn: Callable[[np.ndarray], torch.Tensor]
    uv: np.ndarray                          # (S, J, 2) decoded keypoints, image px (pinhole)
    conf: np.ndarray                        # (S, J) heatmap peak, 0 where invalid
    gt: np.ndarray | None = None            # (S, J, 3) ground truth at the slot's real time
    observations: Observations | None = None   # synthetic banks: the simulated detections

    def __post_init__(self) -> None:
        self._index = {k: i for i, k in enumerate(slot_keys(self.camera, self.nominal))}

    def __len__(self) -> int:
        return len(self.camera)

    @property
    def P(self) -> np.ndarray:
        """(V, 3, 4) pinhole projection matrices."""
        return np.stack([c.P for c in self.cameras])

    def lookup(self, camera: np.ndarray, nominal: np.ndarray, *, missing_ok: bool = False) -> np.ndarray:
        """(n,) slot indices of (camera, nominal) pairs. A missing slot raises KeyError naming it,
        or gives -1 with `missing_ok`."""
        out = []
        for key in slot_keys(camera, nominal):
            if key not in self._index and not missing_ok:
                raise KeyError(f"no evidence for camera {key[0]} at {key[1] * 1e-6:.6f} s")
            out.append(self._index.get(key, -1))
        return np.asarray(out, dtype=int)

    def heatmaps(self, idx: np.ndarray) -> torch.Tensor:
        return self.heatmap_fn(np.asarray(idx, dtype=int))

    def grid(self, instants: np.ndarray) -> np.ndarray:
        """(n, V) slots of every camera at each nominal instant (n,), -1 where the bank has none."""
        V = len(self.cameras)
        cams = np.repeat(np.arange(V)[None], len(instants), 0)
        times = np.repeat(np.asarray(instants)[:, None], V, 1)
        return self.lookup(cams.ravel(), times.ravel(), missing_ok=True).reshape(len(instants), V)


def synthetic_bank(cameras: Sequence[Camera], camera: np.ndarray, nominal: np.ndarray,
                   time: np.ndarray, joints_at: Callable[[np.ndarray], np.ndarray],
                   noise: NoiseConfig, heatmap: HeatmapConfig, *, chunk: int = 256,
                   soft_argmax_kw: Mapping[str, Any] | None = None) -> EvidenceBank:
    """Bank of synthetic evidence for slots (S,) (duplicates of (camera, nominal) are merged).
    `joints_at(times (n,)) -> (n, J, 3)` is the ground truth."""
    keys = slot_keys(camera, nominal)
    _, first = np.unique(np.asarray(keys), axis=0, return_index=True)
    first = np.sort(first)
    camera, nominal, time = np.asarray(camera)[first].astype(int), np.asarray(nominal)[first], \
        np.asarray(time)[first]
    gt = joints_at(time)
    rng = np.random.default_rng(noise.seed)
    obs = observe(cameras, camera, time, gt, noise, heatmap, rng)
    render = lambda idx: render_observations(obs, idx, heatmap)                 # noqa: E731
    uv = np.zeros((len(camera), NUM_JOINTS, 2))
    conf = np.zeros((len(camera), NUM_JOINTS))
    for s in range(0, len(camera), chunk):
        idx = np.arange(s, min(s + chunk, len(camera)))
        uv[idx], conf[idx] = decode_heatmaps(render(idx), obs.affines[idx], cameras, camera[idx],
                                             **(soft_argmax_kw or {}))
    return EvidenceBank(list(cameras), camera, nominal, time, obs.affines, render, uv, conf, gt, obs)
