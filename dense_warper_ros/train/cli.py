"""`python -m dense_warper_ros.train --config config/train/lite.yaml --out out/train/<run> [--resume]
[--device cuda]`."""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Sequence

from dense_warper_ros.data.rigs import read_yaml
from dense_warper_ros.train.loop import REPO, config_from_mapping, train


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Train DenseWarper's warps (stage 2) on synthetic windows "
                                             "(and real video windows when data.video_prob > 0).")
    ap.add_argument("--config", type=Path, default=REPO / "config" / "train" / "lite.yaml")
    ap.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, config, history)")
    ap.add_argument("--resume", action="store_true", help="continue from <out>/ckpt.pt")
    ap.add_argument("--steps", type=int, default=None, help="override optim.steps")
    ap.add_argument("--seed", type=int, default=None, help="override seed")
    ap.add_argument("--threads", type=int, default=None, help="override torch threads")
    ap.add_argument("--workers", type=int, default=None,
                    help="override workers: DataLoader processes making the batches (0: in this process)")
    ap.add_argument("--device", default=None, help="override device: cpu, cuda, cuda:N or auto")
    ap.add_argument("--stop-after", type=int, default=None,
                    help="checkpoint and stop after this step (continue later with --resume)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    cfg = config_from_mapping(read_yaml(args.config))
    if args.steps is not None:
        cfg = dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, steps=args.steps))
    if args.seed is not None:
        cfg = dataclasses.replace(cfg, seed=args.seed)
    if args.threads is not None:
        cfg = dataclasses.replace(cfg, threads=args.threads)
    if args.workers is not None:
        cfg = dataclasses.replace(cfg, workers=args.workers)
    if args.device is not None:
        cfg = dataclasses.replace(cfg, device=args.device)
    res = train(cfg, args.out, resume=args.resume, progress=not args.no_progress,
                stop_after=args.stop_after)
    print(f"[train] done at step {res['step']}, best val MPJPE {res['best_val_mpjpe']:.2f} mm -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
