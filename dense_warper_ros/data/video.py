"""Real-video evidence: a synchronised multi-camera recording through the 2D backbone (cached on
disk, keyed by the videos, the weights and the code that made the heatmaps) and its pseudo ground
truth `triangulated_detection_truth`: every camera's detection at every frame, triangulated.

Why here: the accuracy benchmark scores on it and training fine-tunes on it; both must read the
very same heatmaps and the same pseudo ground truth.

It is not the replay's `data.pose2sim_recording.dense_pipeline_truth` (the node's own pipeline on
every view): that one crops each frame around the previous pose, this one crops twice per frame
independently of any method (whole frame, then a box around the first pass's keypoints). On the
demo's 100 frames they differ by 41 mm root-aligned MPJPE over the joints this one marks `reliable`,
62 mm over all joints (most of it the right wrist and elbow and the derived head top). Every table
says which one it scores against.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from dense_warper_ros.data import motion
from dense_warper_ros.data.bank_triangulation import gather_points, triangulate
from dense_warper_ros.data.evidence import EvidenceBank, decode_heatmaps
from dense_warper_ros.provenance import file_sha256

MOVENET_VARIANTS = {48: "lightning", 64: "thunder"}    # heatmap size -> MoveNet variant


def backbone_heatmaps(backbone, images: Sequence[np.ndarray], batch: int = 16) -> tuple[torch.Tensor, np.ndarray]:
    """Two passes per image, independent of any method: the whole frame, then a box around the
    confident keypoints of the first pass. -> heatmaps (N, J, h, w), affines (N, 2, 3)."""
    from dense_warper_ros.backbones.adapter import boxes_from_keypoints
    hms, affs = [], []
    for s in range(0, len(images), batch):
        chunk = images[s:s + batch]
        first = backbone(chunk)
        out = backbone(chunk, boxes_from_keypoints(first.keypoints))
        hms.append(out.heatmaps.float().cpu())
        affs.append(out.affines)
    return torch.cat(hms), np.concatenate(affs)


def _stream_frames(video: Path, count: int):
    """RGB frames 0..count-1 of a video, decoded one at a time (the demo is 2.5 GB decoded)."""
    import cv2
    cap = cv2.VideoCapture(str(video))
    try:
        if not cap.isOpened():
            raise OSError(f"cannot open {video}")
        for i in range(count):
            ok, frame = cap.read()
            if not ok:
                raise IndexError(f"{video} ends before frame {i}")
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()


def video_bank(cameras: Sequence, videos: Sequence[Path], fps: float, num_frames: int, backbone,
               chunk: int = 16, decoder: Mapping[str, Any] | None = None) -> EvidenceBank:
    """Every (camera, frame) of synchronised videos through the backbone, in one bank. Frame f of
    every view has nominal and capture time f / fps."""
    camera, frame, hms, affs = [], [], [], []
    for v, video in enumerate(videos):
        buf = []
        for f, img in enumerate(_stream_frames(video, num_frames)):
            buf.append(img)
            if len(buf) == chunk or f == num_frames - 1:
                hm, A = backbone_heatmaps(backbone, buf, batch=chunk)
                hms.append(hm)
                affs.append(A)
                buf = []
            camera.append(v)
            frame.append(f)
    return bank_from_heatmaps(cameras, np.asarray(camera), np.asarray(frame) / fps, torch.cat(hms),
                              np.concatenate(affs), decoder)


def bank_from_heatmaps(cameras: Sequence, camera: np.ndarray, times: np.ndarray, hm: torch.Tensor,
                       affines: np.ndarray, decoder: Mapping[str, Any] | None = None) -> EvidenceBank:
    """A bank of real detections: heatmaps (S, J, h, w) + affines (S, 2, 3) at times (S,)."""
    uv, conf = decode_heatmaps(hm, affines, cameras, camera, **(decoder or {}))
    return EvidenceBank(list(cameras), camera, times, times, affines,
                        lambda idx: hm[torch.as_tensor(idx)], uv, conf)


def _video_key(demo, variant: str) -> str:
    """Cache key of the backbone's output: the videos, the weights and the backbone's code."""
    import hashlib
    import inspect

    from dense_warper_ros.backbones import adapter, movenet
    h = hashlib.sha256()
    for p in (*demo.videos, movenet.weights_paths(variant)[0], Path(adapter.__file__), Path(movenet.__file__)):
        h.update(file_sha256(p).encode())
    for fn in (backbone_heatmaps, _stream_frames):      # what decides the stored heatmaps
        h.update(inspect.getsource(fn).encode())
    h.update(b"layout 1: camera-major, frames in order")   # bump if video_bank's layout changes
    return h.hexdigest()[:16]


def load_pose2sim_bank(video_dir: Path, *, heatmap_size: int, frames: int | None = None,
                       decoder: Mapping[str, Any] | None = None,
                       log: Callable[[str], None] = print) -> tuple[Any, EvidenceBank] | None:
    """The pose2sim demo's first `frames` frames (all when None) of every camera through MoveNet
    (the variant whose heatmaps are `heatmap_size` px), from the cache when it is there.
    -> (demo, bank), or None when the demo is not fetched."""
    from dense_warper_ros.data import pose2sim
    if not (Path(video_dir) / "videos").is_dir():
        return None
    t = time.perf_counter()
    demo = pose2sim.load_demo(video_dir)
    frames = demo.num_frames if frames is None else min(demo.num_frames, frames)
    variant = MOVENET_VARIANTS.get(heatmap_size)
    if variant is None:
        raise ValueError(f"no MoveNet variant gives {heatmap_size} px heatmaps "
                         f"({', '.join(f'{k}: {v}' for k, v in MOVENET_VARIANTS.items())})")
    stem = f"movenet_{variant}_{Path(video_dir).resolve().name}_f{frames}"    # one per recording and length
    cache = motion.default_cache_dir() / "pose2sim" / f"{stem}_{_video_key(demo, variant)}.pt"
    if cache.exists():
        blob = torch.load(cache, weights_only=True)
        bank = bank_from_heatmaps(demo.cameras, blob["camera"].numpy(), blob["times"].numpy(),
                                  blob["heatmaps"], blob["affines"].numpy(), decoder)
        log(f"[video] pose2sim: {len(bank)} frames of MoveNet {variant} heatmaps from {cache.name}")
        return demo, bank
    from dense_warper_ros.backbones.adapter import Backbone2D
    bank = video_bank(demo.cameras, demo.videos, demo.fps, frames, Backbone2D.movenet(variant), decoder=decoder)
    cache.parent.mkdir(parents=True, exist_ok=True)
    for stale in cache.parent.glob(f"{stem}_*.pt"):                       # older code or weights
        stale.unlink()
    tmp = cache.with_suffix(f".{os.getpid()}.tmp")        # parallel test workers may race: atomic
    torch.save({"camera": torch.as_tensor(bank.camera), "times": torch.as_tensor(bank.time),
                "heatmaps": bank.heatmaps(np.arange(len(bank))), "affines": torch.as_tensor(bank.affines)},
               tmp)
    tmp.replace(cache)
    log(f"[video] pose2sim: {len(bank)} frames through MoveNet {variant} in "
        f"{time.perf_counter() - t:.1f} s (cached in {cache})")
    return demo, bank


# --- pseudo ground truth: every camera's detections at every frame, triangulated ---------------
TRIANGULATED_DETECTION_TRUTH = "triangulated_detection_truth"   # its name in tables and reports


@dataclass(frozen=True)
class PseudoGroundTruth:
    """A synchronised recording's frames and their dense triangulation (F frames, J joints)."""

    instants: np.ndarray          # (F,) s, frame times
    frame: np.ndarray             # (S,) frame index of every bank slot
    grid: np.ndarray              # (F, V) bank slot of every camera at every frame, -1: none
    poses: np.ndarray             # (F, J, 3) every camera's detection triangulated, metres
    reliable: np.ndarray          # (F, J) bool: finite, detected (peak >= min_conf) in >= min_views,
                                  # and (with max_residual_px) reprojecting within it in those views


