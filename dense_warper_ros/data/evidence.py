"""Synthetic 2D evidence: heatmaps of projected ground truth, with a detector-like noise model.

Why a noise model and not white noise: a real 2D detector errs the same way on consecutive frames
(the error follows the image content, which changes slowly), has a per-joint bias, and now and then
swaps left and right or misses a joint. White noise would flatter any method that averages over
time. Per camera and joint, the observed keypoint is

    uv_obs(t) = uv_true(t) + b + e(t),      b ~ N(0, bias_px^2)            constant per (camera, joint)
                                           e: Ornstein-Uhlenbeck, stationary std jitter_px,
                                              correlation time jitter_tau_s (sampled at any times)

then a left/right pair may be swapped and a joint missed, each a two-state Markov chain in
continuous time (stationary probability, mean episode length). Pixel values are for an image
`reference_px` wide and scale with the camera's width. Defaults: 3 px (time-correlated) and 2 px
(bias) per axis, about 5 px RMS in total at 1000 px, close to a good 2D detector.

Heatmaps follow the method's crop (`cameras.root_crop_affine`): a 2 m box around the root projected
into the image at the root's depth, resampled to `size` x `size`; the crop affine (image -> heatmap
px) travels with the heatmaps. Unit-peak Gaussians are rendered with `heatmaps.render_gaussians`; a
missed or out-of-image joint is an all-zero channel.

Two consumers:
- the benchmark: an `EvidenceBank` holds every capture slot any method may use, so all methods see
  the very same noise draws (same slot -> same heatmap);
- training: `synthetic_windows` yields batches of interleaved windows as tensors.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import torch

from dense_warper_ros.cameras import Camera, apply_affine, invert_affine, root_crop_affine
from dense_warper_ros.data.motion import DEFAULT_AUGMENT, AugmentConfig, MotionClip, sample_augmentation
from dense_warper_ros.data.rigs import config_from_dict
from dense_warper_ros.data.schedules import ScheduleConfig
from dense_warper_ros.heatmaps import render_gaussians, soft_argmax
from dense_warper_ros.skeleton import H36M_FLIP_PAIRS, NUM_JOINTS, PELVIS


@dataclass(frozen=True)
class NoiseConfig:
    """Detector noise. Pixel values are for an image `reference_px` wide (scaled by width)."""

    reference_px: float = 1000.0
    jitter_px: float = 3.0            # per-axis stationary std of the time-correlated error
    jitter_tau_s: float = 0.15        # its correlation time (e(t), e(t + tau) correlate by 1/e)
    bias_px: float = 2.0              # per-axis std of the constant per-(camera, joint) offset
    swap_prob: float = 0.01           # stationary probability that a left/right pair is swapped
    swap_mean_s: float = 0.1          # mean length of a swap episode
    miss_prob: float = 0.02           # stationary probability that a joint is missed
    miss_mean_s: float = 0.1          # mean length of a miss episode
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("reference_px", "jitter_tau_s", "swap_mean_s", "miss_mean_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"noise: {name} must be > 0, got {getattr(self, name)}")
        for name in ("jitter_px", "bias_px"):
            if getattr(self, name) < 0:
                raise ValueError(f"noise: {name} must be >= 0, got {getattr(self, name)}")
        for name in ("swap_prob", "miss_prob"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"noise: {name} must be in [0, 1), got {getattr(self, name)}")

    @classmethod
    def noiseless(cls) -> "NoiseConfig":
        return cls(jitter_px=0.0, bias_px=0.0, swap_prob=0.0, miss_prob=0.0)


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


def noise_from_dict(data: Mapping[str, Any] | None) -> NoiseConfig:
    return config_from_dict(NoiseConfig, data, "noise")


def heatmap_from_dict(data: Mapping[str, Any] | None) -> HeatmapConfig:
    return config_from_dict(HeatmapConfig, data, "heatmap")


# --- noise processes --------------------------------------------------------------------------
def _two_state_chain(rng: np.random.Generator, times: np.ndarray, shape: tuple[int, ...],
                     prob: float, mean_s: float) -> np.ndarray:
    """(n, *shape) bool samples at sorted `times` of a continuous-time on/off chain with stationary
    P(on) = prob and mean on-time mean_s (so any sampling of the same chain is consistent)."""
    out = np.zeros((len(times),) + shape, dtype=bool)
    if prob <= 0 or len(times) == 0:
        return out
    rate = 1.0 / mean_s / (1.0 - prob)            # total rate: 1/mean_on + 1/mean_off
    state = rng.random(shape) < prob
    out[0] = state
    for i in range(1, len(times)):
        decay = np.exp(-rate * max(times[i] - times[i - 1], 0.0))
        p_on = np.where(state, prob + (1 - prob) * decay, prob * (1 - decay))
        state = rng.random(shape) < p_on
        out[i] = state
    return out


def _ou(rng: np.random.Generator, times: np.ndarray, shape: tuple[int, ...], std: float,
        tau: float) -> np.ndarray:
    """(n, *shape) samples at sorted `times` of a stationary Ornstein-Uhlenbeck process."""
    out = np.zeros((len(times),) + shape)
    if std <= 0 or len(times) == 0:
        return out
    x = rng.standard_normal(shape) * std
    out[0] = x
    for i in range(1, len(times)):
        a = np.exp(-max(times[i] - times[i - 1], 0.0) / tau)
        x = a * x + np.sqrt(1 - a * a) * std * rng.standard_normal(shape)
        out[i] = x
    return out


def detector_noise(rng: np.random.Generator, times: np.ndarray, noise: NoiseConfig,
                   scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One camera's detector errors at sorted times (n,): offset (n, J, 2) px, swapped (n, P) bool
    per flip pair, missed (n, J) bool. `scale` converts reference pixels to this camera's."""
    J, P = NUM_JOINTS, len(H36M_FLIP_PAIRS)
    bias = rng.standard_normal((J, 2)) * noise.bias_px
    offset = (_ou(rng, times, (J, 2), noise.jitter_px, noise.jitter_tau_s) + bias) * scale
    swapped = _two_state_chain(rng, times, (P,), noise.swap_prob, noise.swap_mean_s)
    missed = _two_state_chain(rng, times, (J,), noise.miss_prob, noise.miss_mean_s)
    return offset, swapped, missed


