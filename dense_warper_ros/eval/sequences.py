"""The accuracy benchmark's sequences: held-out motion-capture clips with synthetic detector
evidence, and the real pose2sim video against its triangulated pseudo ground truth, each run through
every method (`eval.methods.run_sequence`) from one `EvidenceBank`.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from dense_warper_ros.data import motion
from dense_warper_ros.data.evidence import EvidenceBank, HeatmapConfig, synthetic_bank
from dense_warper_ros.data.rigs import make_rig
from dense_warper_ros.data.schedules import Schedule, interleaved, synchronized_like
from dense_warper_ros.data.video import (TRIANGULATED_DETECTION_TRUTH, load_pose2sim_bank,
                                         triangulated_detection_truth)
from dense_warper_ros.eval.bench_config import AccuracyConfig
from dense_warper_ros.eval.densewarper_method import WarperHandle, decoder_of
from dense_warper_ros.eval.methods import MethodOutput, SequenceResult, run_sequence
from dense_warper_ros.eval.stamps import clock_correction, restamped, stamps_off


# --- synthetic clips ---------------------------------------------------------------------------
def run_synthetic(cfg: AccuracyConfig, warper: WarperHandle | None, log: Callable[[str], None] = print,
                  warper_tc: WarperHandle | None = None) -> tuple[list[SequenceResult], HeatmapConfig]:
    """Every clip of `bench.clips`, with the heatmap size the models expect; logs each clip's time."""
    heatmap = cfg.heatmap
    sizes = {w.heatmap_size for w in (warper, warper_tc) if w is not None and w.heatmap_size}
    if len(sizes) > 1:
        raise ValueError(f"(d) and (d+) models expect different heatmap sizes {sorted(sizes)}")
    if sizes and sizes != {heatmap.size}:
        # The model fixes the heatmap size (sigma stays in heatmap px: the decoder needs >= 2.5).
        heatmap = dataclasses.replace(heatmap, size=sizes.pop())
        log(f"[accuracy] heatmaps resized to the model's {heatmap.size} px (sigma {heatmap.sigma:.2f})")
    setups = [synthetic_setup(name, cfg, heatmap, warper or warper_tc) for name in cfg.bench.clips]
    correction, clock = np.zeros(cfg.rig.num_cameras), None
    if stamps_off(cfg):
        correction, clock = clock_correction(cfg, [c.bank for c in setups], [c.rig_slots for c in setups])
    results = []
    for setup in setups:
        t = time.perf_counter()
        results.append(dataclasses.replace(run_clip(setup, cfg, warper, warper_tc, correction), clock=clock))
        log(f"[accuracy] {setup.name}: {len(results[-1].targets)} targets in {time.perf_counter() - t:.1f} s")
    return results, heatmap


@dataclass(frozen=True, eq=False)
class ClipSetup:
    """One held-out clip ready for the methods: its evidence (at the capture times) and schedules."""
    name: str
    bank: EvidenceBank
    inter: Schedule
    sync: Schedule
    dense: Schedule
    target_slots: np.ndarray       # (T,) scored interleaved frames, in capture order
    gt: np.ndarray                 # (T, J, 3) the truth at their capture times
    rig_slots: np.ndarray          # every interleaved frame's slot


def synthetic_setup(clip_name: str, cfg: AccuracyConfig, heatmap: HeatmapConfig,
                    decoder_from: WarperHandle | None) -> ClipSetup:
    """Schedules and one evidence bank for all methods (decoded as `decoder_from`'s model does)."""
    clip = motion.load_clip(clip_name)
    cams = make_rig(cfg.rig)
    duration = clip.duration if cfg.bench.max_duration_s is None else min(clip.duration, cfg.bench.max_duration_s)
    inter, sync, dense, scored = _capture_schedules(cfg, len(cams), duration, clip_name)
    cam = np.concatenate([inter.camera, sync.camera, dense.camera])
    nom = np.concatenate([inter.nominal, sync.nominal, dense.nominal])
    tim = np.concatenate([inter.time, sync.time, dense.time])
    bank = synthetic_bank(cams, cam, nom, tim, clip.at, cfg.noise, heatmap,
                          soft_argmax_kw=decoder_of(decoder_from))
    target_slots = bank.lookup(inter.camera[scored], inter.nominal[scored])
    target_slots = target_slots[np.argsort(bank.time[target_slots], kind="stable")]
    return ClipSetup(clip_name, bank, inter, sync, dense, target_slots, clip.at(bank.time[target_slots]),
                     bank.lookup(inter.camera, inter.nominal))


