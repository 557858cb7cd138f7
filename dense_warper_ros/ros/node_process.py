"""Driving the node from another process over real DDS, for the multi-process tests and the node
benchmark: start it as a subprocess, spin a local node until something holds, read /diagnostics."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable

import rclpy
from rclpy.node import Node
from rclpy.publisher import Publisher

from dense_warper_ros.ros.launch_logic import ros_args


class NodeProcess:
    """`python -m dense_warper_ros.ros.node --ros-args ...` (or another node's `module`) as a
    subprocess; `params` override those of `params_file`, as `-p` does after `--params-file`. Its
    output is read as it comes (a full pipe would block the node's logging, and with it the worker
    that logs); `stop()` ends it with SIGINT (as Ctrl-C does) and returns what it printed."""

    def __init__(self, params: dict, *, params_file: str | Path | None = None, keep_lines: int = 20000,
                 module: str = "dense_warper_ros.ros.node"):
        args = ros_args({"parameters": params}, params_file=params_file)
        self.proc = subprocess.Popen([sys.executable, "-m", module, *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env=os.environ.copy())
        self._lines: deque[str] = deque(maxlen=keep_lines)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._lines.append(line)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        """What the node printed so far (the last `keep_lines` lines)."""
        return "".join(list(self._lines))

    def wait(self, timeout_s: float) -> tuple[int, str]:
        """Wait for the process to end by itself -> (exit code, output); TimeoutExpired if it does not."""
        code = self.proc.wait(timeout=timeout_s)
        self._reader.join(timeout=5.0)
        return code, self.output()

    def stop(self, timeout_s: float = 20.0) -> str:
        """SIGINT, then SIGKILL if it has not exited after `timeout_s` -> its output."""
        if self.alive():
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(timeout=5.0)
        return self.output()


def spin_until(node: Node, predicate: Callable[[], bool], timeout: float) -> bool:
    """Spin `node` until `predicate()` holds or `timeout` s pass -> whether it holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        rclpy.spin_once(node, timeout_sec=0.05)
    return predicate()


def wait_for_subscribers(node: Node, publisher: Publisher, count: int = 1, timeout: float = 15.0) -> None:
    """Spin until `publisher` sees `count` matched subscriptions (discovery done); raises
    TimeoutError naming the topic after `timeout` s."""
    if not spin_until(node, lambda: publisher.get_subscription_count() >= count, timeout):
        raise TimeoutError(f"no subscriber on {publisher.topic_name} after {timeout} s")


def diagnostics_values(diag) -> dict[str, dict[str, str]]:
    """hardware_id -> {key: value} of one DiagnosticArray, with '_level' (int) and '_message' added."""
    return {s.hardware_id: {**{kv.key: kv.value for kv in s.values}, "_level": int.from_bytes(s.level, "little")
                            if isinstance(s.level, bytes) else int(s.level), "_message": s.message}
            for s in diag.status}
