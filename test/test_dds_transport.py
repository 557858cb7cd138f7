"""The package's messages and large images cross process boundaries over real Fast DDS."""
from __future__ import annotations

import math
import os
import time
import zlib

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy missing: run `make setup` and source scripts/env.sh")
from builtin_interfaces.msg import Time  # noqa: E402
from geometry_msgs.msg import Point  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from dense_warper_ros.msg import Skeleton3D, Skeleton3DArray  # noqa: E402
from dense_warper_ros.ros.node_process import wait_for_subscribers  # noqa: E402
from dense_warper_ros.skeleton import FORMAT_NAME, H36M_JOINTS  # noqa: E402

from dds_peer import Peer  # noqa: E402


def make_skeleton_array(k: int) -> Skeleton3DArray:
    rng = np.random.default_rng(k)
    J = len(H36M_JOINTS)
    sk = Skeleton3D(id=7 + k, format=FORMAT_NAME, joint_names=list(H36M_JOINTS))
    pos = rng.normal(size=(J, 3))
    sk.positions = [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in pos]
    sk.positions[3] = Point(x=math.nan, y=math.nan, z=math.nan)   # an unknown joint
    sk.confidence = rng.uniform(0, 1, J).astype(np.float32).tolist()
    sk.covariance = rng.uniform(0, 1e-4, 6 * J).tolist()
    sk.num_views = rng.integers(0, 5, J).astype(np.uint8).tolist()
    sk.view_stamps = [Time(sec=100 + k, nanosec=i * 20_000_000) for i in range(4)]
    sk.view_frame_ids = [f"cam{i}_optical" for i in range(4)]
    arr = Skeleton3DArray(skeletons=[sk])
    arr.header.frame_id = "world"
    arr.header.stamp = Time(sec=100 + k, nanosec=60_000_000)
    return arr


def test_skeleton_messages_round_trip_between_processes(ros_node):
    peer = Peer("echo", "dense_warper_ros/msg/Skeleton3DArray", "/dw_test/skeletons", "--count", "5")
    peer.wait_ready()
    qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    pub = ros_node.create_publisher(Skeleton3DArray, "/dw_test/skeletons", qos)
    wait_for_subscribers(ros_node, pub)
    sent = [make_skeleton_array(k) for k in range(5)]
    for m in sent:
        pub.publish(m)
    got = peer.results()
    assert len(got) == 5
    for m, g in zip(sent, got):
        assert g["header"]["frame_id"] == "world"
        assert g["header"]["stamp"] == {"sec": m.header.stamp.sec, "nanosec": m.header.stamp.nanosec}
        s, gs = m.skeletons[0], g["skeletons"][0]
        assert gs["id"] == s.id and gs["format"] == "h36m17" and gs["joint_names"] == list(H36M_JOINTS)
        for j, (p, gp) in enumerate(zip(s.positions, gs["positions"])):
            if j == 3:
                assert gp == {"x": "nan", "y": "nan", "z": "nan"}
            else:
                assert (gp["x"], gp["y"], gp["z"]) == (p.x, p.y, p.z)
        np.testing.assert_array_equal(np.float32(gs["confidence"]), np.float32(s.confidence))
        assert gs["covariance"] == list(s.covariance)
        assert gs["num_views"] == list(s.num_views)
        assert [t["nanosec"] for t in gs["view_stamps"]] == [t.nanosec for t in s.view_stamps]
        assert gs["view_frame_ids"] == list(s.view_frame_ids)


def test_large_image_crosses_processes_with_shipped_profile(ros_node):
    """1000x1000 RGB (3 MB) with sensor-data (best-effort) QoS: the shipped 16 MiB shared-memory
    segment carries each frame whole, so (nearly) all frames arrive, bit for bit."""
    profile = os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE", "")
    assert profile.endswith("config/fastdds_large_data.xml") and os.path.exists(profile), profile
    n = 20
    peer = Peer("echo", "sensor_msgs/msg/Image", "/dw_test/image", "--count", str(n), "--qos", "sensor")
    peer.wait_ready()
    pub = ros_node.create_publisher(Image, "/dw_test/image", qos_profile_sensor_data)
    wait_for_subscribers(ros_node, pub)
    time.sleep(0.2)
    rng = np.random.default_rng(0)
    crcs = {}
    for k in range(n):
        img = rng.integers(0, 255, (1000, 1000, 3), dtype=np.uint8)
        msg = Image(height=1000, width=1000, encoding="rgb8", step=3000, is_bigendian=0)
        msg.header.stamp = Time(sec=k, nanosec=0)
        msg.data = img.tobytes()
        crcs[k] = zlib.crc32(img.tobytes())
        pub.publish(msg)
        time.sleep(0.05)
    got = peer.results()
    # best effort: allow a couple of losses on a loaded 2-core CI machine, never a corrupt frame
    assert len(got) >= n - 2, f"only {len(got)}/{n} frames arrived"
    for g in got:
        assert (g["width"], g["height"], g["step"], g["nbytes"]) == (1000, 1000, 3000, 3_000_000)
        assert g["crc32"] == crcs[g["header"]["stamp"]["sec"]]
