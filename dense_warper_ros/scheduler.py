"""Which received frame the backbone takes next, and which frames are dropped under overload.

Live mode keeps, per camera, only its newest `depth` frames (older ones are superseded) and takes
the head of the camera served least recently (ties: the oldest stamp); but when that head is older
than the frame taken last and another is newer, the least recently served of the newer heads,
unless the first camera has waited a whole turn of the cameras already. Why not simply the oldest
frame: a bounded FIFO that drops its oldest entry, or "oldest head first" over per-camera slots,
lock onto a subset of the cameras whenever the input rate is an integer multiple of the inference
rate (6 interleaved cameras and a worker 3x too slow: cameras 0 and 3 only; 4 cameras and 2x: two
of them). The windows then miss views (a view older than `max_view_age` is left out) and the
output collapses. Least-recently-served gives every camera an equal share, so each window still
finds a recent frame of every camera, a frame waits about one camera period at most, and with
interleaved cameras the stamps handed out still increase (each output pose is new). Why newer
heads first: after a stall (the worker waited for the fusion) every camera has a head waiting, and
the camera served least recently need not hold the oldest; the heads older than the one taken
would reach the buffer after it, too late for a pose of their own (causal timing), at the cost of
a whole 2D step each. Taken later instead, their cameras' next frames mostly supersede them first.
Why the turn: a camera whose stamps run ahead of the others' (and one that floods frames) would
otherwise always hold the newer head and take every turn; with it, one whose stamps run behind
is still served in turn. Without overload the queue holds one frame at a time and the order is
the arrival order.

Offline mode drops nothing and hands frames out in stamp order whatever order they arrived in (DDS
delivers different topics in any order): a frame is held back until every camera has delivered
one at or after its stamp, or until the newest stamp is `horizon_ns` past it (a camera that
stopped), or a control item (a flush) releases everything held. The 2D crop follows the previous
pose, so processing in stamp order is what makes a replay give the same poses on every run.
After `restart()` (the stamps jumped back: a looped bag) the new frames are ordered after the old.
"""
from __future__ import annotations

import bisect
import threading
from collections import deque
from typing import Any


class FrameScheduler:
    """Thread-safe: callbacks `put`, one worker `get`s."""

    def __init__(self, num_cameras: int, depth: int | None, *, horizon_ns: int = 1_000_000_000):
        if depth is not None and depth < 1:
            raise ValueError(f"depth must be >= 1 or None (unbounded), got {depth}")
        self.depth = depth
        self.horizon_ns = horizon_ns
        self._slots: list[deque] = [deque() for _ in range(num_cameras)]   # live: (stamp_ns, item)
        self._fifo: deque = deque()               # offline: (camera, item) released, in order
        self._held: list[tuple] = []              # offline: (epoch, stamp, camera, seq, item), sorted
        self._seen: list[tuple[int, int] | None] = [None] * num_cameras   # offline: (epoch, newest stamp)
        self._epoch = 0
        self._seq = 0
        self._cv = threading.Condition()
        self._closed = False
        self._served = [-1] * num_cameras      # live: service counter when each camera was last taken
        self._count = 0
        self._last_out = -1                   # live: stamp of the frame taken last

    @property
    def live(self) -> bool:
        return self.depth is not None

    def put(self, camera: int | None, stamp_ns: int, item: Any) -> list[Any]:
        """Queue a frame; returns the items it superseded (live mode), for counting.
        `camera=None` queues a control item (offline FIFO only)."""
        with self._cv:
            dropped = []
            if self.live and camera is not None:
                slot = self._slots[camera]
                slot.append((stamp_ns, item))
                while len(slot) > self.depth:
                    dropped.append(slot.popleft()[1])
            elif camera is None:
                self._release(everything=True)          # a control item comes after every frame
                self._fifo.append((None, item))
            else:
                self._seq += 1
                bisect.insort(self._held, (self._epoch, stamp_ns, camera, self._seq, item), key=lambda h: h[:4])
                seen = self._seen[camera]
                if seen is None or seen < (self._epoch, stamp_ns):
                    self._seen[camera] = (self._epoch, stamp_ns)
                self._release(everything=False)
            self._cv.notify()
            return dropped

    def restart(self) -> None:
        """Offline: the stamps jumped back; frames from now on come after every frame held."""
        with self._cv:
            self._epoch += 1

    def _release(self, *, everything: bool) -> None:
        newest = max((s for s in self._seen if s is not None), default=None)
        while self._held:
            epoch, stamp, camera, _, item = self._held[0]
            ready = everything or epoch < self._epoch or (newest is not None and newest[1] - stamp >= self.horizon_ns) \
                or all(s is not None and s >= (epoch, stamp) for s in self._seen)
            if not ready:
                break
            self._held.pop(0)
            self._fifo.append((camera, item))

    def get(self, timeout: float | None = None) -> tuple[int | None, Any] | None:
        """The next (camera, item), or None on timeout or after `close`. Offline: arrival order.
        Live: see the module docstring."""
        with self._cv:
            if not self._cv.wait_for(lambda: self._closed or len(self) > 0, timeout):
                return None
            if self._closed:
                return None
            if self._fifo:
                return self._fifo.popleft()
            heads = [c for c, s in enumerate(self._slots) if s]

            def served_first(c: int) -> tuple[int, int]:        # least recently served, then oldest
                return self._served[c], self._slots[c][0][0]
            cam = min(heads, key=served_first)
            fresh = [c for c in heads if self._slots[c][0][0] > self._last_out]
            if fresh and cam not in fresh and self._count - self._served[cam] <= len(self._slots):
                cam = min(fresh, key=served_first)
            self._served[cam], self._count = self._count, self._count + 1
            self._last_out, item = self._slots[cam].popleft()
            return cam, item

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()

    def __len__(self) -> int:
        """Frames ready to be taken (offline: frames held back for ordering are not counted)."""
        return len(self._fifo) + sum(len(s) for s in self._slots)

    @property
    def held(self) -> int:
        """Offline: frames held back until the other cameras catch up."""
        return len(self._held)
