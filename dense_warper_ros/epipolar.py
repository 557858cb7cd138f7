"""Parameter-free epipolar heatmap exchange (the method's pipeline step 2: cross-view fill).

For every heatmap pixel p of view `cur`:
  1. map p to image pixels with the inverse crop affine A_cur^-1;
  2. back-project it at two depths (1 m and 5 m in the released code) with P_cur;
  3. project both points with A_oth P_oth into view `oth`'s heatmap, in homogeneous coordinates;
     p's epipolar line is their cross product l = q1 x q2. In closed form l = F_h p with F_h the
     fundamental matrix in heatmap pixels, whatever the two depths (`heatmap_fundamental`), which
     is how it is computed: one 3x3 product per pixel;
  4. sample `oth`'s heatmap at nearest pixels along the line, one sample per column where the line
     is at most 45 degrees from horizontal, one per row otherwise, and take the max with zero:
     E[cur <- oth](p) = max(0, max_q H_oth(q)).

Faithfulness: the released code samples both w points stepping x and h points stepping y and
computes them by dividing by the slope, which fails on vertical lines. Stepping along the dominant
direction only gives the same maximum (where |slope| <= 1 the y-stepped nearest pixels are among the
x-stepped ones, and vice versa) with half the work, and never divides by a value smaller than the
other coefficient, so vertical and horizontal lines are exact. The released code's samples in the
other direction mostly fall outside the heatmap, where its sampler reads zero, so in practice its
max is never below 0; here the zero is taken explicitly (`gather_max` clamps at 0), so E >= 0 by
construction, also where a heatmap is negative (a SimpleBaseline's background can be) and a line
stays inside.
Distortion is ignored, as in the released code (lines are pinhole lines in crop coordinates).

Cost: J x H*W x max(H, W) gathers per pair. For a static rig with fixed crops, `EpipolarSampler`
computes the indices once; `epipolar_exchange` recomputes them per call (moving crops).
"""
from __future__ import annotations

import torch

from .cameras import affines_to_3x3

MAX_GATHER_ELEMENTS = 1 << 25          # chunk the gather above this many sampled values


def _hw(size: int | tuple[int, int]) -> tuple[int, int]:
    H, W = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if H <= 0 or W <= 0:
        raise ValueError(f"heatmap size must be positive, got {size}")
    return H, W


def pixel_grid(H: int, W: int, *, dtype=torch.float64, device=None) -> torch.Tensor:
    """(H*W, 2) heatmap pixel centres (x, y), row-major (index = y * W + x)."""
    ys, xs = torch.meshgrid(torch.arange(H, dtype=dtype, device=device),
                            torch.arange(W, dtype=dtype, device=device), indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1)


