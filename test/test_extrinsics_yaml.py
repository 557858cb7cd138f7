"""Extrinsics from a calibration YAML (`ros/tf_source.YamlExtrinsicsSource`, the node's
`extrinsics_file`) for rigs without TF: the file's world <- optical poses become the cameras' poses;
a malformed file is refused with an error that names the file and what is wrong."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy missing: run `make setup`")

from sensor_msgs.msg import CameraInfo  # noqa: E402

from dense_warper_ros.ros.frame_processor import camera_from_info  # noqa: E402
from dense_warper_ros.ros.tf_source import YamlExtrinsicsSource  # noqa: E402
from dense_warper_ros.transforms import TransformError  # noqa: E402

S = float(np.sqrt(0.5))
RIG = f"""\
world_frame: world
cameras:
  cam0_optical: {{translation: [4.0, 0.0, 1.5], rotation_xyzw: [-0.5, -0.5, 0.5, 0.5]}}
  cam1_optical: {{translation: [0.0, -4.0, 1.5], rotation_xyzw: [{-S!r}, 0.0, 0.0, {S!r}]}}
"""


def source(tmp_path, text: str, world_frame: str = "world") -> YamlExtrinsicsSource:
    path = tmp_path / "extrinsics.yaml"
    path.write_text(text)
    return YamlExtrinsicsSource(path, world_frame=world_frame)


def info() -> CameraInfo:
    return CameraInfo(width=640, height=480, distortion_model="plumb_bob", d=[0.0] * 5,
                      k=[500.0, 0, 319.5, 0, 500.0, 239.5, 0, 0, 1.0])


def test_yaml_poses_become_the_camera_poses(tmp_path):
    src = source(tmp_path, RIG)
    for frame, centre in (("cam0_optical", [4.0, 0.0, 1.5]), ("cam1_optical", [0.0, -4.0, 1.5])):
        T = src.lookup("world", frame, 1_234_567_890, 0.1)          # static: any stamp
        cam = camera_from_info(info(), R_world_cam=T.R, p_world_cam=T.t, name=frame)
        np.testing.assert_allclose(cam.centre, centre, atol=1e-12)
        # both look at the origin at their own height: it projects onto the principal point
        np.testing.assert_allclose(cam.project(np.array([[0.0, 0.0, 1.5]]))[0], [319.5, 239.5], atol=1e-9)
        above = cam.project(np.array([[0.0, 0.0, 2.0]]))[0]
        assert above[1] < 239.5                                         # world up is image up
    R1 = src.lookup("world", "cam1_optical", 0, 0.1).R                  # -90 deg about x: optical z = world +y
    np.testing.assert_allclose(R1 @ [0.0, 0.0, 1.0], [0.0, 1.0, 0.0], atol=1e-12)


def test_unknown_frame_is_a_transform_error(tmp_path):
    with pytest.raises(TransformError):
        source(tmp_path, RIG).lookup("world", "cam9_optical", 0, 0.1)


@pytest.mark.parametrize("text", ["", "- cam0_optical\n", "world_frame: world\n"],
                         ids=["empty", "a list", "no cameras"])
def test_a_file_without_cameras_is_refused(tmp_path, text):
    with pytest.raises(ValueError, match=r"extrinsics\.yaml: expected a mapping with 'cameras'"):
        source(tmp_path, text)


@pytest.mark.parametrize("entry", ["cameras: {cam0_optical: {rotation_xyzw: [0, 0, 0, 1]}}",
                                   "cameras: {cam0_optical: {translation: [1, 2, 3], rotation_xyzw: [0, 0, 1]}}",
                                   "cameras: [cam0_optical]"],
                         ids=["no translation", "3-value quaternion", "cameras as a list"])
def test_a_malformed_camera_entry_names_the_file_and_camera(tmp_path, entry):
    with pytest.raises(ValueError, match=r"extrinsics\.yaml.*cam0_optical"):
        source(tmp_path, entry + "\n")


def test_a_zero_quaternion_is_refused(tmp_path):
    with pytest.raises(ValueError, match="cam0_optical"):
        source(tmp_path, "cameras: {cam0_optical: {translation: [1, 2, 3], rotation_xyzw: [0, 0, 0, 0]}}\n")
