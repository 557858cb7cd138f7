"""Heatmap decode, configurations, and the model's two call paths (batch window vs streaming)."""
import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from dense_warper_ros import cameras as C
from dense_warper_ros.data.rigs import ring_rig
from dense_warper_ros.heatmaps import default_window, render_gaussians, soft_argmax
from dense_warper_ros.model import DenseWarper, ModelConfig


from torch_threads import one_torch_thread  # noqa: E402,F401  (autouse fixture)


ROOT = np.array([0.1, -0.1, 1.0])


# --- heatmaps ----------------------------------------------------------------------------------
@pytest.mark.parametrize("size,sigma,temperature,tol", [(96, 3.0, 0.05, 2e-3), (48, 2.0, 0.1, 5e-3)])
def test_soft_argmax_recovers_rendered_keypoints(size, sigma, temperature, tol):
    g = torch.Generator().manual_seed(size)
    uv = torch.rand(4, 17, 2, generator=g, dtype=torch.float64) * (size - 20) + 10
    hm = render_gaussians(uv, size, sigma)
    assert hm.shape == (4, 17, size, size)
    est, peak, valid, spread = soft_argmax(hm, temperature=temperature)
    torch.testing.assert_close(est, uv, atol=tol, rtol=0)
    assert valid.all() and (peak > 0.9).all() and (peak <= 1).all()
    assert (spread > 0).all() and (spread < 1.5).all()


def test_soft_argmax_equals_brute_force_window_at_borders():
    """The window is clipped at the heatmap border, not wrapped or padded: brute-force reference."""
    g = torch.Generator().manual_seed(3)
    hm = torch.rand(3, 20, 24, generator=g, dtype=torch.float64) * 0.2
    hm[0, 0, 0], hm[1, 19, 10], hm[2, 7, 23] = 1.0, 0.9, 0.8       # peaks in a corner and on edges
    uv, peak, _, spread = soft_argmax(hm, window=7, temperature=0.1)
    for j in range(3):
        y0, x0 = divmod(int(hm[j].argmax()), 24)
        ys, xs = np.mgrid[max(0, y0 - 3):min(20, y0 + 4), max(0, x0 - 3):min(24, x0 + 4)]
        w = np.exp(hm[j].numpy()[ys, xs] / 0.1)
        w /= w.sum()
        mx, my = (w * xs).sum(), (w * ys).sum()
        sd = np.sqrt(((w * (xs - mx) ** 2).sum() + (w * (ys - my) ** 2).sum()) / 2)
        np.testing.assert_allclose(uv[j].numpy(), [mx, my], atol=1e-12)
        np.testing.assert_allclose(spread[j].item(), sd, atol=1e-12)
        assert peak[j].item() == hm[j].max().item()


def test_soft_argmax_validity_peak_and_spread():
    uv = torch.tensor([[20.0, 30.0], [40.0, 10.0], [5.0, 5.0]])
    hm = render_gaussians(uv, 64, 2.0)
    hm[1] *= 0.3                                                   # a weak joint
    hm[2] *= 0.005                                                 # below the 0.01 threshold
    _, peak, valid, spread = soft_argmax(hm)
    torch.testing.assert_close(peak, hm.flatten(-2).max(-1).values)
    assert valid.tolist() == [True, True, False]
    assert spread[1] > 1.5 * spread[0], "a weaker, flatter peak must have a larger spread"
    blurred = render_gaussians(uv[:1], 64, 4.0)
    assert soft_argmax(blurred)[3][0] > spread[0]
    assert default_window(96) == 15 and default_window(48) == 9 and default_window(64) == 11
    with pytest.raises(ValueError, match="odd"):
        soft_argmax(hm, window=4)
    assert render_gaussians(uv, 16, 1.0, valid=torch.tensor([True, False, True]))[1].abs().sum() == 0


