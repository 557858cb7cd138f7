"""Frames in, poses out, without ROS: the per-frame work the node and the offline replay share.

For each frame: crop around the projection of the previous 3D pose (full frame when there is
none), run the 2D backbone once, keep its heatmaps in the interleaved buffer (each frame's
heatmaps serve every window it belongs to), and for every window the buffer releases ask the model
for the pose at the window's target instant. The node feeds this from ROS callbacks; the bag
evaluation and the tests feed it directly, so both produce the same poses for the same frames.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from dense_warper_ros.buffer import BufferConfig, Frame, InterleavedBuffer, Window
from dense_warper_ros.cameras import Camera, undistorter
from dense_warper_ros.devices import resolve_device
from dense_warper_ros.fusion_process import BufferView, FusionPool, FusionProcess, FusionSpec
from dense_warper_ros.model import DenseWarper, ModelConfig, PreviousFrames
from dense_warper_ros.temporal_context import ContextCache
from dense_warper_ros.weights import DEFAULT_MODEL, default_weights
from dense_warper_ros.window_tensors import projected_box, projections, stack_previous, stack_views


@dataclass(frozen=True)
class PoseResult:
    """One person's pose at one instant, in the world frame."""
    stamp_ns: int                          # the instant the pose describes
    points: np.ndarray                     # (J, 3) metres; NaN rows: unknown joints
    confidence: np.ndarray                 # (J,) in [0, 1]
    covariance: np.ndarray                 # (J, 3, 3) m^2
    num_views: np.ndarray                  # (J,) views supporting each joint
    view_stamps_ns: tuple[int, ...]        # capture stamps of the fused frames
    view_frame_ids: tuple[str, ...]        # their optical frame ids
    track_id: int = 0
    latency_s: float = 0.0                 # model time for this window (s)
    rejected: np.ndarray | None = None     # (V, J) bool per camera index: joint dropped as an outlier
    # multi-person: median px between the pose projected into the target camera and this person's
    # own 2D keypoints there (NaN when the target frame does not see the person)
    reprojection_px: float = float("nan")


Outcome = tuple[int, "PoseResult | None"]   # a window's target stamp and its pose (None: too few joints)


@dataclass(frozen=True)
class FrameData:
    heatmaps: torch.Tensor                 # (J, h, w) H36M-17 heatmaps of this frame
    affine: np.ndarray                     # (2, 3) image -> heatmap pixels
    camera: Camera                         # calibration at the capture stamp
    frame_id: str


@dataclass(frozen=True)
class PipelineConfig:
    buffer: BufferConfig
    crop_margin: float = 1.3               # crop box = bbox of the projected pose x this
    track_timeout_ns: int = 500_000_000    # previous pose older than this: full-frame crop
    min_joints: int = 8                    # fewer triangulated joints: no person
    device: str = "cpu"


