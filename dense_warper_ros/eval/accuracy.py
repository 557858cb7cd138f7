"""The accuracy benchmark: does DenseWarper beat the alternatives at the same camera budget?

Methods (the paper's evaluation protocol: every method at the same camera budget, scored at the
same instants; `eval.baselines` for (a), (b), (c), (e)):
  (a) dense synchronised capture at 1/N of the instants + interpolation (root linear, bones slerp):
      the paper's baseline protocol; windowed by nature (it needs the next synchronised instant);
  (b) naive interleaved: the latest (causal) / nearest (windowed) frame of every camera triangulated
      at each new frame, time offsets ignored;
  (c) interleaved + per-view constant-velocity motion of the 2D points to the target instant;
  (d) DenseWarper on the interleaved frames (`model.DenseWarper.pose_at`), with the given weights,
      or untrained identity warps when there are none (the table says which);
  (d+) the temporal-context extension of (d) (not in the paper; the shipped model): the warp also reads each
      view's previous frame(s) (`--weights-tc`, default models/dense_warper_lite_tc.safetensors).
      Windowed, it takes the frames (c) takes: per view the first frame after the target within
      the window (else the newest before it) plus the frame(s) before that, so the view's history
      brackets the target (interpolation, same delay as (c)); causal, the newest frames as (d);
      (d) itself feeds earlier frames too when its own weights have temporal context;
  (e) reference: dense synchronised capture at every instant (N x the images).
  (s) on request (`methods: [..., s]`): (c)'s frames fitted at once by a 3D point moving at
      constant velocity per joint (`baselines.spatio_temporal`); plain DLT only.
  (o) on request (`methods: [..., o]`), synthetic only: an analysis row, not a method. (c)'s frames,
      each moved by the true motion and keeping its own detection error, averaged per view
      (`baselines.oracle_motion`): the error left when motion is perfect is detector noise.
      `bench.oracle_frames` > 2 adds each view's earlier frames: what a longer history could give.
Timings: causal = only frames captured at or before the target; windowed = frames up to one cycle
minus one frame after it (the paper's window latency). Every method is scored at the same target
instants (the capture times of the interleaved frames, one cycle in from either end) against the
same ground truth, from the very same 2D evidence (one `EvidenceBank` per sequence: the same slot
gives every method the same heatmap and noise draw).

Data: the held-out DeepMimic clips (`data.motion.TEST_CLIPS`) with synthetic detector evidence
(rig, schedule, noise from YAML) against their exact motion capture, and the real pose2sim video
when it is present, against the pseudo ground truth `data.video.triangulated_detection_truth`
(every camera's backbone detections at every frame, triangulated; tables name it), plus
held-out-view reprojection.

Usage:  python -m dense_warper_ros.eval.accuracy [--config config/bench/default.yaml] [--quick]
        [--weights models/dense_warper_lite.safetensors | --untrained]
        [--weights-tc models/dense_warper_lite_tc.safetensors] [--out out/accuracy]
        [--outlier-threshold 2.5]   (robust triangulation for every method; config/bench/robust.yaml)
        [--oracle 4]                (the oracle row (o), 4 frames per view)
        [--methods b c s d+]        (run only these methods)
Prints markdown tables, writes <out>/accuracy.json and <out>/accuracy.png (plus
<out>/accuracy_video.png for the video): per-pose error over time and, for one instant, every
method's skeleton, (d+) included.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from dense_warper_ros.cameras import undistorter
from dense_warper_ros.data import motion
from dense_warper_ros.data.evidence import (EvidenceBank, HeatmapConfig, NoiseConfig, heatmap_from_dict,
                                            noise_from_dict, synthetic_bank)
from dense_warper_ros.data.rigs import (RigConfig, config_from_dict, make_rig, read_yaml, rig_from_dict,
                                        rig_summary)
from dense_warper_ros.data.schedules import (Schedule, ScheduleConfig, interleaved, schedule_from_dict,
                                             synchronized_like)
from dense_warper_ros.data.video import (TRIANGULATED_DETECTION_TRUTH, load_pose2sim_bank,
                                         triangulated_detection_truth)
from dense_warper_ros.devices import resolve_device
from dense_warper_ros.eval import baselines
from dense_warper_ros.eval.metrics import coverage, joint_errors
from dense_warper_ros.provenance import git_hash
from dense_warper_ros.skeleton import H36M_JOINTS, NUM_JOINTS

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO / "config" / "bench" / "default.yaml"
DEFAULT_WEIGHTS = REPO / "models" / "dense_warper_lite.safetensors"
DEFAULT_WEIGHTS_TC = REPO / "models" / "dense_warper_lite_tc.safetensors"
METHODS = ("a", "b", "c", "d", "d+", "e", "o", "s")
METHOD_NAMES = {
    "a": "(a) sync at 1/N of instants + interpolation",
    "b": "(b) interleaved, naive (offsets ignored)",
    "c": "(c) interleaved + 2D constant velocity",
    "d": "(d) DenseWarper interleaved",
    "d+": "(d+) DenseWarper + temporal context",
    "e": "(e) dense sync, every instant (N x images)",
    "o": "(o) the window's frames moved by the true motion (oracle)",
    "s": "(s) interleaved + 3D constant velocity (spatio-temporal DLT)",
}


# --- configuration -----------------------------------------------------------------------------
@dataclass(frozen=True)
class BenchConfig:
    """What to run and how to score it."""

    clips: tuple[str, ...] = motion.TEST_CLIPS   # held-out clips (the fixed split)
    max_duration_s: float | None = None          # cut every clip to this length (quick runs)
    margin_cycles: float = 1.0                   # targets this close to either end are not scored
    window_delay_s: float | None = None          # windowed timing: frames up to this long after the
                                                 # target; None: one cycle minus one frame
    methods: tuple[str, ...] = METHODS[:-2]      # on request: "o" (an oracle analysis row, synthetic
                                                 # only) and "s" (a spatio-temporal DLT: ties with (c))
    timings: tuple[str, ...] = baselines.TIMINGS
    model: str = "lite"                          # ModelConfig name for (d) without a weights file
    model_tc: str = "lite_tc"                    # ModelConfig name for (d+) without a weights file
    batch_size: int = 32                         # targets per DenseWarper forward
    video_dir: str = "data/pose2sim"             # real video (relative to the repository)
    video_frames: int | None = None              # use only the first frames of the video
    video_heldout_from: int = 0                  # score only targets whose inputs all lie at or after
                                                 # this frame (earlier frames fine-tuned the weights)
    outlier_threshold: float | None = None       # heatmap px: every method's DLT drops views this far
                                                 # from the others' point (robust.yaml); None: off
    oracle_frames: int = 2                       # frames per view (o) averages: (c)'s two, plus
                                                 # each view's earlier ones beyond 2

    def __post_init__(self) -> None:
        bad = [m for m in self.methods if m not in METHODS]
        if bad:
            raise ValueError(f"bench: unknown method(s) {bad}, expected some of {METHODS}")
        bad = [t for t in self.timings if t not in baselines.TIMINGS]
        if bad:
            raise ValueError(f"bench: unknown timing(s) {bad}, expected some of {baselines.TIMINGS}")
        bad = [c for c in self.clips if c not in motion.CLIP_NAMES]
        if bad:
            raise ValueError(f"bench: unknown clip(s) {bad}, expected some of {motion.CLIP_NAMES}")
        if self.margin_cycles < 0:
            raise ValueError(f"bench: margin_cycles must be >= 0, got {self.margin_cycles}")
        if self.video_heldout_from < 0:
            raise ValueError(f"bench: video_heldout_from must be >= 0, got {self.video_heldout_from}")
        if self.outlier_threshold is not None and not self.outlier_threshold > 0:
            raise ValueError(f"bench: outlier_threshold must be > 0 or null, got {self.outlier_threshold}")
        if self.oracle_frames < 1:
            raise ValueError(f"bench: oracle_frames must be >= 1, got {self.oracle_frames}")
        if "s" in self.methods and self.outlier_threshold is not None:
            raise ValueError("bench: method s (spatio-temporal DLT) has no outlier rejection; drop it "
                             "from methods or set outlier_threshold to null")


@dataclass(frozen=True)
class AccuracyConfig:
    rig: RigConfig = RigConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    noise: NoiseConfig = NoiseConfig()
    heatmap: HeatmapConfig = HeatmapConfig()
    bench: BenchConfig = BenchConfig()


SECTIONS = ("rig", "schedule", "noise", "heatmap", "bench")


def config_from_mapping(data: Mapping[str, Any]) -> AccuracyConfig:
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise ValueError(f"bench config: unknown section(s) {unknown}, expected some of {SECTIONS}")
    return AccuracyConfig(rig=rig_from_dict(data.get("rig")),
                          schedule=schedule_from_dict(data.get("schedule")),
                          noise=noise_from_dict(data.get("noise")),
                          heatmap=heatmap_from_dict(data.get("heatmap")),
                          bench=config_from_dict(BenchConfig, data.get("bench"), "bench"))


def load_config(path: str | Path | None) -> AccuracyConfig:
    """From YAML (sections rig, schedule, noise, heatmap, bench; `extends:` another file)."""
    if path is None:
        return AccuracyConfig()
    return config_from_mapping(read_yaml(path))


# --- DenseWarper (d) ---------------------------------------------------------------------------
@dataclass
class WarperHandle:
    model: Any                      # dense_warper_ros.model.DenseWarper
    status: str                     # "trained: <file>" / "untrained (identity warps)"
    heatmap_size: int | None        # what the model expects, when it says

    @property
    def decoder(self) -> dict[str, Any]:
        """The model's soft-argmax settings: every method decodes heatmaps the same way."""
        return self.model.config.decoder


