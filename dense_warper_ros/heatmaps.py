"""Heatmap encode (Gaussian targets) and decode (the method's windowed soft-argmax).

Pixel convention (as `cameras.crop_affine`): heatmap pixel (x, y) = (column, row) has its centre at
integer coordinates, so a keypoint at uv = (3.0, 5.0) peaks exactly on column 3, row 5.

Decoding follows the released code (the method's pipeline step 5): hard argmax, then a softmax with
temperature 0.05 over a window around it, the expectation of the pixel coordinates under that
softmax; a joint whose peak <= 0.01 is invalid. The released window is a disc: the pixels within
width / 2 of the argmax, width = 5 sigma = 15 px at 96 x 96 (`window_shape="disc"`, the `paper`
configuration). `window_shape="square"` takes the 15 x 15 square around it instead (the `lite`
configurations: their weights were trained, and their decoder bias measured, with it). Both scale
the 15 px with the heatmap size. The spread (softmax standard deviation) is the 2D uncertainty proxy
the triangulation consumes.
"""
from __future__ import annotations

import torch

REFERENCE_SIZE = 96          # heatmap size at which the released window is 15 px
REFERENCE_HALF_WINDOW = 7    # 15 = 2 * 7 + 1
WINDOW_SHAPES = ("square", "disc")


def default_window(size: int) -> int:
    """Odd window side for a heatmap side `size`: 15 at 96, scaled linearly (9 at 48, 11 at 64)."""
    if size <= 0:
        raise ValueError(f"heatmap size must be > 0, got {size}")
    return 2 * max(1, round(REFERENCE_HALF_WINDOW * size / REFERENCE_SIZE)) + 1


def render_gaussians(uv: torch.Tensor, size: int, sigma: float,
                     valid: torch.Tensor | None = None) -> torch.Tensor:
    """Unit-peak Gaussian targets: uv (..., J, 2) heatmap px -> (..., J, size, size).

    Invalid joints (`valid` False, or non-finite uv) render as all zeros.
    """
    if uv.shape[-1] != 2:
        raise ValueError(f"uv must end in 2 (x, y), got shape {tuple(uv.shape)}")
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0 heatmap px, got {sigma}")
    ok = torch.isfinite(uv).all(-1)                              # (..., J)
    if valid is not None:
        ok = ok & valid.bool()
    uv0 = torch.where(ok[..., None], uv, torch.zeros_like(uv))
    r = torch.arange(size, dtype=uv.dtype, device=uv.device)
    gx = torch.exp(-(r - uv0[..., 0, None]) ** 2 / (2 * sigma ** 2))   # (..., J, W)
    gy = torch.exp(-(r - uv0[..., 1, None]) ** 2 / (2 * sigma ** 2))   # (..., J, H)
    hm = gy[..., :, None] * gx[..., None, :]                     # (..., J, H, W)
    return hm * ok[..., None, None].to(hm.dtype)


