"""What the pose2sim video looks like to the warps: peak sharpness of MoveNet's heatmaps, jitter
against motion of the 2D tracks, the dense triangulation's reprojection error, and how far the
stale views' detections lie from the pseudo ground truth (models/MODEL_CARD.md, "Fine-tuning on
the real video").

Usage: python bench/video_stats.py [--heldout-from 50]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from dense_warper_ros.data.video import load_pose2sim_bank, pseudo_ground_truth
from dense_warper_ros.eval import baselines
from dense_warper_ros.model import ModelConfig

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--heldout-from", type=int, default=50, help="first frame of the held-out part")
    ap.add_argument("--min-conf", type=float, default=0.3)
    args = ap.parse_args()
    got = load_pose2sim_bank(REPO / "data" / "pose2sim", heatmap_size=48,
                             decoder=ModelConfig.named("lite_tc").decoder)
    if got is None:
        print("pose2sim demo not fetched: run scripts/fetch_pose2sim.py")
        return 1
    bank = got[1]
    pgt = pseudo_ground_truth(bank, min_conf=args.min_conf)
    V = len(bank.cameras)
    hm = bank.heatmaps(np.arange(len(bank)))
    half = (hm > 0.5 * hm.amax((-1, -2), keepdim=True)).sum((-1, -2)).float()     # (S, J) px
    ok = torch.as_tensor(bank.conf >= args.min_conf)
    area = float(half[ok].median())
    print(f"heatmap peaks: {area:.0f} px above half maximum (median, confident joints) = a Gaussian of "
          f"sigma {np.sqrt(area / (2 * np.pi * np.log(2))):.2f} px at 48 px")
    for c, cam in enumerate(bank.cameras):
        uv, conf = bank.uv[pgt.grid[:, c]], bank.conf[pgt.grid[:, c]]            # (F, J, 2), (F, J)
        good = conf >= args.min_conf

        def step(k: int) -> float:
            d = np.linalg.norm(uv[k:] - uv[:-k], axis=-1)
            return float(np.median(d[good[k:] & good[:-k]]))
        d2 = np.linalg.norm(uv[2:] - 2 * uv[1:-1] + uv[:-2], axis=-1)[good[2:] & good[1:-1] & good[:-2]]
        res = np.linalg.norm(cam.project(pgt.poses, distort=False) - uv, axis=-1)[good & pgt.reliable]
        print(f"camera {c}: 2D track median |1st diff| {step(1):.1f} px, |2nd diff| {np.median(d2):.1f} px, "
              f"{V}-frame move {step(V):.1f} px; dense triangulation reprojects to {np.median(res):.1f} px")
    frame = pgt.frame
    inter = np.flatnonzero(frame % V == bank.camera)
    for name, keep in (("trained part", frame[inter] < args.heldout_from),
                       ("held-out part", frame[inter] >= args.heldout_from)):
        ts = inter[keep]
        sel = baselines.select_latest(bank, inter, bank.time[ts])                   # (T, V)
        gt = pgt.poses[frame[ts]]
        errs = []
        for c, cam in enumerate(bank.cameras):
            stale = (sel[:, c] >= 0) & (sel[:, c] != ts)
            e = np.linalg.norm(bank.uv[sel[stale, c]] - cam.project(gt[stale], distort=False), axis=-1)
            errs.append(e.ravel())
        e = np.concatenate(errs)
        print(f"{name}: stale views' detections vs pseudo ground truth: median {np.median(e):.1f} px, "
              f"{100 * np.mean(e > 60):.0f} % beyond 60 px")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