def decoder_of(warper: WarperHandle | None) -> dict[str, Any]:
    """Soft-argmax settings shared by all methods: the model's, else the method's defaults."""
    return warper.decoder if warper is not None else {}


def load_warper(weights: Path | None, config_name: str,
                device: str | torch.device = "cpu") -> WarperHandle | None:
    """The model for (d) on `device` (`devices.resolve_device` names); None when the model module is
    unavailable."""
    try:
        from dense_warper_ros import model as model_mod
    except ImportError as exc:
        print(f"[accuracy] (d) skipped: cannot import dense_warper_ros.model ({exc})", file=sys.stderr)
        return None
    if weights is not None:
        if not Path(weights).exists():
            raise FileNotFoundError(f"weights file {weights} does not exist")
        net = model_mod.DenseWarper.load(weights)
        status = f"trained {net.config.name}: {Path(weights).name}"
    else:
        net = model_mod.DenseWarper(model_mod.ModelConfig.named(config_name))
        status = f"untrained {config_name} (identity warps)"
    net.to(resolve_device(device)).eval()
    return WarperHandle(net, status, net.heatmap_size)


def _previous_frames(bank: EvidenceBank, prev: np.ndarray, t_ref: float, device: torch.device | None = None):
    """Bank slots (B, V, K) (-1: none) -> `model.PreviousFrames` on `device` (zeros where missing)."""
    from dense_warper_ros.model import PreviousFrames
    B, V, K = prev.shape
    ok = prev >= 0
    safe = np.maximum(prev, 0)
    hm = bank.heatmaps(safe.ravel()).to(device)
    hm = hm.view(B, V, K, *hm.shape[1:]) * torch.as_tensor(ok, dtype=hm.dtype, device=device)[..., None, None, None]
    return PreviousFrames(hm, torch.as_tensor(bank.affines[safe], dtype=torch.float32, device=device),
                          torch.as_tensor(bank.time[safe] - t_ref, dtype=torch.float64, device=device),
                          torch.as_tensor(ok, device=device))


