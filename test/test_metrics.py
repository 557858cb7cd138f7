"""Pose metrics on hand-computed arrays."""
import numpy as np
import pytest

from dense_warper_ros.eval import metrics

GT = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])   # root = joint 0


def test_one_wrong_joint():
    pred = GT.copy()
    pred[2] = [0.0, 2.0, 0.0]                       # 1 m off
    assert metrics.mpjpe(pred, GT) == pytest.approx(1 / 4)
    assert metrics.mpjpe_root_aligned(pred, GT) == pytest.approx(1 / 4)
    np.testing.assert_allclose(metrics.joint_errors(pred, GT), [0, 0, 1, 0])


def test_translation_counts_only_in_absolute_mpjpe():
    pred = GT + [3.0, 4.0, 0.0]                     # 5 m shift
    assert metrics.mpjpe(pred, GT) == pytest.approx(5.0)
    assert metrics.mpjpe_root_aligned(pred, GT) == pytest.approx(0.0, abs=1e-12)
    assert metrics.pa_mpjpe(pred, GT) == pytest.approx(0.0, abs=1e-12)


def test_root_alignment_moves_the_root_onto_the_ground_truth():
    pred = GT.copy()
    pred[0] = [0.0, 0.0, 0.3]                       # only the root is off by 0.3: after alignment
    # every other joint is off by 0.3 and the root by 0
    assert metrics.mpjpe_root_aligned(pred, GT) == pytest.approx(0.3 * 3 / 4)
    assert metrics.mpjpe(pred, GT) == pytest.approx(0.3 / 4)


def test_procrustes_removes_rotation_scale_and_translation():
    a = np.deg2rad(30)
    R = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    pred = 2.0 * GT @ R.T + [1.0, -2.0, 0.5]
    assert metrics.pa_mpjpe(pred, GT) == pytest.approx(0.0, abs=1e-9)
    assert metrics.mpjpe_root_aligned(pred, GT) > 0.5
    mirrored = GT * [1, 1, -1]                      # a reflection is not a rotation: stays an error
    assert metrics.pa_mpjpe(mirrored, GT) > 0.1


def test_procrustes_of_a_noisy_pose_is_at_most_root_aligned():
    rng = np.random.default_rng(0)
    gt = rng.normal(size=(20, 17, 3))
    pred = gt + rng.normal(scale=0.05, size=gt.shape)
    assert metrics.pa_mpjpe(pred, gt) < metrics.mpjpe_root_aligned(pred, gt)


def test_missing_joints_are_excluded_and_counted():
    pred = GT.copy()
    pred[1] = np.nan
    pred[2] = [0.0, 1.5, 0.0]
    assert metrics.mpjpe(pred, GT) == pytest.approx(0.5 / 3)
    assert metrics.coverage(pred) == pytest.approx(3 / 4)
    no_root = GT.copy()
    no_root[0] = np.nan
    assert np.isnan(metrics.mpjpe_root_aligned(no_root, GT))
    assert np.isnan(metrics.pa_mpjpe(np.full_like(GT, np.nan), GT))


def test_batches_and_errors():
    pred = np.stack([GT, GT + [0, 0, 1.0]])         # (2, J, 3)
    assert metrics.joint_errors(pred, np.stack([GT, GT])).shape == (2, 4)
    assert metrics.mpjpe(pred, np.stack([GT, GT])) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="'scale'"):
        metrics.joint_errors(GT, GT, align="scale")
    with pytest.raises(ValueError, match=r"\(3, 3\) and \(4, 3\)"):
        metrics.mpjpe(GT[:3], GT)