class PosePipeline:
    """Backbone + interleaved buffer + DenseWarper model."""

    def __init__(self, *, model, backbone, config: PipelineConfig):
        self.model = model
        self.backbone = backbone
        self.config = config
        self.buffer = InterleavedBuffer(config.buffer)
        self.device = torch.device(config.device)
        self._last: PoseResult | None = None
        self._track_id = 0
        self.lost = False                  # set when a tracked person disappears
        self.ended: list[int] = []         # ids of tracks that ended since the caller last cleared it
        self.weights_source = ""           # where the model's weights came from (for reports)
        self.fusion = None                 # a FusionPool: the fusion runs in child processes
        self._context = ContextCache()     # per-frame temporal context, reused across targets

    def offload(self, fusion) -> None:
        """Run the fusion (buffer and model) in `fusion` (a `fusion_process.FusionPool`); this
        object keeps the 2D step, the track bookkeeping and what the reports need."""
        self.fusion = fusion
        self.buffer = BufferView(self.config.buffer)

    def close(self) -> None:
        """End the fusion processes, if any."""
        if self.fusion is not None:
            self.fusion.close()

    # --- per frame ------------------------------------------------------------------------------
    def crop_box(self, camera: Camera, stamp_ns: int) -> np.ndarray | None:
        """(x0, y0, x1, y1) square box around the previous pose projected into `camera`."""
        last = self._last
        if last is None or abs(stamp_ns - last.stamp_ns) > self.config.track_timeout_ns:
            return None
        return projected_box(camera, last.points, margin=self.config.crop_margin, min_joints=self.config.min_joints)

    def frame_heatmaps(self, stamp_ns: int, image_rgb: np.ndarray, camera: Camera, frame_id: str = "", *,
                       track: bool = True, camera_index: int = 0) -> FrameData:
        """The backbone's part of a frame. Separate from `push_heatmaps` so the node can run it on
        one thread while the fusion of earlier frames runs on another; `track=False` ignores the
        previous pose (full-frame crop), for a frame that follows a reset. (`camera_index`: the
        multi-person pipeline's detector schedule; one person needs no detector.)"""
        box = self.crop_box(camera, stamp_ns) if track else None
        out = self.backbone([image_rgb], None if box is None else box[None])   # heatmaps (1, J, h, w)
        return FrameData(heatmaps=out.heatmaps[0].to(self.device), affine=np.asarray(out.affines[0]),
                         camera=camera, frame_id=frame_id)

    def process(self, camera_index: int, stamp_ns: int, image_rgb: np.ndarray, camera: Camera,
                frame_id: str = "") -> list[PoseResult]:
        return self.push_heatmaps(camera_index, stamp_ns, self.frame_heatmaps(stamp_ns, image_rgb, camera, frame_id))

    def push_heatmaps(self, camera_index: int, stamp_ns: int, data: FrameData) -> list[PoseResult]:
        """For callers that computed the heatmaps themselves (benchmarks, batched backbones)."""
        if self.fusion is not None:
            return self._mirror(self.fusion.call("push", *FusionProcess.frame_args(camera_index, stamp_ns, data)))
        return self._keep(self.fuse_frame(camera_index, stamp_ns, data))

    def fuse_frame(self, camera_index: int, stamp_ns: int, data: FrameData, *, solve: bool = True) -> list[Outcome]:
        """The fusion's part of a frame: into the buffer, and the poses of the windows it completes
        (`solve=False`: into the buffer only, for a fusion process that leaves those windows to
        another). No track bookkeeping: `_keep` does that, in frame order."""
        self._check_heatmaps(data)
        return self._poses(self.buffer.push(Frame(camera=camera_index, stamp_ns=stamp_ns, data=data)), solve)

    def flush_outcomes(self, *, solve: bool = True) -> list[Outcome]:
        """`flush` without the track bookkeeping (see `fuse_frame`)."""
        return self._poses(self.buffer.flush(), solve)

    def _check_heatmaps(self, data: FrameData) -> None:
        """A frame whose heatmaps the model cannot fuse is refused before it enters the buffer,
        where it would break every window it belongs to."""
        m = self.model
        want = (m.num_joints, m.heatmap_size, m.heatmap_size)
        if tuple(data.heatmaps.shape) != want:
            raise ValueError(f"heatmaps of shape {tuple(data.heatmaps.shape)}; the model fuses {want}")

    def flush(self) -> list[PoseResult]:
        if self.fusion is not None:
            return self._mirror(self.fusion.call("flush"))
        return self._keep(self.flush_outcomes())

    def reset(self) -> None:
        self._last = None
        if self.fusion is not None:
            self._mirror(self.fusion.call("reset"))
            return
        self.buffer.reset()
        self._context.clear()

    def push_async(self, camera_index: int, stamp_ns: int, data: FrameData,
                   done: Callable[[list[PoseResult] | Exception], None], *, reset: bool = False) -> None:
        """Offloaded fusion: queue a frame (after a reset when `reset`) and return at once; `done`
        gets its poses, or the exception, on a reply thread, frames in the order they were queued.
        Waits only while the fusion processes have as many frames queued as they take."""
        def reply(r) -> None:
            if reset:
                self._last = None
            done(r if isinstance(r, Exception) else self._mirror(r))
        self.fusion.submit("push", FusionProcess.frame_args(camera_index, stamp_ns, data, reset), reply)

    def _mirror(self, reply) -> list[PoseResult]:
        """A fusion process's reply -> its poses, with the track bookkeeping done here, in frame
        order; keeps the buffer's counters for the reports."""
        self.buffer.pending = reply.pending
        self.buffer.stats = Counter(reply.stats)
        return self._keep(reply.outcomes)

    def people_counts(self) -> dict[str, int]:
        """For /diagnostics: the one person tracked now or not, and tracks lost so far."""
        return {"people_tracked": int(self._last is not None), "deaths": self._track_id}

    # --- per window -----------------------------------------------------------------------------
    def _poses(self, windows: list[Window], solve: bool = True) -> list[Outcome]:
        """Each window's pose (None: too few joints), or none at all when not `solve`."""
        return [(w.target_ns, self._pose(w)) for w in windows] if solve else []

    def _keep(self, outcomes: list[Outcome]) -> list[PoseResult]:
        """The track bookkeeping, in window order: a pose continues the track (and gets its id)
        unless the last one is older than the timeout; a window without one ends the track."""
        out = []
        for target_ns, r in outcomes:
            if self._last is not None and target_ns - self._last.stamp_ns > self.config.track_timeout_ns:
                self._lose_track()              # no pose for longer than the timeout: not the same track
            if r is None:
                self._lose_track()
                continue
            r = replace(r, track_id=self._track_id)
            self.lost = False
            self._last = r
            out.append(r)
        return out

    def _lose_track(self) -> None:
        """The tracked person is gone: the next person found gets a new id."""
        if self._last is not None:
            self.lost = True
            self.ended.append(self._track_id)
            self._track_id += 1
        self._last = None

    @torch.inference_mode()
    def _pose(self, w: Window) -> PoseResult | None:
        """The model's pose at the window's target (track id 0), or None with fewer than
        `min_joints` joints triangulated."""
        t0 = time.perf_counter()
        frames = [f for f in w.frames if f is not None]
        ref = frames[0].data.heatmaps
        hm, A, times, valid = (x[None] for x in self._stack(w.frames, w.target_ns, ref))   # (1, V, ...)
        cams: list[Camera | None] = [None if f is None else f.data.camera for f in w.frames]
        P = projections(cams, 1)                                                            # (1, V, 3, 4)
        undistort = undistorter(cams)
        epoch = self.buffer.stats["resets"]           # stamps may repeat after a reset (a looped bag)
        self._context.keys = [[_frame_key(epoch, v, f, w) for v, f in enumerate(w.frames)]]
        out = self.model.pose_at(hm, P.to(self.device), A.to(self.device), times.to(self.device),
                                 valid.to(self.device), torch.zeros(1, dtype=torch.float64, device=self.device),
                                 undistort=undistort, previous=self._previous(w, ref), context_cache=self._context)
        points = out.points[0].double().cpu().numpy()
        if int(np.isfinite(points).all(axis=1).sum()) < self.config.min_joints:
            return None
        return PoseResult(
            stamp_ns=w.target_ns, points=points,
            confidence=out.confidence[0].double().cpu().numpy(),
            covariance=out.covariance[0].double().cpu().numpy(),
            num_views=out.num_views[0].cpu().numpy().astype(np.int64),
            view_stamps_ns=tuple(f.stamp_ns for f in frames),
            view_frame_ids=tuple(f.data.frame_id for f in frames),
            latency_s=time.perf_counter() - t0, rejected=out.rejected[0].cpu().numpy())

    def _previous(self, w: Window, ref: torch.Tensor) -> PreviousFrames | None:
        """Each view's earlier frames for temporal-context models (None for the others)."""
        K = self.model.config.temporal_context
        if not K:
            return None
        hm, A, times, valid = (x[None] for x in stack_previous(w.previous, K, w.target_ns, _frame_view, ref.shape,
                                                                ref.dtype, self.device))    # (1, V, K, ...)
        return PreviousFrames(heatmaps=hm, affines=A.to(self.device), times=times.to(self.device),
                              valid=valid.to(self.device))

    def _stack(self, frames: tuple[Frame | None, ...], target_ns: int, ref: torch.Tensor):
        """Frames (n,) (None: missing) -> heatmaps (n, J, h, w), affines (n, 2, 3), times (n,), valid (n,)."""
        return stack_views(frames, target_ns, _frame_view, ref.shape, ref.dtype, self.device)


