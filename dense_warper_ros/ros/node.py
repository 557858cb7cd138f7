"""The DenseWarper node: unsynchronized cameras in, one skeleton per captured frame out.

Callbacks only store (image messages into a `FrameScheduler`, CameraInfo as the latest per
camera). In live mode two worker threads overlap the two halves of the per-frame work: one
decodes, looks up the camera's extrinsics at the capture stamp and runs the 2D backbone, the other
fuses the buffered heatmaps into poses and publishes (torch releases the GIL, so on a 2-core CPU
the backbone of frame k+1 runs while frame k is fused). Offline mode does both on one thread, in
order, so its output is the same as the bag evaluator's. Every dropped frame is counted per camera and cause, logged once per
cause (then throttled) and reported in /diagnostics; nothing in the input can stop the node.
"""
from __future__ import annotations

import queue
import sys
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from visualization_msgs.msg import MarkerArray

from dense_warper_ros.frames import Drop, FrameProcessor, Prepared, stamp_to_ns
from dense_warper_ros.msg import Skeleton3DArray
from dense_warper_ros.pipeline import PosePipeline, build_pipeline
from dense_warper_ros.ros import params
from dense_warper_ros.ros.conversions import markers_for, skeletons_to_msg
from dense_warper_ros.ros.tf_source import make_tf_source
from dense_warper_ros.scheduler import FrameScheduler

_FLUSH = object()        # worker sentinel: process what the buffer holds back


@dataclass
class CameraState:
    name: str
    info_error: str = ""
    last_stamp_ns: int | None = None
    last_recv: float | None = None            # wall time of the last image
    recv_times: deque = field(default_factory=lambda: deque(maxlen=200))
    drops: Counter = field(default_factory=Counter)
    frames: int = 0
    outlier_joints: int = 0                   # joints of this camera dropped by outlier_threshold


