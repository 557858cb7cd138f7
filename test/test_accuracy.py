"""The accuracy benchmark: baselines, frame selection, the honest comparison, and the CLI."""
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from dense_warper_ros.data import detector_noise, evidence, motion, rigs, schedules
from dense_warper_ros.data.video import TRIANGULATED_DETECTION_TRUTH
from dense_warper_ros.eval import (accuracy, baselines, bench_config, densewarper_method, methods, metrics, report,
                                   sequences)
from dense_warper_ros.skeleton import H36M_PARENTS, bone_lengths
from dense_warper_ros.weights import default_weights

from assets import require_movenet, require_pose2sim

REPO = Path(__file__).resolve().parents[1]


def noiseless_cfg(**bench):
    cfg = bench_config.load_config(accuracy.DEFAULT_CONFIG)
    return dataclasses.replace(cfg, noise=detector_noise.NoiseConfig.noiseless(),
                               bench=dataclasses.replace(cfg.bench, **bench))


def test_dense_reference_is_exact_on_noiseless_evidence_and_offsets_matter():
    cfg = noiseless_cfg(clips=("walk",), methods=("a", "b", "c", "e", "o", "s"), max_duration_s=1.0)
    res = sequences.synthetic_sequence("walk", cfg, None, cfg.heatmap)
    err = {k: metrics.mpjpe_root_aligned(o.pred, res.gt) * 1000 for k, o in res.outputs.items()}
    assert err["e"] < 1.0 and metrics.mpjpe(res.outputs["e"].pred, res.gt) * 1000 < 1.0
    assert err["o/causal"] < 1.0 and err["o/windowed"] < 1.0       # the oracle's motion is the truth
    assert err["b/causal"] > 10 * err["e"]          # ignoring time offsets costs: the benchmark can tell
    assert err["c/windowed"] < err["b/windowed"] < err["b/causal"]
    for t in ("causal", "windowed"):                # a 3D motion model uses the offsets too
        assert err[f"s/{t}"] < err[f"b/{t}"], err
    assert (res.outputs["s/windowed"].delay == res.outputs["c/windowed"].delay).all()   # (c)'s frames
    assert err["a"] < err["b/causal"]
    assert res.outputs["e"].images_per_s == pytest.approx(4 * res.outputs["b/causal"].images_per_s, rel=0.05)
    assert (res.outputs["b/causal"].delay == 0).all() and res.outputs["b/windowed"].delay.max() <= 0.05 + 1e-9
    assert metrics.coverage(res.outputs["a"].pred) == 1.0


def toy_bank(times_by_cam):
    """A bank of two cameras with hand-set capture times (points are irrelevant here)."""
    cams = rigs.make_rig(rigs.RigConfig(num_cameras=2))
    cam = np.concatenate([np.full(len(t), c) for c, t in enumerate(times_by_cam)])
    t = np.concatenate(times_by_cam)
    zeros = np.zeros((len(t), 17, 2))
    return evidence.EvidenceBank(cams, cam, t, t, np.zeros((len(t), 2, 3)), lambda i: None, zeros,
                                 np.ones((len(t), 17)))


def test_frame_selection():
    bank = toy_bank([np.array([0.0, 0.1, 0.2]), np.array([0.05, 0.15, 0.25])])
    slots = np.arange(len(bank))
    targets = np.array([0.1, 0.15])
    np.testing.assert_array_equal(baselines.select_latest(bank, slots, targets), [[1, 3], [1, 4]])
    # windowed: nearest within 0.05 s after the target (ties to the earlier frame)
    np.testing.assert_array_equal(baselines.select_nearest(bank, slots, targets, 0.05), [[1, 3], [1, 4]])
    np.testing.assert_array_equal(baselines.select_nearest(bank, slots, np.array([0.12]), 0.05), [[1, 4]])
    np.testing.assert_array_equal(baselines.select_nearest(bank, slots, np.array([0.12]), 0.01), [[1, 3]])
    np.testing.assert_array_equal(baselines.select_latest(bank, slots, np.array([0.0]), count=2),
                                  [[[-1, 0], [-1, -1]]])
    pairs = baselines.select_bracket(bank, slots, np.array([0.1]), "windowed", 0.05)
    np.testing.assert_array_equal(pairs, [[[0, 1], [3, 4]]])           # camera 0's next is too late
    pairs = baselines.select_bracket(bank, slots, np.array([0.1]), "windowed", 0.1)
    np.testing.assert_array_equal(pairs, [[[1, 2], [3, 4]]])           # frames on both sides
    pairs = baselines.select_bracket(bank, slots, np.array([0.1]), "causal", 0.05)
    np.testing.assert_array_equal(pairs, [[[0, 1], [-1, 3]]])        # camera 1 has one past frame
    with pytest.raises(ValueError, match="'later'"):
        baselines.select_bracket(bank, slots, targets, "later", 0.05)
    pairs = baselines.select_bracket(bank, slots, np.array([0.16]), "windowed", 0.1)     # [[1, 2], [4, 5]]
    np.testing.assert_array_equal(methods.oracle_window(bank, slots, pairs, 1), [[[2], [5]]])
    np.testing.assert_array_equal(methods.oracle_window(bank, slots, pairs, 2), pairs)
    np.testing.assert_array_equal(methods.oracle_window(bank, slots, pairs, 4),      # oldest first
                                  [[[-1, 0, 1, 2], [-1, 3, 4, 5]]])


