"""Interfaces a real ROS system relies on: the TF fallback's type hash, bags, launch logic,
parameter validation."""
import json
import os
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy missing: run `make setup`")
from rclpy.parameter import Parameter  # noqa: E402

from dense_warper_ros.ros import launch_logic, params  # noqa: E402
from dense_warper_ros.ros.bags import BagWriter, read_messages, topics_of, typestore  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def test_fallback_tfmessage_has_the_official_type_hash():
    """Real tf2 nodes only talk to a TFMessage whose RIHS01 hash matches theirs."""
    import tf2_msgs
    pkg = Path(tf2_msgs.__file__).resolve().parents[3]      # .../lib/python3.11/site-packages/tf2_msgs
    desc = Path(os.environ["AMENT_PREFIX_PATH"].split(":")[0]) / "share/tf2_msgs/msg/TFMessage.json"
    if not desc.exists():
        pytest.skip(f"tf2_msgs is a system install ({pkg}), not the fallback")
    ours = json.loads(desc.read_text())["type_hashes"][0]["hash_string"]
    ts = typestore()
    official = ts.hash_rihs01("tf2_msgs/msg/TFMessage")
    assert ours == official


def test_skeleton_bag_round_trip(tmp_path):
    from dense_warper_ros.msg import Skeleton3D, Skeleton3DArray
    msgs = []
    with BagWriter(tmp_path / "bag") as w:
        for k in range(3):
            m = Skeleton3DArray(skeletons=[Skeleton3D(id=k, format="h36m17", joint_names=["a"])])
            m.header.stamp.sec = 10 + k
            w.write("/skeletons", m, (10 + k) * 10**9)
            msgs.append(m)
    assert topics_of(tmp_path / "bag") == {"/skeletons": ("dense_warper_ros/msg/Skeleton3DArray", 3)}
    back = list(read_messages(tmp_path / "bag"))
    assert [m for _, m, _ in back] == msgs
    assert [t for _, _, t in back] == [(10 + k) * 10**9 for k in range(3)]


def test_launch_logic_reads_the_shipped_params_file():
    args = launch_logic.node_arguments(REPO / "config/multicam.yaml", use_sim_time=True)
    p = args["parameters"]
    assert p["use_sim_time"] is True and p["cameras"] == ["cam0", "cam1", "cam2", "cam3"]
    assert p["camera_topics"] == ["/cam0", "/cam1", "/cam2", "/cam3"]
    cli = launch_logic.ros_args(args)
    assert "-p" in cli and "cameras:=[cam0, cam1, cam2, cam3]" in cli


