"""Capture schedules: when each camera of a rig takes a frame.

DenseWarper's premise (sparse interleaved input) is an *interleaved* rig: N cameras at an aggregate
rate R, camera c triggered at `offset_c + k / rate_c`, by default `rate_c = R / N` and
`offset_c = c / R`, so the union of all frames is one frame every 1/R s and each camera runs at
R/N. Any per-camera rates and phase offsets can be given (free-running, unsynchronised cameras have
arbitrary phases).

Stamp errors are per camera: a constant offset (a camera that stamps on arrival, a latency of its
own) and a drift in ppm (a free-running clock), stamp = capture time + offset + drift * capture
time. They change only what the stamps say, never when the frame was taken (`stamp_errors`).

Imperfections are per capture slot (camera, nominal time): Gaussian jitter of the real capture time
(the stamp carries the real time) and dropped frames. They are drawn from a counter-based hash of
(seed, camera, nominal time in microseconds), so the same slot gets the same jitter and the same
drop in every schedule that contains it: the interleaved schedule and the dense synchronised
reference share their common frames exactly, which the benchmark needs for a fair comparison.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from dense_warper_ros.data.rigs import config_from_dict


@dataclass(frozen=True)
class ScheduleConfig:
    """Interleaved capture of N cameras (N comes from the rig)."""

    rate_hz: float = 60.0                          # aggregate rate R: frames per second, all cameras
    camera_rates_hz: tuple[float, ...] | None = None   # per-camera rates; default R/N each
    offsets_s: tuple[float, ...] | None = None     # per-camera phase; default c/R (even interleave)
    jitter_s: float = 0.0                          # std of the real capture time around the trigger
    drop_prob: float = 0.0                         # probability that a frame is lost
    seed: int = 0                                  # seed of jitter and drops
    stamp_offsets_s: tuple[float, ...] | None = None   # per camera: stamp minus capture time
    stamp_drift_ppm: tuple[float, ...] | None = None   # per camera: the stamp clock's rate error

    def __post_init__(self) -> None:
        if self.rate_hz <= 0:
            raise ValueError(f"schedule: rate_hz must be > 0, got {self.rate_hz}")
        if self.jitter_s < 0:
            raise ValueError(f"schedule: jitter_s must be >= 0, got {self.jitter_s}")
        if not 0 <= self.drop_prob < 1:
            raise ValueError(f"schedule: drop_prob must be in [0, 1), got {self.drop_prob}")
        if self.camera_rates_hz is not None and any(r <= 0 for r in self.camera_rates_hz):
            raise ValueError(f"schedule: camera_rates_hz must be > 0, got {self.camera_rates_hz}")

    def stamp_errors(self, camera: np.ndarray, time: np.ndarray) -> np.ndarray:
        """(E,) s: what each frame's stamp adds to its capture time `time` (E,), camera (E,)."""
        camera = np.asarray(camera, dtype=int)
        V = int(camera.max()) + 1 if camera.size else 0
        offsets = self._per_camera(self.stamp_offsets_s, "stamp_offsets_s", V)
        drift = self._per_camera(self.stamp_drift_ppm, "stamp_drift_ppm", V) * 1e-6
        return offsets[camera] + drift[camera] * np.asarray(time, dtype=np.float64)

    @staticmethod
    def _per_camera(values: tuple[float, ...] | None, name: str, V: int) -> np.ndarray:
        if values is None:
            return np.zeros(V)
        if len(values) < V:
            raise ValueError(f"schedule: {name} has {len(values)} values for {V} cameras: {values}")
        return np.asarray(values, dtype=np.float64)

    def rates(self, num_cameras: int) -> np.ndarray:
        """(V,) per-camera rates in Hz."""
        if self.camera_rates_hz is None:
            return np.full(num_cameras, self.rate_hz / num_cameras)
        if len(self.camera_rates_hz) != num_cameras:
            raise ValueError(f"schedule: camera_rates_hz has {len(self.camera_rates_hz)} values for "
                             f"{num_cameras} cameras: {self.camera_rates_hz}")
        return np.asarray(self.camera_rates_hz, dtype=np.float64)

    def offsets(self, num_cameras: int) -> np.ndarray:
        """(V,) per-camera phase offsets in seconds."""
        if self.offsets_s is None:
            return np.arange(num_cameras) / self.rate_hz
        if len(self.offsets_s) != num_cameras:
            raise ValueError(f"schedule: offsets_s has {len(self.offsets_s)} values for "
                             f"{num_cameras} cameras: {self.offsets_s}")
        return np.asarray(self.offsets_s, dtype=np.float64)

    def cycle_s(self, num_cameras: int) -> float:
        """Period after which every camera has captured at least once (the window of the method)."""
        return float(1.0 / self.rates(num_cameras).min())


