"""The multi-person synthetic benchmark: who is who, and how well, when several people cross the rig?

For each people count and scene seed a `data.multi_person` scene (held-out clips on crossing paths,
a detector that misses people, invents some and loses occluded joints) is seen by the bench rig on
its interleaved schedule (`config/bench/default.yaml`: 4 cameras, 60 frames/s in all). Its frames go,
in capture order, through the `MultiPersonPipeline` of each method in each timing:
  (b)  naive interleaving: the `lite` model with untrained identity warps (`weights="none"`);
  (d+) DenseWarper with temporal context: the shipped `lite_tc` weights.
Every capture stamp at least `bench.margin_cycles` camera cycles from either end of the scene is an
output instant; the truth is the scene's pose there, scored by `eval.multi_metrics.evaluate_multi`
(recall / precision at 50 and 100 mm, per-person MPJPE, PCP, id switches, fragments). The same
people are also run one at a time (`single_person_scenes`: same noise, no one else) with (d+), so
each row says what the crowd costs: its per-person MPJPE over the one-at-a-time one (the ratio).
report.json also keeps, per run, the pipeline's `people_counts()` and where it failed
(`failure_modes`: missed person-instants near another person or early on, ghost predictions, the
distance to the nearest other person at each id switch).

Usage:  python -m dense_warper_ros.eval.multi_person_bench [--config config/bench/multi_person.yaml]
        [--people 2 3 5] [--seeds 0 1 2] [--methods b d+] [--quick] [--out out/bench_multi]
        [--weights-tc models/dense_warper_lite_tc.safetensors] [--threads 1]
Prints markdown tables (each people count pooled over its seeds, then each scene) and writes
<out>/report.json and <out>/summary.md.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from dense_warper_ros.buffer import TIMINGS, BufferConfig
from dense_warper_ros.cameras import Camera
from dense_warper_ros.data import multi_person as mp
from dense_warper_ros.data.rigs import config_from_dict, make_rig, read_yaml
from dense_warper_ros.data.schedules import Schedule, interleaved, synchronized
from dense_warper_ros.eval.bench_config import AccuracyConfig, config_from_mapping
from dense_warper_ros.eval.multi_metrics import (MultiPersonMetrics, Prediction, cost_matrix, evaluate_multi,
                                                 gated_assignment)
from dense_warper_ros.eval.report import jsonable
from dense_warper_ros.multi_pipeline import MultiPersonConfig as PipelineConfig
from dense_warper_ros.pipeline import PeopleOptions, build_pipeline
from dense_warper_ros.provenance import git_hash
from dense_warper_ros.skeleton import PELVIS
from dense_warper_ros.tracks import TrackingConfig, TrackRegistry

DEFAULT_CONFIG = Path("config") / "bench" / "multi_person.yaml"
MULTI_METHODS = ("b", "c", "d+", "e")
METHOD_LABELS = {"b": "naive interleaving (lite, identity warps)",
                 "c": "2D constant-velocity extrapolation (lite_tc, untrained warps: the velocity prior alone)",
                 "d+": "DenseWarper + temporal context (lite_tc)",
                 "e": "every camera at every instant (N x images, synchronous)"}
SECTIONS = ("multi_person", "multi_bench", "multi_pipeline", "tracking")   # besides default.yaml's
_SET_BY_BENCH = {"multi_pipeline": ("buffer", "tracking", "device"), "tracking": ("max_people",)}
EARLY_S = 0.25            # failure modes: misses this soon after the first output instant are "early"


@dataclass(frozen=True)
class MultiBenchConfig:
    """What the multi-person benchmark runs (the `multi_bench:` section)."""

    people: tuple[int, ...] = (2, 3, 5)          # people per scene
    seeds: tuple[int, ...] = (0, 1, 2)           # scenes per people count
    methods: tuple[str, ...] = MULTI_METHODS
    timings: tuple[str, ...] = TIMINGS
    single_person_methods: tuple[str, ...] = ("d+",)   # also run one person at a time
    thresholds_mm: tuple[float, ...] = (50.0, 100.0)   # recall / precision thresholds
    match_mm: float = 500.0                      # matching gate behind MPJPE, PCP and identity
    max_people: int | None = None                # tracks the pipeline holds; None: the scene's count
    quick_duration_s: float = 1.5                # --quick: scene length

    def __post_init__(self) -> None:
        bad = [m for m in self.methods + self.single_person_methods if m not in MULTI_METHODS]
        if bad:
            raise ValueError(f"multi_bench: unknown method(s) {bad}, expected some of {MULTI_METHODS}")
        bad = [t for t in self.timings if t not in TIMINGS]
        if bad:
            raise ValueError(f"multi_bench: unknown timing(s) {bad}, expected some of {TIMINGS}")
        if not self.people or min(self.people) < 1 or not self.seeds or not self.thresholds_mm:
            raise ValueError("multi_bench: needs people counts >= 1, seeds and thresholds")
        if self.max_people is not None and self.max_people < 1:
            raise ValueError(f"multi_bench: max_people must be >= 1 or null, got {self.max_people}")
        if self.quick_duration_s <= 0 or self.match_mm <= 0:
            raise ValueError("multi_bench: quick_duration_s and match_mm must be > 0")


@dataclass(frozen=True)
class MultiAccuracyConfig:
    """One bench YAML: default.yaml's sections, the scene, what runs, pipeline overrides."""

    base: AccuracyConfig = AccuracyConfig()          # rig, schedule, noise, bench (margin, model names)
    scene: mp.MultiPersonConfig = mp.MultiPersonConfig()
    bench: MultiBenchConfig = MultiBenchConfig()
    pipeline: Mapping[str, Any] = field(default_factory=dict)   # multi_pipeline.MultiPersonConfig fields
    tracking: Mapping[str, Any] = field(default_factory=dict)   # tracks.TrackingConfig fields