# --- configurations ----------------------------------------------------------------------------
def test_named_configs_have_the_released_sizes():
    paper = ModelConfig.named("paper")
    sizes = (paper.input_size, paper.heatmap_size, paper.warp_blocks, paper.warp_channels)
    assert sizes == (384, 96, 20, 128)
    assert paper.offset_dilations == (3, 6, 12, 18, 24) and not paper.time_conditioned
    with torch.device("meta"):                                     # shapes only, no memory
        model = DenseWarper(paper)
    assert len(model.warps) == 12
    per_warp = sum(p.numel() for p in model.warps["0_1"].parameters())
    assert 7.4e6 < per_warp < 8.0e6, per_warp     # the released warp: 7.88 M at its 20 channels
    assert (paper.deform_kernel, paper.offset_bias, paper.softargmax_window_shape) == ("full", False, "disc")
    assert model.warps["0_1"].kernels[0].shape == (17, 17, 3, 3) and model.warps["0_1"].heads[0].bias is None
    assert model.views_supported == (4, 4) and not model.supports_views(3)
    lite = ModelConfig.named("lite")
    assert lite.time_conditioned and lite.num_views is None and lite.heatmap_size == 48
    lm = DenseWarper(lite)
    assert lm.views_supported == (2, None) and lm.supports_views(7)
    d = lm.describe()
    assert d["time_conditioned"] and d["heatmap_size"] == 48 and d["input_size"] == 192
    assert ModelConfig.named("paper", warp_blocks=3).warp_blocks == 3
    with pytest.raises(ValueError, match="'huge'"):
        ModelConfig.named("huge")
    with pytest.raises(dataclasses.FrozenInstanceError):
        paper.heatmap_size = 64
    with pytest.raises(ValueError, match="fill_weight.*1.5"):
        ModelConfig(fill_weight=1.5)
    assert ModelConfig.from_dict(lite.to_dict()) == lite
    assert (lite.deform_kernel, lite.offset_bias, lite.softargmax_window_shape) == ("depthwise", True, "square")
    assert ModelConfig.named("lite_tc").deform_kernel == "depthwise"
    # a stored config written before these fields existed rebuilds the model it was trained as
    stored = {k: v for k, v in paper.to_dict().items()
              if k not in ("deform_kernel", "offset_bias", "softargmax_window_shape")}
    old = ModelConfig.from_dict(stored)
    assert (old.deform_kernel, old.offset_bias, old.softargmax_window_shape) == ("depthwise", True, "square")
    assert ModelConfig.from_dict(paper.to_dict()) == paper
    with pytest.raises(ValueError, match="per_tap"):
        ModelConfig.named("lite", deform_kernel="full")


# --- a synthetic interleaved rig -------------------------------------------------------------------
def small_paper(**kw):
    return ModelConfig.named("paper", name="paper_small", heatmap_size=32, target_sigma=2.0,
                             softargmax_temperature=0.1, warp_blocks=2, warp_channels=8,
                             offset_dilations=(1, 3), **kw)


def scene(cfg, V=4, B=2, times=None, seed=0, cams=None, distort=False):
    """Heatmaps of a moving skeleton seen by an interleaved ring rig: returns model inputs and truth."""
    g = np.random.default_rng(seed)
    cams = cams or ring_rig(V)
    X0 = g.normal(size=(B, 17, 3)) * 0.25 + ROOT                   # (B, J, 3)
    vel = g.normal(size=(B, 1, 3)) * 0.5                           # m/s
    if times is None:
        times = np.arange(V) * cfg.frame_interval_s + g.uniform(0, 1, size=(B, 1))
    times = np.broadcast_to(times, (B, V))
    A = np.stack([C.root_crop_affine(c, ROOT, out_size=cfg.heatmap_size) for c in cams])   # (V, 2, 3)
    uv = np.stack([[C.apply_affine(A[v], cams[v].project(X0[b] + vel[b] * times[b, v], distort=distort))
                    for v in range(V)] for b in range(B)])         # (B, V, J, 2) heatmap px
    hm = render_gaussians(torch.as_tensor(uv, dtype=torch.float32), cfg.heatmap_size, cfg.target_sigma)
    P = C.projection_matrices(cams).expand(B, -1, -1, -1)
    At = torch.as_tensor(A, dtype=torch.float32).expand(B, -1, -1, -1)
    return dict(hm=hm, P=P, A=At, times=torch.as_tensor(times.copy()),
                valid=torch.ones(B, V, dtype=torch.bool),
                X0=torch.as_tensor(X0), vel=torch.as_tensor(vel), cams=cams)


