"""Training and validation windows in heatmap form (fast: no images, no backbone).

Every training batch draws its own camera count V in [min_cameras, max_cameras] (one V per batch:
the windows of a batch are stacked), a random ring rig per window from a small pool drawn for the
batch, a random capture schedule (aggregate rate, even or random phases, jitter, drops) and
detector noise around the benchmark's default; `train.windows.synthetic_windows` then draws clips,
augmentations (yaw, shift, mirror, speed 0.5x-2x), start times and the noisy heatmaps.

Two ways to feed the loop, both reproducible from the run's seed:
  - in process (`training_batches`): all randomness comes from the run's one numpy Generator,
    whose state the checkpoint keeps;
  - a torch DataLoader with worker processes (`batch_loader`), so that a GPU does not wait for one
    CPU core: batch k has its own Generator from (seed, k) (`batch_rng`), worker w of W makes
    batches w, w + W, ..., and the loader hands them out in order k = 0, 1, 2, ... The stream is the
    same for any number of workers, and a resumed run starts again at the batch it stopped at.

Validation: a fixed list of windows from clips held out of training (not the benchmark's test
clips), on the benchmark's default rig, schedule and noise, drawn once from a fixed seed.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from dense_warper_ros.cameras import Camera
from dense_warper_ros.data import motion
from dense_warper_ros.data.detector_noise import NoiseConfig
from dense_warper_ros.data.evidence import HeatmapConfig
from dense_warper_ros.data.motion import AugmentConfig, MotionClip
from dense_warper_ros.data.rigs import RigConfig, make_rig
from dense_warper_ros.data.schedules import ScheduleConfig
from dense_warper_ros.train.windows import synthetic_windows

Batch = dict[str, torch.Tensor]


@dataclass(frozen=True)
class DataConfig:
    """Ranges of the random training scenes (uniform unless said)."""

    train_clips: tuple[str, ...] = ("backflip", "crawl", "dance_a", "getup_facedown", "kick",
                                    "roll", "run", "spin")           # motion.TRAIN_CLIPS minus val
    val_clips: tuple[str, ...] = ("jump", "punch")                   # held out of training too
    min_cameras: int = 3
    max_cameras: int = 6
    rigs_per_batch: int = 4            # distinct random rigs drawn per batch
    radius_m: tuple[float, float] = (3.5, 6.5)
    height_m: tuple[float, float] = (0.8, 2.6)
    target_height_m: tuple[float, float] = (0.8, 1.2)
    focal_px: tuple[float, float] = (850.0, 1450.0)
    partial_arc_prob: float = 0.2      # rigs on an arc of 120-300 deg instead of the full ring
    rate_hz: tuple[float, float] = (30.0, 120.0)     # aggregate rate, log-uniform
    even_prob: float = 0.6             # even interleave c/R; else random phases in one cycle
    jitter_s: tuple[float, float] = (0.0, 0.002)
    drop_prob: tuple[float, float] = (0.0, 0.03)
    noise_scale: tuple[float, float] = (0.6, 1.4)    # x the default jitter and bias
    noise_tau_s: tuple[float, float] = (0.15, 0.15)  # jitter correlation time, log-uniform (short:
                                                     # frame-to-frame jitter, as a real detector's)
    outlier_scale: tuple[float, float] = (1.0, 1.0)  # x the default swap and miss rates, log-uniform
    speed_range: tuple[float, float] = (0.5, 2.0)    # playback speed, log-uniform
    occlusion_prob: float = 0.0        # per window and view: a nearer person hides part of the body
                                       # (`occlude`); 0 draws nothing, so older recipes replay exactly
    heatmap_size: int = 48
    heatmap_sigma: float = 2.5         # as the benchmark's heatmaps
    heatmap_sigma_min: float | None = None   # per batch uniform in [min, heatmap_sigma] (MoveNet's
                                             # peaks are sharper: about 1.5 px at 48)
    val_windows: int = 96
    val_seed: int = 12345
    # self-supervised fine-tuning on the real pose2sim video (`train.video`): this fraction of the
    # batches comes from its frames [video_frames[0], video_frames[1]); the rest stays held out
    video_prob: float = 0.0
    video_frames: tuple[int, int] = (0, 50)
    video_dir: str = "data/pose2sim"   # relative to the repository
    video_max_residual_px: float | None = None   # pseudo-GT joints missing a view by more are not
                                                 # targets (data/pose2sim_multi: two people)

    def __post_init__(self) -> None:
        if not 2 <= self.min_cameras <= self.max_cameras <= 8:
            raise ValueError(f"data: need 2 <= min_cameras <= max_cameras <= 8, got "
                             f"{self.min_cameras}, {self.max_cameras}")
        overlap = set(self.train_clips) & (set(self.val_clips) | set(motion.TEST_CLIPS))
        if overlap:
            raise ValueError(f"data: training clips {sorted(overlap)} are validation or test clips")
        if not 0.0 <= self.occlusion_prob <= 1.0:
            raise ValueError(f"data: occlusion_prob must be in [0, 1], got {self.occlusion_prob}")
        if not 0.0 <= self.video_prob <= 1.0:
            raise ValueError(f"data: video_prob must be in [0, 1], got {self.video_prob}")
        for name in ("noise_tau_s", "outlier_scale", "speed_range"):
            lo, hi = getattr(self, name)
            if not 0 < lo <= hi:
                raise ValueError(f"data: {name} must be (lo, hi) with 0 < lo <= hi, got {(lo, hi)}")
        if self.heatmap_sigma_min is not None and not 0 < self.heatmap_sigma_min <= self.heatmap_sigma:
            raise ValueError(f"data: heatmap_sigma_min must be in (0, heatmap_sigma], got {self.heatmap_sigma_min}")
        if not 0 <= self.video_frames[0] < self.video_frames[1]:
            raise ValueError(f"data: video_frames must be [lo, hi) with 0 <= lo < hi, got {self.video_frames}")
        bad = [c for c in self.train_clips + self.val_clips if c not in motion.CLIP_NAMES]
        if bad:
            raise ValueError(f"data: unknown clip(s) {bad}, expected some of {motion.CLIP_NAMES}")


def _u(rng: np.random.Generator, lohi: tuple[float, float]) -> float:
    return float(rng.uniform(lohi[0], lohi[1]))


def random_rig(rng: np.random.Generator, cfg: DataConfig, num_cameras: int) -> list[Camera]:
    """A ring (or arc) of cameras around the origin with random geometry."""
    arc = 360.0 if rng.random() >= cfg.partial_arc_prob else float(rng.uniform(120.0, 300.0))
    rc = RigConfig(name="random", num_cameras=num_cameras, radius_m=_u(rng, cfg.radius_m),
                   height_m=_u(rng, cfg.height_m), target_height_m=_u(rng, cfg.target_height_m),
                   focal_px=_u(rng, cfg.focal_px), start_azimuth_deg=float(rng.uniform(0, 360)),
                   arc_deg=arc)
    cams = make_rig(rc)
    order = rng.permutation(num_cameras)                  # capture order need not follow the ring
    return [cams[i] for i in order]


def random_schedule(rng: np.random.Generator, cfg: DataConfig, num_cameras: int) -> ScheduleConfig:
    """Aggregate rate log-uniform; even interleave or random phases within one cycle."""
    rate = float(np.exp(rng.uniform(np.log(cfg.rate_hz[0]), np.log(cfg.rate_hz[1]))))
    offsets = None
    if rng.random() >= cfg.even_prob:
        cycle = num_cameras / rate
        offsets = tuple(float(x) for x in np.concatenate([[0.0], rng.uniform(0, cycle, num_cameras - 1)]))
    return ScheduleConfig(rate_hz=rate, offsets_s=offsets, jitter_s=_u(rng, cfg.jitter_s),
                          drop_prob=_u(rng, cfg.drop_prob))


def _log_u(rng: np.random.Generator, lohi: tuple[float, float]) -> float:
    """Log-uniform; a fixed value (lo == hi) draws nothing, so older recipes replay exactly."""
    lo, hi = lohi
    return float(lo) if lo == hi else float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def random_noise(rng: np.random.Generator, cfg: DataConfig) -> NoiseConfig:
    base = NoiseConfig()
    k = _u(rng, cfg.noise_scale)
    o = _log_u(rng, cfg.outlier_scale)
    return dataclasses.replace(base, jitter_px=base.jitter_px * k, bias_px=base.bias_px * k,
                               jitter_tau_s=_log_u(rng, cfg.noise_tau_s),
                               swap_prob=min(base.swap_prob * o, 0.5), miss_prob=min(base.miss_prob * o, 0.5))


def heatmap_config(cfg: DataConfig, rng: np.random.Generator | None = None) -> HeatmapConfig:
    """The heatmaps' size and sigma; with `heatmap_sigma_min` and an rng, a random sigma."""
    sigma = cfg.heatmap_sigma
    if rng is not None and cfg.heatmap_sigma_min is not None:
        sigma = _u(rng, (cfg.heatmap_sigma_min, cfg.heatmap_sigma))
    return HeatmapConfig(size=cfg.heatmap_size, sigma=sigma)


