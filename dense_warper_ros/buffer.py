"""The time-ordered interleaved buffer: which frames form the window for each output instant.

Every frame enters on its own (no synchronizer). For each accepted frame the buffer produces one
`Window`: the target instant (that frame's capture stamp) and, per camera, the frame to fuse.

Timings (see the model's `pose_at`):
- causal: per camera the newest frame at or before the target, emitted at once (extrapolation,
  lowest latency).
- windowed: per camera the frame nearest the target on either side, emitted once every live camera
  has delivered a frame at or after the target, or once `max_view_age` has passed in stream time
  (interpolation, at most one camera cycle of delay).

Bad timing is handled and counted, never raised: a duplicated stamp is dropped; a frame older than
the last emitted target is stored for later windows but gets no output of its own ("late"); a
stamp that jumps back by more than `clock_jump` (a looped bag) resets the buffer; a camera whose
newest frame is older than `max_view_age` is left out, and a window with fewer than `min_views`
views is dropped.

With `reorder=True` (offline mode) frames are first put back into stamp order across cameras, so
the output does not depend on the order topics were delivered in: deterministic bag replay.
Stamps are integer nanoseconds.
"""
from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

Timing = Literal["causal", "windowed"]
TIMINGS = ("causal", "windowed")


@dataclass(frozen=True)
class Frame:
    camera: int          # index into the buffer's camera list
    stamp_ns: int        # capture stamp
    data: Any = None     # what the pipeline keeps per frame (heatmaps, affine, camera geometry)


@dataclass(frozen=True)
class Window:
    target_ns: int                        # the instant the pose describes
    target_camera: int                    # the camera whose frame triggered this window
    frames: tuple[Frame | None, ...]      # one per camera; None: no usable frame
    previous: tuple[tuple[Frame, ...], ...] = ()   # per camera: up to `history` earlier frames, newest first

    @property
    def num_views(self) -> int:
        return sum(f is not None for f in self.frames)


@dataclass
class BufferConfig:
    num_cameras: int
    timing: Timing = "causal"
    max_view_age_ns: int = 200_000_000    # a view older (or, windowed, newer) than this is unused
    min_views: int = 2                    # fewer usable views: no pose
    capacity: int = 8                     # frames kept per camera
    clock_jump_ns: int = 1_000_000_000    # a stamp this far behind the newest: reset
    reorder: bool = False                 # offline: release frames in stamp order
    history: int = 0                      # earlier frames per view a window carries (temporal-context models)
    # windowed: per other camera, the frame nearest the target ("nearest"), or the first one after it
    # ("later", else the newest before): a temporal-context model then has a frame on each side of
    # the target in (history, frame) and interpolates, as the benchmark's (c) and (d+) do
    windowed_pick: str = "nearest"
    reorder_horizon_ns: int = 1_000_000_000  # offline: stop waiting for a camera this far behind

    def __post_init__(self) -> None:
        if self.num_cameras < 1:
            raise ValueError(f"num_cameras must be >= 1, got {self.num_cameras}")
        if self.timing not in TIMINGS:
            raise ValueError(f"timing must be one of {TIMINGS}, got {self.timing!r}")
        if self.min_views < 1:
            raise ValueError(f"min_views must be >= 1, got {self.min_views}")
        if self.max_view_age_ns <= 0:
            raise ValueError(f"max_view_age_ns must be > 0, got {self.max_view_age_ns}")
        if self.capacity < 2:
            raise ValueError(f"capacity must be >= 2, got {self.capacity}")
        if self.windowed_pick not in ("nearest", "later"):
            raise ValueError(f"windowed_pick must be 'nearest' or 'later', got {self.windowed_pick!r}")
        if not 0 <= self.history < self.capacity:
            raise ValueError(f"history must be in 0..capacity-1 = {self.capacity - 1}, got {self.history}")


