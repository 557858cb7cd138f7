"""DenseWarper's configuration: every field that fixes the model's shape and behaviour, and the presets.

Presets (`ModelConfig.named`):
  - `paper`: the released sizes and layers (channel-mixing deformable kernels, offset heads without
    bias, a disc soft-argmax window; `released_weights.py` loads the released checkpoints into it,
    docs/released_code.md compares every stage); one warp per ordered view pair (12 for 4 views),
    trained for the fixed offsets of an interleaved rig, so the pose must be asked at a view's
    capture time.
  - `lite`: real time on 2 CPU cores; one shared, time-conditioned warp (it also reads the signed
    offsets t* - t_c and t_g - t_c), any number of views, any timing.
  - `lite_tc`: `lite` with the temporal-context extension (`temporal_context.py`).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from .heatmaps import WINDOW_SHAPES
from .warp import BACKENDS, DEFORM_KERNELS, OFFSET_MODES


@dataclass(frozen=True)
class ModelConfig:
    """Everything that fixes the model's shape and behaviour; built once at the entry point."""

    name: str = "paper"                  # configuration name, for logs and checkpoints
    num_joints: int = 17                 # J: heatmap channels (Human3.6M-17)
    num_views: int | None = 4            # pairwise warps: exactly this many views; None: any V >= 2
    input_size: int = 384                # backbone input side (square crops), px
    heatmap_size: int = 96               # h = w: heatmap side, px
    target_sigma: float = 3.0            # Gaussian target std for training, heatmap px
    backbone: str = "simplebaseline_resnet152"   # which backbone the weights expect (informative)
    time_conditioned: bool = False       # one shared warp fed the signed time offsets
    warp_channels: int = 128             # trunk width
    warp_blocks: int = 20                # residual BasicBlocks in the trunk
    offset_dilations: tuple[int, ...] = (3, 6, 12, 18, 24)   # one offset head per dilation
    kernel_dilations: tuple[int, ...] | None = None  # deformable kernel dilations; None: as heads
    offset_mode: str = "per_tap"         # per_tap (the method) or per_channel (shared over taps)
    trunk_stride: int = 1                # 2: trunk and heads at half resolution, offsets upsampled
    exchange_stride: int = 1             # 2: epipolar exchange on 2x2 max-pooled heatmaps
    fill_weight: float = 0.5             # S = fill * E + (1 - fill) * H_cur
    time_scale_s: float = 0.1            # time offsets are fed to the warp divided by this
    frame_interval_s: float = 0.02       # nominal interval between consecutive views' captures
    time_tolerance_s: float = 1e-3       # a frame within this of the target is "at" the target
    softargmax_window: int | None = None  # odd window width, px; None: 15 at 96, scaled
    softargmax_window_shape: str = "disc"  # disc (released: pixels within width / 2 of the argmax)
                                           # or square (width x width); `heatmaps.soft_argmax`
    softargmax_temperature: float = 0.05  # softmax temperature on heatmap values
    min_peak: float = 0.01               # a joint whose heatmap peak is <= this is dropped
    min_sigma_px: float = 0.5            # floor on the 2D std used for covariance, heatmap px
    deform_backend: str = "auto"         # auto (torchvision if it imports), grid_sample, torchvision
    deform_kernel: str = "full"          # full: one J -> J kernel per head mixing the joint channels
                                         # (released); depthwise: one 3x3 kernel per joint channel
                                         # (needed by offset_mode per_channel)
    offset_bias: bool = False            # offset heads with a bias term (released: without)
    # Temporal-context extension (not in the paper; 0 / False = the faithful method):
    temporal_context: int = 0            # K earlier frames per view the warp reads (`PreviousFrames`)
    velocity_prior: bool = False         # offsets start at the constant-velocity guess from frame k=0
    view_confidence: bool = False        # the warp also gives a per-joint DLT log-weight
    history_weight: bool = False         # a warped view's DLT weight is at most its previous frame's
                                         # peak: a point moved from two frames is as sure as the weaker
    temporal_fusion: bool = False        # the previous frame, moved too, is blended into the output
                                         # with a learned per-joint weight (its peak lands on the
                                         # current one's: it blends shape and peak, not position)
    # Inference only (no weight depends on it; `DenseWarper.set_inference`):
    outlier_threshold: float | None = None   # heatmap px: a view this far from the others' point is
                                             # dropped from the DLT (left/right swaps); None: off
    max_views: int | None = None             # fuse only this many views, those nearest in time to
                                             # the target (fewer warps per pose); None: every view

    def __post_init__(self) -> None:
        positive = ("num_joints", "input_size", "heatmap_size", "warp_channels", "warp_blocks")
        for f in positive:
            if getattr(self, f) <= 0:
                raise ValueError(f"{f} must be > 0, got {getattr(self, f)}")
        if self.num_views is not None and self.num_views < 2:
            raise ValueError(f"num_views must be >= 2 or None, got {self.num_views}")
        if self.num_views is None and not self.time_conditioned:
            raise ValueError("pairwise warps need a fixed num_views; got None without time_conditioned")
        if self.offset_mode not in OFFSET_MODES:
            raise ValueError(f"offset_mode must be one of {OFFSET_MODES}, got {self.offset_mode!r}")
        if self.deform_backend not in BACKENDS:
            raise ValueError(f"deform_backend must be one of {BACKENDS}, got {self.deform_backend!r}")
        if self.deform_kernel not in DEFORM_KERNELS:
            raise ValueError(f"deform_kernel must be one of {DEFORM_KERNELS}, got {self.deform_kernel!r}")
        if self.deform_kernel == "full" and self.offset_mode != "per_tap":
            raise ValueError(f"deform_kernel 'full' needs offset_mode 'per_tap', got {self.offset_mode!r}")
        if self.softargmax_window_shape not in WINDOW_SHAPES:
            raise ValueError(f"softargmax_window_shape must be one of {WINDOW_SHAPES}, got "
                             f"{self.softargmax_window_shape!r}")
        for f in ("trunk_stride", "exchange_stride"):
            if getattr(self, f) not in (1, 2):
                raise ValueError(f"{f} must be 1 or 2, got {getattr(self, f)}")
        if self.exchange_stride == 2 and self.heatmap_size % 2:
            raise ValueError(f"exchange_stride 2 needs an even heatmap_size, got {self.heatmap_size}")
        if not 0.0 <= self.fill_weight <= 1.0:
            raise ValueError(f"fill_weight must be in [0, 1], got {self.fill_weight}")
        if self.time_scale_s <= 0 or self.time_tolerance_s < 0:
            raise ValueError(f"time_scale_s must be > 0 and time_tolerance_s >= 0, got "
                             f"{self.time_scale_s}, {self.time_tolerance_s}")
        if self.temporal_context < 0:
            raise ValueError(f"temporal_context must be >= 0, got {self.temporal_context}")
        if self.velocity_prior and self.temporal_context == 0:
            raise ValueError("velocity_prior needs temporal_context >= 1 (an earlier frame per view)")
        if self.temporal_fusion and self.temporal_context == 0:
            raise ValueError("temporal_fusion needs temporal_context >= 1 (an earlier frame per view)")
        if self.outlier_threshold is not None and not self.outlier_threshold > 0:
            raise ValueError(f"outlier_threshold must be > 0 heatmap px or None, got {self.outlier_threshold}")
        if self.max_views is not None and self.max_views < 2:
            raise ValueError(f"max_views must be >= 2 or None, got {self.max_views}")
        if self.kernel_dilations is not None and len(self.kernel_dilations) != len(self.offset_dilations):
            raise ValueError(f"kernel_dilations {self.kernel_dilations} must match offset_dilations "
                             f"{self.offset_dilations} in length")

    INFERENCE_FIELDS = ("outlier_threshold", "max_views")   # may change on trained weights
    # Fields a stored config may lack, with the value every model stored without them was built with
    # (`from_dict`): an older file rebuilds the model it was trained as, not today's default.
    ABSENT_FIELD_VALUES = {"deform_kernel": "depthwise", "offset_bias": True,
                           "softargmax_window_shape": "square"}

    @classmethod
    def named(cls, config_name: str, /, **overrides) -> "ModelConfig":
        """`paper` or `lite`, optionally with fields overridden (including `name`)."""
        if config_name not in NAMED_CONFIGS:
            raise ValueError(f"unknown configuration {config_name!r}, expected one of "
                             f"{sorted(NAMED_CONFIGS)}")
        return replace(NAMED_CONFIGS[config_name], **overrides)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def decoder(self) -> dict:
        """Soft-argmax settings (`heatmaps.soft_argmax` keywords): baselines decode heatmaps the same way."""
        return {"window": self.softargmax_window, "temperature": self.softargmax_temperature,
                "min_peak": self.min_peak, "window_shape": self.softargmax_window_shape}

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown config fields {sorted(unknown)}")
        d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**{**cls.ABSENT_FIELD_VALUES, **d})


