"""Per-output-pose latency and peak memory of the DenseWarper fusion, `paper` and `lite`, V = 4.

What is timed (B = 1, heatmaps given: the backbone is not timed, its cost is per frame and belongs to
the backbone's own benchmark):
  exchange      the V-1 epipolar exchanges one pose needs, indices computed per call (moving crops)
  exchange-rig  the same with indices precomputed once (static rig, fixed crops)
  warps         the V-1 temporal warps
  decode+dlt    soft-argmax of the V heatmaps, weighted DLT with covariance
  outliers-worst  the leave-one-out view rejection (`outlier_threshold`) when every joint is tested
  fusion        `pose_at` end to end (streaming: one pose per new frame), moving crops
  fusion-rig    `pose_at` with a precomputed static rig
  window        `forward_window` (V poses, V(V-1) warps): what recomputing the whole window for every
                new frame costs; window / fusion is the streaming saving, measured in the same run.
Targets (the speed the node needs): lite fusion <= 10 ms on 2 CPU threads; paper fusion <= 5 ms on one GPU in fp16.

The 2D backbone each output pose also needs (one image per pose), once per `--inference` backend in
the same run (torch; onnxruntime on models/movenet_<variant>.onnx, `--threads` intra-op threads):
  backbone-network  the network on one prepared 192/256 px crop
  backbone          the whole Backbone2D call on a real 1080x1920 frame: crop + network + decode
Then per config: output pose = backbone + fusion, per backend. A backend that cannot run (no package,
no ONNX file, no CUDA provider) is listed as skipped with the reason, never timed as torch.

Honesty: warm-up calls first; CUDA synchronised on both sides of the timer; each stage is timed in
`--rounds` rounds and the best round's median is reported (the machine may be shared: the load
average is recorded). CPU peak memory is the growth of the process's peak RSS during one call
(malloc_trim, then /proc/self/clear_refs resets the high-water mark); CUDA peak is
max_memory_allocated above what was allocated before the call.

Usage: python bench/model_speed.py [--configs lite paper] [--threads 2] [--clock wall|cpu]
       [--inference torch onnxruntime] [--backbone movenet_lightning] [--json PATH]
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dense_warper_ros import cameras as C  # noqa: E402
from dense_warper_ros.data.rigs import ring_rig  # noqa: E402
from dense_warper_ros.heatmaps import render_gaussians  # noqa: E402
from dense_warper_ros.model import DenseWarper, ModelConfig, PreviousFrames  # noqa: E402
from dense_warper_ros.provenance import git_hash  # noqa: E402
from dense_warper_ros.triangulation import reject_outlier_views  # noqa: E402
from dense_warper_ros.weights import default_weights  # noqa: E402

V = 4
TARGETS_MS = {("lite", "cpu"): 10.0, ("paper", "cuda"): 5.0}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--configs", nargs="+", default=None,
                   help="named configurations (random offset heads) or weights files (their own config "
                        "and weights); default: lite, lite_tc, paper and the shipped lite_tc file")
    p.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    p.add_argument("--devices", nargs="+", default=None, help="cpu and/or cuda (default: all present)")
    p.add_argument("--rounds", type=int, default=3, help="timing rounds per stage (best median kept)")
    p.add_argument("--budget-s", type=float, default=1.0, help="time per round per stage")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall: latency; cpu: this process's CPU time (with --threads 1, the latency on "
                        "an idle core, robust to other processes sharing the machine)")
    p.add_argument("--inference", nargs="*", default=["torch", "onnxruntime"], choices=("torch", "onnxruntime"),
                   help="backbone backends to time side by side (none: fusion only)")
    p.add_argument("--backbone", default="movenet_lightning", choices=("movenet_lightning", "movenet_thunder"))
    p.add_argument("--json", type=Path, default=REPO / "out" / "model_speed.json",
                   help="results file (default out/model_speed.json, git-ignored)")
    return p.parse_args(argv)


# --- inputs --------------------------------------------------------------------------------------
def make_inputs(cfg: ModelConfig, device: torch.device, dtype: torch.dtype, seed: int = 0) -> dict:
    """A moving skeleton seen by a 4-camera interleaved ring rig, as Gaussian heatmaps plus noise;
    for temporal-context configs also each view's K earlier frames (`prev`), as the node feeds them."""
    rng = np.random.default_rng(seed)
    cams = ring_rig(V)
    root = np.array([0.1, -0.1, 1.0])
    X = rng.normal(size=(17, 3)) * 0.25 + root
    K = cfg.temporal_context
    # (V, 1 + K) capture times: column 0 the window's frame, column k a view's k-th earlier frame
    times = np.arange(V)[:, None] * cfg.frame_interval_s - np.arange(1 + K) * V * cfg.frame_interval_s
    A = np.stack([C.root_crop_affine(c, root, out_size=cfg.heatmap_size) for c in cams])
    uv = np.stack([[C.apply_affine(A[v], cams[v].project(X + 0.3 * t)) for t in times[v]] for v in range(V)])
    hm = render_gaussians(torch.as_tensor(uv, dtype=torch.float32).flatten(0, 1), cfg.heatmap_size,
                          cfg.target_sigma)
    hm = (hm + 0.01 * torch.rand(hm.shape, generator=torch.Generator().manual_seed(seed))).clamp(0, 1)
    hm = hm.view(V, 1 + K, *hm.shape[1:])                       # (V, 1 + K, J, h, w)
    f32 = dict(device=device, dtype=torch.float32)
    At = torch.as_tensor(A, **f32)
    prev = None
    if K:
        prev = PreviousFrames(hm[None, :, 1:].to(device, dtype), At[None, :, None].expand(1, V, K, 2, 3),
                              torch.as_tensor(times[None, :, 1:], device=device),
                              torch.ones(1, V, K, dtype=torch.bool, device=device))
    return dict(hm=hm[None, :, 0].to(device, dtype), P=C.projection_matrices(cams, **f32)[None], A=At[None],
                times=torch.as_tensor(times[None, :, 0], device=device),
                valid=torch.ones(1, V, dtype=torch.bool, device=device), prev=prev)