def _frame_key(epoch: int, v: int, f: Frame | None, w: Window) -> tuple | None:
    """Names view v's frame and its history for the `ContextCache`: (buffer resets, camera, stamp,
    earlier stamps)."""
    if f is None:
        return None
    earlier = w.previous[v] if v < len(w.previous) else ()
    return (epoch, f.camera, f.stamp_ns) + tuple(e.stamp_ns for e in earlier)


def _frame_view(f: Frame) -> tuple[torch.Tensor, np.ndarray]:
    return f.data.heatmaps, f.data.affine


def load_backbone(name: str, *, weights: str | Path | None = None, device: str = "cpu",
                  inference: str = "auto", cpu_threads: int = 1):
    """movenet_lightning | movenet_thunder (converted by `make setup` into models/) or
    simple_baseline (a user's weights-only checkpoint). `inference`: auto | torch | onnxruntime
    (`backbones.onnx_runtime`); `cpu_threads`: ONNX Runtime's intra-op threads (0 = its default)."""
    from dense_warper_ros.backbones.adapter import Backbone2D
    if name in ("movenet_lightning", "movenet_thunder"):
        return Backbone2D.movenet(name.split("_", 1)[1], device=device, inference=inference,
                                  cpu_threads=cpu_threads)
    if name == "simple_baseline":
        if not weights:
            raise ValueError("backbone 'simple_baseline' needs backbone_weights (a weights-only checkpoint)")
        return Backbone2D.simple_baseline(weights, device=device, inference=inference)
    raise ValueError(f"unknown backbone {name!r}: movenet_lightning, movenet_thunder or simple_baseline")