@torch.no_grad()
def densewarper(handle: WarperHandle, bank: EvidenceBank, sel: np.ndarray, targets: np.ndarray,
                batch_size: int, prev: np.ndarray | None = None) -> np.ndarray:
    """(d): pose at each target (T,) from the selected frames (T, V) -> (T, J, 3). `prev` (T, V, K):
    each selected frame's earlier frames of the same camera (temporal-context models), or None."""
    T, V = sel.shape
    undistort = undistorter(list(bank.cameras))
    out = np.full((T, NUM_JOINTS, 3), np.nan)
    dev = next(handle.model.parameters()).device
    P = torch.as_tensor(bank.P, dtype=torch.float32, device=dev)
    t_ref = float(targets.min()) if T else 0.0          # times relative to the sequence: float32-safe
    for s in range(0, T, batch_size):
        b = np.arange(s, min(s + batch_size, T))
        sb = sel[b]                                      # (B, V)
        valid = sb >= 0
        safe = np.maximum(sb, 0)
        hm = bank.heatmaps(safe.ravel()).to(dev)                    # (B*V, J, h, w)
        hm = hm.view(len(b), V, *hm.shape[1:])                      # (B, V, J, h, w)
        hm = hm * torch.as_tensor(valid, dtype=hm.dtype, device=dev)[..., None, None, None]
        previous = None if prev is None else _previous_frames(bank, prev[b], t_ref, dev)
        res = handle.model.pose_at(
            hm, P.expand(len(b), V, 3, 4),
            torch.as_tensor(bank.affines[safe], dtype=torch.float32, device=dev),
            torch.as_tensor(bank.time[safe] - t_ref, dtype=torch.float32, device=dev),
            torch.as_tensor(valid, device=dev),
            torch.as_tensor(targets[b] - t_ref, dtype=torch.float32, device=dev), undistort=undistort,
            previous=previous)
        out[b] = res.points.double().cpu().numpy()
    return out


# --- one sequence ------------------------------------------------------------------------------
@dataclass
class MethodOutput:
    pred: np.ndarray              # (T, J, 3)
    delay: np.ndarray             # (T,) s: newest frame used minus target time (>= 0)
    used_now: np.ndarray          # (T, V) bool: camera's frame at the target instant was used
    images_per_s: float           # frames the method's capture schedule takes, per second


@dataclass
class SequenceResult:
    name: str
    targets: np.ndarray           # (T,) s, capture times of the scored interleaved frames
    target_slots: np.ndarray      # (T,) bank slot of each target frame
    gt: np.ndarray                # (T, J, 3) ground truth (or pseudo ground truth)
    outputs: dict[str, MethodOutput]
    pseudo_gt: bool = False
    heldout_px: dict[str, np.ndarray] = field(default_factory=dict)   # per method: reprojection errors
    truth: str = "ground truth"   # what `gt` is: exact, or which pseudo ground truth (tables say it)
    num_cameras: int = 0          # cameras of the rig
    rate_hz: float = float("nan")   # interleaved frames per second, all cameras together