def override(obj: Any, changes: Mapping[str, Any], where: str) -> Any:
    """Frozen dataclass `obj` with `changes`, checked as YAML is (`config_from_dict`); fields the
    benchmark sets itself are refused."""
    fixed = sorted(set(changes) & set(_SET_BY_BENCH.get(where, ())))
    if fixed:
        raise ValueError(f"{where}: {fixed} are set by the benchmark")
    current = {f.name: getattr(obj, f.name) for f in fields(obj) if f.init}
    return config_from_dict(type(obj), {**current, **changes}, where)


def load_multi_config(path: str | Path | None) -> MultiAccuracyConfig:
    """From YAML: default.yaml's sections (`extends:`) plus multi_person, multi_bench, multi_pipeline
    and tracking; overrides are checked here, not mid-run."""
    data = read_yaml(path) if path is not None else {}
    own = {k: data.pop(k, None) or {} for k in SECTIONS}
    cfg = MultiAccuracyConfig(base=config_from_mapping(data), scene=mp.multi_person_from_dict(own["multi_person"]),
                              bench=config_from_dict(MultiBenchConfig, own["multi_bench"], "multi_bench"),
                              pipeline=dict(own["multi_pipeline"]), tracking=dict(own["tracking"]))
    override(PipelineConfig(buffer=BufferConfig(num_cameras=2)), cfg.pipeline, "multi_pipeline")
    override(TrackingConfig(), cfg.tracking, "tracking")
    return cfg


def quick(cfg: MultiAccuracyConfig) -> MultiAccuracyConfig:
    """Seconds, for tests: the first seed, a short scene."""
    return dataclasses.replace(
        cfg, bench=dataclasses.replace(cfg.bench, seeds=cfg.bench.seeds[:1]),
        scene=dataclasses.replace(cfg.scene, duration_s=min(cfg.scene.duration_s, cfg.bench.quick_duration_s)))


# --- one run: a scene's frames through one method's pipeline ------------------------------------
@dataclass
class Run:
    stamps_ns: np.ndarray                      # (T,) scored output instants
    predictions: list[list[Prediction]]        # per instant: (track id, (17, 3) m)
    counts: dict[str, int]                     # the pipeline's people_counts() at the end
    seconds: float                             # wall time of push_people + flush
    weights: str = ""                          # the pipeline's weights_source


