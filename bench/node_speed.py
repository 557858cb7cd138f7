"""Node-level benchmark over real DDS: a publisher process streams N cameras of real pose2sim
frames (interleaved stamps = wall-clock capture times) at a set per-camera rate into the node in
live mode; we measure output rate vs the sum of camera rates, capture -> publish latency
percentiles, drops, and the node's CPU and memory (from /proc) over time.

    python bench/node_speed.py --cameras 2 4 6 --fps 10 --duration 30 [--timing causal]

Prints a markdown table and writes out/bench/node_speed.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dense_warper_ros.provenance import git_hash  # noqa: E402
from dense_warper_ros.ros.mutations import Mutator  # noqa: E402


def proc_stats(pid: int) -> tuple[float, float]:
    """(cpu seconds, RSS MiB) of a process."""
    stat = Path(f"/proc/{pid}/stat").read_text().split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(stat[13]) + int(stat[14])) / ticks
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    rss = next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))
    return cpu, rss / 1024


def run_one(num_cams: int, fps: float, duration: float, timing: str, scale: float,
            outlier_threshold: float = 0.0, hostile: int | None = None, inference: str = "auto") -> dict:
    import rclpy
    from dense_warper_ros.data.pose2sim_recording import pose2sim_recording
    from dense_warper_ros.data.recording import Recording
    from dense_warper_ros.msg import Skeleton3DArray
    from dense_warper_ros.ros import recording_msgs as rm
    from diagnostic_msgs.msg import DiagnosticArray

    from dense_warper_ros.ros.node_process import NodeProcess, diagnostics_values, spin_until
    from dense_warper_ros.ros.rig_publisher import RigPublisher

    base = pose2sim_recording(num_frames=8 * 4, scale=scale, with_truth=False, interleaved=False)
    cams = [base.cameras[i % 4] for i in range(num_cams)]
    names = [f"cam{i}" for i in range(num_cams)]
    imgs = {i: [img for c, _, img in base.frames if c == i % 4] for i in range(num_cams)}
    rec = Recording(names=names, cameras=cams, frames=[(0, 1, imgs[0][0])])
    rclpy.init()
    node = rclpy.create_node("bench_rig")
    got, lat = [], []

    good_stamps: set[int] = set()

    def on_sk(m):
        now = time.time_ns()
        got.append(now)
        stamp = m.header.stamp.sec * 10**9 + m.header.stamp.nanosec
        lat.append((now - stamp) * 1e-9)
        if stamp in good_stamps:
            good_got.append(now)

    node.create_subscription(Skeleton3DArray, "/dense_warper/skeletons", on_sk, 100)
    diags: list = []                                     # the node's /diagnostics, kept for the report
    node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: diags.append((time.monotonic(), m)), 10)
    proc = NodeProcess(dict(cameras=names, mode="live", timing=timing, qos_reliability="best_effort",
                            device="auto", tf_timeout=0.05, outlier_threshold=outlier_threshold,
                            inference=inference))
    mut = Mutator(seed=1)
    good_sent, good_got = 0, []
    pub = RigPublisher(node, rec, reliable=False, depth=5)
    pub.wait_for_node(timeout=120)
    pub.publish_static()
    time.sleep(1.0)
    period = 1.0 / (fps * num_cams)                      # interleaved: one frame every period
    t_start = time.monotonic()
    k, sent, samples = 0, 0, []
    cpu0, _ = proc_stats(proc.proc.pid)
    next_sample = t_start
    while time.monotonic() - t_start < duration:
        due = t_start + k * period
        while time.monotonic() < due:
            rclpy.spin_once(node, timeout_sec=max(0.0, min(0.002, due - time.monotonic())))
        c = k % num_cams
        stamp = time.time_ns()                           # capture time = now
        img = imgs[c][(k // num_cams) % len(imgs[c])]
        info, msg = rm.camera_info(rec, c, stamp), rm.image(rec, c, stamp, img, compressed=False)
        if c == hostile:                                 # every message of this camera is broken
            info, msg = (mut.info(info), msg) if mut.rng.random() < 0.2 else (info, mut.image(msg))
        else:
            good_sent += 1
            good_stamps.add(stamp)
        pub.info_pubs[c].publish(info)
        pub.img_pubs[c].publish(msg)
        sent += 1
        k += 1
        if time.monotonic() >= next_sample:
            samples.append((time.monotonic() - t_start, *proc_stats(proc.proc.pid)))
            next_sample += 5.0
    spin_until(node, lambda: False, 1.0)
    cpu1, rss1 = proc_stats(proc.proc.pid)
    elapsed = time.monotonic() - t_start
    log = proc.stop()
    node.destroy_node()
    rclpy.try_shutdown()
    steady = [t for t in got if t >= got[0] + 2e9] if got else []
    out_rate = (len(steady) - 1) / ((steady[-1] - steady[0]) * 1e-9) if len(steady) > 2 else 0.0
    L = np.array(lat[len(lat) // 10:]) * 1000 if lat else np.full(1, np.nan)
    rss = [s[2] for s in samples]
    return {"cameras": num_cams, "fps_per_camera": fps, "sum_camera_rate_hz": fps * num_cams, "timing": timing,
            "inference": inference, "hostile_camera": hostile, "good_frames_sent": good_sent,
            "good_poses": len(good_got), "good_output_rate_hz": len(good_got) / elapsed,
            "frames_sent": sent, "poses_received": len(got), "output_rate_hz": out_rate,
            "latency_ms": {p: float(np.percentile(L, p)) for p in (50, 95, 99)},
            "dropped_frames": sent - len(got), "node_cpu_percent": 100 * (cpu1 - cpu0) / elapsed,
            "node_rss_mib_start_end": [rss[0] if rss else rss1, rss1], "rss_samples": samples,
            "worker_errors": [line for line in log.splitlines() if "worker error" in line][:50],
            "diagnostics": [(t - t_start, diagnostics_values(m)) for t, m in diags[::30] + diags[-1:]]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cameras", type=int, nargs="+", default=[2, 4, 6])
    ap.add_argument("--fps", type=float, default=10.0)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--timing", default="causal")
    ap.add_argument("--scale", type=float, default=0.5)
    ap.add_argument("--outlier-threshold", type=float, default=0.0, help="the node's outlier_threshold (0 = off)")
    ap.add_argument("--inference", nargs="+", default=["auto"], help="the node's inference: auto torch onnxruntime")
    ap.add_argument("--hostile", type=int, default=None,
                    help="index of a camera whose every message is randomly broken (soak: --duration 1800)")
    ap.add_argument("--out", type=Path, default=REPO / "out/bench/node_speed.json")
    args = ap.parse_args()
    rows = [run_one(n, args.fps, args.duration, args.timing, args.scale, args.outlier_threshold, args.hostile, inf)
            for n in args.cameras for inf in args.inference]
    print("| cameras | inference | camera rates | output rate | good cameras' poses/s | latency p50 / p95 / p99 | "
          "frames without pose | node CPU | RSS start -> end |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        la = r["latency_ms"]
        print(f"| {r['cameras']} | {r['inference']} | {r['cameras']} x {r['fps_per_camera']:g} = "
              f"{r['sum_camera_rate_hz']:g} Hz | {r['output_rate_hz']:.1f} poses/s | {r['good_output_rate_hz']:.1f} | "
              f"{la[50]:.0f} / {la[95]:.0f} / {la[99]:.0f} ms | "
              f"{r['dropped_frames']}/{r['frames_sent']} | {r['node_cpu_percent']:.0f} % | "
              f"{r['node_rss_mib_start_end'][0]:.0f} -> {r['node_rss_mib_start_end'][1]:.0f} MiB |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows,
                                    "git": git_hash()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
