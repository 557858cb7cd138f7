"""From camera images to Human3.6M-17 heatmaps with the crop affine the epipolar exchange needs.

Why this module: the fusion maths (epipolar exchange, triangulation) works on heatmaps in the
Human3.6M-17 order and needs, for every heatmap, the affine A that maps image pixels to heatmap cells
(`cameras.py` convention: pixel i covers [i - 0.5, i + 0.5]). The backbones differ in input size,
skeleton and where their heatmap cells sit; `Backbone2D` hides that.

Pipeline of `Backbone2D.__call__(images, boxes=None)`, B images:
 1. crop affine `A_in` (2, 3), image -> network input pixels: the whole frame letterboxed into the
    square input (`letterbox_affine`), or a square around each given box (`box_affine`);
 2. the crop, resampled with anti-aliasing (`warp_to_input`), RGB uint8 -> (B, 3, S, S) float;
 3. the network; heatmaps (B, J, h, w);
 4. `A = heatmap_from_input @ A_in` (image -> heatmap cells; per-backbone input -> heatmap map);
 5. keypoints decoded in heatmap cells, mapped to image pixels with A^-1;
 6. MoveNet only: COCO-17 -> H36M-17 (`coco_to_h36m_keypoints`, `coco_to_h36m_heatmaps`).

Derived joints (MoveNet has no pelvis, spine, thorax or head top). Choice: from decoded points, not
as heatmap combinations (the mean of two hip heatmaps is bimodal; its argmax is a hip, not the
pelvis). pelvis = mid-hips, thorax = mid-shoulders, spine = mid(pelvis, thorax), each scored by the
min of its parents' scores; head top = ear midpoint + 1.0 x (ear midpoint - thorax) (eye
midpoint + 0.7 x (eye midpoint - thorax) when the eyes score higher), a rough estimate scored x 0.5.
Their heatmap channels are Gaussians (sigma `derived_sigma` cells, about a MoveNet peak's width) at
the derived point, with the score as the peak; the 13 direct channels are MoveNet's own sigmoid
heatmaps, differentiable end to end (call `forward_inputs` outside inference mode to train).

Heatmaps live in the pixels of the image as captured (distorted); undistort decoded points with
`Camera.undistort_points` before pinhole geometry, as the rest of the package does.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from ..cameras import affine_to_3x3, apply_affine, crop_affine, invert_affine
from ..heatmaps import render_gaussians
from ..skeleton import COCO_TO_H36M, NUM_JOINTS
from .movenet import MoveNet, load_movenet
from .onnx_runtime import INFERENCE_CHOICES, movenet_runner
from .simple_baseline import SimpleBaseline

# COCO indices used by the derived joints.
_L_EYE, _R_EYE, _L_EAR, _R_EAR, _L_SH, _R_SH = 1, 2, 3, 4, 5, 6
_L_HIP, _R_HIP = 11, 12
# H36M indices of the derived joints.
H36M_DERIVED = {"pelvis": 0, "spine": 7, "thorax": 8, "head": 10}
# Head top = head centre + k x (head centre - thorax); adult anthropometry: the vertex is about as far
# above the ears (tragion) as the ears are above the shoulders, and ~0.7x that above the eyes.
HEAD_EXTENSION_EARS = 1.0
HEAD_EXTENSION_EYES = 0.7
HEAD_SCORE_FACTOR = 0.5   # the head top is a guess: lower its confidence


# --------------------------------------------------------------------------------------------
# Crops
# --------------------------------------------------------------------------------------------
def letterbox_affine(width: int, height: int, size: int) -> np.ndarray:
    """(2, 3) image -> input affine that fits the whole W x H frame into a size x size square,
    centred, aspect kept (MoveNet's own resize-with-pad)."""
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be > 0, got {width}x{height}")
    return crop_affine(((width - 1) / 2, (height - 1) / 2), float(max(width, height)), size)


def box_affine(box_xyxy: Sequence[float], size: int, *, margin: float = 1.0) -> np.ndarray:
    """(2, 3) image -> input affine for a box [x_min, y_min, x_max, y_max] (image pixels): the square
    of side margin x max(box w, box h) centred on the box, so nothing in the box is cut off."""
    x0, y0, x1, y1 = (float(v) for v in box_xyxy)
    side = margin * max(x1 - x0, y1 - y0)
    if not np.isfinite(side) or side <= 0:
        raise ValueError(f"box must have x_max > x_min or y_max > y_min, got {list(box_xyxy)}")
    return crop_affine(((x0 + x1) / 2, (y0 + y1) / 2), side, size)


def boxes_from_keypoints(keypoints: np.ndarray, *, min_score: float = 0.2, margin: float = 1.3,
                         min_side: float = 32.0) -> np.ndarray:
    """(B, J, 3) image keypoints (x, y, score) -> (B, 4) boxes around the confident ones, grown by
    `margin` (a second, tighter pass; the node gets its boxes from the previous 3D pose instead).
    An image with fewer than 2 confident joints gets NaNs: pass it letterboxed."""
    kp = np.asarray(keypoints, dtype=np.float64)
    out = np.full((kp.shape[0], 4), np.nan)
    for b, k in enumerate(kp):
        pts = k[k[:, 2] >= min_score, :2]
        if len(pts) < 2:
            continue
        lo, hi = pts.min(0), pts.max(0)
        c, half = (lo + hi) / 2, max(max(hi - lo) * margin, min_side) / 2
        out[b] = [c[0] - half, c[1] - half, c[0] + half, c[1] + half]
    return out


def shrink_whole(image: np.ndarray, A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A large downscale of a whole frame (the detector's letterbox: 1920 px -> 256) in two steps:
    first an integer factor k by pixel averaging (OpenCV's fast integer INTER_AREA path: about 2 ms
    instead of 14 for a 1920x1088 frame), then `warp_to_input` on the small image with the
    returned affine. The last k - 1 rows and columns at most are dropped."""
    k = int(1.0 / float(A[0, 0]))
    if k < 2:
        return image, A
    h, w = image.shape[0] // k, image.shape[1] // k
    small = cv2.resize(image[:h * k, :w * k], (w, h), interpolation=cv2.INTER_AREA)
    # small pixel x' covers image pixels k x' .. k x' + k - 1: x = k x' + (k - 1) / 2
    up = np.array([[k, 0.0, (k - 1) / 2], [0.0, k, (k - 1) / 2], [0.0, 0.0, 1.0]])
    return small, (affine_to_3x3(A) @ up)[:2]


def warp_to_input(image: np.ndarray, A: np.ndarray, size: int) -> np.ndarray:
    """Resample the square crop of `image` (H, W, C) under A (image -> input, scale + shift) to
    (size, size, C), zeros outside the image. Downscaling goes through INTER_AREA (no aliasing at
    1920 -> 256), the remaining sub-pixel shift through bilinear warping.
    """
    A = np.asarray(A, dtype=np.float64)
    s = A[0, 0]
    if not (abs(A[0, 1]) < 1e-12 and abs(A[1, 0]) < 1e-12 and abs(A[1, 1] - s) < 1e-9 * s and s > 0):
        raise ValueError(f"crop affine must be an isotropic scale + shift, got {A.tolist()}")
    flags = {"flags": cv2.INTER_LINEAR, "borderMode": cv2.BORDER_CONSTANT, "borderValue": 0}
    if s >= 1.0:
        return cv2.warpAffine(image, A, (size, size), **flags)
    # Image region that lands in the crop, with a 2 px margin for the filters. It is not clipped to
    # the image (zeros outside), so its origin depends on the crop alone: an integer shift of image
    # and box gives the same crop, bit for bit.
    corners = apply_affine(invert_affine(A), np.array([[-0.5, -0.5], [size - 0.5, size - 0.5]]))
    x0, y0 = np.floor(corners[0]).astype(int) - 2
    x1, y1 = np.ceil(corners[1]).astype(int) + 3
    H, W = image.shape[:2]
    if (x1 - x0) * (y1 - y0) > 16 * H * W:   # a box far larger than the frame: clip the window
        x0, y0 = max(x0, -2), max(y0, -2)
        x1, y1 = min(x1, W + 2), min(y1, H + 2)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return np.zeros((size, size) + image.shape[2:], dtype=image.dtype)
    roi = _padded_region(image, x0, y0, x1, y1)
    w_small = max(1, round((x1 - x0) * s))
    h_small = max(1, round((y1 - y0) * s))
    small = cv2.resize(roi, (w_small, h_small), interpolation=cv2.INTER_AREA)
    # roi pixel u -> small pixel (u + 0.5) * k - 0.5 (cv2.resize's pixel-area alignment).
    kx, ky = w_small / (x1 - x0), h_small / (y1 - y0)
    R = np.array([[kx, 0, 0.5 * kx - 0.5], [0, ky, 0.5 * ky - 0.5]])
    R[:, 2] -= [kx * x0, ky * y0]                     # image pixel -> small pixel
    T = (affine_to_3x3(A) @ np.linalg.inv(affine_to_3x3(R)))[:2]   # small -> input
    return cv2.warpAffine(small, T, (size, size), **flags)


def _padded_region(image: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    """image[y0:y1, x0:x1] with zeros where the window leaves the image."""
    H, W = image.shape[:2]
    out = np.zeros((y1 - y0, x1 - x0) + image.shape[2:], dtype=image.dtype)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, W), min(y1, H)
    if sx1 > sx0 and sy1 > sy0:
        out[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return out


# --------------------------------------------------------------------------------------------
# COCO-17 -> Human3.6M-17
# --------------------------------------------------------------------------------------------
def coco_to_h36m_keypoints(coco: torch.Tensor) -> torch.Tensor:
    """(..., 17, 3) COCO keypoints (x, y, score) -> (..., 17, 3) Human3.6M-17 (see module doc).

    Works in any 2D frame that is affine to the image (heatmap cells or pixels); differentiable.
    """
    if coco.shape[-2:] != (17, 3):
        raise ValueError(f"expected (..., 17, 3) COCO keypoints, got {tuple(coco.shape)}")
    xy, sc = coco[..., :2], coco[..., 2]

    def mid(a: int, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        return (xy[..., a, :] + xy[..., b, :]) / 2, torch.minimum(sc[..., a], sc[..., b])

    pelvis, s_pelvis = mid(_L_HIP, _R_HIP)
    thorax, s_thorax = mid(_L_SH, _R_SH)
    spine, s_spine = (pelvis + thorax) / 2, torch.minimum(s_pelvis, s_thorax)
    ears, s_ears = mid(_L_EAR, _R_EAR)
    eyes, s_eyes = mid(_L_EYE, _R_EYE)
    use_ears = (s_ears >= s_eyes)[..., None]
    centre = torch.where(use_ears, ears, eyes)
    s_centre = torch.maximum(s_ears, s_eyes)
    k = torch.where(use_ears, HEAD_EXTENSION_EARS, HEAD_EXTENSION_EYES).to(xy.dtype)
    head = centre + k * (centre - thorax)
    s_head = HEAD_SCORE_FACTOR * torch.minimum(s_centre, s_thorax)
    derived = {0: (pelvis, s_pelvis), 7: (spine, s_spine), 8: (thorax, s_thorax), 10: (head, s_head)}
    joints = []
    for j in range(NUM_JOINTS):
        if j in COCO_TO_H36M:
            joints.append(coco[..., COCO_TO_H36M[j], :])
        else:
            p, s = derived[j]
            joints.append(torch.cat([p, s[..., None]], dim=-1))
    return torch.stack(joints, dim=-2)


def coco_to_h36m_heatmaps(heatmaps: torch.Tensor, h36m_cells: torch.Tensor, *,
                          sigma: float = 1.5) -> torch.Tensor:
    """(B, 17, h, h) COCO heatmaps + (B, 17, 3) H36M keypoints in heatmap cells (x, y, score) ->
    (B, 17, h, h) H36M heatmaps: direct joints copied, derived joints rendered as Gaussians
    (`heatmaps.render_gaussians`) with the score as the peak (module doc)."""
    B, J, h, w = heatmaps.shape
    if J != 17 or h != w or h36m_cells.shape != (B, NUM_JOINTS, 3):
        raise ValueError(f"expected square (B, 17, h, h) and (B, 17, 3), got {tuple(heatmaps.shape)} and "
                         f"{tuple(h36m_cells.shape)}")
    derived = sorted(H36M_DERIVED.values())
    cells = h36m_cells[:, derived]                                     # (B, 4, 3): x, y cells + score
    rendered = render_gaussians(cells[..., :2], h, sigma) * cells[..., 2, None, None]   # (B, 4, h, w)
    channels = []
    for j in range(NUM_JOINTS):
        if j in COCO_TO_H36M:
            channels.append(heatmaps[:, COCO_TO_H36M[j]])
        else:
            channels.append(rendered[:, derived.index(j)])
    return torch.stack(channels, dim=1)


# --------------------------------------------------------------------------------------------
# The wrapper
# --------------------------------------------------------------------------------------------
@dataclass
class Backbone2DOutput:
    """Result for B images. Joints in Human3.6M-17 order (skeleton.H36M_JOINTS)."""

    heatmaps: torch.Tensor      # (B, 17, h, w) float32, on the model's device
    affines: np.ndarray         # (B, 2, 3) float64, image pixels -> heatmap cells
    keypoints: np.ndarray       # (B, 17, 3) float64, (x, y) image pixels + score
    input_affines: np.ndarray   # (B, 2, 3) float64, image pixels -> network input pixels
    keypoints_coco: np.ndarray | None = None   # (B, 17, 3) MoveNet's own COCO-17 keypoints, image px


class Backbone2D:
    """A 2D pose backbone behind one call: RGB images (+ optional boxes) -> H36M-17 heatmaps.

    `Backbone2D.movenet("thunder")` (default, pretrained, from models/) or
    `Backbone2D.simple_baseline(checkpoint)` (the paper's ResNet-152, a user's H36M weights).

    `runner` (optional) runs the network in place of `model` during inference, with the module's
    call signature (e.g. `onnx_runtime.OrtMoveNet`); `model` still supplies sizes, the heatmap affine
    and decoding, and runs whenever gradients are on, so training stays differentiable.
    """

    def __init__(self, model: MoveNet | SimpleBaseline, *, derived_sigma: float = 1.5,
                 device: str | torch.device | None = None,
                 runner: Callable[[torch.Tensor], object] | None = None, inference: str = "torch") -> None:
        if not isinstance(model, (MoveNet, SimpleBaseline)):
            raise TypeError(f"model must be MoveNet or SimpleBaseline, got {type(model).__name__}")
        self.model = model if device is None else model.to(device)
        self.model.eval()
        self.derived_sigma = float(derived_sigma)
        self.runner = runner
        # what runs the network, for logs: "torch", "torch (auto: <why not onnxruntime>)",
        # "onnxruntime (CPUExecutionProvider, 1 thread(s))"
        self.inference = inference

    @classmethod
    def movenet(cls, variant: str = "thunder", *, models_dir: str | Path | None = None,
                device: str | torch.device = "cpu", inference: str = "torch", cpu_threads: int = 1,
                **kw) -> Backbone2D:
        """`inference`: torch | onnxruntime | auto (`onnx_runtime.movenet_runner`); `cpu_threads`:
        ONNX Runtime's intra-op threads on the CPU (0 = its default; torch's are set process-wide)."""
        d = None if models_dir is None else Path(models_dir)
        model = load_movenet(variant, models_dir=d, device=device)
        runner, what = movenet_runner(inference, variant=variant, device=torch.device(device),
                                      threads=cpu_threads, models_dir=d)
        return cls(model, runner=runner, inference=what, **kw)

    @classmethod
    def simple_baseline(cls, checkpoint: str | Path, *, device: str | torch.device = "cpu",
                        inference: str = "torch", **kw) -> Backbone2D:
        """torch only: a user's checkpoint has no exported ONNX file (`auto` runs torch)."""
        if inference not in INFERENCE_CHOICES:
            raise ValueError(f"inference must be one of {INFERENCE_CHOICES}, got {inference!r}")
        if inference == "onnxruntime":
            raise ValueError("inference 'onnxruntime' runs the MoveNet backbones only (their ONNX files come "
                             "from `make setup`); backbone simple_baseline runs with torch: set inference to "
                             "'auto' or 'torch'")
        from .simple_baseline import load_simple_baseline
        return cls(load_simple_baseline(checkpoint, device=device), **kw)

    # --- sizes the caller builds around --------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def input_size(self) -> int:
        return self.model.input_size

    @property
    def heatmap_size(self) -> int:
        return self.model.heatmap_size

    # --- steps -------------------------------------------------------------------------------
    def input_affines(self, images: Sequence[np.ndarray], boxes: np.ndarray | None) -> np.ndarray:
        """(B, 2, 3) image -> input: letterbox where `boxes` is None or a row is NaN, else the box."""
        S = self.input_size
        out = []
        for b, img in enumerate(images):
            box = None if boxes is None else np.asarray(boxes[b], dtype=np.float64)
            if box is None or not np.all(np.isfinite(box)):
                out.append(letterbox_affine(img.shape[1], img.shape[0], S))
            else:
                out.append(box_affine(box, S))
        return np.stack(out)

    def prepare(self, images: Sequence[np.ndarray], input_affines: np.ndarray) -> torch.Tensor:
        """RGB uint8 images + (B, 2, 3) affines -> (B, 3, S, S) float tensor on the model's device."""
        S = self.input_size
        crops = np.stack([warp_to_input(img, A, S) for img, A in zip(images, input_affines)])
        x = torch.from_numpy(crops).to(self.device)               # (B, S, S, 3) uint8
        return x.permute(0, 3, 1, 2).float().contiguous()         # (B, 3, S, S)

    def __call__(self, images: Sequence[np.ndarray], boxes: np.ndarray | None = None) -> Backbone2DOutput:
        """images: B arrays (H, W, 3) uint8 **RGB** (sizes may differ); boxes: None, or (B, 4)
        [x_min, y_min, x_max, y_max] image pixels per image (NaN row: letterbox that image)."""
        images = list(images)
        if not images:
            raise ValueError("images is empty")
        for b, img in enumerate(images):
            if not (isinstance(img, np.ndarray) and img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8):
                raise ValueError(f"images[{b}] must be an (H, W, 3) uint8 RGB array, got "
                                 f"{getattr(img, 'shape', type(img))} {getattr(img, 'dtype', '')}")
        if boxes is not None:
            boxes = np.asarray(boxes, dtype=np.float64)
            if boxes.shape != (len(images), 4):
                raise ValueError(f"boxes must have shape ({len(images)}, 4), got {boxes.shape}")
        A_in = self.input_affines(images, boxes)
        with torch.inference_mode():
            return self.forward_inputs(self.prepare(images, A_in), A_in)

    def network(self, inputs: torch.Tensor):
        """The network on prepared inputs (B, 3, S, S): the runner when one is set and gradients are
        off, else the torch module (MoveNetOutput, or (B, J, h, w) heatmaps for SimpleBaseline)."""
        if self.runner is not None and not torch.is_grad_enabled():
            return self.runner(inputs)
        return self.model(inputs)

    def forward_inputs(self, inputs: torch.Tensor, input_affines: np.ndarray) -> Backbone2DOutput:
        """Network + decoding on prepared inputs (B, 3, S, S); differentiable outside inference_mode."""
        A_hm = np.einsum("ij,bjk->bik", affine_to_3x3(self.model.heatmap_from_input),
                         affine_to_3x3(input_affines))[:, :2]                    # (B, 2, 3)
        A_inv = torch.as_tensor(np.stack([invert_affine(A) for A in A_hm]),
                                dtype=inputs.dtype, device=inputs.device)       # (B, 2, 3)
        if isinstance(self.model, MoveNet):
            out = self.network(inputs)
            coco_cells = self.model.decode(out)                                  # (B, 17, 3)
            h36m_cells = coco_to_h36m_keypoints(coco_cells)
            heatmaps = coco_to_h36m_heatmaps(out.heatmaps, h36m_cells, sigma=self.derived_sigma)
            coco_img = _to_image(coco_cells, A_inv)
        else:
            heatmaps = self.network(inputs)
            h36m_cells = self.model.decode(heatmaps)
            coco_img = None
        kp = _to_image(h36m_cells, A_inv)
        return Backbone2DOutput(
            heatmaps=heatmaps.float(), affines=A_hm, input_affines=np.asarray(input_affines, np.float64),
            keypoints=kp.detach().cpu().double().numpy(),
            keypoints_coco=None if coco_img is None else coco_img.detach().cpu().double().numpy())


def _to_image(cells: torch.Tensor, A_inv: torch.Tensor) -> torch.Tensor:
    """(B, J, 3) heatmap-cell keypoints + (B, 2, 3) heatmap -> image affines -> image keypoints."""
    xy = cells[..., :2] @ A_inv[:, :, :2].transpose(1, 2) + A_inv[:, None, :, 2]
    return torch.cat([xy, cells[..., 2:]], dim=-1)
