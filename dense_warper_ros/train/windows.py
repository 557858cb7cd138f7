"""Endless batches of synthetic interleaved windows in heatmap form, as DenseWarper consumes them.

A window is V cameras, one frame each, camera c at t0 + offset_c (+ jitter); each window draws a
clip, an augmentation (rotation, translation, mirror, speed), a rig and a start time at random, and
its heatmaps carry the detector noise of `data.detector_noise` (rendered by `data.evidence`).
`train.data` chooses the rigs, schedules and noise per batch.
"""
from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
import torch

from dense_warper_ros.cameras import Camera, apply_affine
from dense_warper_ros.data.detector_noise import NoiseConfig
from dense_warper_ros.data.evidence import HeatmapConfig, Observations, observe, render_observations
from dense_warper_ros.data.motion import DEFAULT_AUGMENT, AugmentConfig, MotionClip, sample_augmentation
from dense_warper_ros.data.schedules import ScheduleConfig
from dense_warper_ros.skeleton import NUM_JOINTS

WINDOW_KEYS = ("heatmaps", "P", "affines", "times", "valid", "poses", "target_uv", "target_visible")
HISTORY_KEYS = ("prev_heatmaps", "prev_affines", "prev_times", "prev_valid")


def synthetic_windows(*, clips: Sequence[MotionClip], rigs: Sequence[Sequence[Camera]],
                      schedule: ScheduleConfig, noise: NoiseConfig, heatmap: HeatmapConfig,
                      batch_size: int, rng: np.random.Generator,
                      augment: AugmentConfig | None = DEFAULT_AUGMENT,
                      dtype: torch.dtype = torch.float32, history: int = 0) -> Iterator[dict[str, torch.Tensor]]:
    """Endless batches of interleaved windows: V cameras, one frame each, camera c at
    t0 + offset_c (+ jitter), as the method consumes them. Each window draws a clip, an
    augmentation (rotation, translation, mirror, speed), a rig and a start time at random.

    Yields (B batch, V views = slots, J joints, h = w = heatmap size):
        heatmaps (B, V, J, h, w)   noisy detector heatmaps of view v at its capture time
        P (B, V, 3, 4)             pinhole projection matrices
        affines (B, V, 2, 3)       image -> heatmap px
        times (B, V)               capture times, s, relative to the window's first trigger
        valid (B, V) bool          frame received (dropped frames: all-zero heatmaps, False)
        poses (B, V, J, 3)         ground truth at each slot's capture time, metres
        target_uv (B, V, V, J, 2)  [b, c, i]: pose at slot i's time projected into view c's crop
                                   (heatmap px): the 2D target of warping view c to time t_i
        target_visible (B, V, V, J) bool: that target lies inside view c's heatmap
    With `history` = K > 0 (the temporal-context model), also each view's K earlier frames, one
    camera period apart (k = 0 the newest), with the same detector-noise trajectory as the current
    frame (`observe` runs per camera over all its slots), their own jitter and drops:
        prev_heatmaps (B, V, K, J, h, w), prev_affines (B, V, K, 2, 3),
        prev_times (B, V, K) (same time base as times), prev_valid (B, V, K) bool
    history = 0 draws exactly the random numbers it always did (same windows for the same seed).
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be > 0, got {batch_size}")
    sampler = _WindowSampler(clips, rigs, schedule, noise, heatmap, augment, dtype, history)
    keys = WINDOW_KEYS + (HISTORY_KEYS if history else ())
    while True:
        windows = [sampler.window(rng) for _ in range(batch_size)]
        yield {k: _batch_tensor([w[k] for w in windows], dtype) for k in keys}


def _batch_tensor(arrays: list[np.ndarray], dtype: torch.dtype) -> torch.Tensor:
    """Windows' arrays stacked into one batch tensor: bool stays bool, the rest becomes `dtype`."""
    arr = np.stack(arrays)
    return torch.as_tensor(arr) if arr.dtype == bool else torch.as_tensor(arr, dtype=dtype)


