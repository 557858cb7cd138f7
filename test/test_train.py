"""Training: the loss on hand-computed values, a few steps lower it, --resume is exact, batches from
DataLoader workers are reproducible, checkpoints keep every RNG state, the shipped lite weights load
and are trained (not the identity start)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from dense_warper_ros.data.rigs import read_yaml
from dense_warper_ros.devices import resolve_device
from dense_warper_ros.model import DenseWarper
from dense_warper_ros.train.data import (DataConfig, batch_loader, batch_rng, load_clips, occlude, training_batch,
                                         training_batches)
from dense_warper_ros.train.loop import (LossConfig, OptimConfig, TrainConfig, build_model,
                                         config_from_mapping, load_checkpoint, save_checkpoint, step_losses,
                                         train)
from dense_warper_ros.train.loss import barron_rho, mpjpe_3d_loss, robust_2d_loss

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "models" / "dense_warper_lite.safetensors"


def test_barron_rho_hand_values():
    x = torch.tensor([0.0, 8.0, 16.0, 1e6])
    # alpha -10, c 8: rho(x) = 1.2 (1 - (1 + (x/8)^2 / 12)^-5)
    want = torch.tensor([0.0, 1.2 * (1 - (12 / 13) ** 5), 1.2 * (1 - (12 / 16) ** 5), 1.2])
    assert torch.allclose(barron_rho(x, alpha=-10.0, scale=8.0), want, atol=1e-6)
    # near 0 it is quadratic: rho ~ 0.5 (x / c)^2
    assert barron_rho(torch.tensor(0.01, dtype=torch.float64), scale=1.0).item() == pytest.approx(0.5e-4, rel=1e-3)
    with pytest.raises(ValueError):
        barron_rho(x, alpha=2.0)


def test_robust_2d_loss_masks_and_averages():
    uv = torch.tensor([[0.0, 0.0], [3.0, 5.0], [100.0, 0.0]])
    target = torch.tensor([[0.0, 0.0], [0.0, 0.0], [0.0, float("nan")]])
    mask = torch.tensor([True, True, False])          # the NaN target is masked out
    # x = 0 and 8 (|3| + |5|): mean of rho = rho(8) / 2, x 1000
    want = 1000 * 1.2 * (1 - (12 / 13) ** 5) / 2
    got = robust_2d_loss(uv, target, mask, scale=8.0)
    assert got.item() == pytest.approx(want, rel=1e-6)
    assert robust_2d_loss(uv, target, torch.zeros(3, dtype=torch.bool)).item() == 0.0


def test_mpjpe_3d_loss_hand_values():
    gt = torch.zeros(1, 3, 3)
    pred = torch.tensor([[[1.0, 1.0, 1.0], [1.003, 1.0, 1.0], [1.0, 1.004, 1.0]]])  # root-aligned: 0, 3, 4 mm
    assert mpjpe_3d_loss(pred, gt).item() == pytest.approx((0 + 3 + 4) / 3, rel=1e-4)
    pred[0, 2] = float("nan")                          # untriangulated joints are skipped
    assert mpjpe_3d_loss(pred, gt).item() == pytest.approx(1.5, rel=1e-4)
    pred[0, 2] = torch.tensor([1.0, 1.004, 1.0])
    mask = torch.tensor([[True, False, True]])         # pseudo ground truth: unreliable joints skipped
    assert mpjpe_3d_loss(pred, gt, mask=mask).item() == pytest.approx(2.0, rel=1e-4)
    assert mpjpe_3d_loss(pred, gt, mask=torch.tensor([[False, True, True]])).item() == 0.0   # no root


def _tiny_config(**optim) -> TrainConfig:
    data = DataConfig(train_clips=("run",), min_cameras=3, max_cameras=3, rigs_per_batch=1)
    return TrainConfig(data=data, optim=OptimConfig(batch_size=2, **optim), threads=1,
                       ckpt_every=2, val_every=1000, log_every=1000)


def test_recipe_parses():
    cfg = config_from_mapping(read_yaml(REPO / "config" / "train" / "lite.yaml"))
    assert cfg.model == "lite" and cfg.loss.w2d > 0
    assert build_model(cfg).time_conditioned


def test_steps_reduce_loss_on_a_tiny_batch():
    torch.set_num_threads(1)          # as training; oversubscribed threads are slow on a shared CPU
    torch.manual_seed(0)
    cfg = _tiny_config()
    model = build_model(cfg)
    model.train()
    batch = next(training_batches(cfg.data, load_clips(cfg.data.train_clips), 4, np.random.default_rng(1)))
    slot = torch.tensor([0, 1, 2, 2])
    loss_cfg = LossConfig()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    first, _ = step_losses(model, batch, slot, loss_cfg)
    for _ in range(3):
        loss, _ = step_losses(model, batch, slot, loss_cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after, _ = step_losses(model, batch, slot, loss_cfg)
    assert after.item() < first.item()


def test_resume_gives_the_exact_same_next_step(tmp_path):
    cfg3 = _tiny_config(steps=3)            # lr drops after step 2 (lr_drop_at 0.75): covered
    train(cfg3, tmp_path / "a", stop_after=2, progress=False, validation=False, log=lambda s: None)
    train(cfg3, tmp_path / "a", resume=True, progress=False, validation=False, log=lambda s: None)
    train(cfg3, tmp_path / "b", progress=False, validation=False, log=lambda s: None)
    a = DenseWarper.load(tmp_path / "a" / "model.safetensors").state_dict()
    b = DenseWarper.load(tmp_path / "b" / "model.safetensors").state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert (tmp_path / "a" / "config.yaml").exists()


def _same_batches(a: list[dict], b: list[dict]) -> bool:
    return len(a) == len(b) and all(x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
                                    for x, y in zip(a, b))


def test_loader_batches_depend_on_the_seed_only_not_on_the_worker_count():
    """Batch k comes from its own generator (seed, k): one worker, two workers, a loader started at
    batch 2 (a resumed run) and the batches made in this process agree; another seed differs."""
    cfg = _tiny_config().data
    clips = load_clips(cfg.train_clips)

    def first(n: int, **kw) -> list[dict]:
        it = batch_loader(cfg, clips, 2, history=1, **kw)
        return [next(it) for _ in range(n)]
    here = [training_batch(cfg, clips, 2, batch_rng(7, k), history=1) for k in range(4)]
    assert _same_batches(first(4, seed=7, workers=1), here)
    assert _same_batches(first(4, seed=7, workers=2), here)
    assert _same_batches(first(2, seed=7, workers=2, start=2), here[2:])
    assert not torch.equal(first(1, seed=8, workers=1)[0]["heatmaps"], here[0]["heatmaps"])
    assert "prev_heatmaps" in here[0]                                  # history reaches the workers
    with pytest.raises(ValueError, match="workers >= 1"):
        batch_loader(cfg, clips, 2, seed=7, workers=0)


def test_in_process_batches_are_the_runs_one_generator():
    """workers 0: batches are drawn one after the other from the run's generator, as always."""
    cfg = _tiny_config().data
    clips = load_clips(cfg.train_clips)
    rng = np.random.default_rng(3)
    stream = training_batches(cfg, clips, 2, np.random.default_rng(3))
    assert _same_batches([next(stream) for _ in range(2)], [training_batch(cfg, clips, 2, rng) for _ in range(2)])


