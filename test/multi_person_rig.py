"""A small two-person keypoint rig for the multi-person DDS tests: the default 4-camera ring, two
held-out motion clips placed apart, every frame's people projected with a little pixel noise and
shuffled (no identity leaks through their order)."""
from __future__ import annotations

import numpy as np

from dense_warper_ros.data import motion
from dense_warper_ros.data.recording import Recording
from dense_warper_ros.data.rigs import make_rig
from dense_warper_ros.people import Person2D

T0_NS = 1_700_000_000_000_000_000
OFFSETS = (np.array([-0.9, -0.3, 0.0]), np.array([0.9, 0.4, 0.0]))


def truth_at(t: float) -> list[np.ndarray]:
    """The two people's (17, 3) poses at t s (clips held at their last frame after they end)."""
    clips = [motion.load_clip(n) for n in ("walk", "dance_b")]
    return [c.at(np.array([min(t, c.duration)]))[0] + o for c, o in zip(clips, OFFSETS)]


def two_person_frames(seconds: float = 1.2, rate_hz: float = 60.0, noise_px: float = 1.5, seed: int = 0):
    """(recording with the rig's cameras and the frames' stamps, per frame the list of Person2D)."""
    cams = make_rig()
    rng = np.random.default_rng(seed)
    frames, people = [], []
    for k in range(int(seconds * rate_hz)):
        c, t = k % len(cams), k / rate_hz
        seen = [Person2D(keypoints=cams[c].project(X) + rng.normal(0, noise_px, (17, 2)),
                         scores=rng.uniform(0.7, 1.0, 17)) for X in truth_at(t)]
        rng.shuffle(seen)
        frames.append((c, T0_NS + int(round(t * 1e9)), np.zeros((1, 1, 3), np.uint8)))
        people.append(seen)
    rec = Recording(names=[f"cam{c}" for c in range(len(cams))], cameras=cams, frames=frames)
    return rec, people


def nearest_truth(points: np.ndarray, stamp_ns: int) -> tuple[int, float]:
    """(index of the truth person nearest to `points`, its mean joint error in mm)."""
    errs = [float(np.nanmean(np.linalg.norm(points - X, axis=1))) * 1000 for X in truth_at((stamp_ns - T0_NS) * 1e-9)]
    return int(np.argmin(errs)), min(errs)
