"""The fusion in a child process gives the in-process fusion's poses, survives its child being
killed, reports a child that cannot start, and keeps serving after a bad frame. The per-frame
context cache changes nothing but the time. Real weights, real recordings, real processes."""
import os
import signal
import time

import numpy as np
import pytest
import torch

from assets import require_movenet, require_pose2sim
from torch_threads import one_torch_thread  # noqa: F401


@pytest.fixture(scope="module")
def frames():
    """(camera, stamp, FrameData) of 24 real interleaved pose2sim frames, heatmaps computed once."""
    from dense_warper_ros.data.pose2sim_recording import pose2sim_recording
    from dense_warper_ros.pipeline import build_pipeline
    require_pose2sim()
    require_movenet("lightning")
    rec = pose2sim_recording(num_frames=24, scale=0.25, with_truth=False)
    pipe = build_pipeline(num_cameras=4, device="cpu")
    out = []
    for c, stamp, rgb in rec.frames:
        data = pipe.frame_heatmaps(stamp, rgb, rec.cameras[c], rec.frame_id(c))
        out.append((c, stamp, data))
        pipe.push_heatmaps(c, stamp, data)             # so the crops follow the person, as live
    return out


def _push_all(pipe, frames) -> list:
    poses = []
    for c, stamp, data in frames:
        poses += pipe.push_heatmaps(c, stamp, data)
    return poses


def _same(a, b) -> None:
    assert [p.stamp_ns for p in a] == [p.stamp_ns for p in b]
    for p, q in zip(a, b):
        np.testing.assert_allclose(p.points, q.points, atol=1e-9)
        np.testing.assert_allclose(p.confidence, q.confidence, atol=1e-9)
        assert p.track_id == q.track_id and p.view_stamps_ns == q.view_stamps_ns


@pytest.mark.parametrize("processes", [1, 2])
def test_the_child_gives_the_in_process_poses(frames, processes):
    """One child, or two taking turns: the same poses, track ids and buffer counters as fusing in
    this process, in the same order."""
    from dense_warper_ros.pipeline import build_pipeline
    here = build_pipeline(num_cameras=4, device="cpu")
    there = build_pipeline(num_cameras=4, device="cpu", fusion_processes=processes)
    try:
        pids = there.fusion.pids
        assert len(set(pids)) == processes and os.getpid() not in pids
        a, b = _push_all(here, frames), _push_all(there, frames)
        assert len(a) == len(frames) - 1
        _same(a, b)
        assert there.buffer.stats == here.buffer.stats and there.buffer.pending == here.buffer.pending
        assert there.people_counts() == here.people_counts()
        assert there.crop_box(frames[-1][2].camera, frames[-1][1]) is not None   # the mirrored last pose
        # the node's path: queued without waiting, answered in order on the reply thread
        there.reset()
        got, done = [], []
        for c, stamp, data in frames:
            there.push_async(c, stamp, data, lambda r: (got.extend(r), done.append(1)))
        deadline = time.monotonic() + 30
        while len(done) < len(frames) and time.monotonic() < deadline:
            time.sleep(0.01)
        _same(a, got)
    finally:
        there.close()
    assert there.fusion.pids == [None] * processes


@pytest.mark.parametrize("processes, killed", [(1, 0), (2, 0), (2, 1)])
def test_a_killed_child_is_replaced_and_counted(frames, processes, killed):
    from dense_warper_ros.fusion_process import FusionProcessError
    from dense_warper_ros.pipeline import build_pipeline
    pipe = build_pipeline(num_cameras=4, device="cpu", fusion_processes=processes)
    try:
        assert _push_all(pipe, frames[:8])
        os.kill(pipe.fusion.pids[killed], signal.SIGKILL)
        lost = 0
        poses = []
        for c, stamp, data in frames[8:]:
            try:
                poses += pipe.push_heatmaps(c, stamp, data)
            except FusionProcessError:
                lost += 1
        assert lost <= 1, "only a frame in flight when the child died is lost"
        assert pipe.fusion.restarts == 1
        assert len(poses) >= len(frames[8:]) - 3, "a new child fuses the next frames (its buffer refills)"
    finally:
        pipe.close()


