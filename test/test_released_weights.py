"""The released checkpoints' warps in the `paper` layout: a state dict with the released key names
and shapes (built here, small: no download) lands tensor by tensor where it should, and the converted
model moves heatmaps exactly as the released warp's forward does."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dense_warper_ros import cameras as C
from dense_warper_ros.data.rigs import ring_rig
from dense_warper_ros.epipolar import epipolar_exchange
from dense_warper_ros.heatmaps import render_gaussians
from dense_warper_ros.model import DenseWarper, ModelConfig
from dense_warper_ros.released_weights import (RELEASED_DILATIONS, convert_released_state_dict,
                                               load_released, released_config, released_pair_order)


from torch_threads import one_torch_thread  # noqa: E402,F401  (autouse fixture)


V, J, CH, BLOCKS, SIZE = 3, 4, 8, 2, 16


def _bn(g: torch.Generator, prefix: str, n: int) -> dict[str, torch.Tensor]:
    return {f"{prefix}.weight": 1 + 0.1 * torch.randn(n, generator=g),
            f"{prefix}.bias": 0.1 * torch.randn(n, generator=g),
            f"{prefix}.running_mean": 0.1 * torch.randn(n, generator=g),
            f"{prefix}.running_var": 0.5 + torch.rand(n, generator=g),
            f"{prefix}.num_batches_tracked": torch.tensor(1000)}


def released_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """The released MultiViewPose's state dict as its modules name and shape it: a ModuleList
    `warp` of V*V warps (20-block trunk and 128 channels there; BLOCKS and CH here), five offset
    heads without bias, five (J, J, 3, 3) deformable kernels; plus backbone keys."""
    g = torch.Generator().manual_seed(seed)
    sd = {"resnet.conv1.weight": torch.randn(64, 3, 7, 7, generator=g),
          "resnet.final_layer.weight": torch.randn(J, 256, 1, 1, generator=g)}
    for i in range(V * V):
        p = f"warp.{i}."
        for b in range(BLOCKS):
            cin = J if b == 0 else CH
            sd[f"{p}offset_feats.{b}.conv1.weight"] = 0.2 * torch.randn(CH, cin, 3, 3, generator=g)
            sd.update(_bn(g, f"{p}offset_feats.{b}.bn1", CH))
            sd[f"{p}offset_feats.{b}.conv2.weight"] = 0.2 * torch.randn(CH, CH, 3, 3, generator=g)
            sd.update(_bn(g, f"{p}offset_feats.{b}.bn2", CH))
        sd[f"{p}offset_feats.0.downsample.0.weight"] = 0.3 * torch.randn(CH, J, 1, 1, generator=g)
        sd.update(_bn(g, f"{p}offset_feats.0.downsample.1", CH))
        for k in range(1, 6):
            sd[f"{p}offsets{k}.weight"] = 0.1 * torch.randn(2 * 9 * J, CH, 3, 3, generator=g)
            sd[f"{p}deform_conv{k}.weight"] = 0.3 * torch.randn(J, J, 3, 3, generator=g)
    return sd


def _released_name(ours: str) -> str:
    """This project's TemporalWarp name -> the released one, written out by hand."""
    parts = ours.split(".")
    if parts[0] == "heads":
        return f"offsets{int(parts[1]) + 1}.weight"
    if parts[0] == "kernels":
        return f"deform_conv{int(parts[1]) + 1}.weight"
    assert parts[0] == "trunk"
    if parts[2] == "shortcut":
        return f"offset_feats.{parts[1]}.downsample.{'.'.join(parts[3:])}"
    return f"offset_feats.{'.'.join(parts[1:])}"


def _bilinear_zero(x: torch.Tensor, py: torch.Tensor, px: torch.Tensor) -> torch.Tensor:
    """x (N, C, H, W) sampled at (py, px) (N, C, Ho, Wo), each corner zero outside the image."""
    N, Cn, H, W = x.shape
    y0, x0 = py.floor(), px.floor()
    out = torch.zeros_like(py)
    flat = x.reshape(N, Cn, H * W)
    for yy, wy in ((y0, 1 - (py - y0)), (y0 + 1, py - y0)):
        for xx, wx in ((x0, 1 - (px - x0)), (x0 + 1, px - x0)):
            ok = (yy >= 0) & (yy < H) & (xx >= 0) & (xx < W)
            idx = (yy.clamp(0, H - 1) * W + xx.clamp(0, W - 1)).long().reshape(N, Cn, -1)
            out = out + torch.where(ok, wy * wx * flat.gather(2, idx).view_as(py), torch.zeros_like(py))
    return out