def load_clips(names: tuple[str, ...]) -> list[MotionClip]:
    return [motion.load_clip(n) for n in names]


def training_batch(cfg: DataConfig, clips: list[MotionClip], batch_size: int, rng: np.random.Generator,
                   history: int = 0) -> Batch:
    """One batch (see `synthetic_windows` for the keys and shapes), every random draw from `rng`:
    its camera count V, rigs, schedule, noise, heatmap sigma, then its windows.
    `history`: earlier frames per view (the model's temporal_context; prev_* keys)."""
    V = int(rng.integers(cfg.min_cameras, cfg.max_cameras + 1))
    rigs = [random_rig(rng, cfg, V) for _ in range(cfg.rigs_per_batch)]
    gen = synthetic_windows(clips=clips, rigs=rigs, schedule=random_schedule(rng, cfg, V),
                            noise=random_noise(rng, cfg), heatmap=heatmap_config(cfg, rng),
                            batch_size=batch_size, rng=rng, augment=AugmentConfig(speed_range=cfg.speed_range),
                            history=history)
    batch = next(gen)
    if cfg.occlusion_prob > 0:
        occlude(batch, rng, cfg.occlusion_prob)
    return batch


def occlude(batch: Batch, rng: np.random.Generator, prob: float, joint_prob: float = 0.5) -> None:
    """In place: per window and view, with probability `prob`, a vertical band over 30-70 % of the
    person's width (someone nearer, in front) hides each joint inside it with `joint_prob`, in the
    view's current frame and its earlier ones (an occluder stays for a while). Detectors lose
    joints this way, several at once, when people cross; independent misses do not teach that."""
    hm = batch["heatmaps"]                                      # (B, V, J, h, w)
    uv = batch["target_uv"]                                     # (B, V, V, J, 2) [b, c, i]
    B, V, J = hm.shape[:3]
    for b in range(B):
        for v in range(V):
            if rng.random() >= prob:
                continue
            x = uv[b, v, v, :, 0].numpy()                       # (J,) the view's own joints, heatmap px
            lo, hi = float(x.min()), float(x.max())
            centre, half = rng.uniform(lo, hi), 0.5 * rng.uniform(0.3, 0.7) * (hi - lo)
            lost = torch.as_tensor((np.abs(x - centre) <= half) & (rng.random(J) < joint_prob))
            hm[b, v, lost] = 0
            if "prev_heatmaps" in batch:
                batch["prev_heatmaps"][b, v, :, lost] = 0


