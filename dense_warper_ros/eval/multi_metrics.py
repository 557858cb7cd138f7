"""Metrics of multi-person 3D tracking: detection (recall / precision of person-instants), accuracy
(MPJPE, PCP) and identity (id switches, fragments).

Why each: with several people a method can be accurate on the people it finds and still miss some,
invent others or swap who is who; one number cannot show that, so each failure has its own.

Protocol (per output instant; predictions come out at capture stamps, truth is sampled there):
- a prediction is one (track id, (17, 3) pose); its cost against a truth person is MPJPE in mm,
  absolute (not root-aligned), over the prediction's finite joints;
- predictions and truth people are matched by the Hungarian algorithm with pairs above a gate
  forbidden (so the matching maximises the number of pairs within the gate, then minimises their
  total MPJPE); recall and precision are computed for each threshold of `thresholds_mm` (by
  default 50 and 100 mm) with that threshold as the gate;
- accuracy and identity use the matching at the looser `match_mm` gate (500 mm by default: a
  track that follows a person badly still belongs to that person): per-person MPJPE (absolute and
  root-aligned) over the matched instants; id switches = changes of a person's matched track id
  between consecutive matched instants (CLEAR-MOT); fragments = per person, distinct matched track
  ids minus one (summed);
- PCP (Shelf / Campus convention, Belagiannis et al.): a bone of the 16 `H36M_BONES` is correct when
  the *mean* of its two endpoint errors is <= `pcp_alpha` (0.5) x its true length; per person over
  every instant the person is present, an unmatched instant counting all bones wrong; the scene's
  PCP is the mean over people.
A truth person with a non-finite joint at an instant is absent there (not counted in recall).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from dense_warper_ros.eval.metrics import joint_errors
from dense_warper_ros.skeleton import H36M_BONES, PELVIS

Prediction = tuple[int, np.ndarray]        # (track id, (17, 3) metres)
_FORBIDDEN = 1e12                          # cost of a pair above the gate (dominates any real sum)


@dataclass(frozen=True)
class MultiPersonMetrics:
    """One method on one scene. Errors in mm; fractions in [0, 1]; NaN where nothing was matched."""

    recall: dict[float, float]           # threshold mm -> matched / truth person-instants
    precision: dict[float, float]        # threshold mm -> matched / predictions
    mpjpe_mm: float                      # over all matched pairs (at match_mm)
    mpjpe_root_mm: float                 # same, root (pelvis)-aligned
    person_mpjpe_mm: tuple[float, ...]   # (P,) per truth person
    person_mpjpe_root_mm: tuple[float, ...]
    pcp: float                           # mean over people of person_pcp
    person_pcp: tuple[float, ...]        # (P,)
    id_switches: int
    fragments: int                       # extra track ids over all people
    fragmented_people: int               # people covered by more than one track id
    num_instants: int
    num_truth: int                       # present truth person-instants
    num_predictions: int
    num_matched: int                     # pairs matched at match_mm
    match_mm: float


def cost_matrix(poses: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """MPJPE (mm) of predictions (n, 17, 3) against truth people (P, 17, 3) -> (n, P); inf where a
    prediction has no finite joint or the person is absent."""
    err = np.linalg.norm(poses[:, None] - truth[None], axis=-1) * 1000.0          # (n, P, J)
    ok = np.isfinite(err)
    mean = np.where(ok, err, 0.0).sum(-1) / np.maximum(ok.sum(-1), 1)
    present = np.isfinite(truth).all((-1, -2))                                     # (P,)
    return np.where(ok.any(-1) & present[None], mean, np.inf)


def gated_assignment(cost: np.ndarray, gate: float) -> list[tuple[int, int]]:
    """(prediction, person) pairs of the Hungarian matching with pairs above `gate` forbidden."""
    if cost.size == 0:
        return []
    rows, cols = linear_sum_assignment(np.where(cost <= gate, cost, _FORBIDDEN))
    return [(int(r), int(c)) for r, c in zip(rows, cols) if cost[r, c] <= gate]


def _pcp_correct(pred: np.ndarray, gt: np.ndarray, alpha: float) -> int:
    """Correct bones of one pose (17, 3): mean endpoint error <= alpha x true length (NaN: wrong)."""
    child, parent = np.array(H36M_BONES).T
    err = np.linalg.norm(pred - gt, axis=-1)                                       # (J,)
    length = np.linalg.norm(gt[child] - gt[parent], axis=-1)
    return int(((err[child] + err[parent]) / 2 <= alpha * length).sum())


def _as_poses(preds: Sequence[Prediction]) -> tuple[list[int], np.ndarray]:
    ids = [int(i) for i, _ in preds]
    poses = np.stack([np.asarray(p, np.float64) for _, p in preds]) if preds else np.zeros((0, 17, 3))
    if poses.shape[1:] != (17, 3):
        raise ValueError(f"predictions must be (track id, (17, 3)) pairs, got poses {poses.shape[1:]}")
    return ids, poses


def _identity_counts(tracks: list[list[int]]) -> tuple[int, int, int]:
    """(id switches, fragments, fragmented people) of each person's matched track ids in time order."""
    switches = sum(sum(a != b for a, b in zip(seq, seq[1:])) for seq in tracks)
    extra = [len(set(seq)) - 1 for seq in tracks if seq]
    return switches, sum(extra), sum(e > 0 for e in extra)


