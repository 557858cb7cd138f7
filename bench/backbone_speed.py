#!/usr/bin/env python3
"""Per-image latency of the 2D backbones (MoveNet Thunder / Lightning; optionally the paper's
SimpleBaseline ResNet-152 with random weights), batch 1 and 4, on CPU and on CUDA when present.

Why: the node has to keep up with N cameras; this says how many images per second one backbone
takes. Honest timing: warm-up runs first, CUDA synchronised on both sides of the timer, median and
90th percentile of repeated runs, the machine's load average recorded (a shared CPU skews results).

Three figures per row: `prepare` (crop + resample from a 1080x1920 RGB frame to the input tensor),
`network` (forward pass on the prepared batch) and `pipeline` (the whole Backbone2D call: prepare,
network, decode, COCO -> H36M). Each MoveNet row is timed once per `--inference` backend in the same
run (torch; onnxruntime on models/movenet_<variant>.onnx with `--threads` intra-op threads), so the
two compare under the same load; a backend that cannot run is listed as skipped, with the reason.

Usage: python bench/backbone_speed.py [--threads 2] [--batches 1 4] [--repeats 20]
       [--devices cpu cuda] [--inference torch onnxruntime] [--simple-baseline]
       [--out out/bench/backbone_speed.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))   # so that a plain `python bench/backbone_speed.py` finds the package

from dense_warper_ros.backbones import Backbone2D  # noqa: E402
from dense_warper_ros.backbones.simple_baseline import SimpleBaseline  # noqa: E402
from dense_warper_ros.provenance import git_hash  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], device: torch.device, *, warmup: int, repeats: int) -> list[float]:
    """Seconds per call, `repeats` times, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        out.append(time.perf_counter() - t0)
    return out


def test_frames(n: int) -> list[np.ndarray]:
    """Real frames when the Pose2Sim demo is there (the content does not change the cost), else noise."""
    try:
        from dense_warper_ros.data import pose2sim
        frame = pose2sim.load_demo().frames([0])[0][2]
    except (FileNotFoundError, OSError):
        frame = np.random.default_rng(0).integers(0, 255, (1920, 1080, 3), dtype=np.uint8)
    return [frame] * n


def bench_backbone(name: str, net: Backbone2D, device: torch.device, batch: int, *,
                   repeats: int, warmup: int) -> dict:
    frames = test_frames(batch)
    boxes = np.tile([[200.0, 500.0, 900.0, 1500.0]], (batch, 1))   # a person-sized crop
    A_in = net.input_affines(frames, boxes)
    x = net.prepare(frames, A_in)

    def prepare() -> None:
        net.prepare(frames, net.input_affines(frames, boxes))

    def network() -> None:
        with torch.inference_mode():
            net.network(x)          # the backend's forward pass (ONNX Runtime or torch)

    def pipeline() -> None:
        out = net(frames, boxes)
        sync(device)
        return out

    t_prep = time_call(prepare, device, warmup=min(warmup, 2), repeats=max(3, repeats // 2))
    t_net = time_call(network, device, warmup=warmup, repeats=repeats)
    t_pipe = time_call(pipeline, device, warmup=min(warmup, 2), repeats=max(3, repeats // 2))

    def per(ts: list[float]) -> list[float]:   # ms per image
        return [1e3 * t / batch for t in ts]

    return {
        "model": name, "device": str(device), "batch": batch, "input": net.input_size,
        "inference": net.inference,
        "prepare_ms_per_image_median": statistics.median(per(t_prep)),
        "network_ms_per_image_median": statistics.median(per(t_net)),
        "network_ms_per_image_p90": float(np.percentile(per(t_net), 90)),
        "network_ms_per_image_min": min(per(t_net)),   # least disturbed run on a shared machine
        "pipeline_ms_per_image_median": statistics.median(per(t_pipe)),
        "repeats": repeats,
    }


def movenet_for(variant: str, device: torch.device, inference: str, threads: int
                ) -> tuple[Backbone2D | None, str]:
    """The backbone with that backend, or (None, why not): an onnxruntime row must time ONNX Runtime,
    never a torch fallback (no package, no file, no CUDA provider)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)      # the CUDA fallback: reported below
            net = Backbone2D.movenet(variant, device=device, inference=inference, cpu_threads=threads)
    except (ImportError, FileNotFoundError, ValueError) as e:
        return None, str(e)
    if not net.inference.startswith(inference):
        return None, net.inference
    return net, ""


def _onnxruntime_version() -> str | None:
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime.__version__


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="CPU threads (torch, and ONNX Runtime's intra-op)")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--variants", nargs="+", default=["thunder", "lightning"])
    ap.add_argument("--devices", nargs="+", default=["cpu", "cuda"],
                    help="cuda is skipped (and reported so) when not available")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--inference", nargs="+", default=["torch", "onnxruntime"], choices=("torch", "onnxruntime"),
                    help="MoveNet backends to time side by side (the SimpleBaseline runs torch only)")
    ap.add_argument("--simple-baseline", action="store_true",
                    help="also time the paper's ResNet-152 SimpleBaseline (random weights, 384 px)")
    ap.add_argument("--out", type=Path, default=REPO / "out" / "bench" / "backbone_speed.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()

    rows, skipped = [], []
    for dev in args.devices:
        if dev == "cuda" and not torch.cuda.is_available():
            skipped.append("cuda: no CUDA device (not measured)")
            continue
        device = torch.device(dev)
        nets = []
        for v in args.variants:
            for inference in args.inference:
                net, why = movenet_for(v, device, inference, args.threads)
                if net is None:
                    skipped.append(f"movenet_{v} {dev} {inference}: {why}")
                    continue
                nets.append((f"movenet_{v}", net))
        if args.simple_baseline:
            nets.append(("simple_baseline_r152", Backbone2D(SimpleBaseline().eval(), device=device)))
        for name, net in nets:
            for b in args.batches:
                heavy = name.startswith("simple") and dev == "cpu"
                row = bench_backbone(name, net, device, b, repeats=3 if heavy else args.repeats,
                                     warmup=1 if heavy else args.warmup)
                rows.append(row)
                print(f"{name:22s} {dev:4s} {row['inference']:48s} batch {b}: prepare "
                      f"{row['prepare_ms_per_image_median']:6.1f}, "
                      f"network {row['network_ms_per_image_median']:7.1f} "
                      f"(p90 {row['network_ms_per_image_p90']:.1f}), pipeline "
                      f"{row['pipeline_ms_per_image_median']:7.1f} ms/img", flush=True)

    meta = {
        "git": git_hash(), "torch": torch.__version__, "threads": args.threads,
        "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "onnxruntime": _onnxruntime_version(),
        "skipped": skipped,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")

    print("\n| model | device | inference | batch | prepare ms/image (median) "
          "| network ms/image (median, p90, min) | pipeline ms/image (median) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} ({r['input']} px) | {r['device']} | {r['inference']} | {r['batch']} | "
              f"{r['prepare_ms_per_image_median']:.1f} | "
              f"{r['network_ms_per_image_median']:.1f}, {r['network_ms_per_image_p90']:.1f}, "
              f"{r['network_ms_per_image_min']:.1f} | "
              f"{r['pipeline_ms_per_image_median']:.1f} |")
    for s in skipped:
        print(f"| — | {s} | | | | | |")
    print(f"\nthreads {args.threads}, torch {torch.__version__}, onnxruntime {meta['onnxruntime']}, "
          f"load average before {load_before}, "
          f"after {meta['loadavg_after']}, "
          f"JSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
