"""Messages <-> core types (`ros/conversions.py`, `frames.camera_from_info`) with real ROS messages:
CameraInfo -> Camera -> CameraInfo unchanged for each distortion model the node takes, the
Skeleton3D fields (covariance in its six slots per joint), and the markers (DELETEALL when the
person is lost)."""
from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy missing: run `make setup`")

from sensor_msgs.msg import CameraInfo  # noqa: E402
from visualization_msgs.msg import Marker  # noqa: E402

from dense_warper_ros.cameras import Camera  # noqa: E402
from dense_warper_ros.pipeline import PoseResult  # noqa: E402
from dense_warper_ros.ros.conversions import (camera_to_info, markers_for, ns_to_stamp,  # noqa: E402
                                              skeleton_from_msg, skeletons_to_msg)
from dense_warper_ros.ros.frame_processor import camera_from_info  # noqa: E402
from dense_warper_ros.skeleton import FORMAT_NAME, H36M_BONES, H36M_JOINTS  # noqa: E402

J = len(H36M_JOINTS)
DISTORTIONS = {                                   # distortion model -> D, as a calibrated camera has it
    "plumb_bob": [-0.28, 0.07, 0.0012, -0.0004, 0.01],
    "rational_polynomial": [0.5, -0.12, 0.0008, 0.0003, 0.02, 0.85, -0.05, 0.06],
    "equidistant": [0.04, -0.01, 0.002, -0.0005],
}


def camera_info(model: str) -> CameraInfo:
    """A calibrated (not rectified) camera's CameraInfo: R = I, P = [K | 0]."""
    K = [612.5, 0.0, 319.25, 0.0, 611.75, 241.5, 0.0, 0.0, 1.0]
    info = CameraInfo(width=640, height=480, distortion_model=model, d=DISTORTIONS[model], k=K,
                      r=[1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0],
                      p=[612.5, 0.0, 319.25, 0.0, 0.0, 611.75, 241.5, 0.0, 0.0, 0.0, 1.0, 0.0])
    info.header.frame_id = "cam0_optical"
    info.header.stamp = ns_to_stamp(1_700_000_000_123_456_789)
    return info


def fields(info: CameraInfo) -> dict:
    return {"header": (info.header.frame_id, info.header.stamp.sec, info.header.stamp.nanosec),
            "size": (info.width, info.height), "model": info.distortion_model,
            "d": list(info.d), "k": list(info.k), "r": list(info.r), "p": list(info.p)}


@pytest.mark.parametrize("model", sorted(DISTORTIONS))
def test_camera_info_round_trip(model):
    info = camera_info(model)
    cam = camera_from_info(info, R_world_cam=np.eye(3), p_world_cam=np.zeros(3), name="cam0")
    assert cam.dist_model == model and cam.dist.tolist() == DISTORTIONS[model]
    back = camera_to_info(cam, CameraInfo, frame_id=info.header.frame_id,
                          stamp_ns=1_700_000_000_123_456_789)
    assert fields(back) == fields(info)
    again = camera_from_info(back, R_world_cam=np.eye(3), p_world_cam=np.zeros(3), name="cam0")
    np.testing.assert_array_equal(again.K, cam.K)
    np.testing.assert_array_equal(again.dist, cam.dist)


def test_camera_pose_comes_from_the_transform_not_the_camera_info():
    """World <- optical pose in; the Camera's extrinsics are its inverse (X_cam = R X_world + t)."""
    yaw = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    cam = camera_from_info(camera_info("plumb_bob"), R_world_cam=yaw, p_world_cam=np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(cam.centre, [1.0, 2.0, 3.0], atol=1e-12)
    np.testing.assert_allclose(cam.R, yaw.T, atol=1e-12)
    assert fields(camera_to_info(cam, CameraInfo, frame_id="cam0_optical",
                                 stamp_ns=1_700_000_000_123_456_789))["r"] == [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0]


def test_distortion_free_camera_goes_out_as_zero_plumb_bob():
    cam = Camera(K=np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]]), R=np.eye(3), t=np.zeros(3),
                 width=640, height=480)
    info = camera_to_info(cam, CameraInfo, frame_id="c")
    assert info.distortion_model == "plumb_bob" and list(info.d) == [0.0] * 5