class DenseWarperNode(Node):
    def __init__(self, *, pipeline: PosePipeline | None = None, **kwargs):
        super().__init__("dense_warper", **kwargs)
        params.declare(self)
        self.cfg = params.read(self)
        if self.cfg.cpu_threads > 0:
            import torch
            torch.set_num_threads(self.cfg.cpu_threads)   # process-wide; each worker thread uses it
        self.pipeline = pipeline or build_pipeline(
            num_cameras=len(self.cfg.cameras), timing=self.cfg.timing, offline=self.cfg.mode == "offline",
            model_config=self.cfg.model_config, weights=self.cfg.weights,
            outlier_threshold=self.cfg.outlier_threshold, backbone=self.cfg.backbone,
            backbone_weights=self.cfg.backbone_weights, device=self.cfg.device,
            min_views=self.cfg.min_views, max_view_age_s=self.cfg.max_view_age,
            clock_jump_s=self.cfg.clock_jump)
        self.cams = [CameraState(n) for n in self.cfg.cameras]
        self.tf = make_tf_source(self, extrinsics_file=self.cfg.extrinsics_file, world_frame=self.cfg.world_frame)
        self.processor = FrameProcessor(
            pipeline=self.pipeline, cameras=list(self.cfg.cameras), world_frame=self.cfg.world_frame,
            tf_lookup=self.tf.lookup, tf_timeout_s=self.cfg.tf_timeout, clock_jump_s=self.cfg.clock_jump,
            on_clock_jump=self._on_clock_jump)
        live = self.cfg.mode == "live"
        self._sched = FrameScheduler(len(self.cfg.cameras), self.cfg.queue_size if live else None)
        self._handoff: queue.Queue = queue.Queue(maxsize=2)    # live: backbone -> fusion thread
        self._stop = threading.Event()
        self._last_input = time.monotonic()
        self._logged: dict[str, float] = {}
        self.stats: Counter = Counter()
        self.latencies: deque = deque(maxlen=2000)     # capture stamp -> publish, s
        self.backbone_times: deque = deque(maxlen=2000)   # decode + TF + backbone per frame, s
        self.fusion_times: deque = deque(maxlen=2000)     # buffer + model + publish per frame, s
        self.out_times: deque = deque(maxlen=500)      # wall times of published poses
        self._was_tracking = False

        self.pub_skeletons = self.create_publisher(Skeleton3DArray, "~/skeletons", 50)
        self.pub_markers = self.create_publisher(MarkerArray, "~/markers", 10) if self.cfg.publish_markers else None
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10) if self.cfg.publish_diagnostics else None

        qos = QoSProfile(depth=self.cfg.qos_depth, history=HistoryPolicy.KEEP_LAST,
                         reliability=ReliabilityPolicy.RELIABLE if self.cfg.qos_reliability == "reliable"
                         else ReliabilityPolicy.BEST_EFFORT)
        info_qos = QoSProfile(depth=5, reliability=qos.reliability)
        compressed = self.cfg.image_transport == "compressed"
        for i, name in enumerate(self.cfg.cameras):
            topic = f"{name}/image_raw" + ("/compressed" if compressed else "")
            self.create_subscription(CompressedImage if compressed else Image, topic,
                                     lambda m, i=i: self._on_image(i, m), qos)
            self.create_subscription(CameraInfo, f"{name}/camera_info", lambda m, i=i: self._on_info(i, m), info_qos)
        self.create_timer(1.0, self._publish_diagnostics)
        if self.cfg.mode == "offline":
            self.create_timer(min(0.1, self.cfg.flush_after / 2), self._maybe_flush)
        self._workers = [threading.Thread(target=self._work, name="dense_warper_worker", daemon=True)]
        if live:
            self._workers.append(threading.Thread(target=self._fuse_loop, name="dense_warper_fusion", daemon=True))
        for w in self._workers:
            w.start()
        self.get_logger().info(
            f"{len(self.cams)} cameras {list(self.cfg.cameras)}, mode={self.cfg.mode}, timing={self.cfg.timing}, "
            f"model={self.cfg.model_config}, backbone={self.cfg.backbone}, device={self.pipeline.device}, "
            f"extrinsics from {self.tf.kind}")

    # --- callbacks: store only --------------------------------------------------------------------
    def _on_info(self, i: int, msg: CameraInfo) -> None:
        self.processor.set_info(i, msg)

    def _on_image(self, i: int, msg) -> None:
        cam = self.cams[i]
        cam.last_recv = time.monotonic()
        cam.recv_times.append(cam.last_recv)
        self._last_input = cam.last_recv
        for _ in self._sched.put(i, stamp_to_ns(msg.header.stamp), msg):   # live: newest of this camera wins
            self._drop(i, "superseded", "inference is slower than the cameras; a newer frame of this camera replaced it")

    def _maybe_flush(self) -> None:
        if self.pipeline.buffer.pending and time.monotonic() - self._last_input > self.cfg.flush_after:
            self._last_input = time.monotonic()
            self._sched.put(None, 0, _FLUSH)

    # --- workers ---------------------------------------------------------------------------------
    def _guarded(self, fn, *args):
        """fn(*args), or None after an unexpected exception: a bug must not kill a worker."""
        try:
            return fn(*args)
        except Exception as e:
            self.stats["errors"] += 1
            self._log_once("error", f"worker error: {type(e).__name__}: {e}", error=True)
            return None

    def _work(self) -> None:
        """Offline: the whole frame, in order. Live: decode + TF + backbone, then hand off."""
        while not self._stop.is_set():
            got = self._sched.get(timeout=0.2)
            if got is None:
                continue
            i, msg = got
            if msg is _FLUSH:
                self._guarded(lambda: self._publish(self.pipeline.flush()))
                continue
            p = self._guarded(self._prepare, i, msg)
            if p is None:
                continue
            if self._sched.live:
                while not self._stop.is_set():
                    try:
                        self._handoff.put(p, timeout=0.2)       # waits while fusion is behind
                        break
                    except queue.Full:
                        continue
            else:
                self._guarded(self._fuse, p)

    def _fuse_loop(self) -> None:
        while not self._stop.is_set():
            try:
                p = self._handoff.get(timeout=0.2)
            except queue.Empty:
                continue
            self._guarded(self._fuse, p)

    def _prepare(self, i: int, msg) -> Prepared | None:
        cam = self.cams[i]
        t0 = time.perf_counter()
        try:
            p = self.processor.prepare(i, msg)
            cam.info_error = ""
        except Drop as e:
            if e.cause in ("uncalibrated", "camera_info_zero_size", "unknown_distortion", "bad_camera_info"):
                cam.info_error = str(e)
            self._drop(i, e.cause, str(e))
            return None
        self.backbone_times.append(time.perf_counter() - t0)
        cam.frames += 1
        cam.last_stamp_ns = p.stamp_ns
        return p

    def _fuse(self, p: Prepared) -> None:
        t0 = time.perf_counter()
        self._publish(self.processor.push(p))
        self.fusion_times.append(time.perf_counter() - t0)

    def _on_clock_jump(self) -> None:
        self.stats["clock_jumps"] += 1
        self._log_once("clock_jump", "stamps jumped back (looped bag?): buffer and TF history reset")
        self.tf.clear()

    def _publish(self, results) -> None:
        now_ns = self.get_clock().now().nanoseconds
        for r in results:
            self.pub_skeletons.publish(skeletons_to_msg([r], frame_id=self.cfg.world_frame, stamp_ns=r.stamp_ns))
            if self.pub_markers is not None:
                self.pub_markers.publish(markers_for([r], frame_id=self.cfg.world_frame, stamp_ns=r.stamp_ns,
                                                     lifetime_s=self.cfg.marker_lifetime))
            self.latencies.append((now_ns - r.stamp_ns) * 1e-9)
            self.out_times.append(time.monotonic())
            self.stats["poses"] += 1
            if r.rejected is not None:           # a camera often out of line with the others: calibration?
                for cam, rejected in zip(self.cams, r.rejected):
                    cam.outlier_joints += int(rejected.sum())
            self._was_tracking = True
        if self.pipeline.lost and self._was_tracking:
            self._was_tracking = False
            if self.pub_markers is not None:
                self.pub_markers.publish(markers_for([], frame_id=self.cfg.world_frame, stamp_ns=now_ns, lost=True))

    # --- accounting ------------------------------------------------------------------------------
    def _log_once(self, key: str, text: str, *, error: bool = False, every_s: float = 10.0) -> None:
        now = time.monotonic()
        if now - self._logged.get(key, -1e9) >= every_s:
            self._logged[key] = now
            (self.get_logger().error if error else self.get_logger().warning)(text)

    def _drop(self, i: int, cause: str, text: str) -> None:
        cam = self.cams[i]
        cam.drops[cause] += 1
        self.stats[f"drop_{cause}"] += 1
        self._log_once(f"{cam.name}:{cause}", f"{cam.name}: frame dropped ({cause}): {text} "
                       f"[{cam.drops[cause]} so far]")

    def _publish_diagnostics(self) -> None:
        if self.pub_diag is None:
            return
        now = time.monotonic()
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        for k, cam in enumerate(self.cams):
            recent = [t for t in cam.recv_times if now - t <= 5.0]
            rate = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 and recent[-1] > recent[0] else 0.0
            age = now - cam.last_recv if cam.last_recv else float("inf")
            level = DiagnosticStatus.OK
            msg = "ok"
            if cam.last_recv is None or age > 2.0:
                level, msg = DiagnosticStatus.WARN, "no images" if cam.last_recv is None else f"stalled {age:.1f} s"
            info = self.processor.infos[k]
            tf_ok = self.processor.tf_ok[k]
            if info is None or cam.info_error:
                level, msg = DiagnosticStatus.ERROR, cam.info_error or "no CameraInfo"
            elif not tf_ok and cam.frames == 0 and cam.drops["tf_missing"]:
                level, msg = DiagnosticStatus.ERROR, "no transform to world"
            values = {"rate_hz": f"{rate:.2f}", "age_s": f"{age:.3f}", "frames": str(cam.frames),
                      "camera_info": "ok" if info is not None and not cam.info_error else (cam.info_error or "missing"),
                      "tf": "ok" if tf_ok else "missing", "outlier_joints": str(cam.outlier_joints)}
            values.update({f"drops_{k}": str(v) for k, v in sorted(cam.drops.items())})
            arr.status.append(DiagnosticStatus(level=level, name=f"dense_warper: camera {cam.name}", message=msg,
                                               hardware_id=cam.name,
                                               values=[KeyValue(key=k, value=v) for k, v in values.items()]))
        lat = np.array(self.latencies) if self.latencies else np.zeros(1)
        outs = [t for t in self.out_times if now - t <= 5.0]
        out_rate = (len(outs) - 1) / (outs[-1] - outs[0]) if len(outs) > 1 and outs[-1] > outs[0] else 0.0
        values = {"device": str(self.pipeline.device), "mode": self.cfg.mode, "timing": self.cfg.timing,
                  "output_rate_hz": f"{out_rate:.2f}", "queue_depth": str(len(self._sched) + self._handoff.qsize()),
                  "buffer_pending": str(self.pipeline.buffer.pending),
                  "latency_p50_s": f"{np.percentile(lat, 50):.4f}", "latency_p95_s": f"{np.percentile(lat, 95):.4f}",
                  "latency_p99_s": f"{np.percentile(lat, 99):.4f}", "poses": str(self.stats["poses"]),
                  "backbone_p50_s": f"{_p50(self.backbone_times):.4f}", "fusion_p50_s": f"{_p50(self.fusion_times):.4f}",
                  "extrinsics": self.tf.kind}
        values.update({f"buffer_{k}": str(v) for k, v in sorted(self.pipeline.buffer.stats.items())})
        values.update({k: str(v) for k, v in sorted(self.stats.items()) if k != "poses"})
        arr.status.append(DiagnosticStatus(level=DiagnosticStatus.OK if not self.stats["errors"] else DiagnosticStatus.WARN,
                                           name="dense_warper: inference", message="running", hardware_id="dense_warper",
                                           values=[KeyValue(key=k, value=v) for k, v in values.items()]))
        self.pub_diag.publish(arr)

    def stop(self) -> None:
        self._stop.set()
        self._sched.close()
        for w in self._workers:
            w.join(timeout=5.0)


def _p50(x) -> float:
    return float(np.percentile(np.array(x), 50)) if x else float("nan")


def main(args=None) -> int:
    rclpy.init(args=args)
    node = None
    try:
        node = DenseWarperNode()
        rclpy.spin(node)
    except params.ParameterError as e:
        print(f"dense_warper: {e}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.stop()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
