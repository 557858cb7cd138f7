"""Helpers for tests that talk over real DDS between processes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


class Peer:
    """A `dds_peer.py` subprocess; `wait_ready()` then `results()` after publishing."""

    def __init__(self, *args: str, timeout: float = 30.0):
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "dds_peer.py"), *args, "--timeout", str(timeout)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
        self.timeout = timeout

    def wait_ready(self) -> None:
        line = self.proc.stdout.readline()
        if line.strip() != "READY":
            err = self.proc.stderr.read()
            raise RuntimeError(f"peer did not start: {line!r} {err}")

    def results(self) -> list[dict]:
        out, err = self.proc.communicate(timeout=self.timeout + 10)
        if self.proc.returncode != 0:
            raise RuntimeError(f"peer failed ({self.proc.returncode}): {err}")
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def wait_for_subscribers(node, publisher, count: int = 1, timeout: float = 15.0) -> None:
    """Spin until `publisher` sees `count` matched subscriptions (discovery done)."""
    import rclpy
    deadline = time.monotonic() + timeout
    while publisher.get_subscription_count() < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no subscriber on {publisher.topic_name} after {timeout} s")
        rclpy.spin_once(node, timeout_sec=0.05)


class RigPublisher:
    """Publishes a Recording as a real rig does, from the test process: /tf_static (latched),
    per camera camera_info + image_raw (reliable, so offline runs lose nothing)."""

    def __init__(self, node, rec, *, reliable: bool = True, depth: int = 200):
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image
        from tf2_msgs.msg import TFMessage
        self.node, self.rec = node, rec
        rel = ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT
        self.tf_pub = node.create_publisher(TFMessage, "/tf_static", QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.info_pubs = [node.create_publisher(CameraInfo, f"/{n}/camera_info", QoSProfile(depth=10, reliability=rel))
                          for n in rec.names]
        self.img_pubs = [node.create_publisher(Image, f"/{n}/image_raw", QoSProfile(depth=depth, reliability=rel))
                         for n in rec.names]

    def wait_for_node(self, timeout: float = 60.0) -> None:
        for p in self.img_pubs:
            wait_for_subscribers(self.node, p, 1, timeout)

    def publish_static(self) -> None:
        from dense_warper_ros.ros import recording_msgs as rm
        self.tf_pub.publish(rm.tf_static(self.rec, self.rec.frames[0][1]))
        for i, p in enumerate(self.info_pubs):
            p.publish(rm.camera_info(self.rec, i, self.rec.frames[0][1]))

    def publish_frame(self, k: int, *, msg=None) -> None:
        import rclpy
        from dense_warper_ros.ros import recording_msgs as rm
        c, stamp, rgb = self.rec.frames[k]
        self.info_pubs[c].publish(rm.camera_info(self.rec, c, stamp))
        self.img_pubs[c].publish(msg if msg is not None else rm.image(self.rec, c, stamp, rgb, compressed=False))
        rclpy.spin_once(self.node, timeout_sec=0.0)


class NodeProcess:
    """`python -m dense_warper_ros.ros.node --ros-args ...` as a subprocess; `params` override
    those of `params_file`, as `-p` does after `--params-file`."""

    def __init__(self, params: dict, *, params_file: str | Path | None = None):
        from dense_warper_ros.ros.launch_logic import ros_args
        args = ros_args({"parameters": params}, params_file=params_file)
        self.proc = subprocess.Popen([sys.executable, "-m", "dense_warper_ros.ros.node", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env=os.environ.copy())

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> str:
        import signal
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
        try:
            out, _ = self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return out


class LiveRig:
    """Streams a Recording's frames as live cameras do: camera k % N at stamps near the wall clock,
    `rate` frames per second in all. Per camera a stamp error (`offsets`, ns) or a replacement
    message (`replace(camera, msg) -> msg or None`) makes a hostile camera."""

    def __init__(self, pub: RigPublisher):
        self.pub = pub
        self.sent: dict[int, int] = {}          # stamp -> camera, of every image published

    def stream(self, seconds: float, rate: float, *, offsets: dict[int, int] | None = None,
               skip: tuple[int, ...] = (), replace=None) -> None:
        import rclpy
        from dense_warper_ros.ros import recording_msgs as rm
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


def diagnostics_values(diag) -> dict[str, dict[str, str]]:
    """hardware_id -> {key: value} of one DiagnosticArray; '_level' and '_message' added."""
    return {s.hardware_id: {**{kv.key: kv.value for kv in s.values}, "_level": int.from_bytes(s.level, "little")
                            if isinstance(s.level, bytes) else int(s.level), "_message": s.message}
            for s in diag.status}


def spin_until(node, predicate, timeout: float) -> bool:
    import rclpy
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        rclpy.spin_once(node, timeout_sec=0.05)
    return predicate()


def replay_recording(rec, pipeline) -> list:
    """A Recording's messages (tf_static, camera_info + image_raw per frame) through the node's
    per-frame path offline, without ROS transport -> the poses."""
    from dense_warper_ros.replay import OfflineReplay
    from dense_warper_ros.ros import recording_msgs as rm
    rep = OfflineReplay(pipeline=pipeline, cameras=rec.names)
    rep.feed("/tf_static", rm.tf_static(rec, rec.frames[0][1]))
    for c, stamp, rgb in rec.frames:
        rep.feed(f"/{rec.names[c]}/camera_info", rm.camera_info(rec, c, stamp))
        rep.feed(f"/{rec.names[c]}/image_raw", rm.image(rec, c, stamp, rgb, compressed=False))
    return rep.finish().poses
