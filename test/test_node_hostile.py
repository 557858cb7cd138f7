"""One hostile camera against the live node over real DDS, in its own process: a bad CameraInfo,
a wrong clock or a frame from the future cost only that camera; a publisher of incompatible QoS
is named under its camera; offline output does not depend
on arrival order; the shipped parameter file is one rcl reads; Ctrl-C is clean; a failed worker
is restarted and reported."""
from __future__ import annotations

import math
import signal
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy missing: run `make setup`")
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402

from dense_warper_ros.msg import Skeleton3DArray  # noqa: E402
from dense_warper_ros.ros.node_process import NodeProcess, diagnostics_values, spin_until  # noqa: E402
from dense_warper_ros.ros.offline_replay import replay_recording  # noqa: E402
from dense_warper_ros.ros.rig_publisher import LiveRig, RigPublisher  # noqa: E402

from torch_threads import one_torch_thread  # noqa: E402,F401  (the node runs with cpu_threads=1 too)

REPO = Path(__file__).resolve().parents[1]
RATE = 24.0                       # frames per second in all (6 per camera)
HOSTILE = 3                       # camera index of the misbehaving camera
GOOD = (0, 1, 2)
DAY_NS = 86400 * 10**9


def live_params(rec, **kw) -> dict:
    p = dict(cameras=list(rec.names), mode="live", timing="causal", qos_reliability="reliable", qos_depth=50,
             tf_timeout=0.5, device="cpu", max_view_age=0.4, cpu_threads=1)
    p.update(kw)
    return p


class Watch:
    """Skeletons and /diagnostics as they arrive in the test process."""

    def __init__(self, node):
        self.poses: list = []
        self.diags: list = []
        node.create_subscription(Skeleton3DArray, "/dense_warper/skeletons", self.poses.append, 200)
        node.create_subscription(DiagnosticArray, "/diagnostics", self.diags.append, 10)

    def last(self) -> dict:
        return diagnostics_values(self.diags[-1]) if self.diags else {}


def start(ros_node, rec, params, **kw) -> tuple[NodeProcess, RigPublisher, LiveRig, Watch]:
    watch = Watch(ros_node)
    proc = NodeProcess(params, **kw)
    pub = RigPublisher(ros_node, rec)
    pub.wait_for_node()
    pub.publish_static()
    time.sleep(0.3)
    return proc, pub, LiveRig(pub), watch


def _level(level) -> int:
    return level[0] if isinstance(level, bytes) else int(level)


def good_share(rig: LiveRig, poses, sent_before: int) -> float:
    """Poses at the good cameras' frames over the good frames sent after `sent_before` stamps."""
    stamps = sorted(rig.sent)[sent_before:]
    sent = sum(1 for s in stamps if rig.sent[s] in GOOD)
    got = sum(1 for m in poses if m.header.stamp.sec * 10**9 + m.header.stamp.nanosec in set(stamps)
              and rig.sent[m.header.stamp.sec * 10**9 + m.header.stamp.nanosec] in GOOD)
    return got / max(sent, 1)


def test_a_bad_camera_info_costs_only_that_camera(recording, ros_node):
    """D of 3 coefficients (plumb_bob takes 5) used to raise in OpenCV inside the worker and end
    all output; NaN in D used to be accepted silently."""
    from dense_warper_ros.ros import recording_msgs as rm
    rec = recording
    proc, pub, rig, watch = start(ros_node, rec, live_params(rec))
    try:
        rig.stream(1.5, RATE)
        for d in ([0.1, 0.2, 0.3], [math.nan] * 5):
            bad = rm.camera_info(rec, HOSTILE, time.time_ns())
            bad.d = d
            pub.info_pubs[HOSTILE].publish(bad)
            mark = len(rig.sent)
            rig.stream(2.5, RATE)
            spin_until(ros_node, lambda: False, 1.0)
            share = good_share(rig, watch.poses, mark)
            print(f"bad D {d}: good cameras kept {share:.0%} of their poses")
            assert share >= 0.8, "the good cameras keep their output"
            cam = watch.last()[rec.names[HOSTILE]]
            assert cam["_level"] == _level(DiagnosticStatus.ERROR)
            assert "D" in cam["camera_info"]
        hostile_frame = rec.frame_id(HOSTILE)
        assert all(hostile_frame not in m.skeletons[0].view_frame_ids for m in watch.poses[-10:])
        assert int(cam["drops_bad_camera_info"]) >= 5 and int(watch.last()["dense_warper"]["camera_info_refused"]) == 2
        assert proc.alive()
    finally:
        log = proc.stop()
    assert "Traceback" not in log, log[-3000:]