def _mean(values: list[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def evaluate_multi(truth: np.ndarray, predictions: Sequence[Sequence[Prediction]], *,
                   thresholds_mm: Sequence[float] = (50.0, 100.0), match_mm: float = 500.0,
                   pcp_alpha: float = 0.5) -> MultiPersonMetrics:
    """Metrics of predictions (one list of (track id, (17, 3) m) per instant, T lists) against truth
    (P, T, 17, 3) metres at the same instants."""
    truth = np.asarray(truth, np.float64)
    P, T = truth.shape[:2]
    if len(predictions) != T:
        raise ValueError(f"{len(predictions)} prediction instants for {T} truth instants")
    hits = {float(t): 0 for t in thresholds_mm}
    abs_err: list[list[float]] = [[] for _ in range(P)]
    root_err: list[list[float]] = [[] for _ in range(P)]
    tracks: list[list[int]] = [[] for _ in range(P)]
    bones_ok, present = np.zeros(P), np.isfinite(truth).all((-1, -2))             # (P,), (P, T)
    num_pred = 0
    for t, preds in enumerate(predictions):
        ids, poses = _as_poses(preds)
        num_pred += len(ids)
        cost = cost_matrix(poses, truth[:, t])                                      # (n, P)
        for thr in hits:
            hits[thr] += len(gated_assignment(cost, thr))
        for r, p in gated_assignment(cost, match_mm):
            abs_err[p].append(float(cost[r, p]))
            e = joint_errors(poses[r], truth[p, t], "root", PELVIS) * 1000.0
            root_err[p].append(float(np.nanmean(e)) if np.isfinite(e).any() else float("nan"))
            tracks[p].append(ids[r])
            bones_ok[p] += _pcp_correct(poses[r], truth[p, t], pcp_alpha)
    switches, fragments, fragmented = _identity_counts(tracks)
    n_truth = int(present.sum())
    person_pcp = tuple(float(bones_ok[p] / (len(H36M_BONES) * present[p].sum())) if present[p].any()
                       else float("nan") for p in range(P))
    return MultiPersonMetrics(
        recall={t: h / n_truth if n_truth else float("nan") for t, h in hits.items()},
        precision={t: h / num_pred if num_pred else float("nan") for t, h in hits.items()},
        mpjpe_mm=_mean(sum(abs_err, [])), mpjpe_root_mm=_mean(sum(root_err, [])),
        person_mpjpe_mm=tuple(_mean(e) for e in abs_err), person_mpjpe_root_mm=tuple(_mean(e) for e in root_err),
        pcp=_mean(list(person_pcp)), person_pcp=person_pcp, id_switches=switches, fragments=fragments,
        fragmented_people=fragmented, num_instants=T, num_truth=n_truth, num_predictions=num_pred,
        num_matched=sum(len(e) for e in abs_err), match_mm=float(match_mm))


def _fmt(x: float, digits: int = 1) -> str:
    return "-" if not np.isfinite(x) else f"{x:.{digits}f}"


def markdown_table(rows: Sequence[tuple[str, str, MultiPersonMetrics]]) -> str:
    """A markdown table, one row per (scene, method, metrics); recall / precision columns for the
    thresholds of the first row."""
    if not rows:
        return ""
    thr = list(rows[0][2].recall)
    head = (["scene", "method"] + [f"{k} @{t:g}mm" for t in thr for k in ("R", "P")]
            + ["MPJPE mm", "root MPJPE mm", "PCP", "ID sw", "frag", "matched / truth"])
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for scene, method, m in rows:
        cells = [scene, method] + [_fmt(d.get(t, float("nan")), 3) for t in thr for d in (m.recall, m.precision)]
        cells += [_fmt(m.mpjpe_mm), _fmt(m.mpjpe_root_mm), _fmt(m.pcp, 3), str(m.id_switches), str(m.fragments),
                  f"{m.num_matched} / {m.num_truth}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
