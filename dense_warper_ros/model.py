"""The DenseWarper model: backbone heatmaps -> epipolar exchange -> temporal warps -> 3D pose.

Legend: B batch, V views, J joints, h x w heatmap. Geometry is pinhole image pixels (P = K [R | t]
from `cameras.projection_matrices`) plus per-frame crop affines A (image -> heatmap pixels).

Fusion at one target instant t* (the method's pipeline steps 2-5), for each valid view c:
  1. pass through: c's frame is at t* (`pairwise`: c is the anchor view) -> Y_c = H_c;
  2. otherwise pick a guide view g (`pairwise`: the anchor; time-conditioned: the valid view other
     than c captured closest to t*), exchange E = E[c <- g] along epipolar lines (`epipolar.py`),
     S = 0.5 E + 0.5 H_c, and warp Y_c = Warp(H_c, S - H_c [, dt]) (`warp.py`);
  3. windowed soft-argmax of every Y_c, heatmap -> image pixels with A_c^-1, optional undistortion,
     confidence-weighted DLT with covariance (`triangulation.py`).
Only the views not captured at t* are warped: V - 1 warps per pose when one view is at t*.

Configurations (`model_config.py`, `ModelConfig.named`): `paper` (the released sizes and layers;
one warp per ordered view pair, so the pose must be asked at a view's capture time), `lite` (real
time on 2 CPU cores; one shared, time-conditioned warp that also reads the signed offsets t* - t_c
and t_g - t_c; any number of views, any timing) and `lite_tc`.

Call paths:
  - `forward_window(heatmaps, P, affines, times, valid)`: a window of V frames, one per view; every
    view is brought to every view's capture time -> V poses (training and batch evaluation).
  - `pose_at(..., target_time)`: the newest heatmap of each view -> the pose at one instant; the
    caller's buffer keeps each frame's backbone heatmap (`heatmaps(images)`) and reuses it in every
    window the frame belongs to, so a new frame costs one backbone pass and V - 1 warps.
  For the same frames and eval mode, `pose_at(target_time=times[:, i])` equals slot i of
  `forward_window` (BatchNorm in train mode uses batch statistics, which differ between the two).

Timing: the model only takes times; the buffer chooses frames.
  - causal (lowest latency, extrapolation): when a frame arrives, call `pose_at` with each view's
    newest frame and `target_time` = the new frame's capture time. The other views' frames are
    older, so their warps extrapolate forward. Needs the time-conditioned config: with `pairwise`
    warps the pair offsets differ from the fixed ones they were trained for.
  - windowed (the paper's setting, interpolation, one cycle of delay): the buffer holds the
    window of V consecutive frames [t_0 .. t_{V-1}], one per view, and asks `forward_window` (all V
    poses once the last frame arrives) or `pose_at(target_time=t_i)`; frames after t_i are used, so
    the pose at t_i is out only when the window's last frame has arrived.

Temporal context (this project's extension, not in the paper; `temporal_context.py`, preset
`lite_tc`): the warp of view c also reads c's K earlier frames (`PreviousFrames`, passed as
`previous=` to `pose_at` / `forward_window`); configs without it ignore `previous`.

Distortion: the exchange and the warps work on the (distorted) crops, as the released code; 2D points
are undistorted before DLT by the `undistort` hook if the caller passes one
(`cameras.undistorter(cameras)`), else they are taken as pinhole pixels.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .cameras import affine_scales, apply_affines, invert_affines
from .epipolar import EpipolarSampler, epipolar_exchange, gather_max
from .heatmaps import soft_argmax
from .model_config import NAMED_CONFIGS, ModelConfig
from .temporal_context import ContextCache, PreviousFrames, fit_previous, history_cap, warp_context
from .triangulation import reject_outlier_views, triangulate_with_uncertainty
from .warp import TemporalWarp
from .weights import written_atomically

# Callers import the configuration and the history type from here, with the model.
__all__ = ["FORMAT", "NAMED_CONFIGS", "DenseWarper", "ModelConfig", "PoseOutput", "PreviousFrames",
           "StaticRig", "WindowOutput"]

FORMAT = "dense_warper/1"
CPU_WARP_CHUNK = 8                # pairs per call of the shared warp in CPU inference (`_shared_warp`)


class PoseOutput(NamedTuple):
    points: torch.Tensor              # (B, J, 3) world; NaN where num_views < 2
    confidence: torch.Tensor          # (B, J) mean heatmap peak of the views used; 0 if < 2 views
    covariance: torch.Tensor          # (B, J, 3, 3) world covariance, m^2
    num_views: torch.Tensor           # (B, J) int, views used per joint
    heatmaps: torch.Tensor            # (B, V, J, h, w) each view's heatmap at the target time
    uv: torch.Tensor                  # (B, V, J, 2) image px fed to DLT (after undistortion)
    peak: torch.Tensor                # (B, V, J) heatmap peaks (DLT weights where valid)
    reprojection_error: torch.Tensor  # (B, J) RMS px
    rejected: torch.Tensor            # (B, V, J) bool: a view dropped as an outlier (outlier_threshold)


class WindowOutput(NamedTuple):
    heatmaps: torch.Tensor            # (B, V, V, J, h, w): [b, c, i] = view c moved to slot i's time
    poses: torch.Tensor               # (B, V, J, 3): the pose at each slot's capture time
    confidence: torch.Tensor          # (B, V, J)
    covariance: torch.Tensor          # (B, V, J, 3, 3)
    num_views: torch.Tensor           # (B, V, J)
    uv_heatmap: torch.Tensor          # (B, V, V, J, 2) soft-argmax of heatmaps[b, c, i], heatmap px
    peak: torch.Tensor                # (B, V, V, J)
    reprojection_error: torch.Tensor  # (B, V, J)


@dataclass
class StaticRig:
    """Precomputed epipolar sampling for a static rig with fixed crops (`DenseWarper.precompute_rig`)."""

    P: torch.Tensor                   # (V, 3, 4) the projections it was built for
    affines: torch.Tensor             # (V, 2, 3) the crop affines it was built for
    sampler: EpipolarSampler          # leading shape (V, V): [cur, oth]


class FusionPlan(NamedTuple):
    """Which views pass through and which are warped toward the target, and with which guide."""

    passthrough: torch.Tensor         # (B, V) bool: frame at the target (or the anchor)
    warp: torch.Tensor                # (B, V) bool: warped toward the target
    bi: torch.Tensor                  # (N,) batch index of each pair to warp
    ci: torch.Tensor                  # (N,) view warped
    gi: torch.Tensor                  # (N,) its guide view
    times: torch.Tensor               # (B, V) float64 capture times
    target: torch.Tensor              # (B,) float64 target times


def _rows(v, i: int, j: int):
    """Rows i:j of a tensor, or of each tensor of a tuple (`FusionInput`)."""
    if isinstance(v, torch.Tensor):
        return v[i:j]
    return type(v)(*(t[i:j] for t in v))


def _nearest_in_time(times: torch.Tensor, valid: torch.Tensor, target: torch.Tensor, k: int) -> torch.Tensor:
    """(B, V) bool: the k valid views captured nearest to each target (fewer when fewer are valid)."""
    gap = (times - target[:, None]).abs().masked_fill(~valid, float("inf"))
    keep = torch.zeros_like(valid)
    return keep.scatter_(1, gap.topk(k, dim=1, largest=False).indices, True)


def _half_res_affines(A: torch.Tensor) -> torch.Tensor:
    """(..., 2, 3) affines onto the 2x2 max-pooled grid: pooled pixel i covers pixels 2i and 2i+1,
    so x' = (x - 0.5) / 2 in the pixel-centre convention."""
    shift = torch.tensor([[0.0, 0.0, 0.25], [0.0, 0.0, 0.25]], dtype=A.dtype, device=A.device)
    return 0.5 * A - shift


