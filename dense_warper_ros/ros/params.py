"""The node's parameters: declared once with descriptions and ranges, validated, and read into one
frozen config. A bad value raises ParameterError naming the parameter and the value."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType
from rclpy.exceptions import (InvalidParameterTypeException, InvalidParameterValueException,
                              ParameterUninitializedException)
from rclpy.node import Node
from rclpy.parameter import Parameter

from dense_warper_ros.backbones.onnx_runtime import INFERENCE_CHOICES
from dense_warper_ros.buffer import TIMINGS
from dense_warper_ros.model import NAMED_CONFIGS
from dense_warper_ros.weights import DEFAULT_MODEL

MODES = ("live", "offline")
TRANSPORTS = ("raw", "compressed")
RELIABILITIES = ("best_effort", "reliable")
BACKBONES = ("movenet_lightning", "movenet_thunder", "simple_baseline")
INPUTS = ("images", "keypoints")


class ParameterError(ValueError):
    pass


@dataclass(frozen=True)
class NodeConfig:
    cameras: tuple[str, ...]        # camera names (logs, /diagnostics)
    camera_topics: tuple[str, ...]  # per camera: namespace of <ns>/image_raw[/compressed], <ns>/camera_info
    world_frame: str                # frame of the published skeletons
    mode: str                       # live: bounded queue, newest wins; offline: every frame, in order
    timing: str                     # causal (lowest latency) or windowed (one cycle later, more accurate)
    min_views: int                  # views needed for a pose
    max_view_age: float             # s: older views are left out
    queue_size: int                 # live mode: newest frames kept per camera while inference is busy
    device: str                     # auto | cpu | cuda | cuda:N
    cpu_threads: int                # torch intra-op and OpenCV threads (0 = the libraries' defaults)
    fusion_processes: int           # live mode, one person: child processes that share the fusion (0: none)
    model_config: str               # named model configuration (lite, paper, ...)
    weights: str                    # DenseWarper weights ('' = shipped default)
    outlier_threshold: float        # heatmap px; a view this far from the others' point leaves the DLT (0 = off)
    max_fused_views: int            # views fused per pose, those nearest in time to it (0 = every camera)
    backbone: str                   # 2D backbone
    backbone_weights: str           # '' = models/ default of the backbone
    inference: str                  # auto | torch | onnxruntime: what runs the 2D network
    image_transport: str            # raw | compressed
    qos_reliability: str            # camera subscriptions
    qos_depth: int
    tf_timeout: float               # s to wait for a transform at a frame's stamp
    extrinsics_file: str            # '' = TF; else a calibration YAML
    publish_markers: bool
    publish_diagnostics: bool
    marker_lifetime: float          # s
    flush_after: float              # offline: s without frames before held-back frames are flushed
    clock_jump: float               # s: a stamp this far back resets the buffer (looped bag)
    input: str                      # images (Image/CompressedImage) or keypoints (People2D per camera)
    max_people: int                 # people tracked at once (1: the single-person pipeline)
    association_gate: float         # mean joint distance / person size for a 2D person to join a track
    track_timeout: float            # s without a pose before a track ends
    detector_period: int            # frames of a camera between person-detector runs
    fill_lost_joints: float         # confidence of a lost joint drawn where its track predicts it (0: off)
    estimate_clock_offsets: bool    # estimate each camera's clock offset from the people and report it
    apply_clock_offsets: bool       # ... and correct the stamps by it once known
    max_clock_offset: float         # s: a camera whose estimated offset is larger is flagged in /diagnostics


def _d(description: str, **kw) -> ParameterDescriptor:
    """Every parameter is read once at start: read-only, so `ros2 param set` refuses rather than
    succeeding and changing nothing."""
    return ParameterDescriptor(description=description, read_only=True, **kw)


def _frange(lo: float, hi: float) -> dict:
    return {"floating_point_range": [FloatingPointRange(from_value=lo, to_value=hi, step=0.0)]}


def _irange(lo: int, hi: int) -> dict:
    return {"integer_range": [IntegerRange(from_value=lo, to_value=hi, step=1)]}


# name -> (default, descriptor)
PARAMETERS: dict[str, tuple[object, ParameterDescriptor]] = {
    "cameras": (["cam0", "cam1", "cam2", "cam3"], _d("camera names, as logs and /diagnostics show them")),
    # no default value: an unset string array ([] would declare no type)
    "camera_topics": (Parameter.Type.STRING_ARRAY, _d(
        "per camera, in the order of 'cameras': the namespace of its <ns>/image_raw (or image_raw/compressed) "
        "and <ns>/camera_info, e.g. /front_cam/color; unset = each camera's name, relative to the node's namespace",
        type=ParameterType.PARAMETER_STRING_ARRAY)),
    "world_frame": ("world", _d("TF frame of the published skeletons")),
    "mode": ("live", _d(f"one of {MODES}: live keeps each camera's newest frames and serves the cameras in turn "
                        "under overload (bounded latency); offline processes every frame, in stamp order")),
    "timing": ("causal", _d(f"one of {TIMINGS}: causal = pose at the newest frame from past frames; "
                            "windowed = one camera cycle later, from frames on both sides")),
    "min_views": (2, _d("fewest camera views for a pose", **_irange(2, 64))),
    "max_view_age": (0.2, _d("s; a view further than this from the target instant is left out",
                             **_frange(0.001, 10.0))),
    "queue_size": (1, _d("live mode: newest frames kept per camera while inference is busy (a camera's older "
                         "frames are dropped as 'superseded'; the worker takes the camera served least recently, "
                         "so every camera gets an equal share under overload)", **_irange(1, 10000))),
    "device": ("auto", _d("auto, cpu, cuda or cuda:N")),
    "cpu_threads": (1, _d("torch's intra-op threads and OpenCV's threads (0 = the libraries' defaults). The node "
                          "already overlaps the backbone and the fusion on two threads; more threads per call on "
                          "a small CPU mostly wait for a core",
                          **_irange(0, 256))),
    "fusion_processes": (2, _d("live mode, one person: child processes that share the fusion, each with its own "
                               "Python interpreter, so that it never waits for ROS and the 2D step to release "
                               "the interpreter lock, and takes turns computing the poses (two: two poses at "
                               "once on two cores). Each process costs about 300 MiB. 0: fuse in the node's "
                               "own process. On a GPU one is used. Offline mode and several people fuse in "
                               "the node's own process", **_irange(0, 16))),
    "model_config": (DEFAULT_MODEL, _d("named DenseWarper configuration: lite_tc (temporal context, default) or "
                                       "lite (the faithful method), paper, ...")),
    "weights": ("", _d("DenseWarper weights file ('' = the shipped default)")),
    "outlier_threshold": (0.0, _d("heatmap px; a camera whose joint lies this far from the other cameras' "
                                  "triangulation is left out of that joint (left/right swaps of the detector); "
                                  "0 = off", **_frange(0.0, 1000.0))),
    "max_fused_views": (5, _d("views fused into each pose: those captured nearest in time to it (each older "
                              "view costs a warp). 0 = every camera. Rigs of up to 5 cameras use them all",
                              **_irange(0, 64))),
    "backbone": ("movenet_lightning", _d(f"2D backbone, one of {BACKBONES}")),
    "backbone_weights": ("", _d("backbone weights file ('' = the models/ default)")),
    "inference": ("auto", _d(f"one of {INFERENCE_CHOICES}: what runs the 2D network. auto = ONNX Runtime where it "
                             "imports and the exported model matches the weights (faster on a CPU), else torch")),
    "image_transport": ("raw", _d(f"one of {TRANSPORTS}: sensor_msgs/Image on <cam>/image_raw or "
                                  "CompressedImage on <cam>/image_raw/compressed")),
    "qos_reliability": ("best_effort", _d(f"camera subscriptions, one of {RELIABILITIES} (sensor data default)")),
    "qos_depth": (5, _d("camera subscription queue depth", **_irange(1, 1000))),
    "tf_timeout": (0.1, _d("s to wait for a camera's transform at a frame's stamp", **_frange(0.0, 10.0))),
    "extrinsics_file": ("", _d("calibration YAML with fixed extrinsics ('' = TF)")),
    "publish_markers": (True, _d("publish ~/markers (visualization_msgs/MarkerArray)")),
    "publish_diagnostics": (True, _d("publish /diagnostics")),
    "marker_lifetime": (0.5, _d("s a marker stays without updates", **_frange(0.0, 60.0))),
    "flush_after": (0.5, _d("offline: s without frames before held-back frames are processed", **_frange(0.01, 60.0))),
    "clock_jump": (1.0, _d("s; a camera whose stamps fall this far behind the other cameras' has its frames "
                           "dropped (clock_behind); when most cameras jump back together (a looped bag) the buffer "
                           "and TF history reset. A frame more than max_view_age ahead of the others is dropped "
                           "(clock_ahead)", **_frange(0.001, 3600.0))),
    "input": ("images", _d(f"one of {INPUTS}: images on <ns>/image_raw[/compressed], or 2D people "
                           "(dense_warper_ros/People2D from your own detector or the people_node) on <ns>/people")),
    "max_people": (1, _d("people tracked at once. 1 = the single-person pipeline (no person detector, fastest); "
                         "more runs the MoveNet MultiPose detector and one backbone crop per person",
                         **_irange(1, 32))),
    "association_gate": (0.25, _d("a 2D person joins a track when its mean joint distance to the track's "
                                  "projection, over the person's size in the image, is below this",
                                  **_frange(0.01, 2.0))),
    "track_timeout": (0.5, _d("s without a pose before a track ends (its markers are deleted; the same person "
                              "back near there within 3 s gets the id back)", **_frange(0.01, 60.0))),
    "detector_period": (5, _d("max_people > 1: run the person detector every this many frames of a camera "
                              "(tracked people are cropped from their tracks in between; every frame while a "
                              "camera sees nobody)", **_irange(1, 1000))),
    "fill_lost_joints": (0.4, _d("several people or keypoints input: a joint a view lost (occluded, below 0.3 "
                                 "confidence) is drawn into that view's heatmaps where the person's track "
                                 "predicts it, with this confidence; 0 leaves it empty", **_frange(0.0, 1.0))),
    "estimate_clock_offsets": (False, _d("estimate each camera's clock offset from the people it sees (epipolar "
                                         "agreement of the tracked people's keypoints over the last 10 s) and "
                                         "show it in /diagnostics; with apply_clock_offsets, correct the "
                                         "camera's stamps by it once known to 3 ms from at least 5 s of people "
                                         "seen with another camera. Off by default: see docs/clock_offsets.md")),
    "apply_clock_offsets": (True, _d("with estimate_clock_offsets: correct each camera's stamps by its estimate "
                                     "once known; false only reports the estimates (to watch them on a new rig "
                                     "before trusting them)")),
    "max_clock_offset": (0.05, _d("s; with estimate_clock_offsets, a camera whose estimated offset is larger is "
                                  "flagged (WARN) in /diagnostics", **_frange(0.0, 10.0))),
}


def declare(node: Node) -> None:
    """Declare every parameter; a start value outside its range or of the wrong type raises
    ParameterError naming it."""
    for name, (default, desc) in PARAMETERS.items():
        try:
            node.declare_parameter(name, default, desc)
        except (InvalidParameterValueException, InvalidParameterTypeException) as e:
            raise ParameterError(f"parameter {name!r}: {e}") from e


def _one_of(name: str, value: str, allowed) -> str:
    if value not in allowed:
        raise ParameterError(f"parameter {name!r}: {value!r} is not one of {tuple(allowed)}")
    return value


def _value(node: Node, name: str):
    try:
        return node.get_parameter(name).value
    except ParameterUninitializedException:
        return None


def _camera_topics(cams: tuple[str, ...], topics) -> tuple[str, ...]:
    if not topics:
        return cams
    topics = tuple(str(t).rstrip("/") for t in topics)
    if len(topics) != len(cams) or not all(topics):
        raise ParameterError(f"parameter 'camera_topics': {list(topics)} must name one non-empty namespace per "
                             f"camera of 'cameras' {list(cams)}")
    return topics


def read(node: Node) -> NodeConfig:
    """Read and validate every parameter into a NodeConfig."""
    p = {name: _value(node, name) for name in PARAMETERS}
    cams = tuple(p["cameras"] or ())
    if len(cams) < 2:
        raise ParameterError(f"parameter 'cameras': need at least 2 cameras, got {list(cams)}")
    if len(set(cams)) != len(cams) or any(not c for c in cams):
        raise ParameterError(f"parameter 'cameras': names must be unique and non-empty, got {list(cams)}")
    if p["max_fused_views"] == 1:
        raise ParameterError("parameter 'max_fused_views': a pose needs 2 views or more (0 = every camera)")
    if p["min_views"] > len(cams):
        raise ParameterError(f"parameter 'min_views': {p['min_views']} > number of cameras {len(cams)}")
    dev = p["device"]
    if not (dev in ("auto", "cpu", "cuda") or (dev.startswith("cuda:") and dev[5:].isdigit())):
        raise ParameterError(f"parameter 'device': {dev!r} is not auto, cpu, cuda or cuda:N")
    if not p["world_frame"]:
        raise ParameterError("parameter 'world_frame': must not be empty")
    _one_of("model_config", p["model_config"], sorted(NAMED_CONFIGS))
    for name in ("weights", "backbone_weights", "extrinsics_file"):
        if p[name] and p[name] != "none" and not Path(p[name]).is_file():
            raise ParameterError(f"parameter {name!r}: {p[name]!r} is not a file")
    return NodeConfig(
        cameras=cams, camera_topics=_camera_topics(cams, p["camera_topics"]), world_frame=p["world_frame"].lstrip("/"),
        mode=_one_of("mode", p["mode"], MODES), timing=_one_of("timing", p["timing"], TIMINGS),
        min_views=int(p["min_views"]), max_view_age=float(p["max_view_age"]),
        queue_size=int(p["queue_size"]), device=dev, cpu_threads=int(p["cpu_threads"]),
        fusion_processes=int(p["fusion_processes"]),
        model_config=p["model_config"],
        weights=p["weights"], outlier_threshold=float(p["outlier_threshold"]),
        max_fused_views=int(p["max_fused_views"]),
        backbone=_one_of("backbone", p["backbone"], BACKBONES),
        backbone_weights=p["backbone_weights"], inference=_one_of("inference", p["inference"], INFERENCE_CHOICES),
        image_transport=_one_of("image_transport", p["image_transport"], TRANSPORTS),
        qos_reliability=_one_of("qos_reliability", p["qos_reliability"], RELIABILITIES),
        qos_depth=int(p["qos_depth"]), tf_timeout=float(p["tf_timeout"]),
        extrinsics_file=p["extrinsics_file"], publish_markers=bool(p["publish_markers"]),
        publish_diagnostics=bool(p["publish_diagnostics"]), marker_lifetime=float(p["marker_lifetime"]),
        flush_after=float(p["flush_after"]), clock_jump=float(p["clock_jump"]),
        input=_one_of("input", p["input"], INPUTS), max_people=int(p["max_people"]),
        association_gate=float(p["association_gate"]), track_timeout=float(p["track_timeout"]),
        detector_period=int(p["detector_period"]), fill_lost_joints=float(p["fill_lost_joints"]),
        estimate_clock_offsets=bool(p["estimate_clock_offsets"]),
        apply_clock_offsets=bool(p["apply_clock_offsets"]),
        max_clock_offset=float(p["max_clock_offset"]))
