"""Project -> triangulate round trips, graceful degradation, honest covariance, gradients."""
import pytest
import torch

from dense_warper_ros import cameras as C
from dense_warper_ros.data.rigs import ring_rig
from dense_warper_ros.triangulation import (projection_jacobians, reject_outlier_views, triangulate_dlt,
                                            triangulate_moving, triangulate_with_uncertainty)


from torch_threads import one_torch_thread  # noqa: E402,F401  (autouse fixture)


@pytest.fixture(scope="module")
def scene():
    cams = ring_rig(4, radius_m=4.5, focal_px=1150.0)   # the scene the noise tolerances below fit
    P = C.projection_matrices(cams, dtype=torch.float64)             # (V, 3, 4)
    g = torch.Generator().manual_seed(0)
    centre = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    X = torch.randn(3, 17, 3, generator=g, dtype=torch.float64) * 0.4 + centre
    uv = C.project_points(P[None], X[:, None])                      # (B, V, J, 2)
    return P[None].expand(3, -1, -1, -1), X, uv


def _err(Xa, Xb):
    return (Xa - Xb).norm(dim=-1)


def test_exact_recovery(scene):
    P, X, uv = scene
    w = torch.ones(uv.shape[:-1], dtype=torch.float64)
    assert _err(triangulate_dlt(P, uv, w), X).max() < 1e-6
    w2 = torch.rand(uv.shape[:-1], dtype=torch.float64) + 0.1      # any positive weights: still exact
    assert _err(triangulate_dlt(P, uv, w2), X).max() < 1e-6
    two = w.clone()
    two[:, 1:3] = 0                                                 # only 2 of 4 views
    assert _err(triangulate_dlt(P, uv, two), X).max() < 1e-6


def test_float32_inputs(scene):
    P, X, uv = scene
    Xf = triangulate_dlt(P.float(), uv.float(), torch.ones(uv.shape[:-1]))
    assert Xf.dtype == torch.float32
    assert _err(Xf.double(), X).max() < 1e-4                         # float32 projection matrices


def test_degrades_gracefully_with_noise_and_missing_view(scene):
    P, X, uv = scene
    g = torch.Generator().manual_seed(1)
    w = torch.ones(uv.shape[:-1], dtype=torch.float64)
    errs = {}
    for sigma in (0.5, 1.0, 2.0, 4.0):
        noisy = uv + sigma * torch.randn(uv.shape, generator=g, dtype=torch.float64)
        errs[sigma] = _err(triangulate_dlt(P, noisy, w), X).mean().item()
        drop = w.clone()
        drop[:, 2] = 0
        errs[(sigma, "3 views")] = _err(triangulate_dlt(P, noisy, drop), X).mean().item()
    # ~linear in the noise: 1 px at 4.5 m with f = 1150 px is ~4 mm
    for s in (0.5, 1.0, 2.0, 4.0):
        assert errs[s] < 5e-3 * s, errs
        assert errs[(s, "3 views")] < 6e-3 * s, errs
    assert errs[0.5] < errs[2.0] < errs[4.0]
    assert errs[(4.0, "3 views")] > errs[4.0] * 0.9                  # fewer views: not better


def test_weights_downweight_an_outlier_view(scene):
    P, X, uv = scene
    bad = uv.clone()
    bad[:, 0] += 25.0                                               # view 0 is 25 px off
    w = torch.ones(uv.shape[:-1], dtype=torch.float64)
    e_equal = _err(triangulate_dlt(P, bad, w), X).mean()
    w[:, 0] = 0.05
    e_low = _err(triangulate_dlt(P, bad, w), X).mean()
    assert e_low < 0.2 * e_equal


def test_too_few_views_give_nan_without_poisoning(scene):
    P, X, uv = scene
    uv = uv.clone()
    w = torch.ones(uv.shape[:-1], dtype=torch.float64)
    w[:, 1:, 5] = 0                                                 # joint 5: one view
    w[:, :, 6] = 0                                                  # joint 6: none
    uv[:, 1:, 5] = float("nan")                                     # unused coordinates may be NaN
    res = triangulate_with_uncertainty(P, uv, w, torch.ones_like(w))
    assert torch.isnan(res.points[:, 5]).all() and torch.isnan(res.points[:, 6]).all()
    assert (res.num_views[:, 5] == 1).all() and (res.num_views[:, 6] == 0).all()
    assert torch.isnan(res.covariance[:, 5]).all()
    keep = [j for j in range(17) if j not in (5, 6)]
    assert _err(res.points[:, keep], X[:, keep]).max() < 1e-6
    assert torch.isfinite(res.covariance[:, keep]).all()
    assert (res.num_views[:, keep] == 4).all()