class DenseWarper(nn.Module):
    """See the module docstring. `backbone` maps images (N, 3, s, s) -> heatmaps (N, J, h, w), or is
    None when callers pass heatmaps directly."""

    def __init__(self, config: ModelConfig, backbone: nn.Module | None = None) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone
        c = config
        kw = dict(num_joints=c.num_joints, channels=c.warp_channels, num_blocks=c.warp_blocks,
                  offset_dilations=c.offset_dilations, kernel_dilations=c.kernel_dilations,
                  offset_mode=c.offset_mode, trunk_stride=c.trunk_stride, backend=c.deform_backend,
                  deform_kernel=c.deform_kernel, offset_bias=c.offset_bias)
        if c.temporal_context:
            kw.update(context_inputs=c.temporal_context * (c.num_joints + 1),
                      velocity_prior=c.velocity_prior, confidence=c.view_confidence,
                      fusion=c.temporal_fusion)
        elif c.view_confidence:
            kw.update(confidence=True)
        if c.time_conditioned:
            self.warps = nn.ModuleDict({"shared": TemporalWarp(time_inputs=2, **kw)})
        else:
            self.warps = nn.ModuleDict({f"{a}_{b}": TemporalWarp(**kw)
                                        for a in range(c.num_views) for b in range(c.num_views) if a != b})

    # --- what callers size around --------------------------------------------------------------
    @property
    def heatmap_size(self) -> int:
        return self.config.heatmap_size

    @property
    def input_size(self) -> int:
        return self.config.input_size

    @property
    def num_joints(self) -> int:
        return self.config.num_joints

    @property
    def time_conditioned(self) -> bool:
        return self.config.time_conditioned

    @property
    def views_supported(self) -> tuple[int, int | None]:
        """(min, max) number of views; max None means any."""
        n = self.config.num_views
        return (n, n) if not self.time_conditioned else (2, n)

    def supports_views(self, num_views: int) -> bool:
        lo, hi = self.views_supported
        return num_views >= lo and (hi is None or num_views <= hi)

    def describe(self) -> dict:
        """What a node or benchmark needs to know, as plain data."""
        lo, hi = self.views_supported
        return {"config": self.config.to_dict(), "min_views": lo, "max_views": hi,
                "heatmap_size": self.heatmap_size, "input_size": self.input_size,
                "time_conditioned": self.time_conditioned,
                "frames_per_view": 1 + self.config.temporal_context,
                "temporal_context": self.config.temporal_context,
                "warp_parameters": sum(p.numel() for p in self.warps.parameters()),
                "has_backbone": self.backbone is not None}

    def set_inference(self, **options) -> "DenseWarper":
        """Change inference-only settings (`ModelConfig.INFERENCE_FIELDS`) of a built or loaded model,
        e.g. `set_inference(outlier_threshold=2.5)`; the weights stay valid. Returns self."""
        bad = set(options) - set(ModelConfig.INFERENCE_FIELDS)
        if bad:
            raise ValueError(f"{sorted(bad)} are not inference settings; those are {ModelConfig.INFERENCE_FIELDS}")
        self.config = replace(self.config, **options)
        return self

    def for_inference(self) -> "DenseWarper":
        """eval(), with the warps' convolution weights channels-last: on a CPU, PyTorch runs these
        small convolutions and the depthwise one faster that way (docs/experiments.md), with the
        same results up to float rounding. Returns self."""
        self.eval()
        self.warps.to(memory_format=torch.channels_last)
        return self

    # --- backbone -------------------------------------------------------------------------------
    def heatmaps(self, images: torch.Tensor) -> torch.Tensor:
        """images (..., 3, s, s) -> heatmaps (..., J, h, w) with the backbone (once per frame)."""
        if self.backbone is None:
            raise RuntimeError("this DenseWarper has no backbone: pass heatmaps to forward_window/pose_at")
        lead = images.shape[:-3]
        hm = self.backbone(images.reshape(-1, *images.shape[-3:]))
        want = (self.num_joints, self.heatmap_size, self.heatmap_size)
        if tuple(hm.shape[1:]) != want:
            raise ValueError(f"backbone returned heatmaps {tuple(hm.shape[1:])}, config expects {want}")
        return hm.reshape(*lead, *want)

    def forward(self, images: torch.Tensor, P: torch.Tensor, affines: torch.Tensor, times: torch.Tensor,
                valid: torch.Tensor, **kw) -> WindowOutput:
        """images (B, V, 3, s, s): backbone, then `forward_window`."""
        return self.forward_window(self.heatmaps(images), P, affines, times, valid, **kw)

    # --- static rigs ----------------------------------------------------------------------------
    def precompute_rig(self, P: torch.Tensor, affines: torch.Tensor) -> StaticRig:
        """Epipolar indices for every ordered pair of a static rig with fixed crops, once.
        P (V, 3, 4), affines (V, 2, 3)."""
        V = P.shape[0]
        if P.shape != (V, 3, 4) or affines.shape != (V, 2, 3):
            raise ValueError(f"precompute_rig takes P (V, 3, 4) and affines (V, 2, 3), got "
                             f"{tuple(P.shape)} and {tuple(affines.shape)}")
        A = _half_res_affines(affines) if self.config.exchange_stride == 2 else affines
        size = self.heatmap_size // self.config.exchange_stride
        cur = torch.arange(V).repeat_interleave(V)
        oth = torch.arange(V).repeat(V)
        sampler = EpipolarSampler(P[cur], A[cur], P[oth], A[oth], size)
        sampler.lines = sampler.lines.view(V, V, *sampler.lines.shape[1:])
        sampler.index = sampler.index.view(V, V, *sampler.index.shape[1:])
        diag = torch.arange(V)
        sampler.index[diag, diag] = size * size                  # a view with itself: never used
        return StaticRig(P.detach().clone(), affines.detach().clone(), sampler)

    # --- fusion ---------------------------------------------------------------------------------
    def _check_inputs(self, hm, P, A, times, valid) -> None:
        if hm.dim() != 5:
            raise ValueError(f"heatmaps must be (B, V, J, h, w), got {tuple(hm.shape)}")
        B, V, J, h, w = hm.shape
        if (J, h, w) != (self.num_joints, self.heatmap_size, self.heatmap_size):
            raise ValueError(f"heatmaps are (J, h, w) = {(J, h, w)}, config expects "
                             f"{(self.num_joints, self.heatmap_size, self.heatmap_size)}")
        if not self.supports_views(V):
            raise ValueError(f"{V} views given; this configuration supports {self.views_supported}")
        for name, t, shape in (("P", P, (B, V, 3, 4)), ("affines", A, (B, V, 2, 3)),
                               ("times", times, (B, V)), ("valid", valid, (B, V))):
            if tuple(t.shape) != shape:
                raise ValueError(f"{name} must be {shape}, got {tuple(t.shape)}")

    def _check_rig(self, rig: StaticRig, P: torch.Tensor, A: torch.Tensor) -> None:
        tol = dict(rtol=1e-6, atol=1e-9)
        same = (P.shape[1:] == rig.P.shape and A.shape[1:] == rig.affines.shape
                and torch.allclose(P.detach().to(rig.P), rig.P.expand_as(P), **tol)
                and torch.allclose(A.detach().to(rig.affines), rig.affines.expand_as(A), **tol))
        if not same:
            raise ValueError("the StaticRig was built for other cameras or crops than the P/affines given")

    # Fusion stages (module doc, steps 1-3); separate so that bench/model_speed.py can time each.
    def _plan(self, times: torch.Tensor, valid: torch.Tensor, target: torch.Tensor,
              anchor: torch.Tensor | None) -> FusionPlan:
        """Step 1: which views pass through, which are warped, and with which guide."""
        c = self.config
        B, V = valid.shape
        dev = valid.device
        times = times.to(dev, torch.float64)
        target = target.to(dev, torch.float64)
        views = torch.arange(V, device=dev)
        if c.max_views is not None and V > c.max_views:
            valid = valid & _nearest_in_time(times, valid, target, c.max_views)
        if anchor is not None:                                   # pairwise: guide = anchor
            anchor_ok = valid.gather(1, anchor[:, None])         # (B, 1)
            passthrough = valid & (views[None] == anchor[:, None])
            warp = valid & ~passthrough & anchor_ok
            guide = anchor[:, None].expand(B, V)
        else:                                                    # time-conditioned: nearest frame
            gap = (times - target[:, None]).abs()                # (B, V)
            passthrough = valid & (gap <= c.time_tolerance_s)
            cost = gap[:, None, :].expand(B, V, V).clone()       # [b, c, g]
            cost[:, views, views] = float("inf")
            cost = cost.masked_fill(~valid[:, None, :], float("inf"))
            best, guide = cost.min(dim=-1)                       # (B, V)
            warp = valid & ~passthrough & torch.isfinite(best)
        bi, ci = warp.nonzero(as_tuple=True)                     # (N,) pairs to warp
        return FusionPlan(passthrough, warp, bi, ci, guide[bi, ci], times, target)

    def _exchange(self, hm: torch.Tensor, P: torch.Tensor, A: torch.Tensor, plan: FusionPlan,
                  rig: StaticRig | None) -> torch.Tensor:
        """Step 2a: E[c <- g] for the plan's N pairs -> (N, J, h, w)."""
        bi, ci, gi = plan.bi, plan.ci, plan.gi
        s = self.config.exchange_stride
        h, w = hm.shape[-2:]
        if s == 2:   # 2x2 max pool of every view once (a guide serves several pairs), then pick
            pooled = torch.maximum(torch.maximum(hm[..., 0::2, 0::2], hm[..., 0::2, 1::2]),
                                   torch.maximum(hm[..., 1::2, 0::2], hm[..., 1::2, 1::2]))
            x = pooled[bi, gi]                                   # (N, J, h/2, w/2)
        else:
            x = hm[bi, gi]                                       # (N, J, h, w)
        if rig is not None:
            E = gather_max(x, rig.sampler.index.to(x.device)[ci, gi])
        else:
            A_cur, A_oth = A[bi, ci], A[bi, gi]
            if s == 2:
                A_cur, A_oth = _half_res_affines(A_cur), _half_res_affines(A_oth)
            E = epipolar_exchange(x, P[bi, ci], A_cur, P[bi, gi], A_oth)
        if s == 2:   # channels-last: PyTorch's CPU bilinear kernel is several times faster so
            E = F.interpolate(E.contiguous(memory_format=torch.channels_last), size=(h, w),
                              mode="bilinear", align_corners=False)
        return E

    def _warp(self, hm: torch.Tensor, E: torch.Tensor, plan: FusionPlan, affines: torch.Tensor | None = None,
              previous: PreviousFrames | None = None, *, with_confidence: bool = False,
              context_cache: ContextCache | None = None):
        """Step 2b: S = fill E + (1 - fill) H_c, Y_c = Warp(H_c, S - H_c [, dt] [, context]) ->
        (N, J, h, w); with_confidence: (Y, DLT log-weights (N, J) or None).
        Temporal-context configs also read `previous` (None: no history) and need `affines`."""
        c = self.config
        bi, ci, gi = plan.bi, plan.ci, plan.gi
        x = hm[bi, ci]                                           # (N, J, h, w)
        d = c.fill_weight * (E.to(x.dtype) - x)                  # S - H_cur
        kw = {}
        if c.temporal_context:
            if affines is None:
                raise ValueError("a temporal-context model's _warp needs the crop affines")
            kw["context"], kw["prior"], fuse = warp_context(c, x, affines[bi, ci], previous, bi, ci,
                                                             plan.times[bi, ci], plan.target[bi], context_cache)
            if fuse is not None:
                kw["fuse_with"] = fuse
        if self.time_conditioned:
            t, t0 = plan.times, plan.target
            dt = torch.stack([t0[bi] - t[bi, ci], t[bi, gi] - t[bi, ci]], -1)     # (N, 2) seconds
            y, logw = self._shared_warp(x, d, (dt / c.time_scale_s).to(x.dtype), kw)
            return (y, logw) if with_confidence else y
        V = hm.shape[1]
        out = torch.empty_like(x)
        logw = torch.zeros(x.shape[:2], dtype=x.dtype, device=x.device) if c.view_confidence else None
        keys = ci * V + gi
        for key in keys.unique().tolist():
            sel = (keys == key).nonzero(as_tuple=True)[0]
            y, lw = self.warps[f"{key // V}_{key % V}"](
                x[sel], d[sel], return_confidence=True, **{k: v[sel] for k, v in kw.items()})
            out = out.index_put((sel,), y)
            if lw is not None:
                logw = logw.index_put((sel,), lw)
        return (out, logw) if with_confidence else out

    def _shared_warp(self, x: torch.Tensor, d: torch.Tensor, dt: torch.Tensor, kw: dict):
        """The shared warp over N pairs -> (Y, log-weight or None). CPU inference runs it in chunks
        of at most CPU_WARP_CHUNK pairs: past that (several people) the warp's working set outgrows
        a core's cache and each pair costs more (docs/experiments.md)."""
        warp = self.warps["shared"]
        N, C = x.shape[0], CPU_WARP_CHUNK
        if N <= C or x.device.type != "cpu" or torch.is_grad_enabled():
            return warp(x, d, dt, return_confidence=True, **kw)
        parts = [warp(x[i:i + C], d[i:i + C], dt[i:i + C], return_confidence=True,
                      **{k: _rows(v, i, i + C) for k, v in kw.items()}) for i in range(0, N, C)]
        logw = None if parts[0][1] is None else torch.cat([p[1] for p in parts])
        return torch.cat([p[0] for p in parts]), logw

    def _assemble(self, hm: torch.Tensor, warped: torch.Tensor | None, plan: FusionPlan) -> torch.Tensor:
        """Every view at the target: pass-through, warped, or zeros (missing) -> (B, V, J, h, w)."""
        zero = torch.zeros((), dtype=hm.dtype, device=hm.device)
        Y = torch.where(plan.passthrough[..., None, None, None], hm, zero)
        if warped is not None:
            Y = Y.index_put((plan.bi, plan.ci), warped.to(Y.dtype))
        return Y

    def _triangulate(self, Y: torch.Tensor, P: torch.Tensor, A: torch.Tensor, plan: FusionPlan,
                     undistort, view_logw: torch.Tensor | None = None,
                     weight_cap: torch.Tensor | None = None) -> tuple[PoseOutput, torch.Tensor]:
        """Step 3: soft-argmax, heatmap -> image px, undistort, weighted DLT with covariance.
        view_logw (B, V, J): log-multipliers of the DLT weights (the warp's confidence), or None;
        weight_cap (B, V, J): upper bounds of the heatmap-peak weights (`history_weight`), or None.
        Returns the pose and the soft-argmax coordinates (B, V, J, 2) in heatmap px."""
        c = self.config
        uv_h, peak, ok, spread = soft_argmax(Y, **c.decoder)
        uv = apply_affines(invert_affines(A.to(uv_h.dtype)), uv_h)   # (B, V, J, 2) image px
        if undistort is not None:
            uv = undistort(uv)
        used = ok & (plan.passthrough | plan.warp)[..., None]    # (B, V, J)
        weights = torch.where(used, peak, torch.zeros_like(peak))
        if weight_cap is not None:
            weights = torch.minimum(weights, weight_cap.to(weights.dtype))
        if view_logw is not None:
            weights = weights * view_logw.to(weights.dtype).exp()
        scale = affine_scales(A.to(uv.dtype))                    # (B, V) heatmap px per image px
        rejected = torch.zeros_like(used)
        if c.outlier_threshold is not None:   # heatmap px -> each view's image px
            thr = c.outlier_threshold / scale.clamp_min(1e-12)   # (B, V)
            kept = reject_outlier_views(P, uv, weights, thr[..., None])
            rejected = (weights > 0) & (kept == 0)
            weights = kept
        sigma = spread.clamp_min(c.min_sigma_px) / scale.to(spread.dtype)[..., None]
        tri = triangulate_with_uncertainty(P, uv, weights, sigma)
        n = tri.num_views
        conf = weights.sum(1) / used.sum(1).clamp_min(1)
        conf = torch.where(n >= 2, conf, torch.zeros_like(conf))
        return PoseOutput(tri.points, conf, tri.covariance, n, Y, uv, peak, tri.reprojection_error, rejected), uv_h

    def _fuse(self, hm, P, A, times, valid, target, anchor, undistort,
              rig, previous: PreviousFrames | None = None,
              context_cache: ContextCache | None = None,
              weight_cap: torch.Tensor | None = None) -> tuple[PoseOutput, torch.Tensor]:
        """All stages at one target per batch item. hm (B, V, J, h, w), target (B,) seconds,
        anchor (B,) view index (pairwise) or None (time-conditioned)."""
        plan = self._plan(times, valid.to(hm.device).bool(), target, anchor)
        warped, view_logw, cap = None, None, None
        if plan.bi.numel():
            warped, logw = self._warp(hm, self._exchange(hm, P, A, plan, rig), plan, A, previous,
                                      with_confidence=True, context_cache=context_cache)
            if logw is not None:
                view_logw = torch.zeros(hm.shape[:3], dtype=logw.dtype, device=hm.device)
                view_logw = view_logw.index_put((plan.bi, plan.ci), logw)
            if self.config.history_weight and previous is not None:
                cap = history_cap(hm, plan.bi, plan.ci, previous)
        if weight_cap is not None:
            cap = weight_cap.to(hm) if cap is None else torch.minimum(cap, weight_cap.to(cap))
        return self._triangulate(self._assemble(hm, warped, plan), P, A, plan, undistort, view_logw, cap)

    def _fit_previous(self, previous: PreviousFrames | None, B: int, V: int) -> PreviousFrames | None:
        """`temporal_context.fit_previous` for this model's K, joints and heatmap size."""
        return fit_previous(previous, self.config.temporal_context, B, V, self.num_joints, self.heatmap_size)

    def pose_at(self, heatmaps: torch.Tensor, P: torch.Tensor, affines: torch.Tensor,
                times: torch.Tensor, valid: torch.Tensor, target_time: torch.Tensor, *,
                undistort: Callable[[torch.Tensor], torch.Tensor] | None = None,
                rig: StaticRig | None = None, previous: PreviousFrames | None = None,
                context_cache: ContextCache | None = None, weight_cap: torch.Tensor | None = None) -> PoseOutput:
        """The pose at `target_time` from one frame per view (streaming).

        heatmaps (B, V, J, h, w); P (B, V, 3, 4) pinhole image projections; affines (B, V, 2, 3)
        image -> heatmap; times (B, V) capture times, s; valid (B, V) bool (missing views False);
        target_time (B,) s. Pairwise configs need a valid view captured at target_time (within
        `time_tolerance_s`): it is the anchor. `undistort`: a callable mapping observed image px
        (..., V, J, 2) to pinhole px (`cameras.undistorter(cameras)`), or None for pinhole cameras.
        `rig`: indices from `precompute_rig` (static rig, fixed crops).
        `previous`: each view's earlier frames (`PreviousFrames`, K = config.temporal_context) for
        temporal-context configs; None = no history. Configs without temporal context ignore it.
        `context_cache`: a `ContextCache` whose `keys` name this call's frames: what earlier calls
        computed about the same frames' history is reused (streaming: the same result, faster).
        `weight_cap` (B, V, J): upper bounds of the DLT weights (e.g. joints a view only predicts).
        """
        self._check_inputs(heatmaps, P, affines, times, valid)
        B = heatmaps.shape[0]
        target_time = torch.as_tensor(target_time, dtype=torch.float64, device=heatmaps.device).reshape(-1)
        if target_time.shape != (B,):
            raise ValueError(f"target_time must be ({B},), got {tuple(target_time.shape)}")
        if rig is not None:
            self._check_rig(rig, P, affines)
        anchor = None
        if not self.time_conditioned:
            gap = (times.to(target_time) - target_time[:, None]).abs()
            gap = gap.masked_fill(~valid.bool(), float("inf"))
            best, anchor = gap.min(dim=1)
            bad = best > self.config.time_tolerance_s
            if bad.any():
                b = int(bad.nonzero()[0])
                raise ValueError(f"pairwise config {self.config.name!r}: target_time "
                                 f"{target_time[b].item():.6f} s matches no valid view's capture time "
                                 f"{times[b].tolist()} (batch item {b}); use a time-conditioned config")
        previous = self._fit_previous(previous, B, heatmaps.shape[1])
        out, _ = self._fuse(heatmaps, P, affines, times, valid, target_time, anchor, undistort, rig,
                            previous, context_cache, weight_cap)
        return out

    def forward_window(self, heatmaps: torch.Tensor, P: torch.Tensor, affines: torch.Tensor,
                       times: torch.Tensor, valid: torch.Tensor, *,
                       undistort: Callable[[torch.Tensor], torch.Tensor] | None = None,
                       rig: StaticRig | None = None, previous: PreviousFrames | None = None) -> WindowOutput:
        """Every view brought to every view's capture time: V poses per window (training, batch).

        Same inputs as `pose_at`; slot i is view i's capture time times[:, i]. A slot whose view is
        missing gets no pose with pairwise warps (its anchor is missing) and a pose from the frames
        nearest in time with the time-conditioned warp.
        """
        self._check_inputs(heatmaps, P, affines, times, valid)
        if rig is not None:
            self._check_rig(rig, P, affines)
        B, V = heatmaps.shape[:2]
        previous = self._fit_previous(previous, B, V)

        def per_slot(t: torch.Tensor) -> torch.Tensor:          # (B, ...) -> (B*V, ...), slot-major inside b
            return t[:, None].expand(B, V, *t.shape[1:]).reshape(B * V, *t.shape[1:])

        target = times.to(torch.float64).reshape(B * V)
        anchor = None if self.time_conditioned else torch.arange(V, device=heatmaps.device).repeat(B)
        out, uv_h = self._fuse(per_slot(heatmaps), per_slot(P), per_slot(affines), per_slot(times),
                               per_slot(valid), target, anchor, undistort, rig,
                               None if previous is None else PreviousFrames(*map(per_slot, previous)))

        def slots_last(t: torch.Tensor) -> torch.Tensor:        # (B*V_i, V_c, ...) -> (B, V_c, V_i, ...)
            return t.view(B, V, *t.shape[1:]).transpose(1, 2)

        def slots(t: torch.Tensor) -> torch.Tensor:             # (B*V_i, ...) -> (B, V_i, ...)
            return t.view(B, V, *t.shape[1:])

        return WindowOutput(slots_last(out.heatmaps), slots(out.points), slots(out.confidence),
                            slots(out.covariance), slots(out.num_views), slots_last(uv_h),
                            slots_last(out.peak), slots(out.reprojection_error))

    # --- weights --------------------------------------------------------------------------------
    def save(self, path: str | Path, *, include_backbone: bool = True) -> None:
        """Weights plus the config. `.safetensors` uses safetensors; other suffixes torch.save.
        Inference settings (`ModelConfig.INFERENCE_FIELDS`) are saved at their defaults: they belong
        to whoever runs the weights (node parameters, bench configs), not to the file."""
        path = Path(path)
        state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()
                 if include_backbone or not k.startswith("backbone.")}
        defaults = {f.name: f.default for f in fields(ModelConfig) if f.name in ModelConfig.INFERENCE_FIELDS}
        meta = {"format": FORMAT, "config": json.dumps(replace(self.config, **defaults).to_dict())}
        with written_atomically(path) as tmp:
            if path.suffix == ".safetensors":
                from safetensors.torch import save_file
                save_file(state, str(tmp), metadata=meta)
            else:
                torch.save({"meta": meta, "state_dict": state}, tmp)

    @classmethod
    def load(cls, path: str | Path, *, backbone: nn.Module | None = None,
             map_location: str | torch.device = "cpu") -> "DenseWarper":
        """Rebuild from `save`'s file. Backbone weights in the file are loaded into `backbone` when one
        is given (it must then match) and ignored otherwise."""
        path = Path(path)
        if path.suffix == ".safetensors":
            from safetensors import safe_open
            from safetensors.torch import load_file
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
            state = load_file(str(path), device=str(map_location))
        else:
            blob = torch.load(path, map_location=map_location, weights_only=True)
            meta, state = blob["meta"], blob["state_dict"]
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path}: not a DenseWarper weights file (format {meta.get('format')!r})")
        model = cls(ModelConfig.from_dict(json.loads(meta["config"])), backbone)
        if backbone is None:
            state = {k: v for k, v in state.items() if not k.startswith("backbone.")}
        model.load_state_dict(state, strict=True)
        return model.to(map_location)
