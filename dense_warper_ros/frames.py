"""One camera frame message -> poses, shared by the node and the bag evaluator.

Works on anything with the fields of sensor_msgs/Image, CompressedImage and CameraInfo (rclpy
messages in the node, `rosbags` messages in the evaluator), so the evaluator runs exactly the
node's per-frame path without a ROS runtime. Every reason to drop a frame raises `Drop` with a
short cause key, which the caller counts and logs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from dense_warper_ros.cameras import Camera
from dense_warper_ros.images import ImageError, decode_compressed, decode_raw
from dense_warper_ros.pipeline import FrameData, PosePipeline, PoseResult
from dense_warper_ros.transforms import Transform, TransformError

_DIST_MODELS = {"plumb_bob": "plumb_bob", "rational_polynomial": "rational_polynomial",
                "equidistant": "equidistant", "fisheye": "equidistant", "": "none", "none": "none"}

TfLookup = Callable[[str, str, int, float], Transform]   # (target, source, stamp_ns, timeout_s)


@dataclass(frozen=True)
class Prepared:
    """A frame ready for the interleaved buffer."""
    camera: int
    stamp_ns: int
    data: FrameData
    reset: bool = False                    # the stamps jumped back before this frame: reset first


class Drop(Exception):
    """A frame that gives no pose input; `cause` is the counting key."""

    def __init__(self, cause: str, text: str):
        super().__init__(f"{cause}: {text}")
        self.cause = cause


def stamp_to_ns(t) -> int:
    return int(t.sec) * 1_000_000_000 + int(t.nanosec)


def image_to_rgb(msg) -> np.ndarray:
    """Image or CompressedImage fields -> (H, W, 3) RGB uint8; raises ImageError."""
    if hasattr(msg, "encoding"):
        return decode_raw(msg.data, height=msg.height, width=msg.width, encoding=msg.encoding,
                          step=msg.step, is_bigendian=msg.is_bigendian)
    return decode_compressed(msg.data, msg.format)


def camera_from_info(info, *, R_world_cam: np.ndarray, p_world_cam: np.ndarray, name: str = "") -> Camera:
    """CameraInfo intrinsics + the optical frame's pose in the world -> Camera.
    A CameraInfo with K[0] == 0 (uncalibrated) is refused."""
    K = np.asarray(info.k, dtype=np.float64).reshape(3, 3)
    if K[0, 0] == 0 or K[1, 1] == 0:
        raise Drop("uncalibrated", f"camera {name!r}: CameraInfo K = {K.ravel().tolist()} (K[0] == 0)")
    if info.width == 0 or info.height == 0:
        raise Drop("camera_info_zero_size", f"camera {name!r}: CameraInfo size {info.width}x{info.height}")
    model = _DIST_MODELS.get(info.distortion_model)
    if model is None:
        raise Drop("unknown_distortion", f"camera {name!r}: distortion model {info.distortion_model!r}")
    try:
        return Camera.from_world_pose(K=K, R_world_cam=R_world_cam, p_world_cam=p_world_cam,
                                      width=int(info.width), height=int(info.height),
                                      dist=np.asarray(info.d, dtype=np.float64), dist_model=model, name=name)
    except ValueError as e:
        raise Drop("bad_camera_info", str(e)) from e


class FrameProcessor:
    """Latest CameraInfo per camera + extrinsics at the stamp + the pipeline."""

    def __init__(self, *, pipeline: PosePipeline, cameras: list[str], world_frame: str,
                 tf_lookup: TfLookup, tf_timeout_s: float = 0.1, clock_jump_s: float = 1.0,
                 on_clock_jump: Callable[[], None] | None = None):
        self.pipeline = pipeline
        self.cameras = list(cameras)
        self.world_frame = world_frame
        self.tf_lookup = tf_lookup
        self.tf_timeout_s = tf_timeout_s
        self.clock_jump_ns = int(clock_jump_s * 1e9)
        self.on_clock_jump = on_clock_jump
        self.infos: list = [None] * len(self.cameras)
        self.tf_ok = [False] * len(self.cameras)
        self.last_camera: list[Camera | None] = [None] * len(self.cameras)   # calibration last used
        self.newest_ns: int | None = None
        self.clock_jumps = 0
        self._reset_pending = False        # a clock jump seen; the next prepared frame carries it

    def set_info(self, i: int, info) -> None:
        self.infos[i] = info

    def process(self, i: int, msg) -> list[PoseResult]:
        """One message -> the poses it completes (offline, bag evaluation: one thread does all)."""
        return self.push(self.prepare(i, msg))

    def prepare(self, i: int, msg) -> Prepared:
        """Checks, decode, extrinsics at the stamp and the backbone: everything a frame needs
        before it can enter the buffer. Raises Drop."""
        name = self.cameras[i]
        stamp = stamp_to_ns(msg.header.stamp)
        if stamp == 0:
            raise Drop("zero_stamp", "image header stamp is 0")
        if self.newest_ns is not None and stamp < self.newest_ns - self.clock_jump_ns:
            self.clock_jumps += 1                  # looped bag: start over
            self._reset_pending = True             # carried by the next frame that gets through
            if self.on_clock_jump:
                self.on_clock_jump()
            self.newest_ns = None
        self.newest_ns = stamp if self.newest_ns is None else max(self.newest_ns, stamp)
        info = self.infos[i]
        if info is None:
            raise Drop("no_camera_info", f"no CameraInfo yet on {name}/camera_info")
        try:
            rgb = image_to_rgb(msg)
        except ImageError as e:
            raise Drop(e.cause, str(e)) from e
        if (rgb.shape[1], rgb.shape[0]) != (info.width, info.height):
            raise Drop("size_mismatch", f"image {rgb.shape[1]}x{rgb.shape[0]} != CameraInfo {info.width}x{info.height}")
        frame_id = (info.header.frame_id or msg.header.frame_id).lstrip("/")
        try:
            tf = self.tf_lookup(self.world_frame, frame_id, stamp, self.tf_timeout_s)
            self.tf_ok[i] = True
        except TransformError as e:
            self.tf_ok[i] = False
            raise Drop("tf_missing", f"{self.world_frame} <- {frame_id}: {e}") from e
        camera = camera_from_info(info, R_world_cam=tf.R, p_world_cam=tf.t, name=name)
        self.last_camera[i] = camera
        data = self.pipeline.heatmaps(stamp, rgb, camera, frame_id, track=not self._reset_pending)
        reset, self._reset_pending = self._reset_pending, False
        return Prepared(camera=i, stamp_ns=stamp, data=data, reset=reset)

    def push(self, p: Prepared) -> list[PoseResult]:
        """A prepared frame into the buffer (after a reset if its stamp jumped back) -> poses."""
        if p.reset:
            self.pipeline.reset()
        return self.pipeline.push_heatmaps(p.camera, p.stamp_ns, p.data)