def build_model(name: str, device: torch.device, dtype: torch.dtype) -> DenseWarper:
    """The named model with non-zero offset heads, so the warps do real work (not the identity); a
    weights file as it is (its own config, e.g. the shipped lite_tc's `temporal_fusion`)."""
    if name.endswith((".safetensors", ".pt")):
        return DenseWarper.load(name).to(device=device, dtype=dtype).for_inference()
    torch.manual_seed(0)
    model = DenseWarper(ModelConfig.named(name))
    with torch.no_grad():
        for pname, p in model.warps.named_parameters():
            if ".heads." in pname:
                p.normal_(0, 0.01)
    return model.to(device=device, dtype=dtype).for_inference()


# --- stages --------------------------------------------------------------------------------------
def stage_functions(model: DenseWarper, x: dict) -> dict:
    """name -> zero-argument callable, for the newest view's capture time (streaming)."""
    hm, P, A, times, valid, prev = x["hm"], x["P"], x["A"], x["times"], x["valid"], x["prev"]
    target = times[:, -1]
    anchor = None if model.time_conditioned else torch.full((1,), V - 1, device=hm.device)
    plan = model._plan(times, valid, target, anchor)
    rig = model.precompute_rig(P[0], A[0])
    E = model._exchange(hm, P, A, plan, None)
    Y = model._assemble(hm, model._warp(hm, E, plan, A), plan)   # stage timings: no history (fusion has it)
    pose, _ = model._triangulate(Y, P, A, plan, None)
    return {
        "exchange": lambda: model._exchange(hm, P, A, plan, None),
        "exchange-rig": lambda: model._exchange(hm, P, A, plan, rig),
        "warps": lambda: model._warp(hm, E, plan, A),
        "decode+dlt": lambda: model._triangulate(Y, P, A, plan, None),
        # `outlier_threshold`'s extra cost, worst case: a 0 px threshold tests every joint and drops
        # views until 2 are left (V - 2 rounds of V leave-one-out DLTs)
        "outliers-worst": lambda: reject_outlier_views(P, pose.uv, pose.peak, 0.0),
        "fusion": lambda: model.pose_at(hm, P, A, times, valid, target, previous=prev),
        "fusion-rig": lambda: model.pose_at(hm, P, A, times, valid, target, rig=rig, previous=prev),
        "window": lambda: model.forward_window(hm, P, A, times, valid, previous=prev),
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_stage(fn, device: torch.device, rounds: int, budget_s: float, clock: str = "wall") -> dict:
    """Best-round median and p90 latency in ms, after warm-up."""
    tick = time.process_time if clock == "cpu" else time.perf_counter
    with torch.no_grad():
        t0 = time.perf_counter()
        fn()
        _sync(device)
        first = time.perf_counter() - t0
        if first < budget_s:                                     # a few more warm-up calls if cheap
            for _ in range(3):
                fn()
            _sync(device)
        best = None
        for _ in range(rounds if first < budget_s else 1):      # slow stages (paper on CPU): once
            samples = []
            start = time.perf_counter()
            while not samples or (time.perf_counter() - start < budget_s and len(samples) < 500):
                _sync(device)
                t = tick()
                fn()
                _sync(device)
                samples.append((tick() - t) * 1e3)
            samples.sort()
            r = {"median_ms": statistics.median(samples),
                 "p90_ms": samples[min(len(samples) - 1, int(0.9 * len(samples)))], "n": len(samples)}
            if best is None or r["median_ms"] < best["median_ms"]:
                best = r
    return best


def _rss() -> dict:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmHWM", "VmRSS")):
                key, val = line.split(":")
                out[key] = int(val.split()[0]) * 1024
    return out


def peak_memory_mb(fn, device: torch.device) -> float | None:
    """Peak memory growth during one call, MB (None where it cannot be measured)."""
    with torch.no_grad():
        if device.type == "cuda":
            _sync(device)
            before = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
            fn()
            _sync(device)
            return (torch.cuda.max_memory_allocated(device) - before) / 2 ** 20
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            return None
        before = _rss()["VmRSS"]
        fn()
        return max(0, _rss()["VmHWM"] - before) / 2 ** 20


# --- runs ----------------------------------------------------------------------------------------
def label(name: str) -> str:
    """A weights file is reported by its name without the prefix and suffix, marked with a *."""
    if name.endswith((".safetensors", ".pt")):
        return Path(name).stem.removeprefix("dense_warper_") + "*"
    return name


def run_one(name: str, device: torch.device, dtype: torch.dtype, args) -> tuple[list[dict], dict]:
    """The stages' timings and the config that ran (a weights file's own)."""
    model = build_model(name, device, dtype)
    fns = stage_functions(model, make_inputs(model.config, device, dtype))
    rows = []
    for stage, fn in fns.items():
        r = time_stage(fn, device, args.rounds, args.budget_s, args.clock)
        r.update(config=label(name), device=device.type, dtype=str(dtype).replace("torch.", ""), stage=stage,
                 clock=args.clock, threads=args.threads, peak_mb=peak_memory_mb(fn, device))
        rows.append(r)
    return rows, model.config.to_dict()


def backbone_stage_functions(name: str, device: torch.device, inference: str, threads: int
                             ) -> tuple[dict, str]:
    """({stage: callable}, what runs) for one backend; ({}, why not) when that backend cannot run (an
    onnxruntime row must never time a torch fallback)."""
    import warnings

    from dense_warper_ros.backbones import Backbone2D
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)       # the CUDA fallback: reported as skipped
            net = Backbone2D.movenet(name.removeprefix("movenet_"), device=device, inference=inference,
                                     cpu_threads=threads)
    except (ImportError, FileNotFoundError, ValueError) as e:
        return {}, str(e)
    if not net.inference.startswith(inference):
        return {}, net.inference
    try:
        from dense_warper_ros.data import pose2sim
        frame = pose2sim.load_demo().frames([0])[0][2]           # (1920, 1080, 3) RGB
    except (FileNotFoundError, OSError):
        frame = np.random.default_rng(0).integers(0, 255, (1920, 1080, 3), dtype=np.uint8)
    boxes = np.array([[200.0, 500.0, 900.0, 1500.0]])             # a person-sized crop
    x = net.prepare([frame], net.input_affines([frame], boxes))   # (1, 3, S, S)

    def network():
        with torch.inference_mode():
            return net.network(x)

    return {"backbone-network": network, "backbone": lambda: net([frame], boxes)}, net.inference


