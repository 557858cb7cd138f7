"""CameraInfo checked field by field before it is used: each kind of bad calibration is refused
with its own cause (the node counts frames dropped by it under the camera's name)."""
import math

import numpy as np
import pytest

pytest.importorskip("sensor_msgs", reason="sensor_msgs missing: run `make setup`")
from sensor_msgs.msg import CameraInfo  # noqa: E402

from dense_warper_ros.ros.frame_processor import FrameDropped, check_camera_info  # noqa: E402


def good(model: str = "plumb_bob", d=(0.1, -0.05, 0.0, 0.0, 0.01)) -> CameraInfo:
    info = CameraInfo(width=640, height=480, distortion_model=model, d=list(d))
    info.k = [500.0, 0, 320, 0, 500, 240, 0, 0, 1]
    info.r = [1.0, 0, 0, 0, 1, 0, 0, 0, 1]
    info.p = [500.0, 0, 320, 0, 0, 500, 240, 0, 0, 0, 1, 0]
    return info


@pytest.mark.parametrize("model,d", [("plumb_bob", [0.1, -0.05, 0, 0, 0.01]), ("plumb_bob", []),
                                     ("rational_polynomial", [0.1] * 8), ("equidistant", [0.01] * 4), ("", [])])
def test_valid_calibrations_pass(model, d):
    check_camera_info(good(model, d), "cam")


def _with(**fields) -> CameraInfo:
    info = good()
    for k, v in fields.items():
        setattr(info, k, v)
    return info


@pytest.mark.parametrize("info,cause,words", [
    (_with(d=[0.1, 0.2, 0.3]), "bad_camera_info", "plumb_bob distortion takes 0 or 4 or 5"),
    (_with(d=[0.1, math.nan, 0, 0, 0]), "bad_camera_info", "D = "),
    (_with(distortion_model="rational_polynomial"), "bad_camera_info", "8"),
    (_with(distortion_model="equidistant", d=[0.1] * 5), "bad_camera_info", "equidistant"),
    (_with(k=[math.inf, 0, 320, 0, 500, 240, 0, 0, 1]), "bad_camera_info", "K = "),
    (_with(r=[math.nan] * 9), "bad_camera_info", "R = "),
    (_with(p=[1.0] * 11 + [math.nan]), "bad_camera_info", "P = "),
    (_with(d=[1e300, 0, 0, 0, 0]), "bad_camera_info", "beyond"),
    (_with(k=[1e300, 0, 320, 0, 500, 240, 0, 0, 1]), "bad_camera_info", "not an intrinsic matrix"),
    (_with(k=[0.0] * 9), "uncalibrated", "K[0] == 0"),
    (_with(width=0), "camera_info_zero_size", "0x480"),
    (_with(distortion_model="kannala_brandt_9"), "unknown_distortion", "kannala_brandt_9"),
])
def test_each_bad_calibration_has_its_cause(info, cause, words):
    with pytest.raises(FrameDropped) as e:
        check_camera_info(info, "cam3")
    assert e.value.cause == cause and words in str(e.value) and "cam3" in str(e.value)


def test_a_camera_built_from_a_three_coefficient_d_would_fail_in_opencv():
    """Why D's length is checked: OpenCV refuses it deep inside projection, in the worker."""
    import cv2
    with pytest.raises(cv2.error):
        cv2.projectPoints(np.zeros((1, 3)), np.zeros(3), np.zeros(3), np.eye(3), np.array([0.1, 0.2, 0.3]))
