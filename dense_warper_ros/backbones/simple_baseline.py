"""SimpleBaseline (Xiao et al., ECCV 2018): ResNet + 3 deconvolutions, the paper's 2D backbone.

Why here: DenseWarper's reported numbers use a ResNet-152 SimpleBaseline trained on Human3.6M +
MPII (384 x 384 crop -> 96 x 96 heatmaps). No such weights install from a registry, so this module
only has to load a user's checkpoint, weights only (`torch.load(weights_only=True)` or safetensors),
with a strict key check. Written here from the paper's description (no torchvision).

Layout (state-dict names follow the original SimpleBaseline release, so its checkpoints load):
  conv1 7x7/2 -> bn1 -> ReLU -> maxpool 3x3/2
  layer1..layer4: Bottleneck blocks (1x1, 3x3 with the stride, 1x1 x4; BN; projection shortcut
    `downsample` = 1x1 conv + BN when shape changes), (3, 8, 36, 3) blocks for ResNet-152
  deconv_layers: 3 x [ConvTranspose2d 4x4/2 (pad 1, no bias), BN, ReLU], 256 channels: stride 32 -> 4
  final_layer: 1x1 conv to J heatmaps (no activation)
Input (B, 3, S, S) RGB in [0, 255], normalised with the ImageNet mean/std inside the module.
Heatmap cell i sits at input pixel stride * i (SimpleBaseline's target: mu = int(u / stride + 0.5)).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class SimpleBaselineConfig:
    """Shape of the network; the defaults are the paper's (ResNet-152, 384 -> 96, 17 joints)."""

    layers: tuple[int, int, int, int] = (3, 8, 36, 3)   # Bottleneck blocks per stage
    num_joints: int = 17                               # heatmap channels (H36M-17 order expected)
    input_size: int = 384                              # square input side, pixels
    deconv_channels: tuple[int, ...] = (256, 256, 256)  # one x2 deconvolution each
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)   # ImageNet, RGB in [0, 1]
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    heatmap_offset: float = 0.0   # cell i sits at input pixel stride*i + heatmap_offset*stride

    @property
    def stride(self) -> int:
        return 32 // 2 ** len(self.deconv_channels)

    @property
    def heatmap_size(self) -> int:
        return self.input_size // self.stride


