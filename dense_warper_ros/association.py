"""Which 2D person in a frame is which 3D track, and which unmatched 2D people are a new person.

Views are never simultaneous, so a frame's people are compared with each track *predicted to that
frame's capture stamp* (`Track.predict`), projected into the frame's camera. The cost of a pair is
the mean distance of the joints both have (confident in 2D, finite in 3D), divided by the person's
size in the image (the diagonal of its joints' box): scale-free, so one gate serves near and far
people. Hungarian assignment (scipy) with that gate.

Births: unmatched people of different cameras, taken at most `max_view_age` apart, are one person
when their joints triangulate (DLT on undistorted pixels) to a body that reprojects within the birth
gate in every view of the group; pairs are tried best first, then each accepted pair takes in the
other cameras' unmatched people that agree with it.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from dense_warper_ros.cameras import Camera
from dense_warper_ros.people import Person2D
from dense_warper_ros.triangulation import triangulate_dlt

MIN_COMMON_JOINTS = 4
NO_MATCH = 1e6


def person_scale(person: Person2D, min_score: float) -> float:
    return max(person.size(min_score), 16.0)


def reprojection_error(points: np.ndarray, camera: Camera, person: Person2D, min_score: float) -> float:
    """Mean image distance between `points` (17, 3) projected and the person's confident joints,
    over the person's size; inf with fewer than MIN_COMMON_JOINTS joints in common."""
    ok = np.isfinite(points).all(1) & person.confident(min_score)
    if ok.sum() < MIN_COMMON_JOINTS:
        return float("inf")
    X = points[ok]
    if np.any(camera.to_camera(X)[:, 2] <= 0.05):
        return float("inf")
    d = np.linalg.norm(camera.project(X) - person.keypoints[ok], axis=1)
    return float(d.mean()) / person_scale(person, min_score)


def cost_matrix(predictions: list[np.ndarray], camera: Camera, people: list[Person2D],
                min_score: float) -> np.ndarray:
    """(tracks, people) normalized reprojection costs."""
    return np.array([[reprojection_error(p, camera, q, min_score) for q in people] for p in predictions],
                    dtype=np.float64).reshape(len(predictions), len(people))


def match(costs: np.ndarray, gate: float) -> tuple[list[tuple[int, int]], int]:
    """Hungarian assignment; pairs above `gate` are refused. Returns (row, col) pairs and the number
    of assignments the gate refused."""
    if costs.size == 0:
        return [], 0
    rows, cols = linear_sum_assignment(np.where(np.isfinite(costs), costs, NO_MATCH))
    pairs = [(int(r), int(c)) for r, c in zip(rows, cols) if costs[r, c] <= gate]
    refused = sum(1 for r, c in zip(rows, cols) if gate < costs[r, c] < NO_MATCH)
    return pairs, refused


def deduplicate(people: list[Person2D], min_score: float, same: float = 0.1) -> list[Person2D]:
    """Drop people that are another, better-scored person of the same frame (overlapping crops)."""
    order = sorted(range(len(people)), key=lambda i: -people[i].score)
    kept: list[Person2D] = []
    for i in order:
        p = people[i]
        if all(_distance_2d(p, q, min_score) > same for q in kept):
            kept.append(p)
    return kept


def _distance_2d(a: Person2D, b: Person2D, min_score: float) -> float:
    ok = a.confident(min_score) & b.confident(min_score)
    if ok.sum() < MIN_COMMON_JOINTS:
        return float("inf")
    d = np.linalg.norm(a.keypoints[ok] - b.keypoints[ok], axis=1).mean()
    return float(d) / max(person_scale(a, min_score), person_scale(b, min_score))


# --- births -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Candidate:
    """An unmatched person in one frame."""
    view: int                  # camera index
    person: int                # index in the frame's people
    camera: Camera
    observed: Person2D


def triangulate(group: list[Candidate], min_score: float) -> np.ndarray:
    """(17, 3) DLT of the group's confident joints (undistorted px, weighted by confidence)."""
    P = torch.from_numpy(np.stack([c.camera.P for c in group]))                         # (V, 3, 4)
    uv = torch.from_numpy(np.stack([c.camera.undistort_points(np.nan_to_num(c.observed.keypoints))
                                    for c in group]))                                    # (V, 17, 2)
    w = torch.from_numpy(np.stack([np.where(c.observed.confident(min_score), c.observed.scores, 0.0)
                                   for c in group]))                                     # (V, 17)
    return triangulate_dlt(P, uv, w).numpy()