def perturbed(cfg, seed=0):
    """A model whose warps do something (random non-zero offset heads), in eval mode."""
    torch.manual_seed(seed)
    m = DenseWarper(cfg)
    with torch.no_grad():
        for name, p in m.warps.named_parameters():
            if name.split(".")[1] == "heads":
                p.normal_(0, 0.02)
    return m.eval()


def count_warp_items(model):
    """Forward hooks recording how many heatmaps each warp call moves (and the dt it got)."""
    log = []
    for name, mod in model.warps.items():
        mod.register_forward_hook(lambda m, args, out, name=name: log.append(
            (name, args[0].shape[0], None if len(args) < 3 or args[2] is None else args[2].clone())))
    return log


CONFIGS = [small_paper(), ModelConfig.named("lite")]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.name)
def test_untrained_window_recovers_a_static_pose(cfg):
    static = scene(cfg, times=np.zeros(4))                         # every frame shows the same pose
    times = static["times"] + torch.arange(4) * cfg.frame_interval_s   # ... at interleaved times
    model = DenseWarper(cfg).eval()
    with torch.no_grad():
        out = model.forward_window(static["hm"], static["P"], static["A"], times, static["valid"])
    B, V, J, h = 2, 4, 17, cfg.heatmap_size
    assert out.heatmaps.shape == (B, V, V, J, h, h) and out.poses.shape == (B, V, J, 3)
    for i in range(V):                                             # slot i's own view passes through
        torch.testing.assert_close(out.heatmaps[:, i, i], static["hm"][:, i], rtol=0, atol=0)
    # untrained warps are the identity: every view "moved" to every slot is its own heatmap
    torch.testing.assert_close(out.heatmaps, static["hm"][:, :, None].expand_as(out.heatmaps),
                               rtol=0, atol=1e-5)
    err = (out.poses.double() - static["X0"][:, None]).norm(dim=-1)
    assert err.max() < 5e-3, err.max()
    assert (out.num_views == 4).all() and torch.isfinite(out.covariance).all()
    assert (out.confidence > 0.9).all()
    torch.testing.assert_close(out.uv_heatmap[:, 0, 0],
                               soft_argmax(static["hm"][:, 0], **cfg.decoder)[0])


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.name)
def test_streaming_equals_batch(cfg):
    s = scene(cfg)
    model = perturbed(cfg)
    rig = model.precompute_rig(s["P"][0], s["A"][0])
    with torch.no_grad():
        win = model.forward_window(s["hm"], s["P"], s["A"], s["times"], s["valid"])
        win_rig = model.forward_window(s["hm"], s["P"], s["A"], s["times"], s["valid"], rig=rig)
        assert not torch.allclose(win.heatmaps[:, 0, 1], s["hm"][:, 0], atol=1e-3), "warps must act"
        torch.testing.assert_close(win_rig.poses, win.poses, rtol=0, atol=0)
        for i in range(4):
            po = model.pose_at(s["hm"], s["P"], s["A"], s["times"], s["valid"], s["times"][:, i])
            torch.testing.assert_close(po.heatmaps, win.heatmaps[:, :, i], rtol=0, atol=1e-6)
            torch.testing.assert_close(po.points, win.poses[:, i], rtol=0, atol=1e-6)
            torch.testing.assert_close(po.covariance, win.covariance[:, i], rtol=1e-4, atol=1e-12)
            po_rig = model.pose_at(s["hm"], s["P"], s["A"], s["times"], s["valid"], s["times"][:, i], rig=rig)
            torch.testing.assert_close(po_rig.points, po.points, rtol=0, atol=0)


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.name)
def test_streaming_runs_only_v_minus_1_warps(cfg):
    s = scene(cfg, B=1)
    model = DenseWarper(cfg).eval()
    log = count_warp_items(model)
    with torch.no_grad():
        model.pose_at(s["hm"], s["P"], s["A"], s["times"], s["valid"], s["times"][:, 3])
    assert sum(n for _, n, _ in log) == 3
    if not cfg.time_conditioned:
        assert sorted(name for name, _, _ in log) == ["0_3", "1_3", "2_3"]
    log.clear()
    with torch.no_grad():
        model.forward_window(s["hm"], s["P"], s["A"], s["times"], s["valid"])
    assert sum(n for _, n, _ in log) == 12


