"""A Recording published as a real camera rig publishes, from a local node: the multi-process tests
and the node benchmark feed the node over DDS with it."""
from __future__ import annotations

import time
from typing import Callable

import rclpy
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from tf2_msgs.msg import TFMessage

from dense_warper_ros.data.recording import Recording
from dense_warper_ros.ros import recording_msgs as rm
from dense_warper_ros.ros.node_process import spin_until, wait_for_subscribers


class RigPublisher:
    """/tf_static (latched), and per camera `/<name>/camera_info` + `/<name>/image_raw`; reliable by
    default, so offline runs lose nothing."""

    def __init__(self, node: Node, rec: Recording, *, reliable: bool = True, depth: int = 200):
        self.node, self.rec = node, rec
        rel = ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT
        self.tf_pub = node.create_publisher(TFMessage, "/tf_static", QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.info_pubs = [node.create_publisher(CameraInfo, f"/{n}/camera_info", QoSProfile(depth=10, reliability=rel))
                          for n in rec.names]
        self.img_pubs = [node.create_publisher(Image, f"/{n}/image_raw", QoSProfile(depth=depth, reliability=rel))
                         for n in rec.names]

    def wait_for_node(self, timeout: float = 60.0) -> None:
        """Until every camera's image topic has a subscriber."""
        for p in self.img_pubs:
            wait_for_subscribers(self.node, p, 1, timeout)

    def publish_static(self) -> None:
        self.tf_pub.publish(rm.tf_static(self.rec, self.rec.frames[0][1]))
        for i, p in enumerate(self.info_pubs):
            p.publish(rm.camera_info(self.rec, i, self.rec.frames[0][1]))

    def play(self, order=None, *, pace_s: float = 0.03, settle_s: float = 0.3) -> None:
        """/tf_static and CameraInfo, a pause for them to land, then the frames (in `order`, default
        all in turn), one every `pace_s` while the node spins."""
        self.publish_static()
        time.sleep(settle_s)
        for k in range(len(self.rec.frames)) if order is None else order:
            self.publish_frame(k)
            spin_until(self.node, lambda: False, pace_s)

    def publish_frame(self, k: int, *, msg=None) -> None:
        """Frame k of the recording (or `msg` in its place) after its camera's CameraInfo."""
        c, stamp, rgb = self.rec.frames[k]
        self.info_pubs[c].publish(rm.camera_info(self.rec, c, stamp))
        self.img_pubs[c].publish(msg if msg is not None else rm.image(self.rec, c, stamp, rgb, compressed=False))
        rclpy.spin_once(self.node, timeout_sec=0.0)


class LiveRig:
    """Streams a Recording's frames as live cameras do: camera k % N at stamps near the wall clock,
    `rate` frames per second in all. Per camera a stamp error (`offsets`, ns) or a replacement
    message (`replace(camera, msg) -> msg or None`) makes a hostile camera."""

    def __init__(self, pub: RigPublisher):
        self.pub = pub
        self.sent: dict[int, int] = {}          # stamp -> camera, of every image published

    def stream(self, seconds: float, rate: float, *, offsets: dict[int, int] | None = None,
               skip: tuple[int, ...] = (), replace: Callable[[int, Image], Image | None] | None = None) -> None:
        rec, n = self.pub.rec, len(self.pub.rec.names)
        per_cam = [[f for f in rec.frames if f[0] == c] for c in range(n)]
        t_end = time.monotonic() + seconds
        k = 0
        while time.monotonic() < t_end:
            c = k % n
            _, _, rgb = per_cam[c][(k // n) % len(per_cam[c])]
            stamp = time.time_ns() + (offsets or {}).get(c, 0)
            msg = rm.image(rec, c, stamp, rgb, compressed=False)
            if replace is not None:
                msg = replace(c, msg)
            if c not in skip and msg is not None:
                self.pub.img_pubs[c].publish(msg)
                self.sent[stamp] = c
            k += 1
            deadline = time.monotonic() + 1.0 / rate
            while time.monotonic() < deadline:
                rclpy.spin_once(self.pub.node, timeout_sec=max(0.0, deadline - time.monotonic()))

    def poses_of(self, msgs, cameras) -> int:
        """How many of `msgs` (Skeleton3DArray) are poses at a frame of one of `cameras`."""
        return sum(1 for m in msgs if self.sent.get(m.header.stamp.sec * 10**9 + m.header.stamp.nanosec) in cameras)