def method_keys(bench: BenchConfig, have_model: bool, have_tc: bool = False) -> list[str]:
    keys = []
    for m in bench.methods:
        if (m == "d" and not have_model) or (m == "d+" and not have_tc):
            continue
        if m in ("a", "e"):
            keys.append(m)
        else:
            keys += [f"{m}/{t}" for t in bench.timings]
    return keys


def _delay(bank: EvidenceBank, sel: np.ndarray, targets: np.ndarray) -> np.ndarray:
    t = np.where(sel >= 0, bank.time[np.maximum(sel, 0)], -np.inf).reshape(len(targets), -1)
    return np.maximum(t.max(1) - targets, 0.0)


def _used_now(bank: EvidenceBank, sel: np.ndarray, target_nominal: np.ndarray) -> np.ndarray:
    """(T, V): which cameras' frames at the target's nominal instant a selection (T, V[, k]) uses."""
    V = len(bank.cameras)
    used = np.zeros((len(target_nominal), V), dtype=bool)
    flat = sel.reshape(len(target_nominal), -1)
    for k in range(flat.shape[1]):
        s = flat[:, k]
        ok = (s >= 0) & (np.abs(bank.nominal[np.maximum(s, 0)] - target_nominal) < 1e-7)
        used[ok, bank.camera[s[ok]]] = True
    return used


def oracle_window(bank: EvidenceBank, slots: np.ndarray, pairs: np.ndarray, count: int) -> np.ndarray:
    """The frames (T, V, count) that (o) averages: the newest `count` of (c)'s pairs (T, V, 2) and
    each view's frames before them, oldest first (-1 where a view has too few)."""
    if count <= 2:
        return pairs[..., 2 - count:]
    earlier = baselines.select_previous(bank, slots, pairs[..., 0], count - 2)     # newest first
    return np.concatenate([earlier[..., ::-1], pairs], -1)


def run_sequence(name: str, bank: EvidenceBank, inter: Schedule, sync: Schedule, dense: Schedule,
                 target_slots: np.ndarray, gt: np.ndarray, bench: BenchConfig, delay_s: float,
                 warper: WarperHandle | None, *, pseudo_gt: bool = False,
                 warper_tc: WarperHandle | None = None, truth: str = "ground truth") -> SequenceResult:
    """Run every method on one sequence. Schedules hold received frames only; all their frames are
    in `bank`; `target_slots` (T,) are the scored interleaved frames. `warper_tc`: the model of
    (d+), the temporal-context extension. `truth` names what `gt` is, for the tables."""
    targets = bank.time[target_slots]
    t_nom = bank.nominal[target_slots]
    V = len(bank.cameras)
    inter_slots = bank.lookup(inter.camera, inter.nominal)

    def rate(s: Schedule) -> float:
        """Received frames per second of a capture schedule over its own span."""
        inst = np.unique(s.nominal)
        if len(inst) < 2:
            return float("nan")
        span = (inst[-1] - inst[0]) * len(inst) / (len(inst) - 1)     # n instants, n steps
        return float(len(s) / span)

    outputs: dict[str, MethodOutput] = {}
    outlier = bench.outlier_threshold
    for handle in (warper, warper_tc):
        if handle is not None:
            handle.model.set_inference(outlier_threshold=outlier)
    for key in method_keys(bench, warper is not None, warper_tc is not None):
        m, _, timing = key.partition("/")
        if m == "e":
            sel = bank.grid(t_nom)
            outputs[key] = MethodOutput(baselines.dense(bank, sel, outlier), _delay(bank, sel, targets),
                                        sel >= 0, rate(dense))
        elif m == "a":
            inst = np.unique(sync.nominal)
            sync_sel = bank.grid(inst)
            pred, inst_t = baselines.sync_interpolated(bank, sync_sel, targets, outlier)
            nxt = np.clip(np.searchsorted(inst_t, targets - 1e-9), 0, len(inst_t) - 1)
            at_sync = np.isin(np.round(t_nom * 1e6), np.round(inst * 1e6))
            used = np.zeros((len(targets), V), dtype=bool)
            used[at_sync] = True
            outputs[key] = MethodOutput(pred, np.maximum(inst_t[nxt] - targets, 0.0), used, rate(sync))
        elif m in ("b", "d", "d+"):
            if timing == "causal":
                sel = baselines.select_latest(bank, inter_slots, targets)
            elif m == "d+":   # the frames (c) uses: first after the target in the window, else newest
                sel = baselines.select_bracket(bank, inter_slots, targets, timing, delay_s)[..., 1]
            else:
                sel = baselines.select_nearest(bank, inter_slots, targets, delay_s)
            if m == "b":
                pred = baselines.naive(bank, sel, outlier)
            else:
                handle = warper if m == "d" else warper_tc
                K = handle.model.config.temporal_context
                prev = baselines.select_previous(bank, inter_slots, sel, K) if K else None
                pred = densewarper(handle, bank, sel, targets, bench.batch_size, prev)
            outputs[key] = MethodOutput(pred, _delay(bank, sel, targets), _used_now(bank, sel, t_nom),
                                        rate(inter))
        elif m in ("c", "o", "s"):
            if m == "o" and (bank.gt is None or pseudo_gt):
                continue                                         # no truth to move frames by (video)
            pairs = baselines.select_bracket(bank, inter_slots, targets, timing, delay_s)
            if m == "c":
                pred = baselines.constant_velocity(bank, pairs, targets, outlier)
            elif m == "s":
                pred = baselines.spatio_temporal(bank, pairs, targets)
            else:
                frames = oracle_window(bank, inter_slots, pairs, bench.oracle_frames)
                pred = baselines.oracle_motion(bank, frames, gt, outlier)
            outputs[key] = MethodOutput(pred, _delay(bank, pairs, targets), _used_now(bank, pairs, t_nom),
                                        rate(inter))
    return SequenceResult(name, targets, target_slots, gt, outputs, pseudo_gt, truth=truth, num_cameras=V,
                          rate_hz=rate(inter))