def test_cpu_inference_warps_many_pairs_in_chunks(monkeypatch):
    """Several people give many warp pairs at once; on a CPU they run in chunks (cache-sized), with
    the same result as one call."""
    import dense_warper_ros.model as model_module
    cfg = ModelConfig.named("lite_tc")
    s = scene(cfg, B=4)                                            # 4 items x 3 warped views = 12 pairs
    model = perturbed(cfg)
    log = count_warp_items(model)
    with torch.no_grad():
        chunked = model.pose_at(s["hm"], s["P"], s["A"], s["times"], s["valid"], s["times"][:, 3])
        assert [n for _, n, _ in log] == [8, 4]
        monkeypatch.setattr(model_module, "CPU_WARP_CHUNK", 100)
        whole = model.pose_at(s["hm"], s["P"], s["A"], s["times"], s["valid"], s["times"][:, 3])
    assert [n for _, n, _ in log[2:]] == [12]
    torch.testing.assert_close(chunked.points, whole.points, rtol=0, atol=1e-6)
    torch.testing.assert_close(chunked.heatmaps, whole.heatmaps, rtol=0, atol=1e-6)


def test_time_conditioning_any_views_any_times():
    cfg = ModelConfig.named("lite")
    model = DenseWarper(cfg).eval()
    log = count_warp_items(model)
    for V in (2, 3, 6):
        times = np.sort(np.random.default_rng(V).uniform(0, 0.2, size=V))
        s = scene(cfg, V=V, B=1, times=times)
        log.clear()
        with torch.no_grad():
            # between two frames: no view is at the target, all V are warped
            mid = torch.tensor([(times[0] + times[1]) / 2])
            out = model.pose_at(s["hm"], s["P"], s["A"], s["times"], s["valid"], mid)
            assert sum(n for _, n, _ in log) == V
            dt = log[-1][2].double() * cfg.time_scale_s            # (V, 2): t* - t_c, t_g - t_c
            t = torch.as_tensor(times)
            torch.testing.assert_close(dt[:, 0], mid.double() - t, atol=1e-6, rtol=0)
            guide = torch.tensor([1] + [0] * (V - 1))              # nearest other frame to the target
            torch.testing.assert_close(dt[:, 1], t[guide] - t, atol=1e-6, rtol=0)
            assert out.points.shape == (1, 17, 3) and torch.isfinite(out.points).all()
            # at a view's capture time that view passes through untouched
            out = model.pose_at(s["hm"], s["P"], s["A"], s["times"], s["valid"], s["times"][:, -1])
            torch.testing.assert_close(out.heatmaps[:, -1], s["hm"][:, -1], rtol=0, atol=0)


def test_max_views_fuses_the_views_nearest_in_time():
    """`max_views`: only the k views captured nearest to the target are warped and triangulated; the
    pose is the one the model gives with the others marked missing."""
    cfg = ModelConfig.named("lite_tc")
    times = np.array([0.0, 0.05, 0.1, 0.15, 0.2, 0.25])
    s = scene(cfg, V=6, B=2, times=times)
    model = perturbed(cfg)
    log = count_warp_items(model)
    target = torch.tensor([0.25, 0.12], dtype=torch.float64)      # a view's instant; between two views
    with torch.no_grad():
        model.set_inference(max_views=4)
        few = model.pose_at(s["hm"], s["P"], s["A"], s["times"], s["valid"], target)
        assert sum(n for _, n, _ in log) == 3 + 4                  # the target's own view passes through
        model.set_inference(max_views=None)
        nearest = torch.tensor([[False, False, True, True, True, True], [False, True, True, True, True, False]])
        masked = model.pose_at(s["hm"], s["P"], s["A"], s["times"], s["valid"] & nearest, target)
    assert (few.num_views == 4).all()
    torch.testing.assert_close(few.points, masked.points, rtol=0, atol=0)
    assert few.heatmaps[0, :2].abs().sum() == 0 and few.heatmaps[1, [0, 5]].abs().sum() == 0
    with pytest.raises(ValueError, match="max_views"):
        ModelConfig.named("lite_tc", max_views=1)


