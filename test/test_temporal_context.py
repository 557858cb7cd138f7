"""The temporal-context extension of DenseWarper: `ModelConfig.temporal_context`,
`PreviousFrames`, the crop resampling of an earlier heatmap, training windows with earlier frames,
the benchmark's (d+) rows; and that the faithful `lite` weights still load and give the same poses."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch

from dense_warper_ros.cameras import apply_affines
from dense_warper_ros.data import motion
from dense_warper_ros.data.detector_noise import NoiseConfig
from dense_warper_ros.data.evidence import HeatmapConfig
from dense_warper_ros.data.rigs import RigConfig, make_rig
from dense_warper_ros.data.schedules import ScheduleConfig
from dense_warper_ros.heatmaps import compose_affines, render_gaussians, resample_to_crop, soft_argmax
from dense_warper_ros.model import NAMED_CONFIGS, DenseWarper, ModelConfig, PreviousFrames
from dense_warper_ros.train.data import DataConfig
from dense_warper_ros.train.loop import LossConfig, OptimConfig, TrainConfig, previous_of, train
from dense_warper_ros.train.loss import mpjpe_3d_loss
from dense_warper_ros.train.windows import synthetic_windows

from assets import require_shipped

if TYPE_CHECKING:
    from dense_warper_ros.warp import TemporalWarp

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "models" / "dense_warper_lite.safetensors"
SHIPPED_TC = REPO / "models" / "dense_warper_lite_tc.safetensors"
STAGE3_TC = REPO / "config" / "train" / "init" / "dense_warper_lite_tc_stage3.safetensors"  # shipped file's init
REFERENCE = Path(__file__).with_name("data") / "lite_shipped_reference.json"


def windows(history: int, *, noise: NoiseConfig | None = None, batch: int = 3, seed: int = 0,
            clip: str = "run", cams: int = 4) -> dict[str, torch.Tensor]:
    """One batch of benchmark-like windows (4-camera ring, 60 frames/s even interleave)."""
    rig = make_rig(dataclasses.replace(RigConfig(), num_cameras=cams))
    gen = synthetic_windows(clips=[motion.load_clip(clip)], rigs=[rig], schedule=ScheduleConfig(),
                            noise=noise or NoiseConfig(), heatmap=HeatmapConfig(), batch_size=batch,
                            rng=np.random.default_rng(seed), augment=None, history=history)
    return next(gen)


def reference_batch() -> dict[str, torch.Tensor]:
    """The fixed inputs of the old-weights regression (history 0: the draws the code always made)."""
    return windows(0, batch=2, seed=7)


def test_lite_tc_preset_and_describe():
    c = ModelConfig.named("lite_tc")
    assert c.temporal_context == 1 and c.velocity_prior and c.view_confidence
    assert NAMED_CONFIGS["lite"].temporal_context == 0                 # the faithful default
    lite, tc = DenseWarper(ModelConfig.named("lite")), DenseWarper(c)
    assert lite.describe()["frames_per_view"] == 1 and tc.describe()["frames_per_view"] == 2
    # extra trunk input: K (J + 1) channels; plus J prior gains and a J-channel confidence head
    extra = tc.describe()["warp_parameters"] - lite.describe()["warp_parameters"]
    assert 0 < extra < 20_000
    with pytest.raises(ValueError, match="velocity_prior"):
        ModelConfig.named("lite", velocity_prior=True)


def test_runs_with_and_without_previous_and_shapes():
    b = windows(1)
    model = DenseWarper(ModelConfig.named("lite_tc")).eval()
    args = (b["heatmaps"], b["P"], b["affines"], b["times"], b["valid"])
    B, V = b["valid"].shape
    prev = previous_of(b)
    assert prev.heatmaps.shape == (B, V, 1, 17, 48, 48) and prev.times.dtype == torch.float64
    with torch.no_grad():
        none = model.pose_at(*args, b["times"][:, -1])
        full = model.pose_at(*args, b["times"][:, -1], previous=prev)
        dead = model.pose_at(*args, b["times"][:, -1], previous=prev._replace(valid=torch.zeros_like(prev.valid)))
        win = model.forward_window(*args, previous=prev)
    assert none.points.shape == full.points.shape == (B, 17, 3)
    assert win.poses.shape == (B, V, 17, 3) and win.heatmaps.shape == (B, V, V, 17, 48, 48)
    assert torch.isfinite(full.points).all()
    torch.testing.assert_close(dead.points, none.points)                # all-invalid = no history
    assert not torch.allclose(full.points, none.points)                  # the history is used
    torch.testing.assert_close(win.poses[:, -1], full.points, rtol=1e-4, atol=1e-5)  # stream = batch
    # K given larger than the model's: cut; smaller (0): padded as missing
    more = PreviousFrames(*(torch.cat([x, x], 2) for x in prev))
    with torch.no_grad():
        torch.testing.assert_close(model.pose_at(*args, b["times"][:, -1], previous=more).points, full.points)
        zero = PreviousFrames(*(x[:, :, :0] for x in prev))
        torch.testing.assert_close(model.pose_at(*args, b["times"][:, -1], previous=zero).points, none.points)
    with pytest.raises(ValueError, match="previous.heatmaps"):
        model.pose_at(*args, b["times"][:, -1], previous=prev._replace(heatmaps=prev.heatmaps[:, :2]))


def test_models_without_temporal_context_ignore_previous():
    b = windows(1)
    model = DenseWarper(ModelConfig.named("lite")).eval()
    args = (b["heatmaps"], b["P"], b["affines"], b["times"], b["valid"], b["times"][:, -1])
    with torch.no_grad():
        a = model.pose_at(*args).points
        c = model.pose_at(*args, previous=previous_of(b)).points
    assert torch.equal(a, c)


def test_velocity_prior_moves_views_to_the_target_time():
    """Untrained: lite warps are the identity (= naive interleaving); lite_tc starts at each view's
    constant-velocity motion, so on noiseless running its warped views land much closer to where
    the joints are at the target time."""
    b = windows(1, noise=NoiseConfig.noiseless(), batch=6, clip="run")
    newest = b["times"].argmax(1)
    i = torch.arange(len(newest))
    args = (b["heatmaps"], b["P"], b["affines"], b["times"], b["valid"], b["times"][i, newest])
    gt = b["poses"][i, newest]
    target = b["target_uv"][i, :, newest]                                  # (B, V, J, 2) heatmap px
    with torch.no_grad():
        naive = DenseWarper(ModelConfig.named("lite")).eval().pose_at(*args)
        tc = DenseWarper(ModelConfig.named("lite_tc")).eval().pose_at(*args, previous=previous_of(b))
    err2d = {k: (apply_affines(b["affines"], o.uv) - target).norm(dim=-1).mean().item()
             for k, o in (("naive", naive), ("tc", tc))}
    assert err2d["tc"] < 0.5 * err2d["naive"], err2d
    assert mpjpe_3d_loss(tc.points, gt) < mpjpe_3d_loss(naive.points, gt)


def test_history_weight_caps_a_warped_view_by_its_previous_peak():
    """`history_weight`: a view moved from two frames is only as sure as the weaker one. A faint
    previous frame (peak x 0.2) lowers that view's DLT weight (the output confidence) and leaves the
    poses of windows without earlier frames as they were."""
    b = windows(1, noise=NoiseConfig.noiseless(), batch=4, clip="run")
    newest = b["times"].argmax(1)
    i = torch.arange(len(newest))
    args = (b["heatmaps"], b["P"], b["affines"], b["times"], b["valid"], b["times"][i, newest])
    prev = previous_of(b)
    faint = PreviousFrames(prev.heatmaps * 0.2, prev.affines, prev.times, prev.valid)
    plain = DenseWarper(ModelConfig.named("lite_tc")).eval()
    capped = DenseWarper(ModelConfig.named("lite_tc", history_weight=True)).eval()
    with torch.no_grad():
        p0 = plain.pose_at(*args, previous=faint)
        p1 = capped.pose_at(*args, previous=faint)
        full0 = plain.pose_at(*args, previous=prev)                # bright previous frames: the cap
        full1 = capped.pose_at(*args, previous=prev)               # hardly bites
        none0, none1 = plain.pose_at(*args), capped.pose_at(*args)
    assert (p1.confidence < p0.confidence - 0.1).all()
    torch.testing.assert_close(full1.confidence, full0.confidence, atol=0.05, rtol=0)
    torch.testing.assert_close(none1.points, none0.points, equal_nan=True)


def _fusion_warp(bias: float) -> "TemporalWarp":
    from dense_warper_ros.warp import TemporalWarp
    warp = TemporalWarp(num_joints=2, channels=8, num_blocks=1, offset_dilations=(1,),
                        offset_mode="per_channel", time_inputs=2, fusion=True).eval()
    with torch.no_grad():
        warp.fusion_head.bias.fill_(bias)
    return warp


def test_fusion_moves_the_previous_frame_by_its_step_and_blends_it():
    """`temporal_fusion`: the previous frame, moved by its step to the current frame (and the same
    offsets), is blended in. With the blend weight near 1 and identity offsets, a previous frame 3 px
    to the left of the current one lands on it; near 0 the output is the warp without fusion; at
    the start weight (0.5) it is the average of the two; joints not usable in both frames are never
    blended."""
    from dense_warper_ros.warp import FUSION_START_LOGIT
    from dense_warper_ros.temporal_context import FusionInput
    uv_cur = torch.tensor([[[20.0, 24.0], [30.0, 10.0]]])                    # (N=1, J=2, 2) (x, y)
    step = torch.tensor([[[3.0, 0.0], [0.0, -2.0]]])                         # previous -> current
    x = render_gaussians(uv_cur, 48, 2.0)
    prev = render_gaussians(uv_cur - step, 48, 2.0)
    d, dt = torch.zeros_like(x), torch.zeros(1, 2)
    both = torch.ones(1, 2, dtype=torch.bool)
    with torch.no_grad():
        full = _fusion_warp(20.0)(x, d, dt, fuse_with=FusionInput(prev, step, both))
        wrong = _fusion_warp(20.0)(x, d, dt, fuse_with=FusionInput(prev, -step, both))
        start = _fusion_warp(FUSION_START_LOGIT)(x, d, dt, fuse_with=FusionInput(prev, step, both))
        none = _fusion_warp(-20.0)(x, d, dt, fuse_with=FusionInput(prev, step, both))
        plain = _fusion_warp(FUSION_START_LOGIT)(x, d, dt)
        one = _fusion_warp(20.0)(x, d, dt, fuse_with=FusionInput(prev, step, torch.tensor([[True, False]])))
    peak = lambda hm: soft_argmax(hm, temperature=0.1)[0]                    # noqa: E731
    torch.testing.assert_close(peak(full), uv_cur, atol=0.05, rtol=0)
    assert ((peak(wrong) - uv_cur).norm(dim=-1) > 1.5 * step.norm(dim=-1)).all()   # the sign matters
    torch.testing.assert_close(plain, x, atol=1e-6, rtol=0)                  # identity start
    torch.testing.assert_close(none, x, atol=1e-6, rtol=0)
    torch.testing.assert_close(start, 0.5 * (x + full), atol=1e-5, rtol=0)
    torch.testing.assert_close(one[:, 1], x[:, 1], atol=1e-6, rtol=0)        # not usable: no blend
    with pytest.raises(ValueError, match="temporal_fusion"):
        ModelConfig.named("lite", temporal_fusion=True)


@pytest.mark.parametrize("mode, heads", [("per_channel", (2, 2)), ("per_channel", (1, 3)), ("per_tap", (2,))])
def test_fusion_moves_both_frames_in_one_call_as_in_two(mode, heads):
    """The shipped warp moves the current and the previous frame in one grid_sample, upsampling the
    offsets once and adding the step after: the same result as two separate deformations with the
    step added before upsampling (bilinear upsampling keeps a constant), on every offset layout."""
    from dense_warper_ros.warp import TemporalWarp
    torch.manual_seed(0)
    warp = TemporalWarp(num_joints=3, channels=8, num_blocks=1, offset_dilations=heads, offset_mode=mode,
                        trunk_stride=2, fusion=True).eval()
    with torch.no_grad():
        for h in warp.heads:
            h.weight.normal_(0, 0.05)
        for k in warp.kernels:
            k.normal_(0, 0.3)
    x, prev, d = torch.rand(2, 3, 24, 24), torch.rand(2, 3, 24, 24), torch.rand(2, 3, 24, 24)
    step = torch.randn(2, 3, 2) * 2
    with torch.no_grad():
        offs = [head(warp.trunk(d)) for head in warp.heads]
        out, moved = warp._deform(x, offs, (prev, warp._shift_offsets(step)))
        shifted = [o + warp._shift_offsets(step)[:, :, None, None] for o in offs]
        torch.testing.assert_close(out, warp._deform(x, offs), atol=1e-5, rtol=0)
        torch.testing.assert_close(moved, warp._deform(prev, shifted), atol=1e-5, rtol=0)
        assert (moved - warp._deform(prev, offs)).abs().max() > 0.05           # the step moved it


def test_fusion_model_starts_from_trained_weights_and_trains(tmp_path):
    """A recipe may add the fusion head to weights trained without it (`init`): the new head starts
    at its start value, every other weight is the file's, and the poses move only where both frames
    see a joint; a few steps train the head."""
    from dense_warper_ros.warp import FUSION_START_LOGIT
    require_shipped(STAGE3_TC)
    from dense_warper_ros.train.loop import build_model
    data = DataConfig(train_clips=("run",), min_cameras=3, max_cameras=3, rigs_per_batch=1)
    cfg = TrainConfig(model="lite_tc", model_overrides={"temporal_fusion": True}, init=str(STAGE3_TC),
                      data=data, optim=OptimConfig(batch_size=2, steps=2, lr=1e-2), loss=LossConfig(w3d=0.5),
                      threads=1, ckpt_every=2, val_every=1000, log_every=1000)
    model, start = build_model(cfg), DenseWarper.load(STAGE3_TC)
    for k, v in start.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    head = model.warps["shared"].fusion_head
    assert head.weight.abs().sum() == 0 and (head.bias == FUSION_START_LOGIT).all()
    b = windows(1, batch=2)
    args = (b["heatmaps"], b["P"], b["affines"], b["times"], b["valid"], b["times"][:, 1])
    with torch.no_grad():
        fused = model.eval().pose_at(*args, previous=previous_of(b)).points
        plain = start.eval().pose_at(*args, previous=previous_of(b)).points
        alone = model.pose_at(*args).points                                   # no history: nothing to fuse
    gap = (fused - plain).norm(dim=-1)                                        # metres
    assert 0 < gap.median() < 0.05
    torch.testing.assert_close(alone, start.pose_at(*args).points, equal_nan=True)
    train(cfg, tmp_path, progress=False, validation=False, log=lambda s: None)
    trained = DenseWarper.load(tmp_path / "model.safetensors")
    assert trained.config.temporal_fusion
    assert trained.warps["shared"].fusion_head.weight.abs().sum() > 0
    bad = dataclasses.replace(cfg, model_overrides={"temporal_fusion": True, "warp_channels": 16})
    with pytest.raises(ValueError, match="do not fit"):
        build_model(bad)


def test_resample_to_crop_puts_a_point_where_the_new_crop_sees_it():
    """A Gaussian at image point u rendered in crop A_src, resampled into crop A_dst, peaks at
    A_dst(u) (crops move and zoom between a view's frames)."""
    u = torch.tensor([[[512.0, 430.0]]], dtype=torch.float64)               # (1, 1, 2) image px
    A_src = torch.tensor([[[0.040, 0.0, -4.0], [0.0, 0.040, -2.0]]], dtype=torch.float64)
    A_dst = torch.tensor([[[0.046, 0.0, -6.5], [0.0, 0.046, -3.0]]], dtype=torch.float64)
    hm = render_gaussians(apply_affines(A_src, u), 48, 2.5)                 # (1, 1, 48, 48)
    out = resample_to_crop(hm, A_src, A_dst)
    uv, peak, ok, _ = soft_argmax(out, temperature=0.1)
    want = apply_affines(A_dst, u)[0, 0]
    assert ok.all() and peak.item() > 0.9
    assert torch.allclose(uv[0, 0], want, atol=0.05), (uv, want)
    # identity crops: unchanged; composition is "A after B"
    torch.testing.assert_close(resample_to_crop(hm, A_src, A_src), hm, atol=1e-6, rtol=0)
    AB = compose_affines(A_dst, A_src)
    torch.testing.assert_close(apply_affines(AB, u), apply_affines(A_dst, apply_affines(A_src, u)))


def test_training_windows_with_earlier_frames():
    b = windows(2, noise=NoiseConfig.noiseless(), batch=2)
    B, V = b["valid"].shape
    assert b["prev_heatmaps"].shape == (B, V, 2, 17, 48, 48)
    assert b["prev_affines"].shape == (B, V, 2, 2, 3) and b["prev_valid"].all()
    period = 4 / 60.0                                                      # 15 Hz per camera
    gaps = b["times"][..., None] - b["prev_times"]
    torch.testing.assert_close(gaps, torch.tensor([period, 2 * period]).expand(B, V, 2), atol=1e-5, rtol=0)
    # the earlier frame's heatmap decodes where its own crop sees the joint at its own time: the
    # current heatmap decodes elsewhere (the subject moved), the earlier one near the re-projected past
    uv_prev, _, ok, _ = soft_argmax(b["prev_heatmaps"][:, :, 0])
    uv_cur, _, _, _ = soft_argmax(b["heatmaps"])
    moved = (uv_prev - uv_cur).norm(dim=-1)[ok]
    assert moved.mean() > 0.3                                              # running: joints move
    # history 0 draws exactly what the faithful method is trained on: no extra random draws
    a0, a1 = windows(0, seed=3), windows(0, seed=3)
    assert set(a0) == {"heatmaps", "P", "affines", "times", "valid", "poses", "target_uv", "target_visible"}
    assert torch.equal(a0["heatmaps"], a1["heatmaps"])


def test_train_a_few_steps_with_temporal_context(tmp_path):
    data = DataConfig(train_clips=("run",), min_cameras=3, max_cameras=3, rigs_per_batch=1)
    cfg = TrainConfig(model="lite_tc", data=data, optim=OptimConfig(batch_size=2, steps=3, lr=1e-2),
                      loss=LossConfig(w3d=0.5), threads=1, ckpt_every=3, val_every=1000, log_every=1000,
                      causal_prob=0.5)
    res = train(cfg, tmp_path, progress=False, validation=False, log=lambda s: None)
    assert res["step"] == 3
    model = DenseWarper.load(tmp_path / "model.safetensors")
    assert model.config.temporal_context == 1
    warp = model.warps["shared"]
    assert not torch.allclose(warp.prior_gain, torch.ones_like(warp.prior_gain))   # trained
    assert warp.confidence_head.weight.abs().sum() > 0


def test_lite_tc_save_load_round_trip(tmp_path):
    torch.manual_seed(0)
    model = DenseWarper(ModelConfig.named("lite_tc")).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    model.save(tmp_path / "tc.safetensors")
    again = DenseWarper.load(tmp_path / "tc.safetensors").eval()
    assert again.config == model.config
    b = windows(1, batch=2)
    args = (b["heatmaps"], b["P"], b["affines"], b["times"], b["valid"], b["times"][:, 1])
    with torch.no_grad():
        assert torch.equal(model.pose_at(*args, previous=previous_of(b)).points,
                           again.pose_at(*args, previous=previous_of(b)).points)


def test_shipped_lite_weights_still_load_and_match_the_reference():
    """The faithful file (an older config layout) rebuilds its own config and gives the reference
    poses of test/data/lite_shipped_reference.json: the temporal-context code leaves it unchanged."""
    require_shipped(SHIPPED)
    ref = json.loads(REFERENCE.read_text())
    model = DenseWarper.load(SHIPPED).eval()
    assert model.config.temporal_context == 0 and model.describe()["frames_per_view"] == 1
    b = reference_batch()
    with torch.no_grad():
        out = model.forward_window(b["heatmaps"], b["P"], b["affines"], b["times"], b["valid"])
    want = torch.tensor(ref["poses"], dtype=out.poses.dtype)
    torch.testing.assert_close(out.poses, want, atol=1e-5, rtol=0)


def test_shipped_lite_tc_weights_load():
    require_shipped(SHIPPED_TC)
    model = DenseWarper.load(SHIPPED_TC).eval()
    assert model.config.temporal_context >= 1 and model.describe()["frames_per_view"] >= 2
    gain = model.warps["shared"].prior_gain
    assert gain is not None and not torch.allclose(gain, torch.ones_like(gain))   # trained
    # stage 4 (config/train/lite_tc_fusion.yaml): the previous frame is blended in by a trained head
    head = model.warps["shared"].fusion_head
    assert model.config.temporal_fusion and head is not None and head.weight.abs().sum() > 0
    assert DenseWarper.load(STAGE3_TC).warps["shared"].fusion_head is None      # the recipe's init


def test_benchmark_feeds_previous_frames_to_d_plus():
    from dense_warper_ros.eval import accuracy, baselines, bench_config, densewarper_method, sequences
    cfg = bench_config.load_config(accuracy.DEFAULT_CONFIG)
    cfg = dataclasses.replace(cfg, bench=dataclasses.replace(cfg.bench, methods=("b", "c", "d", "d+"),
                                                             max_duration_s=0.8))
    lite, tc = densewarper_method.load_warper(None, "lite"), densewarper_method.load_warper(None, "lite_tc")
    res = sequences.synthetic_sequence("walk", cfg, lite, HeatmapConfig(), tc)
    assert {"d/causal", "d+/causal", "d/windowed", "d+/windowed"} <= set(res.outputs)
    gt = res.gt
    err = {k: np.nanmean(np.linalg.norm(o.pred - gt, axis=-1)) for k, o in res.outputs.items()}
    assert err["d+/causal"] < err["d/causal"]                  # the untrained prior already moves views
    # select_previous: the frames of the same camera just before the selected one, newest first
    class Bank:                                                # two cameras, frames every 10 ms
        camera = np.array([0, 1, 0, 1, 0, 1, 0, 1])
        time = np.arange(8) * 0.01
        cameras = [None, None]

        def __len__(self):
            return 8
    prev = baselines.select_previous(Bank(), np.arange(8), np.array([[6, 5], [0, -1]]), 2)
    assert prev.tolist() == [[[4, 2], [3, 1]], [[-1, -1], [-1, -1]]]
