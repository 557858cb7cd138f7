"""`python -m dense_warper_ros.ros.record`: the recording's image topics follow `--raw` for every
source (CompressedImage JPEGs by default, lossless sensor_msgs/Image with `--raw`)."""
from __future__ import annotations

import pytest

pytest.importorskip("rclpy", reason="rclpy missing: run `make setup`")

from dense_warper_ros.ros.bags import notes_of, topics_of  # noqa: E402
from dense_warper_ros.ros.record import main  # noqa: E402


def image_topics(bag) -> dict[str, str]:
    return {t: kind for t, (kind, _) in topics_of(bag).items() if "/image_raw" in t}


@pytest.mark.parametrize("raw", [False, True], ids=["compressed", "raw"])
def test_synthetic_recording_follows_raw(tmp_path, raw):
    out = tmp_path / "walk"
    assert main(["synthetic", str(out), "--frames", "4"] + (["--raw"] if raw else [])) == 0
    topics = image_topics(out)
    assert len(topics) == 4                                 # the default rig's 4 cameras
    assert notes_of(out) == {"dense_warper_ros/ground_truth": "exact (the clip's motion-capture joints)"}
    if raw:
        assert all(t.endswith("/image_raw") and kind == "sensor_msgs/msg/Image" for t, kind in topics.items())
    else:
        assert all(t.endswith("/image_raw/compressed") and kind == "sensor_msgs/msg/CompressedImage"
                   for t, kind in topics.items())
