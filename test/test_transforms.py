"""TF fallback tree: round trips, chains, interpolation, errors."""
import numpy as np
import pytest

from dense_warper_ros.transforms import (Transform, TransformError, TransformTree, matrix_to_quat,
                                         quat_to_matrix)


def random_rotation(rng):
    q = rng.normal(size=4)
    return quat_to_matrix(q / np.linalg.norm(q))


def test_quaternion_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(50):
        R = random_rotation(rng)
        np.testing.assert_allclose(quat_to_matrix(matrix_to_quat(R)), R, atol=1e-12)


def test_chain_lookup_matches_composed_transforms():
    rng = np.random.default_rng(1)
    tree = TransformTree()
    edges = {("world", "base"): None, ("base", "cam_link"): None, ("cam_link", "cam_optical"): None,
             ("world", "other"): None}
    for (p, c) in edges:
        R, t = random_rotation(rng), rng.normal(size=3)
        edges[(p, c)] = Transform(R, t)
        tree.add(p, c, 0, t, matrix_to_quat(R), static=True)
    expect = edges[("world", "base")] @ edges[("base", "cam_link")] @ edges[("cam_link", "cam_optical")]
    got = tree.lookup("world", "cam_optical", 123)
    np.testing.assert_allclose(got.R, expect.R, atol=1e-12)
    np.testing.assert_allclose(got.t, expect.t, atol=1e-12)
    # across branches: other <- cam_optical
    cross = edges[("world", "other")].inverse() @ expect
    got = tree.lookup("other", "/cam_optical", 0)
    np.testing.assert_allclose(got.t, cross.t, atol=1e-12)


def test_dynamic_edges_interpolate_and_refuse_extrapolation():
    tree = TransformTree()
    q0 = matrix_to_quat(np.eye(3))
    q1 = matrix_to_quat(quat_to_matrix([0, 0, np.sin(np.pi / 4), np.cos(np.pi / 4)]))  # 90 deg about z
    tree.add("world", "cam", 1_000, [0, 0, 0], q0, static=False)
    tree.add("world", "cam", 3_000, [2, 0, 0], q1, static=False)
    mid = tree.lookup("world", "cam", 2_000)
    np.testing.assert_allclose(mid.t, [1, 0, 0])
    ang = np.degrees(np.arctan2(mid.R[1, 0], mid.R[0, 0]))
    assert abs(ang - 45) < 1e-9
    with pytest.raises(TransformError, match="outside"):
        tree.lookup("world", "cam", 5_000)
    with pytest.raises(TransformError, match="does not exist"):
        tree.lookup("world", "nope", 2_000)
    tree.clear()
    with pytest.raises(TransformError):
        tree.lookup("world", "cam", 2_000)
