"""The epipolar exchange: lines agree with F, vertical lines work, peaks land on the right line."""
import numpy as np
import pytest
import torch

from dense_warper_ros import cameras as C
from dense_warper_ros.data.rigs import ring_rig
from dense_warper_ros.epipolar import (EpipolarSampler, epipolar_exchange, epipolar_lines,
                                       gather_max, heatmap_fundamental, line_indices, line_samples,
                                       pixel_grid)
from dense_warper_ros.heatmaps import render_gaussians


from torch_threads import one_torch_thread  # noqa: E402,F401  (autouse fixture)


ROOT = np.array([0.2, -0.1, 1.0])


def _rig_tensors(cams, size, root=ROOT):
    A = np.stack([C.root_crop_affine(c, root, out_size=size) for c in cams])
    return C.projection_matrices(cams, dtype=torch.float64), torch.as_tensor(A), A


def _heatmap_F(cams, A, a, b):
    """F in heatmap px from the numpy reference (x_b^T F x_a = 0), independent of epipolar.py."""
    F = C.fundamental_matrix(cams[a], cams[b])
    return np.linalg.inv(C.affine_to_3x3(A[b])).T @ F @ np.linalg.inv(C.affine_to_3x3(A[a]))


def _check_samples(lines_np, pts, inside, H, W):
    """Every sample within 0.5 px of its line; one sample per column (row) the line crosses."""
    a, b, c = lines_np[:, 0:1], lines_np[:, 1:2], lines_np[:, 2:3]
    x, y = pts[..., 0], pts[..., 1]
    dist = np.abs(a * x + b * y + c) / np.hypot(a, b)
    assert dist[inside].max() < 0.5, f"sample {dist[inside].max():.4f} px off its line"
    step_x = np.abs(b[:, 0]) >= np.abs(a[:, 0])
    j = np.arange(max(H, W))
    with np.errstate(divide="ignore", invalid="ignore"):
        y_at = -(a * j + c) / b                                   # line's y at each column
        x_at = -(b * j + c) / a                                   # line's x at each row
    crosses = np.where(step_x[:, None], (y_at >= -0.5) & (y_at < H - 0.5) & (j < W),
                       (x_at >= -0.5) & (x_at < W - 0.5) & (j < H))
    np.testing.assert_array_equal(inside.sum(1), crosses.sum(1))


@pytest.mark.parametrize("size", [48, 64])
def test_every_pixel_line_agrees_with_fundamental_matrix(size):
    cams = ring_rig(4)
    P, At, A = _rig_tensors(cams, size)
    for a in range(4):
        for b in range(4):
            if a == b:
                continue
            lines = epipolar_lines(P[a], At[a], P[b], At[b], size).numpy()   # (HW, 3)
            grid = np.c_[pixel_grid(size, size).numpy(), np.ones(size * size)]
            ref = grid @ _heatmap_F(cams, A, a, b).T
            cos = np.abs((lines * ref).sum(1)) / np.linalg.norm(lines, axis=1) / np.linalg.norm(ref, axis=1)
            assert cos.min() > 1 - 1e-9, f"pair {a}->{b}: lines differ from F"
            pts, inside = line_samples(torch.as_tensor(ref), size)
            assert inside.any(1).float().mean() > 0.5, "most pixels should see a line through the crop"
            _check_samples(ref, pts.numpy(), inside.numpy(), size, size)


def test_line_is_the_one_through_two_backprojected_depths():
    """The closed form equals the method's construction: back-project at 1 m and 5 m, project."""
    cams = ring_rig(3)
    P, At, _ = _rig_tensors(cams, 32)
    grid = pixel_grid(32, 32)
    uv = C.apply_affines(C.invert_affines(At[0]), grid)
    G = C.affines_to_3x3(At[1]) @ P[1]
    q = [torch.cat([C.backproject(P[0], uv, z), torch.ones(len(uv), 1, dtype=torch.float64)], 1) @ G.T
         for z in (1.0, 5.0)]
    two_depths = torch.linalg.cross(q[0], q[1], dim=-1)
    gh = torch.cat([grid, torch.ones(len(grid), 1, dtype=torch.float64)], 1)
    closed = gh @ heatmap_fundamental(P[0], At[0], P[1], At[1]).T
    cos = (two_depths * closed).sum(1).abs() / two_depths.norm(dim=1) / closed.norm(dim=1)
    assert cos.min() > 1 - 1e-9


def _stacked_rig(offset):
    """Two cameras with equal orientation, the second displaced by `offset` (world)."""
    a = C.look_at_camera(position=(-4.0, 0.0, 1.0), target=(0.0, 0.0, 1.0), focal_px=1000.0,
                         width=800, height=800)
    centre_b = np.array([-4.0, 0.0, 1.0]) + offset
    b = C.Camera.from_centre(K=a.K, R=a.R, centre=centre_b, width=800, height=800)
    return [a, b]