def make_pipeline(cfg: MultiAccuracyConfig, method: str, timing: str, num_cameras: int, max_people: int,
                  weights_tc: str = ""):
    """(b) and (e): the faithful `lite` with identity warps (for (e) every view is at the instant:
    plain triangulation); (c): `lite_tc` untrained, whose warps then only move each view's heatmap
    by its joints' constant-velocity displacement to the instant (the velocity prior), i.e. 2D
    constant-velocity extrapolation per person; (d+): `lite_tc` with the shipped (or given) weights;
    each with the config's pipeline and tracking overrides."""
    model, weights = {"c": (cfg.base.bench.model_tc, "none"), "d+": (cfg.base.bench.model_tc, weights_tc)}.get(
        method, (cfg.base.bench.model, "none"))
    pipe = build_pipeline(num_cameras=num_cameras, timing=timing, offline=True, device="cpu", weights=weights,
                          model_config=model, people=PeopleOptions(max_people=max_people, keypoints_input=True))
    tracking = override(pipe.config.tracking, cfg.tracking, "tracking")
    pipe.config = dataclasses.replace(override(pipe.config, cfg.pipeline, "multi_pipeline"), tracking=tracking)
    pipe.tracks = TrackRegistry(tracking)           # nothing pushed yet: a fresh registry with the overrides
    return pipe


def capture_schedule(cfg: MultiAccuracyConfig, num_cameras: int, duration: float) -> Schedule:
    pad = 3 * cfg.base.schedule.jitter_s + 1e-6
    return interleaved(cfg.base.schedule, num_cameras, pad, duration - pad).received()


def synchronous_frames(scene: mp.MultiPersonScene, cams: Sequence[Camera],
                       frames: Sequence[mp.Frame]) -> list[mp.Frame]:
    """(e): every camera at each instant the interleaved rig captured (N times the images); the
    windowed buffer waits for all of them, so each pose has every view of its instant."""
    instants = np.unique([f.stamp_ns for f in frames]) * 1e-9
    return scene.observations(cams, synchronized(instants, len(cams)))


def scored_stamps(frames: Sequence[mp.Frame], margin_s: float) -> np.ndarray:
    """Distinct capture stamps at least `margin_s` from the first and last capture."""
    stamps = np.unique([f.stamp_ns for f in frames])
    lo, hi = stamps[0] + margin_s * 1e9 - 1e3, stamps[-1] - margin_s * 1e9 + 1e3
    return stamps[(stamps >= lo) & (stamps <= hi)]


def run_frames(pipe, frames: Sequence[mp.Frame], cams: Sequence[Camera], stamps_ns: np.ndarray) -> Run:
    """Feed the frames in capture order; the poses at the scored stamps, grouped per instant."""
    t0 = time.perf_counter()
    results = []
    for f in frames:
        results += pipe.push_people(f.camera, f.stamp_ns, f.people, cams[f.camera], f"cam{f.camera}")
    results += pipe.flush()
    seconds = time.perf_counter() - t0
    by_stamp: dict[int, list[Prediction]] = {int(s): [] for s in stamps_ns}
    for r in results:
        if r.stamp_ns in by_stamp:
            by_stamp[r.stamp_ns].append((r.track_id, r.points))
    return Run(stamps_ns, [by_stamp[int(s)] for s in stamps_ns], pipe.people_counts(), seconds, pipe.weights_source)


def score(scene: mp.MultiPersonScene, run: Run, bench: MultiBenchConfig) -> MultiPersonMetrics:
    return evaluate_multi(scene.truth(run.stamps_ns * 1e-9), run.predictions,
                          thresholds_mm=bench.thresholds_mm, match_mm=bench.match_mm)


# --- where it fails --------------------------------------------------------------------------------
def nearest_other_m(truth: np.ndarray) -> np.ndarray:
    """(P, T) floor distance (m) from each person's pelvis to the nearest other one (inf alone)."""
    xy = truth[:, :, PELVIS, :2]                                               # (P, T, 2)
    d = np.linalg.norm(xy[:, None] - xy[None], axis=-1)                        # (P, P, T)
    d[np.arange(len(xy)), np.arange(len(xy))] = np.inf
    return d.min(1) if len(xy) else np.zeros((0, xy.shape[1]))