def run_clip(setup: ClipSetup, cfg: AccuracyConfig, warper: WarperHandle | None,
             warper_tc: WarperHandle | None = None, correction_s: np.ndarray | None = None) -> SequenceResult:
    """Every method on one clip; the methods see the stamps (capture time + the schedule's stamp
    errors - `correction_s` per camera), the truth stays at the capture times."""
    V = len(setup.bank.cameras)
    bank = setup.bank
    if stamps_off(cfg):
        bank = restamped(bank, cfg, np.zeros(V) if correction_s is None else correction_s)
    cycle = cfg.schedule.cycle_s(V)
    delay = cfg.bench.window_delay_s if cfg.bench.window_delay_s is not None else cycle - 1.0 / cfg.schedule.rate_hz
    return run_sequence(setup.name, bank, setup.inter, setup.sync, setup.dense, setup.target_slots, setup.gt,
                        cfg.bench, delay, warper, warper_tc=warper_tc)


def synthetic_sequence(clip_name: str, cfg: AccuracyConfig, warper: WarperHandle | None,
                       heatmap: HeatmapConfig, warper_tc: WarperHandle | None = None) -> SequenceResult:
    """One held-out clip through every method (stamp errors as the schedule says, uncorrected)."""
    return run_clip(synthetic_setup(clip_name, cfg, heatmap, warper or warper_tc), cfg, warper, warper_tc)


def _capture_schedules(cfg: AccuracyConfig, V: int, duration: float,
                       clip_name: str) -> tuple[Schedule, Schedule, Schedule, np.ndarray]:
    """The received frames of the interleaved rig, of (a)'s synchronised rig at the same image budget
    and of (e)'s synchronised capture at every scored instant, over a clip of `duration` s; and which
    interleaved frames are scored (bool, `bench.margin_cycles` cycles in from either end)."""
    pad = 3 * cfg.schedule.jitter_s + 1e-6
    t0, t1 = pad, duration - pad
    inter = interleaved(cfg.schedule, V, t0, t1).received()
    margin = cfg.bench.margin_cycles * cfg.schedule.cycle_s(V)
    scored = (inter.nominal >= t0 + margin - 1e-9) & (inter.nominal <= t1 - margin + 1e-9)
    if not scored.any():
        raise ValueError(f"clip {clip_name!r}: {duration:.2f} s leaves no targets after margins of "
                         f"{margin:.3f} s; lower margin_cycles or max_duration_s")
    # (a): synchronised instants with the same image budget (all cameras at the mean camera rate).
    sync_rate = float(cfg.schedule.rates(V).mean())
    offset0 = float(cfg.schedule.offsets(V)[0])
    inst = t0 + offset0 + np.arange(int(np.floor((t1 - t0 - offset0) * sync_rate + 1e-9)) + 1) / sync_rate
    sync = synchronized_like(cfg.schedule, inst, V).received()
    dense = synchronized_like(cfg.schedule, np.unique(inter.nominal[scored]), V).received()
    return inter, sync, dense, scored