NAMED_CONFIGS: dict[str, ModelConfig] = {
    # The released sizes and layers: SimpleBaseline ResNet-152, 384 -> 96, 12 pairwise warps of
    # 20 x 128, five heads, channel-mixing deformable kernels, offset heads without bias, the disc
    # decoder window (the field defaults).
    "paper": ModelConfig(),
    # Real time on 2 CPU cores (bench/model_speed.py measures it): MoveNet Lightning heatmaps
    # (192 -> 48), one time-conditioned warp shared by every view pair and timing, trunk (2 blocks of
    # 24 channels) and epipolar exchange at 24 x 24, one offset head (dilation 2 at 24 px; receptive
    # field 23 heatmap px) with one offset per joint channel shared by the 3x3 kernel's taps. Each
    # extra head costs ~30% of the fusion time on 2 cores, so the paper's 5-head average is dropped.
    "lite": ModelConfig(
        name="lite", num_views=None, input_size=192, heatmap_size=48, target_sigma=2.0,
        backbone="movenet_lightning", time_conditioned=True, warp_channels=24, warp_blocks=2,
        offset_dilations=(2,), kernel_dilations=(1,), offset_mode="per_channel",
        trunk_stride=2, exchange_stride=2,
        # what the shipped weights were trained with: per-channel offsets run as a depthwise conv
        # then one warp per channel, which needs depthwise kernels; the decoder's square window, in
        # which the bias below was measured (on one sigma-2 peak the 9 px square and disc decode
        # < 1e-4 px apart; they differ where a second peak lies in the square's corners)
        deform_kernel="depthwise", offset_bias=True, softargmax_window_shape="square",
        # 0.05 at 48 px over-sharpens (grid aliasing, up to 0.05-0.14 px bias); 0.1 keeps the
        # decoder's bias under 0.01 px for sigma-2 peaks
        softargmax_temperature=0.1),
}
# The temporal-context extension of `lite`: the same warp, which also reads each view's
# previous frame (resampled into the current crop, as a difference map plus its time offset),
# starts its offsets at that view's constant-velocity motion, and weights its view in the DLT.
NAMED_CONFIGS["lite_tc"] = replace(NAMED_CONFIGS["lite"], name="lite_tc", temporal_context=1,
                                   velocity_prior=True, view_confidence=True)
