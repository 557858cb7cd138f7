"""Node-level benchmark over real DDS: a publisher process streams N cameras (interleaved stamps =
wall-clock capture times) at a set per-camera rate into the node in live mode; we measure the
output rate (instants and poses), capture -> publish latency percentiles, frames without output,
the CPU and memory of the node and its fusion process (from /proc) and, from its last
/diagnostics, its tracker counts and where the time goes (backbone vs fusion).

Workloads (one row each, per camera count):
  --people 1 2        images: pose2sim's single-person demo (1) or its two-person recording (2),
                      same 4-camera rig (more cameras repeat its 4 views); --max-people sets the
                      node's max_people (default 1 for one person, 4 otherwise; a list compares).
  --keypoints-people  2D people in (People2D on <cam>/people, no 2D network): the synthetic
                      multi-person scene of data.multi_person on the default ring rig; measures
                      association + tracks + batched fusion alone (max_people 4 unless given).

    python bench/node_speed.py --cameras 2 4 6 --fps 10 --duration 30 [--timing causal]
    python bench/node_speed.py --cameras 4 --people 1 2 [--max-people 1 4]
    python bench/node_speed.py --cameras 4 --keypoints-people 1 2 3

Prints a markdown table and writes out/bench/node_speed.json.
"""
from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dense_warper_ros.provenance import git_hash  # noqa: E402
from dense_warper_ros.ros.mutations import Mutator  # noqa: E402

# From the node's last /diagnostics ("dense_warper" status): the tracker and the time split.
TRACKER_KEYS = ("people_tracked", "births", "reidentified", "reacquired", "deaths", "detector_runs", "detector_reruns",
                "association_rejections")
TIME_KEYS = ("backbone_p50_s", "fusion_p50_s")


@dataclass(frozen=True)
class Scenario:
    """One row's workload: what the node is fed, how many people are in it, and the node's limit."""

    input: str                 # "images" | "keypoints"
    people: int                # people in the scene
    max_people: int            # the node's max_people
    inference: str = "auto"    # the node's inference (images only; keypoints run no 2D network)

    @property
    def label(self) -> str:
        return f"{self.input}, {self.people} p, max {self.max_people}"


@dataclass
class Feed:
    """A rig to stream: `rec` gives names, CameraInfo and /tf_static; `items[c]` are camera c's
    captures in order (images or lists of Person2D), replayed at wall-clock stamps by `to_msg`."""

    rec: Any                                   # data.recording.Recording
    items: list[list]
    msg_type: type
    suffix: str                                # the node's topic is /<camera>/<suffix>
    to_msg: Callable[[int, int, Any], Any]     # (camera, stamp ns, item) -> message
    source: str

    def index(self, c: int, j: int) -> int:
        """Which of camera c's captures is the stream's j-th: played forwards then backwards (ping-pong),
        since a loop would teleport people at each wrap, and the tracker would count births and deaths
        of its own."""
        n = len(self.items[c])
        u = j % max(2 * n - 2, 1)
        return u if u < n else 2 * n - 2 - u

    def item(self, c: int, j: int) -> Any:
        """Camera c's j-th capture of the stream (`index`)."""
        return self.items[c][self.index(c, j)]


