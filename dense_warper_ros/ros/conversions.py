"""Messages <-> core types, as pure functions (no node). CameraInfo -> Camera and image -> RGB, which
read message fields without importing a message type, are the per-frame path's (`frame_processor`)."""
from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Duration, Time
from geometry_msgs.msg import Point
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import Marker, MarkerArray

from dense_warper_ros.cameras import Camera
from dense_warper_ros.colors import track_color
from dense_warper_ros.msg import People2D, Person2D as Person2DMsg, Skeleton3D, Skeleton3DArray
from dense_warper_ros.people import LAYOUTS, Person2D, from_coco
from dense_warper_ros.pipeline import PoseResult
from dense_warper_ros.skeleton import FORMAT_NAME, H36M_BONES, H36M_JOINTS, NUM_JOINTS
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


# --- 2D people ------------------------------------------------------------------------------------
# Person2D.extra keys this module reads and writes: the detector's box (4,) x0, y0, x1, y1 px, and
# for a person that came as COCO-17 its keypoints as sent, (17, 3) x, y, score, because H36M-17
# lacks the eyes and ears that COCO-17 needs and so cannot be turned back into it.
BOX_KEY = "box"
COCO_KEY = "coco17"


def people_to_msg(people: list[Person2D], *, frame_id: str, stamp_ns: int, width: int = 0,
                  height: int = 0, layout: str = "h36m17") -> People2D:
    """Persons of one image -> People2D. `layout="coco17"` sends each person's COCO keypoints as the
    detector gave them (`extra["coco17"]`, kept by `people_from_msg`); a person without them is
    refused, since eyes and ears cannot be recovered from H36M-17."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r} is not one of {LAYOUTS}")
    if int(width) < 0 or int(height) < 0:
        raise ValueError(f"image size {width}x{height} is negative")
    out = People2D(layout=layout, image_width=int(width), image_height=int(height))
    out.header.frame_id = frame_id
    out.header.stamp = ns_to_stamp(stamp_ns)
    for i, p in enumerate(people):
        if layout == "coco17":
            coco = p.extra.get(COCO_KEY)
            if coco is None:
                raise ValueError(f"people[{i}] has no extra[{COCO_KEY!r}] (COCO keypoints) to send as coco17")
            coco = np.asarray(coco, dtype=np.float64)
            if coco.shape != (NUM_JOINTS, 3):
                raise ValueError(f"people[{i}].extra[{COCO_KEY!r}] has shape {coco.shape}, expected ({NUM_JOINTS}, 3)")
            xy, sc = coco[:, :2], coco[:, 2]
        else:
            xy, sc = p.keypoints, p.scores
        sc = np.clip(np.nan_to_num(sc, nan=0.0), 0.0, 1.0)
        box = p.extra.get(BOX_KEY)
        m = Person2DMsg(x=xy[:, 0].astype(np.float32).tolist(), y=xy[:, 1].astype(np.float32).tolist(),
                        score=sc.astype(np.float32).tolist(),
                        detection_score=float(np.clip(np.nan_to_num(p.score, nan=0.0), 0.0, 1.0)))
        if box is not None:
            m.box = np.asarray(box, dtype=np.float32).reshape(4)
        out.people.append(m)
    return out


def _scores(values, what: str) -> np.ndarray:
    """Confidences with NaN read as 0 (unseen); anything else outside [0, 1] is a broken sender."""
    v = np.asarray(values, dtype=np.float64)
    v = np.where(np.isnan(v), 0.0, v)                # (nan_to_num would also turn inf into a max)
    bad = np.flatnonzero(~((v >= 0.0) & (v <= 1.0)))
    if bad.size:
        k = int(bad[0])
        where = f"{what}[{k}]" if v.ndim else what
        raise ValueError(f"{where} is {v.flat[k]}, outside [0, 1]")
    return v


def people_from_msg(msg) -> list[Person2D]:
    """People2D -> H36M-17 persons (COCO-17 through `people.from_coco`). A malformed message raises
    ValueError naming the field, so the caller can count it as that camera's drop instead of
    feeding garbage to the model."""
    layout = msg.layout
    if layout not in LAYOUTS:
        raise ValueError(f"layout {layout!r} is not one of {LAYOUTS}")
    out = []
    for i, m in enumerate(msg.people):
        cols = {}
        for name in ("x", "y", "score"):
            v = np.asarray(getattr(m, name), dtype=np.float64)
            if v.shape != (NUM_JOINTS,):
                raise ValueError(f"people[{i}].{name} has {v.size} entries, expected {NUM_JOINTS} "
                                 f"for layout {layout!r}")
            cols[name] = v
        for name in ("x", "y"):
            inf = np.flatnonzero(np.isinf(cols[name]))
            if inf.size:
                raise ValueError(f"people[{i}].{name}[{int(inf[0])}] is {cols[name][inf[0]]}: "
                                 f"coordinates must be finite, or NaN for an unseen joint")
        score = _scores(cols["score"], f"people[{i}].score")
        det = float(_scores(m.detection_score, f"people[{i}].detection_score"))
        box = np.asarray(m.box, dtype=np.float64)
        if not np.isfinite(box).all() or box[2] < box[0] or box[3] < box[1]:
            raise ValueError(f"people[{i}].box is {box.tolist()}: expected finite x0 <= x1, y0 <= y1 "
                             f"(all zero when unknown)")
        xy = np.stack([cols["x"], cols["y"]], axis=1)
        seen = np.isfinite(xy).all(axis=1)
        score = np.where(seen, score, 0.0)           # a NaN coordinate is unseen whatever its score
        extra = {BOX_KEY: box} if box.any() else {}
        if layout == "coco17":
            coco = np.concatenate([np.where(seen[:, None], xy, np.nan), score[:, None]], axis=1)
            out.append(from_coco(coco[:, :2], score, score=det, extra={**extra, COCO_KEY: coco}))
        else:
            out.append(Person2D(keypoints=xy, scores=score, score=det, extra=extra))
    return out


# --- markers ---------------------------------------------------------------------------------------
# One colour per track (id modulo the palette), the same for a track in every message, so that a
# person keeps its colour in RViz; ten hues that stay apart on dark and light backgrounds.
# Each track owns the marker with id = its track id in each of these namespaces; a track's markers
# are exactly those, so one can be deleted without touching the others (`delete_markers_for`).
MARKER_NAMESPACES: tuple[str, ...] = ("joints", "bones", "label")


def _marker_id(track_id: int) -> int:
    """Marker ids are int32; track ids are not bounded, so they wrap (the same way on add and delete)."""
    return int(track_id) % 2**31


def _color(r, g, b, a=1.0) -> ColorRGBA:
    return ColorRGBA(r=float(r), g=float(g), b=float(b), a=float(a))


def markers_for(results: list[PoseResult], *, frame_id: str, stamp_ns: int,
                lifetime_s: float = 0.5, lost: bool = False) -> MarkerArray:
    """Joints as a sphere list, bones as a line list, a text id above the head, in the track's own
    colour; each marker is (namespace, track id) so a track's markers replace their previous
    version and can be deleted alone; a finite lifetime, and a DELETEALL when `lost` (everybody is
    gone)."""
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
        rgb = np.asarray(track_color(r.track_id))

        def base(ns: str, mtype: int) -> Marker:
            m = Marker(ns=ns, id=_marker_id(r.track_id), type=mtype, action=Marker.ADD, lifetime=life)
            m.header.frame_id = frame_id
            m.header.stamp = stamp
            m.pose.orientation.w = 1.0
            return m

        joints = base("joints", Marker.SPHERE_LIST)
        joints.scale.x = joints.scale.y = joints.scale.z = 0.05
        joints.color = _color(*rgb)
        joints.points = [Point(x=float(p[0]), y=float(p[1]), z=float(p[2])) for p in r.points[ok]]
        bones = base("bones", Marker.LINE_LIST)
        bones.scale.x = 0.02
        bones.color = _color(*(0.6 * rgb + 0.4))          # the same hue, lighter: joints stand out
        for c, p in H36M_BONES:
            if ok[c] and ok[p]:
                bones.points += [Point(x=float(v[0]), y=float(v[1]), z=float(v[2])) for v in (r.points[p], r.points[c])]
        label = base("label", Marker.TEXT_VIEW_FACING)
        label.scale.z = 0.12
        label.color = _color(*rgb)
        head = r.points[10] if ok[10] else (r.points[ok].mean(0) if ok.any() else np.zeros(3))
        label.pose.position = Point(x=float(head[0]), y=float(head[1]), z=float(head[2]) + 0.25)
        label.text = f"person {r.track_id}"
        arr.markers += [joints, bones, label]
    return arr


def delete_markers_for(track_ids, *, frame_id: str, stamp_ns: int) -> MarkerArray:
    """DELETE of exactly the markers `markers_for` draws for these tracks, so that a lost person
    vanishes at once while the others stay (DELETEALL would blank everybody until their next pose)."""
    arr = MarkerArray()
    stamp = ns_to_stamp(stamp_ns)
    for tid in track_ids:
        for ns in MARKER_NAMESPACES:
            m = Marker(ns=ns, id=_marker_id(tid), action=Marker.DELETE)
            m.header.frame_id = frame_id
            m.header.stamp = stamp
            arr.markers.append(m)
    return arr