def group_error(points: np.ndarray, group: list[Candidate], min_score: float) -> float:
    return max(reprojection_error(points, c.camera, c.observed, min_score) for c in group)


MAX_JOINT_REACH_M = 1.2      # no joint of a body lies further than this from the median of its joints
MAX_EXTENT_M = 2.8           # diagonal of a body's joint box (arms spread above the head: about 2.6 m)


def body_joints(points: np.ndarray) -> np.ndarray:
    """(17, 3) with joints out of a body's reach (a joint triangulated from two people) set to NaN."""
    ok = np.isfinite(points).all(1)
    if not ok.any():
        return points
    far = np.linalg.norm(points - np.median(points[ok], axis=0), axis=1) > MAX_JOINT_REACH_M
    return np.where((ok & far)[:, None], np.nan, points)


def plausible(points: np.ndarray, min_joints: int) -> bool:
    """Enough joints, and a body's extent (0.3 m to MAX_EXTENT_M across its joints)."""
    ok = np.isfinite(points).all(1)
    if ok.sum() < min_joints:
        return False
    extent = float(np.linalg.norm(points[ok].max(0) - points[ok].min(0)))
    return 0.3 <= extent <= MAX_EXTENT_M


def propose_births(candidates: list[Candidate], *, gate: float, min_score: float,
                   min_joints: int, must_include: set[tuple[int, int]] | None = None
                   ) -> list[tuple[list[Candidate], np.ndarray]]:
    """Groups of candidates (distinct cameras) that are one new person, with their triangulation.
    `must_include`: (view, person) keys of which every group needs one (the newest frame's people)."""
    pairs = []
    for a, b in combinations(candidates, 2):
        if a.view == b.view:
            continue
        if must_include is not None and not ({(a.view, a.person), (b.view, b.person)} & must_include):
            continue
        X = triangulate([a, b], min_score)
        if plausible(X, min_joints):
            err = group_error(X, [a, b], min_score)
            if err <= gate:
                pairs.append((err, a, b, X))
    pairs.sort(key=lambda p: p[0])
    used: set[tuple[int, int]] = set()
    out = []
    for _, a, b, X in pairs:
        if (a.view, a.person) in used or (b.view, b.person) in used:
            continue
        group = _extend([a, b], X, candidates, used, gate, min_score)
        X = triangulate(group, min_score) if len(group) > 2 else X
        used.update((c.view, c.person) for c in group)
        out.append((group, X))
    return out


def _extend(group: list[Candidate], X: np.ndarray, candidates: list[Candidate],
            used: set[tuple[int, int]], gate: float, min_score: float) -> list[Candidate]:
    """The group plus, per other camera, its best-agreeing unused candidate within the gate."""
    views = {c.view for c in group}
    best: dict[int, tuple[float, Candidate]] = {}
    for c in candidates:
        if c.view in views or (c.view, c.person) in used:
            continue
        err = reprojection_error(X, c.camera, c.observed, min_score)
        if err <= gate and (c.view not in best or err < best[c.view][0]):
            best[c.view] = (err, c)
    return group + [c for _, c in best.values()]


def best_extensions(group: list[Candidate], candidates: list[Candidate], *, gate: float,
                    min_score: float, min_joints: int) -> list[Candidate]:
    """Per other camera, the candidate that triangulates with `group` (a track's people in this
    window) to a body reprojecting within `gate` in every view: the views agree with each other,
    whatever the track's own (maybe poor, few-view) 3D pose says."""
    views = {c.view for c in group}
    best: dict[int, tuple[float, Candidate]] = {}
    for c in candidates:
        if c.view in views:
            continue
        X = triangulate(group + [c], min_score)
        if not plausible(X, min_joints):
            continue
        err = group_error(X, group + [c], min_score)
        if err <= gate and (c.view not in best or err < best[c.view][0]):
            best[c.view] = (err, c)
    return [c for _, c in best.values()]
