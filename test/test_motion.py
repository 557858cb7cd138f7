"""Ground-truth motion: pybullet FK of the DeepMimic clips -> H36M-17, resampling, split, augmentation."""
import numpy as np
import pytest

from dense_warper_ros.data import motion
from dense_warper_ros.skeleton import H36M_BONES, H36M_JOINTS, bone_lengths, flip_permutation

J = {name: i for i, name in enumerate(H36M_JOINTS)}


@pytest.fixture(scope="module")
def clips():
    return {name: motion.load_clip(name) for name in motion.CLIP_NAMES}


def test_split_is_fixed_disjoint_and_complete():
    assert set(motion.TRAIN_CLIPS).isdisjoint(motion.TEST_CLIPS)
    assert sorted(motion.TRAIN_CLIPS + motion.TEST_CLIPS) == sorted(motion.CLIP_NAMES)
    assert len(motion.CLIP_NAMES) == 15
    assert motion.TEST_CLIPS == ("walk", "dance_b", "spinkick", "cartwheel", "getup_faceup")


def test_fk_bone_lengths_are_constant_at_key_frames_and_in_between(clips):
    for name, clip in clips.items():
        bl = bone_lengths(clip.key_joints)                         # (F, 16)
        assert bl.std(0).max() < 1e-5, name                        # pybullet works in float32
        assert bl.min() > 0.05, name
        t = np.linspace(0, clip.duration, 301)
        bl_t = bone_lengths(clip.at(t))
        assert np.abs(bl_t - bl.mean(0)).max() < 1e-5, name


def test_human_proportions_and_z_up(clips):
    walk = clips["walk"].key_joints
    bl = bone_lengths(walk).mean(0)
    thigh = bl[H36M_BONES.index((J["r_knee"], J["r_hip"]))]
    assert 0.35 < thigh < 0.5                                     # hip -> knee, metres
    assert 0.8 < walk[:, J["pelvis"], 2].mean() < 0.95            # pelvis height, Z up
    assert (walk[:, J["head"], 2] > walk[:, J["thorax"], 2]).all()
    assert (walk[:, J["thorax"], 2] > walk[:, J["pelvis"], 2]).all()
    assert (walk[:, J["pelvis"], 2] > walk[:, J["r_ankle"], 2]).all()
    assert 1.5 < walk[:, J["head"], 2].max() < 1.9


def test_walk_moves_forward_and_right_is_minus_y_in_the_body_frame(clips):
    walk = clips["walk"].key_joints
    left = walk[0, J["l_hip"]] - walk[0, J["r_hip"]]
    forward = np.cross(left, [0, 0, 1.0])                         # x forward, y left, z up
    travel = walk[-1, J["pelvis"]] - walk[0, J["pelvis"]]
    assert travel @ forward / np.linalg.norm(forward) > 0.8       # the walk covers about 1.2 m
    assert left[1] > 0.1                                          # facing +x, the left hip is +y


def test_clips_are_centred_for_the_rigs(clips):
    for clip in clips.values():
        assert np.abs(clip.key_joints[:, 0, :2].mean(0)).max() < 1e-9


def test_resampling_is_exact_at_key_frames_and_refuses_times_outside(clips):
    clip = clips["dance_b"]
    np.testing.assert_allclose(clip.at(clip.key_times), clip.key_joints, atol=1e-6)
    mid = clip.at((clip.key_times[10:11] + clip.key_times[11:12]) / 2)[0]
    assert np.linalg.norm(mid - (clip.key_joints[10] + clip.key_joints[11]) / 2, axis=-1).max() < 0.02
    with pytest.raises(ValueError, match="outside"):
        clip.at([clip.duration + 0.5])


def test_time_grid():
    t = motion.time_grid(1.0, 60.0)
    assert len(t) == 61 and np.allclose(np.diff(t), 1 / 60)
    with pytest.raises(ValueError, match="rate_hz"):
        motion.time_grid(1.0, 0.0)


def test_fk_cache_is_keyed_by_pybullet_version(clips, tmp_path):
    times, joints = motion.fk_clip("run", cache_dir=tmp_path)
    files = list((tmp_path / "motion").glob("*.npz"))
    assert len(files) == 1 and f"pybullet-{motion.pybullet_version()}" in files[0].name
    again = motion.fk_clip("run", cache_dir=tmp_path)
    np.testing.assert_array_equal(joints, again[1])
    np.testing.assert_allclose(joints - joints[:, :1].mean(0) * [1, 1, 0],
                               clips["run"].key_joints, atol=1e-9)


def test_augmentations(clips):
    clip = clips["walk"]
    t = np.linspace(0, 0.5, 7)
    base = clip.at(t)
    mirrored = motion.Augmentation(mirror=True).sample(clip, t)
    # mirror: reflect y and swap labels, so the mirrored right hip is the reflected left hip
    np.testing.assert_allclose(mirrored[:, J["r_hip"]], base[:, J["l_hip"]] * [1, -1, 1])
    np.testing.assert_allclose(bone_lengths(mirrored), bone_lengths(base))
    np.testing.assert_allclose(mirrored[:, flip_permutation()] * [1, -1, 1], base)
    aug = motion.Augmentation(yaw=np.pi / 2, translation=(1.0, -2.0, 0.0), speed=2.0)
    out = aug.sample(clip, t)
    ref = clip.at(t * 2.0)
    np.testing.assert_allclose(out[..., 2], ref[..., 2])                     # heights kept
    np.testing.assert_allclose(out[..., 0], -ref[..., 1] + 1.0, atol=1e-12)   # x' = -y + tx
    np.testing.assert_allclose(out[..., 1], ref[..., 0] - 2.0, atol=1e-12)    # y' = x + ty
    assert aug.duration(clip) == pytest.approx(clip.duration / 2)
    rng = np.random.default_rng(0)
    draws = [motion.sample_augmentation(rng) for _ in range(400)]
    speeds = np.array([d.speed for d in draws])
    assert speeds.min() >= 0.5 and speeds.max() <= 2.0 and (speeds < 1).mean() == pytest.approx(0.5, abs=0.1)
    assert np.mean([d.mirror for d in draws]) == pytest.approx(0.5, abs=0.1)
    with pytest.raises(ValueError, match="speed_range"):
        motion.AugmentConfig(speed_range=(2.0, 0.5))