def synthetic_sequence(clip_name: str, cfg: AccuracyConfig, warper: WarperHandle | None,
                       heatmap: HeatmapConfig, warper_tc: WarperHandle | None = None) -> SequenceResult:
    """One held-out clip: schedules, one evidence bank for all methods, every method."""
    clip = motion.load_clip(clip_name)
    cams = make_rig(cfg.rig)
    V = len(cams)
    duration = clip.duration if cfg.bench.max_duration_s is None else min(clip.duration, cfg.bench.max_duration_s)
    pad = 3 * cfg.schedule.jitter_s + 1e-6
    t0, t1 = pad, duration - pad
    inter_all = interleaved(cfg.schedule, V, t0, t1)
    inter = inter_all.received()
    cycle = cfg.schedule.cycle_s(V)
    margin = cfg.bench.margin_cycles * cycle
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
    cam = np.concatenate([inter.camera, sync.camera, dense.camera])
    nom = np.concatenate([inter.nominal, sync.nominal, dense.nominal])
    tim = np.concatenate([inter.time, sync.time, dense.time])
    bank = synthetic_bank(cams, cam, nom, tim, clip.at, cfg.noise, heatmap, soft_argmax_kw=decoder_of(warper or warper_tc))
    target_slots = bank.lookup(inter.camera[scored], inter.nominal[scored])
    order = np.argsort(bank.time[target_slots], kind="stable")
    target_slots = target_slots[order]
    gt = clip.at(bank.time[target_slots])
    delay = cfg.bench.window_delay_s if cfg.bench.window_delay_s is not None else cycle - 1.0 / cfg.schedule.rate_hz
    return run_sequence(clip_name, bank, inter, sync, dense, target_slots, gt, cfg.bench, delay, warper,
                        warper_tc=warper_tc)


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
    return res


def run_video(cfg: AccuracyConfig, warper: WarperHandle | None, video_dir: Path,
              log: Callable[[str], None] = print, warper_tc: WarperHandle | None = None) -> SequenceResult | None:
    """The pose2sim demo through the project's loader and backbone; None when it is absent."""
    any_warper = warper or warper_tc
    size = any_warper.heatmap_size if any_warper is not None else cfg.heatmap.size
    got = load_pose2sim_bank(video_dir, heatmap_size=size, frames=cfg.bench.video_frames,
                             decoder=decoder_of(any_warper), log=log)
    return None if got is None else video_sequence(got[1], cfg, warper, warper_tc=warper_tc)


# --- scoring and reporting ---------------------------------------------------------------------
def score(results: Sequence[SequenceResult]) -> dict[str, dict]:
    """Per method: pooled metrics (mm), per clip, per joint (root-aligned), rates, delays."""
    keys = list(results[0].outputs) if results else []
    out = {}
    for key in keys:
        errs = {a: [] for a in ("none", "root", "procrustes")}
        per_clip, delays, preds = {}, [], []
        for r in results:
            o = r.outputs[key]
            e = {a: joint_errors(o.pred, r.gt, a) * 1000.0 for a in errs}
            for a in errs:
                errs[a].append(e[a])
            per_clip[r.name] = {"mpjpe_root_mm": _mean(e["root"]), "mpjpe_abs_mm": _mean(e["none"]),
                                "pa_mpjpe_mm": _mean(e["procrustes"]), "coverage": coverage(o.pred),
                                "poses": int(len(r.targets))}
            if r.heldout_px.get(key) is not None:
                per_clip[r.name]["heldout_reproj_px"] = _mean(r.heldout_px[key])
            delays.append(o.delay)
            preds.append(o.pred)
        cat = {a: np.concatenate(v) for a, v in errs.items()}
        d = np.concatenate(delays) * 1000.0
        total_time = sum(float(np.ptp(r.targets)) + _frame(r) for r in results)
        n_poses = sum(int(np.isfinite(r.outputs[key].pred).all(-1).any(-1).sum()) for r in results)
        images = sum(r.outputs[key].images_per_s * (float(np.ptp(r.targets)) + _frame(r)) for r in results)
        held = [r.heldout_px[key] for r in results if r.heldout_px.get(key) is not None]
        out[key] = {
            "method": key.split("/")[0], "timing": _timing(key), "name": METHOD_NAMES[key.split("/")[0]],
            "mpjpe_root_mm": _mean(cat["root"]), "mpjpe_abs_mm": _mean(cat["none"]),
            "pa_mpjpe_mm": _mean(cat["procrustes"]),
            "coverage": coverage(np.concatenate(preds)),
            "per_joint_root_mm": {j: _mean(cat["root"][:, i]) for i, j in enumerate(H36M_JOINTS)},
            "per_clip": per_clip,
            "delay_ms_mean": float(d.mean()) if d.size else float("nan"),
            "delay_ms_max": float(d.max()) if d.size else float("nan"),
            "poses_per_s": n_poses / total_time if total_time else float("nan"),
            "images_per_s": images / total_time if total_time else float("nan"),
            "heldout_reproj_px": _mean(np.concatenate(held)) if held else None,
        }
    return out