@pytest.mark.parametrize("offset,kind", [((0.0, 0.0, 1.0), "vertical"), ((0.0, 1.0, 0.0), "horizontal")])
def test_vertical_and_horizontal_lines(offset, kind):
    cams = _stacked_rig(np.array(offset))
    size = 48
    P, At, A = _rig_tensors(cams, size, root=np.array([0.0, 0.0, 1.5]))
    lines = epipolar_lines(P[0], At[0], P[1], At[1], size)
    a, b = lines[:, 0].abs(), lines[:, 1].abs()
    if kind == "vertical":
        assert (b / a).max() < 1e-9, "baseline along image y must give vertical lines"
    else:
        assert (a / b).max() < 1e-9
    pts, inside = line_samples(lines, size)
    assert torch.isfinite(pts).all()
    # a vertical line crossing the crop gets one sample per row, all in one column
    crossing = inside.any(1)
    assert crossing.float().mean() > 0.3
    per_line = inside[crossing].sum(1)
    assert (per_line == size).all(), f"{kind} lines should get {size} samples, got {per_line.unique()}"
    fixed = 0 if kind == "vertical" else 1
    col = pts[crossing][..., fixed]
    assert (col == col[:, :1]).all(), "samples of an axis-aligned line share one column/row"
    grid = np.c_[pixel_grid(size, size).numpy(), np.ones(size * size)]
    _check_samples(grid @ _heatmap_F(cams, A, 0, 1).T, pts.numpy(), inside.numpy(), size, size)


def test_exchange_moves_peak_onto_the_epipolar_line():
    cams = ring_rig(4)
    size, sigma = 64, 2.0
    P, At, A = _rig_tensors(cams, size)
    X = np.array([[0.35, 0.1, 1.3]])
    src, dst = 1, 3                                                # peak in view 1, exchanged into 3
    x_src = C.apply_affine(A[src], cams[src].project(X))          # (1, 2) heatmap px
    x_dst = C.apply_affine(A[dst], cams[dst].project(X))
    hm = render_gaussians(torch.as_tensor(x_src), size, sigma)    # (1, H, W)
    E = epipolar_exchange(hm[None], P[dst][None], At[dst][None], P[src][None], At[src][None])[0, 0]
    grid = np.c_[pixel_grid(size, size).numpy(), np.ones(size * size)]
    # delta(p): distance in the source heatmap between p's epipolar line and the peak
    lines_src = grid @ _heatmap_F(cams, A, dst, src).T
    delta = np.abs(lines_src @ np.r_[x_src[0], 1.0]) / np.hypot(lines_src[:, 0], lines_src[:, 1])
    e = E.reshape(-1).numpy()
    assert e[delta < 0.5].min() > 0.9, "pixels whose line passes the peak must get the peak"
    assert e[delta > 4 * sigma].max() < 0.05, "pixels whose line misses the peak must stay ~0"
    # the ridge lies on the destination's epipolar line of the source peak, through X's projection
    l_dst = _heatmap_F(cams, A, src, dst) @ np.r_[x_src[0], 1.0]
    dist_dst = np.abs(grid @ l_dst) / np.hypot(l_dst[0], l_dst[1])
    ridge = e > 0.5
    assert ridge.sum() > size / 2
    # the band widens away from the epipole (a fan of lines, projectively skewed, nearest sampling)
    # but stays centred on the line: in each column (the line is not steep here) the ridge's
    # centroid is within 2 px of the line, against a band several sigma wide
    assert abs(l_dst[1]) > abs(l_dst[0])
    Er = np.where(ridge, e, 0.0).reshape(size, size)              # (rows, cols)
    rows = np.arange(size)
    cols = np.nonzero(Er.sum(0) > 0)[0]
    centroid = (Er[:, cols] * rows[:, None]).sum(0) / Er[:, cols].sum(0)
    on_line = -(l_dst[0] * cols + l_dst[2]) / l_dst[1]
    inner = (on_line > 3 * sigma) & (on_line < size - 1 - 3 * sigma)   # band not cut by the border
    assert inner.sum() > size / 4
    assert np.abs(centroid - on_line)[inner].max() < 2.0
    assert np.median(np.abs(centroid - on_line)[inner]) < 0.75
    assert dist_dst[ridge].min() < 0.5
    nearest = int(round(x_dst[0, 1])) * size + int(round(x_dst[0, 0]))
    assert e[nearest] > 0.9, "the exchanged heatmap must be high at X's own projection"


def test_static_sampler_equals_on_the_fly_and_broadcasts():
    cams = ring_rig(4)
    size = 32
    P, At, _ = _rig_tensors(cams, size)
    cur, oth = torch.tensor([0, 1, 2, 3]), torch.tensor([3, 0, 1, 2])
    hm = torch.rand(4, 5, size, size)
    sampler = EpipolarSampler(P[cur], At[cur], P[oth], At[oth], size)
    E = sampler(hm)
    assert E.shape == (4, 5, size, size)
    E2 = epipolar_exchange(hm, P[cur].float(), At[cur].float(), P[oth].float(), At[oth].float())
    torch.testing.assert_close(E, E2, rtol=0, atol=0)
    one = EpipolarSampler(P[0], At[0], P[3], At[3], size)        # no batch dims: serves any batch
    hm2 = torch.rand(2, 3, 5, size, size)
    E3 = one(hm2)
    torch.testing.assert_close(E3[1, 2], one(hm2[1, 2]))
    with pytest.raises(ValueError, match=r"\(24, 24\)"):
        one(torch.rand(5, 24, 24))


