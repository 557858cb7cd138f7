"""A multi-camera recording as plain data: calibrated cameras, frames with capture stamps, and
optional 3D ground truth. The bag writer, the DDS rig publisher of the tests and benchmarks, and
the evaluation all take this one type."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import cv2
import numpy as np

from dense_warper_ros.cameras import Camera


@dataclass
class Recording:
    names: list[str]                               # camera names (topic namespaces)
    cameras: list[Camera]                          # calibration, world frame
    frames: list[tuple[int, int, np.ndarray]]      # (camera index, stamp ns, RGB uint8), stamp order
    world_frame: str = "world"
    ground_truth: list[tuple[int, np.ndarray]] = field(default_factory=list)   # (stamp ns, (J, 3) m)
    source: str = ""
    truth_name: str = ""                           # what `ground_truth` is (exact, or which pseudo
                                                   # ground truth); bags and reports carry it

    def __post_init__(self) -> None:
        if len(self.names) != len(self.cameras):
            raise ValueError(f"{len(self.names)} names for {len(self.cameras)} cameras")
        stamps = [s for _, s, _ in self.frames]
        if stamps != sorted(stamps):
            raise ValueError("frames must be in stamp order")

    def frame_id(self, i: int) -> str:
        return f"{self.names[i]}_optical"

    @property
    def camera_rates_hz(self) -> list[float]:
        out = []
        for c in range(len(self.names)):
            s = np.array([t for k, t, _ in self.frames if k == c], dtype=np.float64)
            out.append(float((len(s) - 1) / ((s[-1] - s[0]) * 1e-9)) if len(s) > 1 else 0.0)
        return out

    def scaled(self, factor: float) -> "Recording":
        """The same recording with images resized by `factor` (and K scaled to match)."""
        if factor == 1.0:
            return self
        cams = []
        for c in self.cameras:
            S = np.diag([factor, factor, 1.0])
            K = S @ c.K
            K[0, 2] = (c.K[0, 2] + 0.5) * factor - 0.5      # pixel-centre convention
            K[1, 2] = (c.K[1, 2] + 0.5) * factor - 0.5
            cams.append(Camera(K=K, R=c.R, t=c.t, width=round(c.width * factor), height=round(c.height * factor),
                               dist=c.dist, dist_model=c.dist_model, name=c.name))
        frames = [(k, s, cv2.resize(img, (cams[k].width, cams[k].height), interpolation=cv2.INTER_AREA))
                  for k, s, img in self.frames]
        return dataclasses.replace(self, cameras=cams, frames=frames)