def _frame(r: SequenceResult) -> float:
    return float(np.median(np.diff(r.targets))) if len(r.targets) > 1 else 0.0


def _timing(key: str) -> str:
    m, _, t = key.partition("/")
    return {"a": "windowed (interpolates)", "e": "synchronous"}.get(m, t)


def _mean(x: np.ndarray) -> float:
    x = np.asarray(x, dtype=np.float64)
    ok = np.isfinite(x)
    return float(x[ok].mean()) if ok.any() else float("nan")


def markdown_table(scores: Mapping[str, dict], *, truth: str = "GT") -> str:
    """One row per method and timing; `truth` names what the errors are measured against."""
    heads = ["Method", "Timing", "Images/s", "Poses/s", "Delay ms (mean/max)",
             f"MPJPE root-aligned mm (vs {truth})", "MPJPE abs mm", "PA-MPJPE mm", "Coverage %"]
    with_held = any(s.get("heldout_reproj_px") is not None for s in scores.values())
    if with_held:
        heads.append("Held-out reproj. px")
    lines = ["| " + " | ".join(heads) + " |", "|" + "|".join("---" for _ in heads) + "|"]
    for s in scores.values():
        row = [s["name"], s["timing"], f"{s['images_per_s']:.0f}", f"{s['poses_per_s']:.0f}",
               f"{s['delay_ms_mean']:.1f} / {s['delay_ms_max']:.1f}", f"{s['mpjpe_root_mm']:.1f}",
               f"{s['mpjpe_abs_mm']:.1f}", f"{s['pa_mpjpe_mm']:.1f}", f"{100 * s['coverage']:.1f}"]
        if with_held:
            h = s.get("heldout_reproj_px")
            row.append("n/a (all views used)" if h is None else f"{h:.1f}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def per_clip_table(scores: Mapping[str, dict]) -> str:
    keys = list(scores)
    clips = list(next(iter(scores.values()))["per_clip"]) if scores else []
    heads = ["Clip (MPJPE root-aligned mm)"] + keys
    lines = ["| " + " | ".join(heads) + " |", "|" + "|".join("---" for _ in heads) + "|"]
    for c in clips:
        lines.append("| " + " | ".join([c] + [f"{scores[k]['per_clip'][c]['mpjpe_root_mm']:.1f}"
                                              for k in keys]) + " |")
    return "\n".join(lines)


SKELETON_PANELS = ("a", "b/causal", "c/causal", "d/causal", "d+/causal", "d/windowed", "d+/windowed", "e")


def skeleton_panels(outputs: Mapping[str, MethodOutput]) -> list[str]:
    """The methods the figure draws as skeletons, in `SKELETON_PANELS` order: every one that ran,
    (d+) included (the shipped method)."""
    return [k for k in SKELETON_PANELS if k in outputs]


def plot(results: Sequence[SequenceResult], path: Path, title: str) -> None:
    """Error per method over time (clips side by side) and one frame of skeletons."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dense_warper_ros.skeleton import H36M_BONES
    keys = list(results[0].outputs)
    fig = plt.figure(figsize=(16, 10), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1.1, 1])
    ax = top.add_subplot(1, 1, 1)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    offset, starts, lowest = 0.0, [], np.inf
    for r in results:
        t = r.targets - r.targets[0] + offset
        for i, key in enumerate(keys):
            if r.pseudo_gt and key == "e":
                continue                                   # (e) is the pseudo ground truth: 0
            e = np.nanmean(joint_errors(r.outputs[key].pred, r.gt, "root"), axis=1) * 1000.0
            lowest = min(lowest, float(np.nanmin(np.where(e > 1e-6, e, np.inf))))
            ax.plot(t, e, color=colours[i % len(colours)], lw=1, ls="--" if key.endswith("causal") else "-",
                    label=key if r is results[0] else None)
        starts.append((offset, r.name))
        offset = t[-1] + 0.1
    for x, name in starts:
        ax.axvline(x, color="0.6", lw=0.6)
        ax.annotate(name, (x, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -12),
                    textcoords="offset points", fontsize=9)
    ax.set_xlabel("time (s), sequences one after another")
    ax.set_ylabel("MPJPE root-aligned (mm), per pose")
    ax.set_yscale("log")
    if np.isfinite(lowest):                               # exact zeros (pseudo-GT frames) drop out
        ax.set_ylim(bottom=0.7 * lowest)
    ax.legend(ncol=len(keys), fontsize=8, loc="lower center")
    ax.set_title(title, fontsize=10)
    # skeletons: the instant where naive causal interleaving errs most in the first sequence
    r = results[0]
    ref = "b/causal" if "b/causal" in r.outputs else keys[0]
    err = np.nanmean(joint_errors(r.outputs[ref].pred, r.gt, "root"), axis=1)
    f = int(np.nanargmax(err)) if np.isfinite(err).any() else 0
    show = skeleton_panels(r.outputs)
    for i, key in enumerate(show):
        a3 = bottom.add_subplot(1, len(show), i + 1, projection="3d")
        for pose, colour, lw in ((r.gt[f], "k", 2.0), (r.outputs[key].pred[f], "tab:red", 1.2)):
            for c, p in H36M_BONES:
                a3.plot(*zip(pose[c], pose[p]), color=colour, lw=lw)
        centre = r.gt[f].mean(0)
        for setlim, k in ((a3.set_xlim, 0), (a3.set_ylim, 1), (a3.set_zlim, 2)):
            setlim(centre[k] - 0.9, centre[k] + 0.9)
        a3.set_box_aspect((1, 1, 1))
        e = np.nanmean(joint_errors(r.outputs[key].pred[f], r.gt[f], "root")) * 1000
        a3.set_title(f"{key}: {e:.0f} mm", fontsize=9)
        a3.tick_params(labelsize=6)
    bottom.suptitle(f"{r.name}, t = {r.targets[f]:.3f} s: black {r.truth}, red estimate "
                    f"(the instant where {ref} errs most)", fontsize=10)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def video_title(res: SequenceResult, model: str, model_tc: str) -> str:
    """The real video's table and figure title: its rig and rate as the recording has them."""
    each = res.rate_hz / res.num_cameras if res.num_cameras else float("nan")
    return (f"{res.name} video ({len(res.targets)} scored frames, {res.num_cameras} cameras, {res.rate_hz:.0f} "
            f"frames/s interleaved, {each:.0f} each) vs {res.truth}; (d) = {model}; (d+) = {model_tc}")


def _label_model(scores: dict[str, dict], status: str, status_tc: str | None = None) -> dict[str, dict]:
    """Say in (d)'s and (d+)'s rows which weights ran (trained file or untrained identity warps)."""
    for key, s in scores.items():
        if key.startswith("d/"):
            s["name"] = f"{s['name']} [{status}]"
        elif key.startswith("d+/") and status_tc:
            s["name"] = f"{s['name']} [{status_tc}]"
    return scores


def _jsonable(x: Any) -> Any:
    if dataclasses.is_dataclass(x):
        return {k: _jsonable(v) for k, v in dataclasses.asdict(x).items()}
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, float) and not np.isfinite(x):
        return None
    if isinstance(x, np.generic):
        return _jsonable(x.item())
    return x


