"""Each camera's clock offset, estimated from the people it sees: the stamps say when, the epipolar
geometry says whether two views are simultaneous.

Stamps are capture time plus an unknown per-camera offset o_c (a camera that stamps on arrival,
a latency of its own). A joint that camera a sees at stamp s_a lies, in camera b's image, on the
epipolar line of that 2D point only at b's stamp s_b = s_a + (o_b - o_a), when both saw the same
instant. For every pair of cameras and every tracked person the estimator interpolates camera b's
2D keypoints of that person in time (b's own frames, linear) and finds the shift d_ab = o_b - o_a
that puts them on the epipolar lines of camera a's keypoints: a few Gauss-Newton steps on the
signed epipolar distances, each divided by its expected jitter (an interpolated keypoint carries
less of it half-way between two frames than on one: unscaled, the fit would pull every shift there),
Huber-weighted at two robust standard deviations (misdetections, swaps). The pairwise shifts then
give the per-camera offsets relative to a reference camera by weighted least squares. Only 2D
keypoints, their track ids and the calibration are used, not the fused 3D poses (which the offsets
themselves would bias).

The window is sliding (`window_s` of observations per camera), so a slow drift is followed; a
joint moving along the epipolar line carries no timing information and gets no weight (its
Jacobian is zero). A constant epipolar distance of one joint of one person (the detector's own
bias between two views, a calibration error) is removed before the fit: it is not a timing error.
A pair's standard error is cluster-robust over (person, joint), whose distances are correlated in
time, and grows with the disagreement of the pairs around loops of three cameras.
"""
from __future__ import annotations

import dataclasses
from collections import defaultdict, deque
from dataclasses import dataclass

import numpy as np

from dense_warper_ros.cameras import Camera, fundamental_matrix

HUBER_K = 2.0             # epipolar distances beyond this many robust stds are down-weighted
MIN_SCALE_PX = 0.5        # floor of that std (noise-free data)
MAX_GAP_S = 0.25          # b's frames further apart give no interpolation
NOISE_SLOW = 0.5          # MoveNet's keypoint jitter on the pose2sim video: about half of its variance
NOISE_TAU_S = 0.15        # is white, half correlated over this time (autocorrelation 0.3-0.6 at
                          # 17 ms, 0.25 at 67 ms, 0.1-0.2 at 133 ms)
APPLY_MAX_SIGMA_S = 0.003   # an estimate corrects stamps only once its standard error is below this
APPLY_MIN_SEEN_S = 5.0      # ... and it rests on at least this much motion seen with another camera


@dataclass(frozen=True)
class OffsetEstimate:
    offset_s: float          # this camera's stamp minus the reference camera's, for one instant
    sigma_s: float           # standard error (inf: not observable from the data in the window)
    pairs: int               # camera pairs with enough common motion
    seen_s: float = 0.0      # longest span of people seen by this camera and another one, summed over people

    @property
    def known(self) -> bool:
        """Well enough to correct stamps by (a 5 ms error costs as much as the offset it removes).
        The standard error alone is not enough: over a short span the jitter of a few joints
        looks like timing and the standard error is too small (docs/clock_offsets.md), so the
        estimate must also rest on `APPLY_MIN_SEEN_S` of motion."""
        return self.sigma_s <= APPLY_MAX_SIGMA_S and self.seen_s >= APPLY_MIN_SEEN_S

    @property
    def correction_s(self) -> float:
        """What to subtract from this camera's stamps: the offset once `known`, else 0."""
        return self.offset_s if self.known else 0.0


@dataclass(frozen=True)
class PairShift:
    """One camera pair's shift d_ab = o_b - o_a (s) and its standard error, from all the people the
    two cameras saw and from each person alone (track id -> (shift, standard error))."""
    a: int
    b: int
    shift_s: float
    sigma_s: float
    by_track: dict[int, tuple[float, float]]


def loop_mismatches(pairs: list[PairShift]) -> list[tuple[int, int, int, float, float]]:
    """(a, b, c, d_ab + d_bc - d_ac, its standard error) for every loop of three cameras whose pairs
    are all constrained, largest mismatch first. Exact offsets close every loop: a mismatch well
    beyond its standard error says the stated errors are too small."""
    by = {(p.a, p.b): p for p in pairs if np.isfinite(p.sigma_s)}
    out = []
    for (a, b), ab in by.items():
        for (b2, c), bc in by.items():
            if b2 == b and (ac := by.get((a, c))) is not None:
                out.append((a, b, c, ab.shift_s + bc.shift_s - ac.shift_s,
                            float(np.sqrt(ab.sigma_s ** 2 + bc.sigma_s ** 2 + ac.sigma_s ** 2))))
    return sorted(out, key=lambda x: -abs(x[3]))


