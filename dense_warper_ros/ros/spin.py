"""How the package's nodes run as processes: spin until SIGINT or SIGTERM, clean shutdown.

rclpy's own signal handler would shut the context down under a node's worker threads (a publish
mid-pose then fails); here the interrupt reaches the main thread, the node's `stop()` (when it has
one) joins its workers first, and only then the node and the context go. A start-up error
(`ParameterError`) is one line on stderr and exit code 2.
"""
from __future__ import annotations

import signal
import sys
from typing import Callable

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

from dense_warper_ros.ros.params import ParameterError


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def run_node(make_node: Callable[[], Node], name: str, args=None) -> int:
    """Build the node with `make_node` and spin it until interrupted -> the exit code."""
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    node = None
    try:
        node = make_node()
        rclpy.spin(node)
    except ParameterError as e:
        print(f"{name}: {e}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            getattr(node, "stop", lambda: None)()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
