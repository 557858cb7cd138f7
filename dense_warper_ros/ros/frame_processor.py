"""One camera frame message -> poses, shared by the node and the bag evaluator.

Works on anything with the fields of sensor_msgs/Image, CompressedImage and CameraInfo (rclpy
messages in the node, `rosbags` messages in the evaluator), so the evaluator runs exactly the
node's per-frame path without a ROS runtime. Every reason to drop a frame raises `FrameDropped`
with a short cause key, which the caller counts and logs.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from dense_warper_ros.cameras import DISTORTION_SIZES, Camera
from dense_warper_ros.clock_check import ClockCheck, Verdict
from dense_warper_ros.images import ImageError, decode_compressed, decode_raw
from dense_warper_ros.pipeline import FrameData, PosePipeline, PoseResult
from dense_warper_ros.ros.conversions import people_from_msg
from dense_warper_ros.transforms import Transform, TransformError

_DIST_MODELS = {"plumb_bob": "plumb_bob", "rational_polynomial": "rational_polynomial",
                "equidistant": "equidistant", "fisheye": "equidistant", "": "none", "none": "none"}

MAX_DISTORTION = 1e4        # |coefficient| of any lens model; larger values are corrupt, not optics
MAX_FOCAL_PX = 1e6          # larger focal lengths or principal points are corrupt values, not lenses
INFO_CAUSES = ("uncalibrated", "camera_info_zero_size", "unknown_distortion", "bad_camera_info")   # CameraInfo refused

TF_RETRY_S = 1.0            # after a failed lookup, wait for TF again only after this long

TfLookup = Callable[[str, str, int, float], Transform]   # (target, source, stamp_ns, timeout_s)


@dataclass(frozen=True)
class PreparedFrame:
    """A frame ready for the interleaved buffer."""
    camera: int
    stamp_ns: int
    data: FrameData
    reset: bool = False                    # the stamps jumped back before this frame: reset first


class FrameDropped(Exception):
    """A frame that gives no pose input: `cause` is the key it is counted under (per camera, in
    /diagnostics), `text` the detail that is logged."""

    def __init__(self, cause: str, text: str):
        super().__init__(f"{cause}: {text}")
        self.cause = cause
        self.text = text


def stamp_to_ns(t) -> int:
    return int(t.sec) * 1_000_000_000 + int(t.nanosec)


def image_to_rgb(msg, *, expected: tuple[int, int] | None = None) -> np.ndarray:
    """Image or CompressedImage fields -> (H, W, 3) RGB uint8; raises ImageError. `expected`
    (width, height) is compared with the declared size before any decode."""
    if hasattr(msg, "encoding"):
        return decode_raw(msg.data, height=msg.height, width=msg.width, encoding=msg.encoding,
                          step=msg.step, is_bigendian=msg.is_bigendian, expected=expected)
    return decode_compressed(msg.data, msg.format, expected=expected)


def _finite(info, field: str, size: int | None, name: str) -> np.ndarray:
    arr = np.asarray(getattr(info, field), dtype=np.float64).ravel()
    if size is not None and arr.size != size:
        raise FrameDropped("bad_camera_info",
                           f"camera {name!r}: CameraInfo {field.upper()} has {arr.size} values, not {size}")
    if not np.all(np.isfinite(arr)):
        raise FrameDropped("bad_camera_info",
                           f"camera {name!r}: CameraInfo {field.upper()} = {arr.tolist()} is not finite")
    return arr


def check_camera_info(info, name: str = "") -> None:
    """Refuse a CameraInfo the node cannot use, with a cause: K = 0 (uncalibrated), zero size, an
    unknown distortion model, D of a length its model does not have or with coefficients no lens
    has, or non-finite K, D, R or P."""
    K = _finite(info, "k", 9, name).reshape(3, 3)
    if K[0, 0] == 0 or K[1, 1] == 0:
        raise FrameDropped("uncalibrated", f"camera {name!r}: CameraInfo K = {K.ravel().tolist()} (K[0] == 0)")
    if not (0 < K[0, 0] <= MAX_FOCAL_PX and 0 < K[1, 1] <= MAX_FOCAL_PX and np.all(np.abs(K[:2, 1:]) <= MAX_FOCAL_PX)
            and np.array_equal(K[2], [0.0, 0.0, 1.0])):
        raise FrameDropped("bad_camera_info", f"camera {name!r}: CameraInfo K = {K.ravel().tolist()} is not an "
                                              f"intrinsic matrix (0 < fx, fy <= {MAX_FOCAL_PX:g} px, last row 0 0 1)")
    if info.width == 0 or info.height == 0:
        raise FrameDropped("camera_info_zero_size", f"camera {name!r}: CameraInfo size {info.width}x{info.height}")
    model = _DIST_MODELS.get(info.distortion_model)
    if model is None:
        raise FrameDropped("unknown_distortion", f"camera {name!r}: distortion model {info.distortion_model!r}")
    D = _finite(info, "d", None, name)
    if D.size not in DISTORTION_SIZES[model]:
        sizes = " or ".join(map(str, DISTORTION_SIZES[model]))
        raise FrameDropped("bad_camera_info", f"camera {name!r}: {info.distortion_model or 'no'} distortion takes "
                                              f"{sizes} coefficients in D, got {D.size}")
    _finite(info, "r", 9, name)
    _finite(info, "p", 12, name)
    if D.size and np.abs(D).max() > MAX_DISTORTION:
        raise FrameDropped("bad_camera_info", f"camera {name!r}: D = {D.tolist()} has coefficients beyond "
                                              f"+-{MAX_DISTORTION:g}: they overflow in undistortion")


def camera_from_info(info, *, R_world_cam: np.ndarray, p_world_cam: np.ndarray, name: str = "") -> Camera:
    """CameraInfo intrinsics + the optical frame's pose in the world -> Camera. A CameraInfo that
    `check_camera_info` refuses raises FrameDropped."""
    check_camera_info(info, name)
    return _camera(info, R_world_cam=R_world_cam, p_world_cam=p_world_cam, name=name)


def _camera(info, *, R_world_cam: np.ndarray, p_world_cam: np.ndarray, name: str) -> Camera:
    """`camera_from_info` for a CameraInfo already checked (the processor checks each one once, on arrival)."""
    try:
        return Camera.from_world_pose(K=np.asarray(info.k, dtype=np.float64).reshape(3, 3), R_world_cam=R_world_cam,
                                      p_world_cam=p_world_cam, width=int(info.width), height=int(info.height),
                                      dist=np.asarray(info.d, dtype=np.float64),
                                      dist_model=_DIST_MODELS[info.distortion_model], name=name)
    except ValueError as e:
        raise FrameDropped("bad_camera_info", str(e)) from e


def _rgb_of(msg, size: tuple[int, int]) -> np.ndarray:
    try:
        return image_to_rgb(msg, expected=size)
    except ImageError as e:
        raise FrameDropped(e.cause, e.detail) from e


def _people_of(msg, size: tuple[int, int]) -> list:
    """People2D -> Person2D list; FrameDropped for a malformed message or one from another image size."""
    if msg.image_width and (msg.image_width, msg.image_height) != size:
        raise FrameDropped("size_mismatch", f"people of a {msg.image_width}x{msg.image_height} image, "
                                            f"CameraInfo says {size[0]}x{size[1]}")
    try:
        return people_from_msg(msg)
    except ValueError as e:
        raise FrameDropped("bad_people", str(e)) from e


class FrameProcessor:
    """Latest CameraInfo per camera + extrinsics at the stamp + the pipeline."""

    def __init__(self, *, pipeline: PosePipeline, cameras: list[str], world_frame: str,
                 tf_lookup: TfLookup, tf_timeout_s: float = 0.1, clock_jump_s: float = 1.0,
                 max_lead_s: float = 0.2, tf_fast_fail: bool = False,
                 on_clock_jump: Callable[[], None] | None = None):
        self.pipeline = pipeline
        self.cameras = list(cameras)
        self.world_frame = world_frame
        self.tf_lookup = tf_lookup
        self.tf_timeout_s = tf_timeout_s
        self.clock = ClockCheck(len(self.cameras), clock_jump_ns=int(clock_jump_s * 1e9),
                                max_lead_ns=int(max_lead_s * 1e9))
        self.on_clock_jump = on_clock_jump
        self.tf_fast_fail = tf_fast_fail
        self.infos: list = [None] * len(self.cameras)
        self.info_errors: list[FrameDropped | None] = [None] * len(self.cameras)
        self._latest: list[tuple] = [(None, None)] * len(self.cameras)   # (CameraInfo, why refused)
        self._tf_failed: list[tuple[str, float] | None] = [None] * len(self.cameras)   # (frame, when)
        self.tf_ok = [False] * len(self.cameras)
        self.last_camera: list[Camera | None] = [None] * len(self.cameras)   # calibration last used
        self.clock_jumps = 0
        self._reset_pending = False        # a clock jump seen; the next prepared frame carries it

    def set_info(self, i: int, info) -> FrameDropped | None:
        """Keep camera i's latest CameraInfo; returns why it is refused (its frames are then
        dropped with that cause until a good one arrives), or None."""
        try:
            check_camera_info(info, self.cameras[i])
            error = None
        except FrameDropped as e:
            error = e
        self._latest[i] = (info, error)          # one assignment: a worker never sees one without the other
        self.infos[i], self.info_errors[i] = info, error
        return error

    def process(self, i: int, msg) -> list[PoseResult]:
        """One admitted message -> the poses it completes (offline: one thread does all)."""
        return self.push(self.prepare(i, msg))

    def admit(self, i: int, stamp_ns: int, arrival_ns: int | None = None) -> None:
        """Judge a frame's stamp on arrival, before it is queued (`clock_check`): raises FrameDropped
        for a zero stamp or a camera whose clock disagrees with the rig; a rig-wide jump back (a looped
        bag) marks the buffer for a reset before the next frame and clears the TF history."""
        if stamp_ns == 0:
            raise FrameDropped("zero_stamp", "image header stamp is 0")
        verdict = self.clock.judge(i, stamp_ns, arrival_ns)
        if verdict is Verdict.RESET:
            self.clock_jumps += 1
            self._reset_pending = True             # carried by the next prepared frame
            if self.on_clock_jump:
                self.on_clock_jump()
        elif verdict is not Verdict.ACCEPT:
            side = "ahead of" if verdict is Verdict.AHEAD else "behind"
            raise FrameDropped(verdict.value,
                               f"stamp {abs(self.clock.offset_s(i)):.3f} s {side} the other cameras' clock")

    def prepare(self, i: int, msg) -> PreparedFrame:
        """Checks, decode, extrinsics at the stamp and the backbone: everything a frame needs
        before it can enter the buffer. Raises FrameDropped."""
        name = self.cameras[i]
        stamp = stamp_to_ns(msg.header.stamp)
        info, refused = self._latest[i]
        if info is None:
            raise FrameDropped("no_camera_info", f"no CameraInfo yet on {name}/camera_info")
        if refused is not None:
            raise refused
        size = (info.width, info.height)
        people = _people_of(msg, size) if hasattr(msg, "people") else None   # People2D rather than an image
        rgb = None if people is not None else _rgb_of(msg, size)
        frame_id = (info.header.frame_id or msg.header.frame_id).lstrip("/")
        tf = self._extrinsics(i, frame_id, stamp)
        camera = _camera(info, R_world_cam=tf.R, p_world_cam=tf.t, name=name)   # checked in set_info
        self.last_camera[i] = camera
        if people is not None:
            data = self.pipeline.people_frame(people, camera, frame_id)
        else:
            data = self.pipeline.frame_heatmaps(stamp, rgb, camera, frame_id, track=not self._reset_pending,
                                                camera_index=i)
        reset, self._reset_pending = self._reset_pending, False
        return PreparedFrame(camera=i, stamp_ns=stamp, data=data, reset=reset)

    def _extrinsics(self, i: int, frame_id: str, stamp: int) -> Transform:
        """world <- frame_id at the stamp. With `tf_fast_fail` (live mode), after a failed lookup
        the same camera and frame do not wait `tf_timeout_s` again for `TF_RETRY_S`: a camera
        without TF must not stall the worker that serves the others. Offline mode always waits."""
        failed = self._tf_failed[i]
        recent = (self.tf_fast_fail and failed is not None and failed[0] == frame_id
                  and time.monotonic() - failed[1] < TF_RETRY_S)
        try:
            tf = self.tf_lookup(self.world_frame, frame_id, stamp, 0.0 if recent else self.tf_timeout_s)
        except TransformError as e:
            self.tf_ok[i] = False
            self._tf_failed[i] = (frame_id, failed[1] if recent else time.monotonic())
            raise FrameDropped("tf_missing", f"{self.world_frame} <- {frame_id}: {e}") from e
        self.tf_ok[i], self._tf_failed[i] = True, None
        return tf

    def push(self, p: PreparedFrame) -> list[PoseResult]:
        """A prepared frame into the buffer (after a reset if its stamp jumped back) -> poses."""
        if p.reset:
            self.pipeline.reset()
        return self.pipeline.push_heatmaps(p.camera, p.stamp_ns, p.data)