def training_batches(cfg: DataConfig, clips: list[MotionClip], batch_size: int,
                     rng: np.random.Generator, history: int = 0) -> Iterator[Batch]:
    """Endless batches made in this process, one after the other from the one generator `rng`."""
    while True:
        yield training_batch(cfg, clips, batch_size, rng, history)


def batch_rng(seed: int, index: int) -> np.random.Generator:
    """Batch `index`'s own generator: any process makes the same batch from (seed, index)."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))


class SyntheticBatches(IterableDataset):
    """Endless batches `start`, `start` + 1, ... (batch k from `batch_rng(seed, k)`); in a DataLoader
    worker w of W, only batches k = start + w + i W, which the loader interleaves back in order."""

    def __init__(self, cfg: DataConfig, clips: list[MotionClip], batch_size: int, *, seed: int,
                 history: int = 0, start: int = 0):
        self.cfg, self.clips, self.batch_size = cfg, clips, batch_size
        self.seed, self.history, self.start = seed, history, start

    def __iter__(self) -> Iterator[Batch]:
        info = get_worker_info()
        w, W = (0, 1) if info is None else (info.id, info.num_workers)
        k = self.start + w
        while True:
            yield training_batch(self.cfg, self.clips, self.batch_size, batch_rng(self.seed, k), self.history)
            k += W


def batch_loader(cfg: DataConfig, clips: list[MotionClip], batch_size: int, *, seed: int, workers: int,
                 history: int = 0, start: int = 0, pin_memory: bool = False) -> Iterator[Batch]:
    """Batches `start`, `start` + 1, ... of `SyntheticBatches` made by `workers` (>= 1) processes.
    The loader's own generator is seeded from `seed` (it seeds each worker's torch RNG), so the
    process-wide torch RNG is neither read nor moved."""
    if workers < 1:
        raise ValueError(f"batch_loader needs workers >= 1, got {workers}; make batches in process with "
                         "training_batches")
    data = SyntheticBatches(cfg, clips, batch_size, seed=seed, history=history, start=start)
    loader = DataLoader(data, batch_size=None, num_workers=workers, pin_memory=pin_memory,
                        generator=torch.Generator().manual_seed(seed))
    return iter(loader)


def validation_batches(cfg: DataConfig, batch_size: int = 32, history: int = 0) -> list[Batch]:
    """Fixed windows on the benchmark's default scene (4-camera Human3.6M-like rig, even 60 frames/s
    interleave, default noise) from the validation clips; same list on every call (for a given
    `history`: with earlier frames the random draws, hence the windows, differ from history 0)."""
    rng = np.random.default_rng(cfg.val_seed)
    gen = synthetic_windows(clips=load_clips(cfg.val_clips), rigs=[make_rig(RigConfig())],
                            schedule=ScheduleConfig(), noise=NoiseConfig(), heatmap=heatmap_config(cfg),
                            batch_size=batch_size, rng=rng, augment=AugmentConfig(), history=history)
    n = -(-cfg.val_windows // batch_size)
    return [next(gen) for _ in range(n)]