def heatmap_fundamental(P_cur: torch.Tensor, A_cur: torch.Tensor, P_oth: torch.Tensor,
                        A_oth: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) matrix F_h mapping a homogeneous cur heatmap pixel to its epipolar line in oth's
    heatmap (steps 1-3 in closed form), computed in float64.

    With G_* = A_* P_* (world -> heatmap) and M = G_cur[:, :3], a heatmap pixel p back-projects to
    X = C + s M^-1 p (C the cur centre; s fixed by the depth), so q(s) = G_oth X = e + s B p with
    e = G_oth (C; 1) (the epipole) and B = G_oth[:, :3] M^-1. For two depths s1 != s2,
    q(s1) x q(s2) = (s2 - s1) [e]_x B p: the line through the two back-projected points does not
    depend on the depths chosen (1 m and 5 m in the released code), and F_h = [e]_x B is the
    fundamental matrix in heatmap pixels (H&Z 9.2.2).
    """
    f64 = dict(dtype=torch.float64)
    Gc = affines_to_3x3(A_cur.to(**f64)) @ P_cur.to(**f64)      # (..., 3, 4)
    Go = affines_to_3x3(A_oth.to(**f64)) @ P_oth.to(**f64)
    M = Gc[..., :3]
    C = -torch.linalg.solve(M, Gc[..., 3:])                      # (..., 3, 1) cur centre
    e = Go[..., :3] @ C + Go[..., 3:]                            # (..., 3, 1) epipole
    B = torch.linalg.solve(M.mT, Go[..., :3].mT).mT              # (..., 3, 3) G_oth[:, :3] M^-1
    F = torch.linalg.cross(e.expand_as(B), B, dim=-2)            # [e]_x B, column by column
    return F / F.flatten(-2).norm(dim=-1).clamp_min(1e-300)[..., None, None]   # 0 for cur == oth


def epipolar_lines(P_cur: torch.Tensor, A_cur: torch.Tensor, P_oth: torch.Tensor,
                   A_oth: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """Epipolar lines in `oth`'s heatmap of every pixel of `cur`'s heatmap.

    P_*: (..., 3, 4) pinhole image projections; A_*: (..., 2, 3) image -> heatmap affines;
    -> (..., H*W, 3) lines (a, b, c), a x + b y + c = 0 in oth heatmap px, row-major over cur
    pixels, float64.
    """
    H, W = _hw(size)
    F = heatmap_fundamental(P_cur, A_cur, P_oth, A_oth)          # (..., 3, 3)
    grid = pixel_grid(H, W, device=F.device)                     # (HW, 2)
    ph = torch.cat([grid, torch.ones_like(grid[:, :1])], dim=-1)  # (HW, 3)
    return ph @ F.transpose(-1, -2)                              # (..., HW, 3)


def _dominant_samples(lines: torch.Tensor, H: int, W: int):
    """Shared by `line_samples` and `line_indices`: per line the stepping direction and, per step t,
    the rounded other coordinate. lines (..., N, 3) -> step_x (..., N), other (..., N, L),
    inside (..., N, L); L = max(H, W)."""
    L = max(H, W)
    a, b, c = lines.unbind(-1)                                   # (..., N)
    step_x = b.abs() >= a.abs()
    den = torch.where(step_x, b, a)                              # the larger coefficient
    degenerate = den == 0                                        # a = b = 0: the pixel sees oth's centre
    den = torch.where(degenerate, torch.ones_like(den), den)
    slope = torch.where(step_x, a, b) / den                      # |slope| <= 1
    t = torch.arange(L, dtype=lines.dtype, device=lines.device)  # (L,)
    other = torch.round(-(slope[..., None] * t + (c / den)[..., None]))     # (..., N, L)
    lim_other = torch.where(step_x, H - 1, W - 1)[..., None]     # bound of the rounded coordinate
    lim_t = torch.where(step_x, W, H)[..., None]                 # number of steps
    inside = (other >= 0) & (other <= lim_other) & (t < lim_t) & ~degenerate[..., None]
    return step_x, other, inside


def line_samples(lines: torch.Tensor, size: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest-pixel samples along lines (step 4).

    lines (..., N, 3) -> points (..., N, L, 2) integer-valued (x, y) and inside (..., N, L) bool,
    L = max(H, W). A line with |b| >= |a| gets one sample per column (x = 0..W-1, y = -(a x + c)/b),
    otherwise one per row; a degenerate line (a = b = 0: the pixel sees `oth`'s centre) gets none.
    """
    H, W = _hw(size)
    step_x, other, inside = _dominant_samples(lines, H, W)
    t = torch.arange(max(H, W), dtype=lines.dtype, device=lines.device).expand_as(other)
    x = torch.where(step_x[..., None], t, other)
    y = torch.where(step_x[..., None], other, t)
    return torch.stack([x, y], dim=-1), inside


def line_indices(lines: torch.Tensor, size: int | tuple[int, int]) -> torch.Tensor:
    """lines (..., N, 3) -> (..., N, L) int64 flat indices y * W + x, H*W for outside samples."""
    H, W = _hw(size)
    step_x, other, inside = _dominant_samples(lines, H, W)
    t = torch.arange(max(H, W), device=lines.device)
    o = other.long()
    idx = torch.where(step_x[..., None], o * W + t, t * W + o)
    return torch.where(inside, idx, torch.full_like(idx, H * W))