def _with_sigma(d: float, weight: float) -> tuple[float, float]:
    return d, (1.0 / np.sqrt(weight) if weight > 0 else float("inf"))


@dataclass
class _Track2D:
    """One camera's view of one tracked person: stamps (s) and keypoints over the window."""
    stamps: deque
    points: deque            # (J, 2) undistorted px, NaN where not confident


class ClockOffsetEstimator:
    def __init__(self, num_cameras: int, *, reference: int = 0, window_s: float = 10.0,
                 min_score: float = 0.3, max_offset_s: float = 0.2, iterations: int = 6,
                 noise_tau_s: float = NOISE_TAU_S):
        self.num_cameras = num_cameras
        self.reference = reference
        self.window_s = window_s
        self.min_score = min_score
        self.max_offset_s = max_offset_s
        self.iterations = iterations
        self.noise_tau_s = noise_tau_s
        self.cameras: dict[int, Camera] = {}
        self._tracks: dict[tuple[int, int], _Track2D] = defaultdict(
            lambda: _Track2D(deque(maxlen=4096), deque(maxlen=4096)))
        self.pairs = [(a, b) for a in range(num_cameras) for b in range(a + 1, num_cameras)]
        self._fitted: dict[tuple[int, int], tuple[float, float, float]] = {}   # pair -> (d, weight, seen s)
        self._next_pair = 0

    def reset(self) -> None:
        """Forget the window and the fits (the stream's time went back: a looped bag)."""
        self._tracks.clear()
        self._fitted.clear()

    # --- input ----------------------------------------------------------------------------------
    def observe(self, camera_index: int, stamp_ns: int, track_id: int, keypoints: np.ndarray,
                scores: np.ndarray, camera: Camera, *, pinhole: bool = False) -> None:
        """A tracked person's 2D keypoints (J, 2) image px in one frame (`pinhole`: already
        undistorted)."""
        self.cameras[camera_index] = camera
        pts = np.nan_to_num(np.asarray(keypoints, np.float64))        # a copy: NaNs are set below
        if not pinhole:
            pts = camera.undistort_points(pts)
        pts[~(np.asarray(scores) >= self.min_score)] = np.nan
        tr = self._tracks[(camera_index, track_id)]
        t = stamp_ns * 1e-9
        if tr.stamps and t <= tr.stamps[-1]:
            return
        tr.stamps.append(t)
        tr.points.append(pts)
        while tr.stamps and t - tr.stamps[0] > self.window_s:
            tr.stamps.popleft()
            tr.points.popleft()

    # --- estimate -------------------------------------------------------------------------------
    def estimate(self) -> dict[int, OffsetEstimate]:
        """Per camera, its offset relative to the reference camera (the reference: 0), every pair
        fitted afresh."""
        for _ in self.pairs:
            self.refresh_next_pair()
        return self.estimate_cached()

    def refresh_next_pair(self) -> None:
        """Fit one camera pair (in turn) on the window as it is now. A live caller refreshes one
        pair at a time, so that no single frame waits for the fits of all pairs (tens of ms)."""
        if not self.pairs:
            return
        a, b = self.pairs[self._next_pair % len(self.pairs)]
        self._next_pair += 1
        self._refit(a, b)

    def _refit(self, a: int, b: int) -> tuple[float, float]:
        """Pair (a, b) fitted on the window as it is now, kept for `estimate_cached` -> (d, weight)."""
        d, w = self.pair_shift(a, b)
        self._fitted[(a, b)] = (d, w, self.seen_together(a, b))
        return d, w

    def estimate_cached(self) -> dict[int, OffsetEstimate]:
        """`estimate` from each pair's latest fit (`refresh_next_pair`)."""
        rows, seen = [], np.zeros(self.num_cameras)
        for (a, b), (d, w, both) in sorted(self._fitted.items()):
            if w > 0:
                rows.append((a, b, d, w))
                seen[[a, b]] = np.maximum(seen[[a, b]], both)
        return {c: dataclasses.replace(e, seen_s=float(seen[c])) for c, e in self._solve(rows).items()}

    def seen_together(self, a: int, b: int) -> float:
        """Seconds during which cameras a and b both saw the same tracked people, summed over people."""
        total = 0.0
        for (c, k), ta in list(self._tracks.items()):
            tb = self._tracks.get((b, k)) if c == a else None
            if tb is not None and ta.stamps and tb.stamps:
                total += max(0.0, min(ta.stamps[-1], tb.stamps[-1]) - max(ta.stamps[0], tb.stamps[0]))
        return total

    def pair_shifts(self) -> list[PairShift]:
        """Every camera pair's shift from all its people and from each person alone: where the people
        of one pair, or the pairs around a loop of three cameras, disagree beyond their standard
        errors, something other than timing (a swap, an occluded view, a calibration error) moves
        the estimate. Every pair is refitted on the way, so `estimate_cached` then gives the offsets
        of the same fits."""
        out = []
        for a, b in self.pairs:
            ids = sorted(k for (c, k) in list(self._tracks) if c == a and (b, k) in self._tracks)
            each = {k: _with_sigma(*self.pair_shift(a, b, track_ids={k})) for k in ids}
            out.append(PairShift(a, b, *_with_sigma(*self._refit(a, b)), each))
        return out

    def pair_shift(self, a: int, b: int, *, track_ids: set[int] | None = None) -> tuple[float, float]:
        """(d_ab = o_b - o_a in s, its weight 1 / variance) from the tracks `track_ids` (None: all);
        weight 0 when nothing constrains it."""
        if a not in self.cameras or b not in self.cameras:
            return 0.0, 0.0
        F = fundamental_matrix(self.cameras[a], self.cameras[b])
        tracks = [_PairTrack.of(ta, self._tracks[(b, k)], F) for (c, k), ta in list(self._tracks.items())
                  if c == a and (track_ids is None or k in track_ids)
                  and (b, k) in self._tracks and len(self._tracks[(b, k)].stamps) >= 2]
        if not tracks:
            return 0.0, 0.0
        d = 0.0
        for _ in range(self.iterations):
            r, J, g = self._centred_residuals(tracks, d)
            if len(r) < 10:
                return 0.0, 0.0
            w = _huber_weights(r)
            info = float(np.sum(w * J * J))
            if info <= 0:
                return 0.0, 0.0
            step = -float(np.sum(w * J * r)) / info
            d = float(np.clip(d + step, -self.max_offset_s, self.max_offset_s))
            if abs(step) < 1e-5:
                break
        r, J, g = self._centred_residuals(tracks, d)
        w = _huber_weights(r)
        info = float(np.sum(w * J * J))
        # Cluster-robust (sandwich) variance over (track, joint): one joint's jitter is correlated
        # in time, so its residuals are not independent samples.
        _, groups = np.unique(g, return_inverse=True)
        score = np.bincount(groups, weights=w * J * r)
        G = len(score)
        var = float(np.sum(score ** 2)) * G / max(G - 1, 1) / max(info, 1e-12) ** 2
        return (d, 1.0 / var) if info > 0 and var > 0 else (0.0, 0.0)

    def _centred_residuals(self, tracks: list["_PairTrack"], d: float):
        r, J, g = _residuals(tracks, d, self.noise_tau_s)
        return _centred(r, g), _centred(J, g), g

    def _solve(self, rows: list[tuple[int, int, float, float]]) -> dict[int, OffsetEstimate]:
        """Weighted least squares o_b - o_a = d_ab with o_reference = 0."""
        n, ref = self.num_cameras, self.reference
        free = [c for c in range(n) if c != ref]
        col = {c: i for i, c in enumerate(free)}
        A = np.zeros((len(rows), len(free)))
        y = np.zeros(len(rows))
        w = np.zeros(len(rows))
        for r, (a, b, d, wt) in enumerate(rows):
            if b in col:
                A[r, col[b]] += 1.0
            if a in col:
                A[r, col[a]] -= 1.0
            y[r], w[r] = d, wt
        N = A.T @ (A * w[:, None])
        out = {ref: OffsetEstimate(0.0, 0.0, sum(ref in (a, b) for a, b, _, _ in rows))}
        if not rows or np.linalg.matrix_rank(N) < len(free):
            out.update({c: OffsetEstimate(0.0, float("inf"), 0) for c in free})
            return out
        cov = np.linalg.inv(N)
        o = cov @ (A.T @ (w * y))
        dof = len(rows) - len(free)
        if dof > 0:   # pairs that disagree around a loop: the per-pair errors are larger than stated
            chi2 = float(np.sum(w * (A @ o - y) ** 2)) / dof
            cov = cov * max(1.0, chi2)
        for c, i in col.items():
            out[c] = OffsetEstimate(float(o[i]), float(np.sqrt(cov[i, i])),
                                    sum(c in (a, b) for a, b, _, _ in rows))
        return dict(sorted(out.items()))