@dataclass(frozen=True)
class PeopleOptions:
    """How many people, and how they are found and followed (the multi-person pipeline)."""
    max_people: int = 1                  # 1: the single-person pipeline (images), unless keypoints come in
    keypoints_input: bool = False        # frames arrive as 2D people (People2D), not images
    gate: float = 0.25                   # association gate: mean joint distance / person size
    track_timeout_s: float = 0.5         # a track without a pose for this long ends
    detector_period: int = 5             # frames of a camera between person-detector runs
    fill_lost: float = 0.4               # a lost joint drawn where its track predicts it, this confident
    clock_offsets: bool = False          # estimate each camera's clock offset from the tracked people
    apply_clock_offsets: bool = False    # ... and correct the stamps with it (implies clock_offsets)

    @property
    def multi(self) -> bool:
        """The multi-person pipeline: several people, 2D people in, or clock offsets (they need
        each frame's people matched to tracks)."""
        return self.max_people > 1 or self.keypoints_input or self.clock_offsets or self.apply_clock_offsets


def load_model(model_config: str, weights: str | Path, dev: str, num_cameras: int,
               outlier_threshold: float | None, max_views: int | None = None) -> tuple[DenseWarper, Path | None]:
    """The DenseWarper model ready for inference on `dev`, and the weights file it came from.
    weights: '' = the shipped default (untrained when none is shipped), 'none' = untrained warps;
    `outlier_threshold` and `max_views`: `ModelConfig`'s inference settings (None or 0: off)."""
    w = None if weights == "none" else Path(weights) if weights else default_weights(model_config)
    if w is not None:
        if not w.exists():
            raise FileNotFoundError(f"DenseWarper weights {w} do not exist")
        model = DenseWarper.load(w, map_location=dev)
    else:
        model = DenseWarper(ModelConfig.named(model_config)).to(dev)
    if not model.supports_views(num_cameras):
        lo, hi = model.views_supported
        views = f"{lo} or more" if hi is None else str(lo) if lo == hi else f"{lo} to {hi}"
        raise ValueError(f"model {model.config.name!r} takes {views} views, not {num_cameras} cameras")
    model.set_inference(outlier_threshold=outlier_threshold or None, max_views=max_views or None).for_inference()
    return model, w


