"""The node over real DDS, in its own process: interleaved real frames of 4 cameras in, one
skeleton per input frame out, stamped with the input stamps, equal to the offline replay; and bad
input of every kind counted while the other cameras' output goes on."""
from __future__ import annotations

import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy missing: run `make setup`")
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from dense_warper_ros.msg import Skeleton3DArray  # noqa: E402
from dense_warper_ros.ros.node_process import NodeProcess, spin_until  # noqa: E402
from dense_warper_ros.ros.offline_replay import replay_recording  # noqa: E402
from dense_warper_ros.ros.rig_publisher import RigPublisher  # noqa: E402

from torch_threads import one_torch_thread  # noqa: E402,F401  (the node runs with cpu_threads=1 too)

pose2sim = pytest.importorskip("dense_warper_ros.data.pose2sim")


def node_params(rec, **kw) -> dict:
    p = dict(cameras=list(rec.names), mode="offline", timing="windowed", qos_reliability="reliable",
             qos_depth=200, tf_timeout=2.0, flush_after=0.5, device="cpu", max_view_age=0.2,
             cpu_threads=1)   # the reference below runs on 1 thread too: same float results
    p.update(kw)
    return p


def offline_reference(rec, params) -> list:
    """The same frames through the node's per-frame path, without ROS transport."""
    from dense_warper_ros.pipeline import build_pipeline
    pipe = build_pipeline(num_cameras=len(rec.names), timing=params["timing"], offline=True,
                          device="cpu", max_view_age_s=params["max_view_age"],
                          outlier_threshold=params.get("outlier_threshold"))
    return replay_recording(rec, pipe)


def test_node_offline_one_skeleton_per_frame_equal_to_offline_replay(recording, ros_node):
    rec = recording
    params = node_params(rec, outlier_threshold=2.5)    # the robust DLT: MoveNet's views disagree here
    ref = offline_reference(rec, params)
    plain = offline_reference(rec, {**params, "outlier_threshold": 0.0})
    assert sum(int(r.num_views.sum()) for r in ref) < sum(int(r.num_views.sum()) for r in plain)   # views dropped
    outliers = {name: sum(int(r.rejected[c].sum()) for r in ref) for c, name in enumerate(rec.names)}
    got: list = []
    diags: list = []
    ros_node.create_subscription(Skeleton3DArray, "/dense_warper/skeletons", got.append, 100)
    ros_node.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 10)

    def reported() -> dict:
        return {s.hardware_id: int(kv.value) for s in (diags[-1].status if diags else [])
                for kv in s.values if kv.key == "outlier_joints"}

    proc = NodeProcess(params)
    try:
        pub = RigPublisher(ros_node, rec)
        pub.wait_for_node()
        pub.play(pace_s=0.03)                                   # ~30 frames/s in all
        assert spin_until(ros_node, lambda: len(got) >= len(rec.frames), 90), \
            f"{len(got)}/{len(rec.frames)} skeletons arrived"
        spin_until(ros_node, lambda: False, 0.5)
        # /diagnostics counts each camera's dropped joints, as the offline pipeline drops them
        assert spin_until(ros_node, lambda: reported() == outliers, 5), (reported(), outliers)
        assert proc.alive()
    finally:
        log = proc.stop()
    assert len(got) == len(rec.frames), log[-3000:]
    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in got]
    assert stamps == [s for _, s, _ in rec.frames]                      # one per input frame, in order
    assert [r.stamp_ns for r in ref] == stamps
    for m, r in zip(got, ref):
        sk = m.skeletons[0]
        pts = np.array([[p.x, p.y, p.z] for p in sk.positions])
        # the offline result; tf2_ros, where installed, orders the transform arithmetic its own way (1e-15 m)
        np.testing.assert_allclose(pts, r.points, atol=1e-9, rtol=0)
        assert list(sk.num_views) == r.num_views.tolist()               # the node dropped the same views
        assert m.header.frame_id == "world" and sk.format == "h36m17"
        assert len(sk.covariance) == 6 * 17 and len(sk.view_stamps) == len(sk.view_frame_ids) >= 2
        view_ns = [t.sec * 10**9 + t.nanosec for t in sk.view_stamps]
        assert set(view_ns) <= {s for _, s, _ in rec.frames}
    ok = np.isfinite(pts).all(axis=1)
    assert ok.sum() >= 12, "a real person should be triangulated"


