"""The accuracy benchmark's configuration: rig, schedule, detector noise, heatmaps and what to score.

Built once from YAML (`load_config`; sections rig, schedule, noise, heatmap, bench; `extends:`
another file) at the entry point, `eval.accuracy`. The methods' letters are those of `eval.methods`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from dense_warper_ros.data import motion
from dense_warper_ros.data.detector_noise import NoiseConfig, noise_from_dict
from dense_warper_ros.data.evidence import HeatmapConfig, heatmap_from_dict
from dense_warper_ros.data.rigs import RigConfig, config_from_dict, read_yaml, rig_from_dict
from dense_warper_ros.data.schedules import ScheduleConfig, schedule_from_dict
from dense_warper_ros.eval import baselines

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
    video_dir: str = "data/pose2sim"             # real video (relative to the working directory)
    video_frames: int | None = None              # use only the first frames of the video
    video_heldout_from: int = 0                  # score only targets whose inputs all lie at or after
                                                 # this frame (earlier frames fine-tuned the weights)
    outlier_threshold: float | None = None       # heatmap px: every method's DLT drops views this far
                                                 # from the others' point (robust.yaml); None: off
    max_views: int | None = None                 # (d) and (d+) fuse only the views nearest in time to
                                                 # each target (the node's max_fused_views); None: all
    correct_stamps: bool = False                 # estimate each camera's clock offset from its 2D
                                                 # keypoints and correct its stamps (clock_offsets)
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
        if self.max_views is not None and self.max_views < 2:
            raise ValueError(f"bench: max_views must be >= 2 or null, got {self.max_views}")
        if self.oracle_frames < 1:
            raise ValueError(f"bench: oracle_frames must be >= 1, got {self.oracle_frames}")
        if "s" in self.methods and self.outlier_threshold is not None:
            raise ValueError("bench: method s (spatio-temporal DLT) has no outlier rejection; drop it "
                             "from methods or set outlier_threshold to null")


@dataclass(frozen=True)
class AccuracyConfig:
    """One bench YAML: the sections, each a frozen config."""

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


def quick(cfg: AccuracyConfig) -> AccuracyConfig:
    """A run of seconds for tests: one short clip, a few video frames."""
    return dataclasses.replace(cfg, bench=dataclasses.replace(
        cfg.bench, clips=cfg.bench.clips[:1], max_duration_s=min(cfg.bench.max_duration_s or 0.6, 0.6),
        video_frames=min(cfg.bench.video_frames or 24, 24), video_heldout_from=0))
