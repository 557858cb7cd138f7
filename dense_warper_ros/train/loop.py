"""The stage-2 training loop: warps train on synthetic windows, the backbone is not involved
(heatmaps come from `train.data`); with `data.video_prob` > 0 that fraction of the batches are
windows of the real pose2sim video's MoveNet heatmaps (`train.video`), and `init` starts from
trained weights (fine-tuning).

One step (B windows of V views; J joints; h x w heatmaps):
  1. draw one target slot i per window (uniform over the V slots: the last slot is the causal
     case, the others the windowed one) and call `DenseWarper.pose_at` at t_i, which warps the
     V - 1 views not captured at t_i (cheaper than `forward_window`'s V (V - 1) with the same
     gradient per warp, and more windows per step);
  2. 2D loss: the method's robust loss between each warped view's soft-argmax (heatmap px) and the
     time-correct target, the pose at t_i projected into that view's crop; masked to warped, received
     views, detected peaks, visible targets, and joints visible in >= min_views views;
  3. optional 3D loss (`w3d` > 0): root-aligned MPJPE of the triangulated pose at t_i (through the
     differentiable DLT);
  4. Adam step; learning rate x lr_drop_factor after lr_drop_at of the steps.
Batches are made in this process (`workers` 0) or by DataLoader worker processes (`workers` > 0,
`train.data.batch_loader`: a GPU run needs them, one CPU core cannot keep up with it); both are
reproducible from `seed`, each its own stream (any worker count > 0 gives the same one).
Checkpoints (`ckpt.pt`) hold model, optimiser, step, every RNG state (CUDA's too where there is
CUDA) and how many loader batches were used, so `--resume` continues exactly when `workers` is 0
again, or again > 0; `config.yaml` (the run's config) is written beside them; `model.safetensors` is
the last weights in `DenseWarper.save` form and `best.safetensors` the best on validation.
"""
from __future__ import annotations

import dataclasses
import json
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from dense_warper_ros.cameras import apply_affines
from dense_warper_ros.data.rigs import config_from_dict
from dense_warper_ros.data.video import load_pose2sim_bank, triangulated_detection_truth
from dense_warper_ros.devices import resolve_device
from dense_warper_ros.model import DenseWarper, ModelConfig, PreviousFrames
from dense_warper_ros.train.data import (Batch, DataConfig, batch_loader, load_clips, training_batches,
                                         validation_batches)
from dense_warper_ros.train.loss import mpjpe_3d_loss, robust_2d_loss
from dense_warper_ros.train.video import VideoWindows
from dense_warper_ros.weights import written_atomically


@dataclass(frozen=True)
class OptimConfig:
    """Optimisation of the warps."""

    steps: int = 1500                 # optimiser steps
    batch_size: int = 16              # windows per step
    lr: float = 1e-3                  # Adam learning rate (the paper: 1e-4 for its 94 M warps)
    lr_drop_at: float = 0.75          # fraction of the steps after which ...
    lr_drop_factor: float = 0.1       # ... the learning rate is multiplied by this
    weight_decay: float = 0.0
    grad_clip: float = 5.0            # max global gradient norm; 0: off


@dataclass(frozen=True)
class LossConfig:
    """Loss terms (train.loss)."""

    w2d: float = 1.0                  # robust 2D loss weight
    alpha: float = -10.0              # Barron alpha (the method: -10)
    scale_px: float = 4.0             # Barron c, heatmap px (the method: 8 at 96 px; 4 at 48 px)
    gain: float = 1000.0              # the method's x 1000 on the per-joint mean
    min_views: int = 3                # joints visible in fewer views (capped at V) are not scored
    w3d: float = 0.0                  # root-aligned MPJPE (mm) weight; 0: 2D only