def test_missing_views():
    lite = ModelConfig.named("lite")
    s = scene(lite)
    s["valid"][0, 2] = False
    model = perturbed(lite)
    with torch.no_grad():
        po = model.pose_at(s["hm"], s["P"], s["A"], s["times"], s["valid"], s["times"][:, 3])
        win = model.forward_window(s["hm"], s["P"], s["A"], s["times"], s["valid"])
    assert (po.num_views[0] == 3).all() and (po.num_views[1] == 4).all()
    assert po.heatmaps[0, 2].abs().sum() == 0 and torch.isfinite(po.points).all()
    assert torch.isfinite(win.poses).all(), "time-conditioned: a missing slot view still gets a pose"
    paper = small_paper()
    model = perturbed(paper)
    sp = scene(paper)
    sp["valid"][0, 2] = False
    with torch.no_grad():
        win = model.forward_window(sp["hm"], sp["P"], sp["A"], sp["times"], sp["valid"])
    assert torch.isnan(win.poses[0, 2]).all(), "pairwise: no anchor, no pose"
    assert torch.isfinite(win.poses[0, [0, 1, 3]]).all() and torch.isfinite(win.poses[1]).all()
    assert (win.num_views[0, 0] == 3).all()
    with pytest.raises(ValueError, match="matches no valid view"):
        model.pose_at(sp["hm"], sp["P"], sp["A"], sp["times"], sp["valid"], sp["times"][:, 2])


def test_input_errors_name_the_problem():
    paper = small_paper()
    model = DenseWarper(paper).eval()
    s = scene(paper)
    with pytest.raises(ValueError, match="matches no valid view"):
        model.pose_at(s["hm"], s["P"], s["A"], s["times"], s["valid"], s["times"][:, 0] + 0.01)
    s3 = scene(paper, V=3)
    with pytest.raises(ValueError, match="3 views given"):
        model.forward_window(s3["hm"], s3["P"], s3["A"], s3["times"], s3["valid"])
    with pytest.raises(ValueError, match=r"times must be \(2, 4\)"):
        model.forward_window(s["hm"], s["P"], s["A"], s["times"][:, :3], s["valid"])
    other = model.precompute_rig(s["P"][0], s["A"][0] * 1.1)
    with pytest.raises(ValueError, match="StaticRig"):
        model.pose_at(s["hm"], s["P"], s["A"], s["times"], s["valid"], s["times"][:, 0], rig=other)


def test_undistort_hook():
    cfg = ModelConfig.named("lite")
    cams = [C.Camera(K=c.K, R=c.R, t=c.t, width=1000, height=1000, dist=[-0.6, 0.2, 0, 0, 0],
                     dist_model="plumb_bob") for c in ring_rig(4)]
    s = scene(cfg, cams=cams, distort=True, times=np.zeros(4))
    model = DenseWarper(cfg).eval()
    args = (s["hm"], s["P"], s["A"], s["times"], s["valid"], s["times"][:, 0])
    with torch.no_grad():
        raw = model.pose_at(*args)
        fixed = model.pose_at(*args, undistort=C.undistorter(cams))
    e_raw = (raw.points.double() - s["X0"]).norm(dim=-1).mean()
    e_fixed = (fixed.points.double() - s["X0"]).norm(dim=-1).mean()
    assert e_fixed < 3e-3 and e_fixed < 0.3 * e_raw, (e_fixed, e_raw)
    with torch.no_grad():
        win = model.forward_window(*args[:5], undistort=C.undistorter(cams))
    assert (win.poses.double() - s["X0"][:, None]).norm(dim=-1).mean() < 3e-3


