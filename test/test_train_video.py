"""Fine-tuning on the real pose2sim video: windows cut from the synchronised recording are
interleaved as the benchmark's, stay inside their frame range, carry targets that land on the
backbone's own detections, and a training run mixes them in. Without the fetched demo or MoveNet
weights the tests fail, naming the command that fetches them (`make setup`)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from dense_warper_ros.data.pose2sim import default_root
from dense_warper_ros.data.video import load_pose2sim_bank, triangulated_detection_truth
from dense_warper_ros.heatmaps import soft_argmax
from dense_warper_ros.model import DenseWarper, ModelConfig
from dense_warper_ros.train.loop import TrainConfig, repo_path, train
from dense_warper_ros.train.video import VideoWindows

from assets import require_movenet, require_pose2sim

FRAMES = 10                     # the first frames only: MoveNet on 40 images, cached for the session
VIDEO = default_root()


@pytest.fixture(scope="module")
def bank():
    require_pose2sim(VIDEO)
    require_movenet("lightning")
    torch.set_num_threads(1)
    return load_pose2sim_bank(VIDEO, heatmap_size=48, frames=FRAMES,
                              decoder=ModelConfig.named("lite_tc").decoder, log=lambda s: None)[1]


def test_windows_are_interleaved_inside_their_frames(bank):
    win = VideoWindows(bank, (0, 8), history=1)          # 8 frames: exactly one window with history
    b = win.batch(3, np.random.default_rng(0))
    V, J = 4, 17
    assert b["heatmaps"].shape == (3, V, J, 48, 48) and b["prev_heatmaps"].shape == (3, V, 1, J, 48, 48)
    assert b["target_uv"].shape == (3, V, V, J, 2) and b["poses"].shape == (3, V, J, 3)
    dt = 1 / 60
    frame = np.round(b["times"].numpy() / dt).astype(int) + 4          # the only start frame is 4
    np.testing.assert_array_equal(frame, np.tile(np.arange(4, 8), (3, 1)))   # camera v at frame 4 + v
    np.testing.assert_allclose(b["times"] - b["prev_times"][..., 0], 4 * dt, atol=1e-5)   # one camera period
    pgt = triangulated_detection_truth(bank)
    np.testing.assert_allclose(b["poses"][0].numpy(), pgt.poses[4:8], atol=1e-5)
    with pytest.raises(ValueError, match="no window"):
        VideoWindows(bank, (0, 7), history=1)


def test_targets_land_on_the_views_own_detections(bank):
    """Target of view c at its own slot = pseudo-GT projected into c's crop: within a few heatmap px
    of c's own soft-argmax there (the dense triangulation reprojects to about 15 image px)."""
    win = VideoWindows(bank, (0, FRAMES))
    b = win.batch(16, np.random.default_rng(1))
    uv, peak, ok, _ = soft_argmax(b["heatmaps"], **ModelConfig.named("lite_tc").decoder)   # (B, V, J, 2)
    own = b["target_uv"][:, torch.arange(4), torch.arange(4)]                              # (B, V, J, 2)
    sel = ok & (peak > 0.3) & b["target_visible"][:, torch.arange(4), torch.arange(4)]
    err = (uv - own).norm(dim=-1)[sel]
    assert sel.float().mean() > 0.5
    assert float(err.median()) < 2.5, float(err.median())               # heatmap px (1 px = 15 image px)
    other = b["target_uv"][:, 0, 1] - b["target_uv"][:, 0, 0]           # view 0 at slot 1's time moves
    assert float(other.norm(dim=-1).max()) > 0.05


def test_a_run_mixes_in_the_video(tmp_path, bank):
    cfg = TrainConfig(model="lite_tc", model_overrides={"temporal_fusion": True},    # the shipped stage 4
                      init="models/dense_warper_lite_tc.safetensors", threads=1)
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, video_prob=1.0, video_frames=(0, FRAMES),
                                                            min_cameras=4, max_cameras=4),
                              optim=dataclasses.replace(cfg.optim, steps=2, batch_size=2))
    res = train(cfg, tmp_path, progress=False, validation=False, log=lambda s: None)
    assert res["step"] == 2
    start = DenseWarper.load(repo_path(cfg.init)).state_dict()
    tuned = DenseWarper.load(tmp_path / "model.safetensors").state_dict()
    assert start.keys() == tuned.keys()
    assert any(not torch.equal(start[k], tuned[k]) for k in start)      # it moved from the init
    with pytest.raises(ValueError, match="do not fit"):
        train(dataclasses.replace(cfg, model="lite", model_overrides={}), tmp_path / "x", progress=False,
              validation=False, log=lambda s: None)


def test_residual_filter_keeps_only_joints_every_view_agrees_on(bank):
    """A single-person detector may follow different people in different views (data/pose2sim_multi):
    `max_residual_px` keeps the joints whose triangulation reprojects within it in every view that
    detected them."""
    loose = triangulated_detection_truth(bank)
    np.testing.assert_array_equal(triangulated_detection_truth(bank, max_residual_px=1e6).reliable, loose.reliable)
    tight = triangulated_detection_truth(bank, max_residual_px=15.0)
    assert (tight.reliable <= loose.reliable).all() and 0 < tight.reliable.sum() < loose.reliable.sum()
    for c, cam in enumerate(bank.cameras):
        slots = tight.grid[:, c]
        res = np.linalg.norm(cam.project(tight.poses, distort=False) - bank.uv[slots], axis=-1)   # (F, J)
        assert (res[tight.reliable & (bank.conf[slots] >= 0.3)] <= 15.0).all()
    win = VideoWindows(bank, (0, FRAMES), pgt=tight)
    b = win.batch(8, np.random.default_rng(2))
    assert b["pose_valid"].shape == (8, 4, 17) and not b["pose_valid"].all()
    assert (b["target_visible"] <= b["pose_valid"][:, None]).all()   # unreliable joints: no 2D target
