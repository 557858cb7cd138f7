"""Fuzzing over real DDS: one camera sends randomly mutated Image / CompressedImage and CameraInfo
messages while the other cameras stream good frames. The node stays alive, the good cameras keep
at least 80 % of their output, and every image of the hostile camera is either used or dropped
under a named cause. Seeded and bounded in count and time."""
from __future__ import annotations

import time

import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy missing: run `make setup`")
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from sensor_msgs.msg import CompressedImage  # noqa: E402

from dense_warper_ros.msg import Skeleton3DArray  # noqa: E402
from dense_warper_ros.ros.mutations import Mutator  # noqa: E402
from dense_warper_ros.ros.node_process import NodeProcess, diagnostics_values, spin_until  # noqa: E402
from dense_warper_ros.ros.rig_publisher import RigPublisher  # noqa: E402

from torch_threads import one_torch_thread  # noqa: E402,F401

MUTATIONS = 2000                  # mutated messages per transport
HOSTILE = 3
GOOD_RATE = 12.0                  # good frames per second in all (4 per good camera): within the torch path's reach
HOSTILE_RATE = 150.0              # mutated messages per second
PEOPLE_GOOD_RATE = 9.0            # 2D people: two people fused per instant, within a loaded 2-core CPU's reach


def good_image(rec, c, k, compressed):
    from dense_warper_ros.ros import recording_msgs as rm
    frames = [f for f in rec.frames if f[0] == c]
    return rm.image(rec, c, time.time_ns(), frames[k % len(frames)][2], compressed=compressed)


@pytest.mark.parametrize("transport", ["raw", "compressed"])
def test_a_fuzzed_camera_costs_only_itself(recording, ros_node, transport):
    from dense_warper_ros.ros import recording_msgs as rm
    rec = recording
    compressed = transport == "compressed"
    params = dict(cameras=list(rec.names), mode="live", timing="causal", qos_reliability="reliable", qos_depth=100,
                  tf_timeout=0.2, device="cpu", max_view_age=0.4, cpu_threads=1, image_transport=transport)
    poses, diags = [], []
    ros_node.create_subscription(Skeleton3DArray, "/dense_warper/skeletons", poses.append, 500)
    ros_node.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 10)
    proc = NodeProcess(params)
    mut = Mutator(seed=7 if compressed else 3)
    try:
        pub = RigPublisher(ros_node, rec)
        if compressed:
            from rclpy.qos import QoSProfile, ReliabilityPolicy
            pub.img_pubs = [ros_node.create_publisher(CompressedImage, f"/{n}/image_raw/compressed",
                                                      QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE))
                            for n in rec.names]
        pub.wait_for_node()
        pub.publish_static()
        time.sleep(0.3)
        good_sent: dict[int, int] = {}
        hostile_images = 0
        t0, k, sent = time.monotonic(), 0, 0
        next_good = t0
        while sent < MUTATIONS and time.monotonic() - t0 < 120:
            now = time.monotonic()
            if now >= next_good:                        # the good cameras, in turn
                c = k % 3
                msg = good_image(rec, c, k, compressed)
                pub.img_pubs[c].publish(msg)
                good_sent[msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec] = c
                k += 1
                next_good += 1.0 / GOOD_RATE
            valid = good_image(rec, HOSTILE, sent, compressed)
            if mut.rng.random() < 0.2:
                pub.info_pubs[HOSTILE].publish(mut.info(rm.camera_info(rec, HOSTILE, time.time_ns())))
            else:
                pub.img_pubs[HOSTILE].publish(mut.compressed(valid) if compressed else mut.image(valid))
                hostile_images += 1
            sent += 1
            rclpy.spin_once(ros_node, timeout_sec=1.0 / HOSTILE_RATE)
        elapsed = time.monotonic() - t0
        spin_until(ros_node, lambda: False, 2.5)            # the queue drains, /diagnostics updates
        assert proc.alive(), "the node must survive the fuzzing"
    finally:
        log = proc.stop()
    assert sent == MUTATIONS, f"only {sent} mutations in {elapsed:.0f} s"
    got = sum(1 for m in poses if (m.header.stamp.sec * 10**9 + m.header.stamp.nanosec) in good_sent)
    hostile_diag = diagnostics_values(diags[-1])[rec.names[HOSTILE]]
    hostile_drops = dict(sorted((k[6:], v) for k, v in hostile_diag.items() if k.startswith("drops_")))
    print(f"{transport}: {sent} mutations in {elapsed:.1f} s; good cameras {got}/{len(good_sent)} poses; "
          f"hostile drops {hostile_drops}")
    assert got >= 0.8 * len(good_sent), f"{got} poses for {len(good_sent)} good frames; {log[-2000:]}"
    d = diagnostics_values(diags[-1])
    cam = d[rec.names[HOSTILE]]
    drops = {key[6:]: int(v) for key, v in cam.items() if key.startswith("drops_")}
    assert int(cam["received"]) == hostile_images, (cam, hostile_images)
    assert int(cam["frames"]) + sum(drops.values()) == hostile_images, (cam, drops)   # none lost silently
    assert len(drops) >= 4, drops                           # several different causes were exercised
    assert "Traceback" not in log and "worker_restarts" not in d["dense_warper"], log[-3000:]