@dataclass
class _Ring:
    """One camera's frames, sorted by stamp, at most `capacity`."""
    capacity: int
    stamps: list[int] = field(default_factory=list)
    frames: list[Frame] = field(default_factory=list)

    def insert(self, f: Frame) -> bool:
        i = bisect.bisect_left(self.stamps, f.stamp_ns)
        if i < len(self.stamps) and self.stamps[i] == f.stamp_ns:
            return False
        self.stamps.insert(i, f.stamp_ns)
        self.frames.insert(i, f)
        if len(self.frames) > self.capacity:
            del self.stamps[0], self.frames[0]
        return True

    @property
    def newest(self) -> int | None:
        return self.stamps[-1] if self.stamps else None

    def before(self, t: int, count: int) -> tuple[Frame, ...]:
        """Up to `count` frames strictly before `t`, newest first."""
        i = bisect.bisect_left(self.stamps, t)
        return tuple(reversed(self.frames[max(0, i - count):i]))

    def after(self, t: int) -> Frame | None:
        i = bisect.bisect_right(self.stamps, t)
        return self.frames[i] if i < len(self.frames) else None

    def at_or_before(self, t: int) -> Frame | None:
        i = bisect.bisect_right(self.stamps, t)
        return self.frames[i - 1] if i else None

    def nearest(self, t: int) -> Frame | None:
        i = bisect.bisect_left(self.stamps, t)
        cands = [self.frames[k] for k in (i - 1, i) if 0 <= k < len(self.frames)]
        return min(cands, key=lambda f: (abs(f.stamp_ns - t), f.stamp_ns)) if cands else None


