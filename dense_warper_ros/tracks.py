"""3D person tracks: ids that stay with a person, their motion prediction, birth, death and re-id.

A track holds the last few fused poses of one person. Association needs the pose *at a frame's
capture stamp*, which is never a stamp the track was fused at (the views are staggered), so
`Track.predict` extrapolates each joint at constant velocity from the last two poses (velocity
capped, and not across a gap longer than `max_velocity_gap_ns`); `Track.fitted` draws a line through
the last few poses instead, less noisy, to fill in joints a view lost.

Life cycle (`TrackRegistry`): a track is born from 2D people that agree across views; it dies when
no pose was fused for it for `timeout_ns`; a person who appears within `reid_timeout_ns` of a
track's death and within `reid_distance_m` of where it ended gets the old id back.
Two live tracks that fuse to the same person (mean joint distance below `merge_distance_m`) are one
person: the younger ends.
"""
from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

MAX_SPEED_M_S = 6.0               # faster joint motion is noise: velocity capped to this
MAX_VELOCITY_GAP_NS = 300_000_000  # poses further apart give no velocity
MAX_EXTRAPOLATION_S = 0.15        # beyond this the pose is held, not extrapolated further
HISTORY = 4                       # poses a track keeps (`fitted` draws a line through them)
STALE_NS = 100_000_000            # a live track without a pose for this long may be re-acquired by a birth


def centre(points: np.ndarray) -> np.ndarray | None:
    """(17, 3) -> (3,) mean of the finite joints; None when none is."""
    ok = np.isfinite(points).all(1)
    return points[ok].mean(0) if ok.any() else None