def failure_modes(scene: mp.MultiPersonScene, run: Run, gate_mm: float, match_mm: float) -> dict[str, Any]:
    """Missed person-instants at `gate_mm` (per person; near another person, i.e. within the scene's
    min_separation_m; early, within EARLY_S of the first instant; with no pose at all within
    `match_mm`), predictions matching nobody at `match_mm` (ghosts), the fraction of predicted joints
    left NaN, and each id switch's distance (m) to the person's nearest other."""
    times = run.stamps_ns * 1e-9
    truth = scene.truth(times)
    near = nearest_other_m(truth)
    missed, no_pose = np.zeros(near.shape, bool), np.zeros(near.shape, bool)
    ghosts, nan_joints, last, switch_near = 0, 0, {}, []
    for t, preds in enumerate(run.predictions):
        poses = np.stack([p for _, p in preds]) if preds else np.zeros((0, 17, 3))
        cost = cost_matrix(poses, truth[:, t])
        missed[:, t] = no_pose[:, t] = True
        missed[[p for _, p in gated_assignment(cost, gate_mm)], t] = False
        pairs = gated_assignment(cost, match_mm)
        no_pose[[p for _, p in pairs], t] = False
        ghosts += len(preds) - len(pairs)
        nan_joints += int((~np.isfinite(poses).all(-1)).sum())
        for r, p in pairs:
            if p in last and last[p] != preds[r][0]:
                switch_near.append(round(float(near[p, t]), 2))
            last[p] = preds[r][0]
    close = near < scene.config.min_separation_m
    return {"gate_mm": gate_mm, "missed": int(missed.sum()), "missed_by_person": missed.sum(1).tolist(),
            "missed_near_other": int((missed & close).sum()), "near_other_instants": int(close.sum()),
            "missed_early": int(missed[:, times < times[0] + EARLY_S].sum()) if len(times) else 0,
            "no_pose": int(no_pose.sum()), "ghost_predictions": ghosts,
            "nan_joint_fraction": nan_joints / max(1, 17 * sum(len(p) for p in run.predictions)),
            "switch_nearest_other_m": switch_near}


# --- rows ----------------------------------------------------------------------------------------
def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _ratio(multi: Sequence[float], single: Sequence[float] | None) -> float:
    """Mean per-person MPJPE in the crowd over the one-at-a-time one (people finite in both)."""
    if not single:
        return float("nan")
    both = [(m, s) for m, s in zip(multi, single) if np.isfinite(m) and np.isfinite(s)]
    return _mean([m for m, _ in both]) / _mean([s for _, s in both]) if both else float("nan")


def make_row(scene: mp.MultiPersonScene, method: str, timing: str, run: Run, m: MultiPersonMetrics,
             single: list[float] | None, failures: dict[str, Any]) -> dict[str, Any]:
    person = list(m.person_mpjpe_mm)
    return {"scene": f"{scene.num_people}p seed {scene.config.seed}", "people": scene.num_people,
            "seed": scene.config.seed, "method": method, "timing": timing,
            "recall": {f"{t:g}": v for t, v in m.recall.items()},
            "precision": {f"{t:g}": v for t, v in m.precision.items()},
            "hits": {f"{t:g}": round(v * m.num_truth) for t, v in m.recall.items()},
            "person_mpjpe_mm": person, "mpjpe_mm": _mean(person),
            "single_person_mpjpe_mm": single, "single_mpjpe_mm": _mean(single or []),
            "ratio": _ratio(person, single), "person_pcp": list(m.person_pcp), "pcp": m.pcp,
            "id_switches": m.id_switches, "fragments": m.fragments, "num_truth": m.num_truth,
            "num_predictions": m.num_predictions, "seconds": run.seconds, "weights": run.weights,
            "counts": dict(run.counts),
            "failures": failures, "metrics": jsonable(m)}


