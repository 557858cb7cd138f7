"""Camera frames taken serialized and read without rclpy's message conversion.

rclpy turns a received Image into a Python message field by field, copying its pixels into an
array.array: at 60 frames/s of 960x540 that was about a quarter of the executor thread, time spent
holding the GIL that the backbone and fusion threads need. Taken serialized (`raw=True`) and read by
rosbags' CDR deserializer, the message keeps the same field names and its pixels stay a numpy view
of the received bytes. Without rosbags the node subscribes as usual.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

from rclpy.serialization import deserialize_message
from sensor_msgs.msg import CompressedImage, Image

_NAMES = {Image: "sensor_msgs/msg/Image", CompressedImage: "sensor_msgs/msg/CompressedImage"}


def frame_reader(msg_type: type) -> Callable[[bytes], Any] | None:
    """serialized message -> a message with the fields of `msg_type` (Image or CompressedImage), or
    None when rosbags is absent or the type is another one (subscribe to it as usual then). A
    message rosbags cannot read (an encoding it does not know) goes through rclpy's deserializer."""
    name = _NAMES.get(msg_type)
    store = _typestore() if name is not None else None
    if store is None:
        return None

    def read(raw: bytes) -> Any:
        try:
            return store.deserialize_cdr(raw, name)
        except Exception:                 # noqa: BLE001 - rosbags' errors have no common base
            return deserialize_message(raw, msg_type)
    return read


@functools.cache
def _typestore():
    """rosbags' type store, one per process (each store builds its own deserializers), or None."""
    try:
        from rosbags.typesys import Stores, get_typestore
    except ImportError:
        return None
    return get_typestore(Stores.ROS2_HUMBLE)    # sensor_msgs' image types are the same in every distro


def subscribe_frames(node, msg_type: type, topic: str, qos, on_frame: Callable[[Any], None],
                     on_undecodable: Callable[[str], None], event_callbacks=None):
    """A subscription that hands `on_frame` each frame, taken serialized where `frame_reader` can
    read it; a message that cannot be read goes to `on_undecodable` (a reason), not to the executor.
    `event_callbacks`: rclpy's SubscriptionEventCallbacks (None: rclpy's defaults)."""
    read = frame_reader(msg_type)
    if read is None:
        return node.create_subscription(msg_type, topic, on_frame, qos, event_callbacks=event_callbacks)

    def take(raw: bytes) -> None:
        try:
            msg = read(raw)
        except Exception as e:           # noqa: BLE001 - one bad message must not end the node
            on_undecodable(f"{type(e).__name__}: {e}")
            return
        on_frame(msg)
    return node.create_subscription(msg_type, topic, take, qos, raw=True, event_callbacks=event_callbacks)