def schedule_from_dict(data: Mapping[str, Any] | None) -> ScheduleConfig:
    return config_from_dict(ScheduleConfig, data, "schedule")


@dataclass(frozen=True, eq=False)
class Schedule:
    """Capture events sorted by nominal time, then camera. E = number of events."""

    camera: np.ndarray      # (E,) int camera index
    nominal: np.ndarray     # (E,) s, trigger instant
    time: np.ndarray        # (E,) s, real capture time (nominal + jitter); what stamps say
    dropped: np.ndarray     # (E,) bool, frame lost
    num_cameras: int

    def __len__(self) -> int:
        return len(self.camera)

    def received(self) -> "Schedule":
        keep = ~self.dropped
        return Schedule(self.camera[keep], self.nominal[keep], self.time[keep], self.dropped[keep],
                        self.num_cameras)

    def camera_times(self, c: int, *, nominal: bool = True) -> np.ndarray:
        """Sorted (nominal or real) capture times of camera c."""
        sel = self.camera == c
        return np.sort(self.nominal[sel] if nominal else self.time[sel])


# --- deterministic per-slot randomness ------------------------------------------------------------
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    x = (x + np.uint64(0x9E3779B97F4A7C15)) & _MASK64
    x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK64
    x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK64
    return x ^ (x >> np.uint64(31))


def slot_uniform(seed: int, camera: np.ndarray, nominal: np.ndarray, stream: int) -> np.ndarray:
    """(E,) uniforms in (0, 1), a pure function of (seed, stream, camera, nominal time in us)."""
    key = np.round(np.asarray(nominal, dtype=np.float64) * 1e6).astype(np.int64).astype(np.uint64)
    cam = np.asarray(camera, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        h = _splitmix64(np.full(key.shape, np.uint64(seed & 0xFFFFFFFF)) * np.uint64(1 << 32)
                        + np.uint64(stream))
        h = _splitmix64(h ^ _splitmix64(cam))
        h = _splitmix64(h ^ key)
    return ((h >> np.uint64(11)).astype(np.float64) + 0.5) / float(1 << 53)


def slot_normal(seed: int, camera: np.ndarray, nominal: np.ndarray, stream: int) -> np.ndarray:
    """(E,) standard normals per slot (Box-Muller on two hashed uniforms)."""
    u1 = slot_uniform(seed, camera, nominal, 2 * stream)
    u2 = slot_uniform(seed, camera, nominal, 2 * stream + 1)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2 * np.pi * u2)


def _make(camera: np.ndarray, nominal: np.ndarray, num_cameras: int, *, jitter_s: float,
          drop_prob: float, seed: int) -> Schedule:
    order = np.lexsort((camera, nominal))
    camera, nominal = camera[order].astype(int), nominal[order]
    jitter = np.clip(slot_normal(seed, camera, nominal, 0), -3, 3) * jitter_s
    dropped = slot_uniform(seed, camera, nominal, 10) < drop_prob
    return Schedule(camera, nominal, nominal + jitter, dropped, num_cameras)


def interleaved(cfg: ScheduleConfig, num_cameras: int, t_start: float, t_end: float) -> Schedule:
    """Camera c at t_start + offset_c + k / rate_c (k >= 0), up to t_end."""
    if t_end <= t_start:
        raise ValueError(f"schedule: empty interval [{t_start}, {t_end}]")
    rates, offsets = cfg.rates(num_cameras), cfg.offsets(num_cameras)
    cams, times = [], []
    for c in range(num_cameras):
        n = int(np.floor((t_end - t_start - offsets[c]) * rates[c] + 1e-9)) + 1
        t = t_start + offsets[c] + np.arange(max(n, 0)) / rates[c]
        cams.append(np.full(len(t), c))
        times.append(t)
    return _make(np.concatenate(cams), np.concatenate(times), num_cameras,
                 jitter_s=cfg.jitter_s, drop_prob=cfg.drop_prob, seed=cfg.seed)


def synchronized(instants: np.ndarray, num_cameras: int, *, jitter_s: float = 0.0,
                 drop_prob: float = 0.0, seed: int = 0) -> Schedule:
    """Every camera at each nominal instant (T,) (a hardware-triggered rig)."""
    instants = np.asarray(instants, dtype=np.float64).ravel()
    cams = np.repeat(np.arange(num_cameras)[None], len(instants), 0).ravel()
    times = np.repeat(instants, num_cameras)
    return _make(cams, times, num_cameras, jitter_s=jitter_s, drop_prob=drop_prob, seed=seed)


def synchronized_like(cfg: ScheduleConfig, instants: np.ndarray, num_cameras: int) -> Schedule:
    """`synchronized` with the jitter, drops and seed of an interleaved config."""
    return synchronized(instants, num_cameras, jitter_s=cfg.jitter_s, drop_prob=cfg.drop_prob,
                        seed=cfg.seed)
