#!/usr/bin/env python3
"""Clock offsets of the real one-person recording from each MoveNet variant's keypoints.

Why: the online estimator (`dense_warper_ros.clock_offsets`) reads 2D keypoints only, and on real
video its precision is set by theirs: 1 ms of offset moves a joint by a fraction of a pixel. This
runs it on the bundled pose2sim recording (synchronised 60 fps videos, so every true offset is 0)
as the node sees it (cameras interleaved, one at a time) and at the full frame rate, with the
stamps as recorded and with `--shift` added to one camera's stamps, for each keypoint source:
MoveNet Lightning (the shipped model's 2D network) and Thunder. Each frame is cropped as a
single-person detector would: a first pass on the whole frame, then the box around its keypoints.

    python bench/clock_offsets_real.py [--variants lightning thunder] [--shift 0.015] [--camera 2]

Prints a markdown table (ms against the first camera, +- standard error) and writes
out/bench/clock_offsets_real.json.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dense_warper_ros.backbones.adapter import Backbone2D, boxes_from_keypoints  # noqa: E402
from dense_warper_ros.clock_offsets import ClockOffsetEstimator  # noqa: E402
from dense_warper_ros.data.pose2sim_recording import pose2sim_recording  # noqa: E402
from dense_warper_ros.provenance import git_hash  # noqa: E402


def keypoints(variant: str, frames: list) -> list[np.ndarray]:
    """(17, 3) H36M keypoints (x, y image px, score) per frame, from the box of a first pass."""
    bb = Backbone2D.movenet(variant, inference="auto")
    out = []
    for _, _, rgb in frames:
        box = boxes_from_keypoints(bb([rgb]).keypoints)
        out.append(bb([rgb], box if np.all(np.isfinite(box)) else None).keypoints[0])
    return out


def estimate(rec, kps: list[np.ndarray], which: list[int], shift_ns: int, camera: int) -> list[tuple[float, float]]:
    """(offset, standard error) s per camera from the frames `which`, camera's stamps + shift_ns."""
    est = ClockOffsetEstimator(len(rec.cameras))
    for k in which:
        c, stamp, _ = rec.frames[k]
        est.observe(c, stamp + (shift_ns if c == camera else 0), 0, kps[k][:, :2], kps[k][:, 2], rec.cameras[c])
    e = est.estimate()
    return [(e[c].offset_s, e[c].sigma_s) for c in range(len(rec.cameras))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="+", default=["lightning", "thunder"])
    ap.add_argument("--shift", type=float, default=0.015, help="s added to --camera's stamps in the second row")
    ap.add_argument("--camera", type=int, default=2, help="camera index whose stamps are shifted (2 = cam03)")
    ap.add_argument("--scale", type=float, default=0.5, help="image scale (the node benchmark's 960x540)")
    ap.add_argument("--out", type=Path, default=REPO / "out/bench/clock_offsets_real.json")
    args = ap.parse_args()

    rec = pose2sim_recording(interleaved=False, scale=args.scale, with_truth=False)
    V = len(rec.cameras)
    schedules = {"interleaved": [k for k, (c, _, _) in enumerate(rec.frames) if c == (k // V) % V],
                 "full rate": list(range(len(rec.frames)))}
    rows = []
    for variant in args.variants:
        kps = keypoints(variant, rec.frames)
        for name, which in schedules.items():
            for shift in (0.0, args.shift):
                est = estimate(rec, kps, which, int(round(shift * 1e9)), args.camera)
                rows.append({"keypoints": variant, "frames": name, "shift_ms": 1000 * shift,
                             "offsets_ms": [1000 * o for o, _ in est], "sigma_ms": [1000 * s for _, s in est]})
    names = rec.names
    print(f"{rec.source}\n")
    print(f"| keypoints | frames | stamps | {' | '.join(names)} |")
    print("|---|---|---|" + "---|" * V)
    for r in rows:
        stamps = "as recorded" if not r["shift_ms"] else f"{names[args.camera]} {r['shift_ms']:+.0f} ms"
        cells = " | ".join(f"{o:+.1f} +- {s:.1f}" for o, s in zip(r["offsets_ms"], r["sigma_ms"]))
        print(f"| MoveNet {r['keypoints']} | {r['frames']} | {stamps} | {cells} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "cameras": names, "source": rec.source, "git": git_hash()},
                                   indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
