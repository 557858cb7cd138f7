"""ros2 launch dense_warper_ros multicam.launch.py [params_file:=...] [use_sim_time:=true]
    [namespace:=...] [rviz:=auto|true|false] [log_level:=info] [layout:=all_in_one|split]

Thin by design: the arguments, the params-file check and the RViz decision come from
dense_warper_ros.ros.launch_logic (tested without the `launch` package). Everything is decided
before any process starts, so a bad file or a missing rviz2 never leaves a node running alone."""
import os

from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, LogInfo, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from dense_warper_ros.ros.launch_logic import (LAUNCH_ARGUMENTS, check_layout, load_params_file, split_layout,
                                               start_rviz)


def _installed(package: str) -> bool:
    try:
        get_package_share_directory(package)
        return True
    except PackageNotFoundError:
        return False


def _actions(context):
    share = get_package_share_directory("dense_warper_ros")
    params_file = LaunchConfiguration("params_file").perform(context) or os.path.join(share, "config", "multicam.yaml")
    node_params = load_params_file(params_file)          # refuse a bad file before anything starts
    sim = LaunchConfiguration("use_sim_time").perform(context).lower() in ("1", "true", "yes")
    rviz, warning = start_rviz(LaunchConfiguration("rviz").perform(context), _installed("rviz2"))
    split = check_layout(LaunchConfiguration("layout").perform(context)) == "split"
    fusion, people = split_layout(node_params) if split else ({}, [])
    log = ["--ros-args", "--log-level", LaunchConfiguration("log_level").perform(context)]
    ns = LaunchConfiguration("namespace")
    actions = [Node(package="dense_warper_ros", executable="dense_warper_node", name="dense_warper",
                    namespace=ns, output="screen", parameters=[params_file, {"use_sim_time": sim, **fusion}],
                    arguments=log)]
    actions += [Node(package="dense_warper_ros", executable="people_node", name=f"people_{p['camera']}",
                     namespace=ns, output="screen", parameters=[{"use_sim_time": sim, **p}], arguments=log)
                for p in people]
    if warning:
        actions.insert(0, LogInfo(msg=f"WARNING: {warning}"))
    if rviz:
        actions.append(Node(package="rviz2", executable="rviz2", name="rviz2", output="log",
                            arguments=["-d", os.path.join(share, "config", "dense_warper.rviz")],
                            parameters=[{"use_sim_time": sim}]))
    return actions


def generate_launch_description():
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=text)
         for name, (default, text) in LAUNCH_ARGUMENTS.items()] + [OpaqueFunction(function=_actions)])