def test_training_with_loader_workers_resumes_exactly_and_ignores_the_worker_count(tmp_path):
    quiet = dict(progress=False, validation=False, log=lambda s: None)
    cfg = dataclasses.replace(_tiny_config(steps=3), workers=2)
    train(cfg, tmp_path / "a", stop_after=2, **quiet)
    train(cfg, tmp_path / "a", resume=True, **quiet)
    train(cfg, tmp_path / "b", **quiet)
    train(dataclasses.replace(cfg, workers=1), tmp_path / "c", **quiet)
    runs = [DenseWarper.load(tmp_path / r / "model.safetensors").state_dict() for r in "abc"]
    for k in runs[0]:
        assert torch.equal(runs[0][k], runs[1][k]) and torch.equal(runs[0][k], runs[2][k]), k
    assert torch.load(tmp_path / "a" / "ckpt.pt", weights_only=True)["loader_batches"] == 3
    with pytest.raises(ValueError, match="workers must be >= 0"):
        dataclasses.replace(cfg, workers=-1)


def _draws(rng: np.random.Generator) -> tuple:
    import random
    return rng.random(), torch.rand(1).item(), random.random()


def test_checkpoint_round_trips_every_rng_state(tmp_path, monkeypatch):
    """numpy, torch and Python RNGs come back as saved; so do the CUDA devices' states, faked here
    on a machine without CUDA (the CUDA run below checks the real ones)."""
    import random
    cuda_states = [torch.arange(16, dtype=torch.uint8), torch.arange(16, 32, dtype=torch.uint8)]
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [s.clone() for s in cuda_states])
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: restored.extend(states))
    model = build_model(_tiny_config())
    opt = torch.optim.Adam(model.parameters())
    rng = np.random.default_rng(11)
    torch.manual_seed(11)
    random.seed(11)
    save_checkpoint(tmp_path / "ckpt.pt", model, opt, 5, rng, 1.5, [{"step": 5}], loader_batches=4)
    want = _draws(rng)
    other = np.random.default_rng(99)
    step, best, history, used = load_checkpoint(tmp_path / "ckpt.pt", model, opt, other)
    assert (step, best, history, used) == (5, 1.5, [{"step": 5}], 4)
    assert _draws(other) == want
    assert len(restored) == 2 and all(torch.equal(a, b) for a, b in zip(restored, cuda_states))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)        # a CPU-only resume: no CUDA state
    restored.clear()
    load_checkpoint(tmp_path / "ckpt.pt", model, opt, other)
    assert not restored


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (the device tool's GPU machine)")
def test_checkpoint_restores_the_cuda_rng(tmp_path):
    model = build_model(_tiny_config())
    opt = torch.optim.Adam(model.parameters())
    rng = np.random.default_rng(0)
    torch.cuda.manual_seed_all(5)
    save_checkpoint(tmp_path / "ckpt.pt", model, opt, 1, rng, 0.0, [])
    want = torch.rand(4, device="cuda")
    torch.cuda.manual_seed_all(6)
    load_checkpoint(tmp_path / "ckpt.pt", model, opt, rng)
    assert torch.equal(torch.rand(4, device="cuda"), want)


def test_a_failed_checkpoint_write_names_the_file_and_keeps_the_last_one(tmp_path, file_size_limit):
    """A full disk mid-write (here a file-size limit, which fails the write the same way): a clear
    OSError naming the checkpoint, no half-written file, and the previous checkpoint still resumes."""
    cfg = _tiny_config(steps=3)
    train(cfg, tmp_path, stop_after=2, progress=False, validation=False, log=lambda s: None)
    ckpt = tmp_path / "ckpt.pt"
    before = ckpt.read_bytes()
    file_size_limit(len(before) // 4)
    with pytest.raises(OSError, match=r"could not write .*ckpt\.pt \(.* GiB free there\)"):
        train(cfg, tmp_path, resume=True, progress=False, validation=False, log=lambda s: None)
    file_size_limit()
    assert not (tmp_path / "ckpt.pt.tmp").exists()
    assert ckpt.read_bytes() == before
    assert train(cfg, tmp_path, resume=True, progress=False, validation=False, log=lambda s: None)["step"] == 3


def test_paper_recipe_takes_a_step(tmp_path):
    """The paper-sized recipe (a GPU run) builds its model and trains; here one CPU step of one window."""
    cfg = config_from_mapping(read_yaml(REPO / "config" / "train" / "paper.yaml"))
    assert cfg.model == "paper" and cfg.device == "cuda" and cfg.data.heatmap_size == 96
    assert cfg.workers > 0                                               # a GPU run is fed by loader workers
    cfg = dataclasses.replace(cfg, device="cpu", threads=2, workers=1,
                              optim=dataclasses.replace(cfg.optim, steps=1, batch_size=1))
    res = train(cfg, tmp_path, progress=False, validation=False, log=lambda s: None)
    model = DenseWarper.load(tmp_path / "model.safetensors")
    assert res["step"] == 1 and model.config.name == "paper" and not model.time_conditioned
    assert model.heatmap_size == 96 and len(model.warps) == 12           # one warp per ordered view pair


def test_device_is_checked_before_training():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    for bad, why in (("gpu", "not a torch device"), ("meta", "only cpu and cuda")):
        with pytest.raises(ValueError, match=why):
            resolve_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="sees no CUDA device"):
            resolve_device("cuda")
    assert config_from_mapping({"device": "cpu"}).device == "cpu"
    with pytest.raises(ValueError, match="only cpu and cuda"):          # before any work is done
        train(dataclasses.replace(_tiny_config(), device="meta"), Path("/nonexistent/never"), progress=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (the device tool's GPU machine)")
def test_training_on_cuda_follows_the_cpu_run(tmp_path):
    """The same seed on CUDA and on the CPU: the same batches, so nearly the same weights after a few
    steps (float32 kernels differ in rounding), and a checkpoint that resumes on either device."""
    runs = {}
    for dev in ("cpu", "cuda"):
        cfg = dataclasses.replace(_tiny_config(steps=3), device=dev)
        train(cfg, tmp_path / dev, progress=False, validation=False, log=lambda s: None)
        runs[dev] = DenseWarper.load(tmp_path / dev / "model.safetensors").state_dict()
    for k in runs["cpu"]:
        assert torch.allclose(runs["cpu"][k], runs["cuda"][k], atol=1e-3, rtol=1e-2), k
    cfg = dataclasses.replace(_tiny_config(steps=4), device="cpu")          # a CUDA checkpoint goes on on the CPU
    train(cfg, tmp_path / "cuda", resume=True, progress=False, validation=False, log=lambda s: None)


def test_shipped_weights_load_and_are_trained():
    assert SHIPPED.exists(), f"{SHIPPED} missing"
    model = DenseWarper.load(SHIPPED)
    assert model.config.name == "lite"
    heads = [p for n, p in model.warps.named_parameters() if ".heads." in n and n.endswith("weight")]
    assert heads and any(h.abs().max() > 0 for h in heads)      # identity start: all zero
    warp = model.warps["shared"].eval()
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 17, 48, 48, generator=g)
    d = torch.rand(2, 17, 48, 48, generator=g) - x
    with torch.no_grad():
        y = warp(x, d, torch.tensor([[0.3, 0.3], [-0.2, -0.2]]))
    assert not torch.allclose(y, x, atol=1e-3)


def test_detector_randomisation_ranges():
    """Real-detector-like training noise: jitter correlation time and heatmap sigma drawn per batch
    in their ranges; fixed values draw nothing, so the shipped recipes replay the same windows."""
    from dense_warper_ros.train.data import heatmap_config, random_noise
    rng = np.random.default_rng(0)
    fixed = DataConfig()
    state = rng.bit_generator.state
    assert heatmap_config(fixed, rng).sigma == 2.5 and rng.bit_generator.state == state
    k = random_noise(rng, fixed)
    assert k.jitter_tau_s == 0.15
    wide = DataConfig(noise_tau_s=(0.02, 0.15), heatmap_sigma_min=1.5)
    taus = [random_noise(rng, wide).jitter_tau_s for _ in range(200)]
    sigmas = [heatmap_config(wide, rng).sigma for _ in range(200)]
    assert 0.02 <= min(taus) < 0.04 and 0.1 < max(taus) <= 0.15
    assert 1.5 <= min(sigmas) < 1.7 and 2.3 < max(sigmas) <= 2.5
    outliers = random_noise(rng, DataConfig(outlier_scale=(4.0, 4.0)))
    assert outliers.swap_prob == pytest.approx(4 * k.swap_prob) and outliers.miss_prob == pytest.approx(4 * k.miss_prob)
    with pytest.raises(ValueError, match="noise_tau_s"):
        DataConfig(noise_tau_s=(0.2, 0.1))
    with pytest.raises(ValueError, match="heatmap_sigma_min"):
        DataConfig(heatmap_sigma_min=3.0)
    with pytest.raises(ValueError, match="video_prob"):
        DataConfig(video_prob=1.5)


def test_occlusion_hides_a_band_of_joints_in_a_views_current_and_earlier_frames():
    clips = load_clips(("run",))
    assert DataConfig().occlusion_prob == 0                            # off by default: older recipes replay
    plain = training_batch(DataConfig(), clips, 4, np.random.default_rng(0), history=1)
    hidden = training_batch(DataConfig(occlusion_prob=1.0), clips, 4, np.random.default_rng(0), history=1)
    assert torch.equal(hidden["target_uv"], plain["target_uv"])        # the same windows, drawn before it
    assert (hidden["heatmaps"].amax(dim=(-2, -1)) < plain["heatmaps"].amax(dim=(-2, -1))).any()
    alive = plain["heatmaps"].amax(dim=(-2, -1)) > 0                      # (B, V, J)
    alive_prev = plain["prev_heatmaps"].amax(dim=(-2, -1)) > 0            # (B, V, K, J)
    occlude(plain, np.random.default_rng(1), 1.0)
    now = plain["heatmaps"].amax(dim=(-2, -1)) > 0
    lost = alive & ~now
    assert 0 < lost.sum() < alive.sum() / 2 and not (now & ~alive).any()
    for b, v in {(b, v) for b, v, _ in lost.nonzero().tolist()}:
        x = plain["target_uv"][b, v, v, :, 0]
        gone = lost[b, v]
        assert x[gone].max() - x[gone].min() <= 0.7 * (x.max() - x.min()) + 1e-6   # one band
        assert not (plain["prev_heatmaps"].amax(dim=(-2, -1))[b, v, :, gone] > 0).any()   # earlier frames too
    assert (alive_prev & ~(plain["prev_heatmaps"].amax(dim=(-2, -1)) > 0)).any()