def pose(track_id: int = 3) -> PoseResult:
    g = np.random.default_rng(0)
    pts = g.normal(size=(J, 3))
    pts[5] = np.nan                                            # an unknown joint
    A = g.normal(size=(J, 3, 3))
    cov = A @ A.transpose(0, 2, 1)                             # symmetric, distinct entries
    cov[5] = np.nan
    return PoseResult(stamp_ns=2_000_000_005, points=pts, confidence=np.linspace(0.1, 0.9, J), covariance=cov,
                      num_views=np.arange(J) % 5, view_stamps_ns=(1_999_000_000, 2_000_000_005),
                      view_frame_ids=("cam1_optical", "cam0_optical"), track_id=track_id)


def test_skeleton_message_fields_and_covariance_slots():
    r = pose()
    msg = skeletons_to_msg([r], frame_id="world", stamp_ns=r.stamp_ns)
    assert msg.header.frame_id == "world" and (msg.header.stamp.sec, msg.header.stamp.nanosec) == (2, 5)
    (sk,) = msg.skeletons
    assert sk.id == 3 and sk.format == FORMAT_NAME and list(sk.joint_names) == list(H36M_JOINTS)
    assert len(sk.covariance) == 6 * J
    for j in range(J):                                          # xx, xy, xz, yy, yz, zz per joint
        c = r.covariance[j]
        want = [c[0, 0], c[0, 1], c[0, 2], c[1, 1], c[1, 2], c[2, 2]]
        got = list(sk.covariance[6 * j:6 * j + 6])
        assert got == ([-1.0] * 6 if j == 5 else want), j
    pts, conf = skeleton_from_msg(sk)
    np.testing.assert_array_equal(pts, r.points)               # NaN rows stay NaN
    np.testing.assert_allclose(conf, r.confidence, rtol=1e-6)   # float32 on the wire
    assert list(sk.num_views) == r.num_views.tolist()
    assert [(s.sec, s.nanosec) for s in sk.view_stamps] == [(1, 999_000_000), (2, 5)]
    assert list(sk.view_frame_ids) == ["cam1_optical", "cam0_optical"]


def test_markers_draw_the_person_with_its_track_id():
    r = pose(track_id=7)
    arr = markers_for([r], frame_id="world", stamp_ns=r.stamp_ns, lifetime_s=0.5)
    by_ns = {m.ns: m for m in arr.markers}
    assert set(by_ns) == {"joints", "bones", "label"}
    assert all(m.id == 7 and m.action == Marker.ADD and m.header.frame_id == "world" for m in arr.markers)
    assert all((m.lifetime.sec, m.lifetime.nanosec) == (0, 500_000_000) for m in arr.markers)
    assert by_ns["joints"].type == Marker.SPHERE_LIST and len(by_ns["joints"].points) == J - 1   # not the NaN one
    drawn = [b for b in H36M_BONES if 5 not in b]
    assert by_ns["bones"].type == Marker.LINE_LIST and len(by_ns["bones"].points) == 2 * len(drawn)
    assert all(math.isfinite(p.x) for m in arr.markers for p in m.points)
    assert by_ns["label"].text == "person 7"


def test_a_lost_person_clears_every_marker():
    arr = markers_for([], frame_id="world", stamp_ns=3_000_000_000, lost=True)
    (m,) = arr.markers
    assert m.action == Marker.DELETEALL and m.header.frame_id == "world" and m.header.stamp.sec == 3
    assert markers_for([pose()], frame_id="world", stamp_ns=0, lost=True).markers[0].action == Marker.DELETEALL
