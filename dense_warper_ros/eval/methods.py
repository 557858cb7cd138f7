"""Every method of the accuracy benchmark on one sequence, at the same camera budget and instants.

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
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from dense_warper_ros.data.evidence import EvidenceBank
from dense_warper_ros.data.schedules import Schedule
from dense_warper_ros.eval import baselines
from dense_warper_ros.eval.bench_config import BenchConfig

if TYPE_CHECKING:
    from dense_warper_ros.eval.stamps import ClockReport
from dense_warper_ros.eval.densewarper_method import WarperHandle, model_poses


@dataclass
class MethodOutput:
    """One method's poses at a sequence's targets, and what they cost."""

    pred: np.ndarray              # (T, J, 3)
    delay: np.ndarray             # (T,) s: newest frame used minus target time (>= 0)
    used_now: np.ndarray          # (T, V) bool: camera's frame at the target instant was used
    images_per_s: float           # frames the method's capture schedule takes, per second


@dataclass
class SequenceResult:
    """Every method's output on one sequence, with the truth it is scored against."""

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
    clock: ClockReport | None = None   # when the stamps were off or corrected


def method_keys(bench: BenchConfig, have_model: bool, have_tc: bool = False) -> list[str]:
    """Row keys in order: "a" and "e" alone, every other method once per timing ("c/causal")."""
    keys = []
    for m in bench.methods:
        if (m == "d" and not have_model) or (m == "d+" and not have_tc):
            continue
        if m in ("a", "e"):
            keys.append(m)
        else:
            keys += [f"{m}/{t}" for t in bench.timings]
    return keys


def capture_rate(s: Schedule) -> float:
    """Received frames per second of a capture schedule over its own span."""
    inst = np.unique(s.nominal)
    if len(inst) < 2:
        return float("nan")
    span = (inst[-1] - inst[0]) * len(inst) / (len(inst) - 1)     # n instants, n steps
    return float(len(s) / span)


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


@dataclass(frozen=True, eq=False)
class _Targets:
    """What every method of one sequence shares: the evidence and the instants to score."""

    bank: EvidenceBank
    targets: np.ndarray           # (T,) s, capture times of the target frames
    nominal: np.ndarray           # (T,) s, their trigger instants
    inter_slots: np.ndarray       # (n,) bank slots of the received interleaved frames
    delay_s: float                # windowed timing: frames up to this long after the target
    outlier: float | None         # bench.outlier_threshold (heatmap px) or None


def run_sequence(name: str, bank: EvidenceBank, inter: Schedule, sync: Schedule, dense: Schedule,
                 target_slots: np.ndarray, gt: np.ndarray, bench: BenchConfig, delay_s: float,
                 warper: WarperHandle | None, *, pseudo_gt: bool = False,
                 warper_tc: WarperHandle | None = None, truth: str = "ground truth") -> SequenceResult:
    """Run every method on one sequence. Schedules hold received frames only; all their frames are
    in `bank`; `target_slots` (T,) are the scored interleaved frames. `warper_tc`: the model of
    (d+), the temporal-context extension. `truth` names what `gt` is, for the tables."""
    tg = _Targets(bank, bank.time[target_slots], bank.nominal[target_slots],
                  bank.lookup(inter.camera, inter.nominal), delay_s, bench.outlier_threshold)
    for handle in (warper, warper_tc):
        if handle is not None:
            handle.model.set_inference(outlier_threshold=bench.outlier_threshold, max_views=bench.max_views)
    outputs: dict[str, MethodOutput] = {}
    for key in method_keys(bench, warper is not None, warper_tc is not None):
        m, _, timing = key.partition("/")
        if m == "e":
            outputs[key] = _dense_every_instant(tg, capture_rate(dense))
        elif m == "a":
            outputs[key] = _sync_interpolated(tg, sync)
        elif m in ("b", "d", "d+"):
            handle = {"d": warper, "d+": warper_tc}.get(m)
            outputs[key] = _one_frame_per_view(tg, m, timing, handle, bench.batch_size, capture_rate(inter))
        elif m == "o" and (bank.gt is None or pseudo_gt):
            continue                                         # no truth to move frames by (video)
        elif m in ("c", "o", "s"):
            outputs[key] = _bracketing_frames(tg, m, timing, gt, bench.oracle_frames, capture_rate(inter))
    return SequenceResult(name, tg.targets, target_slots, gt, outputs, pseudo_gt, truth=truth,
                          num_cameras=len(bank.cameras), rate_hz=capture_rate(inter))


