"""3D pose error metrics: small pure numpy functions (metres in, metres out).

- absolute MPJPE: mean Euclidean joint error in the world frame;
- root-aligned MPJPE: the prediction translated so its pelvis matches the ground truth
  (translation only), the paper's Human3.6M protocol;
- PA-MPJPE: after the similarity transform (rotation, translation, scale) that best aligns the
  prediction to the ground truth (Umeyama 1991 / Procrustes).

Missing joints are NaN in the prediction; they are excluded from means, which report over the
finite entries only (callers report coverage separately, so a method cannot win by abstaining).
"""
from __future__ import annotations

import numpy as np

from dense_warper_ros.skeleton import PELVIS

ALIGNMENTS = ("none", "root", "procrustes")


def _check(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred, dtype=np.float64), np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape or pred.shape[-1] != 3 or pred.ndim < 2:
        raise ValueError(f"pred and gt must both be (..., J, 3), got {pred.shape} and {gt.shape}")
    return pred, gt


def procrustes_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """pred (..., J, 3) moved by the similarity transform that best fits gt (least squares over the
    joints finite in pred). Poses with fewer than 3 finite joints come back as NaN."""
    pred, gt = _check(pred, gt)
    out = np.full_like(pred, np.nan)
    flat_p, flat_g, flat_o = pred.reshape(-1, *pred.shape[-2:]), gt.reshape(-1, *gt.shape[-2:]), \
        out.reshape(-1, *out.shape[-2:])
    for i, (p, g) in enumerate(zip(flat_p, flat_g)):
        ok = np.isfinite(p).all(-1) & np.isfinite(g).all(-1)
        if ok.sum() < 3:
            continue
        mp, mg = p[ok].mean(0), g[ok].mean(0)
        P, G = p[ok] - mp, g[ok] - mg
        U, S, Vt = np.linalg.svd(P.T @ G)            # cross-covariance, pred -> gt
        D = np.eye(3)
        D[2, 2] = np.sign(np.linalg.det(U @ Vt))     # no reflections
        R = (U @ D @ Vt).T                           # gt ~ s R p + t
        var = (P ** 2).sum()
        s = (S * np.diag(D)).sum() / var if var > 0 else 1.0
        flat_o[i] = (s * (p - mp) @ R.T) + mg
    return out


def joint_errors(pred: np.ndarray, gt: np.ndarray, align: str = "none", root: int = PELVIS) -> np.ndarray:
    """Per-joint Euclidean errors (..., J) after the given alignment ('none', 'root', 'procrustes').
    NaN where the prediction is missing (for 'root': the whole pose when its root is missing)."""
    pred, gt = _check(pred, gt)
    if align == "none":
        aligned = pred
    elif align == "root":
        aligned = pred - pred[..., root:root + 1, :] + gt[..., root:root + 1, :]
    elif align == "procrustes":
        aligned = procrustes_align(pred, gt)
    else:
        raise ValueError(f"Invalid value for align: {align!r}, expected one of {ALIGNMENTS}")
    return np.linalg.norm(aligned - gt, axis=-1)


def _nanmean(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    ok = np.isfinite(x)
    return float(x[ok].mean()) if ok.any() else float("nan")


def mpjpe(pred: np.ndarray, gt: np.ndarray) -> float:
    """Absolute MPJPE over all finite joints."""
    return _nanmean(joint_errors(pred, gt, "none"))


def mpjpe_root_aligned(pred: np.ndarray, gt: np.ndarray, root: int = PELVIS) -> float:
    """MPJPE with the prediction translated so its root matches the ground truth's."""
    return _nanmean(joint_errors(pred, gt, "root", root))


def pa_mpjpe(pred: np.ndarray, gt: np.ndarray) -> float:
    """MPJPE after similarity (Procrustes) alignment per pose."""
    return _nanmean(joint_errors(pred, gt, "procrustes"))


def coverage(pred: np.ndarray) -> float:
    """Fraction of joints (over all poses) with a finite prediction."""
    pred = np.asarray(pred)
    return float(np.isfinite(pred).all(-1).mean()) if pred.size else float("nan")
