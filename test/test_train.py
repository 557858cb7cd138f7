"""Training (issue 6): the loss on hand-computed values, a few steps lower it, --resume is exact,
the shipped lite weights load and are trained (not the identity start)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from dense_warper_ros.data.rigs import read_yaml
from dense_warper_ros.devices import resolve_device
from dense_warper_ros.model import DenseWarper
from dense_warper_ros.train.data import DataConfig, load_clips, training_batches
from dense_warper_ros.train.loop import (LossConfig, OptimConfig, TrainConfig, build_model,
                                         config_from_mapping, step_losses, train)
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
    cfg = dataclasses.replace(cfg, device="cpu", threads=2, optim=dataclasses.replace(cfg.optim, steps=1, batch_size=1))
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
