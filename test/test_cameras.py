"""Round trips for the one camera convention and its batched torch helpers."""
import numpy as np
import pytest
import torch

from dense_warper_ros import cameras as C
from dense_warper_ros.data.rigs import ring_rig


from torch_threads import one_torch_thread  # noqa: E402,F401  (autouse fixture)


def _rng():
    return np.random.default_rng(0)


def _points(n=50, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 3)) * [0.4, 0.4, 0.5] + [0.0, 0.0, 1.0]


@pytest.fixture(scope="module")
def rig():
    return ring_rig(4)


def test_projection_numpy_matches_torch(rig):
    X = _points()
    P = C.projection_matrices(rig, dtype=torch.float64)
    uv_t = C.project_points(P, torch.as_tensor(X)[None].expand(4, -1, -1))    # (V, N, 2)
    for v, cam in enumerate(rig):
        np.testing.assert_allclose(uv_t[v].numpy(), cam.project(X), atol=1e-9)


def test_world_pose_and_centre_constructors_agree(rig):
    cam = rig[1]
    R_wc = cam.R.T
    other = C.Camera.from_world_pose(K=cam.K, R_world_cam=R_wc, p_world_cam=cam.centre,
                                     width=cam.width, height=cam.height)
    np.testing.assert_allclose(other.P, cam.P, atol=1e-12)
    np.testing.assert_allclose(cam.t, -cam.R @ cam.centre, atol=1e-12)


def test_look_at_puts_target_on_principal_point():
    cam = C.look_at_camera(position=(3.0, -1.0, 2.0), target=(0.0, 0.5, 1.0), focal_px=900.0,
                           width=640, height=480)
    uv = cam.project(np.array([[0.0, 0.5, 1.0]]))[0]
    np.testing.assert_allclose(uv, [319.5, 239.5], atol=1e-9)
    above = cam.project(np.array([[0.0, 0.5, 1.5]]))[0]
    assert above[1] < uv[1], "world up must be image up (y down)"


@pytest.mark.parametrize("model,dist", [
    ("plumb_bob", [-0.25, 0.08, 0.001, -0.0005, -0.01]),
    ("rational_polynomial", [-0.3, 0.05, 0.0005, 0.0002, 0.01, 0.1, -0.04, 0.008]),
    ("equidistant", [0.05, -0.01, 0.002, -0.0005]),
])
def test_distort_then_undistort_recovers_pinhole(rig, model, dist):
    cam = C.Camera(K=rig[0].K, R=rig[0].R, t=rig[0].t, width=1000, height=1000, dist=dist,
                   dist_model=model)
    X = _points()
    observed = cam.project(X)
    pinhole = cam.project(X, distort=False)
    assert np.abs(observed - pinhole).max() > 1.0, "distortion should move points"
    np.testing.assert_allclose(cam.undistort_points(observed), pinhole, atol=1e-3)


def test_undistort_points_torch_per_view(rig):
    cams = [C.Camera(K=c.K, R=c.R, t=c.t, width=1000, height=1000,
                     dist=[-0.2 + 0.05 * i, 0.05, 0, 0, 0], dist_model="plumb_bob")
            for i, c in enumerate(rig)]
    X = _points(17)
    obs = torch.as_tensor(np.stack([c.project(X) for c in cams]))[None]       # (1, V, J, 2)
    und = C.undistorter(cams)(obs)
    want = np.stack([c.project(X, distort=False) for c in cams])
    np.testing.assert_allclose(und[0].numpy(), want, atol=1e-3)
    assert C.undistorter(rig) is None
    with pytest.raises(ValueError, match="3 views"):
        C.undistort_points_torch(cams, obs[:, :3])


def test_crop_affine_maps_box_edges_and_inverts():
    A = C.crop_affine((400.0, 300.0), 200.0, 96)
    edges = C.apply_affine(A, np.array([[300.0, 200.0], [500.0, 400.0], [400.0, 300.0]]))
    np.testing.assert_allclose(edges, [[-0.5, -0.5], [95.5, 95.5], [47.5, 47.5]])
    uv = _rng().uniform(0, 1000, size=(20, 2))
    np.testing.assert_allclose(C.apply_affine(C.invert_affine(A), C.apply_affine(A, uv)), uv, atol=1e-9)