def test_covariance_matches_monte_carlo(scene):
    """First-order covariance vs the scatter of estimates under the noise it assumes."""
    P, X, uv = scene
    P, X, uv = P[:1], X[:1, :4], uv[:1, :, :4]                      # 4 joints, one batch item
    sigma = torch.tensor([1.0, 2.0, 0.5, 1.5], dtype=torch.float64)[None, :, None].expand(1, 4, 4)
    n = 3000
    g = torch.Generator().manual_seed(2)
    noisy = uv + sigma[..., None] * torch.randn((n,) + uv.shape[1:], generator=g, dtype=torch.float64)
    w = (1.0 / sigma).expand(n, 4, 4)           # rows scaled by 1/sigma: least squares in sigma units
    est = triangulate_dlt(P.expand(n, -1, -1, -1), noisy, w)       # (n, J, 3)
    emp = torch.stack([torch.cov(est[:, j].T) for j in range(4)])  # (J, 3, 3)
    pred = triangulate_with_uncertainty(P, uv, w[:1], sigma).covariance[0]
    for j in range(4):
        ratio = torch.linalg.eigvalsh(torch.linalg.solve(pred[j], emp[j]))
        assert ratio.min() > 0.75 and ratio.max() < 1.33, (j, ratio)


def test_residuals_inflate_covariance(scene):
    P, X, uv = scene
    w = torch.ones(uv.shape[:-1], dtype=torch.float64)
    s = torch.ones_like(w)
    clean = triangulate_with_uncertainty(P, uv, w, s)
    g = torch.Generator().manual_seed(3)
    noise = 10 * torch.randn(uv.shape, generator=g, dtype=torch.float64)
    noisy = triangulate_with_uncertainty(P, uv + noise, w, s)
    trace_noisy = noisy.covariance.diagonal(dim1=-2, dim2=-1).sum(-1)
    trace_clean = clean.covariance.diagonal(dim1=-2, dim2=-1).sum(-1)
    assert (trace_noisy > 5 * trace_clean).float().mean() > 0.9
    assert clean.reprojection_error.max() < 1e-6
    assert noisy.reprojection_error.mean() > 3.0


def test_jacobian_matches_finite_differences(scene):
    P, X, _ = scene
    uv, Jac = projection_jacobians(P[:1], X[:1])
    eps = 1e-6
    for k in range(3):
        dX = torch.zeros(3, dtype=torch.float64)
        dX[k] = eps
        plus, minus = projection_jacobians(P[:1], X[:1] + dX)[0], projection_jacobians(P[:1], X[:1] - dX)[0]
        num = (plus - minus) / (2 * eps)
        torch.testing.assert_close(Jac[..., k], num, rtol=1e-5, atol=1e-6)


def test_differentiable(scene):
    P, X, uv = scene
    uv = (uv[:1, :, :2] + 0.3 * torch.randn(1, 4, 2, 2, dtype=torch.float64)).requires_grad_()
    w = torch.rand(1, 4, 2, dtype=torch.float64).add(0.5).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: triangulate_dlt(P[:1], a, b), (uv, w))
    res = triangulate_with_uncertainty(P[:1], uv, w, torch.ones(1, 4, 2, dtype=torch.float64))
    (res.points.sum() + res.covariance.sum() + res.reprojection_error.sum()).backward()
    assert torch.isfinite(uv.grad).all() and uv.grad.abs().sum() > 0


def test_shape_errors_name_the_shapes(scene):
    P, X, uv = scene
    with pytest.raises(ValueError, match=r"weights \(3, 4\)"):
        triangulate_dlt(P, uv, torch.ones(3, 4))
    with pytest.raises(ValueError, match="P has 3 views"):
        triangulate_dlt(P[:, :3], uv, torch.ones(uv.shape[:-1]))


def test_gradient_finite_with_missing_joints(scene):
    """Joints without two views are NaN in the output but must not put NaN into the gradient."""
    P, X, uv = scene
    uv = uv[:1].clone().requires_grad_()
    w = torch.ones(1, 4, 17, dtype=torch.float64)
    w[:, 1:, 3] = 0
    res = triangulate_with_uncertainty(P[:1], uv, w, torch.ones_like(w))
    keep = torch.isfinite(res.points)
    (res.points[keep].sum() + res.covariance[torch.isfinite(res.covariance)].sum()).backward()
    assert torch.isfinite(uv.grad).all()
    assert uv.grad[:, :, 3].abs().sum() == 0