def run_backbones(devices: list[str], args) -> tuple[list[dict], list[str]]:
    """Backbone stage rows for every (device, backend), and the skipped backends with the reason."""
    rows, skipped = [], []
    for dev in devices:
        device = torch.device(dev)
        for inference in args.inference:
            fns, what = backbone_stage_functions(args.backbone, device, inference, args.threads)
            if not fns:
                skipped.append(f"{args.backbone} {dev} {inference}: {what}")
                continue
            for stage, fn in fns.items():
                r = time_stage(fn, device, args.rounds, args.budget_s, args.clock)
                r.update(backbone=args.backbone, backend=inference, inference=what, device=device.type,
                         stage=stage, clock=args.clock, threads=args.threads)
                rows.append(r)
    return rows, skipped


def print_backbones(rows: list[dict], skipped: list[str], summary: list[dict]) -> None:
    """The backbone rows, then one output pose = backbone + fusion per (config, device, backend)."""
    if not rows and not skipped:
        return
    print()
    for r in rows:
        print(f"{r['backbone']:18} {r['device']:6} {r['inference']:48} {r['stage']:17} "
              f"{r['median_ms']:8.2f} ms (p90 {r['p90_ms']:.2f}, n {r['n']})")
    for s in skipped:
        print(f"skipped: {s}")
    whole = {(r["device"], r["backend"]): r["median_ms"] for r in rows if r["stage"] == "backbone"}
    for s in summary:
        for (dev, backend), ms in whole.items():
            if dev == s["device"] and s["dtype"] == "float32":
                print(f"{s['config']:16} {dev:6} output pose = backbone {backend} {ms:.2f} + fusion "
                      f"{s['fusion_ms']:.2f} = {ms + s['fusion_ms']:.2f} ms")