def _dense_every_instant(tg: _Targets, rate: float) -> MethodOutput:
    """(e): every camera's frame at each target instant."""
    sel = tg.bank.grid(tg.nominal)
    return MethodOutput(baselines.dense(tg.bank, sel, tg.outlier), _delay(tg.bank, sel, tg.targets), sel >= 0, rate)


def _sync_interpolated(tg: _Targets, sync: Schedule) -> MethodOutput:
    """(a): the synchronised instants around each target, interpolated; it waits for the next one."""
    bank, targets = tg.bank, tg.targets
    inst = np.unique(sync.nominal)
    pred, inst_t = baselines.sync_interpolated(bank, bank.grid(inst), targets, tg.outlier)
    nxt = np.clip(np.searchsorted(inst_t, targets - 1e-9), 0, len(inst_t) - 1)
    at_sync = np.isin(np.round(tg.nominal * 1e6), np.round(inst * 1e6))
    used = np.zeros((len(targets), len(bank.cameras)), dtype=bool)
    used[at_sync] = True
    return MethodOutput(pred, np.maximum(inst_t[nxt] - targets, 0.0), used, capture_rate(sync))


def _one_frame_per_view(tg: _Targets, m: str, timing: str, handle: WarperHandle | None, batch_size: int,
                        rate: float) -> MethodOutput:
    """(b), (d), (d+): one frame per view (the newest, or the nearest in the window), triangulated
    as if simultaneous (b) or brought to the target by DenseWarper (d, d+)."""
    bank, targets = tg.bank, tg.targets
    if timing == "causal":
        sel = baselines.select_latest(bank, tg.inter_slots, targets)
    elif m == "d+":   # the frames (c) uses: first after the target in the window, else newest
        sel = baselines.select_bracket(bank, tg.inter_slots, targets, timing, tg.delay_s)[..., 1]
    else:
        sel = baselines.select_nearest(bank, tg.inter_slots, targets, tg.delay_s)
    if m == "b":
        pred = baselines.naive(bank, sel, tg.outlier)
    else:
        K = handle.model.config.temporal_context
        prev = baselines.select_previous(bank, tg.inter_slots, sel, K) if K else None
        pred = model_poses(handle, bank, sel, targets, batch_size, prev)
    return MethodOutput(pred, _delay(bank, sel, targets), _used_now(bank, sel, tg.nominal), rate)


def _bracketing_frames(tg: _Targets, m: str, timing: str, gt: np.ndarray, oracle_frames: int,
                       rate: float) -> MethodOutput:
    """(c), (s), (o): each view's two frames around the target (or the newest two, causal), moved
    to the target in 2D (c), fitted by 3D constant velocity (s), or moved by the true motion (o)."""
    bank, targets = tg.bank, tg.targets
    pairs = baselines.select_bracket(bank, tg.inter_slots, targets, timing, tg.delay_s)
    if m == "c":
        pred = baselines.constant_velocity(bank, pairs, targets, tg.outlier)
    elif m == "s":
        pred = baselines.spatio_temporal(bank, pairs, targets)
    else:
        frames = oracle_window(bank, tg.inter_slots, pairs, oracle_frames)
        pred = baselines.oracle_motion(bank, frames, gt, tg.outlier)
    return MethodOutput(pred, _delay(bank, pairs, targets), _used_now(bank, pairs, tg.nominal), rate)
