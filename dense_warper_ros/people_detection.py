"""Images to 2D people, top-down: a person detector finds boxes, the single-person backbone refines
each box into heatmaps and keypoints, all boxes of an image in one batch.

The detector (MoveNet MultiPose) sees the whole frame at 256 px, so far people get few pixels; the
backbone's crop gives each person its full input resolution, and its heatmaps are what DenseWarper
fuses. Shared by the multi-person pipeline (which adds crops from its tracks) and the 2D node of the
split layout (no tracks: the detector on every frame).
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from dense_warper_ros.people import Person2D, from_coco

Detector = Callable[[np.ndarray], list]    # RGB image -> detections (.keypoints COCO (17, 2), .scores, .box, .score)


def square_box(lo: np.ndarray, hi: np.ndarray, margin: float) -> np.ndarray:
    """(x0, y0, x1, y1) square around the box lo..hi, side x `margin`."""
    c, side = (lo + hi) / 2, float((hi - lo).max()) * margin
    return np.array([c[0] - side / 2, c[1] - side / 2, c[0] + side / 2, c[1] + side / 2])


def iou(a: np.ndarray, b: np.ndarray) -> float:
    lo, hi = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    inter = float(np.prod(np.clip(hi - lo, 0, None)))
    union = float(np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2])) - inter
    return inter / union if union > 0 else 0.0


def detection_boxes(detections: Sequence, *, min_score: float, margin: float,
                    covered: Sequence[np.ndarray] = (), max_iou: float = 0.3) -> list[np.ndarray]:
    """Crop boxes for the detected people that no box in `covered` (tracked people) already holds."""
    out: list[np.ndarray] = []
    for d in detections:
        box = from_coco(d.keypoints, d.scores, score=d.score).box(min_score)
        if box is None:
            continue
        box = square_box(box[:2], box[2:], margin)
        if all(iou(box, c) <= max_iou for c in list(covered) + out):
            out.append(box)
    return out


def crop_people(backbone, image_rgb: np.ndarray, boxes: Sequence[np.ndarray],
                device: torch.device | str = "cpu") -> list[Person2D]:
    """One backbone batch over the boxes of one image (a NaN box: the whole frame) -> people."""
    if not boxes:
        return []
    out = backbone([image_rgb] * len(boxes), np.stack(boxes))
    kp = out.keypoints                                                    # (B, 17, 3) image px + score
    return [Person2D(keypoints=kp[i, :, :2], scores=kp[i, :, 2], score=float(np.mean(kp[i, :, 2])),
                     heatmaps=out.heatmaps[i].to(device), affine=np.asarray(out.affines[i]),
                     extra={"box": np.asarray(boxes[i], dtype=np.float64)})
            for i in range(len(boxes))]


class PeopleDetector:
    """Detector + backbone: every person in an image, each refined in its own crop."""

    def __init__(self, detector: Detector, backbone, *, min_score: float = 0.3, margin: float = 1.3):
        self.detector = detector
        self.backbone = backbone
        self.min_score = min_score
        self.margin = margin

    def __call__(self, image_rgb: np.ndarray) -> list[Person2D]:
        boxes = detection_boxes(self.detector(image_rgb), min_score=self.min_score, margin=self.margin)
        return crop_people(self.backbone, image_rgb, boxes)
