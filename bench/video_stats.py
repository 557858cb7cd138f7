"""What the pose2sim video looks like to the warps: peak sharpness of MoveNet's heatmaps, jitter
against motion of the 2D tracks, the dense triangulation's reprojection error, how far the stale
views' detections lie from the pseudo ground truth (`triangulated_detection_truth`: every camera's
detections at every frame, triangulated), and what hand-made corrections of naive interleaving do
there (models/MODEL_CARD.md, "Fine-tuning on the real video").

Usage: python bench/video_stats.py [--heldout-from 50]
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from dense_warper_ros.data.pose2sim import default_root
from dense_warper_ros.data.video import (TRIANGULATED_DETECTION_TRUTH, load_pose2sim_bank,
                                         triangulated_detection_truth)
from dense_warper_ros.epipolar import heatmap_fundamental
from dense_warper_ros.eval import baselines
from dense_warper_ros.eval.metrics import mpjpe_root_aligned
from dense_warper_ros.model import ModelConfig


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--heldout-from", type=int, default=50, help="first frame of the held-out part")
    ap.add_argument("--min-conf", type=float, default=0.3)
    args = ap.parse_args()
    got = load_pose2sim_bank(default_root(), heatmap_size=48,
                             decoder=ModelConfig.named("lite_tc").decoder)
    if got is None:
        print("pose2sim demo not fetched: run scripts/fetch_pose2sim.py")
        return 1
    bank = got[1]
    pgt = triangulated_detection_truth(bank, min_conf=args.min_conf)
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
        print(f"{name}: stale views' detections vs {TRIANGULATED_DETECTION_TRUTH}: median {np.median(e):.1f} px, "
              f"{100 * np.mean(e > 60):.0f} % beyond 60 px")
    uv = bank.uv[pgt.grid[:, 0]]
    good = bank.conf[pgt.grid[:, 0]] >= args.min_conf
    moves = [f"{lag}: {np.median(np.linalg.norm(uv[lag:] - uv[:-lag], axis=-1)[good[lag:] & good[:-lag]]):.0f} px"
             for lag in (1, 2, 4, 8)]
    print("camera 0, median 2D move over 1, 2, 4, 8 frames:", ", ".join(moves))
    corrections(bank, pgt, inter)
    return 0


def corrections(bank, pgt, inter: np.ndarray) -> None:
    """Hand-made corrections of naive interleaving's stale views, causal, all scored frames:
    root-aligned MPJPE (mm) against the pseudo ground truth (`triangulated_detection_truth`)."""
    V, frame = len(bank.cameras), pgt.frame
    ts = inter[(frame[inter] >= V) & (frame[inter] < len(pgt.instants) - V)]      # one cycle in from either end
    targets, gt = bank.time[ts], pgt.poses[frame[ts]]

    def mpjpe(uv: np.ndarray, w: np.ndarray) -> float:
        return mpjpe_root_aligned(baselines.triangulate(bank.P, uv, w), gt) * 1000
    sel = baselines.select_latest(bank, inter, targets)                          # (T, V)
    prev = baselines.select_previous(bank, inter, sel, 1)[..., 0]
    u1, w1 = baselines.gather_points(bank, sel)                                  # (T, V, J, 2), (T, V, J)
    u0, w0 = baselines.gather_points(bank, np.maximum(prev, 0))
    stale = (sel != ts[:, None]) & (prev >= 0)
    both = stale[..., None] & (w0 > 0) & (w1 > 0)                                # (T, V, J)
    w_min = np.where(both, np.minimum(w0, w1), w1)
    print(f"causal corrections of the stale views (MPJPE mm vs {TRIANGULATED_DETECTION_TRUTH}, {len(ts)} targets): "
          f"naive (b) {mpjpe(u1, w1):.1f}")
    for beta in (0.25, -0.25, -0.5):                                             # + extrapolate, - smooth
        uv = np.where(both[..., None], u1 + beta * (u1 - u0), u1)
        print(f"  moved by beta {beta:+.2f} x the last step: {mpjpe(uv, w1):.1f} (weights: latest), "
              f"{mpjpe(uv, w_min):.1f} (weights: lower of the two frames)")
    age = np.round((targets[:, None] - bank.time[sel]) * 60.0)
    print(f"  weighted by 0.8 per frame of age: {mpjpe(u1, w1 * (0.8 ** age)[..., None]):.1f}")
    anchor = bank.camera[ts]
    eye = torch.eye(2, 3, dtype=torch.float64)                  # image px: no crop, image-pixel F
    for g in (0.25, 0.5):
        uv = u1.copy()
        for a in range(V):
            rows = anchor == a
            for c in range(V):
                if c == a or not rows.any():
                    continue
                F = heatmap_fundamental(torch.as_tensor(bank.P[a]), eye, torch.as_tensor(bank.P[c]), eye).numpy()
                lines = np.einsum("ij,tkj->tki", F,
                                  np.concatenate([u1[rows, a], np.ones_like(u1[rows, a, :, :1])], -1))
                n = np.linalg.norm(lines[..., :2], axis=-1, keepdims=True)
                dist = ((lines[..., :2] * u1[rows, c]).sum(-1, keepdims=True) + lines[..., 2:]) / n
                ok = (w1[rows, a] >= 0.3)[..., None]
                uv[rows, c] = np.where(ok, u1[rows, c] - g * dist * lines[..., :2] / n, u1[rows, c])
        print(f"  moved {g:.2f} of the way onto the anchor view's epipolar lines: {mpjpe(uv, w1):.1f}")


if __name__ == "__main__":
    raise SystemExit(main())