@dataclass(frozen=True)
class TrainConfig:
    """One training run; filled from YAML (sections model, data, optim, loss)."""

    model: str = "lite"                               # ModelConfig.named(...)
    model_overrides: Mapping[str, Any] = field(default_factory=dict)
    data: DataConfig = DataConfig()
    optim: OptimConfig = OptimConfig()
    loss: LossConfig = LossConfig()
    seed: int = 0
    init: str | None = None                           # weights to start from (fine-tuning); relative
                                                      # paths are from the repository root
    causal_prob: float = 0.0                          # P(target = the window's newest frame); else
                                                      # uniform over slots (0: always uniform)
    threads: int = 1                                  # torch CPU threads of the training process
    workers: int = 0                                  # DataLoader processes making the synthetic
                                                      # batches; 0: this process makes them, from
                                                      # the run's one generator
    device: str = "auto"                              # cpu, cuda, cuda:N; auto: cuda when present
    val_every: int = 100                              # steps between validations
    ckpt_every: int = 100                             # steps between checkpoints
    log_every: int = 10

    def __post_init__(self) -> None:
        if self.threads < 1:
            raise ValueError(f"train: threads must be >= 1, got {self.threads}")
        if self.workers < 0:
            raise ValueError(f"train: workers must be >= 0, got {self.workers}")


def config_from_mapping(d: Mapping[str, Any]) -> TrainConfig:
    d = dict(d)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    bad = sorted(set(d) - known)
    if bad:
        raise ValueError(f"train config: unknown key(s) {bad}, expected some of {sorted(known)}")
    sub = {"data": (DataConfig, "data"), "optim": (OptimConfig, "optim"), "loss": (LossConfig, "loss")}
    for key, (cls, where) in sub.items():
        d[key] = config_from_dict(cls, d.get(key), where)
    d["model_overrides"] = dict(d.get("model_overrides") or {})
    return TrainConfig(**d)


def to_device(batch: Batch, device: torch.device) -> Batch:
    """Every tensor of a batch on the training device (the data is made on the CPU)."""
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def to_jsonable(cfg: TrainConfig) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


REPO = Path(__file__).resolve().parents[2]


def repo_path(path: str | Path) -> Path:
    """Relative paths of a recipe are from the repository root, so a recipe runs from anywhere."""
    path = Path(path)
    return path if path.is_absolute() else REPO / path


NEW_HEADS = ("fusion_head",)      # heads a recipe may add to `init` weights: they start at their start value


def build_model(cfg: TrainConfig) -> DenseWarper:
    """The recipe's model; with `init`, that file's weights. The recipe's config may differ from the
    file's in what has no weights (e.g. `history_weight`) and by the heads in NEW_HEADS (e.g.
    `temporal_fusion`), not otherwise in the weights' names or shapes."""
    model = DenseWarper(ModelConfig.named(cfg.model, **cfg.model_overrides))
    if cfg.init:
        start = DenseWarper.load(repo_path(cfg.init))
        misfit = (f"init {cfg.init}: its weights ({start.config.name}) do not fit the recipe's "
                  f"model ({cfg.model} + {dict(cfg.model_overrides)})")
        try:
            missing, unexpected = model.load_state_dict(start.state_dict(), strict=False)
        except RuntimeError as exc:      # a shape differs
            raise ValueError(f"{misfit}: {exc}") from exc
        new = [k for k in missing if not k.split(".")[-2].endswith(NEW_HEADS)]
        if new or unexpected:
            raise ValueError(f"{misfit}: missing {new}, unexpected {list(unexpected)}")
    return model


def video_windows(cfg: TrainConfig, model: DenseWarper, log=print) -> VideoWindows | None:
    """The real video's training windows when the recipe mixes them in (data.video_prob > 0)."""
    if cfg.data.video_prob <= 0:
        return None
    got = load_pose2sim_bank(repo_path(cfg.data.video_dir), heatmap_size=cfg.data.heatmap_size,
                             frames=cfg.data.video_frames[1], decoder=model.config.decoder, log=log)
    if got is None:
        raise FileNotFoundError(f"data.video_prob > 0 but no video under {cfg.data.video_dir}: "
                                "run scripts/fetch_pose2sim.py")
    bank = got[1]
    pgt = triangulated_detection_truth(bank, max_residual_px=cfg.data.video_max_residual_px)
    return VideoWindows(bank, cfg.data.video_frames, history=model.config.temporal_context, pgt=pgt)