def build_pipeline(*, num_cameras: int, timing: str = "causal", offline: bool = False,
                   model_config: str = DEFAULT_MODEL, weights: str | Path = "", backbone: str = "movenet_lightning",
                   backbone_weights: str | Path = "", device: str = "auto", min_views: int = 2,
                   max_view_age_s: float = 0.2, clock_jump_s: float = 1.0,
                   outlier_threshold: float | None = None, max_views: int | None = None, inference: str = "auto",
                   cpu_threads: int = 1, people: PeopleOptions = PeopleOptions(), fusion_processes: int = 0):
    """The node's pipeline from its parameters: weights default to the shipped ones (untrained
    identity warps when none exist), the backbone to its converted weights in models/.
    `outlier_threshold` (heatmap px; None or 0: off, as the node's parameter): `ModelConfig.outlier_threshold`;
    `max_views` (None or 0: every view): `ModelConfig.max_views`.
    `inference` (auto | torch | onnxruntime) runs the 2D network (`pipe.backbone.inference` says which
    ran); `cpu_threads` sets ONNX Runtime's intra-op threads on the CPU (0 = its default).
    `people`: more than one person, or 2D keypoints in, gives a `MultiPersonPipeline` (with the
    MoveNet MultiPose person detector for images).
    `fusion_processes`: the single-person pipeline's fusion runs in that many child processes
    (`fusion_process.FusionPool`; 0: in this process; one on a GPU, where a pose takes
    milliseconds and each process would hold a CUDA context); the 2D network loads here meanwhile."""
    dev = str(resolve_device(device))
    if dev.startswith("cuda"):
        fusion_processes = min(fusion_processes, 1)
    model, w = load_model(model_config, weights, dev, num_cameras, outlier_threshold, max_views)
    buf = BufferConfig(num_cameras=num_cameras, timing=timing, min_views=min_views,
                       max_view_age_ns=int(max_view_age_s * 1e9), clock_jump_ns=int(clock_jump_s * 1e9),
                       reorder=offline, history=model.config.temporal_context,
                       windowed_pick="later" if model.config.temporal_context else "nearest")
    config = PipelineConfig(buffer=buf, device=dev)
    fusion = None
    if fusion_processes and not people.multi:       # started first: it loads while the backbone does
        fusion = FusionPool(FusionSpec(model_config, str(w) if w is not None else "none", num_cameras,
                                       outlier_threshold, config, cpu_threads, max_views),
                            processes=fusion_processes)
    try:
        bb = None if people.keypoints_input else _backbone_for(model, backbone, backbone_weights, dev, inference,
                                                                cpu_threads)
        if people.multi:
            pipe = _multi_pipeline(model, bb, buf, people, dev, inference=inference, cpu_threads=cpu_threads)
        else:
            pipe = PosePipeline(model=model, backbone=bb, config=config)
            if fusion is not None:
                fusion.wait_ready()
                pipe.offload(fusion)
    except BaseException:
        if fusion is not None:
            fusion.close()
        raise
    pipe.weights_source = str(w) if w is not None else "untrained (identity warps)"
    return pipe


def _backbone_for(model: DenseWarper, name: str, weights: str | Path, dev: str, inference: str, cpu_threads: int):
    """The 2D backbone, checked against the model's heatmap size."""
    bb = load_backbone(name, weights=weights or None, device=dev, inference=inference, cpu_threads=cpu_threads)
    if bb.heatmap_size != model.heatmap_size:
        raise ValueError(f"backbone {name!r} gives {bb.heatmap_size}px heatmaps, model "
                         f"{model.config.name!r} expects {model.heatmap_size}px")
    return bb


def _multi_pipeline(model: DenseWarper, backbone, buf: BufferConfig, people: PeopleOptions, dev: str, *,
                    inference: str, cpu_threads: int):
    from dense_warper_ros.multi_pipeline import MultiPersonConfig, MultiPersonPipeline
    from dense_warper_ros.tracks import TrackingConfig
    detector = None
    if backbone is not None and people.max_people > 1:
        from dense_warper_ros.backbones.movenet_multipose import MultiPoseDetector, load_multipose
        detector = MultiPoseDetector(load_multipose(device=dev), max_people=people.max_people + 2,
                                     inference=inference, cpu_threads=cpu_threads)
    cfg = MultiPersonConfig(
        buffer=buf, tracking=TrackingConfig(max_people=people.max_people,
                                            timeout_ns=int(people.track_timeout_s * 1e9)),
        gate=people.gate, detector_period=people.detector_period, fill_lost=people.fill_lost, device=dev)
    pipe = MultiPersonPipeline(model=model, backbone=backbone, detector=detector, config=cfg)
    if people.clock_offsets or people.apply_clock_offsets:
        from dense_warper_ros.clock_offsets import ClockOffsetEstimator
        pipe.clock = ClockOffsetEstimator(buf.num_cameras)
        pipe.apply_clock = people.apply_clock_offsets
    return pipe