class InterleavedBuffer:
    """Per-camera rings ordered by capture stamp; `push` returns the windows that became ready."""

    def __init__(self, config: BufferConfig):
        self.config = config
        self.stats: Counter[str] = Counter()
        self.reset(count=False)

    def reset(self, *, count: bool = True) -> None:
        if count:
            self.stats["resets"] += 1
        self._rings = [_Ring(self.config.capacity) for _ in range(self.config.num_cameras)]
        self._pending: list[Frame] = []       # windowed: targets waiting for later frames
        self._reorder: list[Frame] = []       # offline: frames waiting to be released in order
        self._seen_newest: list[int | None] = [None] * self.config.num_cameras
        self._newest = None                   # newest stamp pushed, any camera
        self._newest_accepted = None          # newest stamp past the reorder stage
        self._last_target = None              # last emitted target stamp

    # --- input --------------------------------------------------------------------------------
    def push(self, frame: Frame) -> list[Window]:
        c = self.config
        if not 0 <= frame.camera < c.num_cameras:
            raise ValueError(f"camera index {frame.camera} out of range 0..{c.num_cameras - 1}")
        if self._newest is not None and frame.stamp_ns < self._newest - c.clock_jump_ns:
            self.reset()                      # looped bag / clock jump back: start over
        self._newest = frame.stamp_ns if self._newest is None else max(self._newest, frame.stamp_ns)
        seen = self._seen_newest[frame.camera]
        self._seen_newest[frame.camera] = frame.stamp_ns if seen is None else max(seen, frame.stamp_ns)
        if not c.reorder:
            return self._accept(frame)
        if any(f.camera == frame.camera and f.stamp_ns == frame.stamp_ns for f in self._reorder):
            self.stats["duplicates"] += 1
            return []
        bisect.insort(self._reorder, frame, key=lambda f: (f.stamp_ns, f.camera))
        return self._release(flush=False)

    def flush(self) -> list[Window]:
        """End of stream (or a long pause): release everything still held back."""
        out = self._release(flush=True)
        while self._pending:
            out += self._emit_pending(force=True)
        return out

    # --- internals ----------------------------------------------------------------------------
    def _release(self, *, flush: bool) -> list[Window]:
        """Offline: release frames in stamp order once every camera that is still delivering has
        been seen at or past them (or a camera lags by more than the reorder horizon: it stopped)."""
        out: list[Window] = []
        while self._reorder:
            f = self._reorder[0]
            ready = flush or self._newest - f.stamp_ns >= self.config.reorder_horizon_ns or all(
                s is not None and s >= f.stamp_ns for s in self._seen_newest)
            if not ready:
                break
            self._reorder.pop(0)
            out += self._accept(f)
        return out

    def _accept(self, frame: Frame) -> list[Window]:
        ring = self._rings[frame.camera]
        if not ring.insert(frame):
            self.stats["duplicates"] += 1
            return []
        self.stats["frames"] += 1
        na = self._newest_accepted
        self._newest_accepted = frame.stamp_ns if na is None else max(na, frame.stamp_ns)
        if self._last_target is not None and frame.stamp_ns <= self._last_target:
            # kept for later windows, no output of its own
            self.stats["same_instant" if frame.stamp_ns == self._last_target else "late"] += 1
            return self._emit_pending(force=False) if self.config.timing == "windowed" else []
        if self.config.timing == "causal":
            return self._finish([self._assemble(frame)])
        bisect.insort(self._pending, frame, key=lambda f: (f.stamp_ns, f.camera))
        return self._emit_pending(force=False)

    def _emit_pending(self, *, force: bool) -> list[Window]:
        out = []
        while self._pending:
            t = self._pending[0]
            if not (force or self._window_complete(t)):
                break
            self._pending.pop(0)
            if out and out[-1].target_ns == t.stamp_ns or t.stamp_ns == self._last_target:
                self.stats["same_instant"] += 1     # synchronized cameras: one pose per instant
                continue
            out.append(self._assemble(t))
        return self._finish(out)

    def _window_complete(self, t: Frame) -> bool:
        c = self.config
        if self._newest_accepted - t.stamp_ns >= c.max_view_age_ns:
            return True
        for cam, ring in enumerate(self._rings):
            if cam == t.camera:
                continue
            if ring.newest is None or (
                    ring.newest < t.stamp_ns and t.stamp_ns - ring.newest <= c.max_view_age_ns):
                return False          # a live (or not yet seen) camera may deliver a nearer frame
        return True

    def _assemble(self, t: Frame) -> Window:
        c = self.config
        frames: list[Frame | None] = []
        for cam, ring in enumerate(self._rings):
            if cam == t.camera:
                frames.append(t)
                continue
            if c.timing == "causal":
                f = ring.at_or_before(t.stamp_ns)
            elif c.windowed_pick == "later":
                f = ring.after(t.stamp_ns)
                if f is None or f.stamp_ns - t.stamp_ns > c.max_view_age_ns:
                    f = ring.at_or_before(t.stamp_ns)
            else:
                f = ring.nearest(t.stamp_ns)
            if f is not None and abs(t.stamp_ns - f.stamp_ns) > c.max_view_age_ns:
                self.stats["stale_views"] += 1
                f = None
            frames.append(f)
        # a view's earlier frames, as far back as a view may be from its target (older ones: no velocity)
        previous = tuple(() if f is None or not c.history else
                         tuple(p for p in self._rings[cam].before(f.stamp_ns, c.history)
                               if f.stamp_ns - p.stamp_ns <= c.max_view_age_ns)
                         for cam, f in enumerate(frames))
        return Window(target_ns=t.stamp_ns, target_camera=t.camera, frames=tuple(frames), previous=previous)

    def _finish(self, windows: list[Window]) -> list[Window]:
        out = []
        for w in windows:
            self._last_target = w.target_ns if self._last_target is None else max(self._last_target, w.target_ns)
            if w.num_views < self.config.min_views:
                self.stats["too_few_views"] += 1
                continue
            self.stats["windows"] += 1
            out.append(w)
        return out

    @property
    def pending(self) -> int:
        """Frames held back (reorder + windowed waiting): the buffer's share of latency."""
        return len(self._pending) + len(self._reorder)