def test_a_frame_only_stored_does_not_wait_for_a_busy_process():
    """A process busy with its own pose (stopped here) takes a frame it only stores without the
    sender waiting; a second frame to solve waits until the first is answered; all are answered
    in order once it goes on."""
    import threading

    from dense_warper_ros.pipeline import build_pipeline
    pipe = build_pipeline(num_cameras=4, device="cpu", fusion_processes=2)
    proc = pipe.fusion.procs[0]
    answered = []
    try:
        assert proc.max_in_flight == 1
        os.kill(pipe.fusion.pids[0], signal.SIGSTOP)
        proc.submit("reset", (True,), lambda r: answered.append("solve 1"))
        t0 = time.monotonic()
        proc.submit("reset", (False,), lambda r: answered.append("store"), counted=False)
        assert time.monotonic() - t0 < 0.5, "a stored frame was held back"
        second = threading.Thread(target=proc.submit,
                                  args=("reset", (True,), lambda r: answered.append("solve 2")))
        second.start()
        second.join(0.5)
        assert second.is_alive(), "a second frame to solve went out before the first was answered"
        os.kill(pipe.fusion.pids[0], signal.SIGCONT)
        second.join(30)
        deadline = time.monotonic() + 30
        while len(answered) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert answered == ["solve 1", "store", "solve 2"]
    finally:
        os.kill(pipe.fusion.pids[0], signal.SIGCONT)
        pipe.close()


def test_a_child_that_cannot_start_says_why(tmp_path):
    from dense_warper_ros.buffer import BufferConfig
    from dense_warper_ros.fusion_process import FusionProcess, FusionProcessError, FusionSpec
    from dense_warper_ros.pipeline import PipelineConfig
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"not a weights file")
    proc = FusionProcess(FusionSpec("lite_tc", str(bad), 4, None, PipelineConfig(buffer=BufferConfig(4))))
    try:
        with pytest.raises(FusionProcessError, match="could not start"):
            proc.wait_ready()
    finally:
        proc.close()


def test_a_bad_frame_is_an_error_and_the_child_goes_on(frames):
    from dataclasses import replace

    from dense_warper_ros.pipeline import build_pipeline
    pipe = build_pipeline(num_cameras=4, device="cpu", fusion_processes=2)
    try:
        _push_all(pipe, frames[:8])
        c, stamp, data = frames[8]
        with pytest.raises(RuntimeError, match="fusion process"):
            pipe.push_heatmaps(c, stamp, replace(data, heatmaps=data.heatmaps[:5]))   # 5 joints, not 17
        assert _push_all(pipe, frames[9:]), "the next frames give poses"
        assert pipe.fusion.restarts == 0
    finally:
        pipe.close()


def test_the_context_cache_changes_nothing_but_the_time(frames):
    """Each frame's temporal context is computed once and reused for the next targets: the poses
    are those of computing it for every target, also across a jump back of the stamps (a looped
    bag: the same stamps then name other frames)."""
    from dataclasses import replace

    from dense_warper_ros.pipeline import build_pipeline
    from dense_warper_ros.temporal_context import ContextCache
    later = [(c, s + 5 * 10**9, d) for c, s, d in frames]
    looped = [(c, s, replace(d, heatmaps=torch.roll(d.heatmaps, 3, dims=-1))) for c, s, d in frames]
    stream = frames + later + looped                     # the last part jumps 5 s back: a reset
    counts = {"cached": [], "fresh": []}

    class Counted(ContextCache):
        def __init__(self, name: str, use_cache: bool):
            super().__init__()
            self.name, self.use_cache = name, use_cache

        def lookup(self, bi, ci, compute):
            def counted(m):
                counts[self.name].append(len(bi) if m is None else len(m))
                return compute(m)
            return super().lookup(bi, ci, counted) if self.use_cache else counted(None)

    cached, fresh = build_pipeline(num_cameras=4, device="cpu"), build_pipeline(num_cameras=4, device="cpu")
    cached._context, fresh._context = Counted("cached", True), Counted("fresh", False)
    a, b = _push_all(cached, stream), _push_all(fresh, stream)
    assert cached.buffer.stats["resets"] == 1
    assert len(a) == len(b) >= len(stream) - 3
    for p, q in zip(a, b):
        np.testing.assert_allclose(p.points, q.points, atol=1e-6)
    assert sum(counts["cached"]) <= len(stream), "at most once per frame"
    assert sum(counts["fresh"]) >= 2.5 * len(stream), "three other views per target without the cache"