# --- entry point -------------------------------------------------------------------------------
def quick(cfg: AccuracyConfig) -> AccuracyConfig:
    """A run of seconds for tests: one short clip, a few video frames."""
    return dataclasses.replace(cfg, bench=dataclasses.replace(
        cfg.bench, clips=cfg.bench.clips[:1], max_duration_s=min(cfg.bench.max_duration_s or 0.6, 0.6),
        video_frames=min(cfg.bench.video_frames or 24, 24), video_heldout_from=0))


def run_synthetic(cfg: AccuracyConfig, warper: WarperHandle | None, log: Callable[[str], None] = print,
                  warper_tc: WarperHandle | None = None) -> tuple[list[SequenceResult], HeatmapConfig]:
    heatmap = cfg.heatmap
    sizes = {w.heatmap_size for w in (warper, warper_tc) if w is not None and w.heatmap_size}
    if len(sizes) > 1:
        raise ValueError(f"(d) and (d+) models expect different heatmap sizes {sorted(sizes)}")
    if sizes and sizes != {heatmap.size}:
        # The model fixes the heatmap size (sigma stays in heatmap px: the decoder needs >= 2.5).
        heatmap = dataclasses.replace(heatmap, size=sizes.pop())
        log(f"[accuracy] heatmaps resized to the model's {heatmap.size} px (sigma {heatmap.sigma:.2f})")
    results = []
    for name in cfg.bench.clips:
        t = time.perf_counter()
        results.append(synthetic_sequence(name, cfg, warper, heatmap, warper_tc))
        log(f"[accuracy] {name}: {len(results[-1].targets)} targets in {time.perf_counter() - t:.1f} s")
    return results, heatmap


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None,
                    help="bench YAML (default: config/bench/default.yaml)")
    ap.add_argument("--weights", type=Path, default=None,
                    help=f"DenseWarper weights (default: {DEFAULT_WEIGHTS.relative_to(REPO)} if it exists)")
    ap.add_argument("--weights-tc", type=Path, default=None,
                    help="(d+) temporal-context weights (default: "
                         f"{DEFAULT_WEIGHTS_TC.relative_to(REPO)} if it exists)")
    ap.add_argument("--untrained", action="store_true",
                    help="(d) and (d+) with identity warps even if weights exist")
    ap.add_argument("--quick", action="store_true", help="one short clip and a few video frames (tests)")
    ap.add_argument("--no-video", action="store_true", help="skip the pose2sim video")
    ap.add_argument("--no-synthetic", action="store_true", help="skip the synthetic clips")
    ap.add_argument("--out", type=Path, default=REPO / "out" / "accuracy", help="output folder")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--device", default="cpu",
                    help="where (d) and (d+) run: cpu (default: the published figures), cuda, cuda:N, auto")
    ap.add_argument("--outlier-threshold", type=float, default=None,
                    help="heatmap px: every method's DLT drops outlier views (overrides bench.outlier_threshold)")
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=None,
                    help="the methods to run (default: bench.methods of the config)")
    ap.add_argument("--oracle", type=int, default=None, metavar="FRAMES",
                    help="add the oracle row (o), averaging FRAMES frames per view (synthetic only)")
    args = ap.parse_args(argv)
    device = resolve_device(args.device)           # a device it cannot use fails before any work
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    bench: dict[str, Any] = {}                     # command-line overrides of the config's bench
    if args.outlier_threshold is not None:
        bench["outlier_threshold"] = args.outlier_threshold
    methods = tuple(args.methods) if args.methods is not None else cfg.bench.methods
    if args.oracle is not None:
        bench["oracle_frames"] = args.oracle
        methods += () if "o" in methods else ("o",)
    if methods != cfg.bench.methods:
        bench["methods"] = methods
    if bench:
        cfg = dataclasses.replace(cfg, bench=dataclasses.replace(cfg.bench, **bench))
    if args.quick:
        cfg = quick(cfg)
    weights = None if args.untrained else (args.weights or (DEFAULT_WEIGHTS if DEFAULT_WEIGHTS.exists() else None))
    warper = load_warper(weights, cfg.bench.model, device) if "d" in cfg.bench.methods else None
    weights_tc = None if args.untrained else (
        args.weights_tc or (DEFAULT_WEIGHTS_TC if DEFAULT_WEIGHTS_TC.exists() else None))
    warper_tc = load_warper(weights_tc, cfg.bench.model_tc, device) if "d+" in cfg.bench.methods else None
    started = time.perf_counter()
    report: dict[str, Any] = {
        "git": git_hash(), "argv": list(sys.argv if argv is None else argv),
        "config": _jsonable(cfg), "model": warper.status if warper else "not run",
        "model_tc": warper_tc.status if warper_tc else "not run",
        "decoder": {"soft_argmax": decoder_of(warper) or "defaults (window 15 px at 96, temperature 0.05)"},
        "platform": {"python": platform.python_version(), "torch": torch.__version__,
                     "threads": torch.get_num_threads(), "device": str(device)},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.no_synthetic:
        results, heatmap = run_synthetic(cfg, warper, warper_tc=warper_tc)
        scores = _label_model(score(results), report["model"], report["model_tc"])
        V = len(make_rig(cfg.rig))
        title = (f"Synthetic held-out clips {', '.join(cfg.bench.clips)}: rig {cfg.rig.name} ({V} cameras), "
                 f"{cfg.schedule.rate_hz:g} frames/s interleaved; (d) = {report['model']}; "
                 f"(d+) = {report['model_tc']}")
        print(f"\n### {title}\n")
        print(markdown_table(scores))
        print("\n" + per_clip_table(scores))
        report["synthetic"] = {"scores": scores, "truth": "ground truth", "heatmap": _jsonable(heatmap),
                               "rig": rig_summary(cfg.rig, make_rig(cfg.rig))}
        plot(results, args.out / "accuracy.png", title)
    if not args.no_video:
        res = run_video(cfg, warper, REPO / cfg.bench.video_dir, warper_tc=warper_tc)
        if res is None:
            print(f"\n(pose2sim video not found under {cfg.bench.video_dir}: "
                  "run scripts/fetch_pose2sim.py to add it)")
        else:
            vscores = _label_model(score([res]), report["model"], report["model_tc"])
            title = video_title(res, report["model"], report["model_tc"])
            print(f"\n### {title}\n")
            print(markdown_table(vscores, truth=res.truth))
            report["video"] = {"scores": vscores, "truth": res.truth}
            plot([res], args.out / "accuracy_video.png", title)
    report["seconds"] = time.perf_counter() - started
    with open(args.out / "accuracy.json", "w") as f:
        json.dump(_jsonable(report), f, indent=1)
    print(f"\nwrote {args.out / 'accuracy.json'} ({report['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