def triangulated_detection_truth(bank: EvidenceBank, *, min_views: int = 3, min_conf: float = 0.3,
                                 max_residual_px: float | None = None) -> PseudoGroundTruth:
    """Every camera's detections at every frame triangulated ((e) of the benchmark, plain DLT): the
    benchmark's and the fine-tuning's reference for real video.
    `max_residual_px` also rejects joints whose triangulation misses a detecting view by more than
    that (a single-person detector may follow different people in different views)."""
    instants = np.unique(bank.nominal)
    grid = bank.grid(instants)
    uv, conf = gather_points(bank, grid)                         # (F, V, J, 2) px, (F, V, J)
    poses = triangulate(bank.P, uv, conf)
    seen = conf >= min_conf
    reliable = np.isfinite(poses).all(-1) & (seen.sum(1) >= min(min_views, grid.shape[1]))
    if max_residual_px is not None:
        safe = np.where(np.isfinite(poses), poses, 0.0)
        res = np.stack([np.linalg.norm(cam.project(safe, distort=False) - uv[:, c], axis=-1)
                        for c, cam in enumerate(bank.cameras)], 1)                   # (F, V, J) px
        reliable &= ~(seen & (res > max_residual_px)).any(1)
    return PseudoGroundTruth(instants, np.searchsorted(instants, bank.nominal), grid, poses, reliable)
