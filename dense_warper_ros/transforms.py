"""A small time-aware transform tree, for the TF fallback where tf2 is not installed.

Where tf2_ros imports, the node uses it instead (dense_warper_ros/ros/tf_source.py). This keeps
only what the node needs: static and time-stamped edges child -> parent, and `lookup(target,
source, stamp)` composing the chain, interpolating dynamic edges between the two nearest stamps
(linear translation, quaternion slerp). Quaternions are (x, y, z, w) as in geometry_msgs.
"""
from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass

import numpy as np


class TransformError(LookupError):
    """No transform between the frames at that time (unknown frame, no path, or out of range)."""


def quat_to_matrix(q) -> np.ndarray:
    x, y, z, w = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def matrix_to_quat(R: np.ndarray) -> np.ndarray:
    """(3, 3) rotation -> (x, y, z, w), w >= 0 (Shepperd's method)."""
    R = np.asarray(R, dtype=np.float64)
    tr = np.trace(R)
    if tr > 0:
        s = 2 * np.sqrt(tr + 1)
        q = [(R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s, s / 4]
    else:
        i = int(np.argmax(np.diag(R)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2 * np.sqrt(1 + R[i, i] - R[j, j] - R[k, k])
        q = [0.0, 0.0, 0.0, (R[k, j] - R[j, k]) / s]
        q[i] = s / 4
        q[j] = (R[j, i] + R[i, j]) / s
        q[k] = (R[k, i] + R[i, k]) / s
    q = np.array(q)
    return q if q[3] >= 0 else -q


def slerp(q0: np.ndarray, q1: np.ndarray, a: float) -> np.ndarray:
    q0, q1 = np.asarray(q0, float), np.asarray(q1, float)
    d = float(np.dot(q0, q1))
    if d < 0:
        q1, d = -q1, -d
    if d > 0.9995:
        q = q0 + a * (q1 - q0)
        return q / np.linalg.norm(q)
    th = np.arccos(d)
    return (np.sin((1 - a) * th) * q0 + np.sin(a * th) * q1) / np.sin(th)


@dataclass(frozen=True)
class Transform:
    """parent <- child: p_parent = R @ p_child + t."""
    R: np.ndarray
    t: np.ndarray

    def __matmul__(self, other: "Transform") -> "Transform":
        return Transform(self.R @ other.R, self.R @ other.t + self.t)

    def inverse(self) -> "Transform":
        return Transform(self.R.T, -self.R.T @ self.t)


class TransformTree:
    """Edges child -> parent; dynamic edges keep `history_ns` of samples."""

    def __init__(self, *, history_ns: int = 10_000_000_000):
        self.history_ns = history_ns
        self._parent: dict[str, str] = {}
        self._static: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._stamps: dict[str, list[int]] = defaultdict(list)
        self._samples: dict[str, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)

    def clear(self, *, keep_static: bool = True) -> None:
        """Drop dynamic history (after a clock jump); static transforms stay unless asked."""
        self._stamps.clear()
        self._samples.clear()
        if not keep_static:
            self._static.clear()
            self._parent.clear()
        else:
            self._parent = {c: p for c, p in self._parent.items() if c in self._static}

    def add(self, parent: str, child: str, stamp_ns: int, translation, quaternion, *, static: bool) -> None:
        parent, child = parent.lstrip("/"), child.lstrip("/")
        if not parent or not child or parent == child:
            raise ValueError(f"invalid transform edge {parent!r} <- {child!r}")
        self._parent[child] = parent
        sample = (np.asarray(translation, float), np.asarray(quaternion, float))
        if static:
            self._static[child] = sample
            return
        st, sa = self._stamps[child], self._samples[child]
        i = bisect.bisect_left(st, stamp_ns)
        if i < len(st) and st[i] == stamp_ns:
            sa[i] = sample
        else:
            st.insert(i, stamp_ns)
            sa.insert(i, sample)
        while st and st[-1] - st[0] > self.history_ns:
            del st[0], sa[0]

    def frames(self) -> set[str]:
        return set(self._parent) | set(self._parent.values())

    def _edge(self, child: str, stamp_ns: int) -> Transform:
        if child in self._static:
            t, q = self._static[child]
            return Transform(quat_to_matrix(q), t)
        st, sa = self._stamps[child], self._samples[child]
        if not st:
            raise TransformError(f"no transform for frame {child!r}")
        i = bisect.bisect_left(st, stamp_ns)
        if i < len(st) and st[i] == stamp_ns:
            t, q = sa[i]
        elif 0 < i < len(st):
            a = (stamp_ns - st[i - 1]) / (st[i] - st[i - 1])
            (t0, q0), (t1, q1) = sa[i - 1], sa[i]
            t, q = (1 - a) * t0 + a * t1, slerp(q0, q1, a)
        else:
            raise TransformError(
                f"frame {child!r}: stamp {stamp_ns * 1e-9:.3f} s outside the buffered "
                f"{st[0] * 1e-9:.3f}..{st[-1] * 1e-9:.3f} s")
        return Transform(quat_to_matrix(q), t)

    def _chain(self, frame: str) -> list[str]:
        chain = [frame]
        while chain[-1] in self._parent:
            chain.append(self._parent[chain[-1]])
            if len(chain) > 64:
                raise TransformError(f"transform loop above {frame!r}")
        return chain

    def lookup(self, target: str, source: str, stamp_ns: int) -> Transform:
        """target <- source at `stamp_ns`: maps points in `source` to `target`."""
        target, source = target.lstrip("/"), source.lstrip("/")
        if target == source:
            return Transform(np.eye(3), np.zeros(3))
        for f in (target, source):
            if f not in self.frames():
                raise TransformError(f"frame {f!r} does not exist (known: {sorted(self.frames())})")
        up_s, up_t = self._chain(source), self._chain(target)
        common = next((f for f in up_s if f in set(up_t)), None)
        if common is None:
            raise TransformError(f"frames {target!r} and {source!r} are not connected")
        root_from_source = Transform(np.eye(3), np.zeros(3))
        for f in up_s[:up_s.index(common)]:
            root_from_source = self._edge(f, stamp_ns) @ root_from_source
        root_from_target = Transform(np.eye(3), np.zeros(3))
        for f in up_t[:up_t.index(common)]:
            root_from_target = self._edge(f, stamp_ns) @ root_from_target
        return root_from_target.inverse() @ root_from_source
