"""The released DenseWarper checkpoints' warps in this project's `paper` layout.

The released model (`MultiViewPose`) keeps its warps in a ModuleList `warp` of V*V modules and runs
warp[i] on the i-th ordered view pair (cur, oth), cur != oth, in the order of its two nested loops
(cur outer, oth inner): Y[cur at oth's time] = warp[i](H_cur, S[cur, oth]). Only the first V(V-1)
modules are ever run; the last V are built, saved and never used. Here that pair's warp is
`warps["{cur}_{oth}"]` (`DenseWarper._warp`: view c moved to its guide g's time).

Inside one released warp, with J heatmap channels, C trunk channels and B blocks:
  offset_feats.{b}.{conv1,bn1,conv2,bn2}.*     -> trunk.{b}.{conv1,bn1,conv2,bn2}.*
  offset_feats.0.downsample.{0,1}.*            -> trunk.0.shortcut.{0,1}.*   (1x1 conv + BN, J -> C)
  offsets{k}.weight  (2*9*J, C, 3, 3), no bias -> heads.{k-1}.weight   (dilation 3, 6, 12, 18, 24)
  deform_conv{k}.weight  (J, J, 3, 3)          -> kernels.{k-1}          (J offset groups, no bias)
Both lay the offsets out per group (joint), per tap (row-major), as (dy, dx), so the tensors are
copied as they are. The backbone (`resnet.*`, a SimpleBaseline) keeps SimpleBaseline's names:
`backbones.simple_baseline.load_simple_baseline(path, prefix="resnet.")` reads it.

Checkpoints are read as tensors only (`torch.load(weights_only=True)`, via
`simple_baseline.read_state_dict`: a bare state dict or one under 'state_dict', 'module.' removed).
The released Human3.6M model has J = 20 heatmap channels, of which its dataset's joint mapping
triangulates 17; the converted model keeps all 20 (`num_joints` = 20).
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import torch

from .model import DenseWarper, ModelConfig

RELEASED_DILATIONS = (3, 6, 12, 18, 24)   # offsets1..5 / deform_conv1..5
_WARP_KEY = re.compile(r"warp\.(\d+)\.(.+)")
_RENAMES = (   # (released name inside one warp, this project's), first match wins
    (re.compile(r"offset_feats\.(\d+)\.downsample\.([01])\.(.+)"), r"trunk.\1.shortcut.\2.\3"),
    (re.compile(r"offset_feats\.(\d+)\.((?:conv|bn)[12])\.(.+)"), r"trunk.\1.\2.\3"),
    (re.compile(r"offsets(\d)\.weight"), None),        # heads.{k-1}.weight
    (re.compile(r"deform_conv(\d)\.weight"), None),    # kernels.{k-1}
)


def released_pair_order(num_views: int) -> list[tuple[int, int]]:
    """(cur, oth) of the released warp[i], i = 0 .. V(V-1) - 1."""
    return [(c, o) for c in range(num_views) for o in range(num_views) if c != o]


def _rename(name: str) -> str:
    """One released warp's parameter name -> this project's TemporalWarp name."""
    for pattern, repl in _RENAMES:
        m = pattern.fullmatch(name)
        if m is None:
            continue
        if repl is not None:
            return m.expand(repl)
        k = int(m.group(1))
        if not 1 <= k <= len(RELEASED_DILATIONS):
            break
        return f"heads.{k - 1}.weight" if name.startswith("offsets") else f"kernels.{k - 1}"
    raise ValueError(f"unknown parameter {name!r} in a released warp")


def _warp_modules(state: dict[str, torch.Tensor]) -> int:
    idx = {int(m.group(1)) for k in state if (m := _WARP_KEY.fullmatch(k))}
    if not idx:
        raise ValueError("no 'warp.<i>.' keys: not a released DenseWarper state dict")
    return max(idx) + 1


def released_config(state: dict[str, torch.Tensor], **overrides) -> ModelConfig:
    """The `paper` configuration with the sizes a released state dict has (views, heatmap channels,
    trunk width and depth); other fields (heatmap_size, input_size, ...) from `overrides`."""
    n = _warp_modules(state)
    v = math.isqrt(n)                        # V*V modules as released, or V(V-1) if trimmed
    views = v if v * v == n else v + 1 if v * (v + 1) == n else None
    if views is None or views < 2:
        raise ValueError(f"{n} released warp modules: expected V*V (or V*(V-1)) for V >= 2 views")
    kernel = state.get("warp.0.deform_conv1.weight")
    head = state.get("warp.0.offsets1.weight")
    if kernel is None or head is None:
        raise ValueError("released warp 0 lacks deform_conv1.weight or offsets1.weight")
    J, C = int(kernel.shape[0]), int(head.shape[1])
    if tuple(kernel.shape) != (J, J, 3, 3) or tuple(head.shape) != (2 * 9 * J, C, 3, 3):
        raise ValueError(f"released warp 0: deform_conv1 {tuple(kernel.shape)} and offsets1 "
                         f"{tuple(head.shape)} are not (J, J, 3, 3) and (18 J, C, 3, 3)")
    heads = sum(1 for k in state if re.fullmatch(r"warp\.0\.offsets\d\.weight", k))
    if heads != len(RELEASED_DILATIONS):
        raise ValueError(f"released warp 0 has {heads} offset heads, expected {len(RELEASED_DILATIONS)}")
    blocks = sum(1 for k in state if re.fullmatch(r"warp\.0\.offset_feats\.\d+\.conv1\.weight", k))
    fields = dict(name="paper_released", num_views=views, num_joints=J, warp_channels=C,
                  warp_blocks=blocks, offset_dilations=RELEASED_DILATIONS, kernel_dilations=None,
                  offset_mode="per_tap", deform_kernel="full", offset_bias=False)
    fields.update(overrides)
    return ModelConfig.named("paper", **fields)


def convert_released_state_dict(state: dict[str, torch.Tensor],
                                config: ModelConfig | None = None) -> dict[str, torch.Tensor]:
    """The released warps' tensors under this project's `DenseWarper` names ("warps.{c}_{o}.*").

    state: the released model's state dict ('module.' removed); keys outside `warp.*` (backbone)
    and the never-run warp modules are left out. Every tensor of the model's warps must come from
    `state`, with its shape (ValueError naming what is missing, extra or mis-shaped), except BN's
    `num_batches_tracked`, which checkpoints of old PyTorch lack and no output depends on.
    """
    config = config or released_config(state)
    pairs = released_pair_order(config.num_views)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        m = _WARP_KEY.fullmatch(key)
        if m is None or int(m.group(1)) >= len(pairs):
            continue
        c, o = pairs[int(m.group(1))]
        out[f"warps.{c}_{o}.{_rename(m.group(2))}"] = value
    with torch.device("meta"):
        want = DenseWarper(config).state_dict()
    want = {k: v for k, v in want.items() if k.startswith("warps.")}
    missing = [k for k in want if k not in out and not k.endswith("num_batches_tracked")]
    extra = [k for k in out if k not in want]
    shapes = [f"{k} {tuple(out[k].shape)} != {tuple(want[k].shape)}"
              for k in want if k in out and out[k].shape != want[k].shape]
    if missing or extra or shapes:
        parts = [f"{what} ({len(xs)}): {', '.join(xs[:6])}" for what, xs in
                 (("missing", missing), ("unexpected", extra), ("wrong shape", shapes)) if xs]
        raise ValueError(f"released warps do not fit config {config.name!r}: " + "; ".join(parts))
    for k in want:
        if k not in out:                                           # num_batches_tracked only
            out[k] = torch.zeros((), dtype=torch.long)
    return out


def load_released(source: str | Path | dict[str, torch.Tensor], *, backbone: torch.nn.Module | None = None,
                  **overrides) -> DenseWarper:
    """A `paper`-layout DenseWarper (eval mode) holding a released checkpoint's warps.

    source: the checkpoint file or its state dict; `overrides`: config fields the file cannot tell
    (heatmap_size, input_size, ...). The backbone is not converted here (see the module doc).
    """
    if isinstance(source, dict):
        state = {k.removeprefix("module."): v for k, v in source.items()}
    else:
        from .backbones.simple_baseline import read_state_dict
        state = read_state_dict(source)
    config = released_config(state, **overrides)
    model = DenseWarper(config, backbone)
    converted = convert_released_state_dict(state, config)
    model.warps.load_state_dict({k.removeprefix("warps."): v for k, v in converted.items()}, strict=True)
    return model.eval()