def swap_pairs(x: np.ndarray, swapped: np.ndarray) -> np.ndarray:
    """Exchange left/right joints where swapped: x (n, J, ...), swapped (n, P) -> (n, J, ...)."""
    out = x.copy()
    for p, (a, b) in enumerate(H36M_FLIP_PAIRS):
        s = swapped[:, p]
        out[s, a], out[s, b] = x[s, b], x[s, a]
    return out


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


# --- training windows -------------------------------------------------------------------------
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
    V = len(rigs[0])
    if any(len(r) != V for r in rigs):
        raise ValueError(f"all rigs must have the same number of cameras, got {[len(r) for r in rigs]}")
    offsets = schedule.offsets(V)
    span = float(offsets.max() - offsets.min()) + 4 * schedule.jitter_s
    period = 1.0 / schedule.rates(V)                                     # (V,) s per camera
    back = history * float(period.max())                                 # room for earlier frames
    keys = ["heatmaps", "P", "affines", "times", "valid", "poses", "target_uv", "target_visible"]
    if history:
        keys += ["prev_heatmaps", "prev_affines", "prev_times", "prev_valid"]
    durations = np.array([c.duration for c in clips])
    while True:
        batch: dict[str, list[np.ndarray]] = {k: [] for k in keys}
        for _ in range(batch_size):
            clip = clips[rng.choice(len(clips), p=durations / durations.sum())]
            aug = sample_augmentation(rng, augment) if augment is not None else None
            speed = aug.speed if aug is not None else 1.0
            if clip.duration / speed <= span + back:
                speed = clip.duration / (2 * (span + back))  # too short at this speed: slow down
            cams = list(rigs[rng.integers(len(rigs))])
            lo = 3 * schedule.jitter_s + back
            t0 = rng.uniform(lo, max(lo, clip.duration / speed - span))
            nominal = t0 + offsets - offsets.min()
            cam_idx = np.arange(V)
            jitter = np.clip(rng.standard_normal(V), -3, 3) * schedule.jitter_s
            dropped = rng.random(V) < schedule.drop_prob
            times = np.clip(nominal + jitter, 0.0, clip.duration / speed)
            all_cam, all_times = cam_idx, times
            if history:                                                  # earlier frames, k = 0 newest
                k = np.arange(1, history + 1)
                prev_nom = nominal[:, None] - k[None, :] * period[:, None]             # (V, K)
                prev_jit = np.clip(rng.standard_normal((V, history)), -3, 3) * schedule.jitter_s
                prev_times = np.clip(prev_nom + prev_jit, 0.0, clip.duration / speed)
                prev_dropped = rng.random((V, history)) < schedule.drop_prob
                all_cam = np.concatenate([cam_idx, np.repeat(cam_idx, history)])
                all_times = np.concatenate([times, prev_times.ravel()])
            X_all = clip.at(all_times * speed)                           # (V [+ V*K], J, 3)
            if aug is not None:
                X_all = aug.apply(X_all)
            X = X_all[:V]                                                # (V, J, 3)
            obs = observe(cams, all_cam, all_times, X_all, noise, heatmap, rng)
            hm = render_observations(obs, cam_idx, heatmap, dtype)       # (V, J, h, w)
            hm[torch.as_tensor(dropped)] = 0
            if history:
                prev_idx = np.arange(V, V + V * history)
                hp = render_observations(obs, prev_idx, heatmap, dtype).view(V, history, *hm.shape[1:])
                hp[torch.as_tensor(prev_dropped)] = 0
                batch["prev_heatmaps"].append(hp.numpy())
                batch["prev_affines"].append(obs.affines[V:].reshape(V, history, 2, 3))
                batch["prev_times"].append(prev_times - nominal.min())
                batch["prev_valid"].append(~prev_dropped)
            P = np.stack([c.P for c in cams])
            # targets: pose at slot i projected into camera c, in camera c's crop
            tgt = np.zeros((V, V, NUM_JOINTS, 2))
            vis = np.zeros((V, V, NUM_JOINTS), dtype=bool)
            for c, cam in enumerate(cams):
                uv = cam.project(X)                                      # (V slots, J, 2)
                uv_hm = apply_affine(obs.affines[c], uv)
                depth = cam.to_camera(X)[..., 2]
                tgt[c] = uv_hm
                vis[c] = ((depth > 0.05) & (uv_hm >= -0.5).all(-1) & (uv_hm <= heatmap.size - 0.5).all(-1))
            batch["heatmaps"].append(hm.numpy())
            batch["P"].append(P)
            batch["affines"].append(obs.affines[:V])
            batch["times"].append(times - nominal.min())
            batch["valid"].append(~dropped)
            batch["poses"].append(X)
            batch["target_uv"].append(tgt)
            batch["target_visible"].append(vis)
        out = {}
        for k, v in batch.items():
            arr = np.stack(v)
            out[k] = torch.as_tensor(arr) if arr.dtype == bool else torch.as_tensor(arr, dtype=dtype)
        yield out
