"""Several people through the node over real DDS, in its own process: 2D people (People2D) per
camera in, one Skeleton3DArray per instant with both people and stable ids out, equal to the
Python API fed the same people; and the split layout (a people_node per camera, images in) on the
real two-person recording."""
from __future__ import annotations

import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy missing: run `make setup`")
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402

from dense_warper_ros.msg import People2D, Skeleton3DArray  # noqa: E402
from dense_warper_ros.pipeline import PeopleOptions, build_pipeline  # noqa: E402
from dense_warper_ros.ros.conversions import people_from_msg, people_to_msg  # noqa: E402
from dense_warper_ros.ros.node_process import NodeProcess, diagnostics_values, spin_until  # noqa: E402
from dense_warper_ros.ros.rig_publisher import RigPublisher  # noqa: E402
from dense_warper_ros.ros import recording_msgs as rm  # noqa: E402

from multi_person_rig import nearest_truth, two_person_frames  # noqa: E402
from torch_threads import one_torch_thread  # noqa: E402,F401

PARAMS = dict(mode="offline", timing="windowed", qos_reliability="reliable", qos_depth=200, tf_timeout=2.0,
              flush_after=0.5, device="cpu", max_view_age=0.2, cpu_threads=1, input="keypoints", max_people=4)


def _reference(rec, msgs) -> list:
    """The Python API on the very people the node receives (float32 in the message)."""
    pipe = build_pipeline(num_cameras=len(rec.names), timing="windowed", offline=True, device="cpu",
                          people=PeopleOptions(max_people=4, keypoints_input=True))
    out = []
    for (c, stamp, _), m in zip(rec.frames, msgs):
        out += pipe.push_people(c, stamp, people_from_msg(m), rec.cameras[c], rec.frame_id(c))
    return out + pipe.flush()


def test_two_people_as_keypoints_give_two_tracked_skeletons_per_instant(ros_node):
    rec, people = two_person_frames()
    msgs = [people_to_msg(p, frame_id=rec.frame_id(c), stamp_ns=s, width=rec.cameras[c].width,
                          height=rec.cameras[c].height) for (c, s, _), p in zip(rec.frames, people)]
    ref = _reference(rec, msgs)
    got, diags = [], []
    ros_node.create_subscription(Skeleton3DArray, "/dense_warper/skeletons", got.append, 200)
    ros_node.create_subscription(DiagnosticArray, "/diagnostics", diags.append, 10)
    qos = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
    pubs = [ros_node.create_publisher(People2D, f"/{n}/people", qos) for n in rec.names]
    rig = RigPublisher(ros_node, rec)
    proc = NodeProcess(dict(PARAMS, cameras=list(rec.names)))
    try:
        for p in pubs:
            assert spin_until(ros_node, lambda: p.get_subscription_count() > 0, 60), proc.output()[-2000:]
        rig.publish_static()
        time.sleep(0.3)
        for (c, s, _), m in zip(rec.frames, msgs):
            rig.info_pubs[c].publish(rm.camera_info(rec, c, s))
            pubs[c].publish(m)
            spin_until(ros_node, lambda: False, 0.02)
        instants = len({r.stamp_ns for r in ref})
        assert spin_until(ros_node, lambda: len(got) >= instants, 60), (len(got), instants, proc.output()[-2000:])
        spin_until(ros_node, lambda: bool(diags) and "people_tracked" in
                   diagnostics_values(diags[-1]).get("dense_warper", {}), 5)
        assert proc.alive()
    finally:
        log = proc.stop()
    # the node's output is the Python API's: same instants, same ids, same points
    by_stamp: dict[int, dict[int, np.ndarray]] = {}
    for r in ref:
        by_stamp.setdefault(r.stamp_ns, {})[r.track_id] = r.points
    assert len(got) == len(by_stamp), log[-2000:]
    for m in got:
        s = m.header.stamp.sec * 10**9 + m.header.stamp.nanosec
        pts = {sk.id: np.array([[p.x, p.y, p.z] for p in sk.positions]) for sk in m.skeletons}
        assert sorted(pts) == sorted(by_stamp[s])
        for i, X in pts.items():
            np.testing.assert_allclose(X, by_stamp[s][i], atol=1e-9)
    # two people per instant after the first camera cycle, each id on one person throughout
    late = got[8:]
    assert all(len(m.skeletons) == 2 for m in late), [len(m.skeletons) for m in late]
    owner: dict[int, set[int]] = {}
    for m in late:
        for sk in m.skeletons:
            who, err = nearest_truth(np.array([[p.x, p.y, p.z] for p in sk.positions]),
                                     m.header.stamp.sec * 10**9 + m.header.stamp.nanosec)
            assert err < 60, err
            owner.setdefault(sk.id, set()).add(who)
    assert len(owner) == 2 and all(len(v) == 1 for v in owner.values()), owner
    values = diagnostics_values(diags[-1])["dense_warper"]
    assert values["people_tracked"] == "2" and values["births"] == "2", values
