"""An evidence bank's 2D points, picked by slot, and their linear triangulation: DLT
(`triangulation.triangulate_dlt`) weighted by each point's heatmap peak. Shared by the real video's
pseudo ground truth (`data.video`) and the accuracy benchmark's methods (`eval.baselines`), so that
both triangulate the same way. Slot index -1 means "no frame"."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from dense_warper_ros.skeleton import NUM_JOINTS
from dense_warper_ros.triangulation import reject_outlier_views, triangulate_dlt

if TYPE_CHECKING:
    from dense_warper_ros.data.evidence import EvidenceBank


def gather_points(bank: EvidenceBank, sel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Slot indices (..., V) -> 2D points (..., V, J, 2) image px and weights (..., V, J) (0: none)."""
    safe = np.maximum(sel, 0)
    uv = bank.uv[safe]
    w = np.where((sel >= 0)[..., None], bank.conf[safe], 0.0)
    return uv, w


def triangulate(P: np.ndarray, uv: np.ndarray, w: np.ndarray, threshold_px: np.ndarray | None = None) -> np.ndarray:
    """P (V, 3, 4), uv (T, V, J, 2), w (T, V, J) -> (T, J, 3), NaN where < 2 views.
    threshold_px (T, V, 1) image px: drop outlier views first (`triangulation.reject_outlier_views`),
    or None."""
    if len(uv) == 0:
        return np.zeros((0, NUM_JOINTS, 3))
    Pt = torch.as_tensor(P, dtype=torch.float64).expand(len(uv), *P.shape)
    uv_t, w_t = torch.as_tensor(uv, dtype=torch.float64), torch.as_tensor(w, dtype=torch.float64)
    if threshold_px is not None:
        w_t = reject_outlier_views(Pt, uv_t, w_t, torch.as_tensor(threshold_px, dtype=torch.float64))
    return triangulate_dlt(Pt, uv_t, w_t).numpy()
