"""Camera extrinsics at a frame's capture stamp: tf2_ros where it imports, else the package's own
/tf + /tf_static listener (tf2_msgs/TFMessage, the same type as tf2's), else a calibration YAML.

All three answer `lookup(target, source, stamp_ns, timeout_s) -> Transform` (target <- source) and
raise `TransformError` when the transform is not available within the timeout.
"""
from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import numpy as np
import yaml
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time as RclTime

from dense_warper_ros.transforms import Transform, TransformError, TransformTree, quat_to_matrix

try:                                    # a real ROS install
    import tf2_ros
    HAVE_TF2_ROS = True
except ImportError:                     # PyPI wheels: no tf2_ros
    HAVE_TF2_ROS = False

TF_QOS = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
TF_STATIC_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.TRANSIENT_LOCAL, history=HistoryPolicy.KEEP_LAST)


def _to_transform(tf_msg) -> Transform:
    q, p = tf_msg.rotation, tf_msg.translation
    return Transform(quat_to_matrix([q.x, q.y, q.z, q.w]), np.array([p.x, p.y, p.z]))


class Tf2RosSource:
    """tf2_ros.Buffer + TransformListener (the node's executor spins the listener)."""
    kind = "tf2_ros"

    def __init__(self, node: Node):
        self.buffer = tf2_ros.Buffer()
        self.listener = tf2_ros.TransformListener(self.buffer, node)

    def lookup(self, target: str, source: str, stamp_ns: int, timeout_s: float) -> Transform:
        from rclpy.duration import Duration
        try:
            tf = self.buffer.lookup_transform(target, source, RclTime(nanoseconds=stamp_ns),
                                              timeout=Duration(seconds=timeout_s))
        except tf2_ros.TransformException as e:       # lookup, connectivity, extrapolation, timeout, bad frame
            raise TransformError(str(e)) from e
        return _to_transform(tf.transform)

    def clear(self) -> None:
        self.buffer.clear()


class TopicTfSource:
    """The fallback: subscribe /tf and /tf_static into a TransformTree."""
    kind = "tf_topics"

    def __init__(self, node: Node):
        from tf2_msgs.msg import TFMessage     # the official one, or the fallback built by setup
        self.tree = TransformTree()
        self._lock = threading.Lock()
        self._subs = [node.create_subscription(TFMessage, "/tf", lambda m: self._on(m, False), TF_QOS),
                      node.create_subscription(TFMessage, "/tf_static", lambda m: self._on(m, True),
                                               TF_STATIC_QOS)]

    def _on(self, msg, static: bool) -> None:
        with self._lock:
            for tf in msg.transforms:
                t, q = tf.transform.translation, tf.transform.rotation
                stamp = tf.header.stamp.sec * 1_000_000_000 + tf.header.stamp.nanosec
                try:
                    self.tree.add(tf.header.frame_id, tf.child_frame_id, stamp,
                                  [t.x, t.y, t.z], [q.x, q.y, q.z, q.w], static=static)
                except ValueError:
                    pass          # an invalid edge (empty or self-referencing frame) is ignored

    def lookup(self, target: str, source: str, stamp_ns: int, timeout_s: float) -> Transform:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with self._lock:
                    return self.tree.lookup(target, source, stamp_ns)
            except TransformError:
                if time.monotonic() >= deadline:
                    raise
            time.sleep(0.005)

    def clear(self) -> None:
        with self._lock:
            self.tree.clear(keep_static=True)


class YamlExtrinsicsSource:
    """Fixed extrinsics from a calibration YAML, for users without TF:

        world_frame: world
        cameras:
          cam0_optical: {translation: [x, y, z], rotation_xyzw: [x, y, z, w]}   # world <- optical
    """
    kind = "yaml"

    def __init__(self, path: str | Path, *, world_frame: str):
        data = yaml.safe_load(Path(path).read_text())
        if not isinstance(data, dict) or not isinstance(data.get("cameras"), dict):
            raise ValueError(f"extrinsics file {path}: expected a mapping with 'cameras' (optical frame -> pose), "
                             f"got {data!r:.200}")
        world_frame = str(data.get("world_frame", world_frame))
        self.tree = TransformTree()
        for frame, e in data["cameras"].items():
            t, q = _pose_entry(e)
            if t is None:
                raise ValueError(f"extrinsics file {path}, camera {frame!r}: expected {{translation: [x, y, z], "
                                 f"rotation_xyzw: [x, y, z, w]}} with a non-zero quaternion, got {e!r}")
            self.tree.add(world_frame, str(frame), 0, t, q, static=True)

    def lookup(self, target: str, source: str, stamp_ns: int, timeout_s: float) -> Transform:
        return self.tree.lookup(target, source, stamp_ns)

    def clear(self) -> None:
        pass


def _pose_entry(e) -> tuple[list[float], list[float]] | tuple[None, None]:
    """A camera's {translation, rotation_xyzw} -> (t, q), or (None, None) when malformed."""
    try:
        t = [float(v) for v in e["translation"]]
        q = [float(v) for v in e["rotation_xyzw"]]
    except (KeyError, TypeError, ValueError):
        return None, None
    ok = len(t) == 3 and len(q) == 4 and all(math.isfinite(v) for v in t + q) and math.hypot(*q) > 1e-9
    return (t, q) if ok else (None, None)


def make_tf_source(node: Node, *, extrinsics_file: str, world_frame: str):
    if extrinsics_file:
        return YamlExtrinsicsSource(extrinsics_file, world_frame=world_frame)
    return Tf2RosSource(node) if HAVE_TF2_ROS else TopicTfSource(node)
