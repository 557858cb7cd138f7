"""The DenseWarper node: unsynchronized cameras in, one skeleton per captured frame out.

Callbacks only store (image messages into a `FrameScheduler`, CameraInfo as the latest per
camera). In live mode two worker threads overlap the two halves of the per-frame work: one
decodes, looks up the camera's extrinsics at the capture stamp and runs the 2D backbone, the other
fuses the buffered heatmaps into poses and publishes (torch releases the GIL, so on a 2-core CPU
the backbone of frame k+1 runs while frame k is fused). Offline mode does both on one thread, in
order, so its output is the same as the bag evaluator's. Every dropped frame is counted per camera
and cause, logged once per cause (then throttled) and reported in /diagnostics; nothing in the
input can stop the node.
"""
from __future__ import annotations

import queue
import sys
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_policy_name_from_kind
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from visualization_msgs.msg import MarkerArray

from dense_warper_ros.allocator import keep_freed_memory
from dense_warper_ros.msg import People2D, Skeleton3DArray
from dense_warper_ros.pipeline import PeopleOptions, PosePipeline, build_pipeline
from dense_warper_ros.ros import params
from dense_warper_ros.ros.spin import run_node
from dense_warper_ros.ros.conversions import delete_markers_for, markers_for, skeletons_to_msg
from dense_warper_ros.ros.raw_frames import subscribe_frames
from dense_warper_ros.ros.repeated_info import RepeatedInfo
from dense_warper_ros.ros.frame_processor import INFO_CAUSES, FrameDropped, FrameProcessor, PreparedFrame, stamp_to_ns
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
    received: int = 0                         # image messages that reached the callback
    frames: int = 0                           # frames that reached the buffer
    clock_flagged: float | None = None        # wall time of the last frame dropped for its clock
    outlier_joints: int = 0                   # joints of this camera dropped by outlier_threshold
    qos_mismatch: str = ""                    # why a publisher of its frames cannot reach the node


