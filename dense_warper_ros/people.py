"""2D people: what a detector (ours or a user's) says about one frame, and its heatmaps.

A `Person2D` is one person in one image: Human3.6M-17 keypoints in image pixels (the image as
captured, distorted) with a confidence per joint. Detectors that speak COCO-17 (MoveNet, YOLO-pose,
OpenPose's body-17 subset) convert with `from_coco`; the derived H36M joints (pelvis, spine, thorax,
head top) are built the way the MoveNet adapter builds them.

Keypoints become heatmaps the way the synthetic benchmark renders them (`render_keypoints`):
Gaussians of `sigma` heatmap px, peak = each joint's confidence, in a crop; a joint below
`min_score` is an all-zero channel. The crop is the model's own (a 2 m box around the person's 3D
root, `cameras.root_crop_affine`) once the person belongs to a track; without one, the square
around its keypoints (`render_person`), which shrinks when joints are hidden.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from dense_warper_ros.cameras import apply_affine, crop_affine
from dense_warper_ros.heatmaps import render_gaussians
from dense_warper_ros.skeleton import NUM_JOINTS

LAYOUTS = ("h36m17", "coco17")


@dataclass(frozen=True)
class Person2D:
    """One person seen in one image."""

    keypoints: np.ndarray                      # (17, 2) image px, H36M-17; NaN: not seen
    scores: np.ndarray                         # (17,) confidence in [0, 1]
    score: float = 1.0                         # the detection's own confidence
    heatmaps: torch.Tensor | None = None       # (17, h, w) when a backbone produced them
    affine: np.ndarray | None = None           # (2, 3) image -> heatmap px, with `heatmaps`
    extra: dict = field(default_factory=dict, compare=False)   # e.g. the detector's box

    def __post_init__(self) -> None:
        kp = np.asarray(self.keypoints, dtype=np.float64)
        sc = np.asarray(self.scores, dtype=np.float64)
        if kp.shape != (NUM_JOINTS, 2) or sc.shape != (NUM_JOINTS,):
            raise ValueError(f"a person needs ({NUM_JOINTS}, 2) keypoints and ({NUM_JOINTS},) scores, "
                             f"got {kp.shape} and {sc.shape}")
        sc = np.where(np.isfinite(sc) & np.isfinite(kp).all(1), np.clip(sc, 0.0, 1.0), 0.0)
        object.__setattr__(self, "keypoints", kp)
        object.__setattr__(self, "scores", sc)

    def confident(self, min_score: float) -> np.ndarray:
        """(17,) bool: joints seen with at least `min_score`."""
        return self.scores >= min_score

    def box(self, min_score: float = 0.2) -> np.ndarray | None:
        """(x0, y0, x1, y1) around the confident joints, None with fewer than two."""
        pts = self.keypoints[self.confident(min_score)]
        if len(pts) < 2:
            return None
        return np.concatenate([pts.min(0), pts.max(0)])

    def size(self, min_score: float = 0.2) -> float:
        """The person's extent in px (diagonal of the confident joints' box); 0 when unknown."""
        b = self.box(min_score)
        return 0.0 if b is None else float(np.hypot(b[2] - b[0], b[3] - b[1]))


def from_coco(keypoints: np.ndarray, scores: np.ndarray, *, score: float = 1.0, **kw) -> Person2D:
    """COCO-17 (17, 2) px + (17,) confidences -> H36M-17 `Person2D` (derived joints as MoveNet's)."""
    from dense_warper_ros.backbones.adapter import coco_to_h36m_keypoints
    coco = np.concatenate([np.asarray(keypoints, np.float64), np.asarray(scores, np.float64)[:, None]], 1)
    coco = np.where(np.isfinite(coco), coco, 0.0)
    h36m = coco_to_h36m_keypoints(torch.from_numpy(coco)).numpy()
    return Person2D(keypoints=h36m[:, :2], scores=h36m[:, 2], score=score, **kw)


def person_affine(person: Person2D, size: int, *, margin: float = 1.15, min_score: float = 0.2,
                  min_side: float = 16.0) -> np.ndarray | None:
    """(2, 3) image -> heatmap affine of the square crop around the person (None: too few joints)."""
    b = person.box(min_score)
    if b is None:
        return None
    side = max(float(max(b[2] - b[0], b[3] - b[1])) * margin, min_side)
    return crop_affine(((b[0] + b[2]) / 2, (b[1] + b[3]) / 2), side, size)


def render_keypoints(person: Person2D, A: np.ndarray, size: int, sigma: float, *,
                     min_score: float = 0.2) -> torch.Tensor:
    """Heatmaps (17, size, size) of the keypoints in the crop of affine A (image -> heatmap px):
    Gaussians of `sigma` px, peak = the joint's confidence, zero for joints below `min_score`."""
    uv = torch.from_numpy(apply_affine(A, person.keypoints)).float()      # (17, 2) heatmap px
    ok = torch.from_numpy(person.confident(min_score))
    hm = render_gaussians(uv, size, sigma, valid=ok)                       # (17, size, size)
    return hm * torch.from_numpy(person.scores).float()[:, None, None]


def render_person(person: Person2D, size: int, sigma: float, *, min_score: float = 0.2,
                  margin: float = 1.15) -> tuple[torch.Tensor, np.ndarray] | None:
    """Heatmaps (17, size, size) and their (2, 3) affine in the square crop around the person's
    keypoints; None when the person has fewer than two confident joints."""
    A = person_affine(person, size, margin=margin, min_score=min_score)
    if A is None:
        return None
    return render_keypoints(person, A, size, sigma, min_score=min_score), A
