"""The Pose2Sim single-person demo: 4 synchronized real videos and their Qualisys calibration.

Why: real multi-view footage of a person with a calibration, installed from PyPI (`pose2sim`,
BSD-3-Clause) by scripts/fetch_pose2sim.py into data/pose2sim/. No 3D ground truth; the check is
geometric (triangulate the 2D keypoints of the 4 views, reproject).

Calibration (calibration/Calib.qca.txt), converted once here into `cameras.Camera` (metres, world Z up):
- K: fx = focalLengthU / 64, fy = focalLengthV / 64, cx = centerPointU / 64 - fov_video.left,
  cy = centerPointV / 64 - fov_video.top (Qualisys stores sub-pixel units of 1/64 px).
- `transform` r11..r33 as a row-major matrix M, and x, y, z the camera centre in the world (mm).
  M maps world axes to a camera frame with y up and z backwards; the OpenCV optical frame is that
  frame turned 180 degrees about x: R_cam_from_world = diag(1, -1, -1) @ M.
  Measured on the demo (MoveNet keypoints, 10 frames, DLT): this reading puts the person in front
  of all 4 cameras with a median reprojection error of 13.6 px; M.T, or no flip, puts
  triangulated points behind cameras (median errors 25-350 px).
- Distortion: radialDistortion1..3 and tangentalDistortion1..2 as OpenCV plumb_bob
  (k1, k2, p1, p2, k3). They are small: the error above moved by 0.02 px without them.
- Image size: the calibration says 1088 x 1920 for all four; cam01 and cam02's videos are
  1080 x 1920. K is kept as is (shifting cx by 4 or 8 px raised the reprojection error) and the size
  is taken from the video.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from ..cameras import Camera

NUM_VIEWS = 4
FPS = 60.0
_FLIP_YZ = np.diag([1.0, -1.0, -1.0])


def default_root() -> Path:
    """data/pose2sim/ at the repository root (where scripts/fetch_pose2sim.py extracts the demo)."""
    return Path(__file__).resolve().parents[2] / "data" / "pose2sim"


def parse_qca(path: str | Path) -> list[Camera]:
    """Qualisys .qca.txt -> cameras (metres), in file order. Sizes from fov_video."""
    path = Path(path)
    root = ET.parse(path).getroot()
    cams = root.find("cameras")
    if cams is None:
        raise ValueError(f"{path}: no <cameras> element")
    out = []
    for cam in cams.findall("camera"):
        name = cam.attrib.get("serial", f"cam{len(out) + 1:02d}")
        tr, intr, fov = cam.find("transform"), cam.find("intrinsic"), cam.find("fov_video")
        if tr is None or intr is None or fov is None:
            raise ValueError(f"{path}: camera {name!r} lacks transform, intrinsic or fov_video")
        t, it, fv = tr.attrib, intr.attrib, fov.attrib
        M = np.array([[float(t[f"r{a}{b}"]) for b in "123"] for a in "123"])
        centre = np.array([float(t[k]) for k in "xyz"]) / 1000.0
        K = np.array([
            [float(it["focalLengthU"]) / 64, float(it.get("skew", 0.0)), float(it["centerPointU"]) / 64 - float(fv["left"])],
            [0.0, float(it["focalLengthV"]) / 64, float(it["centerPointV"]) / 64 - float(fv["top"])],
            [0.0, 0.0, 1.0]])
        dist = [float(it.get(k, 0.0)) for k in ("radialDistortion1", "radialDistortion2",
                                               "tangentalDistortion1", "tangentalDistortion2",
                                               "radialDistortion3")]
        width = int(fv["right"]) - int(fv["left"]) + 1
        height = int(fv["bottom"]) - int(fv["top"]) + 1
        out.append(Camera.from_centre(K=K, R=_FLIP_YZ @ M, centre=centre, width=width, height=height,
                                      dist=dist, dist_model="plumb_bob", name=name))
    if not out:
        raise ValueError(f"{path}: no cameras")
    return out


@dataclass(frozen=True)
class Pose2SimDemo:
    """The demo's cameras (sizes as the videos have them) and video files, view order cam01..cam04."""

    root: Path
    cameras: tuple[Camera, ...]
    videos: tuple[Path, ...]
    num_frames: int
    fps: float

    def frames(self, indices: Sequence[int]) -> list[list[np.ndarray]]:
        """RGB uint8 frames: result[i][v] is frame indices[i] of view v, (H, W, 3)."""
        per_view = [read_frames(p, indices) for p in self.videos]
        return [[per_view[v][i] for v in range(len(self.videos))] for i in range(len(indices))]


def load_demo(root: str | Path | None = None) -> Pose2SimDemo:
    root = Path(root) if root is not None else default_root()
    calib = root / "calibration" / "Calib.qca.txt"
    videos = tuple(root / "videos" / f"cam0{i}.mp4" for i in range(1, NUM_VIEWS + 1))
    missing = [str(p) for p in (calib, *videos) if not p.exists()]
    if missing:
        raise FileNotFoundError(f"Pose2Sim demo files missing: {missing}; run scripts/fetch_pose2sim.py")
    cams = parse_qca(calib)
    if len(cams) != NUM_VIEWS:
        raise ValueError(f"{calib}: expected {NUM_VIEWS} cameras, found {len(cams)}")
    sized, counts = [], []
    for cam, video in zip(cams, videos):
        cap = cv2.VideoCapture(str(video))
        try:
            if not cap.isOpened():
                raise OSError(f"cannot open {video}")
            w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
            counts.append(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)))
        finally:
            cap.release()
        sized.append(replace(cam, width=w, height=h))
    return Pose2SimDemo(root=root, cameras=tuple(sized), videos=videos, num_frames=min(counts), fps=FPS)


def read_frames(video: str | Path, indices: Sequence[int]) -> list[np.ndarray]:
    """Frames `indices` of a video as RGB uint8, read sequentially (exact frames, no seeking)."""
    if not len(indices):
        return []
    wanted = sorted({int(i) for i in indices})
    if wanted[0] < 0:
        raise ValueError(f"frame indices must be >= 0, got {wanted[0]}")
    cap = cv2.VideoCapture(str(video))
    got: dict[int, np.ndarray] = {}
    try:
        if not cap.isOpened():
            raise OSError(f"cannot open {video}")
        for i in range(wanted[-1] + 1):
            ok, frame = cap.read()
            if not ok:
                raise IndexError(f"{video} ends before frame {i} (asked for {wanted[-1]})")
            if i in wanted:
                got[i] = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()
    return [got[int(i)] for i in indices]