def test_a_publisher_of_incompatible_qos_is_named_under_its_camera(recording, ros_node):
    """A driver publishing best-effort frames to the node's reliable subscription reaches nothing:
    the camera's status says why (the policy), not only 'no images', and the log names it."""
    from rclpy.event_handler import PublisherEventCallbacks
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    rec = recording
    watch = Watch(ros_node)
    proc = NodeProcess(live_params(rec))
    name = rec.names[HOSTILE]
    pub = ros_node.create_publisher(Image, f"/{name}/image_raw",
                                    QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT),
                                    event_callbacks=PublisherEventCallbacks(use_default_callbacks=False))
    try:
        named = spin_until(ros_node, lambda: "incompatible" in watch.last().get(name, {}).get("_message", ""), 90)
        cam, other = watch.last().get(name, {}), watch.last().get(rec.names[0], {})
        assert named, cam
        assert cam["_level"] == _level(DiagnosticStatus.ERROR) and "RELIABILITY" in cam["_message"]
        assert "incompatible" not in other.get("_message", "")
        assert int(watch.last()["dense_warper"]["incompatible_qos"]) >= 1
    finally:
        ros_node.destroy_publisher(pub)
        log = proc.stop()
    assert f"{name}: a publisher offers QoS incompatible" in log and "Traceback" not in log, log[-3000:]


def test_a_camera_with_a_wrong_clock_costs_only_that_camera(recording, ros_node):
    """A camera a day ahead, then 10 s behind, then one frame 0.9 s ahead (under clock_jump): each
    used to reset or blank everyone's output."""
    rec = recording
    proc, pub, rig, watch = start(ros_node, rec, live_params(rec))
    try:
        rig.stream(1.0, RATE)
        for offset in (DAY_NS, -10 * 10**9):
            mark = len(rig.sent)
            rig.stream(2.5, RATE, offsets={HOSTILE: offset})
            spin_until(ros_node, lambda: False, 0.5)
            share = good_share(rig, watch.poses, mark)
            print(f"camera off by {offset / 1e9:+g} s: good cameras kept {share:.0%} of their poses")
            assert share >= 0.8, offset
        once = iter([True])
        mark = len(rig.sent)

        def one_ahead(c, msg):
            if c == HOSTILE and next(once, False):           # stamped 0.9 s after its capture
                ns = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec + 900_000_000
                msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(ns, 10**9)
            return msg
        rig.stream(1.5, RATE, replace=one_ahead)
        spin_until(ros_node, lambda: False, 1.0)
        assert good_share(rig, watch.poses, mark) >= 0.8
        assert proc.alive()
    finally:
        log = proc.stop()
    d = watch.last()
    cam = d[rec.names[HOSTILE]]
    assert int(cam["drops_clock_ahead"]) >= 10 and int(cam["drops_clock_behind"]) >= 10, cam
    assert "clock_jumps" not in d["dense_warper"] and "buffer_resets" not in d["dense_warper"]
    assert all("drops_clock_ahead" not in d[rec.names[c]] for c in GOOD)
    assert f"{rec.names[HOSTILE]}: frame dropped (clock_ahead)" in log
    assert "Traceback" not in log


