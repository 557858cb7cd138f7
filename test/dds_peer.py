"""A second ROS 2 process for multi-process tests: subscribes to one topic and prints each message
as a JSON line on stdout (images are summarised by size and CRC32 of their bytes).

    python test/dds_peer.py echo <pkg/msg/Type> <topic> --count N [--qos reliable|sensor] [--timeout S]

It prints "READY" once its subscription exists and exits after N messages or the timeout. A test
starts it with `Peer`.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy, HistoryPolicy, qos_profile_sensor_data


class Peer:
    """This script as a subprocess; `wait_ready()` then `results()` after publishing."""

    def __init__(self, *args: str, timeout: float = 30.0):
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), *args, "--timeout", str(timeout)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
        self.timeout = timeout

    def wait_ready(self) -> None:
        line = self.proc.stdout.readline()
        if line.strip() != "READY":
            err = self.proc.stderr.read()
            raise RuntimeError(f"peer did not start: {line!r} {err}")

    def results(self) -> list[dict]:
        out, err = self.proc.communicate(timeout=self.timeout + 10)
        if self.proc.returncode != 0:
            raise RuntimeError(f"peer failed ({self.proc.returncode}): {err}")
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def import_type(name: str):
    pkg, kind, cls = name.split("/")
    return getattr(importlib.import_module(f"{pkg}.{kind}"), cls)


def to_jsonable(msg):
    """A ROS message -> plain dict/list/number tree (bytes and arrays summarised)."""
    if hasattr(msg, "get_fields_and_field_types"):
        if type(msg).__name__ == "Image":
            data = np.frombuffer(msg.data, np.uint8)
            return {"header": to_jsonable(msg.header), "height": msg.height, "width": msg.width,
                    "encoding": msg.encoding, "step": msg.step, "nbytes": int(data.size),
                    "crc32": zlib.crc32(data.tobytes())}
        return {k: to_jsonable(getattr(msg, k)) for k in msg.get_fields_and_field_types()}
    if isinstance(msg, (list, tuple)) or hasattr(msg, "tolist"):
        return [to_jsonable(v) for v in (msg.tolist() if hasattr(msg, "tolist") else msg)]
    if isinstance(msg, float) and msg != msg:
        return "nan"
    return msg


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["echo"])
    ap.add_argument("type")
    ap.add_argument("topic")
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--qos", choices=["reliable", "sensor"], default="reliable")
    ap.add_argument("--timeout", type=float, default=30.0)
    args = ap.parse_args()

    rclpy.init()
    node = rclpy.create_node("dds_peer")
    qos = qos_profile_sensor_data if args.qos == "sensor" else QoSProfile(
        depth=100, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
    got = []

    def on_msg(msg):
        got.append(1)
        rec = to_jsonable(msg)
        rec["_recv_ns"] = time.time_ns()
        print(json.dumps(rec), flush=True)

    node.create_subscription(import_type(args.type), args.topic, on_msg, qos)
    print("READY", flush=True)
    deadline = time.monotonic() + args.timeout
    while len(got) < args.count and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    node.destroy_node()
    rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
