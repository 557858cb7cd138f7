"""rosbag2 directories (MCAP + metadata.yaml) through PyPI `rosbags`, with rclpy's own CDR
serialization for the messages: what we write is byte for byte what `ros2 bag record` stores,
and what we read comes back as real rclpy message objects that the node's callbacks accept."""
from __future__ import annotations

import importlib
from pathlib import Path
from typing import Iterator

from rclpy.serialization import deserialize_message, serialize_message
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.rosbag2.metadata import ReaderError  # noqa: F401  (re-export for callers)
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

MSG_DIR_CANDIDATES = (Path(__file__).resolve().parents[2] / "msg",)


def _msg_class(msgtype: str):
    pkg, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), name)


def typestore():
    """rosbags typestore with the standard ROS 2 types plus this package's messages."""
    ts = get_typestore(Stores.ROS2_KILTED)
    msg_dir = next((d for d in MSG_DIR_CANDIDATES if d.is_dir()), None)
    if msg_dir is None:
        from ament_index_python.packages import get_package_share_directory
        msg_dir = Path(get_package_share_directory("dense_warper_ros")) / "msg"
    types = {}
    for f in sorted(msg_dir.glob("*.msg")):
        types.update(get_types_from_msg(f.read_text(), f"dense_warper_ros/msg/{f.stem}"))
    ts.register(types)
    return ts


def _latched_qos():
    """/tf_static as tf2 offers it: reliable, transient local, depth 1 (so `ros2 bag play`
    re-offers it latched)."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
    inf = QosTime(2147483647, 4294967295)
    return [Qos(QosHistory.KEEP_LAST, 1, QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL,
                inf, inf, QosLiveliness.AUTOMATIC, inf, avoid_ros_namespace_conventions=False)]


class BagWriter:
    """`with BagWriter(path) as w: w.write(topic, msg, stamp_ns)` (rclpy message objects)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._ts = typestore()
        self._writer = Writer(self.path, version=9, storage_plugin=StoragePlugin.MCAP)
        self._conns: dict[str, object] = {}

    def __enter__(self) -> "BagWriter":
        self._writer.open()
        return self

    def __exit__(self, *exc) -> None:
        self._writer.close()

    def describe(self, key: str, value: str) -> None:
        """A note in the bag's metadata.yaml (`custom_data`), e.g. what its ground truth is."""
        self._writer.set_custom_data(key, value)

    def write(self, topic: str, msg, stamp_ns: int) -> None:
        if topic not in self._conns:
            mod = type(msg).__module__.split(".")
            msgtype = f"{mod[0]}/{mod[1]}/{type(msg).__name__}"
            qos = _latched_qos() if topic == "/tf_static" else ()
            self._conns[topic] = self._writer.add_connection(topic, msgtype, typestore=self._ts,
                                                             offered_qos_profiles=qos)
        self._writer.write(self._conns[topic], int(stamp_ns), serialize_message(msg))


def read_messages(path: str | Path, topics: list[str] | None = None) -> Iterator[tuple[str, object, int]]:
    """(topic, rclpy message, log-time ns) in log-time order."""
    with Reader(Path(path)) as reader:
        conns = [c for c in reader.connections if topics is None or c.topic in topics]
        classes = {c.id: _msg_class(c.msgtype) for c in conns}
        for conn, t, raw in reader.messages(connections=conns):
            yield conn.topic, deserialize_message(bytes(raw), classes[conn.id]), t


def notes_of(path: str | Path) -> dict[str, str]:
    """The notes `BagWriter.describe` left in a bag's metadata.yaml (rosbag2's `custom_data`; empty
    for other bags)."""
    import yaml
    info = yaml.safe_load((Path(path) / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    return dict(info.get("custom_data") or {})


def topics_of(path: str | Path) -> dict[str, tuple[str, int]]:
    """topic -> (msgtype, message count)."""
    with Reader(Path(path)) as reader:
        return {c.topic: (c.msgtype, c.msgcount) for c in reader.connections}