class TinyBackbone(nn.Module):
    def __init__(self, joints, size):
        super().__init__()
        self.conv = nn.Conv2d(3, joints, 3, padding=1)
        self.size = size

    def forward(self, x):
        return torch.sigmoid(nn.functional.adaptive_avg_pool2d(self.conv(x), self.size))


def test_backbone_is_pluggable_and_weights_round_trip(tmp_path):
    cfg = ModelConfig.named("lite")
    model = perturbed(cfg)
    model.backbone = TinyBackbone(17, 48)
    s = scene(cfg, B=1)
    images = torch.rand(1, 4, 3, 96, 96)
    with torch.no_grad():
        out = model(images, s["P"][:1], s["A"][:1], s["times"][:1], s["valid"][:1])
    assert out.poses.shape == (1, 4, 17, 3)
    for suffix in (".safetensors", ".pt"):
        path = tmp_path / f"w{suffix}"
        model.save(path)
        back = DenseWarper.load(path, backbone=TinyBackbone(17, 48)).eval()
        assert back.config == cfg
        with torch.no_grad():
            again = back(images, s["P"][:1], s["A"][:1], s["times"][:1], s["valid"][:1])
        torch.testing.assert_close(again.poses, out.poses, rtol=0, atol=0)
        fusion_only = DenseWarper.load(path)                         # backbone weights ignored
        assert fusion_only.backbone is None
        model.set_inference(outlier_threshold=2.0).save(path)        # not a property of the weights
        assert DenseWarper.load(path).config == cfg and model.config.outlier_threshold == 2.0
        model.set_inference(outlier_threshold=None)
    model.backbone = TinyBackbone(17, 40)
    with pytest.raises(ValueError, match=r"\(17, 40, 40\)"):
        model.heatmaps(images)
    with pytest.raises(RuntimeError, match="no backbone"):
        DenseWarper(cfg).heatmaps(images)


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: c.name)
def test_gradients_flow_from_poses(cfg):
    s = scene(cfg, B=1)
    model = perturbed(cfg).train()
    hm = s["hm"].clone().requires_grad_()
    out = model.forward_window(hm, s["P"], s["A"], s["times"], s["valid"])
    target = s["X0"].float()[:, None] + s["vel"].float()[:, None] * s["times"].float()[..., None, None]
    loss = (out.poses - target).norm(dim=-1).mean()
    loss.backward()
    assert torch.isfinite(hm.grad).all() and hm.grad.abs().sum() > 0
    for name, p in model.warps.named_parameters():
        if ".heads." in name or ".kernels." in name:
            assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_outlier_threshold_drops_a_left_right_swap_at_inference():
    cfg = ModelConfig.named("lite")
    s = scene(cfg, times=np.zeros(4))                             # a static pose, every view at t = 0
    hm = s["hm"].clone()
    hm[:, 0, [3, 6]] = s["hm"][:, 0, [6, 3]]                       # view 0 swaps the ankles
    model = DenseWarper(cfg).eval()
    args = (hm, s["P"], s["A"], s["times"], s["valid"], torch.zeros(2))
    with torch.no_grad():
        plain = model.pose_at(*args)
        assert model.set_inference(outlier_threshold=2.0) is model and model.config.outlier_threshold == 2.0
        robust = model.pose_at(*args)

    def err(out) -> torch.Tensor:                                  # (B, J) m
        return (out.points.double() - s["X0"]).norm(dim=-1)

    assert err(plain)[:, [3, 6]].min() > 0.02                      # the swap pulls both ankles
    assert err(robust).max() < 5e-3                                # every joint back to mm
    assert (robust.num_views[:, [3, 6]] == 3).all() and (robust.num_views.sum(1) == 17 * 4 - 2).all()
    assert robust.rejected[:, 0, [3, 6]].all() and (robust.rejected.sum((1, 2)) == 2).all()   # which ones
    assert not plain.rejected.any()
    with pytest.raises(ValueError, match="not inference settings"):
        model.set_inference(warp_channels=8)
    with pytest.raises(ValueError, match="outlier_threshold"):
        model.set_inference(outlier_threshold=0.0)
    model.set_inference(outlier_threshold=None)
    with torch.no_grad():
        torch.testing.assert_close(model.pose_at(*args).points, plain.points)