def soft_argmax(hm: torch.Tensor, window: int | None = None, temperature: float = 0.05,
                min_peak: float = 0.01, window_shape: str = "square"
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Windowed soft-argmax: hm (..., J, H, W) -> (uv, peak, valid, spread).

    uv (..., J, 2) heatmap px (x, y); peak (..., J) the heatmap maximum (the confidence);
    valid (..., J) bool, peak > min_peak; spread (..., J) px, the softmax standard deviation
    sqrt((var_x + var_y) / 2). Differentiable in the heatmap values (the argmax only picks the
    window). `window` is the odd window width; None scales the method's 15 px at 96 with H and W.
    `window_shape`: "square" (window x window px) or "disc" (the released code's: pixels at most
    window / 2 from the argmax; an ellipse of the two widths when H and W give different ones).
    Computed and returned in float32 at least: the softmax of value / 0.05 needs it, and half
    precision would round coordinates near 96 px to 0.06 px.
    """
    if hm.dim() < 3:
        raise ValueError(f"heatmaps must be (..., J, H, W), got shape {tuple(hm.shape)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if window_shape not in WINDOW_SHAPES:
        raise ValueError(f"window_shape must be one of {WINDOW_SHAPES}, got {window_shape!r}")
    H, W = hm.shape[-2:]
    if window is None:
        ry, rx = default_window(H) // 2, default_window(W) // 2
    else:
        if window < 1 or window % 2 == 0:
            raise ValueError(f"window must be a positive odd number of px, got {window}")
        ry = rx = window // 2
    x = hm.float() if hm.dtype in (torch.float16, torch.bfloat16) else hm
    flat = x.flatten(-2)                                         # (..., J, H*W)
    peak, arg = flat.max(dim=-1)                                 # (..., J)
    ay = torch.div(arg, W, rounding_mode="floor")
    ax = arg - ay * W
    dy = torch.arange(-ry, ry + 1, device=x.device)
    dx = torch.arange(-rx, rx + 1, device=x.device)
    py = (ay[..., None] + dy)[..., :, None]                      # (..., J, wy, 1) window rows
    px = (ax[..., None] + dx)[..., None, :]                      # (..., J, 1, wx) window columns
    inside = (py >= 0) & (py < H) & (px >= 0) & (px < W)        # (..., J, wy, wx)
    if window_shape == "disc":   # (dx / (rx + 1/2))^2 + (dy / (ry + 1/2))^2 <= 1, in integers
        ey, ex = (2 * ry + 1) ** 2, (2 * rx + 1) ** 2
        inside = inside & ((2 * dy[:, None]) ** 2 * ex + (2 * dx[None, :]) ** 2 * ey <= ex * ey)
    inside = inside.flatten(-2)                                  # (..., J, wy*wx)
    idx = (py.clamp(0, H - 1) * W + px.clamp(0, W - 1)).flatten(-2)
    logits = (flat.gather(-1, idx) / temperature).masked_fill(~inside, float("-inf"))
    p = torch.softmax(logits, dim=-1).unflatten(-1, (2 * ry + 1, 2 * rx + 1))   # (..., J, wy, wx)
    pyf, pxf = py.to(x.dtype), px.to(x.dtype)
    prow, pcol = p.sum(-1, keepdim=True), p.sum(-2, keepdim=True)  # marginals (..., J, wy, 1), (.., 1, wx)
    my = (prow * pyf).sum((-2, -1))                              # (..., J)
    mx = (pcol * pxf).sum((-2, -1))
    var = ((pcol * (pxf - mx[..., None, None]) ** 2).sum((-2, -1))
           + (prow * (pyf - my[..., None, None]) ** 2).sum((-2, -1))) / 2
    uv = torch.stack([mx, my], dim=-1)
    spread = var.clamp_min(1e-12).sqrt()          # finite gradient for a one-hot window
    return uv, peak, peak > min_peak, spread


def compose_affines(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """(..., 2, 3) affines -> A after B, (..., 2, 3): x -> A (B x)."""
    L = A[..., :2, :2] @ B[..., :2, :2]                          # (..., 2, 2)
    t = (A[..., :2, :2] @ B[..., :2, 2:3])[..., 0] + A[..., :2, 2]   # (..., 2)
    return torch.cat([L, t[..., None]], dim=-1)


def resample_to_crop(hm: torch.Tensor, src_affines: torch.Tensor, dst_affines: torch.Tensor,
                     size: int | None = None) -> torch.Tensor:
    """A heatmap rendered in one crop, seen through another crop of the same camera.

    Why: a view's earlier frame was cropped around the root of that instant, so its heatmap pixels
    do not line up with the current frame's; before the warp compares the two, the earlier heatmap
    is moved into the current crop. hm (N, J, h, w) in the crops src_affines (N, 2, 3) (image ->
    src heatmap px) -> (N, J, size, size) in the crops dst_affines (N, 2, 3). Bilinear, zeros
    outside; pixel centres at integer coordinates (module doc), so a peak at image point u moves
    from src_affines(u) to dst_affines(u).
    """
    from .cameras import invert_affines
    N, J, h, w = hm.shape
    size = size or h
    M = compose_affines(src_affines.to(hm.dtype), invert_affines(dst_affines.to(hm.dtype)))   # dst -> src
    r = torch.arange(size, dtype=hm.dtype, device=hm.device)
    gy, gx = torch.meshgrid(r, r, indexing="ij")                 # (size, size) dst pixel centres
    pts = torch.stack([gx, gy], -1).reshape(1, -1, 2)            # (1, size*size, 2) (x, y)
    q = pts @ M[:, :, :2].transpose(-1, -2) + M[:, None, :, 2]   # (N, size*size, 2) src px
    grid = torch.stack([q[..., 0] * (2.0 / (w - 1)) - 1.0, q[..., 1] * (2.0 / (h - 1)) - 1.0], -1)
    out = torch.nn.functional.grid_sample(hm, grid.view(N, size, size, 2), mode="bilinear",
                                          padding_mode="zeros", align_corners=True)
    return out                                                   # (N, J, size, size)