def test_outlier_rejection_drops_a_swapped_view(scene):
    P, X, uv = scene
    g = torch.Generator().manual_seed(2)
    noisy = uv + 1.0 * torch.randn(uv.shape, generator=g, dtype=torch.float64)
    noisy[:, 0, 3] += torch.tensor([60.0, 0.0], dtype=torch.float64)          # 4 views, one swapped
    noisy[:, 1, 7] += torch.tensor([0.0, -45.0], dtype=torch.float64)
    noisy[:, 2, 7] += torch.tensor([50.0, 20.0], dtype=torch.float64)         # two bad of four
    w = torch.ones(uv.shape[:-1], dtype=torch.float64, requires_grad=True)
    kept = reject_outlier_views(P, noisy, w, 15.0)
    dropped = {tuple(i) for i in (kept == 0).nonzero()[:, 1:].tolist()}
    assert dropped == {(0, 3), (1, 7), (2, 7)}, dropped                        # (view, joint), every item
    assert _err(triangulate_dlt(P, noisy, w), X)[:, [3, 7]].min() > 0.02      # plain DLT: cm off
    assert _err(triangulate_dlt(P, noisy, kept), X).max() < 0.01               # robust: mm, every joint
    kept.sum().backward()                                                      # kept weights keep gradient
    assert w.grad[0, 0, 3] == 0 and w.grad[0, 1, 3] == 1
    # a per-view threshold tensor: view 0 tolerates its 60 px, the others do not
    per_view = torch.tensor([100.0, 15.0, 15.0, 15.0], dtype=torch.float64)[:, None]
    kept = reject_outlier_views(P, noisy, w.detach(), per_view)
    assert (kept[:, 0, 3] > 0).all() and (kept[:, 1:, 3] > 0).all()


def test_outlier_rejection_keeps_two_views_and_consistent_ones(scene):
    P, X, uv = scene
    w = torch.ones(uv.shape[:-1], dtype=torch.float64)
    assert torch.equal(reject_outlier_views(P, uv, w, 1.0), w)                # exact views: none dropped
    bad = uv.clone()
    bad[:, 0, 5] += 80.0
    two = w.clone()
    two[:, 2:] = 0                                                             # 2 views: nothing to vote
    assert torch.equal(reject_outlier_views(P, bad, two, 1.0), two)
    three = w.clone()
    three[:, 3] = 0                                                            # 3 views: the odd one out
    kept = reject_outlier_views(P, bad, three, 10.0)
    assert (kept[:, 0, 5] == 0).all() and (kept[:, 1:3, 5] == 1).all()
    assert (kept[:, :, [j for j in range(17) if j != 5]] == three[:, :, [j for j in range(17) if j != 5]]).all()
    one = reject_outlier_views(P, bad, w, 1.0, max_drop=1)                     # at most one per joint
    assert ((w - one).sum(-2) <= 1).all()


def _moving_views(scene, times, accel=False):
    """Every camera at each of `times` (s) seeing points X + V t (+ A t^2 / 2) -> P (B, F, 3, 4),
    uv (B, F, J, 2), dt (B, F), the points at t = 0."""
    P, X, _ = scene
    g = torch.Generator().manual_seed(3)
    Vel = torch.randn(X.shape, generator=g, dtype=torch.float64) * 2.0             # m/s: a fast kick
    Acc = torch.randn(X.shape, generator=g, dtype=torch.float64) * 20.0 if accel else torch.zeros_like(X)
    Ps, uvs, dts = [], [], []
    for t in times:
        Xt = X + Vel * t + 0.5 * Acc * t ** 2
        Ps.append(P)
        uvs.append(C.project_points(P, Xt[:, None]))                              # (B, V, J, 2)
        dts.append(torch.full(P.shape[:2], t, dtype=torch.float64))
    return torch.cat(Ps, 1), torch.cat(uvs, 1), torch.cat(dts, 1), X


def test_moving_point_recovered_at_the_target_instant(scene):
    P, uv, dt, X = _moving_views(scene, (-0.1, -0.033, 0.017))
    w = torch.ones(uv.shape[:-1], dtype=torch.float64)
    assert _err(triangulate_moving(P, uv, w, dt), X).max() < 1e-6
    static = triangulate_dlt(P, uv, w)                    # the same rays as if simultaneous: cm off
    assert _err(static, X).mean() > 0.02
    P, uv, dt, X = _moving_views(scene, (-0.1, -0.05, 0.0167, 0.033), accel=True)
    w = torch.ones(uv.shape[:-1], dtype=torch.float64)
    assert _err(triangulate_moving(P, uv, w, dt, order=1), X).mean() > 0.005      # misses the bend
    assert _err(triangulate_moving(P, uv, w, dt, order=2), X).max() < 1e-6


def test_moving_point_needs_enough_observations(scene):
    P, uv, dt, X = _moving_views(scene, (-0.05, 0.03))
    w = torch.zeros(uv.shape[:-1], dtype=torch.float64)
    w[:, :3, 0] = 1.0                                     # joint 0: 3 observations, 6 unknowns
    w[:, :4, 1] = 1.0                                     # joint 1: 4 (8 rows for 6 unknowns)
    w[:, 4:, 1] = 1.0
    out = triangulate_moving(P, uv, w, dt)
    assert torch.isnan(out[:, 0]).all() and torch.isnan(out[:, 2:]).all()
    assert _err(out[:, 1], X[:, 1]).max() < 1e-6
    assert torch.isfinite(triangulate_moving(P, uv, w, dt, order=0)[:, 0]).all()   # static: 2 suffice
    with pytest.raises(ValueError, match="order"):
        triangulate_moving(P, uv, w, dt, order=3)
    with pytest.raises(ValueError, match=r"dt \(3, 4\)"):
        triangulate_moving(P, uv, w, dt[:, :4])
