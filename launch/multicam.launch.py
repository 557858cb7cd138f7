"""ros2 launch dense_warper_ros multicam.launch.py [params_file:=...] [use_sim_time:=true]
    [namespace:=...] [rviz:=true] [log_level:=info]

Thin by design: parameters and remappings come from dense_warper_ros.ros.launch_logic (tested
without the `launch` package)."""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from dense_warper_ros.ros.launch_logic import node_arguments


def _nodes(context):
    params_file = LaunchConfiguration("params_file").perform(context)
    sim = LaunchConfiguration("use_sim_time").perform(context).lower() in ("1", "true", "yes")
    args = node_arguments(params_file, use_sim_time=sim)
    share = get_package_share_directory("dense_warper_ros")
    return [
        Node(package="dense_warper_ros", executable="dense_warper_node", name="dense_warper",
             namespace=LaunchConfiguration("namespace"), output="screen",
             parameters=[args["parameters"]], remappings=args["remappings"],
             arguments=["--ros-args", "--log-level", LaunchConfiguration("log_level").perform(context)]),
        Node(package="rviz2", executable="rviz2", name="rviz2", output="log",
             arguments=["-d", os.path.join(share, "config", "dense_warper.rviz")],
             parameters=[{"use_sim_time": sim}], condition=IfCondition(LaunchConfiguration("rviz"))),
    ]


def generate_launch_description():
    share = get_package_share_directory("dense_warper_ros")
    return LaunchDescription([
        DeclareLaunchArgument("params_file", default_value=os.path.join(share, "config", "multicam.yaml")),
        DeclareLaunchArgument("use_sim_time", default_value="false"),
        DeclareLaunchArgument("namespace", default_value=""),
        DeclareLaunchArgument("rviz", default_value="true"),
        DeclareLaunchArgument("log_level", default_value="info"),
        OpaqueFunction(function=_nodes),
    ])
