"""How well a replay followed several people, without 3D ground truth (a real recording).

- per track: the output instants it has a pose at, as a share of the instants after the first
  camera cycle, and the median reprojection of its poses against its own 2D keypoints in the target
  camera (`PoseResult.reprojection_px`);
- people per instant;
- identity: ids that appear after the first cycle (a person lost and found again under a new id, or
  a ghost), and swaps: between consecutive instants, poses matched by position (Hungarian on the
  distance of their centres) whose ids differ.
"""
from __future__ import annotations

from collections import Counter

import numpy as np
from scipy.optimize import linear_sum_assignment

from dense_warper_ros.tracks import centre


def by_instant(poses) -> dict[int, list]:
    out: dict[int, list] = {}
    for p in poses:
        out.setdefault(p.stamp_ns, []).append(p)
    return dict(sorted(out.items()))


def people_report(poses, *, scored_from_ns: int) -> dict:
    """`poses`: PoseResults of a replay; instants before `scored_from_ns` (the first camera cycle)
    are left out of the shares."""
    instants = by_instant(poses)
    scored = {s: ps for s, ps in instants.items() if s >= scored_from_ns}
    n = max(len(scored), 1)
    tracks: dict[int, dict] = {}
    for s, ps in scored.items():
        for p in ps:
            t = tracks.setdefault(int(p.track_id), {"instants": 0, "reprojection": []})
            t["instants"] += 1
            t["reprojection"].append(p.reprojection_px)
    per_track = {i: {"instants": t["instants"], "share": t["instants"] / n,
                     "median_reprojection_px": _nanmedian(t["reprojection"])} for i, t in sorted(tracks.items())}
    early = [ps for s, ps in instants.items() if s < scored_from_ns] + list(scored.values())[:1]
    first_ids = {int(p.track_id) for ps in early for p in ps}
    late_ids = sorted({int(p.track_id) for ps in scored.values() for p in ps} - first_ids)
    counts = Counter(len(ps) for ps in scored.values())
    return {"instants": len(scored), "people_per_instant": dict(sorted(counts.items())), "tracks": per_track,
            "new_ids_after_start": late_ids, "swaps": _swaps(list(scored.values()))}


def tracked_share(report: dict, people: int) -> float:
    """Share of scored instants with at least `people` poses."""
    counts = report["people_per_instant"]
    return sum(v for k, v in counts.items() if k >= people) / max(report["instants"], 1)


def _nanmedian(x: list[float]) -> float:
    a = np.asarray(x, dtype=np.float64)
    return float(np.nanmedian(a)) if np.isfinite(a).any() else float("nan")


def _swaps(groups: list[list]) -> int:
    """Consecutive instants whose position-matched poses carry different ids."""
    swaps = 0
    for prev, cur in zip(groups, groups[1:]):
        a = [centre(p.points) for p in prev]
        b = [centre(p.points) for p in cur]
        if not a or not b or any(x is None for x in a + b):
            continue
        cost = np.linalg.norm(np.array(a)[:, None] - np.array(b)[None], axis=-1)
        rows, cols = linear_sum_assignment(cost)
        swaps += sum(int(prev[r].track_id != cur[c].track_id) for r, c in zip(rows, cols) if cost[r, c] < 0.5)
    return swaps
