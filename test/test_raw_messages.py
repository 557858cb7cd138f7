"""Frames and CameraInfo taken serialized: the node reads the same fields as from rclpy's messages."""
import numpy as np
import pytest
from rclpy.serialization import serialize_message
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from dense_warper_ros.ros import raw_frames
from dense_warper_ros.ros.frame_processor import image_to_rgb, stamp_to_ns
from dense_warper_ros.ros.repeated_info import RepeatedInfo

try:
    import rosbags  # noqa: F401
    HAVE_ROSBAGS = True
except ImportError:                   # a ROS install without it: the node subscribes as usual
    HAVE_ROSBAGS = False
needs_rosbags = pytest.mark.skipif(not HAVE_ROSBAGS, reason="rosbags is not installed")


class Recorder:
    """What subscribe_frames asks of a node: its subscriptions."""

    def __init__(self):
        self.subs = []

    def create_subscription(self, msg_type, topic, callback, qos, raw=False, event_callbacks=None):
        self.subs.append((msg_type, topic, callback, raw, event_callbacks))


def _rgb(h=48, w=64) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8)


def _image(rgb: np.ndarray, encoding: str = "rgb8", pad: int = 0) -> Image:
    h, w = rgb.shape[:2]
    step = w * 3 + pad
    rows = np.zeros((h, step), np.uint8)
    rows[:, :w * 3] = (rgb[..., ::-1] if encoding == "bgr8" else rgb).reshape(h, -1)
    msg = Image(height=h, width=w, encoding=encoding, step=step, is_bigendian=0, data=rows.tobytes())
    msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id = 12, 345, "cam0_optical"
    return msg


@needs_rosbags
@pytest.mark.parametrize("encoding,pad", [("rgb8", 0), ("bgr8", 5)])
def test_a_serialized_image_decodes_as_rclpys_message_does(encoding, pad):
    msg = _image(_rgb(), encoding, pad)
    got = raw_frames.frame_reader(Image)(serialize_message(msg))
    assert stamp_to_ns(got.header.stamp) == stamp_to_ns(msg.header.stamp) and got.header.frame_id == "cam0_optical"
    np.testing.assert_array_equal(image_to_rgb(got, expected=(64, 48)), image_to_rgb(msg, expected=(64, 48)))
    np.testing.assert_array_equal(image_to_rgb(got), _rgb())


@needs_rosbags
def test_a_serialized_compressed_image_decodes_as_rclpys_message_does():
    import cv2
    ok, buf = cv2.imencode(".png", _rgb()[..., ::-1])
    msg = CompressedImage(format="png", data=buf.tobytes())
    got = raw_frames.frame_reader(CompressedImage)(serialize_message(msg))
    np.testing.assert_array_equal(image_to_rgb(got), image_to_rgb(msg))
    np.testing.assert_array_equal(image_to_rgb(got), _rgb())


def test_other_types_are_subscribed_as_usual():
    assert raw_frames.frame_reader(CameraInfo) is None


def test_a_camera_info_that_differs_only_in_its_stamp_is_a_repeat():
    info = CameraInfo(width=64, height=48, distortion_model="plumb_bob")
    info.k = [500.0, 0, 32, 0, 500.0, 24, 0, 0, 1]
    info.header.frame_id = "cam0_optical"
    seen = RepeatedInfo(2)
    assert not seen.is_repeat(0, serialize_message(info))
    info.header.stamp.sec, info.header.stamp.nanosec = 99, 7
    assert seen.is_repeat(0, serialize_message(info))
    assert not seen.is_repeat(1, serialize_message(info))          # per camera
    info.k[0] = 501.0
    assert not seen.is_repeat(0, serialize_message(info))          # a new calibration is not
    assert seen.is_repeat(0, serialize_message(info))
    info.header.frame_id = "other"
    assert not seen.is_repeat(0, serialize_message(info))


@needs_rosbags
def test_a_frame_that_cannot_be_read_is_reported_not_raised():
    node = Recorder()
    frames, errors = [], []
    events = object()                                   # rclpy's SubscriptionEventCallbacks in the node
    raw_frames.subscribe_frames(node, Image, "/cam0/image_raw", 5, frames.append, errors.append,
                                event_callbacks=events)
    (_, topic, take, raw, passed), = node.subs
    assert topic == "/cam0/image_raw" and raw and passed is events
    take(serialize_message(_image(_rgb())))
    take(b"\x00\x01\x00\x00 not an image")
    assert len(frames) == 1 and len(errors) == 1 and errors[0]
    np.testing.assert_array_equal(image_to_rgb(frames[0]), _rgb())


def test_without_a_reader_frames_are_subscribed_as_usual(monkeypatch):
    monkeypatch.setattr(raw_frames, "frame_reader", lambda msg_type: None)
    node, frames = Recorder(), []
    events = object()
    raw_frames.subscribe_frames(node, Image, "/cam0/image_raw", 5, frames.append, lambda why: None,
                                event_callbacks=events)
    assert node.subs == [(Image, "/cam0/image_raw", frames.append, False, events)]