def gather_max(heatmaps: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Max of heatmaps along precomputed lines, and of zero (step 4).

    heatmaps (..., J, H, W) and index (..., H*W, L) with broadcastable leading dims (an index without
    leading dims serves every batch element) -> (..., J, H, W), >= 0 everywhere. Differentiable in
    the heatmaps (no gradient where the zero wins).
    """
    H, W = heatmaps.shape[-2:]
    J = heatmaps.shape[-3]
    if index.shape[-2] != H * W:
        raise ValueError(f"index is for {index.shape[-2]} pixels, heatmaps are {H}x{W}")
    batch = torch.broadcast_shapes(heatmaps.shape[:-3], index.shape[:-2])
    HW = H * W
    hm = heatmaps.expand(*batch, J, H, W).reshape(-1, J, HW)     # (N, J, HW)
    N = hm.shape[0]
    # one row of J values per (item, pixel) plus a zero row per item: a row gather reads J
    # contiguous values, and the max over the L samples runs across whole rows (vectorised),
    # several times faster on a CPU than a gather per value and a max over the innermost axis
    table = torch.cat([hm.transpose(1, 2), hm.new_zeros(N, 1, J)], dim=1).reshape(N * (HW + 1), J)
    idx = index.expand(*batch, *index.shape[-2:]).reshape(-1, HW, index.shape[-1])   # (N, HW, L)
    L = idx.shape[-1]
    idx = idx + (torch.arange(N, device=idx.device) * (HW + 1))[:, None, None]       # rows of `table`
    rows = max(1, MAX_GATHER_ELEMENTS // max(1, N * J * L))      # pixels per chunk
    parts = []
    for r0 in range(0, HW, rows):
        ix = idx[:, r0:r0 + rows].transpose(1, 2)                # (N, L, R)
        R = ix.shape[-1]
        parts.append(table.index_select(0, ix.reshape(-1)).view(N, L, R, J).amax(1))   # (N, R, J)
    out = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]                      # (N, HW, J)
    # the zero every line's max includes: outside samples read the pad, lines wholly inside do not
    return out.clamp_min(0).transpose(1, 2).reshape(*batch, J, H, W)


class EpipolarSampler:
    """Sampling indices for fixed cameras and crops, computed once (static rig, fixed crops).

    P_cur, P_oth: (..., 3, 4); A_cur, A_oth: (..., 2, 3) -> a sampler of leading shape `...`
    (e.g. (V*(V-1),) for every ordered pair of a rig). Calling it on `oth`'s heatmaps
    (..., J, H, W) returns E[cur <- oth] (..., J, H, W).
    """

    def __init__(self, P_cur: torch.Tensor, A_cur: torch.Tensor, P_oth: torch.Tensor,
                 A_oth: torch.Tensor, size: int | tuple[int, int]) -> None:
        self.size = _hw(size)
        self.lines = epipolar_lines(P_cur, A_cur, P_oth, A_oth, self.size)   # (..., HW, 3)
        self.index = line_indices(self.lines, self.size)         # (..., HW, L)

    @property
    def batch_shape(self) -> torch.Size:
        return self.index.shape[:-2]

    def to(self, device) -> "EpipolarSampler":
        self.lines, self.index = self.lines.to(device), self.index.to(device)
        return self

    def __call__(self, heatmaps_oth: torch.Tensor) -> torch.Tensor:
        if tuple(heatmaps_oth.shape[-2:]) != self.size:
            raise ValueError(f"heatmaps are {tuple(heatmaps_oth.shape[-2:])}, sampler built for "
                             f"{self.size}")
        return gather_max(heatmaps_oth, self.index.to(heatmaps_oth.device))


def epipolar_exchange(heatmaps_oth: torch.Tensor, P_cur: torch.Tensor, A_cur: torch.Tensor,
                      P_oth: torch.Tensor, A_oth: torch.Tensor) -> torch.Tensor:
    """E[cur <- oth]: heatmaps_oth (..., J, H, W) with per-item P (..., 3, 4), A (..., 2, 3)
    -> (..., J, H, W), indices computed on the fly (moving crops)."""
    size = tuple(heatmaps_oth.shape[-2:])
    lines = epipolar_lines(P_cur, A_cur, P_oth, A_oth, size)
    return gather_max(heatmaps_oth, line_indices(lines, size))