def test_interpolation_protocol_slerps_bones_and_keeps_lengths():
    clip = motion.load_clip("spinkick")
    t = clip.key_times[::4]
    poses = clip.at(t)
    q = np.linspace(t[0], t[-1], 97)
    out = baselines.interpolate_poses(t, poses, q)
    np.testing.assert_allclose(baselines.interpolate_poses(t, poses, t), poses, atol=1e-12)
    np.testing.assert_allclose(bone_lengths(out), np.broadcast_to(bone_lengths(poses[:1]), (97, 16)), atol=1e-9)
    # one bone turning 90 degrees: halfway it points at 45 degrees with full length (a lerp would shorten it)
    a = np.zeros((2, 17, 3))
    for j, p in enumerate(H36M_PARENTS):
        if p >= 0:
            a[:, j] = a[:, p] + [0, 0, 0.1]
    a[1, 1:4] = a[1, 0] + np.array([[0.1, 0, 0], [0.2, 0, 0], [0.3, 0, 0]])   # right leg to +x
    mid = baselines.interpolate_poses(np.array([0.0, 1.0]), a, np.array([0.5]))[0]
    np.testing.assert_allclose(mid[1], [0.1 / np.sqrt(2), 0, 0.1 / np.sqrt(2)], atol=1e-12)
    assert np.isnan(baselines.interpolate_poses(np.array([0.0, 1.0]), a, np.array([1.5]))).all()