def _deform_conv_reference(x: torch.Tensor, off: torch.Tensor, w: torch.Tensor, dil: int) -> torch.Tensor:
    """The released DeformConv (stride 1, padding = dilation, J offset groups, no bias), written
    from its definition: y_o(p) = sum_c sum_k w[o, c, k] x_c(p - dil + dil p_k + D_{g(c), k}(p))."""
    N, Cn, H, W = x.shape
    G = off.shape[1] // 18
    off = off.view(N, G, 9, 2, H, W)[:, torch.arange(Cn) // (Cn // G)]    # (N, C, 9, 2, H, W)
    ys = torch.arange(H, dtype=x.dtype)[:, None]
    xs = torch.arange(W, dtype=x.dtype)[None, :]
    out = 0
    for k in range(9):
        a, b = divmod(k, 3)
        val = _bilinear_zero(x, ys - dil + a * dil + off[:, :, k, 0], xs - dil + b * dil + off[:, :, k, 1])
        out = out + torch.einsum("oc,nchw->nohw", w[:, :, a, b], val)
    return out


def released_warp_forward(sd: dict[str, torch.Tensor], i: int, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """warp[i](x, y) of the released model (eval mode), from its own tensors: a trunk of BasicBlocks
    on y - x, five offset heads, five deformable convs of x, 0.2 times their sum."""
    p = {k.removeprefix(f"warp.{i}."): v.double() for k, v in sd.items() if k.startswith(f"warp.{i}.")}

    def bn(t, name):
        return F.batch_norm(t, p[f"{name}.running_mean"], p[f"{name}.running_var"], p[f"{name}.weight"],
                            p[f"{name}.bias"], training=False, eps=1e-5)

    h = y - x
    for b in range(BLOCKS):
        f = f"offset_feats.{b}"
        res = bn(F.conv2d(h, p[f"{f}.downsample.0.weight"]), f"{f}.downsample.1") if b == 0 else h
        o = F.relu(bn(F.conv2d(h, p[f"{f}.conv1.weight"], padding=1), f"{f}.bn1"))
        h = F.relu(bn(F.conv2d(o, p[f"{f}.conv2.weight"], padding=1), f"{f}.bn2") + res)
    total = 0
    for k, dil in enumerate(RELEASED_DILATIONS, 1):
        off = F.conv2d(h, p[f"offsets{k}.weight"], padding=dil, dilation=dil)
        total = total + _deform_conv_reference(x, off, p[f"deform_conv{k}.weight"], dil)
    return 0.2 * total


def test_every_released_tensor_lands_where_it_should():
    sd = released_state()
    cfg = released_config(sd, heatmap_size=SIZE)
    assert (cfg.num_views, cfg.num_joints, cfg.warp_channels, cfg.warp_blocks) == (V, J, CH, BLOCKS)
    assert (cfg.deform_kernel, cfg.offset_bias, cfg.offset_mode) == ("full", False, "per_tap")
    assert cfg.offset_dilations == (3, 6, 12, 18, 24) and not cfg.time_conditioned
    pairs = released_pair_order(V)
    assert pairs == [(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)]   # cur outer, oth inner
    out = convert_released_state_dict(sd, cfg)
    model = load_released(sd, heatmap_size=SIZE)
    ours = model.state_dict()
    assert set(out) == set(ours), "the converted dict is exactly the model's state (no backbone)"
    for key, value in out.items():
        pair, name = key.split(".", 2)[1:]
        c, o = map(int, pair.split("_"))
        src = sd[f"warp.{pairs.index((c, o))}.{_released_name(name)}"]
        assert value is src or torch.equal(value, src), key
        assert torch.equal(ours[key], src), key
    used = sum(1 for k in sd if k.startswith("warp.") and int(k.split(".")[1]) < len(pairs))
    assert len(out) == used                                        # the never-run warps are dropped
    assert not any(k.startswith("backbone.") for k in ours)
    # the plain `paper` configuration at these sizes takes the converted tensors as they are
    plain = DenseWarper(ModelConfig.named("paper", num_views=V, num_joints=J, warp_channels=CH,
                                          warp_blocks=BLOCKS, heatmap_size=SIZE))
    plain.load_state_dict(out, strict=True)


def test_converted_model_saves_and_loads(tmp_path):
    model = load_released(released_state(), heatmap_size=SIZE)
    model.save(tmp_path / "released.safetensors")
    again = DenseWarper.load(tmp_path / "released.safetensors")
    assert again.config == model.config and again.config.deform_kernel == "full"
    for k, v in model.state_dict().items():
        assert torch.equal(again.state_dict()[k], v), k


def test_converted_warp_equals_the_released_forward():
    sd = released_state(seed=1)
    model = load_released(sd, heatmap_size=SIZE).double()
    g = torch.Generator().manual_seed(2)
    x = torch.rand(2, J, SIZE, SIZE, generator=g, dtype=torch.float64)
    s = torch.rand(2, J, SIZE, SIZE, generator=g, dtype=torch.float64)
    for i, (c, o) in enumerate(released_pair_order(V)):
        with torch.no_grad():
            got = model.warps[f"{c}_{o}"](x, s - x)
        ref = released_warp_forward(sd, i, x, s)
        torch.testing.assert_close(got, ref, rtol=0, atol=1e-10)
        assert (ref - x).abs().max() > 0.05, "the warps must move something"


def test_converted_model_brings_each_view_to_each_time_as_released():
    """End to end: the converted model's view c at slot i's time equals the released
    warp[(c, i)](H_c, 0.5 E[c <- i] + 0.5 H_c), the exchange computed on its own."""
    sd = released_state(seed=3)
    model = load_released(sd, heatmap_size=SIZE).double()
    cams = ring_rig(V)
    root = np.array([0.0, 0.0, 1.0])
    A = torch.as_tensor(np.stack([C.root_crop_affine(cam, root, out_size=SIZE) for cam in cams]))
    P = C.projection_matrices(cams, dtype=torch.float64)
    g = np.random.default_rng(4)
    X = g.normal(size=(J, 3)) * 0.2 + root
    uv = torch.as_tensor(np.stack([C.apply_affine(A[v].numpy(), cams[v].project(X)) for v in range(V)]))
    hm = render_gaussians(uv, SIZE, 1.5)[None]                     # (1, V, J, h, w)
    times = torch.arange(V, dtype=torch.float64)[None] * 0.02
    with torch.no_grad():
        out = model.forward_window(hm, P[None], A[None], times, torch.ones(1, V, dtype=torch.bool))
    for i, (c, o) in enumerate(released_pair_order(V)):
        E = epipolar_exchange(hm[:, o], P[c], A[c], P[o], A[o])     # (1, J, h, w)
        ref = released_warp_forward(sd, i, hm[:, c], 0.5 * E + 0.5 * hm[:, c])
        torch.testing.assert_close(out.heatmaps[:, c, o], ref, rtol=0, atol=1e-10)


def test_misfits_are_named():
    sd = released_state()
    bad = dict(sd)
    bad["warp.1.offsets2.weight"] = torch.zeros(2 * 9 * J, CH, 1, 1)
    with pytest.raises(ValueError, match=r"warps\.0_2\.heads\.1\.weight"):
        convert_released_state_dict(bad, released_config(sd))
    extra = {**sd, "warp.0.offsets1.bias": torch.zeros(2 * 9 * J)}   # a bias the released heads lack
    with pytest.raises(ValueError, match="offsets1.bias"):
        convert_released_state_dict(extra)
    gone = {k: v for k, v in sd.items() if k != "warp.4.deform_conv3.weight"}
    with pytest.raises(ValueError, match=r"missing.*warps\.2_0\.kernels\.2"):
        convert_released_state_dict(gone, released_config(sd))
    with pytest.raises(ValueError, match="not a released DenseWarper"):
        released_config({"resnet.conv1.weight": torch.zeros(1)})
    trimmed = {k: v for k, v in sd.items() if not k.startswith("warp.") or int(k.split(".")[1]) < 6}
    assert released_config(trimmed).num_views == V                 # only the V(V-1) warps that run
