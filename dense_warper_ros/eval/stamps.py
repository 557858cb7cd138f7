"""Stamp errors in the accuracy benchmark: cameras whose stamps are off, and their correction.

The schedule's `stamp_offsets_s` and `stamp_drift_ppm` say what each camera's stamps add to the
capture time; evidence and truth stay at the capture times, the methods see the stamps. With
`bench.correct_stamps`, each camera's offset is estimated (`clock_offsets`) from the 2D keypoints
of the interleaved rig's frames of every sequence together (one rig recorded them all, and a short
clip alone says little), and subtracted from its stamps before the methods run, as the node does:
only once its standard error is below `clock_offsets.APPLY_MAX_SIGMA_S`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from dense_warper_ros.clock_offsets import ClockOffsetEstimator
from dense_warper_ros.data.evidence import EvidenceBank
from dense_warper_ros.eval.bench_config import AccuracyConfig


@dataclass(frozen=True)
class ClockReport:
    """Each camera's stamp offset relative to camera 0, ms: in the stamps (mean over the frames)
    and, when corrected, the estimate, its standard error and the seconds of motion it saw."""
    true_ms: list[float]
    estimated_ms: list[float] | None = None
    sigma_ms: list[float] | None = None
    applied: list[bool] | None = None     # per camera: known well enough to correct its stamps
    seconds: float = 0.0


def stamps_off(cfg: AccuracyConfig) -> bool:
    s = cfg.schedule
    return s.stamp_offsets_s is not None or s.stamp_drift_ppm is not None or cfg.bench.correct_stamps


def clock_correction(cfg: AccuracyConfig, banks: Sequence[EvidenceBank],
                     rig_slots: Sequence[np.ndarray]) -> tuple[np.ndarray, ClockReport]:
    """(V,) s to subtract from each camera's stamps (zeros unless `bench.correct_stamps`), and the
    report; `rig_slots[i]` are the interleaved rig's frames of `banks[i]`."""
    V = len(banks[0].cameras)
    err = [cfg.schedule.stamp_errors(b.camera[s], b.time[s]) for b, s in zip(banks, rig_slots)]
    cams = [b.camera[s] for b, s in zip(banks, rig_slots)]
    true = np.array([np.concatenate([e[c_ == c] for e, c_ in zip(err, cams)]).mean() for c in range(V)])
    report = ClockReport(true_ms=list((true - true[0]) * 1e3))
    if not cfg.bench.correct_stamps:
        return np.zeros(V), report
    est = ClockOffsetEstimator(V, window_s=float("inf"))
    for k, (bank, slots, e) in enumerate(zip(banks, rig_slots, err)):   # one track per sequence
        stamps = bank.time[slots] + e
        for i in np.argsort(stamps, kind="stable"):
            s, c = slots[i], int(bank.camera[slots[i]])
            est.observe(c, int(round(stamps[i] * 1e9)), k, bank.uv[s], bank.conf[s], bank.cameras[c], pinhole=True)
    got = est.estimate()
    seconds = sum(float(np.ptp(b.time[s])) for b, s in zip(banks, rig_slots))
    return np.array([got[c].correction_s for c in range(V)]), dataclasses.replace(
        report, estimated_ms=[got[c].offset_s * 1e3 for c in range(V)],
        sigma_ms=[got[c].sigma_s * 1e3 for c in range(V)], applied=[got[c].known for c in range(V)],
        seconds=seconds)


def restamped(bank: EvidenceBank, cfg: AccuracyConfig, correction_s: np.ndarray) -> EvidenceBank:
    """The bank as the methods see it: stamps = capture time + stamp error - correction."""
    stamps = bank.time + cfg.schedule.stamp_errors(bank.camera, bank.time) - correction_s[bank.camera]
    return dataclasses.replace(bank, time=stamps)


def clock_table(label: str, report: ClockReport) -> str:
    """Markdown: the offsets in the stamps and, when corrected, the estimates."""
    V = len(report.true_ms)
    lines = [f"| {label} | " + " | ".join(f"camera {c}" for c in range(V)) + " |", "|---|" + "---|" * V,
             "| in the stamps, ms | " + " | ".join(f"{v:+.1f}" for v in report.true_ms) + " |"]
    if report.estimated_ms is not None:
        cells = [f"{v:+.1f} +- {s:.1f}" + ("" if a else " (not applied)")
                 for v, s, a in zip(report.estimated_ms, report.sigma_ms, report.applied)]
        lines.append(f"| estimated from {report.seconds:.1f} s, ms | " + " | ".join(cells) + " |")
    return "\n".join(lines)
