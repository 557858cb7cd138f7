"""The accuracy benchmark: does DenseWarper beat the alternatives at the same camera budget?

Methods (a) sync at 1/N of the instants + interpolation, (b) naive interleaved, (c) interleaved +
2D constant velocity, (d) DenseWarper, (d+) DenseWarper with temporal context, (e) dense sync at
every instant, and on request (s) a spatio-temporal DLT and (o) an oracle analysis row; causal and
windowed timings. `eval.methods` defines each and the protocol; `eval.report` the metrics.

Data: the held-out DeepMimic clips (`data.motion.TEST_CLIPS`) with synthetic detector evidence
(rig, schedule, noise from YAML) against their exact motion capture, and the real pose2sim video
when it is present, against the pseudo ground truth `data.video.triangulated_detection_truth`
(every camera's backbone detections at every frame, triangulated; tables name it), plus
held-out-view reprojection (`eval.sequences`).

Usage:  python -m dense_warper_ros.eval.accuracy [--config config/bench/default.yaml] [--quick]
        [--weights models/dense_warper_lite.safetensors | --untrained]
        [--weights-tc models/dense_warper_lite_tc.safetensors] [--out out/accuracy]
        [--outlier-threshold 2.5]   (robust triangulation for every method; config/bench/robust.yaml)
        [--oracle 4]                (the oracle row (o), 4 frames per view)
        [--methods b c s d+]        (run only these methods)
Prints markdown tables, writes <out>/accuracy.json and <out>/accuracy.png (plus
<out>/accuracy_video.png for the video): per-pose error over time and, for one instant, every
method's skeleton, (d+) included.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from dense_warper_ros.data.rigs import make_rig, rig_summary
from dense_warper_ros.devices import resolve_device
from dense_warper_ros.eval.bench_config import METHODS, AccuracyConfig, load_config, quick
from dense_warper_ros.eval.densewarper_method import WarperHandle, decoder_of, load_warper
from dense_warper_ros.eval.report import (jsonable, label_model, markdown_table, per_clip_table, plot, score,
                                          video_title)
from dense_warper_ros.eval.sequences import run_synthetic, run_video
from dense_warper_ros.eval.stamps import clock_table
from dense_warper_ros.provenance import git_hash
from dense_warper_ros.weights import default_weights

# Paths on the command line and in the bench YAML are relative to the working directory (a
# checkout, or wherever the installed `dense-warper-accuracy` runs); the shipped weights are found
# as the node finds them (`weights.models_dir`: environment, checkout, install tree).
DEFAULT_CONFIG = Path("config") / "bench" / "default.yaml"


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None,
                    help=f"bench YAML (default: {DEFAULT_CONFIG} in the working directory, if there)")
    ap.add_argument("--weights", type=Path, default=None,
                    help="DenseWarper weights (default: the shipped dense_warper_lite.safetensors, if present)")
    ap.add_argument("--weights-tc", type=Path, default=None,
                    help="(d+) temporal-context weights (default: the shipped dense_warper_lite_tc.safetensors)")
    ap.add_argument("--untrained", action="store_true",
                    help="(d) and (d+) with identity warps even if weights exist")
    ap.add_argument("--quick", action="store_true", help="one short clip and a few video frames (tests)")
    ap.add_argument("--no-video", action="store_true", help="skip the pose2sim video")
    ap.add_argument("--no-synthetic", action="store_true", help="skip the synthetic clips")
    ap.add_argument("--out", type=Path, default=Path("out") / "accuracy", help="output folder")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--device", default="cpu",
                    help="where (d) and (d+) run: cpu (default: the published figures), cuda, cuda:N, auto")
    ap.add_argument("--outlier-threshold", type=float, default=None,
                    help="heatmap px: every method's DLT drops outlier views (overrides bench.outlier_threshold)")
    ap.add_argument("--max-views", type=int, default=None,
                    help="(d) and (d+) fuse only this many views, nearest in time to each target "
                         "(overrides bench.max_views)")
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=None,
                    help="the methods to run (default: bench.methods of the config)")
    ap.add_argument("--oracle", type=int, default=None, metavar="FRAMES",
                    help="add the oracle row (o), averaging FRAMES frames per view (synthetic only)")
    return ap


def _config(args: argparse.Namespace) -> AccuracyConfig:
    """The YAML's config with the command line's overrides of its bench section."""
    cfg = load_config(args.config)
    bench: dict[str, Any] = {}
    if args.outlier_threshold is not None:
        bench["outlier_threshold"] = args.outlier_threshold
    if args.max_views is not None:
        bench["max_views"] = args.max_views
    methods = tuple(args.methods) if args.methods is not None else cfg.bench.methods
    if args.oracle is not None:
        bench["oracle_frames"] = args.oracle
        methods += () if "o" in methods else ("o",)
    if methods != cfg.bench.methods:
        bench["methods"] = methods
    if bench:
        cfg = dataclasses.replace(cfg, bench=dataclasses.replace(cfg.bench, **bench))
    return quick(cfg) if args.quick else cfg


def _warpers(args: argparse.Namespace, cfg: AccuracyConfig,
             device: torch.device) -> tuple[WarperHandle | None, WarperHandle | None]:
    """The models of (d) and (d+) when they run: the given weights, else the shipped ones if present."""
    weights = None if args.untrained else (args.weights or default_weights("lite"))
    warper = load_warper(weights, cfg.bench.model, device) if "d" in cfg.bench.methods else None
    weights_tc = None if args.untrained else (args.weights_tc or default_weights("lite_tc"))
    warper_tc = load_warper(weights_tc, cfg.bench.model_tc, device) if "d+" in cfg.bench.methods else None
    return warper, warper_tc


def _synthetic(cfg: AccuracyConfig, warper: WarperHandle | None, warper_tc: WarperHandle | None,
               report: dict[str, Any], out: Path) -> None:
    """Run the synthetic clips, print their tables, add them to `report`, draw accuracy.png."""
    results, heatmap = run_synthetic(cfg, warper, warper_tc=warper_tc)
    scores = label_model(score(results), report["model"], report["model_tc"])
    V = len(make_rig(cfg.rig))
    title = (f"Synthetic held-out clips {', '.join(cfg.bench.clips)}: rig {cfg.rig.name} ({V} cameras), "
             f"{cfg.schedule.rate_hz:g} frames/s interleaved; (d) = {report['model']}; "
             f"(d+) = {report['model_tc']}")
    print(f"\n### {title}\n")
    print(markdown_table(scores))
    print("\n" + per_clip_table(scores))
    clock = results[0].clock if results else None
    if clock is not None:
        print("\n" + clock_table("camera clocks, every clip (stamp - capture time - camera 0's)", clock))
    report["synthetic"] = {"scores": scores, "truth": "ground truth", "heatmap": jsonable(heatmap),
                           "rig": rig_summary(cfg.rig, make_rig(cfg.rig)), "clock": jsonable(clock)}
    plot(results, out / "accuracy.png", title)


def _video(cfg: AccuracyConfig, warper: WarperHandle | None, warper_tc: WarperHandle | None,
           report: dict[str, Any], out: Path) -> None:
    """Run the pose2sim video if present, print its table, add it to `report`, draw accuracy_video.png."""
    res = run_video(cfg, warper, Path(cfg.bench.video_dir), warper_tc=warper_tc)
    if res is None:
        print(f"\n(pose2sim video not found under {cfg.bench.video_dir}: "
              "run scripts/fetch_pose2sim.py to add it)")
        return
    vscores = label_model(score([res]), report["model"], report["model_tc"])
    title = video_title(res, report["model"], report["model_tc"])
    print(f"\n### {title}\n")
    print(markdown_table(vscores, truth=res.truth))
    if res.clock is not None:
        print("\n" + clock_table("camera clocks (stamp - capture time - camera 0's)", res.clock))
    report["video"] = {"scores": vscores, "truth": res.truth, "clock": jsonable(res.clock)}
    plot([res], out / "accuracy_video.png", title)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    device = resolve_device(args.device)           # a device it cannot use fails before any work
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = _config(args)
    warper, warper_tc = _warpers(args, cfg, device)
    started = time.perf_counter()
    report: dict[str, Any] = {
        "git": git_hash(), "argv": list(sys.argv if argv is None else argv),
        "config": jsonable(cfg), "model": warper.status if warper else "not run",
        "model_tc": warper_tc.status if warper_tc else "not run",
        "decoder": {"soft_argmax": decoder_of(warper) or "defaults (window 15 px at 96, temperature 0.05)"},
        "platform": {"python": platform.python_version(), "torch": torch.__version__,
                     "threads": torch.get_num_threads(), "device": str(device)},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.no_synthetic:
        _synthetic(cfg, warper, warper_tc, report, args.out)
    if not args.no_video:
        _video(cfg, warper, warper_tc, report, args.out)
    report["seconds"] = time.perf_counter() - started
    with open(args.out / "accuracy.json", "w") as f:
        json.dump(jsonable(report), f, indent=1)
    print(f"\nwrote {args.out / 'accuracy.json'} ({report['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
