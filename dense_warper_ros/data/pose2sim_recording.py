"""The real pose2sim demo as a Recording: interleaved (camera c at frames f with f mod 4 = c, each
camera at 15 fps, 60 poses/s in all) or dense (every camera at every frame), with the pseudo ground
truth `dense_pipeline_truth`: the project's pipeline on all 4 views at every frame (method (e))."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from dense_warper_ros.data import pose2sim
from dense_warper_ros.data.recording import Recording


DENSE_PIPELINE_TRUTH = "dense_pipeline_truth"    # its name in bags, tables and reports


def dense_pipeline_truth(dense: Recording, *, backbone: str = "movenet_lightning") -> list[tuple[int, np.ndarray]]:
    """Method (e): the project's pipeline on every camera at every instant (windowed: all views of
    an instant fused, one pose per instant; no warp acts since every view is at the instant).
    Same backbone, crops and decoding as the evaluated run, so the comparison isolates what
    interleaving costs. The benchmark's `data.video.triangulated_detection_truth` is built
    differently (two method-independent crops per frame, plain DLT) and differs from this one by
    41 mm root-aligned MPJPE on its reliable joints, 62 mm on all (mostly the right wrist and elbow
    and the derived head top)."""
    from dense_warper_ros.pipeline import build_pipeline
    pipe = build_pipeline(num_cameras=len(dense.cameras), timing="windowed", offline=True,
                          weights="none", backbone=backbone, device="cpu")
    out = []
    for c, s, img in dense.frames:
        out += pipe.process(c, s, img, dense.cameras[c], dense.frame_id(c))
    out += pipe.flush()
    return [(r.stamp_ns, r.points) for r in out]


def pose2sim_recording(*, interleaved: bool = True, scale: float = 0.5, num_frames: int | None = None,
                       t0_ns: int = 1_700_000_000_000_000_000, with_truth: bool = True,
                       root: str | Path | None = None) -> Recording:
    """`root`: a pose2sim demo directory (default data/pose2sim, the single-person demo;
    data/pose2sim_multi is the two-person one, same rig)."""
    demo = pose2sim.load_demo(root)
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
    truth = dense_pipeline_truth(rec) if with_truth else []
    if interleaved:
        frames = [fr for k, fr in enumerate(rec.frames) if fr[0] == (k // V) % V]   # frame f = k // V
    else:
        frames = rec.frames
    kind = "interleaved (camera c at frames f mod 4 = c)" if interleaved else "dense (all cameras, all frames)"
    return Recording(names=names, cameras=rec.cameras, frames=frames, ground_truth=truth,
                     source=f"pose2sim 0.10.49 demo {demo.root.name}, {n} frames at {demo.fps:g} fps, {kind}, images x{scale:g}; "
                            f"ground truth = {DENSE_PIPELINE_TRUTH}: the same pipeline on all {V} views at every "
                            "frame (pseudo, method (e))",
                     truth_name=DENSE_PIPELINE_TRUTH if with_truth else "")
