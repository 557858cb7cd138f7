"""Bag replay evaluation: a small rendered recording with ground truth goes through a real
rosbag2 (MCAP) bag and `evaluate`; the report's MPJPE equals the same frames replayed without a
bag and scored with the benchmark's metric, and the output bag carries one skeleton per frame."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="rclpy missing: run `make setup`")

from dense_warper_ros.eval import metrics  # noqa: E402
from dense_warper_ros.ros.offline_replay import match_ground_truth, replay_recording  # noqa: E402


@pytest.fixture(scope="module")
def recording():
    from dense_warper_ros.data.synthetic_recording import synthetic_recording
    return synthetic_recording("walk", num_frames=12, size=256)


def test_replay_of_a_synthetic_bag_matches_the_direct_figure(recording, tmp_path):
    from dense_warper_ros.pipeline import build_pipeline
    from dense_warper_ros.ros.bags import read_messages, topics_of
    from dense_warper_ros.ros.evaluate import main as evaluate
    from dense_warper_ros.ros.record import write_bag

    rec = recording
    bag = write_bag(rec, tmp_path / "synthetic", progress=False)
    assert evaluate([str(bag), "--out", str(tmp_path / "eval"), "--timing", "windowed", "--device", "cpu"]) == 0
    report = json.loads((tmp_path / "eval/report.json").read_text())
    assert report["frames_in"] == report["poses_out"] == len(rec.frames)
    assert abs(report["output_rate_hz"] - report["sum_camera_rate_hz"]) < 0.01 * report["sum_camera_rate_hz"]
    # the report says what it scored against: the recording's ground truth, named in the bag
    assert report["ground_truth"] == rec.truth_name and rec.truth_name.startswith("exact")
    assert f"`/ground_truth/skeletons`: {rec.truth_name})" in (tmp_path / "eval/summary.md").read_text()

    # the same frames without a bag, scored with the benchmark's metric
    pipe = build_pipeline(num_cameras=4, timing="windowed", offline=True, device="cpu")
    _, pred, gt = match_ground_truth(replay_recording(rec, pipe), dict(rec.ground_truth))
    direct = metrics.mpjpe_root_aligned(pred, gt) * 1000
    assert report["accuracy"]["matched"] == len(rec.frames)
    assert report["accuracy"]["mpjpe_root_mm"] == pytest.approx(direct, abs=1e-9)
    assert np.isfinite(direct) and direct < 400     # the mannequin is found, roughly

    # output bag: reads back with rosbags, one skeleton (and marker set) per input frame
    out_bag = tmp_path / "eval/output_bag"
    topics = topics_of(out_bag)
    assert topics["/dense_warper/skeletons"] == ("dense_warper_ros/msg/Skeleton3DArray", len(rec.frames))
    assert topics["/dense_warper/markers"][1] == len(rec.frames)
    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec
              for _, m, _ in read_messages(out_bag, ["/dense_warper/skeletons"])]
    assert stamps == [s for _, s, _ in rec.frames]
    for key in ("contact_sheet", "video", "skeleton_3d", "error_over_time"):
        assert (tmp_path / "eval" / report["pictures"][key].split("/")[-1]).stat().st_size > 1000