def summarise(rows: list[dict]) -> list[dict]:
    """Streaming vs window ratio and the speed targets (TARGETS_MS), per (config, device, dtype)."""
    out = []
    keys = sorted({(r["config"], r["device"], r["dtype"]) for r in rows})
    for key in keys:
        by = {r["stage"]: r["median_ms"] for r in rows if (r["config"], r["device"], r["dtype"]) == key}
        s = {"config": key[0], "device": key[1], "dtype": key[2],
             "fusion_ms": by["fusion"], "fusion_rig_ms": by["fusion-rig"], "window_ms": by["window"],
             "window_per_pose_ms": by["window"] / V, "recompute_over_streaming": by["window"] / by["fusion"]}
        target = TARGETS_MS.get((key[0], key[1]))
        if target is not None and (key[1] == "cpu" or key[2] == "float16"):
            s["target_ms"] = target
            s["meets_target_moving_crops"] = by["fusion"] <= target
            s["meets_target_static_rig"] = by["fusion-rig"] <= target
        out.append(s)
    return out


def print_table(rows: list[dict], summary: list[dict]) -> None:
    head = (f"{'config':16} {'device':6} {'dtype':8} {'stage':13} {'median ms':>10} {'p90 ms':>9} "
            f"{'peak MB':>8} {'n':>4}")
    print(head)
    print("-" * len(head))
    for r in rows:
        mb = "n/a" if r["peak_mb"] is None else f"{r['peak_mb']:.1f}"
        print(f"{r['config']:16} {r['device']:6} {r['dtype']:8} {r['stage']:13} {r['median_ms']:10.2f} "
              f"{r['p90_ms']:9.2f} {mb:>8} {r['n']:4d}")
    print()
    for s in summary:
        line = (f"{s['config']:16} {s['device']:6} {s['dtype']:8} streaming pose {s['fusion_ms']:.2f} ms "
                f"(static rig {s['fusion_rig_ms']:.2f}); recomputing the window {s['window_ms']:.2f} ms "
                f"= {s['recompute_over_streaming']:.1f}x streaming ({s['window_per_pose_ms']:.2f} ms/pose "
                f"if all {V} window poses are used)")
        if "target_ms" in s:
            moving = "met" if s["meets_target_moving_crops"] else "NOT met"
            static = "met" if s["meets_target_static_rig"] else "NOT met"
            line += f"; target <= {s['target_ms']:.0f} ms: moving crops {moving}, static rig {static}"
        print(line)


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    devices = args.devices or (["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
    if "cuda" in devices and not torch.cuda.is_available():
        raise SystemExit("--devices cuda given but CUDA is not available")
    if args.clock == "cpu" and "cuda" in devices:
        raise SystemExit("--clock cpu measures CPU time; time CUDA with the default wall clock")
    if args.configs is None:
        shipped = default_weights("lite_tc")
        args.configs = ["lite", "lite_tc", "paper"] + ([str(shipped)] if shipped else [])
    load_before = os.getloadavg()
    rows, configs = [], {}
    for name in args.configs:
        for dev in devices:
            dtypes = [torch.float32] if dev == "cpu" else [torch.float16, torch.float32]
            for dtype in dtypes:
                print(f"timing {name} on {dev} ({dtype})...", file=sys.stderr, flush=True)
                got, configs[label(name)] = run_one(name, torch.device(dev), dtype, args)
                rows += got
    summary = summarise(rows)
    backbone_rows, backbone_skipped = run_backbones(devices, args)
    print(f"clock: {args.clock}, {args.threads} CPU thread(s), load average before "
          f"{' '.join(f'{x:.2f}' for x in load_before)}")
    busy = load_before[0]
    if busy > 0.75 * (os.cpu_count() or 1):
        print(f"warning: load average {busy:.1f} on {os.cpu_count()} cores before this run: if other "
              f"processes share the CPU these timings are inflated (with more than one thread, OpenMP "
              f"barriers waiting for a descheduled thread can make them many times slower; try "
              f"--threads 1 --clock cpu)")
    print_table(rows, summary)
    print_backbones(backbone_rows, backbone_skipped, summary)
    if "cuda" not in devices:
        print("cuda: not measured (no CUDA device here)")
    result = {
        "rows": rows, "summary": summary, "views": V,
        "backbone_rows": backbone_rows, "backbone_skipped": backbone_skipped,
        "configs": configs,
        "git": git_hash(), "torch": torch.__version__, "threads": args.threads,
        "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "gpu": torch.cuda.get_device_name(0) if "cuda" in devices else None,
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "rounds": args.rounds, "budget_s": args.budget_s, "clock": args.clock,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1))
    print(f"results: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
