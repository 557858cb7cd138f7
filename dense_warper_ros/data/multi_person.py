"""A multi-person synthetic scene: several held-out clips moving about the rig and crossing, seen by
a detector that confuses people the way real ones do.

Why: the single-person benchmark never asks *who is who*. Here each view sees a shuffled list of
`Person2D` per frame, with per-person detector noise (`data.detector_noise`), people missed in
whole frames, false detections, and joints lost where one person hides another, so a tracker has to
associate people across views and time before it can triangulate.

Motion. Person k plays a clip of `motion.TEST_CLIPS` (the held-out split) from its own time shift,
ping-ponged (forwards, then backwards) past the clip's end so any scene length works without a jump.
The clip's own horizontal root motion is removed and the body is turned by a yaw and carried along a
straight floor path p_k(t) = start_k + velocity_k t (the pelvis is exactly on the path), so the
distances between people are known in closed form. With `crossing`, every person after the first
is built to pass one earlier person at a chosen instant and floor distance (`crossing_distance_m`,
0.4-0.8 m: their images overlap in some views); any other pair stays `min_separation_m` apart. All
paths stay inside `area_radius_m` of the origin, where the rigs of `data.rigs` look.

Randomness. Every random stream is seeded by (seed, stream, person id, camera), never by the order
of people in the scene, so `single_person_scenes` (the same people, one per scene) repeat the same
noise, misses and false detections; only the occlusions, which need two people, differ.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np

from dense_warper_ros.cameras import Camera
from dense_warper_ros.data import motion
from dense_warper_ros.data.detector_noise import NoiseConfig, detector_noise, swap_pairs
from dense_warper_ros.data.rigs import config_from_dict
from dense_warper_ros.data.schedules import Schedule
from dense_warper_ros.people import Person2D
from dense_warper_ros.skeleton import NUM_JOINTS, PELVIS

# Stream ids of the seeded generators (`_rng`).
_PATHS, _NOISE, _MISS, _SCORES, _OCCLUDE, _FALSE, _SHUFFLE, _POOL = range(8)
_FALSE_POOL_SIZE = 64          # root-centred poses false detections are drawn from


@dataclass(frozen=True)
class MultiPersonConfig:
    """A multi-person scene and its detector's person-level errors (joint-level noise: NoiseConfig)."""

    num_people: int = 3
    duration_s: float = 4.0                    # the scene covers [0, duration_s]
    clips: tuple[str, ...] = motion.TEST_CLIPS  # person k plays one of these (held out)
    area_radius_m: float = 2.5                 # every pelvis stays within this of the origin
    min_separation_m: float = 1.0              # floor distance between pelvises, except crossings
    crossing: bool = True                      # build close passes (each person after the first)
    crossing_distance_m: tuple[float, float] = (0.4, 0.8)   # closest approach of a crossing pair
    speed_m_s: tuple[float, float] = (0.3, 1.0)  # walking speed along the path
    false_detection_rate: float = 0.05         # mean false detections per frame per camera (Poisson)
    false_score: tuple[float, float] = (0.15, 0.5)   # their joint and detection scores (uniform)
    true_score: tuple[float, float] = (0.6, 1.0)     # scores of real joints (uniform per joint)
    missed_person_prob: float = 0.03           # a person absent from a frame (per frame and person)
    occlusion_prob: float = 0.5                # a joint hidden by a nearer person's box is lost
    occlusion_margin: float = 0.1              # the nearer box grows by this fraction of its size
    min_visible_joints: int = 4                # fewer seen joints: the person is not detected
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_people < 1 or not self.clips:
            raise ValueError(f"multi_person: needs num_people >= 1 and clips, got {self.num_people}, {self.clips}")
        for name in ("duration_s", "area_radius_m", "min_separation_m"):
            if getattr(self, name) <= 0:
                raise ValueError(f"multi_person: {name} must be > 0, got {getattr(self, name)}")
        for name in ("crossing_distance_m", "speed_m_s", "false_score", "true_score"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"multi_person: {name} must satisfy 0 <= lo <= hi, got {(lo, hi)}")
        if self.crossing_distance_m[1] >= self.min_separation_m:
            raise ValueError("multi_person: crossing_distance_m must stay below min_separation_m")
        for name in ("missed_person_prob", "occlusion_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"multi_person: {name} must be in [0, 1], got {getattr(self, name)}")
        if self.false_detection_rate < 0:
            raise ValueError(f"multi_person: false_detection_rate must be >= 0, got {self.false_detection_rate}")
        unknown = sorted(set(self.clips) - set(motion.CLIP_NAMES))
        if unknown:
            raise ValueError(f"multi_person: unknown clip(s) {unknown}")


def multi_person_from_dict(data: Mapping[str, Any] | None) -> MultiPersonConfig:
    return config_from_dict(MultiPersonConfig, data, "multi_person")


def _rng(seed: int, stream: int, *key: int) -> np.random.Generator:
    """A generator that depends only on (seed, stream, key...): draws do not shift when people or
    cameras are added elsewhere in the scene."""
    return np.random.default_rng([seed & 0xFFFFFFFF, stream, *[k + 1 for k in key]])


# --- people and their paths ----------------------------------------------------------------------
def _pingpong(t: np.ndarray, duration: float) -> np.ndarray:
    """Clip time of scene-clock time t (any real): forwards, then backwards, ... (continuous)."""
    u = np.mod(t, 2 * duration)
    return np.where(u <= duration, u, 2 * duration - u)


@dataclass(frozen=True, eq=False)
class PersonMotion:
    """One person: a clip played in place, turned by `yaw` and carried along a straight path."""

    pid: int                    # identity in the full scene (seeds this person's noise)
    clip: motion.MotionClip
    time_shift_s: float
    yaw: float                  # radians about the vertical
    start: np.ndarray           # (2,) pelvis on the floor plane at t = 0, metres
    velocity: np.ndarray        # (2,) m/s

    def path(self, times: np.ndarray) -> np.ndarray:
        """(T, 2) pelvis floor position at times (T,)."""
        return self.start + np.asarray(times, np.float64)[:, None] * self.velocity

    def at(self, times: np.ndarray) -> np.ndarray:
        """(T, 17, 3) world joints, metres, Z up."""
        times = np.asarray(times, np.float64).ravel()
        local = self.clip.at(_pingpong(times + self.time_shift_s, self.clip.duration))   # (T, J, 3)
        local[..., :2] -= local[:, PELVIS:PELVIS + 1, :2]
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        local = local @ np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]).T
        local[..., :2] += self.path(times)[:, None]
        return local


