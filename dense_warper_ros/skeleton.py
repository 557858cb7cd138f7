"""Skeleton conventions shared by every module: Human3.6M-17 and the COCO-17 mapping.

The model, the benchmark and the messages all speak Human3.6M-17, the paper's joint set (the 17
joints of its Human3.6M evaluation, in `H36M_JOINTS` order).
MoveNet speaks COCO-17; `COCO_TO_H36M` says which COCO joint feeds each H36M joint directly, and the
derived joints (pelvis, spine, thorax, head) are built by `coco_to_h36m_points`.
"""
from __future__ import annotations

import numpy as np

FORMAT_NAME = "h36m17"

H36M_JOINTS: tuple[str, ...] = (
    "pelvis", "r_hip", "r_knee", "r_ankle", "l_hip", "l_knee", "l_ankle", "spine", "thorax",
    "neck_nose", "head", "l_shoulder", "l_elbow", "l_wrist", "r_shoulder", "r_elbow", "r_wrist",
)
NUM_JOINTS = len(H36M_JOINTS)
H36M_PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
# (child, parent) pairs: one bone per non-root joint, in joint order.
H36M_BONES: tuple[tuple[int, int], ...] = tuple(
    (j, p) for j, p in enumerate(H36M_PARENTS) if p >= 0)
# Left/right joint pairs, for mirroring augmentation and swap noise.
H36M_FLIP_PAIRS: tuple[tuple[int, int], ...] = ((1, 4), (2, 5), (3, 6), (11, 14), (12, 15), (13, 16))
PELVIS = 0

COCO_JOINTS: tuple[str, ...] = (
    "nose", "l_eye", "r_eye", "l_ear", "r_ear", "l_shoulder", "r_shoulder", "l_elbow", "r_elbow",
    "l_wrist", "r_wrist", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle",
)
# H36M joint index -> COCO joint index, for joints that exist in both.
COCO_TO_H36M: dict[int, int] = {
    1: 12, 2: 14, 3: 16, 4: 11, 5: 13, 6: 15, 9: 0,
    11: 5, 12: 7, 13: 9, 14: 6, 15: 8, 16: 10,
}


def flip_permutation() -> np.ndarray:
    """Joint permutation that swaps left and right (for mirroring)."""
    perm = np.arange(NUM_JOINTS)
    for a, b in H36M_FLIP_PAIRS:
        perm[a], perm[b] = b, a
    return perm


def bone_lengths(joints: np.ndarray) -> np.ndarray:
    """(..., 17, D) joints -> (..., 16) bone lengths, in the order of `H36M_BONES`."""
    child = np.array([c for c, _ in H36M_BONES])
    parent = np.array([p for _, p in H36M_BONES])
    return np.linalg.norm(joints[..., child, :] - joints[..., parent, :], axis=-1)
