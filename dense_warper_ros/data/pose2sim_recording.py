"""The real pose2sim demo as a Recording: interleaved (camera c at frames f with f mod 4 = c, each
camera at 15 fps, 60 poses/s in all) or dense (every camera at every frame), with the dense
pseudo ground truth: the project's backbone on all 4 views at every frame, triangulated (method (e))."""
from __future__ import annotations

import cv2
import numpy as np

from dense_warper_ros.data import pose2sim
from dense_warper_ros.data.recording import Recording


def pseudo_ground_truth(dense: Recording, *, backbone: str = "movenet_lightning",
                        model_config: str = "lite") -> list[tuple[int, np.ndarray]]:
    """Method (e): at every instant, all views through the project's backbone (a whole-frame pass,
    then a pass boxed around its keypoints), decoded with the model's soft-argmax settings and
    triangulated together. No warp is involved: every view sees the same instant."""
    import torch

    from dense_warper_ros.backbones.adapter import boxes_from_keypoints
    from dense_warper_ros.data.evidence import decode_heatmaps
    from dense_warper_ros.model import ModelConfig
    from dense_warper_ros.pipeline import load_backbone
    from dense_warper_ros.triangulation import triangulate_dlt

    bb = load_backbone(backbone)
    cfg = ModelConfig.named(model_config)
    kw = dict(window=cfg.softargmax_window, temperature=cfg.softargmax_temperature, min_peak=cfg.min_peak)
    V = len(dense.cameras)
    P = torch.as_tensor(np.stack([c.P for c in dense.cameras]), dtype=torch.float64)
    by_stamp: dict[int, list] = {}
    for c, s, img in dense.frames:
        by_stamp.setdefault(s, [None] * V)[c] = img
    out = []
    for stamp, imgs in by_stamp.items():
        if any(i is None for i in imgs):
            continue
        boxes = boxes_from_keypoints(bb(imgs).keypoints)
        o = bb(imgs, boxes)
        uv, conf = decode_heatmaps(o.heatmaps.cpu(), o.affines, dense.cameras, np.arange(V), **kw)
        X = triangulate_dlt(P, torch.as_tensor(uv), torch.as_tensor(conf))
        out.append((stamp, X.numpy()))
    return out


def pose2sim_recording(*, interleaved: bool = True, scale: float = 0.5, num_frames: int | None = None,
                       t0_ns: int = 1_700_000_000_000_000_000, with_truth: bool = True) -> Recording:
    demo = pose2sim.load_demo()
    n = demo.num_frames if num_frames is None else min(num_frames, demo.num_frames)
    names = [f"cam{v + 1:02d}" for v in range(len(demo.cameras))]
    V = len(demo.cameras)
    # one view at a time, downscaled at once (the full-size demo decodes to 2.5 GB)
    small = Recording(names=names, cameras=list(demo.cameras), frames=[]).scaled(scale)
    views = []
    for v in range(V):
        cam = small.cameras[v]
        views.append([cv2.resize(img, (cam.width, cam.height), interpolation=cv2.INTER_AREA)
                      for img in pose2sim.read_frames(demo.videos[v], range(n))])
    frames = [(v, t0_ns + int(round(f * 1e9 / demo.fps)), views[v][f]) for f in range(n) for v in range(V)]
    rec = Recording(names=names, cameras=small.cameras, frames=frames)
    truth = pseudo_ground_truth(rec) if with_truth else []
    if interleaved:
        frames = [fr for k, fr in enumerate(rec.frames) if fr[0] == (k // V) % V]   # frame f = k // V
    else:
        frames = rec.frames
    kind = "interleaved (camera c at frames f mod 4 = c)" if interleaved else "dense (all cameras, all frames)"
    return Recording(names=names, cameras=rec.cameras, frames=frames, ground_truth=truth,
                     source=f"pose2sim 0.10.49 demo, {n} frames at {demo.fps:g} fps, {kind}, images x{scale:g}; "
                            "ground truth = dense 4-view fusion at every frame, same backbone (pseudo)")