def closest_approach(a: PersonMotion, b: PersonMotion, duration: float) -> tuple[float, float]:
    """(distance m, instant s) of the two pelvises' closest floor approach within [0, duration]."""
    r0, w = a.start - b.start, a.velocity - b.velocity
    ww = float(w @ w)
    t = 0.0 if ww < 1e-12 else float(np.clip(-(r0 @ w) / ww, 0.0, duration))
    return float(np.linalg.norm(r0 + w * t)), t


def _heading(angle: float) -> np.ndarray:
    return np.array([np.cos(angle), np.sin(angle)])


def _free_path(rng: np.random.Generator, cfg: MultiPersonConfig, speed: float, spread: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """(start, velocity) of a path through a point within spread x area radius of the origin at
    mid-scene (near it for the first person of crossings, anywhere when people keep apart)."""
    mid = _heading(rng.uniform(0, 2 * np.pi)) * cfg.area_radius_m * spread * np.sqrt(rng.random())
    v = _heading(rng.uniform(0, 2 * np.pi)) * speed
    return mid - v * cfg.duration_s / 2, v


def _crossing_path(rng: np.random.Generator, cfg: MultiPersonConfig, speed: float, other: PersonMotion
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(start, velocity) of a path that passes `other` at a drawn instant and distance: the offset
    between them at that instant is perpendicular to their relative velocity, so it is the minimum."""
    tc = rng.uniform(0.3, 0.7) * cfg.duration_s
    d = rng.uniform(*cfg.crossing_distance_m)
    turn = rng.uniform(np.pi / 4, 3 * np.pi / 4) * rng.choice([-1.0, 1.0])
    v = _heading(np.arctan2(other.velocity[1], other.velocity[0]) + turn) * speed
    w = v - other.velocity
    n = np.array([-w[1], w[0]]) / max(np.linalg.norm(w), 1e-9) * rng.choice([-1.0, 1.0])
    at_tc = other.path(np.array([tc]))[0] + d * n
    return at_tc - v * tc, v


def _paths_ok(people: Sequence[PersonMotion], crossings: set[tuple[int, int]], cfg: MultiPersonConfig) -> bool:
    """Inside the area throughout (ends suffice: the area is convex); apart except by design."""
    ends = np.concatenate([p.path(np.array([0.0, cfg.duration_s])) for p in people])
    if (np.linalg.norm(ends, axis=1) > cfg.area_radius_m).any():
        return False
    for i in range(len(people)):
        for j in range(i + 1, len(people)):
            if (i, j) not in crossings and closest_approach(people[i], people[j], cfg.duration_s)[0] \
                    < cfg.min_separation_m:
                return False
    return True


def _draw_people(cfg: MultiPersonConfig, clips: Sequence[motion.MotionClip], tries: int = 5000
                 ) -> tuple[tuple[PersonMotion, ...], frozenset[tuple[int, int]]]:
    """People whose paths satisfy the config (rejection sampling), and the designed crossing pairs."""
    rng = _rng(cfg.seed, _PATHS)
    hi = min(cfg.speed_m_s[1], 1.8 * cfg.area_radius_m / cfg.duration_s)    # room to cross the area
    lo = min(cfg.speed_m_s[0], hi)
    for _ in range(tries):
        people: list[PersonMotion] = []
        crossings: set[tuple[int, int]] = set()
        for k in range(cfg.num_people):
            speed = rng.uniform(lo, hi)
            if cfg.crossing and k > 0:
                j = int(rng.integers(k))
                start, v = _crossing_path(rng, cfg, speed, people[j])
                crossings.add((j, k))
            else:
                start, v = _free_path(rng, cfg, speed, 0.3 if cfg.crossing else 0.8)
            clip = clips[k % len(clips)]
            yaw = float(np.arctan2(v[1], v[0]) + rng.uniform(-np.pi / 6, np.pi / 6))
            people.append(PersonMotion(k, clip, float(rng.uniform(0, clip.duration)), yaw, start, v))
        if _paths_ok(people, crossings, cfg):
            return tuple(people), frozenset(crossings)
    raise ValueError(f"multi_person: no paths for {cfg.num_people} people within {cfg.area_radius_m} m "
                     f"after {tries} tries; enlarge area_radius_m or lower num_people / min_separation_m")


def _false_pool(cfg: MultiPersonConfig, clips: Sequence[motion.MotionClip]) -> np.ndarray:
    """(N, 17, 3) root-centred (pelvis at 0) poses from the config's clips: shapes of false people."""
    rng = _rng(cfg.seed, _POOL)
    out = np.stack([c.at(rng.uniform(0, c.duration, 1))[0] for c in
                    (clips[i] for i in rng.integers(len(clips), size=_FALSE_POOL_SIZE))])
    return out - out[:, PELVIS:PELVIS + 1]


# --- the scene -----------------------------------------------------------------------------------
class Frame(NamedTuple):
    """What a tracker receives from one camera at one capture: people in no particular order."""

    camera: int
    stamp_ns: int
    people: list[Person2D]


@dataclass(frozen=True, eq=False)
class _View:
    """One camera's simulated detections of one person along that camera's frames (n of them)."""

    uv: np.ndarray              # (n, J, 2) true projection, px (distorted, as captured)
    uv_obs: np.ndarray          # (n, J, 2) with detector noise and swaps
    seen: np.ndarray            # (n, J) bool: in front, in the image, not missed by the detector
    depth: np.ndarray           # (n,) pelvis depth, metres
    scores: np.ndarray          # (n, J)
    occlusion_u: np.ndarray     # (n, J) uniforms: a joint hidden by someone is lost below occlusion_prob
    missed: np.ndarray          # (n,) bool: the whole person missed


@dataclass(frozen=True, eq=False)
class MultiPersonScene:
    """People moving through the rig's view; `truth` and `observations` are pure functions of it."""

    config: MultiPersonConfig
    people: tuple[PersonMotion, ...]
    crossings: frozenset[tuple[int, int]]   # designed close passes, pairs of indices into `people`
    noise: NoiseConfig
    false_pool: np.ndarray                  # (N, 17, 3) root-centred poses for false detections

    @property
    def num_people(self) -> int:
        return len(self.people)

    def truth(self, times: np.ndarray) -> np.ndarray:
        """(P, T, 17, 3) world joints at times (T,) s, metres (outside [0, duration_s] the paths go
        on straight, so they may leave the area)."""
        times = np.asarray(times, np.float64).ravel()
        if not self.people:
            return np.zeros((0, len(times), NUM_JOINTS, 3))
        return np.stack([p.at(times) for p in self.people])

    def observations(self, cameras: Sequence[Camera], schedule: Schedule) -> list[Frame]:
        """The frames of the schedule's received captures in capture order (real time, then camera),
        each with its shuffled detections."""
        return self.observations_with_ids(cameras, schedule)[0]

    def observations_with_ids(self, cameras: Sequence[Camera], schedule: Schedule
                              ) -> tuple[list[Frame], list[list[int]]]:
        """`observations`, plus per frame the person id (`PersonMotion.pid`) of each detection, -1 for
        a false one: for debugging and metrics only, never for the tracker."""
        keep = ~np.asarray(schedule.dropped, bool)
        cam_of, time_of = np.asarray(schedule.camera)[keep].astype(int), np.asarray(schedule.time)[keep]
        order = np.lexsort((cam_of, time_of))
        cam_of, time_of = cam_of[order], time_of[order]
        frames: list[Frame | None] = [None] * len(order)
        ids: list[list[int]] = [[] for _ in order]
        for c, cam in enumerate(cameras):
            idx = np.flatnonzero(cam_of == c)
            if idx.size:
                self._camera_frames(c, cam, idx, time_of[idx], frames, ids)
        if any(f is None for f in frames):
            bad = sorted(set(cam_of.tolist()) - set(range(len(cameras))))
            raise ValueError(f"schedule names camera(s) {bad} beyond the {len(cameras)} given")
        return frames, ids

    # --- per camera ----------------------------------------------------------------------------
    def _camera_frames(self, c: int, cam: Camera, idx: np.ndarray, times: np.ndarray,
                       frames: list, ids: list) -> None:
        """Fill frames[idx] (n,) of camera c at sorted times (n,): people, false ones, shuffled."""
        views = [self._view(p, c, cam, times) for p in self.people]
        false_rng, shuffle_rng = _rng(self.config.seed, _FALSE, c), _rng(self.config.seed, _SHUFFLE, c)
        n_false = false_rng.poisson(self.config.false_detection_rate, len(times))
        for i, slot in enumerate(idx):
            people, pids = self._detected(views, i)
            for _ in range(n_false[i]):
                people.append(self._false_detection(false_rng, cam))
                pids.append(-1)
            perm = shuffle_rng.permutation(len(people))
            frames[slot] = Frame(c, int(round(times[i] * 1e9)), [people[k] for k in perm])
            ids[slot] = [pids[k] for k in perm]

    def _view(self, person: PersonMotion, c: int, cam: Camera, times: np.ndarray) -> _View:
        """Project one person into camera c with its own detector noise along the camera's frames."""
        cfg, n = self.config, len(times)
        X = person.at(times)                                                   # (n, J, 3)
        uv = cam.project(X)                                                    # (n, J, 2)
        depth = cam.to_camera(X)[..., 2]                                       # (n, J)
        inside = ((depth > 0.05) & (uv[..., 0] >= -0.5) & (uv[..., 0] <= cam.width - 0.5)
                  & (uv[..., 1] >= -0.5) & (uv[..., 1] <= cam.height - 0.5))
        offset, swapped, missed = detector_noise(_rng(cfg.seed, _NOISE, person.pid, c), times, self.noise,
                                                 cam.width / self.noise.reference_px)
        return _View(uv=uv, uv_obs=swap_pairs(uv + offset, swapped), seen=swap_pairs(inside, swapped) & ~missed,
                     depth=depth[:, PELVIS],
                     scores=_rng(cfg.seed, _SCORES, person.pid, c).uniform(*cfg.true_score, (n, NUM_JOINTS)),
                     occlusion_u=_rng(cfg.seed, _OCCLUDE, person.pid, c).random((n, NUM_JOINTS)),
                     missed=_rng(cfg.seed, _MISS, person.pid, c).random(n) < cfg.missed_person_prob)

    def _detected(self, views: Sequence[_View], i: int) -> tuple[list[Person2D], list[int]]:
        """The real people detected in frame i of one camera (in scene order), with their pids."""
        lost = self._occluded(views, i)                                        # (P, J)
        people, pids = [], []
        for k, v in enumerate(views):
            seen = v.seen[i] & ~lost[k]
            if v.missed[i] or seen.sum() < self.config.min_visible_joints:
                continue
            kp = np.where(seen[:, None], v.uv_obs[i], np.nan)
            sc = np.where(seen, v.scores[i], 0.0)
            people.append(Person2D(keypoints=kp, scores=sc, score=float(sc[seen].mean())))
            pids.append(self.people[k].pid)
        return people, pids

    def _occluded(self, views: Sequence[_View], i: int) -> np.ndarray:
        """(P, J) bool: joints of a farther person inside a nearer person's (grown) box of true
        projections, lost with `occlusion_prob` each."""
        m = self.config.occlusion_margin
        lost = np.zeros((len(views), NUM_JOINTS), bool)
        for a, near in enumerate(views):
            if near.depth[i] <= 0.05:
                continue
            lo, hi = near.uv[i].min(0), near.uv[i].max(0)
            lo, hi = lo - m * (hi - lo), hi + m * (hi - lo)
            for b, far in enumerate(views):
                if b != a and far.depth[i] > near.depth[i]:
                    inside = ((far.uv[i] >= lo) & (far.uv[i] <= hi)).all(-1)
                    lost[b] |= inside & (far.occlusion_u[i] < self.config.occlusion_prob)
        return lost

    def _false_detection(self, rng: np.random.Generator, cam: Camera) -> Person2D:
        """A skeleton-shaped detection that belongs to nobody: a pool pose, turned, placed at a random
        pixel and depth (so it is not on the floor and views disagree on it), with loose keypoints."""
        cfg = self.config
        for _ in range(10):
            pose = self.false_pool[rng.integers(len(self.false_pool))]          # (J, 3)
            a = rng.uniform(0, 2 * np.pi)
            pose = pose @ np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1.0]]).T
            pix = rng.uniform([0.1 * cam.width, 0.1 * cam.height], [0.9 * cam.width, 0.9 * cam.height])
            ray = np.linalg.solve(cam.K, np.array([pix[0], pix[1], 1.0])) * rng.uniform(3.0, 9.0)
            X = pose + cam.R.T @ (ray - cam.t)                                  # pelvis there
            uv = cam.project(X) + rng.normal(0, 8.0 * cam.width / 1000.0, (NUM_JOINTS, 2))
            seen = ((cam.to_camera(X)[:, 2] > 0.05) & (uv >= 0).all(1) & (uv[:, 0] < cam.width)
                    & (uv[:, 1] < cam.height) & (rng.random(NUM_JOINTS) > 0.2))
            if seen.sum() >= cfg.min_visible_joints:
                break
        scores = np.where(seen, rng.uniform(*cfg.false_score, NUM_JOINTS), 0.0)
        return Person2D(keypoints=np.where(seen[:, None], uv, np.nan), scores=scores,
                        score=float(rng.uniform(*cfg.false_score)))


def make_scene(cfg: MultiPersonConfig = MultiPersonConfig(), noise: NoiseConfig = NoiseConfig()) -> MultiPersonScene:
    """A scene of `cfg.num_people` people (clips assigned in a seeded order, distinct while they last)."""
    names = list(cfg.clips)
    order = _rng(cfg.seed, _PATHS, 1).permutation(len(names))
    clips = [motion.load_clip(names[i]) for i in order]
    people, crossings = _draw_people(cfg, clips)
    return MultiPersonScene(cfg, people, crossings, noise, _false_pool(cfg, clips))


def single_person_scenes(scene: MultiPersonScene) -> list[MultiPersonScene]:
    """The same people one per scene, keeping their pids (so the same noise, misses and false
    detections): the "one person at a time" reference; only occlusions by others disappear."""
    cfg = dataclasses.replace(scene.config, num_people=1)
    return [dataclasses.replace(scene, config=cfg, people=(p,), crossings=frozenset()) for p in scene.people]