class DenseWarperNode(Node):
    def __init__(self, *, pipeline: PosePipeline | None = None, **kwargs):
        super().__init__("dense_warper", **kwargs)
        params.declare(self)
        self.cfg = params.read(self)
        if self.cfg.cpu_threads > 0:
            import cv2
            import torch
            torch.set_num_threads(self.cfg.cpu_threads)   # process-wide; each worker thread uses it
            cv2.setNumThreads(self.cfg.cpu_threads)       # the crop's resize: a second thread only waits for a core
        self.pipeline = pipeline or self._build_pipeline()
        self.cams = [CameraState(n) for n in self.cfg.cameras]
        self._repeated_info = RepeatedInfo(len(self.cams))
        try:
            self.tf = make_tf_source(self, extrinsics_file=self.cfg.extrinsics_file, world_frame=self.cfg.world_frame)
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise params.ParameterError(f"parameter 'extrinsics_file': {self.cfg.extrinsics_file!r}: {e}") from e
        self.processor = FrameProcessor(
            pipeline=self.pipeline, cameras=list(self.cfg.cameras), world_frame=self.cfg.world_frame,
            tf_lookup=self.tf.lookup, tf_timeout_s=self.cfg.tf_timeout, clock_jump_s=self.cfg.clock_jump,
            max_lead_s=self.cfg.max_view_age, tf_fast_fail=self.cfg.mode == "live", on_clock_jump=self._on_clock_jump)
        live = self.cfg.mode == "live"
        self._sched = FrameScheduler(len(self.cfg.cameras), self.cfg.queue_size if live else None,
                                     horizon_ns=int(self.cfg.clock_jump * 1e9))
        self._handoff: queue.Queue = queue.Queue(maxsize=2)    # live: backbone -> fusion thread
        self._stop = threading.Event()
        self._last_input = time.monotonic()
        self._logged: dict[str, float] = {}
        self.stats: Counter = Counter()
        self.latencies: deque = deque(maxlen=2000)     # capture stamp -> publish, s
        self.backbone_times: deque = deque(maxlen=2000)   # decode + TF + backbone per frame, s
        self.fusion_times: deque = deque(maxlen=2000)     # buffer + model + publish per frame, s
        self.out_times: deque = deque(maxlen=500)      # wall times of published poses

        self.pub_skeletons = self.create_publisher(Skeleton3DArray, "~/skeletons", 50)
        self.pub_markers = self.create_publisher(MarkerArray, "~/markers", 10) if self.cfg.publish_markers else None
        self.pub_diag = (self.create_publisher(DiagnosticArray, "/diagnostics", 10)
                         if self.cfg.publish_diagnostics else None)

        qos = QoSProfile(depth=self.cfg.qos_depth, history=HistoryPolicy.KEEP_LAST,
                         reliability=ReliabilityPolicy.RELIABLE if self.cfg.qos_reliability == "reliable"
                         else ReliabilityPolicy.BEST_EFFORT)
        info_qos = QoSProfile(depth=5, reliability=qos.reliability)
        msg_type, suffix = self._frame_topic()
        # Each QoS event handler is one more entry the executor walks in Python on every wake-up
        # (two messages a frame): the frames' subscriptions keep the one that tells the user why no
        # frame arrives, under the camera's name; CameraInfo shares their QoS and keeps none.
        for i, ns in enumerate(self.cfg.camera_topics):   # People2D: an ordinary subscription
            events = SubscriptionEventCallbacks(incompatible_qos=lambda e, i=i: self._on_incompatible_qos(i, e),
                                                use_default_callbacks=False)
            subscribe_frames(self, msg_type, f"{ns}/{suffix}", qos, lambda m, i=i: self._on_image(i, m),
                             lambda why, i=i: self._drop(i, "undecodable", why), event_callbacks=events)
            self.create_subscription(CameraInfo, f"{ns}/camera_info", lambda m, i=i: self._on_info_bytes(i, m),
                                     info_qos, raw=True,
                                     event_callbacks=SubscriptionEventCallbacks(use_default_callbacks=False))
        self.create_timer(1.0, self._publish_diagnostics)
        if self.cfg.mode == "offline":
            self.create_timer(min(0.1, self.cfg.flush_after / 2), self._maybe_flush)
        self._loops = [self._work] + ([self._fuse_loop] if live and self.pipeline.fusion is None else [])
        self._workers = [self._start_worker(loop) for loop in self._loops]
        self.get_logger().info(
            f"{len(self.cams)} cameras {list(self.cfg.cameras)}, mode={self.cfg.mode}, timing={self.cfg.timing}, "
            f"model={self.cfg.model_config}, {self._input_summary()}, "
            f"device={self.pipeline.device}, "
            f"extrinsics from {self.tf.kind}")

    def _input_summary(self) -> str:
        c = self.cfg
        people = f"max_people={c.max_people}"
        if c.input == "keypoints":
            return f"input=2D people on <camera>/people, {people}"
        detector = getattr(self.pipeline, "detector", None)
        found = f", person detector MoveNet MultiPose on {detector.inference}" if detector is not None else ""
        return f"backbone={c.backbone} on {self.pipeline.backbone.inference}, {people}{found}"

    def _frame_topic(self) -> tuple[type, str]:
        """What a camera's frames arrive as: People2D, CompressedImage or Image, and the topic suffix."""
        if self.cfg.input == "keypoints":
            return People2D, "people"
        if self.cfg.image_transport == "compressed":
            return CompressedImage, "image_raw/compressed"
        return Image, "image_raw"

    def _build_pipeline(self) -> PosePipeline:
        c = self.cfg
        try:
            return build_pipeline(
                num_cameras=len(c.cameras), timing=c.timing, offline=c.mode == "offline", model_config=c.model_config,
                weights=c.weights, outlier_threshold=c.outlier_threshold, max_views=c.max_fused_views,
                backbone=c.backbone,
                backbone_weights=c.backbone_weights, device=c.device, min_views=c.min_views,
                max_view_age_s=c.max_view_age, clock_jump_s=c.clock_jump, inference=c.inference,
                cpu_threads=c.cpu_threads, people=people_options(c),
                fusion_processes=c.fusion_processes if c.mode == "live" else 0)
        except (OSError, ValueError, KeyError, RuntimeError) as e:
            raise params.ParameterError(
                f"cannot build the model from model_config={c.model_config!r}, weights={c.weights!r}, "
                f"backbone={c.backbone!r}, backbone_weights={c.backbone_weights!r}, inference={c.inference!r}, "
                f"device={c.device!r}: {type(e).__name__}: {e}".replace("\n", " ")) from e

    # --- callbacks: store only --------------------------------------------------------------------
    def _on_info_bytes(self, i: int, raw: bytes) -> None:
        """A serialized CameraInfo: the same as the camera's last one (stamp aside) changes nothing."""
        if self._repeated_info.is_repeat(i, raw):
            if self.cams[i].info_error:
                self.stats["camera_info_refused"] += 1
            return
        try:
            msg = deserialize_message(raw, CameraInfo)
        except Exception as e:                   # noqa: BLE001 - one bad message must not end the node
            name = self.cams[i].name
            self.stats["camera_info_refused"] += 1
            self._warn(f"{name}:camera_info", f"{name}: CameraInfo could not be read ({type(e).__name__}: {e})")
            return
        self._on_info(i, msg)

    def _on_info(self, i: int, msg: CameraInfo) -> None:
        error = self.processor.set_info(i, msg)
        cam = self.cams[i]
        cam.info_error = str(error) if error else ""
        if error:
            self.stats["camera_info_refused"] += 1
            self._warn(f"{cam.name}:camera_info", f"{cam.name}: CameraInfo refused ({error.cause}): {error}; "
                       "its frames are dropped until a valid one arrives")

    def _on_incompatible_qos(self, i: int, event) -> None:
        """A publisher on camera i's frame topic whose QoS this subscription cannot match: none of
        its frames will arrive. Logged and shown in the camera's /diagnostics status."""
        cam = self.cams[i]
        policy = qos_policy_name_from_kind(event.last_policy_kind)
        cam.qos_mismatch = (f"a publisher offers QoS incompatible with this subscription ({policy}; "
                            f"qos_reliability is {self.cfg.qos_reliability!r}): its frames cannot arrive")
        self.stats["incompatible_qos"] += 1
        self._warn(f"{cam.name}:qos", f"{cam.name}: {cam.qos_mismatch}")

    def _on_image(self, i: int, msg) -> None:
        cam = self.cams[i]
        cam.received += 1
        cam.last_recv = time.monotonic()
        cam.recv_times.append(cam.last_recv)
        self._last_input = cam.last_recv
        stamp = stamp_to_ns(msg.header.stamp)
        try:
            self.processor.admit(i, stamp, time.monotonic_ns())
        except FrameDropped as e:
            if e.cause.startswith("clock_"):
                cam.clock_flagged = cam.last_recv
            self._drop(i, e.cause, e.text)
            return
        for _ in self._sched.put(i, stamp, msg):   # live: newest of this camera wins
            self._drop(i, "superseded",
                       "inference is slower than the cameras; a newer frame of this camera replaced it")

    def _maybe_flush(self) -> None:
        if ((self.pipeline.buffer.pending or self._sched.held)
                and time.monotonic() - self._last_input > self.cfg.flush_after):
            self._last_input = time.monotonic()
            self._sched.put(None, 0, _FLUSH)

    # --- workers ---------------------------------------------------------------------------------
    def _start_worker(self, loop) -> threading.Thread:
        t = threading.Thread(target=self._supervised, args=(loop,), name=f"dense_warper{loop.__name__}", daemon=True)
        t.start()
        return t

    def _supervised(self, loop) -> None:
        """Run a worker loop until stop; an exception escaping it restarts it (counted, reported)."""
        while not self._stop.is_set():
            try:
                loop()
            except Exception as e:               # noqa: BLE001 - a bug must not end the output
                self.stats["worker_restarts"] += 1
                self._error("worker_restart", f"worker {loop.__name__} failed and was restarted: "
                            f"{type(e).__name__}: {e}")

    def _check_workers(self) -> None:
        """A worker thread that ended anyway (not through an exception) is started again."""
        for k, (t, loop) in enumerate(zip(self._workers, self._loops)):
            if not t.is_alive() and not self._stop.is_set():
                self.stats["worker_restarts"] += 1
                self._error("worker_restart", f"worker {loop.__name__} had stopped; started again")
                self._workers[k] = self._start_worker(loop)

    def _guarded(self, fn, *args):
        """fn(*args), or None after an unexpected exception: a bug must not kill a worker."""
        try:
            return fn(*args)
        except Exception as e:                   # noqa: BLE001 - counted and logged, the stream goes on
            self.stats["errors"] += 1
            self._error("error", f"worker error: {type(e).__name__}: {e}")
            return None

    def _work(self) -> None:
        """Offline: the whole frame, in order. Live: decode + TF + backbone, then hand off to the
        fusion thread, or to the fusion process."""
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
            if self._sched.live and self.pipeline.fusion is None:
                while not self._stop.is_set():
                    try:
                        self._handoff.put(p, timeout=0.2)       # waits while fusion is behind
                        break
                    except queue.Full:
                        continue
            else:   # offline, or the fusion process: it holds up to two frames and then waits here
                self._guarded(self._fuse, p)

    def _fuse_loop(self) -> None:
        while not self._stop.is_set():
            try:
                p = self._handoff.get(timeout=0.2)
            except queue.Empty:
                continue
            self._guarded(self._fuse, p)

    def _prepare(self, i: int, msg) -> PreparedFrame | None:
        cam = self.cams[i]
        t0 = time.perf_counter()
        try:
            p = self.processor.prepare(i, msg)
        except FrameDropped as e:
            if e.cause in INFO_CAUSES:
                cam.info_error = str(e)
            self._drop(i, e.cause, e.text)
            return None
        self.backbone_times.append(time.perf_counter() - t0)
        cam.frames += 1
        cam.last_stamp_ns = p.stamp_ns
        return p

    def _fuse(self, p: PreparedFrame) -> None:
        t0 = time.perf_counter()
        if self.pipeline.fusion is not None:   # the fusion process answers on its own thread
            self.pipeline.push_async(p.camera, p.stamp_ns, p.data, lambda r: self._fused(r, t0), reset=p.reset)
            return
        self._publish(self.processor.push(p))
        self.fusion_times.append(time.perf_counter() - t0)

    def _fused(self, results, t0: float) -> None:
        """A frame's poses from the fusion process (or why there are none): published at once."""
        if isinstance(results, Exception):
            self.stats["errors"] += 1
            self._error("error", f"fusion process: {type(results).__name__}: {results}")
            return
        self._guarded(self._publish, results)
        self.fusion_times.append(time.perf_counter() - t0)

    def _on_clock_jump(self) -> None:
        self.stats["clock_jumps"] += 1
        self._warn("clock_jump", "the stamps of most cameras jumped back together (a looped bag?): "
                   "buffer and TF history reset")
        self._sched.restart()
        self.tf.clear()

    def _publish(self, results) -> None:
        """One Skeleton3DArray per instant with every person fused at it; markers per track id, and
        the markers of tracks that ended deleted at once."""
        if self._stop.is_set() or not self.context.ok():
            return                               # shutting down: nothing to publish to
        now_ns = self.get_clock().now().nanoseconds
        frame = self.cfg.world_frame
        for stamp_ns, group in _by_stamp(results):
            self.pub_skeletons.publish(skeletons_to_msg(group, frame_id=frame, stamp_ns=stamp_ns))
            if self.pub_markers is not None:
                self.pub_markers.publish(markers_for(group, frame_id=frame, stamp_ns=stamp_ns,
                                                     lifetime_s=self.cfg.marker_lifetime))
            self.latencies.append((now_ns - stamp_ns) * 1e-9)
            self.out_times.append(time.monotonic())
            self.stats["poses"] += len(group)
            self.stats["instants"] += 1
            for r in group:
                if r.rejected is not None:       # a camera often out of line with the others: calibration?
                    for cam, rejected in zip(self.cams, r.rejected):
                        cam.outlier_joints += int(rejected.sum())
        ended, self.pipeline.ended[:] = list(self.pipeline.ended), []
        if ended and self.pub_markers is not None:
            self.pub_markers.publish(delete_markers_for(ended, frame_id=frame, stamp_ns=now_ns))

    # --- accounting ------------------------------------------------------------------------------
    # rclpy fixes a call site's severity at its first call and raises if one site logs at two
    # severities, so each severity has its own call site; a logging failure must not end a worker.
    def _due(self, key: str, every_s: float = 10.0) -> bool:
        """Log each key once, then at most every `every_s` seconds."""
        now = time.monotonic()
        if now - self._logged.get(key, -1e9) < every_s:
            return False
        self._logged[key] = now
        return True

    def _warn(self, key: str, text: str) -> None:
        self._log(key, text, error=False)

    def _error(self, key: str, text: str) -> None:
        self._log(key, text, error=True)

    def _log(self, key: str, text: str, *, error: bool) -> None:
        if not self._due(key):
            return
        try:
            if error:
                self.get_logger().error(text)
            else:
                self.get_logger().warning(text)
        except Exception:                        # noqa: BLE001 - e.g. the context is gone at shutdown
            print(f"[dense_warper] {text}", file=sys.stderr)

    def _drop(self, i: int, cause: str, text: str) -> None:
        cam = self.cams[i]
        cam.drops[cause] += 1
        self.stats[f"drop_{cause}"] += 1
        self._warn(f"{cam.name}:{cause}", f"{cam.name}: frame dropped ({cause}): {text} [{cam.drops[cause]} so far]")

    def _publish_diagnostics(self) -> None:
        self._check_workers()
        if self.pub_diag is None:
            return
        now = time.monotonic()
        arr = DiagnosticArray()
        arr.header.stamp = self.get_clock().now().to_msg()
        arr.status = [self._camera_status(k, now) for k in range(len(self.cams))] + [self._inference_status(now)]
        self.pub_diag.publish(arr)

    def _camera_status(self, k: int, now: float) -> DiagnosticStatus:
        cam = self.cams[k]
        rate = _rate(cam.recv_times, now)
        age = now - cam.last_recv if cam.last_recv else float("inf")
        info, tf_ok = self.processor.infos[k], self.processor.tf_ok[k]
        clock_off = cam.clock_flagged is not None and now - cam.clock_flagged <= 5.0
        level, msg = DiagnosticStatus.OK, "ok"
        if cam.last_recv is None or age > 2.0:
            level, msg = DiagnosticStatus.WARN, "no images" if cam.last_recv is None else f"stalled {age:.1f} s"
        if clock_off:
            level, msg = DiagnosticStatus.ERROR, (f"clock disagrees with the other cameras by "
                                                  f"{self.processor.clock.offset_s(k):+.3f} s: frames dropped")
        if info is None or cam.info_error:
            level, msg = DiagnosticStatus.ERROR, cam.info_error or "no CameraInfo"
        elif not tf_ok and cam.frames == 0 and cam.drops["tf_missing"]:
            level, msg = DiagnosticStatus.ERROR, "no transform to world"
        if cam.qos_mismatch and (cam.last_recv is None or age > 2.0):   # the first thing to mend
            level, msg = DiagnosticStatus.ERROR, f"no images: {cam.qos_mismatch}"
        values = {"rate_hz": f"{rate:.2f}", "age_s": f"{age:.3f}", "received": str(cam.received),
                  "frames": str(cam.frames),
                  "camera_info": "ok" if info is not None and not cam.info_error else (cam.info_error or "missing"),
                  "tf": "ok" if tf_ok else "missing", "outlier_joints": str(cam.outlier_joints),
                  "clock": f"off by {self.processor.clock.offset_s(k):+.3f} s" if clock_off else "ok"}
        values.update({f"drops_{cause}": str(n) for cause, n in sorted(cam.drops.items())})
        flagged = self._clock_offset_values(k, values)
        if flagged and level == DiagnosticStatus.OK:
            level, msg = DiagnosticStatus.WARN, flagged
        return DiagnosticStatus(level=level, name=f"dense_warper: camera {cam.name}", message=msg, hardware_id=cam.name,
                                values=[KeyValue(key=key, value=v) for key, v in values.items()])

    def _clock_offset_values(self, k: int, values: dict) -> str:
        """This camera's clock-offset estimate (estimate_clock_offsets) into `values`; a message when
        the offset is surely beyond max_clock_offset, else ''."""
        e = getattr(self.pipeline, "clock_estimate", {}).get(k)
        if e is None:
            return ""
        values["clock_offset_ms"] = f"{1000 * e.offset_s:+.1f}"
        values["clock_offset_sigma_ms"] = f"{1000 * e.sigma_s:.1f}"
        values["clock_offset_seen_s"] = f"{e.seen_s:.1f}"
        values["clock_offset_known"] = str(e.known)
        values["clock_offset_applied_ms"] = f"{1000 * self.pipeline.clock_correction_s(k):+.1f}"
        if abs(e.offset_s) > self.cfg.max_clock_offset and e.sigma_s < abs(e.offset_s) / 3:
            return f"stamps {1000 * e.offset_s:+.0f} ms off the reference camera's (estimated from the people seen)"
        return ""

    def _inference_status(self, now: float) -> DiagnosticStatus:
        lat = np.array(self.latencies) if self.latencies else np.zeros(1)
        backbone = self.pipeline.backbone
        values = {"device": str(self.pipeline.device),
                  "inference": backbone.inference if backbone is not None else "none (2D people in)",
                  "mode": self.cfg.mode, "timing": self.cfg.timing,
                  "output_rate_hz": f"{_rate(self.out_times, now):.2f}",
                  "queue_depth": str(len(self._sched) + self._handoff.qsize()), "held_for_order": str(self._sched.held),
                  "buffer_pending": str(self.pipeline.buffer.pending),
                  "latency_p50_s": f"{np.percentile(lat, 50):.4f}", "latency_p95_s": f"{np.percentile(lat, 95):.4f}",
                  "latency_p99_s": f"{np.percentile(lat, 99):.4f}", "poses": str(self.stats["poses"]),
                  "fusion": _fusion_where(self.pipeline),
                  "backbone_p50_s": f"{_p50(self.backbone_times):.4f}",
                  "fusion_p50_s": f"{_p50(self.fusion_times):.4f}",
                  "extrinsics": self.tf.kind}
        values.update({f"buffer_{k}": str(v) for k, v in sorted(self.pipeline.buffer.stats.items())})
        values.update({k: str(v) for k, v in self.pipeline.people_counts().items()})
        values.update({k: str(v) for k, v in sorted(self.stats.items()) if k != "poses"})
        level, msg = DiagnosticStatus.OK, "running"
        if self.stats["errors"]:
            level, msg = DiagnosticStatus.WARN, f"{self.stats['errors']} worker errors (see the log)"
        if self.stats["worker_restarts"]:
            level = DiagnosticStatus.ERROR
            msg = f"a worker failed and was restarted {self.stats['worker_restarts']} times"
        restarts = self.pipeline.fusion.restarts if self.pipeline.fusion is not None else 0
        if restarts:
            level = DiagnosticStatus.ERROR
            msg = f"the fusion process ended and was started again {restarts} times"
        return DiagnosticStatus(level=level, name="dense_warper: inference", message=msg, hardware_id="dense_warper",
                                values=[KeyValue(key=k, value=v) for k, v in values.items()])

    def stop(self) -> None:
        """Stop and join the workers; call before the node and the context go."""
        self._stop.set()
        self._sched.close()
        for w in self._workers:
            w.join(timeout=5.0)
        self.pipeline.close()


