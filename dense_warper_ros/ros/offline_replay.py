"""Replay a recording's messages through the node's per-frame path, offline: every frame, in
stamp order, deterministic. Shared by the bag evaluator and the tests that compare the live node
with the offline result. `OfflineReplay` needs only message-shaped objects (rclpy or rosbags), no
ROS runtime."""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from dense_warper_ros.pipeline import PosePipeline, PoseResult
from dense_warper_ros.ros.frame_processor import FrameDropped, FrameProcessor, stamp_to_ns
from dense_warper_ros.scheduler import FrameScheduler
from dense_warper_ros.transforms import TransformTree

_FLUSH = object()


def camera_name_of(topic: str) -> tuple[str, str] | None:
    """'/cam0/image_raw[/compressed]' -> ('cam0', 'image'), '/cam0/camera_info' -> ('cam0', 'info')."""
    t = topic.strip("/")
    for suffix, kind in (("/image_raw/compressed", "image"), ("/image_raw", "image"), ("/camera_info", "info")):
        if t.endswith(suffix):
            return t[: -len(suffix)], kind
    return None


@dataclass
class ReplayResult:
    poses: list[PoseResult]
    frames_in: int
    drops: Counter = field(default_factory=Counter)
    frame_times_s: list[float] = field(default_factory=list)   # pipeline wall time per frame
    clock_jumps: int = 0


class OfflineReplay:
    """Feed (topic, message) pairs in log order; `finish()` flushes and returns the poses."""

    def __init__(self, *, pipeline: PosePipeline, cameras: list[str], world_frame: str = "world",
                 clock_jump_s: float = 1.0, max_lead_s: float | None = None):
        self.tree = TransformTree()
        self.cameras = list(cameras)
        # the node's offline order: frames in stamp order whatever order they are fed in
        self.sched = FrameScheduler(len(self.cameras), None, horizon_ns=int(clock_jump_s * 1e9))
        max_lead_s = pipeline.buffer.config.max_view_age_ns * 1e-9 if max_lead_s is None else max_lead_s
        self.processor = FrameProcessor(pipeline=pipeline, cameras=self.cameras, world_frame=world_frame,
                                        tf_lookup=lambda a, b, s, _t: self.tree.lookup(a, b, s),
                                        clock_jump_s=clock_jump_s, max_lead_s=max_lead_s,
                                        on_clock_jump=self._on_clock_jump)
        self.result = ReplayResult(poses=[], frames_in=0)

    def _on_clock_jump(self) -> None:
        self.tree.clear(keep_static=True)
        self.sched.restart()

    def feed(self, topic: str, msg, arrival_ns: int | None = None) -> list[PoseResult]:
        """One message; `arrival_ns`: when it arrived (a bag's log time), for the stamp checks."""
        if topic in ("/tf", "/tf_static"):
            for tf in msg.transforms:
                t, q = tf.transform.translation, tf.transform.rotation
                self.tree.add(tf.header.frame_id, tf.child_frame_id, stamp_to_ns(tf.header.stamp),
                              [t.x, t.y, t.z], [q.x, q.y, q.z, q.w], static=topic == "/tf_static")
            return []
        parsed = camera_name_of(topic)
        if parsed is None or parsed[0] not in self.cameras:
            return []
        i = self.cameras.index(parsed[0])
        if parsed[1] == "info":
            self.processor.set_info(i, msg)
            return []
        self.result.frames_in += 1
        stamp = stamp_to_ns(msg.header.stamp)
        try:
            self.processor.admit(i, stamp, arrival_ns)
        except FrameDropped as e:
            self.result.drops[e.cause] += 1
            return []
        self.sched.put(i, stamp, msg)
        return self._run_released()

    def _run_released(self) -> list[PoseResult]:
        out: list[PoseResult] = []
        while (got := self.sched.get(timeout=0)) is not None:
            i, msg = got
            if msg is _FLUSH:
                continue
            t0 = time.perf_counter()
            try:
                out += self.processor.process(i, msg)
            except FrameDropped as e:
                self.result.drops[e.cause] += 1
                continue
            self.result.frame_times_s.append(time.perf_counter() - t0)
        self.result.poses += out
        return out

    def finish(self) -> ReplayResult:
        self.sched.put(None, 0, _FLUSH)                 # frames still held for ordering
        self._run_released()
        self.result.poses += self.processor.pipeline.flush()
        self.result.clock_jumps = self.processor.clock_jumps
        return self.result


def replay_recording(rec, pipeline: PosePipeline) -> list[PoseResult]:
    """A Recording's messages (tf_static, then camera_info + image_raw per frame) through
    `OfflineReplay`, without ROS transport -> the poses. Builds rclpy messages
    (`ros.recording_msgs`), so it needs the message packages but no running ROS."""
    from dense_warper_ros.ros import recording_msgs as rm
    rep = OfflineReplay(pipeline=pipeline, cameras=rec.names)
    rep.feed("/tf_static", rm.tf_static(rec, rec.frames[0][1]))
    for c, stamp, rgb in rec.frames:
        rep.feed(f"/{rec.names[c]}/camera_info", rm.camera_info(rec, c, stamp))
        rep.feed(f"/{rec.names[c]}/image_raw", rm.image(rec, c, stamp, rgb, compressed=False))
    return rep.finish().poses


def match_ground_truth(poses: list[PoseResult], truth: dict[int, np.ndarray], tolerance_ns: int = 1_000_000
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pair each pose with the ground truth at its stamp -> (stamps (N,), pred (N, J, 3), gt (N, J, 3))."""
    keys = np.array(sorted(truth))
    stamps, pred, gt = [], [], []
    for p in poses:
        if not len(keys):
            break
        k = keys[np.argmin(np.abs(keys - p.stamp_ns))]
        if abs(int(k) - p.stamp_ns) <= tolerance_ns:
            stamps.append(p.stamp_ns)
            pred.append(p.points)
            gt.append(truth[int(k)])
    J = poses[0].points.shape[0] if poses else 17
    return (np.array(stamps, dtype=np.int64), np.array(pred).reshape(-1, J, 3), np.array(gt).reshape(-1, J, 3))