# --- one step ---------------------------------------------------------------------------------
def previous_of(batch: Batch) -> PreviousFrames | None:
    """The batch's earlier frames per view (temporal-context training), or None."""
    if "prev_heatmaps" not in batch:
        return None
    return PreviousFrames(batch["prev_heatmaps"], batch["prev_affines"],
                          batch["prev_times"].to(torch.float64), batch["prev_valid"].bool())


def loss_mask(batch: Batch, slot: torch.Tensor, peak: torch.Tensor, min_views: int) -> torch.Tensor:
    """(B, V, J) bool: which (view, joint) 2D predictions at each window's target slot are scored."""
    B, V = batch["valid"].shape
    b = torch.arange(B, device=slot.device)
    vis = batch["target_visible"][b, :, slot]                    # (B, V, J) target inside view c
    enough = vis.sum(1, keepdim=True) >= min(min_views, V)       # (B, 1, J)
    warped = torch.arange(V, device=slot.device)[None, :] != slot[:, None]   # (B, V) not the anchor view
    return vis & enough & (warped & batch["valid"].bool())[..., None] & (peak > 0.01)


def step_losses(model: DenseWarper, batch: Batch, slot: torch.Tensor, loss_cfg: LossConfig,
                undistort=None) -> tuple[torch.Tensor, dict[str, float]]:
    """Forward at one slot per window and the weighted loss. slot (B,) long. `undistort`: the
    rig's hook (`cameras.undistorter`) for real cameras; targets are then pinhole projections."""
    B, V = batch["valid"].shape
    b = torch.arange(B, device=slot.device)
    out = model.pose_at(batch["heatmaps"], batch["P"], batch["affines"], batch["times"],
                        batch["valid"], batch["times"][b, slot], previous=previous_of(batch),
                        undistort=undistort)
    uv_h = apply_affines(batch["affines"].to(out.uv.dtype), out.uv)   # (B, V, J, 2) heatmap px
    target = batch["target_uv"][b, :, slot].to(uv_h.dtype)           # (B, V, J, 2)
    mask = loss_mask(batch, slot, out.peak, loss_cfg.min_views)
    l2d = robust_2d_loss(uv_h, target, mask, alpha=loss_cfg.alpha, scale=loss_cfg.scale_px,
                         gain=loss_cfg.gain)
    total = loss_cfg.w2d * l2d
    gt = batch["poses"][b, slot].to(out.points.dtype)                # (B, J, 3)
    l3d = mpjpe_3d_loss(out.points, gt, mask=batch["pose_valid"][b, slot] if "pose_valid" in batch else None)
    if loss_cfg.w3d > 0:
        total = total + loss_cfg.w3d * l3d
    err = ((uv_h - target).abs().sum(-1) * mask).sum() / mask.sum().clamp_min(1)
    return total, {k: float(v.detach()) for k, v in
                   (("loss", total), ("l2d", l2d), ("mpjpe", l3d), ("l1px", err))}


@torch.no_grad()
def validate(model: DenseWarper, batches: list[Batch], loss_cfg: LossConfig) -> dict[str, float]:
    """Every slot of every fixed window (`forward_window`, eval mode): 2D error of the warped views
    (px, L1) and root-aligned MPJPE (mm) over all slots and over the last slot (causal case)."""
    was = model.training
    model.eval()
    err_sum = n2d = 0.0
    mp_all, mp_last = [], []
    device = next(model.parameters()).device
    for batch in batches:
        batch = to_device(batch, device)
        out = model.forward_window(batch["heatmaps"], batch["P"], batch["affines"], batch["times"],
                                   batch["valid"], previous=previous_of(batch))
        B, V = batch["valid"].shape
        uv = out.uv_heatmap                                          # (B, V, V, J, 2)
        vis = batch["target_visible"]                                # (B, V, V, J)
        off = ~torch.eye(V, dtype=torch.bool, device=uv.device)[None, :, :, None]
        mask = vis & off & (out.peak > 0.01)
        err = (uv - batch["target_uv"]).abs().sum(-1)
        err_sum += float((err * mask).nan_to_num().sum())
        n2d += float(mask.sum())
        mp_all.append(mpjpe_3d_loss(out.poses, batch["poses"].to(out.poses.dtype)) * B * V)
        mp_last.append(mpjpe_3d_loss(out.poses[:, -1], batch["poses"][:, -1].to(out.poses.dtype)) * B)
    model.train(was)
    nw = sum(b["valid"].shape[0] for b in batches)
    V = batches[0]["valid"].shape[1]
    return {"val_l1px": err_sum / max(n2d, 1), "val_mpjpe": float(sum(mp_all)) / (nw * V),
            "val_mpjpe_last": float(sum(mp_last)) / nw}