class _Wire:
    """Messages serialized once and published as bytes with each send's stamp written in: what the
    node receives is the same, and the bench's publisher does not build a 1.5 MB Python message and
    serialize it 60 times a second (rclpy's conversion), work a camera driver does not do."""

    def __init__(self):
        from rclpy.serialization import serialize_message
        self._serialize = serialize_message
        self._bytes: dict = {}

    def stamped(self, key, make: Callable[[], Any], stamp_ns: int) -> bytes:
        """`make()`'s message, serialized (once per key), its header stamp set to stamp_ns."""
        if key not in self._bytes:
            raw = self._serialize(make())
            if raw[:2] != b"\x00\x01":                     # CDR, little-endian: the stamp follows at 4
                raise ValueError(f"unexpected CDR encapsulation {raw[:4].hex()}")
            self._bytes[key] = bytearray(raw)
        buf = self._bytes[key]
        buf[4:12] = struct.pack("<iI", stamp_ns // 1_000_000_000, stamp_ns % 1_000_000_000)
        return bytes(buf)


@dataclass
class Capture:
    """What the rig's side saw: each output Skeleton3DArray (one per instant), the stamps it sent,
    the node's /diagnostics and /proc samples."""

    arrivals: list[int] = field(default_factory=list)      # wall ns of each output message
    people: list[int] = field(default_factory=list)        # len(m.skeletons) of each
    latency_s: list[float] = field(default_factory=list)
    stamps: set[int] = field(default_factory=set)          # instants with output
    sent: set[int] = field(default_factory=set)            # every stamp published
    good: set[int] = field(default_factory=set)            # stamps of well-behaved cameras
    good_got: int = 0
    diags: list = field(default_factory=list)              # (monotonic s, DiagnosticArray)
    samples: list = field(default_factory=list)            # (s since start, cpu s, RSS MiB)

    def on_skeletons(self, m) -> None:
        now = time.time_ns()
        stamp = m.header.stamp.sec * 10**9 + m.header.stamp.nanosec
        self.arrivals.append(now)
        self.people.append(len(m.skeletons))
        self.latency_s.append((now - stamp) * 1e-9)
        self.stamps.add(stamp)
        self.good_got += stamp in self.good


def proc_stats(pid: int) -> tuple[float, float]:
    """(cpu seconds, RSS MiB) of a process and its child processes (the node's fusion process)."""
    cpu = rss = 0.0
    for p in [pid] + _children(pid):
        try:
            stat = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            status = Path(f"/proc/{p}/status").read_text().splitlines()
        except OSError:                      # ended between the listing and the read
            continue
        cpu += (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
        rss += next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024
    return cpu, rss


def _children(pid: int) -> list[int]:
    """Pids whose parent is `pid`."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d.name))
            except (OSError, IndexError, ValueError):
                continue
    return out


# --- what is streamed ------------------------------------------------------------------------------
def _repeat_rig(cameras: list, num_cams: int) -> tuple[list[str], list]:
    """Names and cameras of num_cams cameras, the given ones repeated (more cameras than views)."""
    return [f"cam{i}" for i in range(num_cams)], [cameras[i % len(cameras)] for i in range(num_cams)]


def image_feed(num_cams: int, people: int, scale: float) -> Feed:
    """pose2sim's real frames: the single-person demo, or the two-person recording (same rig)."""
    from dense_warper_ros.data.pose2sim_recording import pose2sim_recording
    from dense_warper_ros.data.recording import Recording
    from dense_warper_ros.ros import recording_msgs as rm
    from sensor_msgs.msg import Image

    root = None if people == 1 else REPO / "data" / "pose2sim_multi"
    base = pose2sim_recording(num_frames=8 * 4, scale=scale, with_truth=False, interleaved=False, root=root)
    V = len(base.cameras)
    names, cams = _repeat_rig(base.cameras, num_cams)
    imgs = [[img for c, _, img in base.frames if c == i % V] for i in range(num_cams)]
    rec = Recording(names=names, cameras=cams, frames=[(0, 1, imgs[0][0])])
    return Feed(rec, imgs, Image, "image_raw", lambda c, s, img: rm.image(rec, c, s, img, compressed=False),
                base.source)


def keypoint_feed(num_cams: int, people: int, fps: float) -> Feed:
    """The synthetic multi-person scene's 2D people (detector-like noise, misses, false detections,
    occlusions) on the default ring rig with num_cams cameras, captured at the bench's rate."""
    from dense_warper_ros.data.multi_person import MultiPersonConfig, make_scene
    from dense_warper_ros.data.recording import Recording
    from dense_warper_ros.data.rigs import ring_rig
    from dense_warper_ros.data.schedules import ScheduleConfig, interleaved
    from dense_warper_ros.msg import People2D
    from dense_warper_ros.ros.conversions import people_to_msg

    cams = ring_rig(num_cams)                    # make_rig() (H36M_LIKE) with the bench's camera count
    scene = make_scene(MultiPersonConfig(num_people=people))
    sched = interleaved(ScheduleConfig(rate_hz=fps * num_cams), num_cams, 0.0, scene.config.duration_s)
    frames = scene.observations(cams, sched)
    items = [[f.people for f in frames if f.camera == c] for c in range(num_cams)]
    names = [f"cam{i}" for i in range(num_cams)]
    rec = Recording(names=names, cameras=cams, frames=[(0, 1, np.zeros((1, 1, 3), np.uint8))])

    def to_msg(c: int, stamp: int, persons: list) -> People2D:
        return people_to_msg(persons, frame_id=rec.frame_id(c), stamp_ns=stamp, width=cams[c].width,
                             height=cams[c].height)
    return Feed(rec, items, People2D, "people", to_msg,
                f"data.multi_person scene, {people} people, {scene.config.duration_s:g} s (ping-ponged), "
                f"ring rig of {num_cams}")


def make_feed(s: Scenario, num_cams: int, fps: float, scale: float) -> Feed:
    if s.input == "keypoints":
        return keypoint_feed(num_cams, s.people, fps)
    return image_feed(num_cams, s.people, scale)


def _break(mut: Mutator, feed: Feed, info, msg) -> tuple:
    """A hostile camera's (CameraInfo, frame): one of the two broken."""
    if mut.rng.random() < 0.2:
        return mut.info(info), msg
    return info, (mut.people(msg) if feed.suffix == "people" else mut.image(msg))


# --- one run ---------------------------------------------------------------------------------------
def node_params(s: Scenario, names: list[str], timing: str, outlier_threshold: float,
                extra: dict | None = None) -> dict:
    p = dict(cameras=names, mode="live", timing=timing, qos_reliability="best_effort", device="auto",
             tf_timeout=0.05, outlier_threshold=outlier_threshold, max_people=s.max_people,
             **(dict(input="keypoints") if s.input == "keypoints" else dict(input="images", inference=s.inference)))
    return {**p, **(extra or {})}                      # --param overrides any of these


def _stream(receiver, pub, pubs: list, feed: Feed, cap: Capture, pid: int, fps: float, duration: float,
            hostile: int | None) -> tuple[int, float, float]:
    """Publish camera k % N's next capture every 1 / (fps N) s for `duration` s, stamped now, after
    its CameraInfo -> (frames sent, start monotonic s, this process's CPU share while streaming). The
    node's output is received (`receiver`'s subscriptions) on a thread of its own that sleeps until
    a message comes, and the publishing loop sleeps until the next capture is due: polling for both
    in one loop would take CPU that the node shares (docs/experiments.md). The node is sampled
    every 5 s."""
    from dense_warper_ros.ros import recording_msgs as rm

    n, mut, wire = len(pubs), Mutator(seed=1), _Wire()
    period = 1.0 / (fps * n)
    with _receiving(receiver):
        cpu0 = time.process_time()
        t_start = next_sample = time.monotonic()
        k = 0
        while time.monotonic() - t_start < duration:
            time.sleep(max(0.0, t_start + k * period - time.monotonic()))
            c, stamp = k % n, time.time_ns()                    # capture time = now
            if c == hostile:                                    # every message of this camera is broken
                info, msg = rm.camera_info(feed.rec, c, stamp), feed.to_msg(c, stamp, feed.item(c, k // n))
                info, msg = _break(mut, feed, info, msg)
            else:
                info = wire.stamped(("info", c), lambda: rm.camera_info(feed.rec, c, 0), stamp)
                msg = wire.stamped((c, feed.index(c, k // n)), lambda: feed.to_msg(c, 0, feed.item(c, k // n)),
                                   stamp)
                cap.good.add(stamp)
            cap.sent.add(stamp)
            pub.info_pubs[c].publish(info)
            pubs[c].publish(msg)
            k += 1
            if time.monotonic() >= next_sample:
                cap.samples.append((time.monotonic() - t_start, *proc_stats(pid)))
                next_sample += 5.0
        return k, t_start, (time.process_time() - cpu0) / (time.monotonic() - t_start)


@contextmanager
def _receiving(node):
    """`node`'s subscriptions served on a background thread while the block runs."""
    from rclpy.executors import SingleThreadedExecutor

    ex, stop = SingleThreadedExecutor(), threading.Event()
    ex.add_node(node)

    def serve() -> None:
        while not stop.is_set():
            ex.spin_once(timeout_sec=0.1)

    th = threading.Thread(target=serve, name="bench_receive", daemon=True)
    th.start()
    try:
        yield
    finally:
        stop.set()
        th.join()
        ex.remove_node(node)
        ex.shutdown()


def run_one(num_cams: int, fps: float, duration: float, timing: str, scale: float, scenario: Scenario,
            outlier_threshold: float = 0.0, hostile: int | None = None, extra: dict | None = None) -> dict:
    """Start the node, stream the scenario's feed into it live, and summarise what came out."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from dense_warper_ros.msg import Skeleton3DArray
    from dense_warper_ros.ros.node_process import NodeProcess, spin_until, wait_for_subscribers
    from dense_warper_ros.ros.rig_publisher import RigPublisher
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    feed = make_feed(scenario, num_cams, fps, scale)
    rclpy.init()
    # The rig's publishers and the output's subscriptions on two nodes: the thread that receives the
    # output then walks only its own two subscriptions on each wake-up, not the rig's 2 N + 1
    # publishers' event handlers as well.
    node, receiver = rclpy.create_node("bench_rig"), rclpy.create_node("bench_receiver")
    cap = Capture()
    receiver.create_subscription(Skeleton3DArray, "/dense_warper/skeletons", cap.on_skeletons, 100)
    receiver.create_subscription(DiagnosticArray, "/diagnostics", lambda m: cap.diags.append((time.monotonic(), m)),
                                 10)
    proc = NodeProcess(node_params(scenario, feed.rec.names, timing, outlier_threshold, extra))
    pub = RigPublisher(node, feed.rec, reliable=False, depth=5)
    qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT)
    pubs = pub.img_pubs if feed.suffix == "image_raw" else \
        [node.create_publisher(feed.msg_type, f"/{n}/{feed.suffix}", qos) for n in feed.rec.names]
    for p in pubs:
        wait_for_subscribers(node, p, 1, 120)
    pub.publish_static()
    time.sleep(1.0)
    cpu0, _ = proc_stats(proc.proc.pid)
    sent, t_start, rig_cpu = _stream(receiver, pub, pubs, feed, cap, proc.proc.pid, fps, duration, hostile)
    spin_until(receiver, lambda: False, 1.0)
    cpu1, rss1 = proc_stats(proc.proc.pid)
    elapsed = time.monotonic() - t_start
    log = proc.stop()
    node.destroy_node()
    receiver.destroy_node()
    rclpy.try_shutdown()
    return summarize(cap, scenario, feed, num_cams=num_cams, fps=fps, timing=timing, hostile=hostile, sent=sent,
                     elapsed=elapsed, cpu_s=cpu1 - cpu0, rig_cpu=rig_cpu, rss_end=rss1, t_start=t_start, log=log)


# --- the report ------------------------------------------------------------------------------------
def _steady_rate(arrivals: list[int], counts: list[int]) -> float:
    """counts per second over the arrivals after the first 2 s (start-up excluded)."""
    if not arrivals:
        return 0.0
    keep = [i for i, t in enumerate(arrivals) if t >= arrivals[0] + 2e9]
    if len(keep) <= 2:
        return 0.0
    span = (arrivals[keep[-1]] - arrivals[keep[0]]) * 1e-9
    return sum(counts[i] for i in keep[1:]) / span


def _last_diagnostics(cap: Capture) -> dict[str, str]:
    """The node's own status ("dense_warper") in its last /diagnostics, {} if none came."""
    from dense_warper_ros.ros.node_process import diagnostics_values

    for _, m in reversed(cap.diags):
        values = diagnostics_values(m).get("dense_warper")
        if values:
            return values
    return {}


def summarize(cap: Capture, s: Scenario, feed: Feed, *, num_cams: int, fps: float, timing: str,
              hostile: int | None, sent: int, elapsed: float, cpu_s: float, rig_cpu: float, rss_end: float,
              t_start: float, log: str) -> dict:
    """One row: rates, latency, frames without output, node resources and the tracker's counts."""
    from dense_warper_ros.ros.node_process import diagnostics_values

    L = np.array(cap.latency_s[len(cap.latency_s) // 10:]) * 1000 if cap.latency_s else np.full(1, np.nan)
    rss = [x[2] for x in cap.samples]
    diag = _last_diagnostics(cap)
    return {"scenario": asdict(s), "label": s.label, "source": feed.source, "cameras": num_cams,
            "fps_per_camera": fps, "sum_camera_rate_hz": fps * num_cams, "timing": timing,
            "inference": s.inference if s.input == "images" else "none (2D people in)",
            "hostile_camera": hostile, "good_frames_sent": len(cap.good), "good_instants": cap.good_got,
            "good_output_rate_hz": cap.good_got / elapsed, "frames_sent": sent,
            "instants_received": len(cap.arrivals), "poses_received": int(sum(cap.people)),
            "output_rate_hz": _steady_rate(cap.arrivals, [1] * len(cap.arrivals)),
            "poses_per_s": _steady_rate(cap.arrivals, cap.people),
            "mean_people_per_instant": float(np.mean(cap.people)) if cap.people else 0.0,
            "latency_ms": {p: float(np.percentile(L, p)) for p in (50, 95, 99)},
            "dropped_frames": sent - len(cap.stamps & cap.sent), "node_cpu_percent": 100 * cpu_s / elapsed,
            "rig_cpu_percent": 100 * rig_cpu,
            "node_rss_mib_start_end": [rss[0] if rss else rss_end, rss_end], "rss_samples": cap.samples,
            "tracker": {k: int(diag[k]) if k in diag else None for k in TRACKER_KEYS},
            "time_split_s": {k: float(diag[k]) if k in diag else None for k in TIME_KEYS},
            "worker_errors": [line for line in log.splitlines() if "worker error" in line][:50],
            "diagnostics": [(t - t_start, diagnostics_values(m)) for t, m in cap.diags[::30] + cap.diags[-1:]]}


def _n(v: int | None) -> str:
    return "-" if v is None else str(v)


def _reids(tracker: dict) -> str:
    """Tracks that came back under their old id (re-identified or reacquired): with births, they
    balance the deaths, so deaths > births is not a leak."""
    got = [tracker[k] for k in ("reidentified", "reacquired") if tracker[k] is not None]
    return str(sum(got)) if got else "-"


def _ms(v: float | None) -> str:
    return "-" if v is None or not np.isfinite(v) else f"{v * 1000:.0f}"


def table(rows: list[dict], hostile: bool) -> str:
    """Markdown; tracker counts are the node's totals at its last /diagnostics ('-': not reported,
    e.g. the single-person pipeline has no detector or association)."""
    good = " good cameras' instants/s |" if hostile else ""
    out = ["| scenario | cameras | inference | camera rates | instants/s | poses/s | people/instant |" + good +
           " latency p50 / p95 / p99 | frames without output | node CPU | rig CPU | RSS start -> end | "
           "tracked / births / re-ids / deaths | detector runs / reruns | assoc. rejections | backbone / fusion p50 |",
           "|---" * (16 + bool(hostile)) + "|"]
    for r in rows:
        la, tr, ts = r["latency_ms"], r["tracker"], r["time_split_s"]
        out.append(
            f"| {r['label']} | {r['cameras']} | {r['inference']} | {r['cameras']} x {r['fps_per_camera']:g} = "
            f"{r['sum_camera_rate_hz']:g} Hz | {r['output_rate_hz']:.1f} | {r['poses_per_s']:.1f} | "
            f"{r['mean_people_per_instant']:.2f} |" + (f" {r['good_output_rate_hz']:.1f} |" if hostile else "") +
            f" {la[50]:.0f} / {la[95]:.0f} / {la[99]:.0f} ms | {r['dropped_frames']}/{r['frames_sent']} | "
            f"{r['node_cpu_percent']:.0f} % | {r.get('rig_cpu_percent', float('nan')):.0f} % | "
            f"{r['node_rss_mib_start_end'][0]:.0f} -> "
            f"{r['node_rss_mib_start_end'][1]:.0f} MiB | {_n(tr['people_tracked'])} / {_n(tr['births'])} / "
            f"{_reids(tr)} / {_n(tr['deaths'])} | {_n(tr['detector_runs'])} / {_n(tr['detector_reruns'])} | "
            f"{_n(tr['association_rejections'])} | {_ms(ts['backbone_p50_s'])} / {_ms(ts['fusion_p50_s'])} ms |")
    return "\n".join(out)


# --- command line ----------------------------------------------------------------------------------
def scenarios(args: argparse.Namespace) -> list[Scenario]:
    """Image rows (people x max_people x inference), then keypoint rows (people x max_people).
    Neither --people nor --keypoints-people: one person on images, as the benchmark always did."""
    people = args.people if args.people is not None else ([] if args.keypoints_people else [1])
    out = [Scenario("images", p, m, inf) for p in people
           for m in (args.max_people or [1 if p == 1 else 4]) for inf in args.inference]
    return out + [Scenario("keypoints", p, m) for p in args.keypoints_people or [] for m in (args.max_people or [4])]


def _param(text: str) -> tuple[str, Any]:
    """NAME=VALUE -> (name, value as YAML reads it: 1 -> int, 0.5 -> float, true -> bool)."""
    import yaml
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, yaml.safe_load(value)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cameras", type=int, nargs="+", default=[2, 4, 6])
    ap.add_argument("--fps", type=float, default=10.0)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--timing", default="causal")
    ap.add_argument("--scale", type=float, default=0.5)
    ap.add_argument("--outlier-threshold", type=float, default=0.0, help="the node's outlier_threshold (0 = off)")
    ap.add_argument("--inference", nargs="+", default=["auto"], help="the node's inference: auto torch onnxruntime")
    ap.add_argument("--people", type=int, nargs="+", choices=[1, 2], default=None,
                    help="images: 1 = pose2sim single-person demo, 2 = its two-person recording (default 1)")
    ap.add_argument("--max-people", type=int, nargs="+", default=None,
                    help="the node's max_people (default: images 1 for one person, else 4; keypoints 4)")
    ap.add_argument("--keypoints-people", type=int, nargs="+", default=None,
                    help="2D people in (no images): the synthetic multi-person scene with this many people")
    ap.add_argument("--hostile", type=int, default=None,
                    help="index of a camera whose every message is randomly broken (soak: --duration 1800)")
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", type=_param,
                    help="any other node parameter (repeatable), e.g. --param fusion_processes=1")
    ap.add_argument("--out", type=Path, default=REPO / "out/bench/node_speed.json")
    return ap.parse_args()


def main() -> int:
    args = parse_args()
    rows = [run_one(n, args.fps, args.duration, args.timing, args.scale, s, args.outlier_threshold, args.hostile,
                    dict(args.param))
            for n in args.cameras for s in scenarios(args)]
    print(table(rows, args.hostile is not None))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows,
                                    "git": git_hash()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