def test_a_killed_fusion_process_is_replaced_and_reported(recording, ros_node):
    """Live mode fuses in two child processes: one killed (as the kernel's OOM killer would), it is
    started again, the poses go on as before, and /diagnostics counts the restart and names the
    new pid."""
    import os
    import re
    rec = recording
    proc, pub, rig, watch = start(ros_node, rec, live_params(rec))
    try:
        rig.stream(1.0, RATE)
        before = len(rig.sent)
        rig.stream(2.5, RATE)
        spin_until(ros_node, lambda: False, 1.0)
        share_before = posed_share(rig, watch.poses, before)
        where = watch.last()["dense_warper"]["fusion"]
        pids = [int(p) for p in re.search(r"2 child processes \(pids (\d+), (\d+); restarts 0\)", where).groups()]
        pid = pids[0]
        assert proc.proc.pid not in pids
        os.kill(pid, signal.SIGKILL)
        killed_ns = time.time_ns()
        deadline = time.monotonic() + 30                 # the new child starts (imports, loads the model)
        while time.monotonic() < deadline and not any(
                m.header.stamp.sec * 10**9 + m.header.stamp.nanosec > killed_ns for m in watch.poses):
            rig.stream(0.5, RATE)
        rig.stream(0.5, RATE)
        after = len(rig.sent)
        rig.stream(2.5, RATE)
        spin_until(ros_node, lambda: False, 1.0)
        share_after = posed_share(rig, watch.poses, after)
        status = watch.last()["dense_warper"]
        now = status["fusion"]
        print(f"frames with a pose: {share_before:.0%} before the kill, {share_after:.0%} after; fusion: {now}")
        assert share_after >= share_before - 0.1 and share_after >= 0.7
        assert "restarts 1" in now and str(pid) not in now and str(pids[1]) in now
        assert status["_level"] == _level(DiagnosticStatus.ERROR) and "started again 1 times" in status["_message"]
        assert proc.alive()
    finally:
        log = proc.stop()
    assert "Traceback" not in log, log[-3000:]


def posed_share(rig: LiveRig, poses, sent_before: int) -> float:
    """Poses over the frames sent after the first `sent_before` stamps (every camera)."""
    stamps = set(sorted(rig.sent)[sent_before:])
    return sum(m.header.stamp.sec * 10**9 + m.header.stamp.nanosec in stamps for m in poses) / max(len(stamps), 1)


def test_offline_output_does_not_depend_on_arrival_order(recording, ros_node):
    """Frames published out of stamp order (every pair swapped): the offline node processes them
    in stamp order and equals the replay, to float round-off."""
    from dense_warper_ros.pipeline import build_pipeline
    rec = recording
    params = dict(cameras=list(rec.names), mode="offline", timing="windowed", qos_reliability="reliable",
                  qos_depth=200, tf_timeout=2.0, flush_after=0.5, device="cpu", max_view_age=0.2, cpu_threads=1)
    ref = replay_recording(rec, build_pipeline(num_cameras=len(rec.names), timing="windowed", offline=True,
                                               device="cpu", max_view_age_s=0.2))
    watch = Watch(ros_node)
    proc = NodeProcess(params)
    try:
        pub = RigPublisher(ros_node, rec)
        pub.wait_for_node()
        pub.play([k ^ 1 for k in range(len(rec.frames))], pace_s=0.03)
        assert spin_until(ros_node, lambda: len(watch.poses) >= len(ref), 60)
    finally:
        log = proc.stop()
    assert [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in watch.poses] == [r.stamp_ns for r in ref], log
    for m, r in zip(watch.poses, ref):
        pts = np.array([[p.x, p.y, p.z] for p in m.skeletons[0].positions])
        np.testing.assert_allclose(pts, r.points, atol=1e-9, rtol=0)


def test_the_shipped_parameter_file_is_read_by_rcl(recording, ros_node):
    """`--params-file config/multicam.yaml` (what `ros2 run` and `parameters=[path]` do): rcl parses
    it; `camera_topics` maps each camera to its driver's namespace."""
    rec = recording
    names = list(rec.names)
    params = dict(cameras=names, camera_topics=[f"/{n}" for n in names], mode="offline", qos_reliability="reliable",
                  qos_depth=200, tf_timeout=2.0, device="cpu", cpu_threads=1)
    watch = Watch(ros_node)
    proc = NodeProcess(params, params_file=REPO / "config/multicam.yaml")
    try:
        pub = RigPublisher(ros_node, rec)
        pub.wait_for_node(timeout=60)
        pub.publish_static()
        time.sleep(0.3)
        for k in range(len(rec.frames)):
            pub.publish_frame(k)
            spin_until(ros_node, lambda: False, 0.03)
        assert spin_until(ros_node, lambda: len(watch.poses) >= len(rec.frames) - 1, 60)
    finally:
        log = proc.stop()
    assert "timing=causal" in log                          # from the file: not overridden here
    assert "Traceback" not in log


