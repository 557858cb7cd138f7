"""Pictures of a replay: skeletons reprojected on each camera's frames (PNG contact sheet, MP4),
a 3D view over time, and error over time per method."""
from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from dense_warper_ros.cameras import Camera  # noqa: E402
from dense_warper_ros.skeleton import H36M_BONES  # noqa: E402

LEFT = {4, 5, 6, 11, 12, 13}


def draw_skeleton(rgb: np.ndarray, camera: Camera, points: np.ndarray, *, scale: float = 1.0,
                  color=(255, 140, 0), left_color=(60, 160, 255), thickness: int = 2) -> np.ndarray:
    """Project (J, 3) world points into `camera` and draw bones on a copy of `rgb` (which may be
    the camera image resized by `scale`); the left side in `left_color` (None: all in `color`)."""
    img = rgb.copy()
    ok = np.isfinite(points).all(axis=1)
    if ok.sum() < 2:
        return img
    uv = np.full((len(points), 2), np.nan)
    front = ok.copy()
    front[ok] = camera.to_camera(points[ok])[:, 2] > 0
    uv[front] = camera.project(points[front]) * scale
    for c, p in H36M_BONES:
        if front[c] and front[p]:
            col = left_color if c in LEFT and left_color is not None else color
            cv2.line(img, tuple(int(round(v)) for v in uv[p]), tuple(int(round(v)) for v in uv[c]), col,
                     thickness, cv2.LINE_AA)
    for j in np.flatnonzero(front):
        cv2.circle(img, tuple(int(round(v)) for v in uv[j]), thickness + 1, (255, 255, 255), -1, cv2.LINE_AA)
    return img


def contact_sheet(rows: list[list[np.ndarray]], path: Path, *, labels: list[str] | None = None) -> Path:
    """rows of equally sized RGB tiles -> one PNG."""
    h, w = rows[0][0].shape[:2]
    sheet = np.zeros((h * len(rows), w * max(len(r) for r in rows), 3), np.uint8)
    for i, r in enumerate(rows):
        for j, tile in enumerate(r):
            sheet[i * h:(i + 1) * h, j * w:(j + 1) * w] = cv2.resize(tile, (w, h))
        if labels:
            cv2.putText(sheet, labels[i], (8, i * h + 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return path


def write_video(frames: list[np.ndarray], path: Path, fps: float) -> Path:
    h, w = frames[0].shape[:2]
    path.parent.mkdir(parents=True, exist_ok=True)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for f in frames:
        vw.write(cv2.cvtColor(cv2.resize(f, (w, h)), cv2.COLOR_RGB2BGR))
    vw.release()
    return path


def plot_3d(points_over_time: np.ndarray, path: Path, *, every: int = 4, title: str = "") -> Path:
    """(T, J, 3) -> skeletons drawn every `every` instants, colour by time."""
    fig = plt.figure(figsize=(7, 6))
    ax = fig.add_subplot(projection="3d")
    T = len(points_over_time)
    cmap = plt.get_cmap("viridis")
    for k in range(0, T, every):
        P = points_over_time[k]
        for c, p in H36M_BONES:
            if np.isfinite(P[[c, p]]).all():
                ax.plot(*P[[p, c]].T, color=cmap(k / max(T - 1, 1)), lw=1.2)
    ok = np.isfinite(points_over_time).all(-1)
    if ok.any():
        pts = points_over_time[ok]
        mid, rng = (pts.max(0) + pts.min(0)) / 2, (pts.max(0) - pts.min(0)).max() / 2 + 0.1
        ax.set_xlim(mid[0] - rng, mid[0] + rng)
        ax.set_ylim(mid[1] - rng, mid[1] + rng)
        ax.set_zlim(mid[2] - rng, mid[2] + rng)
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_zlabel("z (m)")
    ax.set_title(title or "skeleton over time (colour = time)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_errors(series: dict[str, tuple[np.ndarray, np.ndarray]], path: Path, *, ylabel: str = "MPJPE (mm)") -> Path:
    """method -> (times s, error) lines."""
    fig, ax = plt.subplots(figsize=(9, 3.5))
    for name, (t, e) in series.items():
        ax.plot(t, e, lw=1.2, label=f"{name} (mean {np.nanmean(e):.1f})")
    ax.set_xlabel("time (s)")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
