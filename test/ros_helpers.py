"""Helpers for tests that talk over real DDS between processes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


class Peer:
    """A `dds_peer.py` subprocess; `wait_ready()` then `results()` after publishing."""

    def __init__(self, *args: str, timeout: float = 30.0):
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "dds_peer.py"), *args, "--timeout", str(timeout)],
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


def wait_for_subscribers(node, publisher, count: int = 1, timeout: float = 15.0) -> None:
    """Spin until `publisher` sees `count` matched subscriptions (discovery done)."""
    import rclpy
    deadline = time.monotonic() + timeout
    while publisher.get_subscription_count() < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no subscriber on {publisher.topic_name} after {timeout} s")
        rclpy.spin_once(node, timeout_sec=0.05)
