"""Synthetic 2D evidence: heatmaps in the crop convention, the detector noise model, training
windows, and TinyRenderer images that agree with the projected ground truth."""
import cv2
import numpy as np
import pytest
import torch

from dense_warper_ros.cameras import apply_affine
from dense_warper_ros.data import detector_noise, evidence, motion, rigs, schedules
from dense_warper_ros.data.render import render_key_frame
from dense_warper_ros.heatmaps import soft_argmax
from dense_warper_ros.skeleton import H36M_FLIP_PAIRS, H36M_JOINTS
from dense_warper_ros.train.windows import synthetic_windows

J = {name: i for i, name in enumerate(H36M_JOINTS)}


@pytest.fixture(scope="module")
def walk():
    return motion.load_clip("walk")


@pytest.fixture(scope="module")
def cams():
    return rigs.make_rig()


def bank_for(clip, cams, noise, heatmap=None, seconds=1.0, rate=60.0):
    heatmap = heatmap or evidence.HeatmapConfig()
    s = schedules.interleaved(schedules.ScheduleConfig(rate_hz=rate), len(cams), 0.0, seconds)
    return evidence.synthetic_bank(cams, s.camera, s.nominal, s.time, clip.at, noise, heatmap)


@pytest.mark.parametrize("heatmap", [evidence.HeatmapConfig(), evidence.HeatmapConfig(size=96, sigma=3.0)])
def test_noiseless_heatmaps_decode_to_the_projected_ground_truth(walk, cams, heatmap):
    bank = bank_for(walk, cams, detector_noise.NoiseConfig.noiseless(), heatmap)
    obs = bank.observations
    assert obs.present.all() and (bank.conf > 0.9).all()          # sampled peak of a unit Gaussian
    err = np.linalg.norm(bank.uv - obs.uv_true, axis=-1)          # image px
    assert err.max() < 0.5, err.max()
    # the crop: a 2 m box around the root, centred on the root's projection
    root_hm = np.stack([apply_affine(A, uv[0]) for A, uv in zip(bank.affines, obs.uv_true)])
    np.testing.assert_allclose(root_hm, (heatmap.size - 1) / 2, atol=1e-9)
    box_px = heatmap.size / bank.affines[:, 0, 0]
    depth = np.array([cams[c].to_camera(g[0])[2] for c, g in zip(bank.camera, bank.gt)])
    np.testing.assert_allclose(box_px, 1145.0 * 2.0 / depth, rtol=1e-9)


def test_default_noise_is_a_good_detector_and_correlated_in_time(walk, cams):
    bank = bank_for(walk, cams, detector_noise.NoiseConfig(seed=1), seconds=walk.duration, rate=240.0)
    obs = bank.observations
    swapped_free = obs.present & np.isfinite(obs.uv_obs).all(-1)
    err = obs.uv_obs - obs.uv_true                                 # (S, J, 2)
    radial = np.linalg.norm(err, axis=-1)[swapped_free]
    rms = np.sqrt(np.median(radial ** 2))
    assert 2.5 < rms < 8.0, rms                                    # about 5 px at 1000 px
    # consecutive frames of one camera (60 Hz apart) err alike: strongly correlated, not white
    c0 = np.flatnonzero(bank.camera == 0)
    c0 = c0[np.argsort(bank.time[c0])]
    e = err[c0, J["l_knee"], 0] - err[c0, J["l_knee"], 0].mean()
    lag1 = (e[1:] * e[:-1]).mean() / (e * e).mean()
    assert lag1 > 0.7, lag1
    # misses happen at about the configured rate and give all-zero heatmap channels
    assert 0.005 < (~obs.present).mean() < 0.06
    s, j = np.argwhere(~obs.present)[0]
    assert bank.heatmaps(np.array([s]))[0, j].abs().max() == 0 and bank.conf[s, j] == 0


def test_left_right_swaps_exchange_the_pair(walk, cams):
    noise = detector_noise.NoiseConfig(jitter_px=0, bias_px=0, miss_prob=0, swap_prob=0.5, swap_mean_s=0.05)
    bank = bank_for(walk, cams, noise)
    obs = bank.observations
    a, b = H36M_FLIP_PAIRS[0]
    swapped = np.linalg.norm(obs.uv_obs[:, a] - obs.uv_true[:, b], axis=-1) < 1e-9
    straight = np.linalg.norm(obs.uv_obs[:, a] - obs.uv_true[:, a], axis=-1) < 1e-9
    assert swapped.any() and straight.any() and (swapped | straight).all()
    np.testing.assert_allclose(obs.uv_obs[swapped, b], obs.uv_true[swapped, a])