def test_launch_logic_refuses_unknown_parameters(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("/**:\n  ros__parameters:\n    camras: [a, b]\n")
    with pytest.raises(ValueError, match="camras"):
        launch_logic.load_params_file(f)


def test_launch_logic_refuses_what_rcl_cannot_parse(tmp_path):
    """A top-level key that is not a node section makes rcl refuse the whole file."""
    f = tmp_path / "p.yaml"
    f.write_text("/**:\n  ros__parameters:\n    cameras: [a, b]\ncamera_topics:\n  a: /a\n")
    with pytest.raises(ValueError, match="camera_topics"):
        launch_logic.load_params_file(f)


@pytest.mark.parametrize("choice,found,start,warns", [
    ("auto", True, True, False), ("auto", False, False, False), ("true", True, True, False),
    ("true", False, False, True), ("false", True, False, False), ("False", False, False, False),
])
def test_rviz_starts_only_where_it_is_installed(choice, found, start, warns):
    got, warning = launch_logic.start_rviz(choice, found)
    assert got == start and (warning is not None) == warns


def test_rviz_choice_is_checked_and_every_launch_argument_is_described():
    with pytest.raises(ValueError, match="rviz"):
        launch_logic.start_rviz("maybe", True)
    assert all(len(text) > 20 for _, text in launch_logic.LAUNCH_ARGUMENTS.values())
    assert launch_logic.LAUNCH_ARGUMENTS["rviz"][0] == "auto"


def test_real_launch_description_declares_described_arguments():
    """With the real `launch` package (a user's ROS install), the launch file builds and declares
    every argument with its description."""
    pytest.importorskip("launch_ros", reason="launch_ros is not installed here (a real ROS install has it)")
    import importlib.util
    spec = importlib.util.spec_from_file_location("multicam_launch", REPO / "launch/multicam.launch.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    from launch.actions import DeclareLaunchArgument
    declared = {a.name: a.description for a in mod.generate_launch_description().entities
                if isinstance(a, DeclareLaunchArgument)}
    assert declared == {k: v for k, (_, v) in launch_logic.LAUNCH_ARGUMENTS.items()}


@pytest.mark.parametrize("name,value,match", [
    ("mode", "fast", "'mode'"), ("cameras", ["a"], "at least 2"), ("device", "gpu0", "'device'"),
    ("min_views", 5, "min_views"), ("timing", "late", "'timing'"), ("max_fused_views", 1, "max_fused_views"),
])
def test_bad_parameter_values_are_named(name, value, match):
    rclpy.init()
    try:
        node = rclpy.create_node("p", parameter_overrides=[Parameter(name, value=value)],
                                 automatically_declare_parameters_from_overrides=False)
        params.declare(node)
        node.set_parameters([Parameter(name, value=value)]) if name != "cameras" else None
        with pytest.raises(params.ParameterError, match=match):
            params.read(node)
        node.destroy_node()
    finally:
        rclpy.try_shutdown()


def test_out_of_range_values_are_refused_at_start_naming_the_parameter():
    rclpy.init()
    try:
        node = rclpy.create_node("p2", parameter_overrides=[Parameter("max_view_age", value=-1.0)],
                                 automatically_declare_parameters_from_overrides=False)
        with pytest.raises(params.ParameterError, match="max_view_age.*-1.0"):
            params.declare(node)
        node.destroy_node()
    finally:
        rclpy.try_shutdown()


def test_parameters_read_at_start_are_read_only():
    """`ros2 param set` on a parameter the node only reads at start is refused, not ignored."""
    rclpy.init()
    try:
        node = rclpy.create_node("p3", parameter_overrides=[Parameter("outlier_threshold", value=2.5)],
                                 automatically_declare_parameters_from_overrides=False)
        params.declare(node)
        assert params.read(node).outlier_threshold == 2.5
        res = node.set_parameters([Parameter("outlier_threshold", value=1.0)])[0]
        assert not res.successful and "read-only" in res.reason
        assert node.get_parameter("outlier_threshold").value == 2.5
        node.destroy_node()
    finally:
        rclpy.try_shutdown()


def test_camera_topics_default_to_the_names_and_must_match_them():
    rclpy.init()
    try:
        node = rclpy.create_node("p4", parameter_overrides=[Parameter("cameras", value=["a", "b"])],
                                 automatically_declare_parameters_from_overrides=False)
        params.declare(node)
        assert params.read(node).camera_topics == ("a", "b")
        node.destroy_node()
        node = rclpy.create_node("p5", parameter_overrides=[
            Parameter("cameras", value=["a", "b"]), Parameter("camera_topics", value=["/x/color/"])],
            automatically_declare_parameters_from_overrides=False)
        params.declare(node)
        with pytest.raises(params.ParameterError, match="camera_topics"):
            params.read(node)
        node.destroy_node()
    finally:
        rclpy.try_shutdown()


def test_parameter_descriptions_say_what_the_scheduler_does():
    """`ros2 param describe` text: live mode keeps each camera's newest frames and serves the cameras
    in turn (least recently served first); it does not drop the oldest frames or take the oldest head."""
    text = {name: desc.description for name, (_, desc) in params.PARAMETERS.items()}
    assert not any("oldest" in t for t in text.values()), [n for n, t in text.items() if "oldest" in t]
    assert "least recently" in text["queue_size"] and "in turn" in text["mode"]
    assert all(len(t) > 15 for t in text.values())
