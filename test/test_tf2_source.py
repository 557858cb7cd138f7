"""The tf2_ros extrinsics source: a real tf2_ros Buffer where it imports (a user's ROS install),
otherwise a stand-in module with tf2_ros's names that checks what the source does with them:
stamps and timeouts converted to rclpy types, every tf2 lookup failure mapped to TransformError."""
from __future__ import annotations

import types

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy missing: run `make setup`")
from geometry_msgs.msg import TransformStamped  # noqa: E402

from dense_warper_ros.ros import tf_source  # noqa: E402
from dense_warper_ros.transforms import TransformError  # noqa: E402


def _stamped(stamp_ns: int) -> TransformStamped:
    tf = TransformStamped()
    tf.header.frame_id, tf.child_frame_id = "world", "cam0_optical"
    tf.header.stamp.sec, tf.header.stamp.nanosec = divmod(stamp_ns, 10**9)
    tf.transform.translation.x, tf.transform.translation.y, tf.transform.translation.z = 1.0, 2.0, 3.0
    tf.transform.rotation.z, tf.transform.rotation.w = np.sin(np.pi / 4), np.cos(np.pi / 4)   # 90 deg about z
    return tf


def _stand_in() -> tuple[types.ModuleType, list]:
    """A module with tf2_ros's names; its Buffer records the lookups and raises on request."""
    calls: list = []

    class TransformException(Exception):
        pass

    class LookupException(TransformException):
        pass

    class TimeoutException(TransformException):
        pass

    class Buffer:
        fail: Exception | None = None

        def lookup_transform(self, target, source, time, timeout):
            calls.append((target, source, time, timeout))
            if Buffer.fail is not None:
                raise Buffer.fail
            return _stamped(time.nanoseconds)

        def clear(self):
            calls.append("clear")

    mod = types.ModuleType("tf2_ros")
    mod.Buffer, mod.TransformListener = Buffer, lambda buffer, node: None
    mod.TransformException, mod.LookupException, mod.TimeoutException = (
        TransformException, LookupException, TimeoutException)
    return mod, calls


def test_lookup_converts_stamp_and_timeout_and_maps_every_failure(monkeypatch):
    mod, calls = _stand_in()
    monkeypatch.setattr(tf_source, "tf2_ros", mod, raising=False)
    src = tf_source.Tf2RosSource(node=None)
    t = src.lookup("world", "cam0_optical", 1_700_000_000_123_456_789, 0.25)
    _, _, when, timeout = calls[-1]
    assert when.nanoseconds == 1_700_000_000_123_456_789 and timeout.nanoseconds == 250_000_000
    np.testing.assert_allclose(t.t, [1, 2, 3])
    np.testing.assert_allclose(t.R @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    for exc in (mod.LookupException("no frame"), mod.TimeoutException("waited"), mod.TransformException("x")):
        mod.Buffer.fail = exc
        with pytest.raises(TransformError, match=str(exc)):
            src.lookup("world", "cam0_optical", 1, 0.0)
    src.clear()
    assert calls[-1] == "clear"


def test_with_a_real_tf2_ros():
    """Where tf2_ros imports: a static transform set on the real Buffer comes back the same."""
    tf2_ros = pytest.importorskip("tf2_ros", reason="tf2_ros is not installable here (a real ROS install has it)")
    src = tf_source.Tf2RosSource.__new__(tf_source.Tf2RosSource)
    src.buffer = tf2_ros.Buffer()
    src.buffer.set_transform_static(_stamped(0), "test")
    t = src.lookup("world", "cam0_optical", 5 * 10**9, 0.0)
    np.testing.assert_allclose(t.t, [1, 2, 3])
    with pytest.raises(TransformError):
        src.lookup("world", "no_such_frame", 5 * 10**9, 0.0)
