"""The 2D half of the split layout: one camera's images in, its 2D people (People2D) out.

Run one per camera host; the fusion node (`input: keypoints`) takes every camera's `<ns>/people`
over DDS, so a rig that outgrows one computer spreads its backbones over several. Each image goes
through the person detector and the single-person backbone per person (`PeopleDetector`); the
message keeps the image's capture stamp and optical frame. A frame that cannot be decoded is
counted and logged under its cause, and an empty People2D is still published for an image with
nobody in it (so "nobody here" differs from "camera silent").
"""
from __future__ import annotations

import sys
import time
from collections import Counter

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image

from dense_warper_ros.backbones.onnx_runtime import INFERENCE_CHOICES
from dense_warper_ros.images import ImageError
from dense_warper_ros.msg import People2D
from dense_warper_ros.people_detection import PeopleDetector
from dense_warper_ros.ros.conversions import people_to_msg
from dense_warper_ros.ros.frame_processor import image_to_rgb, stamp_to_ns
from dense_warper_ros.ros.raw_frames import subscribe_frames
from dense_warper_ros.ros.params import BACKBONES, RELIABILITIES, TRANSPORTS, ParameterError
from dense_warper_ros.ros.spin import run_node

PARAMETERS = {
    "camera": ("cam0", "camera name (logs, /diagnostics)"),
    "topic": ("", "namespace of <ns>/image_raw[/compressed]; <ns>/people is published ('' = the camera name)"),
    "image_transport": ("raw", f"one of {TRANSPORTS}"),
    "qos_reliability": ("best_effort", f"image subscription, one of {RELIABILITIES} (sensor data default)"),
    "qos_depth": (1, "image subscription queue depth (1: always the newest image)"),
    "backbone": ("movenet_lightning", f"single-person backbone per detected person, one of {BACKBONES[:2]}"),
    "inference": ("auto", f"one of {INFERENCE_CHOICES}: what runs the backbone"),
    "device": ("auto", "auto, cpu, cuda or cuda:N"),
    "max_people": (6, "most people per image"),
    "min_score": (0.3, "joints below this confidence do not shape a person's crop"),
}


class PeopleNode(Node):
    def __init__(self, **kwargs):
        super().__init__("people", **kwargs)
        for name, (default, text) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=text, read_only=True))
        p = {name: self.get_parameter(name).value for name in PARAMETERS}
        self.camera = p["camera"]
        for name, allowed in (("image_transport", TRANSPORTS), ("backbone", BACKBONES[:2]),
                              ("qos_reliability", RELIABILITIES)):
            if p[name] not in allowed:
                raise ParameterError(f"parameter {name!r}: {p[name]!r} is not one of {allowed}")
        self.detect = _people_detector(p)
        self.drops: Counter = Counter()
        self.frames = 0
        ns = (p["topic"] or self.camera).rstrip("/")
        compressed = p["image_transport"] == "compressed"
        qos = QoSProfile(depth=max(int(p["qos_depth"]), 1), history=HistoryPolicy.KEEP_LAST,
                         reliability=ReliabilityPolicy.RELIABLE if p["qos_reliability"] == "reliable"
                         else ReliabilityPolicy.BEST_EFFORT)
        self.pub = self.create_publisher(People2D, f"{ns}/people", 10)
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        subscribe_frames(self, CompressedImage if compressed else Image,
                         f"{ns}/image_raw" + ("/compressed" if compressed else ""), qos, self._on_image,
                         lambda why: self._drop("undecodable", why))
        self.create_timer(1.0, self._diagnostics)
        self._logged: dict[str, float] = {}
        self.get_logger().info(f"{self.camera}: {ns}/image_raw -> {ns}/people, backbone {p['backbone']} "
                               f"on {self.detect.backbone.inference}")

    def _on_image(self, msg) -> None:
        try:
            rgb = image_to_rgb(msg)
        except ImageError as e:
            self._drop(e.cause, e.detail)
            return
        try:
            people = self.detect(rgb)
        except Exception as e:                   # noqa: BLE001 - one bad frame must not end the node
            self._drop("error", f"{type(e).__name__}: {e}")
            return
        self.frames += 1
        self.pub.publish(people_to_msg(people, frame_id=msg.header.frame_id, stamp_ns=stamp_to_ns(msg.header.stamp),
                                       width=rgb.shape[1], height=rgb.shape[0]))

    def _drop(self, cause: str, text: str) -> None:
        self.drops[cause] += 1
        now = time.monotonic()
        if now - self._logged.get(cause, -1e9) >= 10.0:
            self._logged[cause] = now
            self.get_logger().warning(f"{self.camera}: frame dropped ({cause}): {text} [{self.drops[cause]} so far]")

    def _diagnostics(self) -> None:
        values = {"frames": str(self.frames), **{f"drops_{k}": str(v) for k, v in sorted(self.drops.items())}}
        level = DiagnosticStatus.WARN if self.drops else DiagnosticStatus.OK
        st = DiagnosticStatus(level=level, name=f"dense_warper people: camera {self.camera}", hardware_id=self.camera,
                              message="ok" if not self.drops else f"{sum(self.drops.values())} frames dropped",
                              values=[KeyValue(key=k, value=v) for k, v in values.items()])
        arr = DiagnosticArray(status=[st])
        arr.header.stamp = self.get_clock().now().to_msg()
        self.pub_diag.publish(arr)


def _people_detector(p: dict) -> PeopleDetector:
    from dense_warper_ros.backbones.movenet_multipose import MultiPoseDetector, load_multipose
    from dense_warper_ros.devices import resolve_device
    from dense_warper_ros.pipeline import load_backbone
    dev = str(resolve_device(p["device"]))
    try:
        backbone = load_backbone(p["backbone"], device=dev, inference=p["inference"])   # ONNX Runtime: 1 thread
        detector = MultiPoseDetector(load_multipose(device=dev), max_people=int(p["max_people"]),
                                     inference=p["inference"])
    except (OSError, ValueError, ImportError) as e:
        raise ParameterError(f"cannot load the 2D models: {type(e).__name__}: {e}") from e
    return PeopleDetector(detector, backbone, min_score=float(p["min_score"]))


def main(args=None) -> int:
    """Spin until SIGINT or SIGTERM (`spin.run_node`)."""
    return run_node(PeopleNode, "people", args)


if __name__ == "__main__":
    sys.exit(main())
