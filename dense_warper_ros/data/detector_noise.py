"""A detector-like noise model for synthetic 2D keypoints.

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

`data.evidence.observe` applies it to projected ground truth.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from dense_warper_ros.data.rigs import config_from_dict
from dense_warper_ros.skeleton import H36M_FLIP_PAIRS, NUM_JOINTS


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


def noise_from_dict(data: Mapping[str, Any] | None) -> NoiseConfig:
    return config_from_dict(NoiseConfig, data, "noise")


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
