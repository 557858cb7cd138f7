"""Confidence-weighted linear triangulation with first-order uncertainty, batched and differentiable.

DLT (Hartley & Zisserman, 2nd ed., 12.2): each view v contributes the rows
    u P_v^3 - P_v^1,   v P_v^3 - P_v^2
of A in A X = 0 (X homogeneous); each row is scaled to unit norm (conditioning, so that pixel and
metre units do not matter) and multiplied by the view's weight; X is the eigenvector of A^T A with
the smallest eigenvalue. Computed in float64 (float32 where the device lacks it).

Uncertainty (H&Z 5.2, first-order propagation): with J_v the 2x3 Jacobian of view v's projection at
X and sigma_v its 2D standard deviation, the information is sum_v J_v^T J_v / sigma_v^2 and the
covariance its inverse, inflated by the residuals' chi^2 per degree of freedom (2n - 3) when that
exceeds 1: the heatmap spread sets the floor, disagreement between views raises it. Weights choose
the estimate; only views with weight > 0 count, and their sigma sets the covariance.

Outlier views (`reject_outlier_views`): a detector that swaps left and right in one view moves that
view's point by the whole distance between the two limbs, and a weighted DLT spreads that error over
the joint. Leave-one-out: the view whose removal leaves the others most consistent is dropped when
its own residual against their point exceeds a threshold, while at least three views remain.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch


class TriangulationResult(NamedTuple):
    points: torch.Tensor              # (..., J, 3) world points; NaN where num_views < 2
    covariance: torch.Tensor          # (..., J, 3, 3) world covariance (m^2); NaN where num_views < 2
    num_views: torch.Tensor           # (..., J) int64, views with weight > 0
    reprojection_error: torch.Tensor  # (..., J) RMS pixel residual over those views; NaN if < 2


def _work_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.float32 if t.device.type == "mps" else torch.float64


def _check(P: torch.Tensor, uv: torch.Tensor, weights: torch.Tensor) -> None:
    if P.shape[-2:] != (3, 4):
        raise ValueError(f"P must be (..., V, 3, 4), got {tuple(P.shape)}")
    if uv.shape[-1] != 2 or uv.dim() < 3:
        raise ValueError(f"uv must be (..., V, J, 2), got {tuple(uv.shape)}")
    if weights.shape != uv.shape[:-1]:
        raise ValueError(f"weights {tuple(weights.shape)} must be uv's leading shape {tuple(uv.shape[:-1])}")
    if P.shape[-3] != uv.shape[-3]:
        raise ValueError(f"P has {P.shape[-3]} views, uv has {uv.shape[-3]}")


def _clean(uv: torch.Tensor, weights: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights clamped >= 0 and zeroed where uv is not finite; uv zeroed there (no NaN * 0)."""
    finite = torch.isfinite(uv).all(-1)
    w = torch.where(finite, weights.to(dtype).clamp_min(0), torch.zeros((), dtype=dtype, device=uv.device))
    uv = torch.where(finite[..., None], uv.to(dtype), torch.zeros((), dtype=dtype, device=uv.device))
    return uv, w


