"""Deformable convolution implementations agree; the untrained warp is the identity; gradients flow."""
import math

import pytest
import torch

from dense_warper_ros import warp as W
from dense_warper_ros.heatmaps import render_gaussians, soft_argmax


from torch_threads import one_torch_thread  # noqa: E402,F401  (autouse fixture)


def _bilinear(img, y, x):
    """Bilinear sample of a 2D tensor at (y, x), zero outside: Dai et al.'s definition."""
    H, Wd = img.shape
    if y <= -1 or y >= H or x <= -1 or x >= Wd:
        return 0.0
    y0, x0 = math.floor(y), math.floor(x)
    v = 0.0
    for yy, wy in ((y0, 1 - (y - y0)), (y0 + 1, y - y0)):
        for xx, wx in ((x0, 1 - (x - x0)), (x0 + 1, x - x0)):
            if 0 <= yy < H and 0 <= xx < Wd:
                v += wy * wx * float(img[yy, xx])
    return v


def deform_conv_loop(x, offset, weight, pad, dil):
    """Direct per-output, per-tap loop: the reference the fast versions must equal."""
    N, Cin, H, Wd = x.shape
    Cout, Cin_g, kh, kw = weight.shape
    K = kh * kw
    Ho, Wo = H + 2 * pad - dil * (kh - 1), Wd + 2 * pad - dil * (kw - 1)
    G = offset.shape[1] // (2 * K)
    groups = Cin // Cin_g
    out = torch.zeros(N, Cout, Ho, Wo, dtype=torch.float64)
    for n in range(N):
        for o in range(Cout):
            g = o // (Cout // groups)
            for cl in range(Cin_g):
                c = g * Cin_g + cl
                og = c // (Cin // G)
                for i in range(Ho):
                    for j in range(Wo):
                        for a in range(kh):
                            for b in range(kw):
                                k = a * kw + b
                                dy = float(offset[n, og * 2 * K + 2 * k, i, j])
                                dx = float(offset[n, og * 2 * K + 2 * k + 1, i, j])
                                out[n, o, i, j] += float(weight[o, cl, a, b]) * _bilinear(
                                    x[n, c], i - pad + a * dil + dy, j - pad + b * dil + dx)
    return out


CASES = [  # (Cin, Cout, weight groups, offset groups, padding, dilation)
    (3, 3, 3, 3, 1, 1),      # the lite warp's case: depthwise, one offset field per channel
    (3, 3, 1, 3, 2, 2),      # the paper warp's case: a full kernel, one offset field per channel
    (4, 2, 1, 2, 2, 2),      # full conv, shared offset groups, dilation 2
    (4, 4, 2, 1, 0, 1),      # grouped conv, no padding (smaller output)
]