def test_torch_affines_match_numpy():
    rng = _rng()
    A = np.stack([C.crop_affine(rng.uniform(100, 900, 2), rng.uniform(100, 400), 64) for _ in range(3)])
    A[1, 0, 1] = 0.1                                             # a general (sheared) affine too
    uv = rng.uniform(0, 1000, size=(3, 10, 2))
    At = torch.as_tensor(A)
    out = C.apply_affines(At, torch.as_tensor(uv))
    np.testing.assert_allclose(out.numpy(), np.stack([C.apply_affine(A[i], uv[i]) for i in range(3)]))
    np.testing.assert_allclose(C.invert_affines(At).numpy(), np.stack([C.invert_affine(a) for a in A]),
                               atol=1e-12)
    np.testing.assert_allclose(C.affines_to_3x3(At).numpy(), C.affine_to_3x3(A))
    np.testing.assert_allclose(C.affine_scales(At).numpy(),
                               np.sqrt(np.abs(np.linalg.det(A[:, :, :2]))), rtol=1e-12)
    np.testing.assert_allclose(C.affine_scales(At)[0].item(), A[0, 0, 0], rtol=1e-12)


def test_root_crop_is_two_metres_around_the_root(rig):
    cam, root = rig[2], np.array([0.3, -0.2, 1.0])
    A = C.root_crop_affine(cam, root, out_size=96)
    np.testing.assert_allclose(C.apply_affine(A, cam.project(root[None])), [[47.5, 47.5]], atol=1e-9)
    depth = cam.to_camera(root[None])[0, 2]
    np.testing.assert_allclose(A[0, 0], 96 / (cam.K[0, 0] * 2.0 / depth))
    behind = cam.centre - 1.0 * (root - cam.centre)
    with pytest.raises(ValueError, match="behind the camera"):
        C.root_crop_affine(cam, behind)


def test_fundamental_matrix_epipolar_constraint(rig):
    X = _points(100)
    for a in range(4):
        for b in range(4):
            if a == b:
                continue
            F = C.fundamental_matrix(rig[a], rig[b])
            xa = np.c_[rig[a].project(X), np.ones(len(X))]
            xb = np.c_[rig[b].project(X), np.ones(len(X))]
            lines = xa @ F.T                                    # lines in b
            dist = np.abs((xb * lines).sum(1)) / np.hypot(lines[:, 0], lines[:, 1])
            assert dist.max() < 1e-6, f"pair {a}->{b}: {dist.max()} px"
            Ft = C.fundamental_matrices(torch.as_tensor(rig[a].P), torch.as_tensor(rig[b].P)).numpy()
            s = np.sign((Ft * F).sum())
            np.testing.assert_allclose(s * Ft, F, atol=1e-9)


def test_centres_and_backprojection(rig):
    P = C.projection_matrices(rig, dtype=torch.float64)
    np.testing.assert_allclose(C.camera_centres(P).numpy(), np.stack([c.centre for c in rig]), atol=1e-9)
    uv = torch.as_tensor(_rng().uniform(0, 1000, size=(4, 7, 2)))
    for depth in (1.0, 5.0):
        Xw = C.backproject(P, uv, depth)                        # (V, 7, 3)
        np.testing.assert_allclose(C.project_points(P, Xw).numpy(), uv.numpy(), atol=1e-8)
        for v, cam in enumerate(rig):
            np.testing.assert_allclose(cam.to_camera(Xw[v].numpy())[:, 2], depth, atol=1e-9)
    # a scaled, sign-flipped P describes the same camera: depths must not change
    Xs = C.backproject(-3.0 * P, uv, 2.0)
    np.testing.assert_allclose(Xs.numpy(), C.backproject(P, uv, 2.0).numpy(), atol=1e-9)


def test_errors_name_the_bad_value(rig):
    cam = rig[0]
    with pytest.raises(ValueError, match="focal"):
        C.Camera(K=np.diag([-1.0, 1.0, 1.0]), R=np.eye(3), t=np.zeros(3), width=10, height=10)
    with pytest.raises(ValueError, match="det="):
        C.Camera(K=cam.K, R=2 * np.eye(3), t=np.zeros(3), width=10, height=10)
    with pytest.raises(ValueError, match="'fisheye'"):
        C.Camera(K=cam.K, R=np.eye(3), t=np.zeros(3), width=10, height=10, dist_model="fisheye")
    with pytest.raises(ValueError, match="parallel"):
        C.look_at_camera(position=(0, 0, 5), target=(0, 0, 0), focal_px=100, width=10, height=10)
