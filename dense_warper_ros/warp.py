"""The method's temporal warp (its pipeline step 4) and deformable convolution.

Warp(x = H_cur, d = S[cur, oth] - H_cur) -> view cur's heatmap moved to the other frame's time:
  1. a trunk of residual BasicBlocks reads the difference map d (plus, when time-conditioned, two
     constant planes holding the signed time offsets);
  2. K heads (dilations 3, 6, 12, 18, 24 in the paper) each predict an offset field for a deformable
     3x3 convolution of x, one field per joint channel (deformable groups = J);
  3. the K deformed convolutions of x are averaged.
Kernels (`deform_kernel`): "full", as the released code, is one J -> J kernel per head, so every
output joint channel reads every joint channel, each sampled at its own group's offsets; the offset
heads carry no bias there (`offset_bias=False`), as released, so released weights load one to one
(`released_weights.py`). "depthwise" gives each joint channel its own 3x3 kernel (J x 1 x 3 x 3),
the `lite` configurations' choice: J times fewer kernel weights, and the only kernel the
per-channel fast path below can run.
Identity start (PoseWarper's choice, not the released code's): offset heads are zero-initialised
and every kernel is the identity (1 at the centre tap of its own channel), so an untrained warp
returns x exactly.
As with zero-initialised adapter layers, at step 0 the gradient reaches the heads and kernels only
(the zero heads gate the trunk); from the first update on it reaches every parameter.

Deformable convolution (Dai et al. 2017) with stride 1: output pixel p, kernel tap k at base offset
p_k (dilated), learned offset D_k(p) = (dy, dx):  y(p) = sum_k w_k x(p - pad + p_k + D_k(p)),
x bilinearly interpolated with zeros outside. Offset channel layout as torchvision and the released
code: for each offset group, for each tap k (row-major), (dy, dx).
Two ways to run it:
  - `deform_conv2d_grid_sample`: one `grid_sample` over all taps; CPU-capable, no torchvision;
  - torchvision.ops.deform_conv2d when it imports (`backend="auto"` prefers it).
`offset_mode="per_channel"` (the lite configuration) shares one offset per channel across the 9
taps, which is exactly a depthwise convolution followed by one bilinear warp
(`shared_offset_deform_conv`): 9x fewer samples and 9x narrower offset heads.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

try:  # the GPU machine's path; absent on the CPU-only development machine
    from torchvision.ops import deform_conv2d as _tv_deform_conv2d
except (ImportError, RuntimeError, OSError):  # absent, or built for another torch: grid_sample only
    _tv_deform_conv2d = None

BACKENDS = ("auto", "grid_sample", "torchvision")
FUSION_START_LOGIT = 0.0      # a fusion head starts by averaging the two frames (sigmoid(0) = 0.5);
                              # -4 (almost no fusion) trained to the same place more slowly (MODEL_CARD.md)
OFFSET_MODES = ("per_tap", "per_channel")
DEFORM_KERNELS = ("full", "depthwise")


def torchvision_available() -> bool:
    return _tv_deform_conv2d is not None


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _normalised_grid(px: torch.Tensor, py: torch.Tensor, H: int, W: int) -> torch.Tensor:
    """Pixel coordinates -> grid_sample's [-1, 1] (align_corners=True: -1 and 1 are pixel centres)."""
    if H < 2 or W < 2:
        raise ValueError(f"deformable sampling needs an input of at least 2x2, got {H}x{W}")
    return torch.stack([px * (2.0 / (W - 1)) - 1.0, py * (2.0 / (H - 1)) - 1.0], dim=-1)