# --- the real video (pose2sim demo) ---------------------------------------------------------
def heldout_reprojection(bank: EvidenceBank, out: MethodOutput, target_slots: np.ndarray,
                         min_conf: float = 0.3) -> np.ndarray:
    """Pixel errors between each estimate projected into the cameras whose frame at the target
    instant the method did not use and the backbone's detections there (confident joints only)."""
    errs = []
    grid = bank.grid(bank.nominal[target_slots])                          # (T, V)
    for c, cam in enumerate(bank.cameras):
        slot = grid[:, c]
        sel = (slot >= 0) & ~out.used_now[:, c]
        if not sel.any():
            continue
        pred = out.pred[sel]                                              # (n, J, 3)
        ok = np.isfinite(pred).all(-1) & (bank.conf[slot[sel]] >= min_conf)
        uv = cam.project(np.where(np.isfinite(pred), pred, 0.0), distort=False)
        errs.append(np.linalg.norm(uv - bank.uv[slot[sel]], axis=-1)[ok])
    return np.concatenate(errs) if errs else np.zeros(0)


def video_sequence(bank: EvidenceBank, cfg: AccuracyConfig, warper: WarperHandle | None,
                   name: str = "pose2sim", warper_tc: WarperHandle | None = None) -> SequenceResult:
    """The interleaved run on a synchronised recording: camera c only at frames f with
    f mod N = c; (a) every N-th frame from all cameras; (e) every frame from all cameras, whose
    triangulation is the pseudo ground truth (`triangulated_detection_truth`). With
    `bench.video_heldout_from` = h, only targets whose every input frame (the window and each view's
    history) lies at or after frame h are scored."""
    V = len(bank.cameras)
    pgt = triangulated_detection_truth(bank)
    clock = None
    if stamps_off(cfg):
        correction, clock = clock_correction(cfg, [bank], [np.flatnonzero(pgt.frame % V == bank.camera)])
        bank = restamped(bank, cfg, correction)
    F, frame = len(pgt.instants), pgt.frame
    dt = float(np.median(np.diff(pgt.instants)))

    def schedule(mask: np.ndarray) -> Schedule:
        s = np.flatnonzero(mask)
        return Schedule(bank.camera[s], bank.nominal[s], bank.time[s], np.zeros(len(s), bool), V)
    inter = schedule(frame % V == bank.camera)
    sync = schedule(frame % V == 0)
    dense = schedule(np.ones(len(bank), bool))
    margin = int(np.ceil(cfg.bench.margin_cycles * V))
    history = max((w.model.config.temporal_context for w in (warper, warper_tc) if w is not None), default=0)
    first = max(margin, cfg.bench.video_heldout_from + V * (1 + history)) if cfg.bench.video_heldout_from else margin
    scored = np.flatnonzero((frame % V == bank.camera) & (frame >= first) & (frame < F - margin))
    target_slots = scored[np.argsort(bank.time[scored], kind="stable")]
    delay = cfg.bench.window_delay_s if cfg.bench.window_delay_s is not None else (V - 1) * dt
    res = run_sequence(name, bank, inter, sync, dense, target_slots, pgt.poses[frame[target_slots]], cfg.bench,
                       delay, warper, pseudo_gt=True, warper_tc=warper_tc, truth=TRIANGULATED_DETECTION_TRUTH)
    for key, out in res.outputs.items():
        if key != "e":
            res.heldout_px[key] = heldout_reprojection(bank, out, target_slots)
    return dataclasses.replace(res, clock=clock)


def run_video(cfg: AccuracyConfig, warper: WarperHandle | None, video_dir: Path,
              log: Callable[[str], None] = print, warper_tc: WarperHandle | None = None) -> SequenceResult | None:
    """The pose2sim demo through the project's loader and backbone; None when it is absent."""
    any_warper = warper or warper_tc
    size = any_warper.heatmap_size if any_warper is not None else cfg.heatmap.size
    got = load_pose2sim_bank(video_dir, heatmap_size=size, frames=cfg.bench.video_frames,
                             decoder=decoder_of(any_warper), log=log)
    return None if got is None else video_sequence(got[1], cfg, warper, warper_tc=warper_tc)