def _by_stamp(results) -> list[tuple[int, list]]:
    """Results grouped by their instant, in order of first appearance."""
    groups: dict[int, list] = {}
    for r in results:
        groups.setdefault(r.stamp_ns, []).append(r)
    return list(groups.items())


def people_options(c: params.NodeConfig) -> PeopleOptions:
    return PeopleOptions(max_people=c.max_people, keypoints_input=c.input == "keypoints", gate=c.association_gate,
                         track_timeout_s=c.track_timeout, detector_period=c.detector_period,
                         fill_lost=c.fill_lost_joints,
                         clock_offsets=c.estimate_clock_offsets,
                         apply_clock_offsets=c.estimate_clock_offsets and c.apply_clock_offsets)


def _fusion_where(pipeline) -> str:
    """Where the fusion runs, for /diagnostics."""
    fusion = pipeline.fusion
    if fusion is None:
        return "in the node's process"
    return fusion.describe()


def _rate(times, now: float, span_s: float = 5.0) -> float:
    """Events per second over the last `span_s` of monotonic `times`."""
    recent = [t for t in times if now - t <= span_s]
    return (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 and recent[-1] > recent[0] else 0.0


def _p50(x) -> float:
    return float(np.percentile(np.array(x), 50)) if x else float("nan")


def main(args=None) -> int:
    """Spin until SIGINT or SIGTERM (`spin.run_node`), with the per-frame memory kept mapped
    (`allocator.keep_freed_memory`)."""
    keep_freed_memory()
    return run_node(DenseWarperNode, "dense_warper", args)


if __name__ == "__main__":
    sys.exit(main())