def pooled(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (people count, method, timing) over its seeds: recall / precision over all
    person-instants, MPJPE / PCP means over all people, id switches / fragments / seconds summed."""
    out = []
    for key in dict.fromkeys((r["people"], r["method"], r["timing"]) for r in rows):
        rs = [r for r in rows if (r["people"], r["method"], r["timing"]) == key]
        truth, preds = sum(r["num_truth"] for r in rs), sum(r["num_predictions"] for r in rs)
        person = sum((r["person_mpjpe_mm"] for r in rs), [])
        single = sum((r["single_person_mpjpe_mm"] or [] for r in rs), []) or None
        seeds = f"{len(rs)} seed{'s' if len(rs) > 1 else ''}"
        out.append({"scene": f"{key[0]}p, {seeds}", "people": key[0], "method": key[1], "timing": key[2],
                    "recall": {t: sum(r["hits"][t] for r in rs) / max(truth, 1) for t in rs[0]["hits"]},
                    "precision": {t: sum(r["hits"][t] for r in rs) / max(preds, 1) for t in rs[0]["hits"]},
                    "mpjpe_mm": _mean(person), "single_mpjpe_mm": _mean(single or []),
                    "ratio": _ratio(person, single) if single and len(single) == len(person) else float("nan"),
                    "pcp": _mean(sum((r["person_pcp"] for r in rs), [])),
                    "id_switches": sum(r["id_switches"] for r in rs), "fragments": sum(r["fragments"] for r in rs),
                    "seconds": sum(r["seconds"] for r in rs)})
    return out


def _fmt(x: Any, digits: int = 1) -> str:
    return "-" if x is None or not np.isfinite(x) else f"{x:.{digits}f}"


def table(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown: recall / precision at each threshold, per-person MPJPE, the one-at-a-time MPJPE and
    the ratio, PCP, id switches, fragments, seconds."""
    if not rows:
        return ""
    thr = list(rows[0]["recall"])
    head = (["scene", "method", "timing"] + [f"R@{t}" for t in thr] + [f"P@{t}" for t in thr]
            + ["MPJPE/person mm", "1-person MPJPE mm", "ratio", "PCP", "ID sw", "frag", "s"])
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    for r in rows:
        cells = ([r["scene"], f"({r['method']})", r["timing"]] + [_fmt(r["recall"][t], 3) for t in thr]
                 + [_fmt(r["precision"][t], 3) for t in thr]
                 + [_fmt(r["mpjpe_mm"]), _fmt(r["single_mpjpe_mm"]), _fmt(r["ratio"], 2), _fmt(r["pcp"], 3),
                    str(r["id_switches"]), str(r["fragments"]), _fmt(r["seconds"])])
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --- the benchmark -------------------------------------------------------------------------------
def single_reference(cfg: MultiAccuracyConfig, scene: mp.MultiPersonScene, cams: Sequence[Camera],
                     schedule: Schedule, method: str, timing: str, weights_tc: str) -> list[float]:
    """Each person's MPJPE (mm) when the scene holds only them."""
    margin = cfg.base.bench.margin_cycles * cfg.base.schedule.cycle_s(len(cams))
    out = []
    for one in mp.single_person_scenes(scene):
        frames = one.observations(cams, schedule)
        pipe = make_pipeline(cfg, method, timing, len(cams), cfg.bench.max_people or 1, weights_tc)
        out.append(score(one, run_frames(pipe, frames, cams, scored_stamps(frames, margin)), cfg.bench)
                   .person_mpjpe_mm[0])
    return out


def bench_scene(cfg: MultiAccuracyConfig, num_people: int, seed: int, cams: Sequence[Camera], weights_tc: str,
                log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Every method and timing on one scene (and the one-at-a-time reference): its rows."""
    scene = mp.make_scene(dataclasses.replace(cfg.scene, num_people=num_people, seed=seed), cfg.base.noise)
    schedule = capture_schedule(cfg, len(cams), scene.config.duration_s)
    frames = scene.observations(cams, schedule)
    stamps = scored_stamps(frames, cfg.base.bench.margin_cycles * cfg.base.schedule.cycle_s(len(cams)))
    rows = []
    for timing in cfg.bench.timings:
        single = {m: single_reference(cfg, scene, cams, schedule, m, timing, weights_tc)
                  for m in cfg.bench.single_person_methods}
        for method in cfg.bench.methods:
            if method == "e" and timing != cfg.bench.timings[-1]:
                continue                          # synchronous: one row, whatever the timing
            pipe = make_pipeline(cfg, method, "windowed" if method == "e" else timing, len(cams),
                                 cfg.bench.max_people or num_people, weights_tc)
            run = run_frames(pipe, synchronous_frames(scene, cams, frames) if method == "e" else frames, cams,
                             stamps)
            m = score(scene, run, cfg.bench)
            failures = failure_modes(scene, run, max(cfg.bench.thresholds_mm), cfg.bench.match_mm)
            rows.append(make_row(scene, method, "synchronous" if method == "e" else timing, run, m,
                                 single.get(method), failures))
            log(f"[multi] {rows[-1]['scene']} ({method}) {timing}: recall@{failures['gate_mm']:g} "
                f"{rows[-1]['recall'][f'{max(cfg.bench.thresholds_mm):g}']:.3f}, MPJPE {rows[-1]['mpjpe_mm']:.1f} mm, "
                f"{m.id_switches} id switches, {run.seconds:.1f} s")
    return rows


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", type=Path, default=DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None,
                    help=f"bench YAML (default: {DEFAULT_CONFIG} in the working directory, if there)")
    ap.add_argument("--people", type=int, nargs="+", default=None, help="people counts (default: the config's)")
    ap.add_argument("--seeds", type=int, nargs="+", default=None, help="scene seeds (default: the config's)")
    ap.add_argument("--methods", nargs="+", choices=MULTI_METHODS, default=None, help="methods to run")
    ap.add_argument("--quick", action="store_true", help="one seed, a short scene (tests)")
    ap.add_argument("--out", type=Path, default=Path("out") / "bench_multi", help="output folder")
    ap.add_argument("--weights-tc", type=Path, default=None,
                    help="(d+) weights (default: the shipped dense_warper_lite_tc.safetensors)")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    return ap


def _config(args: argparse.Namespace) -> MultiAccuracyConfig:
    cfg = load_multi_config(args.config)
    changes = {k: tuple(v) for k, v in (("people", args.people), ("seeds", args.seeds), ("methods", args.methods))
               if v is not None}
    if changes:
        cfg = dataclasses.replace(cfg, bench=dataclasses.replace(cfg.bench, **changes))
    return quick(cfg) if args.quick else cfg


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = _config(args)
    cams = make_rig(cfg.base.rig)
    weights_tc = str(args.weights_tc or "")
    started = time.perf_counter()
    rows = []
    for n in cfg.bench.people:
        for seed in cfg.bench.seeds:
            rows += bench_scene(cfg, n, seed, cams, weights_tc)
    summary = pooled(rows)
    title = (f"Multi-person synthetic scenes ({cfg.scene.duration_s:g} s, crossing paths): rig {cfg.base.rig.name} "
             f"({len(cams)} cameras), {cfg.base.schedule.rate_hz:g} frames/s interleaved; "
             + "; ".join(f"({m}) {METHOD_LABELS[m]}" for m in cfg.bench.methods)
             + f"; 1-person = {', '.join(f'({m})' for m in cfg.bench.single_person_methods)} one person at a time")
    text = f"### {title}\n\n{table(summary)}\n\n#### Per scene\n\n{table(rows)}\n"
    print("\n" + text)
    seconds = time.perf_counter() - started
    report = {"git": git_hash(), "argv": list(sys.argv if argv is None else argv), "config": jsonable(cfg),
              "title": title, "summary": summary, "rows": rows, "seconds": seconds,
              "platform": {"python": platform.python_version(), "torch": torch.__version__,
                           "threads": torch.get_num_threads()}}
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "report.json", "w") as f:
        json.dump(jsonable(report), f, indent=1)
    (args.out / "summary.md").write_text(text + f"\n({seconds:.0f} s)\n")
    print(f"wrote {args.out / 'report.json'} and summary.md ({seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