def test_ctrl_c_while_busy_is_clean(recording, ros_node):
    """SIGINT with poses in flight: the workers are joined before the context goes; no traceback,
    no error, exit code 0."""
    rec = recording
    proc, pub, rig, watch = start(ros_node, rec, live_params(rec))
    deadline = time.monotonic() + 20
    while len(watch.poses) <= 10 and time.monotonic() < deadline:   # busy: poses flowing
        rig.stream(0.5, 40.0)
    proc.proc.send_signal(signal.SIGINT)
    rig.stream(0.5, 40.0)
    code, out = proc.wait(30)
    assert code == 0, out[-3000:]
    assert "Traceback" not in out and "ERROR" not in out, out[-3000:]
    assert len(watch.poses) > 10


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")   # the injected SystemExit
def test_a_failed_worker_is_restarted_and_reported(recording, ros_node):
    """In-process: an exception escaping a worker loop, and a worker thread that ends, are both
    restarted, counted and shown in /diagnostics as an error; logging at both severities from the
    error path raises nothing. (And the node runs torch and OpenCV on `cpu_threads` threads.)"""
    import cv2
    import torch
    from rclpy.parameter import Parameter

    from dense_warper_ros.ros.node import DenseWarperNode
    rec = recording
    node = DenseWarperNode(parameter_overrides=[Parameter(k, value=v) for k, v in live_params(rec).items()])
    try:
        assert live_params(rec)["cpu_threads"] == 1 and torch.get_num_threads() == 1 and cv2.getNumThreads() == 1
        node._guarded(lambda: 1 / 0)                       # an error, then warnings: no severity clash
        node._drop(0, "superseded", "test")
        node._error("k", "an error")
        node._warn("k2", "a warning")
        assert node.stats["errors"] == 1
        real_get, calls = node._sched.get, []

        def failing_get(timeout=None):
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("injected")
            if len(calls) == 2:
                raise SystemExit                            # ends the thread: not an Exception
            return real_get(timeout)
        node._sched.get = failing_get
        deadline = time.monotonic() + 10
        while len(calls) < 3 and time.monotonic() < deadline:
            node._publish_diagnostics()                     # its timer checks the workers
            time.sleep(0.1)
        assert node.stats["worker_restarts"] == 2 and all(t.is_alive() for t in node._workers)
        status = node._inference_status(time.monotonic())
        assert status.level == DiagnosticStatus.ERROR and "restarted 2 times" in status.message
    finally:
        node.stop()
        node.destroy_node()


@pytest.mark.parametrize("bad,words", [
    ({"model_config": "huge"}, "'model_config': 'huge'"),
    ({"weights": "/nonexistent/w.safetensors"}, "'weights': '/nonexistent/w.safetensors' is not a file"),
    ({"extrinsics_file": "BAD_YAML"}, "'extrinsics_file'"),
])
def test_a_start_up_error_is_one_line_naming_the_parameter(recording, tmp_path, bad, words):
    if bad.get("extrinsics_file") == "BAD_YAML":
        f = tmp_path / "extrinsics.yaml"
        f.write_text("cameras: {cam01_optical: {translation: [1, 2]}}\n")     # no rotation, short translation
        bad = {"extrinsics_file": str(f)}
    proc = NodeProcess(live_params(recording, **bad))
    code, out = proc.wait(60)
    assert code == 2, out[-3000:]
    assert words in out and "Traceback" not in out, out[-3000:]
    assert len([line for line in out.splitlines() if line.startswith("dense_warper:")]) == 1