def test_exchange_max_semantics_and_gradient():
    """E is the max along the line (never below zero: the released code's zero padding), and its
    gradient flows to exactly the maximising pixel."""
    cams = ring_rig(2, start_azimuth_deg=10.0)
    size = 24
    P, At, _ = _rig_tensors(cams, size)
    hm = (torch.rand(1, size, size, dtype=torch.float64) - 0.7).requires_grad_()
    s = EpipolarSampler(P[0], At[0], P[1], At[1], size)
    E = s(hm)
    assert (E >= 0).all()
    pts, inside = line_samples(s.lines, size)
    k = 100                                                        # one pixel, brute force
    vals = [hm[0, int(y), int(x)].item() for (x, y), ok in zip(pts[k].tolist(), inside[k].tolist()) if ok]
    assert E[0].reshape(-1)[k].item() == pytest.approx(max([0.0] + vals))
    E[0].reshape(-1)[k].backward()
    g = hm.grad.reshape(-1)
    assert g.sum().item() == pytest.approx(1.0 if max(vals) > 0 else 0.0)


def test_gather_max_rejects_wrong_index():
    with pytest.raises(ValueError, match="100 pixels"):
        gather_max(torch.rand(2, 3, 8, 8), torch.zeros(100, 8, dtype=torch.long))


def test_dominant_direction_equals_the_released_union_of_both_steppings():
    """The released code samples w points stepping x AND h points stepping y; one direction gives
    the same max (the other's nearest pixels are among its own), checked on random lines."""
    rng = np.random.default_rng(5)
    H = W = 20
    hm = torch.rand(1, H, W, dtype=torch.float64)
    centre = rng.uniform(0, W - 1, size=(300, 2))
    angle = rng.uniform(0, np.pi, size=300)
    n = np.stack([np.sin(angle), -np.cos(angle)], 1)             # line normals
    lines = np.c_[n, -(n * centre).sum(1)]                         # through `centre`
    idx = line_indices(torch.as_tensor(lines), (H, W))             # (300, L)
    idx = torch.cat([idx, torch.full((H * W - 300, idx.shape[1]), H * W, dtype=idx.dtype)])  # pad rows
    got = gather_max(hm, idx)[0].reshape(-1)[:300]
    img = hm[0].numpy()
    for i, (a, b, c) in enumerate(lines):
        vals = [0.0]
        if abs(b) > 1e-12:                                         # stepping x: y = -(a x + c) / b
            for x in range(W):
                y = round(-(a * x + c) / b)
                if 0 <= y < H:
                    vals.append(img[y, x])
        if abs(a) > 1e-12:                                         # stepping y: x = -(b y + c) / a
            for y in range(H):
                x = round(-(b * y + c) / a)
                if 0 <= x < W:
                    vals.append(img[y, x])
        assert got[i].item() == pytest.approx(max(vals)), i


def test_exchange_is_never_negative_even_where_a_line_stays_inside():
    """A constant negative heatmap (a SimpleBaseline's background can be below 0) exchanges to
    exactly 0 everywhere, as the released code's zero-padded sampling gives: also for the lines
    whose every sample lies inside the heatmap, where no zero pad is read."""
    cams = ring_rig(4)
    size = 32
    P, At, _ = _rig_tensors(cams, size)
    cur, oth = torch.tensor([0, 1, 2, 3]), torch.tensor([1, 2, 3, 0])
    hm = torch.full((4, 3, size, size), -0.02, dtype=torch.float64, requires_grad=True)
    sampler = EpipolarSampler(P[cur], At[cur], P[oth], At[oth], size)
    wholly_inside = (sampler.index < size * size).all(-1)          # (4, HW): lines reading no pad
    assert wholly_inside.float().mean() > 0.2, "the check needs lines that stay inside the heatmap"
    for E in (sampler(hm), epipolar_exchange(hm, P[cur], At[cur], P[oth], At[oth])):
        assert E.shape == hm.shape
        torch.testing.assert_close(E, torch.zeros_like(E), rtol=0, atol=0)
    sampler(hm).sum().backward()
    assert hm.grad.abs().sum() == 0, "the zero wins: no gradient reaches a negative heatmap"
    shifted = torch.rand(4, 3, size, size, dtype=torch.float64) - 0.5   # mixed signs: max(0, line max)
    got = sampler(shifted)
    ref = gather_max(shifted.clamp_min(0), sampler.index)
    torch.testing.assert_close(got, ref, rtol=0, atol=0)