class _WindowSampler:
    """Draws one window at a time; every random number comes from the `rng` passed to `window`."""

    def __init__(self, clips: Sequence[MotionClip], rigs: Sequence[Sequence[Camera]],
                 schedule: ScheduleConfig, noise: NoiseConfig, heatmap: HeatmapConfig,
                 augment: AugmentConfig | None, dtype: torch.dtype, history: int) -> None:
        V = len(rigs[0])
        if any(len(r) != V for r in rigs):
            raise ValueError(f"all rigs must have the same number of cameras, got {[len(r) for r in rigs]}")
        self.clips, self.rigs, self.schedule, self.noise, self.heatmap = clips, rigs, schedule, noise, heatmap
        self.augment, self.dtype, self.history, self.V = augment, dtype, history, V
        self.offsets = schedule.offsets(V)                                  # (V,) s in the cycle
        self.span = float(self.offsets.max() - self.offsets.min()) + 4 * schedule.jitter_s
        self.period = 1.0 / schedule.rates(V)                               # (V,) s per camera
        self.back = history * float(self.period.max())                      # room for earlier frames
        self.durations = np.array([c.duration for c in clips])

    def window(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """One window's arrays, keyed as `synthetic_windows` yields them (without the batch axis)."""
        V, s = self.V, self.schedule
        clip = self.clips[rng.choice(len(self.clips), p=self.durations / self.durations.sum())]
        aug = sample_augmentation(rng, self.augment) if self.augment is not None else None
        speed = aug.speed if aug is not None else 1.0
        if clip.duration / speed <= self.span + self.back:
            speed = clip.duration / (2 * (self.span + self.back))   # too short at this speed: slow down
        cams = list(self.rigs[rng.integers(len(self.rigs))])
        lo = 3 * s.jitter_s + self.back
        t0 = rng.uniform(lo, max(lo, clip.duration / speed - self.span))
        nominal = t0 + self.offsets - self.offsets.min()
        cam_idx = np.arange(V)
        jitter = np.clip(rng.standard_normal(V), -3, 3) * s.jitter_s
        dropped = rng.random(V) < s.drop_prob
        times = np.clip(nominal + jitter, 0.0, clip.duration / speed)
        all_cam, all_times = cam_idx, times
        if self.history:                                             # earlier frames, k = 0 newest
            prev_times, prev_dropped = self._earlier_frames(rng, nominal, clip.duration / speed)
            all_cam = np.concatenate([cam_idx, np.repeat(cam_idx, self.history)])
            all_times = np.concatenate([times, prev_times.ravel()])
        X_all = clip.at(all_times * speed)                           # (V [+ V*K], J, 3)
        if aug is not None:
            X_all = aug.apply(X_all)
        X = X_all[:V]                                                # (V, J, 3)
        obs = observe(cams, all_cam, all_times, X_all, self.noise, self.heatmap, rng)
        hm = render_observations(obs, cam_idx, self.heatmap, self.dtype)     # (V, J, h, w)
        hm[torch.as_tensor(dropped)] = 0
        tgt, vis = _slot_targets(cams, X, obs.affines, self.heatmap.size)
        out = {"heatmaps": hm.numpy(), "P": np.stack([c.P for c in cams]), "affines": obs.affines[:V],
               "times": times - nominal.min(), "valid": ~dropped, "poses": X, "target_uv": tgt,
               "target_visible": vis}
        if self.history:
            out.update(self._history(obs, prev_times - nominal.min(), prev_dropped))
        return out

    def _earlier_frames(self, rng: np.random.Generator, nominal: np.ndarray,
                        end: float) -> tuple[np.ndarray, np.ndarray]:
        """Capture times (V, K) and drops (V, K) of each camera's K earlier frames, one period apart."""
        V, K, s = self.V, self.history, self.schedule
        k = np.arange(1, K + 1)
        prev_nom = nominal[:, None] - k[None, :] * self.period[:, None]         # (V, K)
        prev_jit = np.clip(rng.standard_normal((V, K)), -3, 3) * s.jitter_s
        prev_times = np.clip(prev_nom + prev_jit, 0.0, end)
        prev_dropped = rng.random((V, K)) < s.drop_prob
        return prev_times, prev_dropped

    def _history(self, obs: Observations, prev_times: np.ndarray,
                 prev_dropped: np.ndarray) -> dict[str, np.ndarray]:
        """The earlier frames' entries; their slots follow the V current ones in `obs`."""
        V, K = self.V, self.history
        hp = render_observations(obs, np.arange(V, V + V * K), self.heatmap, self.dtype)
        hp = hp.view(V, K, *hp.shape[1:])                                       # (V, K, J, h, w)
        hp[torch.as_tensor(prev_dropped)] = 0
        return {"prev_heatmaps": hp.numpy(), "prev_affines": obs.affines[V:].reshape(V, K, 2, 3),
                "prev_times": prev_times, "prev_valid": ~prev_dropped}


def _slot_targets(cams: Sequence[Camera], X: np.ndarray, affines: np.ndarray,
                  size: int) -> tuple[np.ndarray, np.ndarray]:
    """The pose at slot i (X (V, J, 3)) projected into camera c's crop (affines[c]): targets
    (V, V, J, 2) heatmap px indexed [c, i], and whether each lies in front and inside (V, V, J)."""
    V = len(cams)
    tgt = np.zeros((V, V, NUM_JOINTS, 2))
    vis = np.zeros((V, V, NUM_JOINTS), dtype=bool)
    for c, cam in enumerate(cams):
        uv_hm = apply_affine(affines[c], cam.project(X))                       # (V slots, J, 2)
        depth = cam.to_camera(X)[..., 2]
        tgt[c] = uv_hm
        vis[c] = (depth > 0.05) & (uv_hm >= -0.5).all(-1) & (uv_hm <= size - 0.5).all(-1)
    return tgt, vis
