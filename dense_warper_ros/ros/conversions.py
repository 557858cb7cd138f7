"""Messages <-> core types, as pure functions (no node). CameraInfo -> Camera and image -> RGB, which
read message fields without importing a message type, are the per-frame path's (`frame_processor`)."""
from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import Point
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from dense_warper_ros.cameras import Camera
from dense_warper_ros.msg import Skeleton3D, Skeleton3DArray
from dense_warper_ros.pipeline import PoseResult
from dense_warper_ros.skeleton import FORMAT_NAME, H36M_BONES, H36M_JOINTS
from dense_warper_ros.transforms import Transform, quat_to_matrix

def ns_to_stamp(ns: int) -> Time:
    return Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def camera_to_info(cam: Camera, info_cls, *, frame_id: str, stamp_ns: int = 0):
    """Camera -> CameraInfo (intrinsics only; extrinsics travel as TF)."""
    info = info_cls()
    info.header.frame_id = frame_id
    info.header.stamp = ns_to_stamp(stamp_ns)
    info.width, info.height = cam.width, cam.height
    inv = {"none": "plumb_bob"}
    info.distortion_model = inv.get(cam.dist_model, cam.dist_model)
    n = {"plumb_bob": 5, "rational_polynomial": 8, "equidistant": 4}[info.distortion_model]
    d = np.zeros(n)
    d[:min(n, cam.dist.size)] = cam.dist[:n]
    info.d = d.tolist()
    info.k = cam.K.ravel().tolist()
    info.r = np.eye(3).ravel().tolist()
    info.p = np.hstack([cam.K, np.zeros((3, 1))]).ravel().tolist()
    return info


def transform_from_msg(tf) -> Transform:
    """geometry_msgs/Transform -> Transform (parent <- child)."""
    q = tf.rotation
    return Transform(quat_to_matrix([q.x, q.y, q.z, q.w]),
                     np.array([tf.translation.x, tf.translation.y, tf.translation.z]))


def skeletons_to_msg(results: list[PoseResult], *, frame_id: str, stamp_ns: int) -> Skeleton3DArray:
    out = Skeleton3DArray()
    out.header.frame_id = frame_id
    out.header.stamp = ns_to_stamp(stamp_ns)
    for r in results:
        sk = Skeleton3D(id=int(r.track_id), format=FORMAT_NAME, joint_names=list(H36M_JOINTS))
        sk.positions = [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in r.points]
        sk.confidence = np.nan_to_num(r.confidence).astype(np.float32).tolist()
        iu = np.triu_indices(3)
        sk.covariance = np.nan_to_num(r.covariance[:, iu[0], iu[1]], nan=-1.0).ravel().tolist()
        sk.num_views = np.clip(r.num_views, 0, 255).astype(np.uint8).tolist()
        sk.view_stamps = [ns_to_stamp(s) for s in r.view_stamps_ns]
        sk.view_frame_ids = list(r.view_frame_ids)
        out.skeletons.append(sk)
    return out


def skeleton_from_msg(sk) -> tuple[np.ndarray, np.ndarray]:
    """Skeleton3D -> ((J, 3) points, (J,) confidence)."""
    pts = np.array([[p.x, p.y, p.z] for p in sk.positions], dtype=np.float64)
    return pts, np.asarray(sk.confidence, dtype=np.float64)


def _color(r, g, b, a=1.0) -> ColorRGBA:
    return ColorRGBA(r=float(r), g=float(g), b=float(b), a=float(a))


def markers_for(results: list[PoseResult], *, frame_id: str, stamp_ns: int,
                lifetime_s: float = 0.5, lost: bool = False) -> MarkerArray:
    """Joints as a sphere list, bones as a line list, a text id per person; stable ids (the track
    id), a finite lifetime, and a DELETEALL when `lost` (the person is gone)."""
    arr = MarkerArray()
    stamp = ns_to_stamp(stamp_ns)
    life = Duration(sec=int(lifetime_s), nanosec=int((lifetime_s % 1) * 1e9))
    if lost:
        m = Marker(action=Marker.DELETEALL)
        m.header.frame_id = frame_id
        m.header.stamp = stamp
        arr.markers.append(m)
        return arr
    for r in results:
        ok = np.all(np.isfinite(r.points), axis=1)

        def base(ns: str, mtype: int) -> Marker:
            m = Marker(ns=ns, id=int(r.track_id), type=mtype, action=Marker.ADD, lifetime=life)
            m.header.frame_id = frame_id
            m.header.stamp = stamp
            m.pose.orientation.w = 1.0
            return m

        joints = base("joints", Marker.SPHERE_LIST)
        joints.scale.x = joints.scale.y = joints.scale.z = 0.05
        joints.color = _color(1.0, 0.55, 0.0)
        joints.points = [Point(x=float(p[0]), y=float(p[1]), z=float(p[2])) for p in r.points[ok]]
        bones = base("bones", Marker.LINE_LIST)
        bones.scale.x = 0.02
        bones.color = _color(0.1, 0.6, 1.0)
        for c, p in H36M_BONES:
            if ok[c] and ok[p]:
                bones.points += [Point(x=float(v[0]), y=float(v[1]), z=float(v[2])) for v in (r.points[p], r.points[c])]
        label = base("label", Marker.TEXT_VIEW_FACING)
        label.scale.z = 0.12
        label.color = _color(1.0, 1.0, 1.0)
        head = r.points[10] if ok[10] else (r.points[ok].mean(0) if ok.any() else np.zeros(3))
        label.pose.position = Point(x=float(head[0]), y=float(head[1]), z=float(head[2]) + 0.25)
        label.text = f"person {r.track_id}"
        arr.markers += [joints, bones, label]
    return arr
