"""The ROS-free per-frame pipeline feeds temporal-context models each view's earlier frames."""
from dataclasses import replace

import numpy as np
import pytest
import torch

from assets import require_movenet, require_pose2sim
from torch_threads import one_torch_thread  # noqa: F401


@pytest.fixture(scope="module")
def recording():
    from dense_warper_ros.data.pose2sim_recording import pose2sim_recording
    require_pose2sim()
    require_movenet("lightning")
    return pose2sim_recording(num_frames=12, scale=0.25, with_truth=False)


def run_pipeline(rec, model_config: str):
    from dense_warper_ros.pipeline import build_pipeline
    pipe = build_pipeline(num_cameras=4, model_config=model_config, weights="none", device="cpu",
                          max_view_age_s=0.2)
    calls = []
    pose_at = pipe.model.pose_at

    def spy(*args, **kw):
        calls.append((args[3].clone(), kw.get("previous")))       # (times, previous)
        return pose_at(*args, **kw)

    pipe.model.pose_at = spy
    poses = []
    for c, stamp, rgb in rec.frames:
        poses += pipe.process(c, stamp, rgb, rec.cameras[c], rec.frame_id(c))
    return pipe, poses, calls


def test_temporal_context_model_gets_each_views_previous_frame(recording):
    pipe, poses, calls = run_pipeline(recording, "lite_tc")
    assert pipe.buffer.config.history == pipe.model.config.temporal_context == 1
    assert len(poses) == len(calls) == len(recording.frames) - 1
    assert all(np.isfinite(p.points).all(axis=1).sum() >= 12 for p in poses)
    times, prev = calls[-1]                          # 4 views, each seen before
    assert prev is not None and prev.valid.shape == (1, 4, 1) and bool(prev.valid.all())
    # camera c's earlier frame is one camera cycle (4 frames) before its current one
    period = (recording.frames[4][1] - recording.frames[0][1]) * 1e-9
    np.testing.assert_allclose((times[0] - prev.times[0, :, 0]).numpy(), period, atol=1e-6)
    assert prev.heatmaps.abs().sum() > 0
    _, first = calls[0]
    assert not bool(first.valid.any()), "no view has an earlier frame yet"


def test_faithful_model_gets_no_previous_frames(recording):
    pipe, poses, calls = run_pipeline(recording, "lite")
    assert pipe.buffer.config.history == 0
    assert calls and all(prev is None for _, prev in calls)


def test_outlier_threshold_reaches_the_model_and_keeps_shipped_weights():
    from dense_warper_ros.pipeline import build_pipeline
    off = build_pipeline(num_cameras=4, device="cpu")
    on = build_pipeline(num_cameras=4, device="cpu", outlier_threshold=2.5)
    assert off.model.config.outlier_threshold is None and on.model.config.outlier_threshold == 2.5
    assert on.weights_source == off.weights_source
    for (k, a), b in zip(off.model.state_dict().items(), on.model.state_dict().values()):
        assert torch.equal(a, b), k


def test_a_replay_does_not_drift_apart_through_the_crops():
    """Each frame's crop follows the last pose, so a pose off in its last digits (another 2D
    backend, another CPU) would give another crop, other heatmaps and, within a second, poses
    millimetres apart. Whole-pixel crop boxes keep two replays together: heatmaps perturbed by 1e-6
    (and, where ONNX Runtime imports, the other 2D backend) give the same poses."""
    from dense_warper_ros.backbones.onnx_runtime import import_onnxruntime, onnx_problem
    from dense_warper_ros.data.pose2sim_recording import pose2sim_recording
    from dense_warper_ros.pipeline import build_pipeline
    require_pose2sim()
    require_movenet("lightning")
    rec = pose2sim_recording(num_frames=64, scale=0.5, with_truth=False)

    def replay(inference: str, jitter: float) -> list:
        pipe = build_pipeline(num_cameras=4, timing="windowed", offline=True, device="cpu", inference=inference)
        g = torch.Generator().manual_seed(0)
        poses = []
        for c, stamp, rgb in rec.frames:
            data = pipe.frame_heatmaps(stamp, rgb, rec.cameras[c], rec.frame_id(c))
            if jitter:
                data = replace(data, heatmaps=data.heatmaps + jitter * torch.rand(data.heatmaps.shape, generator=g))
            poses += pipe.push_heatmaps(c, stamp, data)
        return poses + pipe.flush()

    base = replay("torch", 0.0)
    ort_runs = import_onnxruntime()[0] is not None and onnx_problem("lightning") is None
    others = [replay("torch", 1e-6)] + ([replay("onnxruntime", 0.0)] if ort_runs else [])
    for other in others:
        assert [p.stamp_ns for p in other] == [p.stamp_ns for p in base]
        worst = max(float(np.nanmax(np.abs(p.points - q.points))) for p, q in zip(base, other))
        assert worst < 1e-4, f"replays {worst * 1e3:.3f} mm apart"