def mean_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean joint distance (m) over joints finite in both; inf when none is."""
    ok = np.isfinite(a).all(1) & np.isfinite(b).all(1)
    return float(np.linalg.norm(a[ok] - b[ok], axis=1).mean()) if ok.any() else float("inf")


@dataclass
class Track:
    id: int
    born_ns: int
    history: deque = field(default_factory=lambda: deque(maxlen=HISTORY))   # (stamp_ns, (17, 3)) oldest first
    fused: int = 0                     # poses fused for this track

    @property
    def last_ns(self) -> int:
        return self.history[-1][0]

    @property
    def last(self) -> np.ndarray:
        return self.history[-1][1]

    def update(self, stamp_ns: int, points: np.ndarray, *, fused: bool = True) -> None:
        """A new pose; joints the fusion left NaN keep their previous value (for prediction)."""
        if self.history and stamp_ns <= self.last_ns:
            return
        prev = self.last if self.history else None
        pts = points.copy()
        if prev is not None:
            lost = ~np.isfinite(pts).all(1)
            pts[lost] = prev[lost]
        self.history.append((stamp_ns, pts))
        self.fused += int(fused)

    def velocity(self) -> np.ndarray:
        """(17, 3) m/s from the last two poses (zeros without two close ones)."""
        if len(self.history) < 2:
            return np.zeros((17, 3))
        (t0, p0), (t1, p1) = self.history[-2], self.history[-1]
        if t1 - t0 > MAX_VELOCITY_GAP_NS or t1 <= t0:
            return np.zeros_like(p1)
        v = np.nan_to_num((p1 - p0) / ((t1 - t0) * 1e-9))
        speed = np.linalg.norm(v, axis=1, keepdims=True)
        return v * np.minimum(1.0, MAX_SPEED_M_S / np.maximum(speed, 1e-9))

    def fitted(self, stamp_ns: int) -> np.ndarray:
        """(17, 3) each joint's least-squares line through the track's last HISTORY poses, at
        `stamp_ns` (at most MAX_EXTRAPOLATION_S either way); `predict` with fewer than three poses
        within MAX_VELOCITY_GAP_NS. Less noisy than `predict`, whose velocity comes from two poses:
        what fills in the joints a view lost."""
        recent = [(t, p) for t, p in self.history if self.last_ns - t <= MAX_VELOCITY_GAP_NS]
        if len(recent) < 3:
            return self.predict(stamp_ns)
        t = np.array([(ti - self.last_ns) * 1e-9 for ti, _ in recent])            # (n,) s, the last at 0
        y = np.stack([p for _, p in recent]).reshape(len(recent), -1)            # (n, 51)
        slope, intercept = np.polyfit(t, y, 1)
        dt = np.clip((stamp_ns - self.last_ns) * 1e-9, -MAX_EXTRAPOLATION_S, MAX_EXTRAPOLATION_S)
        return (intercept + slope * dt).reshape(self.last.shape)

    def predict(self, stamp_ns: int) -> np.ndarray:
        """(17, 3) the pose extrapolated to `stamp_ns` (constant velocity, at most
        MAX_EXTRAPOLATION_S either way: a noisy velocity must not carry a lost track away)."""
        dt = np.clip((stamp_ns - self.last_ns) * 1e-9, -MAX_EXTRAPOLATION_S, MAX_EXTRAPOLATION_S)
        return self.last + self.velocity() * dt


@dataclass(frozen=True)
class TrackingConfig:
    max_people: int = 5
    timeout_ns: int = 500_000_000       # no pose for this long: the track ends
    reid_timeout_ns: int = 3_000_000_000
    reid_distance_m: float = 0.6
    merge_distance_m: float = 0.15

    def __post_init__(self) -> None:
        if self.max_people < 1:
            raise ValueError(f"max_people must be >= 1, got {self.max_people}")
        if self.timeout_ns <= 0 or self.reid_timeout_ns < 0:
            raise ValueError("track timeout must be > 0 and the re-id timeout >= 0")


class TrackRegistry:
    """Live tracks by id, recently ended ones for re-identification, and the counts /diagnostics shows."""

    def __init__(self, config: TrackingConfig):
        self.config = config
        self.live: dict[int, Track] = {}
        self._ended: list[tuple[int, Track]] = []      # (end stamp, track)
        self._next_id = 0
        self.stats: Counter[str] = Counter()

    def full(self) -> bool:
        return len(self.live) >= self.config.max_people

    def birth(self, stamp_ns: int, points: np.ndarray) -> Track:
        """A new person: a live track nearby that lost its person (no pose for STALE_NS) takes it
        back; else the id of a recently ended track nearby; else a fresh id."""
        stale = self._stale_nearby(stamp_ns, points)
        if stale is not None:
            self.stats["reacquired"] += 1
            stale.update(stamp_ns, points, fused=False)
            return stale
        old = self._reidentify(stamp_ns, points)
        if old is not None:
            self.stats["reidentified"] += 1
            track = Track(id=old, born_ns=stamp_ns)
        else:
            self.stats["births"] += 1
            track = Track(id=self._next_id, born_ns=stamp_ns)
            self._next_id += 1
        track.update(stamp_ns, points, fused=False)
        self.live[track.id] = track
        return track

    def _stale_nearby(self, stamp_ns: int, points: np.ndarray) -> Track | None:
        c = centre(points)
        stale = [t for t in self.live.values() if stamp_ns - t.last_ns >= STALE_NS]
        if c is None or not stale:
            return None
        dist = [float(np.linalg.norm(centre(t.last) - c)) for t in stale]
        k = int(np.argmin(dist))
        return stale[k] if dist[k] <= self.config.reid_distance_m else None

    def _reidentify(self, stamp_ns: int, points: np.ndarray) -> int | None:
        c = centre(points)
        self._ended = [(t, tr) for t, tr in self._ended if stamp_ns - t <= self.config.reid_timeout_ns]
        if c is None or not self._ended:
            return None
        dist = [np.linalg.norm(centre(tr.last) - c) for _, tr in self._ended]
        k = int(np.argmin(dist))
        if dist[k] > self.config.reid_distance_m or self._ended[k][1].id in self.live:
            return None
        return self._ended.pop(k)[1].id

    def end(self, track_id: int, stamp_ns: int) -> None:
        track = self.live.pop(track_id, None)
        if track is not None:
            self.stats["deaths"] += 1
            if track.fused:
                self._ended.append((stamp_ns, track))

    def expire(self, now_ns: int) -> list[int]:
        """End the tracks without a pose for longer than the timeout; their ids."""
        gone = [i for i, t in self.live.items() if now_ns - t.last_ns > self.config.timeout_ns]
        for i in gone:
            self.end(i, now_ns)
        return gone

    def merge_duplicates(self, poses: dict[int, np.ndarray], stamp_ns: int) -> list[int]:
        """Of two tracks fused to the same person at one instant, end the younger; their ids."""
        gone: list[int] = []
        ids = sorted(poses, key=lambda i: (self.live[i].born_ns, i))
        for a_i, a in enumerate(ids):
            for b in ids[a_i + 1:]:
                if a not in gone and b not in gone and \
                        mean_distance(poses[a], poses[b]) < self.config.merge_distance_m:
                    gone.append(b)
        for i in gone:
            self.stats["merged"] += 1
            del self.live[i]                 # a duplicate: no id to give back later
        return gone

    def reset(self) -> None:
        self.live.clear()
        self._ended.clear()