def test_same_slot_same_evidence(walk, cams):
    s = schedules.interleaved(schedules.ScheduleConfig(), 4, 0.0, 1.0)
    dense = schedules.synchronized(np.unique(s.nominal), 4)
    cam = np.concatenate([s.camera, dense.camera])
    nom = np.concatenate([s.nominal, dense.nominal])
    bank = evidence.synthetic_bank(cams, cam, nom, nom, walk.at, detector_noise.NoiseConfig(), evidence.HeatmapConfig())
    assert len(bank) == len(dense)                                 # duplicates merged
    idx = bank.lookup(s.camera, s.nominal)
    np.testing.assert_array_equal(bank.camera[idx], s.camera)
    with pytest.raises(KeyError, match="camera 0 at 5.000000 s"):
        bank.lookup(np.array([0]), np.array([5.0]))


def test_training_windows(cams):
    clips = [motion.load_clip(n) for n in motion.TRAIN_CLIPS[:3]]
    gen = synthetic_windows(
        clips=clips, rigs=[cams], schedule=schedules.ScheduleConfig(rate_hz=60), batch_size=4,
        noise=detector_noise.NoiseConfig.noiseless(), heatmap=evidence.HeatmapConfig(), rng=np.random.default_rng(0))
    b = next(gen)
    B, V, Jn, h = 4, 4, 17, 48
    assert b["heatmaps"].shape == (B, V, Jn, h, h) and b["P"].shape == (B, V, 3, 4)
    assert b["affines"].shape == (B, V, 2, 3) and b["poses"].shape == (B, V, Jn, 3)
    assert b["target_uv"].shape == (B, V, V, Jn, 2) and b["target_visible"].dtype == torch.bool
    np.testing.assert_allclose(b["times"].numpy(), np.tile(np.arange(V) / 60, (B, 1)), atol=1e-6)
    # the diagonal target is where each view's own (noiseless) heatmap peaks
    uv, peak, ok, _ = soft_argmax(b["heatmaps"])
    diag = b["target_uv"][:, torch.arange(V), torch.arange(V)]     # (B, V, J, 2)
    vis = b["target_visible"][:, torch.arange(V), torch.arange(V)]
    assert ((uv - diag).norm(dim=-1)[vis] < 0.05).all()
    # off-diagonal targets are other instants: they differ from the diagonal by the motion
    assert (b["target_uv"][:, 0, 3] - b["target_uv"][:, 0, 0]).norm(dim=-1).max() > 0.05
    # poses are augmented ground truth: bone lengths of the humanoid survive mirroring and rotation
    from dense_warper_ros.skeleton import bone_lengths
    bl = bone_lengths(b["poses"].double().numpy())
    np.testing.assert_allclose(bl, np.broadcast_to(bl[0, 0], bl.shape), atol=1e-4)


def test_tinyrenderer_images_agree_with_the_projected_ground_truth(walk):
    cams = rigs.make_rig(rigs.RigConfig(width=256, height=256, focal_px=300, radius_m=4.0))
    views = render_key_frame("walk", 12, cams)
    X = walk.key_joints[12]
    for cam, view in zip(cams, views):
        assert view.rgb.shape == (256, 256, 3) and view.rgb.dtype == np.uint8
        mask = cv2.dilate(view.mask.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        uv = np.round(cam.project(X)).astype(int)
        assert mask[uv[:, 1], uv[:, 0]].all(), cam.name           # every joint on the body
        ys, xs = np.nonzero(view.mask)                              # and the body around the joints
        assert abs(ys.min() - cam.project(X)[:, 1].min()) < 12
        assert abs(ys.max() - cam.project(X)[:, 1].max()) < 12
        root = cam.to_camera(X[0:1])[0, 2]
        assert abs(view.depth[uv[0, 1], uv[0, 0]] - root) < 0.15   # surface just in front of the pelvis