class Bottleneck(nn.Module):
    """ResNet bottleneck, stride on the 3x3 conv (as SimpleBaseline's)."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                           if stride != 1 or cin != cout else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(y + shortcut)


class SimpleBaseline(nn.Module):
    """(B, 3, S, S) RGB [0, 255] -> (B, J, S/4, S/4) heatmaps."""

    def __init__(self, config: SimpleBaselineConfig = SimpleBaselineConfig()) -> None:
        super().__init__()
        if config.input_size % 32:
            raise ValueError(f"input_size must be a multiple of 32, got {config.input_size}")
        self.config = config
        self.conv1 = nn.Conv2d(3, 64, 7, 2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, padding=1)
        cin = 64
        stages = []
        for i, (n, width) in enumerate(zip(config.layers, (64, 128, 256, 512))):
            blocks = []
            for k in range(n):
                blocks.append(Bottleneck(cin, width, 2 if (k == 0 and i > 0) else 1))
                cin = width * Bottleneck.expansion
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        deconv: list[nn.Module] = []
        for cout in config.deconv_channels:
            deconv += [nn.ConvTranspose2d(cin, cout, 4, 2, padding=1, output_padding=0, bias=False),
                       nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            cin = cout
        self.deconv_layers = nn.Sequential(*deconv)
        self.final_layer = nn.Conv2d(cin, config.num_joints, 1)
        self.register_buffer("input_mean", torch.tensor(config.mean) * 255.0, persistent=False)
        self.register_buffer("input_std", torch.tensor(config.std) * 255.0, persistent=False)

    @property
    def input_size(self) -> int:
        return self.config.input_size

    @property
    def heatmap_size(self) -> int:
        return self.config.heatmap_size

    @property
    def heatmap_from_input(self) -> np.ndarray:
        """(2, 3) affine, input pixels -> heatmap cells (cell i at input pixel stride * i)."""
        s = float(self.config.stride)
        b = -self.config.heatmap_offset
        return np.array([[1 / s, 0.0, b], [0.0, 1 / s, b]])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        S = self.config.input_size
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[2] != S or images.shape[3] != S:
            raise ValueError(f"SimpleBaseline expects (B, 3, {S}, {S}), got {tuple(images.shape)}")
        x = (images - self.input_mean[:, None, None]) / self.input_std[:, None, None]
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))        # (B, 64, S/4, S/4)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))   # (B, 2048, S/32, S/32)
        return self.final_layer(self.deconv_layers(x))              # (B, J, S/4, S/4)

    @staticmethod
    def decode(heatmaps: torch.Tensor) -> torch.Tensor:
        """(B, J, h, w) -> (B, J, 3): argmax moved a quarter cell toward the higher neighbour
        (SimpleBaseline's decoding), in heatmap cells, and the peak value as the score."""
        B, J, h, w = heatmaps.shape
        flat = heatmaps.reshape(B, J, -1)
        score, idx = flat.max(dim=2)
        y, x = idx // w, idx % w
        hm = heatmaps.reshape(B * J, h, w)
        yy, xx = y.reshape(-1), x.reshape(-1)
        n = torch.arange(B * J, device=heatmaps.device)
        dx = hm[n, yy, (xx + 1).clamp(max=w - 1)] - hm[n, yy, (xx - 1).clamp(min=0)]
        dy = hm[n, (yy + 1).clamp(max=h - 1), xx] - hm[n, (yy - 1).clamp(min=0), xx]
        px = xx.to(heatmaps.dtype) + 0.25 * torch.sign(dx)
        py = yy.to(heatmaps.dtype) + 0.25 * torch.sign(dy)
        return torch.stack([px.reshape(B, J), py.reshape(B, J), score], dim=-1)


# --------------------------------------------------------------------------------------------
# Checkpoints: weights only, strict
# --------------------------------------------------------------------------------------------
def read_state_dict(path: str | Path, *, prefix: str = "") -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint, no code executed: .safetensors, or torch.load(weights_only=True).

    Accepts a bare state dict or one under 'state_dict' / 'model'; strips DataParallel's 'module.';
    keeps only keys under `prefix` (e.g. 'backbone.') and strips it.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint {path} not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        sd = load_file(str(path))
    else:
        sd = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(sd, dict) and not all(isinstance(v, torch.Tensor) for v in sd.values()):
            for key in ("state_dict", "model"):
                if isinstance(sd.get(key), dict):
                    sd = sd[key]
                    break
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError(f"{path}: expected a state dict of tensors, got {type(sd).__name__}")
    sd = {k.removeprefix("module."): v for k, v in sd.items()}
    if prefix:
        sd = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
        if not sd:
            raise ValueError(f"{path}: no key starts with prefix {prefix!r}")
    return sd


def config_from_state_dict(sd: dict[str, torch.Tensor], **overrides) -> SimpleBaselineConfig:
    """Depth, joints and deconv widths as the checkpoint has them (input size etc. from overrides)."""
    layers = []
    for i in range(1, 5):
        idx = {int(m.group(1)) for k in sd if (m := re.match(rf"layer{i}\.(\d+)\.", k))}
        if not idx:
            raise ValueError(f"checkpoint has no layer{i}.* keys: not a SimpleBaseline ResNet")
        layers.append(max(idx) + 1)
    if "final_layer.weight" not in sd:
        raise ValueError("checkpoint has no final_layer.weight: not a SimpleBaseline")
    deconv = tuple(int(v.shape[1]) for k, v in sorted(
        ((k, v) for k, v in sd.items() if re.fullmatch(r"deconv_layers\.\d+\.weight", k) and v.ndim == 4),
        key=lambda kv: int(kv[0].split(".")[1])))
    fields = {"layers": tuple(layers), "num_joints": int(sd["final_layer.weight"].shape[0]),
                  "deconv_channels": deconv}
    fields.update(overrides)
    return SimpleBaselineConfig(**fields)


def load_state_dict_strict(model: nn.Module, sd: dict[str, torch.Tensor], *, source: str = "checkpoint") -> None:
    """load_state_dict with an error that lists missing, unexpected and mis-shaped keys."""
    own = model.state_dict()
    missing = [k for k in own if k not in sd and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in sd if k not in own]
    shapes = [f"{k}: checkpoint {tuple(sd[k].shape)} != model {tuple(own[k].shape)}"
              for k in own if k in sd and sd[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        def head(xs: list[str]) -> str:
            return ", ".join(xs[:8]) + (f", ... ({len(xs)} in all)" if len(xs) > 8 else "")
        parts = [f"{name} ({len(xs)}): {head(xs)}" for name, xs in
                 (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)) if xs]
        raise ValueError(f"{source} does not match SimpleBaseline {model.config.layers}: " + "; ".join(parts))
    full = {**{k: v for k, v in own.items() if k.endswith("num_batches_tracked")}, **sd}
    model.load_state_dict(full, strict=True)


def load_simple_baseline(path: str | Path, *, prefix: str = "", device: str | torch.device = "cpu",
                         **config_overrides) -> SimpleBaseline:
    """A SimpleBaseline from a user's checkpoint (weights only), in eval mode."""
    sd = read_state_dict(path, prefix=prefix)
    config = config_from_state_dict(sd, **config_overrides)
    model = SimpleBaseline(config)
    load_state_dict_strict(model, sd, source=str(path))
    return model.to(device).eval()