def draw_slots(rng: np.random.Generator, times: torch.Tensor, causal_prob: float) -> torch.Tensor:
    """One target slot per window (B,) long: uniform over the V slots, or with probability
    causal_prob the newest frame (the causal case, the node's default timing).
    causal_prob 0 draws only the uniform slots (no extra random draw)."""
    B, V = times.shape
    slot = torch.as_tensor(rng.integers(0, V, size=B))
    if causal_prob > 0:
        newest = times.argmax(dim=1)
        slot = torch.where(torch.as_tensor(rng.random(B) < causal_prob), newest, slot)
    return slot


# --- checkpoints ------------------------------------------------------------------------------
def save_checkpoint(path: Path, model: DenseWarper, opt: torch.optim.Optimizer, step: int,
                    rng: np.random.Generator, best: float, history: list[dict], *,
                    loader_batches: int = 0) -> None:
    """Everything a resumed run needs to take exactly the same next step: every RNG state (numpy,
    torch CPU, Python, and each CUDA device's where CUDA is available) and, for a run fed by
    `batch_loader`, how many of its batches were used (`loader_batches`)."""
    blob = {"model": model.state_dict(), "optim": opt.state_dict(), "step": step,
            "numpy_rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
            "python_rng": random.getstate(), "best": best, "history": history,
            "model_config": model.config.to_dict(), "loader_batches": loader_batches}
    if torch.cuda.is_available():
        blob["cuda_rng"] = torch.cuda.get_rng_state_all()
    with written_atomically(path) as tmp:
        torch.save(blob, tmp)


def load_checkpoint(path: Path, model: DenseWarper, opt: torch.optim.Optimizer,
                    rng: np.random.Generator) -> tuple[int, float, list[dict], int]:
    """Restore what `save_checkpoint` kept -> (step, best, history, loader_batches). CUDA RNG states
    are restored where CUDA is available (a checkpoint written on the CPU has none; one written on
    CUDA resumes on the CPU without them)."""
    blob = torch.load(path, map_location="cpu", weights_only=True)       # a file is input: no code
    model.load_state_dict(blob["model"])
    opt.load_state_dict(blob["optim"])
    rng.bit_generator.state = blob["numpy_rng"]
    torch.set_rng_state(blob["torch_rng"])
    random.setstate(blob["python_rng"])
    if "cuda_rng" in blob and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(blob["cuda_rng"][:torch.cuda.device_count()])
    return int(blob["step"]), float(blob["best"]), list(blob["history"]), int(blob.get("loader_batches", 0))


def lr_at(cfg: OptimConfig, step: int) -> float:
    return cfg.lr * (cfg.lr_drop_factor if step >= math.floor(cfg.lr_drop_at * cfg.steps) else 1.0)