def deform_conv2d_grid_sample(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, *,
                              padding: int | tuple[int, int] = 0,
                              dilation: int | tuple[int, int] = 1) -> torch.Tensor:
    """Deformable convolution, stride 1, via one grid_sample.

    x (N, Cin, H, W); offset (N, 2*G*kh*kw, Ho, Wo), G offset groups dividing Cin;
    weight (Cout, Cin/groups, kh, kw) -> (N, Cout, Ho, Wo), Ho = H + 2 ph - dh (kh - 1).
    """
    N, Cin, H, W = x.shape
    Cout, Cin_g, kh, kw = weight.shape
    ph, pw = _pair(padding)
    dh, dw = _pair(dilation)
    Ho, Wo = H + 2 * ph - dh * (kh - 1), W + 2 * pw - dw * (kw - 1)
    K = kh * kw
    if offset.shape[1] % (2 * K) or Cin % (offset.shape[1] // (2 * K)):
        raise ValueError(f"offset has {offset.shape[1]} channels: expected 2*G*{K} with G dividing "
                         f"{Cin} input channels")
    if tuple(offset.shape[-2:]) != (Ho, Wo) or offset.shape[0] != N:
        raise ValueError(f"offset shape {tuple(offset.shape)} does not match output ({N}, *, {Ho}, {Wo})")
    if Cin % Cin_g or Cout % (Cin // Cin_g):
        raise ValueError(f"weight {tuple(weight.shape)} does not group {Cin} input channels")
    G = offset.shape[1] // (2 * K)
    groups = Cin // Cin_g
    dt, dev = x.dtype, x.device
    ki = torch.arange(kh, dtype=dt, device=dev).repeat_interleave(kw) * dh      # (K,) tap rows
    kj = torch.arange(kw, dtype=dt, device=dev).repeat(kh) * dw                 # (K,) tap cols
    base_y = torch.arange(Ho, dtype=dt, device=dev) - ph                        # (Ho,)
    base_x = torch.arange(Wo, dtype=dt, device=dev) - pw                        # (Wo,)
    off = offset.view(N, G, K, 2, Ho, Wo)
    py = base_y[:, None] + ki[:, None, None] + off[:, :, :, 0]                  # (N, G, K, Ho, Wo)
    px = base_x[None, :] + kj[:, None, None] + off[:, :, :, 1]
    grid = _normalised_grid(px, py, H, W).view(N * G, K * Ho, Wo, 2)
    s = F.grid_sample(x.reshape(N * G, Cin // G, H, W), grid, mode="bilinear",
                      padding_mode="zeros", align_corners=True)                  # (N*G, Cin/G, K*Ho, Wo)
    s = s.view(N, groups, Cin_g, K, Ho, Wo)
    w = weight.view(groups, Cout // groups, Cin_g, K)
    return torch.einsum("ngckhw,gock->ngohw", s, w).reshape(N, Cout, Ho, Wo)


def deform_conv2d(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, *,
                  padding: int | tuple[int, int] = 0, dilation: int | tuple[int, int] = 1,
                  backend: str = "auto") -> torch.Tensor:
    """Deformable convolution (stride 1, no bias) with a choice of implementation; see module doc."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown deformable-conv backend {backend!r}, expected one of {BACKENDS}")
    if backend == "torchvision" or (backend == "auto" and _tv_deform_conv2d is not None):
        if _tv_deform_conv2d is None:
            raise RuntimeError("backend='torchvision' requested but torchvision does not import")
        return _tv_deform_conv2d(x, offset, weight, padding=_pair(padding), dilation=_pair(dilation))
    return deform_conv2d_grid_sample(x, offset, weight, padding=padding, dilation=dilation)


def shared_offset_deform_conv(x: torch.Tensor, flow: torch.Tensor, weight: torch.Tensor, *,
                              dilation: int = 1) -> torch.Tensor:
    """Depthwise deformable conv whose taps share one offset per output channel, computed exactly
    as a depthwise conv then a bilinear warp.

    x (N, C, H, W); weight (C*m, 1, k, k), k odd, channel multiplier m (output o reads input
    o // m, as a grouped conv with groups = C); flow (N, 2*C*m, H, W), (dy, dx) per output channel;
    'same' padding -> (N, C*m, H, W). Equal to `deform_conv2d` with each channel's (dy, dx) repeated
    over the k*k taps: bilinear interpolation commutes with integer shifts, and the conv is evaluated
    on a grid extended by the padding so that border samples match too. m > 1 runs several heads'
    kernels in one call.
    """
    N, C, H, W = x.shape
    k = weight.shape[-1]
    Cm = weight.shape[0]
    if weight.shape != (Cm, 1, k, k) or k % 2 == 0 or Cm % C:
        raise ValueError(f"weight must be (C*m, 1, k, k) with C={C} and k odd, got {tuple(weight.shape)}")
    if flow.shape != (N, 2 * Cm, H, W):
        raise ValueError(f"flow must be {(N, 2 * Cm, H, W)}, got {tuple(flow.shape)}")
    return _depthwise_then_warp(x, flow.view(N, Cm, 2, H, W), weight, dilation)


def _depthwise_then_warp(x: torch.Tensor, flow: torch.Tensor, weight: torch.Tensor,
                         dilation: int) -> torch.Tensor:
    """`shared_offset_deform_conv` with flow (N, ..., 2, H, W) of any strides, its middle dims
    flattening to Cm in the grouped conv's output order -> (N, Cm, H, W)."""
    N, C, H, W = x.shape
    Cm, k = weight.shape[0], weight.shape[-1]
    pad = dilation * (k - 1) // 2
    if Cm != C:   # channel multiplier: repeating x and a plain depthwise conv is ~5x faster on CPU
        x = x.repeat_interleave(Cm // C, dim=1)
    y = F.conv2d(x, weight, padding=2 * pad, dilation=dilation, groups=Cm)  # (N, Cm, H+2p, W+2p)
    Hp, Wp = H + 2 * pad, W + 2 * pad
    if Hp < 2 or Wp < 2:
        raise ValueError(f"deformable sampling needs an input of at least 2x2, got {Hp}x{Wp}")
    # grid_sample's (x, y) in [-1, 1]: (pixel + pad + (dx, dy)) * s - 1
    dt, dev = x.dtype, x.device
    sx, sy = 2.0 / (Wp - 1), 2.0 / (Hp - 1)
    bx = (torch.arange(W, dtype=dt, device=dev) + pad) * sx - 1.0                  # (W,)
    by = (torch.arange(H, dtype=dt, device=dev) + pad) * sy - 1.0                  # (H,)
    dy, dx = flow[..., 0, :, :], flow[..., 1, :, :]                                # (N, ..., H, W)
    if torch.is_grad_enabled() and flow.requires_grad:
        grid = torch.stack([dx * sx + bx, dy * sy + by[:, None]], dim=-1)
    else:   # inference: write both planes straight into one grid (the flow may be strided)
        grid = torch.empty(dy.shape + (2,), dtype=dt, device=dev)
        torch.add(bx.expand(H, W), dx, alpha=sx, out=grid[..., 0])
        torch.add(by[:, None].expand(H, W), dy, alpha=sy, out=grid[..., 1])
    grid = grid.view(N * Cm, H, W, 2)
    out = F.grid_sample(y.reshape(N * Cm, 1, Hp, Wp), grid, mode="bilinear",
                        padding_mode="zeros", align_corners=True)
    return out.view(N, Cm, H, W)


def upsample_offsets(off: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear upsampling of an offset field (N, 2K, h, w) -> (N, 2K, H, W), channels-last memory:
    PyTorch's CPU kernel is ~10x faster that way for many channels, and the grid built from it is a
    fresh tensor anyway (the layout change folds into that copy)."""
    if tuple(off.shape[-2:]) == tuple(size):
        return off
    return F.interpolate(off.contiguous(memory_format=torch.channels_last), size=size, mode="bilinear",
                         align_corners=False)


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs with BN, identity or 1x1-projection shortcut."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = nn.Identity() if cin == cout and stride == 1 else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class TemporalWarp(nn.Module):
    """One warp: x (N, J, H, W) own heatmap, d (N, J, H, W) difference map, dt (N, time_inputs)
    normalised signed time offsets or None -> (N, J, H, W) x moved in time. See module doc.

    Temporal-context extension (all off by default, so the faithful warp is unchanged):
      - `context_inputs` extra trunk channels (the model feeds the same view's earlier heatmaps,
        resampled into the current crop, as differences to x, plus their time-offset planes);
      - `velocity_prior`: forward's `prior` (N, J, 2) is a displacement (dx, dy) in heatmap px per
        joint (the model's constant-velocity guess); the offsets start at -gain_j * prior (gain 1)
        and the heads learn the residual, so training starts from constant-velocity motion
        instead of from standing still;
      - `confidence`: a 1x1 head, spatially averaged, gives a per-joint log-weight (zero start) that
        the model multiplies into the DLT weight of the warped view (a stale view can be trusted
        less than the fresh one; only the 3D loss trains it);
      - `fusion`: forward's `fuse_with` (the previous frame in the current crop and its step to the
        current frame) is moved by the same offsets plus that step, and blended into the output
        with a per-joint weight from a 1x1 head (sigmoid, starting at 0.5: the two frames averaged).
        Why: a second frame's evidence reaches the output. The step comes from the same two
        detections, so the moved frame's peak lands on the current one's (0.02 px apart,
        MODEL_CARD.md): the blend reshapes the peak and its height (the DLT weight) and does
        not average position noise.
    """

    def __init__(self, *, num_joints: int, channels: int, num_blocks: int,
                 offset_dilations: tuple[int, ...], kernel_dilations: tuple[int, ...] | None = None,
                 offset_mode: str = "per_tap", trunk_stride: int = 1, time_inputs: int = 0,
                 backend: str = "auto", context_inputs: int = 0, velocity_prior: bool = False,
                 confidence: bool = False, fusion: bool = False, deform_kernel: str = "depthwise",
                 offset_bias: bool = True) -> None:
        super().__init__()
        kernel_dilations = tuple(kernel_dilations or offset_dilations)
        if len(kernel_dilations) != len(offset_dilations) or not offset_dilations:
            raise ValueError(f"need one kernel dilation per head: offsets {offset_dilations}, "
                             f"kernels {kernel_dilations}")
        if offset_mode not in OFFSET_MODES:
            raise ValueError(f"unknown offset_mode {offset_mode!r}, expected one of {OFFSET_MODES}")
        if trunk_stride not in (1, 2):
            raise ValueError(f"trunk_stride must be 1 or 2, got {trunk_stride}")
        if num_blocks < 1:
            raise ValueError(f"num_blocks must be >= 1, got {num_blocks}")
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}, expected one of {BACKENDS}")
        if deform_kernel not in DEFORM_KERNELS:
            raise ValueError(f"unknown deform_kernel {deform_kernel!r}, expected one of {DEFORM_KERNELS}")
        if deform_kernel == "full" and offset_mode != "per_tap":
            raise ValueError(f"deform_kernel 'full' needs offset_mode 'per_tap', got {offset_mode!r} "
                             f"(the per-channel path is a depthwise conv then one warp per channel)")
        self.num_joints, self.time_inputs = num_joints, time_inputs
        self.deform_kernel = deform_kernel
        self.context_inputs = context_inputs
        self.offset_mode, self.backend = offset_mode, backend
        self.kernel_dilations = kernel_dilations
        blocks = [BasicBlock(num_joints + time_inputs + context_inputs, channels, trunk_stride)]
        blocks += [BasicBlock(channels, channels) for _ in range(num_blocks - 1)]
        self.trunk = nn.Sequential(*blocks)
        taps = 9 if offset_mode == "per_tap" else 1
        self.heads = nn.ModuleList(
            nn.Conv2d(channels, 2 * taps * num_joints, 3, padding=dil, dilation=dil, bias=offset_bias)
            for dil in offset_dilations)
        kernel_in = num_joints if deform_kernel == "full" else 1
        self.kernels = nn.ParameterList(                         # K x (J, J or 1, 3, 3)
            nn.Parameter(torch.zeros(num_joints, kernel_in, 3, 3)) for _ in offset_dilations)
        self.prior_gain = nn.Parameter(torch.ones(num_joints)) if velocity_prior else None
        self.confidence_head = nn.Conv2d(channels, num_joints, 1) if confidence else None
        self.fusion_head = nn.Conv2d(channels, num_joints, 1) if fusion else None
        self.reset_to_identity()

    @torch.no_grad()
    def reset_to_identity(self) -> None:
        """Zero offsets and identity kernels: the untrained warp returns its input."""
        for head in self.heads:
            head.weight.zero_()
            if head.bias is not None:
                head.bias.zero_()
        joints = torch.arange(self.num_joints, device=self.kernels[0].device)
        for k in self.kernels:
            k.zero_()
            k[joints, joints if self.deform_kernel == "full" else 0, 1, 1] = 1.0
        if self.prior_gain is not None:
            self.prior_gain.fill_(1.0)
        if self.confidence_head is not None:
            self.confidence_head.weight.zero_()
            self.confidence_head.bias.zero_()
        if self.fusion_head is not None:
            self.fusion_head.weight.zero_()
            self.fusion_head.bias.fill_(FUSION_START_LOGIT)

    def forward(self, x: torch.Tensor, d: torch.Tensor, dt: torch.Tensor | None = None, *,
                context: torch.Tensor | None = None, prior: torch.Tensor | None = None,
                fuse_with=None,
                return_confidence: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor | None]:
        """-> Y (N, J, H, W), or (Y, log-weight (N, J) or None) with return_confidence.
        context (N, context_inputs, H, W); prior (N, J, 2) displacement (dx, dy) in px or None;
        fuse_with: `temporal_context.FusionInput` (heatmaps (N, J, H, W), step (N, J, 2), usable (N, J)) or None."""
        N, J, H, W = x.shape
        if d.shape != x.shape:
            raise ValueError(f"difference map {tuple(d.shape)} must match heatmaps {tuple(x.shape)}")
        inp = [d]
        if self.time_inputs:
            if dt is None or dt.shape != (N, self.time_inputs):
                raise ValueError(f"this warp is time-conditioned: dt must be ({N}, {self.time_inputs}), "
                                 f"got {None if dt is None else tuple(dt.shape)}")
            inp.append(dt.to(d.dtype)[:, :, None, None].expand(N, self.time_inputs, H, W))
        if self.context_inputs:
            if context is None or context.shape != (N, self.context_inputs, H, W):
                raise ValueError(f"this warp takes temporal context ({N}, {self.context_inputs}, {H}, {W}), "
                                 f"got {None if context is None else tuple(context.shape)}")
            inp.append(context.to(d.dtype))
        feat = self.trunk(torch.cat(inp, dim=1) if len(inp) > 1 else d)   # (N, C, H/s, W/s)
        offs = [head(feat) for head in self.heads]               # K x (N, 2*taps*J, H/s, W/s)
        if self.prior_gain is not None and prior is not None:
            offs = [o + self._prior_offsets(prior.to(o.dtype))[:, :, None, None] for o in offs]
        if self.fusion_head is not None and fuse_with is not None:
            prev, step, usable = fuse_with
            out, moved = self._deform(x, offs, (prev.to(x.dtype), self._shift_offsets(step.to(x.dtype))))
            beta = torch.sigmoid(self.fusion_head(feat).mean(dim=(-2, -1)))          # (N, J)
            beta = (beta * usable.to(beta.dtype))[..., None, None]
            out = out + beta * (moved - out)
        else:
            out = self._deform(x, offs)
        if not return_confidence:
            return out
        logw = None
        if self.confidence_head is not None:
            logw = self.confidence_head(feat).mean(dim=(-2, -1)).clamp(-4.0, 2.0)   # (N, J)
        return out, logw

    def _prior_offsets(self, prior: torch.Tensor) -> torch.Tensor:
        """The velocity prior (N, J, 2) as (dx, dy), scaled by the learned per-joint gain, in the
        heads' offset layout (N, 2*taps*J)."""
        return self._shift_offsets(self.prior_gain[None, :, None] * prior)

    def _shift_offsets(self, disp: torch.Tensor) -> torch.Tensor:
        """Displacement (N, J, 2) as (dx, dy) -> offset channels (N, 2*taps*J) in the heads' layout.
        Content moved by +delta means sampling at p - delta: offsets (dy, dx) = -(dy, dx)."""
        N, J, _ = disp.shape
        off = -disp.flip(-1)                                      # (N, J, 2) as (dy, dx)
        if self.offset_mode == "per_tap":
            off = off[:, :, None, :].expand(N, J, 9, 2)
        return off.reshape(N, -1)

    def _deform(self, x: torch.Tensor, offs: list[torch.Tensor],
                also: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The K heads' deformable convolutions of x, averaged -> (N, J, H, W). `also` (prev
        (N, J, H, W), shift (N, 2*taps*J)): a second input moved by the offsets plus the shift
        -> (out, moved)."""
        N, J, H, W = x.shape
        if self.offset_mode == "per_channel" and len(set(self.kernel_dilations)) == 1:
            return self._merged_heads(x, offs, also)
        if also is not None:
            prev, shift = also
            return self._deform(x, offs), self._deform(prev, [o + shift[:, :, None, None] for o in offs])
        out = 0
        for off, kernel, kd in zip(offs, self.kernels, self.kernel_dilations):
            off = upsample_offsets(off, (H, W))
            kernel = kernel.to(x.dtype)
            if self.offset_mode == "per_channel":
                out = out + shared_offset_deform_conv(x, off, kernel, dilation=kd)
            else:
                out = out + deform_conv2d(x, off, kernel, padding=kd, dilation=kd,
                                          backend=self.backend)
        return out / len(self.heads)

    def _merged_heads(self, x: torch.Tensor, offs: list[torch.Tensor],
                      also: tuple[torch.Tensor, torch.Tensor] | None = None
                      ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """The K per-channel heads in one conv and one grid_sample (same result as one by one).
        With `also`, the second input rides in the same call: bilinear upsampling keeps a constant,
        so its flow is the upsampled offsets plus the shift (one upsampling, not two)."""
        N, J, H, W = x.shape
        K = len(offs)
        off = upsample_offsets(torch.cat(offs, dim=1), (H, W))  # (N, K*J*2, H, W) as [k, j, 2]
        if also is not None:
            prev, shift = also                                   # shift (N, J*2) as [j, 2]
            off = torch.cat([off, off + shift.repeat(1, K)[:, :, None, None]])   # (2N, K*J*2, H, W)
            x = torch.cat([x, prev])
        M = x.shape[0]
        flow = off.view(M, K, J, 2, H, W).transpose(1, 2)        # (M, J, K, 2, H, W) view, [j, k]
        weight = torch.stack(list(self.kernels)).to(x.dtype)    # (K, J, 1, 3, 3)
        weight = weight.transpose(0, 1).reshape(J * K, 1, 3, 3)  # grouped conv order: [j, k]
        out = _depthwise_then_warp(x, flow, weight, self.kernel_dilations[0])
        out = out.view(M, J, K, H, W).mean(dim=2)
        return out if also is None else (out[:N], out[N:])