def _huber_weights(r: np.ndarray) -> np.ndarray:
    """Huber weights at HUBER_K robust (median absolute) standard deviations of r."""
    k = HUBER_K * max(1.4826 * float(np.median(np.abs(r))), MIN_SCALE_PX)
    return np.minimum(1.0, k / np.maximum(np.abs(r), 1e-12))


def _centred(x: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """x minus its mean per group: a constant epipolar distance of one joint of one person (the
    detector's own bias between two views, a calibration error) says nothing about timing."""
    _, inv, counts = np.unique(groups, return_inverse=True, return_counts=True)
    return x - (np.bincount(inv, weights=x) / counts)[inv]


@dataclass(frozen=True)
class _PairTrack:
    """One person seen by cameras a and b, as arrays: a's stamps (Na,) and epipolar lines in b of
    its keypoints (Na, J, 3), normalised so a point's distance to its line is a dot product; b's
    stamps (Nb,) and keypoints (Nb, J, 2)."""
    stamps_a: np.ndarray
    lines: np.ndarray
    stamps_b: np.ndarray
    points_b: np.ndarray

    @classmethod
    def of(cls, ta: _Track2D, tb: _Track2D, F: np.ndarray) -> "_PairTrack":
        pa = np.stack(ta.points)                                            # (Na, J, 2)
        lines = np.concatenate([pa, np.ones(pa.shape[:2] + (1,))], -1) @ F.T   # (Na, J, 3): l = F x_a
        lines = lines / np.linalg.norm(lines[..., :2], axis=-1, keepdims=True)
        return cls(np.asarray(ta.stamps), lines, np.asarray(tb.stamps), np.stack(tb.points))


def _residuals(tracks: list[_PairTrack], d: float,
               tau_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Signed epipolar distances of b's keypoints, interpolated to each of a's stamps + d, in units
    of their noise (`_noise_scale`), their derivative in d, and a group id per (track, joint), over
    every joint of every shared track."""
    rs, Js, gs = [], [], []
    for k, tr in enumerate(tracks):
        q, v, ok_t, frac, gap = _interpolate(tr.stamps_b, tr.points_b, tr.stamps_a + d)
        lines = tr.lines[ok_t]
        e = np.sum(lines[..., :2] * q, axis=-1) + lines[..., 2]               # (n, J)
        J = np.sum(lines[..., :2] * v, axis=-1)
        s, ds = _noise_scale(frac, gap, tau_s)                                 # (n,) x 2
        r = e / s[:, None]
        Jr = J / s[:, None] - r * (ds / s)[:, None]
        ok = np.isfinite(r) & np.isfinite(Jr)
        rs.append(r[ok])
        Js.append(Jr[ok])
        gs.append(k * lines.shape[1] + np.nonzero(ok)[1])
    if not rs:
        return np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64)
    return np.concatenate(rs), np.concatenate(Js), np.concatenate(gs)


def _noise_scale(frac: np.ndarray, gap: np.ndarray, tau_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Relative std s of an epipolar distance whose b point is interpolated at fraction `frac` (n,)
    of a gap `gap` (n,) s between b's frames, and ds/dd. Every keypoint carries jitter of one std,
    correlated rho = NOISE_SLOW exp(-gap / tau) between b's two frames, so
    var = 1 (a's point) + (1-f)^2 + f^2 + 2 f (1-f) rho (b's). Interpolated jitter is smallest
    half-way between b's frames: plain squared distances would pull every shift towards putting a's
    stamps there (synchronised cameras towards half a frame). Dividing by s, with the derivative of
    s in the Jacobian, makes the expected gradient zero at the true shift."""
    rho = NOISE_SLOW * np.exp(-gap / tau_s) if tau_s > 0 else np.zeros_like(gap)
    var = 1.0 + (1 - frac) ** 2 + frac ** 2 + 2 * frac * (1 - frac) * rho
    dvar = 2 * (2 * frac - 1) * (1 - rho) / gap                  # d var / d d (frac moves at 1/gap)
    s = np.sqrt(var)
    return s, dvar / (2 * s)


def _interpolate(stamps: np.ndarray, points: np.ndarray, t: np.ndarray):
    """Linear interpolation of (N, J, 2) keypoints at times t (M,) -> keypoints (m, J, 2), their
    velocity (m, J, 2) px/s, which of the M times were inside the frames, with no gap longer than
    MAX_GAP_S around them (m of them), and for those the fraction of the gap (m,) and the gap (m,) s."""
    i = np.searchsorted(stamps, t)
    ok = (i > 0) & (i < len(stamps))
    i = i[ok]
    t0, t1 = stamps[i - 1], stamps[i]
    near = t1 - t0 <= MAX_GAP_S
    ok[np.flatnonzero(ok)[~near]] = False
    i, t0, t1 = i[near], t0[near], t1[near]
    gap = t1 - t0
    v = (points[i] - points[i - 1]) / gap[:, None, None]
    frac = (t[ok] - t0) / gap
    return points[i - 1] + v * (t[ok] - t0)[:, None, None], v, ok, frac, gap