def test_a_fuzzed_people_camera_costs_only_itself(ros_node):
    """`input: keypoints`: camera 3 sends only mutated People2D (and CameraInfo) while cameras 0-2
    stream two projected people: the node survives, every People2D of camera 3 is used or dropped
    under a named cause, and the good cameras keep most of their output."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from dense_warper_ros.msg import People2D
    from dense_warper_ros.ros import recording_msgs as rm
    from dense_warper_ros.ros.conversions import people_to_msg
    from multi_person_rig import two_person_frames

    rec, people = two_person_frames(seconds=1.2)
    per_cam = {c: [p for (k, _, _), p in zip(rec.frames, people) if k == c] for c in range(4)}
    params = dict(cameras=list(rec.names), mode="live", timing="causal", qos_reliability="reliable", qos_depth=100,
                  tf_timeout=0.2, device="cpu", max_view_age=0.4, cpu_threads=1, input="keypoints", max_people=4)
    poses, diags = [], []
    ros_node.create_subscription(Skeleton3DArray, "/dense_warper/skeletons", poses.append, 500)
    ros_node.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 10)
    qos = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
    pubs = [ros_node.create_publisher(People2D, f"/{n}/people", qos) for n in rec.names]
    proc = NodeProcess(params)
    mut = Mutator(seed=11)

    def msg(c: int, k: int):
        return people_to_msg(per_cam[c][k % len(per_cam[c])], frame_id=rec.frame_id(c), stamp_ns=time.time_ns(),
                             width=rec.cameras[c].width, height=rec.cameras[c].height)

    try:
        pub = RigPublisher(ros_node, rec)
        for p in pubs:
            assert spin_until(ros_node, lambda: p.get_subscription_count() > 0, 60), proc.output()[-2000:]
        pub.publish_static()
        for c in range(4):
            pub.info_pubs[c].publish(rm.camera_info(rec, c, time.time_ns()))
        time.sleep(0.3)
        good_sent: set[int] = set()
        hostile = 0
        t0, k, sent, next_good = time.monotonic(), 0, 0, time.monotonic()
        while sent < 1000 and time.monotonic() - t0 < 60:
            if time.monotonic() >= next_good:                   # the good cameras, in turn
                m = msg(k % 3, k // 3)
                pubs[k % 3].publish(m)
                good_sent.add(m.header.stamp.sec * 10**9 + m.header.stamp.nanosec)
                k += 1
                next_good += 1.0 / PEOPLE_GOOD_RATE
            if mut.rng.random() < 0.2:
                pub.info_pubs[HOSTILE].publish(mut.info(rm.camera_info(rec, HOSTILE, time.time_ns())))
            else:
                pubs[HOSTILE].publish(mut.people(msg(HOSTILE, k // 3)))   # broken copies of a consistent view
                hostile += 1
            sent += 1
            rclpy.spin_once(ros_node, timeout_sec=1.0 / HOSTILE_RATE)
        spin_until(ros_node, lambda: False, 2.5)
        assert proc.alive(), "the node must survive the fuzzing"
    finally:
        log = proc.stop()
    got = sum(1 for m in poses if (m.header.stamp.sec * 10**9 + m.header.stamp.nanosec) in good_sent)
    d = diagnostics_values(diags[-1])
    cam = d[rec.names[HOSTILE]]
    drops = {key[6:]: int(v) for key, v in cam.items() if key.startswith("drops_")}
    print(f"people: {sent} mutations; good cameras {got}/{len(good_sent)} instants; hostile drops {drops}")
    assert int(cam["received"]) == hostile and int(cam["frames"]) + sum(drops.values()) == hostile, (cam, drops)
    assert len(drops) >= 4, drops
    assert got >= 0.75 * len(good_sent), f"{got} instants for {len(good_sent)} good frames; {log[-2000:]}"
    assert "Traceback" not in log and "worker_restarts" not in d["dense_warper"], log[-3000:]