def _dlt(P: torch.Tensor, uv: torch.Tensor, w: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
    """The DLT on cleaned inputs in the working dtype; ok (..., J) marks joints with >= 2 views.
    Returns finite points (0 where not ok)."""
    A = _rows(P, uv, w).movedim(-4, -3).flatten(-3, -2)          # (..., J, 2V, 4)
    M = A.mT @ A                                                  # (..., J, 4, 4)
    # Joints without two views get a harmless matrix so eigh's gradient stays finite.
    safe = torch.diag(torch.tensor([1.0, 2.0, 3.0, 0.0], dtype=M.dtype, device=M.device))
    M = torch.where(ok[..., None, None], M, safe)
    M = M / M.diagonal(dim1=-2, dim2=-1).sum(-1)[..., None, None]
    Xh = torch.linalg.eigh(M)[1][..., :, 0]                       # (..., J, 4) smallest eigenvector
    return Xh[..., :3] / Xh[..., 3:]


def _rows(P: torch.Tensor, uv: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The DLT's two rows per view and joint, unit norm times the weight -> (..., V, J, 2, 4)."""
    Pw = P[..., None, :, :]                                       # (..., V, 1, 3, 4)
    rows = torch.stack([uv[..., 0, None] * Pw[..., 2, :] - Pw[..., 0, :],
                        uv[..., 1, None] * Pw[..., 2, :] - Pw[..., 1, :]], dim=-2)
    return rows * (w[..., None, None] / rows.norm(dim=-1, keepdim=True))


def triangulate_dlt(P: torch.Tensor, uv: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """P (..., V, 3, 4), uv (..., V, J, 2) undistorted image px, weights (..., V, J) >= 0
    -> X (..., J, 3) in P's world units; NaN for joints with fewer than 2 weighted views."""
    _check(P, uv, weights)
    out_dtype = torch.promote_types(P.dtype, uv.dtype)
    dt = _work_dtype(uv)
    uv, w = _clean(uv, weights, dt)
    ok = (w > 0).sum(-2) >= 2                                     # (..., J)
    X = _dlt(P.to(dt), uv, w, ok)
    return torch.where(ok[..., None], X, torch.full_like(X, float("nan"))).to(out_dtype)


_MOTION_TIME_S = 0.1    # time unit of the motion's unknowns (velocity in m per 0.1 s): conditioning


def triangulate_moving(P: torch.Tensor, uv: torch.Tensor, weights: torch.Tensor, dt: torch.Tensor,
                       order: int = 1) -> torch.Tensor:
    """A point moving as X + V dt (+ A dt^2 / 2 with order 2), seen in observations taken at
    different times: the DLT with the motion's 3 (order + 1) unknowns. Why: a rig that does not
    capture at one instant still constrains the trajectory, with no learned motion at all (the
    benchmark's spatio-temporal baseline).

    P (..., F, 3, 4) each observation's camera, uv (..., F, J, 2) undistorted image px, weights
    (..., F, J) >= 0, dt (..., F) seconds from the target instant -> X (..., J, 3) at dt = 0, NaN
    for joints with fewer than 2 (order + 1) weighted observations (the unknowns need them)."""
    _check(P, uv, weights)
    if order not in (0, 1, 2):
        raise ValueError(f"order must be 0, 1 or 2, got {order}")
    if dt.shape != P.shape[:-2]:
        raise ValueError(f"dt {tuple(dt.shape)} must be P's leading shape {tuple(P.shape[:-2])}")
    out_dtype = torch.promote_types(P.dtype, uv.dtype)
    wd = _work_dtype(uv)
    uv, w = _clean(uv, weights, wd)
    ok = (w > 0).sum(-2) >= 2 * (order + 1)                       # (..., J)
    rows = _rows(P.to(wd), uv, w)                                 # (..., F, J, 2, 4)
    a, h = rows[..., :3], rows[..., 3]                            # rows @ [X(dt), 1] = 0
    tau = (dt.to(wd) / _MOTION_TIME_S)[..., None, None, None]     # (..., F, 1, 1, 1)
    A = torch.cat([a * tau ** k / math.factorial(k) for k in range(order + 1)], dim=-1)
    A = A.movedim(-4, -3).flatten(-3, -2)                         # (..., J, 2F, 3 (order + 1))
    b = -h.movedim(-3, -2).flatten(-2, -1)                        # (..., J, 2F)
    # Inhomogeneous least squares (the homogeneous coordinate fixed at 1): the eigenvector form
    # of `_dlt` lets small velocity columns trade against it and goes astray.
    M = A.mT @ A
    eye = torch.eye(M.shape[-1], dtype=wd, device=M.device)
    M = torch.where(ok[..., None, None], M + 1e-12 * M.diagonal(dim1=-2, dim2=-1).sum(-1)[..., None, None] * eye, eye)
    X = torch.linalg.solve(M, (A.mT @ b[..., None]))[..., :3, 0]  # (..., J, 3): position at dt = 0
    return torch.where(ok[..., None], X, torch.full_like(X, float("nan"))).to(out_dtype)


def reject_outlier_views(P: torch.Tensor, uv: torch.Tensor, weights: torch.Tensor,
                         threshold_px: float | torch.Tensor, *, max_drop: int | None = None) -> torch.Tensor:
    """Weights (..., V, J) with outlier views zeroed (module doc); the others keep their gradient.

    P (..., V, 3, 4), uv (..., V, J, 2) undistorted image px, weights (..., V, J) >= 0,
    threshold_px: image px, a float or a tensor broadcastable to (..., V, J) (a per-view
    threshold, e.g. a fixed number of heatmap px divided by each crop's scale).
    A joint loses at most `max_drop` views (default V - 2) and never goes below 2.
    """
    _check(P, uv, weights)
    V = uv.shape[-3]
    rounds = V - 2 if max_drop is None else min(max_drop, V - 2)
    with torch.no_grad():
        dt = _work_dtype(uv)
        uv_c, w = _clean(uv.detach(), weights.detach(), dt)
        Pd = P.detach().to(dt)
        thr = torch.as_tensor(threshold_px, dtype=dt, device=uv.device).expand_as(w)
        keep = torch.ones_like(w, dtype=torch.bool)
        others = ~torch.eye(V, dtype=torch.bool, device=uv.device)[..., None]   # (L, V, 1): view L left out
        P_l = Pd.unsqueeze(-4).expand(*Pd.shape[:-3], V, V, 3, 4)               # (..., L, V, 3, 4)
        uv_l = uv_c.unsqueeze(-4).expand(*uv_c.shape[:-3], V, *uv_c.shape[-3:])  # (..., L, V, J, 2)
        for _ in range(rounds):
            wk = torch.where(keep, w, torch.zeros_like(w))
            used = wk > 0
            n = used.sum(-2)                                               # (..., J)
            X = _dlt(Pd, uv_c, wk, n >= 2)
            r = ((uv_c - projection_jacobians(Pd, X)[0]) ** 2).sum(-1).sqrt()   # (..., V, J)
            suspect = (n >= 3) & (used & (r > thr)).any(-2)                # (..., J)
            if not suspect.any():
                break
            w_l = wk.unsqueeze(-3) * others.to(dt)                         # (..., L, V, J)
            X_l = _dlt(P_l, uv_l, w_l, (w_l > 0).sum(-2) >= 2)              # (..., L, J, 3)
            r2_l = ((uv_l - projection_jacobians(P_l, X_l)[0]) ** 2).sum(-1)   # (..., L, V, J)
            used_l = w_l > 0
            rest = torch.where(used_l, r2_l, torch.zeros_like(r2_l)).sum(-2) / used_l.sum(-2).clamp_min(1)
            rest = torch.where(used, rest, torch.full_like(rest, float("inf")))   # (..., L, J)
            worst = rest.argmin(-2, keepdim=True)                          # (..., 1, J)
            own = r2_l.diagonal(dim1=-3, dim2=-2).movedim(-1, -2).sqrt()   # (..., V, J) view v vs the rest
            drop = suspect & (own.gather(-2, worst) > thr.gather(-2, worst)).squeeze(-2)
            if not drop.any():
                break
            views = torch.arange(V, device=uv.device)[:, None]              # (V, 1)
            keep = keep & ~((views == worst) & drop.unsqueeze(-2))
    return torch.where(keep, weights, torch.zeros_like(weights))


def projection_jacobians(P: torch.Tensor, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """P (..., V, 3, 4), X (..., J, 3) -> projections (..., V, J, 2) and Jacobians d uv / d X
    (..., V, J, 2, 3)."""
    Xh = torch.cat([X, torch.ones_like(X[..., :1])], dim=-1)[..., None, :, :]   # (..., 1, J, 4)
    x = Xh @ P.transpose(-1, -2)                                  # (..., V, J, 3)
    uv = x[..., :2] / x[..., 2:3]
    M = P[..., None, :, :3]                                       # (..., V, 1, 3, 3)
    Jac = (M[..., :2, :] - uv[..., :, None] * M[..., 2:3, :]) / x[..., 2, None, None]
    return uv, Jac


def triangulate_with_uncertainty(P: torch.Tensor, uv: torch.Tensor, weights: torch.Tensor,
                                 sigma_px: torch.Tensor) -> TriangulationResult:
    """DLT point plus covariance, view count and reprojection error (see module doc).

    P (..., V, 3, 4), uv (..., V, J, 2) undistorted image px, weights (..., V, J) >= 0,
    sigma_px (..., V, J) > 0 per-view 2D standard deviation in image px.
    """
    _check(P, uv, weights)
    if sigma_px.shape != weights.shape:
        raise ValueError(f"sigma_px {tuple(sigma_px.shape)} must match weights {tuple(weights.shape)}")
    out_dtype = torch.promote_types(P.dtype, uv.dtype)
    dt = _work_dtype(uv)
    uv_c, w = _clean(uv, weights, dt)
    used = w > 0                                                  # (..., V, J)
    n = used.sum(-2)                                              # (..., J)
    ok = n >= 2
    Pd = P.to(dt)
    X = _dlt(Pd, uv_c, w, ok)                                     # (..., J, 3), finite
    proj, Jac = projection_jacobians(Pd, X)                       # (..., V, J, 2), (..., V, J, 2, 3)
    r2 = ((uv_c - proj) ** 2).sum(-1)                              # (..., V, J)
    r2 = torch.where(used, r2, torch.zeros_like(r2))
    sig = sigma_px.to(dt).clamp_min(1e-6)
    inv_var = torch.where(used, sig ** -2, torch.zeros_like(sig))  # (..., V, J)
    info = (Jac.transpose(-1, -2) @ Jac * inv_var[..., None, None]).sum(-4)   # (..., J, 3, 3)
    eye = torch.eye(3, dtype=dt, device=info.device)
    info = torch.where(ok[..., None, None], info, eye)
    cov = torch.linalg.inv(info)
    dof = (2 * n - 3).clamp_min(1).to(dt)
    chi2 = (r2 * inv_var).sum(-2)                                  # (..., J)
    cov = cov * (chi2 / dof).clamp_min(1.0)[..., None, None]
    rms = (r2.sum(-2) / n.clamp_min(1).to(dt)).clamp_min(1e-24).sqrt()   # finite gradient at 0
    nan = torch.tensor(float("nan"), dtype=dt, device=cov.device)
    cov = torch.where(ok[..., None, None], cov, nan)
    rms = torch.where(ok, rms, nan)
    X = torch.where(ok[..., None], X, nan)
    return TriangulationResult(X.to(out_dtype), cov.to(out_dtype), n, rms.to(out_dtype))