def test_node_survives_bad_input_and_counts_it(recording, ros_node):
    """Malformed images, unknown encoding, zero size, K = 0, missing TF, duplicated and late
    stamps, a looped bag, a camera that stops: the node keeps running, counts each cause in
    /diagnostics and the other cameras' output goes on."""
    rec = recording
    diags: list = []
    got: list = []
    ros_node.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 10)
    ros_node.create_subscription(Skeleton3DArray, "/dense_warper/skeletons", got.append, 100)
    proc = NodeProcess(node_params(rec, mode="live", timing="causal", queue_size=100, tf_timeout=0.05))
    try:
        pub = RigPublisher(ros_node, rec)
        pub.wait_for_node()
        from dense_warper_ros.ros import recording_msgs as rm
        # camera 3 has no transform to the world: /tf_static carries only cameras 0-2
        tf = rm.tf_static(rec, rec.frames[0][1])
        tf.transforms = tf.transforms[:3]
        pub.tf_pub.publish(tf)
        for i, p in enumerate(pub.info_pubs):
            p.publish(rm.camera_info(rec, i, rec.frames[0][1]))
        time.sleep(0.3)

        def frame(k, **fields):
            c, s, rgb = rec.frames[k]
            m = rm.image(rec, c, s, rgb, compressed=False)
            for f, v in fields.items():
                setattr(m, f, v)
            return m

        for k in range(8):                       # good frames (camera 3's fail TF)
            pub.publish_frame(k)
            spin_until(ros_node, lambda: False, 0.05)
        c0 = [k for k, f in enumerate(rec.frames) if f[0] == 0]
        pub.img_pubs[0].publish(frame(c0[0], step=5))                        # wrong step
        pub.img_pubs[0].publish(frame(c0[0], encoding="bayer_grbg8"))        # unknown encoding
        empty = Image(height=0, width=0, encoding="rgb8", step=0)                   # zero size
        empty.header.stamp = frame(c0[1]).header.stamp
        pub.img_pubs[0].publish(empty)
        pub.publish_frame(4)                                                 # duplicated stamp
        late = frame(4)                                                      # late: older than
        late.header.stamp = rm.ns_to_stamp(rec.frames[4][1] - 5_000_000)   # the last output
        pub.img_pubs[0].publish(late)
        bad_info = rm.camera_info(rec, 1, rec.frames[0][1])
        bad_info.k = [0.0] * 9                                               # K = 0
        pub.info_pubs[1].publish(bad_info)
        spin_until(ros_node, lambda: False, 0.2)
        pub.img_pubs[1].publish(frame(9))                                    # camera 1 refused
        # live mode takes the cameras in turn when it is behind: let it work through camera 0's
        # backlog before the stamps jump, so the causes above are what it counts
        assert spin_until(ros_node, lambda: any(_value(d, "dense_warper: inference", "buffer_late") for d in diags), 20)
        n_before_loop = len(got)
        # camera 1 stops (uncalibrated) and camera 3 never had TF; cameras 0 and 2 go on, and the
        # bag loops: stamps jump back by more than clock_jump. Cameras silent for longer than
        # clock_jump no longer vote on the rig's clock, so 0 and 2 are then the whole rig.
        spin_until(ros_node, lambda: False, 1.3)
        shift = 2 * 10**9
        for k in range(8, 12):
            c, s, rgb = rec.frames[k]
            if c in (0, 2):
                m = rm.image(rec, c, s + shift, rgb, compressed=False)
                pub.img_pubs[c].publish(m)
                spin_until(ros_node, lambda: False, 0.05)
        for k in range(0, 8):                                                # loop: back to the start
            c, s, rgb = rec.frames[k]
            if c in (0, 2):
                pub.publish_frame(k)
                spin_until(ros_node, lambda: False, 0.05)
        assert spin_until(ros_node, lambda: any(_value(d, "dense_warper: inference", "clock_jumps") for d in diags), 20)
        assert proc.alive(), "the node must survive bad input"
    finally:
        log = proc.stop()
    last = diags[-1]
    cam = {s.hardware_id: {kv.key: kv.value for kv in s.values} for s in last.status}
    assert int(cam["cam01"]["drops_bad_step"]) == 1, log[-3000:]
    assert int(cam["cam01"]["drops_unknown_encoding"]) == 1
    assert int(cam["cam01"]["drops_zero_size"]) == 1
    assert int(cam["cam02"]["drops_uncalibrated"]) >= 1 and "uncalibrated" in cam["cam02"]["camera_info"]
    assert int(cam["cam04"]["drops_tf_missing"]) >= 1 and cam["cam04"]["tf"] == "missing"
    inf = cam["dense_warper"]
    assert int(inf["buffer_duplicates"]) >= 1 and int(inf["buffer_late"]) >= 1
    assert int(inf["clock_jumps"]) >= 1
    assert len(got) > n_before_loop, "cameras 0 and 2 keep producing skeletons"
    # each cause logged once (throttled), not once per frame
    assert log.count("(bad_step)") == 1 and log.count("(tf_missing)") == 1, log[-3000:]


def _value(diag, name, key):
    for s in diag.status:
        if s.name == name:
            for kv in s.values:
                if kv.key == key:
                    return int(kv.value)
    return 0