@pytest.mark.parametrize("cin,cout,groups,ogroups,pad,dil", CASES)
def test_grid_sample_deform_conv_equals_loop(cin, cout, groups, ogroups, pad, dil):
    g = torch.Generator().manual_seed(cin * 10 + pad)
    x = torch.randn(2, cin, 6, 5, generator=g, dtype=torch.float64)
    w = torch.randn(cout, cin // groups, 3, 3, generator=g, dtype=torch.float64)
    Ho, Wo = 6 + 2 * pad - 2 * dil, 5 + 2 * pad - 2 * dil
    off = 2.5 * torch.randn(2, 2 * ogroups * 9, Ho, Wo, generator=g, dtype=torch.float64)  # some land outside
    got = W.deform_conv2d_grid_sample(x, off, w, padding=pad, dilation=dil)
    torch.testing.assert_close(got, deform_conv_loop(x, off, w, pad, dil), rtol=0, atol=1e-12)


@pytest.mark.skipif(not W.torchvision_available(),
                    reason="torchvision does not import here (CPU dev machine); its deform_conv2d path "
                           "is checked on the GPU machine")
@pytest.mark.parametrize("cin,cout,groups,ogroups,pad,dil", CASES)
def test_torchvision_deform_conv_agrees(cin, cout, groups, ogroups, pad, dil):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, cin, 9, 8, generator=g, dtype=torch.float64)
    w = torch.randn(cout, cin // groups, 3, 3, generator=g, dtype=torch.float64)
    Ho, Wo = 9 + 2 * pad - 2 * dil, 8 + 2 * pad - 2 * dil
    off = 2.5 * torch.randn(2, 2 * ogroups * 9, Ho, Wo, generator=g, dtype=torch.float64)
    a = W.deform_conv2d(x, off, w, padding=pad, dilation=dil, backend="torchvision")
    b = W.deform_conv2d(x, off, w, padding=pad, dilation=dil, backend="grid_sample")
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_torchvision_backend_unavailable_is_an_error():
    if W.torchvision_available():
        pytest.skip("torchvision is importable here")
    with pytest.raises(RuntimeError, match="torchvision"):
        W.deform_conv2d(torch.zeros(1, 1, 4, 4), torch.zeros(1, 18, 4, 4), torch.zeros(1, 1, 3, 3),
                        padding=1, backend="torchvision")


@pytest.mark.parametrize("dil", [1, 2])
def test_shared_offset_fast_path_is_exact(dil):
    """Depthwise conv then one warp == deformable conv with the offset repeated over taps,
    borders included (offsets push samples outside)."""
    g = torch.Generator().manual_seed(dil)
    N, Cn, H, Wd = 2, 3, 7, 6
    x = torch.randn(N, Cn, H, Wd, generator=g, dtype=torch.float64)
    w = torch.randn(Cn, 1, 3, 3, generator=g, dtype=torch.float64)
    flow = 3.0 * torch.randn(N, 2 * Cn, H, Wd, generator=g, dtype=torch.float64)
    fast = W.shared_offset_deform_conv(x, flow, w, dilation=dil)
    # the training path (autograd through the flow) builds the grid differently: same values
    torch.testing.assert_close(W.shared_offset_deform_conv(x, flow.clone().requires_grad_(), w,
                                                           dilation=dil).detach(), fast, rtol=0, atol=1e-12)
    per_tap = flow.view(N, Cn, 1, 2, H, Wd).expand(N, Cn, 9, 2, H, Wd).reshape(N, Cn * 18, H, Wd)
    ref = W.deform_conv2d_grid_sample(x, per_tap, w, padding=dil, dilation=dil)
    torch.testing.assert_close(fast, ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(ref[:1, :1], deform_conv_loop(x[:1, :1], per_tap[:1, :18], w[:1], dil, dil),
                               rtol=0, atol=1e-12)


def test_offset_sign_moves_a_peak():
    """Offset (dy, dx) samples x at p + (dy, dx): a positive dx moves the content left."""
    x = render_gaussians(torch.tensor([[[10.0, 8.0]]]), 20, 1.5)  # (1, 1, 20, 20)
    flow = torch.zeros(1, 2, 20, 20)
    flow[:, 0], flow[:, 1] = 2.0, 3.0                             # dy = 2, dx = 3
    w = torch.zeros(1, 1, 3, 3)
    w[0, 0, 1, 1] = 1.0
    y = W.shared_offset_deform_conv(x, flow, w)
    uv, *_ = soft_argmax(y)
    torch.testing.assert_close(uv[0, 0], torch.tensor([7.0, 6.0]), atol=1e-3, rtol=0)


WARPS = [
    dict(offset_mode="per_tap", trunk_stride=1, time_inputs=0),
    dict(offset_mode="per_channel", trunk_stride=2, time_inputs=2, kernel_dilations=(1, 1)),
    dict(offset_mode="per_tap", trunk_stride=1, time_inputs=0, deform_kernel="full", offset_bias=False),
]


def _warp(**kw):
    torch.manual_seed(0)
    return W.TemporalWarp(num_joints=5, channels=8, num_blocks=2, offset_dilations=(1, 3),
                          backend="grid_sample", **kw)


@pytest.mark.parametrize("kw", WARPS)
def test_untrained_warp_is_identity(kw):
    warp = _warp(**kw)
    x = torch.rand(3, 5, 16, 16)
    d = torch.randn(3, 5, 16, 16)
    dt = torch.randn(3, 2) if kw["time_inputs"] else None
    for mode in (warp.train, warp.eval):
        mode()
        torch.testing.assert_close(warp(x, d, dt), x, rtol=0, atol=1e-5)


def _loss(warp, kw, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, 5, 16, 16, generator=g)
    d = torch.randn(2, 5, 16, 16, generator=g)
    dt = torch.randn(2, 2, generator=g) if kw["time_inputs"] else None
    target = torch.roll(x, shifts=1, dims=-1)                     # "moved in time"
    return ((warp(x, d, dt) - target) ** 2).mean()


@pytest.mark.parametrize("kw", WARPS)
def test_gradients_reach_every_parameter(kw):
    warp = _warp(**kw)
    _loss(warp, kw).backward()
    for name, p in warp.named_parameters():                      # at the identity start ...
        if name.startswith(("heads", "kernels")):
            assert p.grad.abs().sum() > 0, f"no gradient reaches {name} at init"
        else:                                                     # ... the zero heads gate the trunk
            assert p.grad is None or p.grad.abs().sum() == 0, name
    # from the first update on, the zero heads no longer gate the trunk
    torch.optim.SGD(warp.parameters(), lr=0.1).step()
    warp.zero_grad()
    _loss(warp, kw, seed=2).backward()
    for name, p in warp.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"no gradient reaches {name}"


def test_time_conditioned_warp_needs_dt():
    warp = _warp(**WARPS[1])
    x = torch.rand(1, 5, 16, 16)
    with pytest.raises(ValueError, match="time-conditioned"):
        warp(x, x)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="'diagonal'"):
        W.TemporalWarp(num_joints=2, channels=4, num_blocks=1, offset_dilations=(1,), offset_mode="diagonal")
    with pytest.raises(ValueError, match="'mixed'"):
        W.TemporalWarp(num_joints=2, channels=4, num_blocks=1, offset_dilations=(1,), deform_kernel="mixed")
    with pytest.raises(ValueError, match="per_tap"):
        W.TemporalWarp(num_joints=2, channels=4, num_blocks=1, offset_dilations=(1,),
                       offset_mode="per_channel", deform_kernel="full")
    with pytest.raises(ValueError, match="offset has 10 channels"):
        W.deform_conv2d_grid_sample(torch.zeros(1, 2, 4, 4), torch.zeros(1, 10, 4, 4),
                                    torch.zeros(2, 1, 3, 3), padding=1)


def test_merged_heads_equal_head_by_head():
    """The lite path runs its heads in one conv + one grid_sample; it must equal the plain sum."""
    warp = _warp(**WARPS[1]).eval()
    with torch.no_grad():
        for p in warp.parameters():
            p.add_(0.05 * torch.randn_like(p))
        x, d, dt = torch.rand(2, 5, 16, 16), torch.randn(2, 5, 16, 16), torch.randn(2, 2)
        got = warp(x, d, dt)
        planes = dt[:, :, None, None].expand(2, 2, 16, 16)
        feat = warp.trunk(torch.cat([d, planes], 1))
        ref = 0
        for head, kernel in zip(warp.heads, warp.kernels):
            off = torch.nn.functional.interpolate(head(feat), size=(16, 16), mode="bilinear",
                                                  align_corners=False)
            ref = ref + W.shared_offset_deform_conv(x, off, kernel)
        torch.testing.assert_close(got, ref / 2, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(got, x, atol=1e-3)


def test_full_kernels_mix_joint_channels_as_released():
    """deform_kernel="full": per head one (J, J, 3, 3) kernel, J offset groups (one per joint), and
    offset heads without bias: the released layout. Each output channel sums every joint channel,
    each sampled at its own group's offsets (the per-tap loop as reference)."""
    warp = _warp(**WARPS[2]).eval().double()
    assert all(k.shape == (5, 5, 3, 3) for k in warp.kernels)
    assert all(h.bias is None and h.weight.shape == (2 * 9 * 5, 8, 3, 3) for h in warp.heads)
    depthwise = _warp(**WARPS[0])
    assert all(k.shape == (5, 1, 3, 3) for k in depthwise.kernels)
    assert all(h.bias is not None for h in depthwise.heads)
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for p in warp.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype))
        x = torch.rand(1, 5, 7, 6, generator=g, dtype=torch.float64)
        d = torch.randn(1, 5, 7, 6, generator=g, dtype=torch.float64)
        got = warp(x, d)
        feat = warp.trunk(d)
        ref = sum(deform_conv_loop(x, head(feat), kernel, dil, dil)
                  for head, kernel, dil in zip(warp.heads, warp.kernels, (1, 3))) / 2
        torch.testing.assert_close(got, ref, rtol=0, atol=1e-12)
        bumped = x.clone()
        bumped[:, 3] += 1.0
        changed = (warp(bumped, d) - got).abs().amax(dim=(0, 2, 3))   # (J,) per output channel
        assert (changed > 1e-3).all(), "every output channel reads joint channel 3"
        plain = _warp(**WARPS[0]).eval().double()                  # untrained depthwise: identity
        moved = (plain(bumped, d) - x).abs().amax(dim=(0, 2, 3))
        assert (moved > 1e-3).tolist() == [False, False, False, True, False], "channels kept apart"
