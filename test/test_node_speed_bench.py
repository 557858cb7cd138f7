"""bench/node_speed.py without the node: which rows a command line asks for, the ping-pong replay
(no teleport at the wrap, so the tracker's births and deaths are the node's own), the keypoint feed
(People2D per camera of the synthetic scene) and the table a row prints as."""
import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("node_speed", REPO / "bench" / "node_speed.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod                  # its dataclasses resolve annotations through it
    spec.loader.exec_module(mod)
    return mod


def _scenarios(ns, *argv: str) -> list:
    old = sys.argv
    sys.argv = ["node_speed.py", *argv]
    try:
        return [(s.input, s.people, s.max_people, s.inference) for s in ns.scenarios(ns.parse_args())]
    finally:
        sys.argv = old


def test_rows_of_a_command_line():
    ns = _bench()
    assert _scenarios(ns) == [("images", 1, 1, "auto")]                     # as the bench always did
    assert _scenarios(ns, "--people", "1", "2") == [("images", 1, 1, "auto"), ("images", 2, 4, "auto")]
    assert _scenarios(ns, "--people", "1", "--max-people", "1", "4", "--inference", "torch", "onnxruntime") == [
        ("images", 1, 1, "torch"), ("images", 1, 1, "onnxruntime"), ("images", 1, 4, "torch"),
        ("images", 1, 4, "onnxruntime")]
    assert _scenarios(ns, "--keypoints-people", "1", "3") == [("keypoints", 1, 4, "auto"), ("keypoints", 3, 4, "auto")]


def test_replay_ping_pongs_without_a_jump():
    ns = _bench()
    feed = ns.Feed(rec=None, items=[[0, 1, 2, 3], [7]], msg_type=object, suffix="x", to_msg=None, source="")
    assert [feed.item(0, j) for j in range(10)] == [0, 1, 2, 3, 2, 1, 0, 1, 2, 3]
    assert [feed.item(1, j) for j in range(3)] == [7, 7, 7]


def test_keypoint_feed_and_its_row():
    pytest.importorskip("rclpy", reason="rclpy missing: run `make setup`")
    from dense_warper_ros.ros.conversions import people_from_msg

    ns = _bench()
    feed = ns.keypoint_feed(3, 2, fps=10.0)
    assert feed.rec.names == ["cam0", "cam1", "cam2"] and feed.suffix == "people"
    assert all(len(items) >= 39 for items in feed.items)                   # 4 s at 10 Hz per camera
    msg = feed.to_msg(1, 1_700_000_000_000_000_000, feed.item(1, 5))
    assert msg.header.frame_id == "cam1_optical" and msg.image_width == feed.rec.cameras[1].width
    assert 1 <= len(people_from_msg(msg)) <= 3                              # two people, a false one maybe
    row = {"label": "keypoints, 2 p, max 4", "cameras": 3, "inference": "none", "fps_per_camera": 10.0,
           "sum_camera_rate_hz": 30.0, "output_rate_hz": 20.0, "poses_per_s": 38.0, "mean_people_per_instant": 1.9,
           "good_output_rate_hz": 0.0, "latency_ms": {50: 30.0, 95: 80.0, 99: 90.0}, "dropped_frames": 10,
           "frames_sent": 300, "node_cpu_percent": 40.0, "node_rss_mib_start_end": [300.0, 400.0],
           "tracker": dict.fromkeys(ns.TRACKER_KEYS, None) | {"people_tracked": 2, "births": 2, "reidentified": 1},
           "time_split_s": {"backbone_p50_s": 0.001, "fusion_p50_s": 0.024}}
    header, rule, line = ns.table([row], hostile=False).splitlines()
    assert header.count("|") == rule.count("|") == line.count("|")
    assert "| 2 / 2 / 1 / - |" in line and "| 1 / 24 ms |" in line
