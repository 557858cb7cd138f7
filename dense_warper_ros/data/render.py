"""Images of the DeepMimic humanoid from any `Camera`, with pybullet's CPU TinyRenderer.

For image-level plumbing tests (the image -> heatmap -> 3D path, ROS image topics): geometry is
exact (the camera's K, R, t become OpenGL matrices), but the faceless mannequin is not a person to a
2D detector trained on photos, so do not score a 2D model on these images: its errors there say
nothing about real people.

The humanoid is posed at a key frame of a clip, placed as `motion.load_clip` places it (Z-up world,
optionally centred), so the rendered body and `MotionClip.key_joints` coincide.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dense_warper_ros.cameras import Camera
from dense_warper_ros.data.motion import (R_ZUP_FROM_YUP, HumanoidFK, fk_clip, read_motion_file)
from dense_warper_ros.skeleton import PELVIS

_FLIP_YZ = np.diag([1.0, -1.0, -1.0])      # OpenCV optical frame -> OpenGL eye frame


def view_matrix(camera: Camera) -> list[float]:
    """OpenGL view matrix (column-major, 16) of a Z-up-world camera, for pybullet's Y-up world."""
    R = _FLIP_YZ @ camera.R @ R_ZUP_FROM_YUP          # eye <- Y-up world
    t = _FLIP_YZ @ camera.t
    M = np.eye(4)
    M[:3, :3], M[:3, 3] = R, t
    return M.T.ravel().tolist()


def projection_matrix(camera: Camera, near: float = 0.05, far: float = 50.0) -> list[float]:
    """OpenGL projection (column-major, 16) reproducing K: pixel i spans [i - 0.5, i + 0.5]."""
    W, H = camera.width, camera.height
    fx, fy, s = camera.K[0, 0], camera.K[1, 1], camera.K[0, 1]
    cx, cy = camera.K[0, 2] + 0.5, camera.K[1, 2] + 0.5     # pixel-centre -> pixel-edge origin
    M = np.array([
        [2 * fx / W, -2 * s / W, (W - 2 * cx) / W, 0.0],
        [0.0, 2 * fy / H, (2 * cy - H) / H, 0.0],
        [0.0, 0.0, -(far + near) / (far - near), -2 * far * near / (far - near)],
        [0.0, 0.0, -1.0, 0.0],
    ])
    return M.T.ravel().tolist()


@dataclass(frozen=True, eq=False)
class RenderedView:
    rgb: np.ndarray          # (H, W, 3) uint8
    mask: np.ndarray         # (H, W) bool, pixels of the humanoid
    depth: np.ndarray        # (H, W) float32 metres along the optical axis (far plane where empty)


class HumanoidRenderer:
    """Poses the humanoid at key frames of a clip and renders it. One pybullet client per renderer."""

    def __init__(self, clip: str, *, center: bool = True) -> None:
        self.frames = read_motion_file(clip)
        times, joints = fk_clip(clip)
        keep = np.concatenate([[True], self.frames[:-1, 0] > 0])
        self.frames = self.frames[keep]
        self.key_times = times
        # The shift `load_clip(center=True)` applies (Z up), expressed for the Y-up base position.
        shift = np.zeros(3)
        if center:
            shift[:2] = -joints[:, PELVIS, :2].mean(0)
        self._shift_yup = R_ZUP_FROM_YUP.T @ shift
        self._fk = HumanoidFK()
        import pybullet as p
        self._p = p

    def close(self) -> None:
        self._fk.close()

    def __enter__(self) -> "HumanoidRenderer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def render(self, frame_index: int, camera: Camera, *, near: float = 0.05,
               far: float = 50.0) -> RenderedView:
        """The humanoid at key frame `frame_index`, seen by `camera` (TinyRenderer, no lens distortion)."""
        if not 0 <= frame_index < len(self.frames):
            raise ValueError(f"frame_index {frame_index} outside [0, {len(self.frames)})")
        frame = self.frames[frame_index].copy()
        frame[1:4] += self._shift_yup
        self._fk.set_frame(frame)
        p = self._p
        _, _, rgba, depth_buf, seg = p.getCameraImage(
            camera.width, camera.height, viewMatrix=view_matrix(camera),
            projectionMatrix=projection_matrix(camera, near, far), renderer=p.ER_TINY_RENDERER,
            physicsClientId=self._fk.client)
        rgba = np.asarray(rgba, dtype=np.uint8).reshape(camera.height, camera.width, 4)
        zbuf = np.asarray(depth_buf, dtype=np.float32).reshape(camera.height, camera.width)
        depth = far * near / (far - (far - near) * zbuf)
        seg = np.asarray(seg).reshape(camera.height, camera.width)
        return RenderedView(rgb=np.ascontiguousarray(rgba[..., :3]), mask=seg >= 0, depth=depth)


def render_key_frame(clip: str, frame_index: int, cameras: list[Camera], *,
                     center: bool = True) -> list[RenderedView]:
    """Convenience: one key frame of a clip from every camera."""
    with HumanoidRenderer(clip, center=center) as r:
        return [r.render(frame_index, cam) for cam in cameras]