def test_constant_velocity_follows_linear_motion():
    cams = rigs.make_rig()
    base = motion.load_clip("walk").key_joints[0]

    def linear(times):                          # the whole body slides at 1.5 m/s along x
        return base[None] + np.asarray(times)[:, None, None] * np.array([1.5, 0.0, 0.0])
    s = schedules.interleaved(schedules.ScheduleConfig(), 4, 0.0, 1.0)
    bank = evidence.synthetic_bank(cams, s.camera, s.nominal, s.time, linear,
                                   detector_noise.NoiseConfig.noiseless(), evidence.HeatmapConfig())
    slots = np.arange(len(bank))
    targets = s.time[8:-8]
    gt = linear(targets)
    naive = baselines.naive(bank, baselines.select_latest(bank, slots, targets))
    cv = baselines.constant_velocity(bank, baselines.select_bracket(bank, slots, targets, "causal", 0.05), targets)
    assert metrics.mpjpe(naive, gt) > 0.02                      # up to 3 frames behind at 1.5 m/s
    assert metrics.mpjpe(cv, gt) < 0.003


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (the device tool's GPU machine)")
def test_shipped_warper_gives_the_same_poses_on_cuda():
    cfg = bench_config.load_config(accuracy.DEFAULT_CONFIG)
    cfg = dataclasses.replace(cfg, bench=dataclasses.replace(cfg.bench, methods=("d+",), max_duration_s=1.0))
    preds = {}
    for dev in ("cpu", "cuda"):
        warper = densewarper_method.load_warper(default_weights("lite_tc"), "lite_tc", dev)
        res = sequences.synthetic_sequence("spinkick", cfg, None, cfg.heatmap, warper_tc=warper)
        preds[dev] = {k: o.pred for k, o in res.outputs.items()}
    for k in preds["cpu"]:
        np.testing.assert_allclose(preds["cuda"][k], preds["cpu"][k], atol=5e-4)      # 0.5 mm


def test_bench_refuses_a_device_it_cannot_use(tmp_path):
    with pytest.raises(ValueError, match="only cpu and cuda"):
        accuracy.main(["--quick", "--no-video", "--device", "meta", "--out", str(tmp_path)])


def test_untrained_model_poses_are_naive_interleaving():
    """Identity warps leave every view's heatmap as it is, so (d) must reproduce (b) on the same
    frames: a check that heatmaps, P, affines and times reach the model consistently."""
    cfg = bench_config.load_config(accuracy.DEFAULT_CONFIG)
    cfg = dataclasses.replace(cfg, bench=dataclasses.replace(cfg.bench, methods=("b", "d"), max_duration_s=0.5))
    warper = densewarper_method.load_warper(None, "lite")
    heatmap = dataclasses.replace(cfg.heatmap, size=warper.heatmap_size)
    res = sequences.synthetic_sequence("spinkick", cfg, warper, heatmap)
    for timing in ("causal", "windowed"):
        d, b = res.outputs[f"d/{timing}"].pred, res.outputs[f"b/{timing}"].pred
        assert np.nanmax(np.linalg.norm(d - b, axis=-1)) < 1e-3
        assert metrics.mpjpe(d, res.gt) > 0.01                  # and it is not trivially exact


def test_config_errors_name_the_bad_value(tmp_path):
    (tmp_path / "b.yaml").write_text("bench:\n  methods: [a, z]\n")
    with pytest.raises(ValueError, match="'z'"):
        bench_config.load_config(tmp_path / "b.yaml")
    (tmp_path / "c.yaml").write_text("camera:\n  x: 1\n")
    with pytest.raises(ValueError, match="camera"):
        bench_config.load_config(tmp_path / "c.yaml")


def test_oracle_keeps_detection_noise_and_removes_motion():
    cfg = bench_config.load_config(accuracy.DEFAULT_CONFIG)
    cfg = dataclasses.replace(cfg, bench=dataclasses.replace(cfg.bench, clips=("walk",), methods=("b", "c", "e", "o"),
                                                             max_duration_s=2.0))
    res = sequences.synthetic_sequence("walk", cfg, None, cfg.heatmap)
    err = {k: metrics.mpjpe_root_aligned(o.pred, res.gt) * 1000 for k, o in res.outputs.items()}
    for t in ("causal", "windowed"):                               # noise stays, motion goes
        assert 0.5 * err["e"] < err[f"o/{t}"] < min(err[f"b/{t}"], err[f"c/{t}"]), err
    longer = {}
    for n in (1, 4):                  # a view's single frame has all of its noise; four average some out
        c = dataclasses.replace(cfg, bench=dataclasses.replace(cfg.bench, methods=("o",), oracle_frames=n))
        r = sequences.synthetic_sequence("walk", c, None, c.heatmap)
        longer[n] = metrics.mpjpe_root_aligned(r.outputs["o/windowed"].pred, r.gt) * 1000
    assert longer[4] < err["o/windowed"] < longer[1], (longer, err)
    with pytest.raises(ValueError, match="oracle_frames"):
        bench_config.BenchConfig(oracle_frames=0)


def test_robust_triangulation_undoes_left_right_swaps_for_every_method():
    cfg = bench_config.load_config(accuracy.DEFAULT_CONFIG)
    swaps = dataclasses.replace(detector_noise.NoiseConfig.noiseless(), swap_prob=0.05)
    err = {}
    for outlier in (None, 2.5):
        c = dataclasses.replace(cfg, noise=swaps, bench=dataclasses.replace(
            cfg.bench, clips=("walk",), methods=("a", "c", "e"), max_duration_s=2.0, outlier_threshold=outlier))
        res = sequences.synthetic_sequence("walk", c, None, c.heatmap)
        err[outlier] = {k: metrics.mpjpe_root_aligned(o.pred, res.gt) * 1000 for k, o in res.outputs.items()}
    for k in err[None]:
        assert err[2.5][k] < err[None][k], (k, err)
    assert err[2.5]["e"] < 0.4 * err[None]["e"], err               # most of what swaps cost (e) is gone
    assert bench_config.load_config(REPO / "config" / "bench" / "robust.yaml").bench.outlier_threshold == 2.5
    with pytest.raises(ValueError, match="outlier_threshold"):
        bench_config.BenchConfig(outlier_threshold=-1.0)
    with pytest.raises(ValueError, match="method s"):          # (s) has no rejection: said, not ignored
        bench_config.BenchConfig(methods=("b", "s"), outlier_threshold=2.5)


@pytest.mark.parametrize("name", ["default", "3cam", "6cam", "uneven", "paper"])
def test_shipped_configs_load(name):
    cfg = bench_config.load_config(REPO / "config" / "bench" / f"{name}.yaml")
    n = len(rigs.make_rig(cfg.rig))
    assert n == {"3cam": 3, "6cam": 6}.get(name, 4)
    assert cfg.schedule.offsets(n).shape == (n,)
    if name == "paper":               # 96 px paper warps and 48 px lite_tc warps cannot share heatmaps
        assert "d+" not in cfg.bench.methods and cfg.bench.model == "paper"


def test_cli_quick_prints_the_table_and_writes_json_and_png(tmp_path, capsys):
    rc = accuracy.main(["--quick", "--untrained", "--no-video", "--config",
                        str(REPO / "config" / "bench" / "uneven.yaml"), "--out", str(tmp_path),
                        "--oracle", "3", "--methods", "a", "b", "c", "d", "d+", "e", "s"])
    assert rc == 0
    out = capsys.readouterr().out
    for m, name in bench_config.METHOD_NAMES.items():
        if (name.startswith("(d)") and "(d)" not in out) or m not in bench_config.BenchConfig().methods:
            continue                                       # (o) and (s) run only on request
        assert name in out
    assert "| causal |" in out and "| windowed |" in out and "windowed (interpolates)" in out
    saved = json.loads((tmp_path / "accuracy.json").read_text())
    scores = saved["synthetic"]["scores"]
    assert {"a", "b/causal", "b/windowed", "c/causal", "c/windowed", "e"} <= set(scores)
    for s in scores.values():
        assert s["mpjpe_root_mm"] > 0 and len(s["per_joint_root_mm"]) == 17 and "walk" in s["per_clip"]
    assert scores["e"]["images_per_s"] > 3 * scores["b/causal"]["images_per_s"]
    assert saved["git"] and saved["config"]["schedule"]["drop_prob"] == 0.02
    assert "o/windowed" in scores and saved["config"]["bench"]["oracle_frames"] == 3
    assert "s/windowed" in scores and bench_config.METHOD_NAMES["s"] in out      # --methods adds (s)
    assert (tmp_path / "accuracy.png").stat().st_size > 10_000


def test_video_protocol_on_a_synchronised_synthetic_recording():
    """The real-video path (every camera at every frame, pseudo ground truth = dense triangulation,
    camera c used only at frames f mod N = c, held-out-view reprojection) on rendered evidence."""
    cfg = bench_config.load_config(accuracy.DEFAULT_CONFIG)
    cfg = dataclasses.replace(cfg, bench=dataclasses.replace(cfg.bench, methods=("a", "b", "c", "e", "o"),
                                                             video_heldout_from=0))
    clip = motion.load_clip("dance_b")
    cams = rigs.make_rig()
    frames = np.arange(40) / 60.0
    sync = schedules.synchronized(frames, 4)
    bank = evidence.synthetic_bank(cams, sync.camera, sync.nominal, sync.time, clip.at,
                                   detector_noise.NoiseConfig.noiseless(), cfg.heatmap)
    res = sequences.video_sequence(bank, cfg, None, name="rendered")
    T = len(res.targets)
    assert T == 40 - 2 * 4 and res.pseudo_gt
    np.testing.assert_array_equal(bank.camera[res.target_slots], np.round(res.targets * 60).astype(int) % 4)
    assert np.allclose(res.outputs["e"].pred, res.gt, equal_nan=True)        # (e) is the pseudo-GT
    assert not any(k.startswith("o/") for k in res.outputs)                 # no oracle without truth
    assert metrics.mpjpe(res.gt, clip.at(res.targets)) < 0.001             # noiseless: pseudo-GT = GT
    b = res.outputs["b/causal"]
    assert (b.used_now.sum(1) == 1).all()                                   # only the newest frame's camera
    assert len(res.heldout_px["b/causal"]) == T * 3 * 17                    # 3 held-out views x 17 joints
    a = res.outputs["a"]
    assert (a.used_now.sum(1) % 4 == 0).all() and a.used_now.any()         # all 4 at sync frames, else none
    assert "e" not in res.heldout_px
    # causal naive interleaving reprojects worse into the views it did not use than windowed (c)
    assert np.mean(res.heldout_px["b/causal"]) > np.mean(res.heldout_px["c/windowed"])
    table = report.markdown_table(report.score([res]), truth=res.truth)
    # frames before video_heldout_from (fine-tuning frames) feed no scored target: from 20, the
    # first target whose window (one cycle back) lies after it is frame 24
    held = dataclasses.replace(cfg, bench=dataclasses.replace(cfg.bench, video_heldout_from=20))
    frames_scored = np.round(sequences.video_sequence(bank, held, None).targets * 60).astype(int)
    assert frames_scored.min() == 24 and frames_scored.max() == 40 - 4 - 1
    assert f"vs {TRIANGULATED_DETECTION_TRUTH})" in table and res.truth == TRIANGULATED_DETECTION_TRUTH
    assert "Held-out reproj. px" in table and "n/a (all views used)" in table


def _rendered_video(num_cameras: int, fps: float, frames: int = 40):
    """A synchronised rendered recording through the real-video protocol."""
    cfg = bench_config.load_config(accuracy.DEFAULT_CONFIG)
    cfg = dataclasses.replace(cfg, bench=dataclasses.replace(cfg.bench, methods=("a", "b", "c", "e"),
                                                             video_heldout_from=0))
    cams = rigs.ring_rig(num_cameras)
    sync = schedules.synchronized(np.arange(frames) / fps, num_cameras)
    bank = evidence.synthetic_bank(cams, sync.camera, sync.nominal, sync.time, motion.load_clip("dance_b").at,
                                   detector_noise.NoiseConfig.noiseless(), cfg.heatmap)
    return sequences.video_sequence(bank, cfg, None, name="rendered")


def test_video_title_gives_the_recordings_own_rig_and_rate():
    res = _rendered_video(3, 30.0)
    assert res.num_cameras == 3 and res.rate_hz == pytest.approx(30.0)
    title = report.video_title(res, "untrained", "models/x.safetensors")
    assert "3 cameras, 30 frames/s interleaved, 10 each" in title
    assert f"vs {TRIANGULATED_DETECTION_TRUTH}" in title and "(d+) = models/x.safetensors" in title
    four = report.video_title(_rendered_video(4, 60.0), "m", "m_tc")
    assert "4 cameras, 60 frames/s interleaved, 15 each" in four


def test_skeleton_figure_shows_every_method_that_ran_including_d_plus(tmp_path, monkeypatch):
    import matplotlib.figure
    res = _rendered_video(4, 60.0, frames=24)
    for t in ("causal", "windowed"):       # stand-ins for (d+)'s outputs: the figure only draws them
        res.outputs[f"d+/{t}"] = res.outputs[f"c/{t}"]
    saved = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda fig, *a, **k: saved.append(fig))
    report.plot([res], tmp_path / "accuracy_video.png", "title")
    (fig,) = saved
    panels = [ax.get_title().split(":")[0] for sub in fig.subfigs for ax in sub.axes if ax.name == "3d"]
    assert panels == ["a", "b/causal", "c/causal", "d+/causal", "d+/windowed", "e"]
    assert f"black {TRIANGULATED_DETECTION_TRUTH}" in fig.subfigs[1].get_suptitle()


def test_pose2sim_video_through_the_backbone():
    """A few frames of the real demo through MoveNet (fails, naming `make setup`, without them)."""
    video = require_pose2sim(REPO / "data" / "pose2sim")
    require_movenet("lightning")
    cfg = bench_config.load_config(accuracy.DEFAULT_CONFIG)
    cfg = dataclasses.replace(cfg, bench=dataclasses.replace(cfg.bench, methods=("a", "b", "c", "e"),
                                                             video_frames=10, video_heldout_from=0))
    res = sequences.run_video(cfg, None, video, log=lambda s: None)
    assert len(res.targets) == 10 - 8
    assert np.isfinite(res.gt).all(-1).mean() > 0.9                         # the person triangulates
    from dense_warper_ros.skeleton import H36M_BONES
    thigh = H36M_BONES.index((2, 1))
    assert 0.3 < np.nanmedian(bone_lengths(res.gt)[:, thigh]) < 0.55        # metres, a human thigh
    held = np.concatenate([res.heldout_px[k] for k in res.heldout_px])
    assert 1.0 < np.median(held) < 60.0                                     # px in 1080 x 1920 images