# --- the loop ---------------------------------------------------------------------------------
def train(cfg: TrainConfig, out_dir: Path, *, resume: bool = False, progress: bool = True,
          validation: bool = True, stop_after: int | None = None, log=print) -> dict:
    """Run (or resume) training into out_dir; returns the best validation MPJPE and the history.
    `stop_after`: checkpoint and stop after this step, as an interrupted run (the schedule still
    follows cfg.optim.steps), to be continued with resume=True."""
    device = resolve_device(cfg.device)            # a wrong device fails before any file is written
    torch.set_num_threads(cfg.threads)
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = build_model(cfg).to(device)
    model.train()
    log(f"[train] {cfg.model} on {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else
                                               f" ({cfg.threads} thread{'s' * (cfg.threads != 1)})")
        + (f", batches from {cfg.workers} loader worker{'s' * (cfg.workers != 1)}" if cfg.workers else ""))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    step, best, history, used = 0, float("inf"), [], 0     # used: batches taken from the loader
    ckpt = out_dir / "ckpt.pt"
    if resume:
        if not ckpt.exists():
            raise FileNotFoundError(f"--resume: no checkpoint at {ckpt}")
        step, best, history, used = load_checkpoint(ckpt, model, opt, rng)
        log(f"[train] resumed from {ckpt} at step {step}")
    import yaml
    with open(out_dir / "config.yaml", "w") as f:
        yaml.safe_dump(to_jsonable(cfg), f, sort_keys=False)
    clips = load_clips(cfg.data.train_clips)
    frames_back = model.config.temporal_context
    val = validation_batches(cfg.data, history=frames_back) if validation else []
    if validation and step == 0:
        m = validate(model, val, cfg.loss)
        history.append({"step": 0, **m})
        start = f"weights of {cfg.init}" if cfg.init else "identity warps"
        log(f"[train] step 0 ({start}): " + ", ".join(f"{k} {v:.3f}" for k, v in m.items()))
    if cfg.workers:
        batches = batch_loader(cfg.data, clips, cfg.optim.batch_size, seed=cfg.seed, workers=cfg.workers,
                               history=frames_back, start=used, pin_memory=device.type == "cuda")
    else:
        batches = training_batches(cfg.data, clips, cfg.optim.batch_size, rng, history=frames_back)
    video = video_windows(cfg, model, log)
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=cfg.optim.steps, initial=step, file=sys.stderr, mininterval=5.0)
    t0, run = time.perf_counter(), {}
    last = cfg.optim.steps if stop_after is None else min(stop_after, cfg.optim.steps)
    while step < last:
        undistort = None
        if video is not None and rng.random() < cfg.data.video_prob:
            batch, undistort = video.batch(cfg.optim.batch_size, rng), video.undistort
        else:
            batch = next(batches)
            used += 1
        B, V = batch["valid"].shape
        slot = draw_slots(rng, batch["times"], cfg.causal_prob)
        batch, slot = to_device(batch, device), slot.to(device)
        for g in opt.param_groups:
            g["lr"] = lr_at(cfg.optim, step)
        loss, logs = step_losses(model, batch, slot, cfg.loss, undistort)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.optim.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
        opt.step()
        step += 1
        for k, v in logs.items():
            run[k] = 0.9 * run.get(k, v) + 0.1 * v
        if bar is not None:
            bar.update(1)
            bar.set_postfix({k: f"{v:.2f}" for k, v in run.items()}, refresh=False)
        if step % cfg.log_every == 0:
            log(f"[train] step {step} V {V} {time.perf_counter() - t0:.0f}s " +
                " ".join(f"{k} {v:.3f}" for k, v in run.items()))
        if validation and (step % cfg.val_every == 0 or step == cfg.optim.steps):
            m = validate(model, val, cfg.loss)
            history.append({"step": step, "seconds": time.perf_counter() - t0, **run, **m})
            log(f"[train] val step {step}: " + ", ".join(f"{k} {v:.3f}" for k, v in m.items()))
            if m["val_mpjpe"] < best:
                best = m["val_mpjpe"]
                model.save(out_dir / "best.safetensors")
        if step % cfg.ckpt_every == 0 or step == last:
            save_checkpoint(ckpt, model, opt, step, rng, best, history, loader_batches=used)
            model.save(out_dir / "model.safetensors")
    if bar is not None:
        bar.close()
    del batches                                    # a loader's worker processes end here
    with open(out_dir / "history.json", "w") as f:
        json.dump(history, f, indent=1)
    return {"step": step, "best_val_mpjpe": best, "history": history}
