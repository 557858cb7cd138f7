"""TF.js graph model of MoveNet -> `MoveNet` config and state dict (no code from the files is run).

Used by scripts/fetch_movenet.py, which converts the npm package's graphs once into
models/movenet_<variant>.safetensors; test_movenet_parity.py runs the graphs in TF.js against the port.

The conversion is checked, not assumed: every conv node of the graph is matched to a `nn.Conv2d` of
the port by name (`_torch_name`), and its stride, padding, fused activation and (for the FPN
laterals) input are compared with the layer's; every float weight of the graph must be used exactly
once, and the decoder's index constants must be what `MoveNet.decode` rebuilds.
"""
from __future__ import annotations

import base64
import re
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .movenet import MoveNet, MoveNetConfig

# Nodes of the TF.js graph that the parity test and the converter refer to.
TF_PREFIX = "StatefulPartitionedCall/"
TF_OUTPUTS = {
    "heatmaps": "StatefulPartitionedCall/Sigmoid",
    "centre": "StatefulPartitionedCall/Sigmoid_1",
    "regress": "StatefulPartitionedCall/kpt_regress_0/conv2d_6/BiasAdd",
    "offsets": "StatefulPartitionedCall/kpt_offset_0/conv2d_7/BiasAdd",
    "keypoints": "Identity",
}
_EXTRACTOR = "center_net_mobile_net_v2fpn_feature_extractor/model_1/"
_CONV_OPS = {"_FusedConv2D", "FusedDepthwiseConv2dNative", "DepthwiseConv2dNative"}
# Module buffers holding constants of the graph (fp16-quantised there), by graph node.
_CONSTANTS = {
    "input_mean": "StatefulPartitionedCall/Reshape",
    "input_scale": "StatefulPartitionedCall/truediv",
    "input_shift": "StatefulPartitionedCall/sub_1/y",
    "centre_weight": "ConstantFolding/StatefulPartitionedCall/truediv_2_recip",
    "distance_bias": "StatefulPartitionedCall/add_5/y",
}


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
    n = n.removeprefix(_EXTRACTOR)
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
    shapes = {w["name"].removeprefix(TF_PREFIX).removeprefix(_EXTRACTOR): w["shape"]
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
    for node in model_json["modelTopology"]["node"]:
        if node["op"] in _CONV_OPS:
            _move_conv(node, modules, config, weights, state, used)
    for key, tf in _CONSTANTS.items():
        state[key] = torch.from_numpy(weights[tf]).reshape(params[key].shape).contiguous()
        used.add(tf)
    missing = set(params) - set(state)
    if missing:
        raise ValueError(f"graph left module tensors unset: {sorted(missing)}")
    _check_decoder_constants(weights, config.heatmap_size, used)
    unused = sorted(k for k, v in weights.items() if k not in used and v.dtype == np.float32)
    if unused:
        raise ValueError(f"graph float weights not used by the port: {unused}")
    for k, v in state.items():
        if tuple(v.shape) != tuple(params[k].shape):
            raise ValueError(f"{k}: converted shape {tuple(v.shape)} != module shape {tuple(params[k].shape)}")
    return config, state


def _move_conv(node: dict, modules: dict[str, nn.Module], config: MoveNetConfig,
               weights: dict[str, np.ndarray], state: dict[str, torch.Tensor], used: set[str]) -> None:
    """One conv node: check it against its module, add its kernel (and bias) to `state`."""
    path, conv = _conv_module(node, modules)
    fused = _decode_attr(node, "fused_ops")
    inputs = node["input"]
    source = _lateral_source(path, config)
    if source is not None and not inputs[0].endswith(source):
        raise ValueError(f"{node['name']!r} reads {inputs[0]!r}, the port feeds it from {source!r}")
    state[f"{path}.weight"] = _kernel_to_torch(node["op"], weights[inputs[1]])
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


def _conv_module(node: dict, modules: dict[str, nn.Module]) -> tuple[str, nn.Conv2d]:
    """The port's conv for a graph conv node, its stride and padding checked: (path, module)."""
    path = _torch_name(node["name"])
    if path is None:
        raise ValueError(f"graph conv node {node['name']!r} has no counterpart in MoveNet")
    stride = int(node["attr"]["strides"]["list"]["i"][1])
    if "?" in path:   # depthwise: index 0 when stride 1, 1 after the pad when stride 2
        path = path.replace("?", "1" if stride == 2 else "0")
    conv = modules.get(path)
    if not isinstance(conv, nn.Conv2d):
        raise TypeError(f"{node['name']!r} maps to {path!r}, which is not a Conv2d")
    if conv.stride[0] != stride:
        raise ValueError(f"{node['name']!r}: graph stride {stride}, module {path} stride {conv.stride}")
    pad = _decode_attr(node, "padding")[0]
    if conv.kernel_size[0] > 1 and pad != "SAME":
        raise ValueError(f"{node['name']!r}: padding {pad}, expected SAME")
    return path, conv


def _kernel_to_torch(op: str, kernel: np.ndarray) -> torch.Tensor:
    """TF kernel -> PyTorch weight: HWIO -> OIHW for convs, (H, W, C, mult) -> (C*mult, 1, H, W) for
    depthwise convs."""
    if op == "_FusedConv2D":
        w = torch.from_numpy(kernel).permute(3, 2, 0, 1)
    else:
        kh, kw, cin, mult = kernel.shape
        w = torch.from_numpy(kernel).permute(2, 3, 0, 1).reshape(cin * mult, 1, kh, kw)
    return w.contiguous()


def _check_decoder_constants(weights: dict[str, np.ndarray], h: int, used: set[str]) -> None:
    """The graph's decoder index constants, which `MoveNet.decode` rebuilds, must agree with it."""
    grid_y, grid_x = np.meshgrid(np.arange(h), np.arange(h), indexing="ij")
    expected = {
        "StatefulPartitionedCall/strided_slice_3": grid_y[..., None],      # row index grid
        "StatefulPartitionedCall/strided_slice_4": grid_x[..., None],      # column index grid
        "StatefulPartitionedCall/Reshape_13": np.full((1, 1, 1, 2), 1.0 / h),  # cells -> [0, 1]
    }
    for key, value in expected.items():
        if not np.allclose(weights[key], value, rtol=1e-3, atol=0):
            raise ValueError(f"decoder constant {key!r} differs from what decode() assumes")
        used.add(key)


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
