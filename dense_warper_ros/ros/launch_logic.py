"""What multicam.launch.py decides, without the `launch` package (not installable everywhere): the
launch arguments with their descriptions, the check of the params file, whether RViz starts, and
the same `--ros-args` for a plain process. The launch file only wraps these in launch_ros actions;
tests start the node with the same values."""
from __future__ import annotations

from pathlib import Path

import yaml

from dense_warper_ros.ros.params import PARAMETERS

# name -> (default, description); the params file default is resolved by the launch file
LAUNCH_ARGUMENTS: dict[str, tuple[str, str]] = {
    "params_file": ("", "ROS parameter file of the node (default: the package's config/multicam.yaml)"),
    "use_sim_time": ("false", "true when replaying a bag with --clock: the node's clock follows /clock"),
    "namespace": ("", "namespace of the node; camera topics without a leading / resolve under it"),
    "rviz": ("auto", "true | false | auto: auto starts RViz only when rviz2 is installed (headless machines "
                     "run without it)"),
    "log_level": ("info", "the node's log level: debug | info | warn | error | fatal"),
    "layout": ("all_in_one", "all_in_one | split: split starts one people_node per camera (images in, 2D people "
                             "out; run them on the camera hosts) and the fusion node with input:=keypoints"),
}
LAYOUTS = ("all_in_one", "split")
RVIZ_CHOICES = ("true", "false", "auto")


def load_params_file(path: str | Path) -> dict:
    """A ROS parameter file -> the dense_warper node's parameters. Only node sections
    (`<name or /**>: {ros__parameters: ...}`) are allowed, so rcl's own parser (--params-file,
    `parameters=[path]`) reads the same file; unknown parameter names are refused."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a ROS parameter file (a mapping of node names at the top)")
    node_params: dict = {}
    for key, section in data.items():
        if not (isinstance(section, dict) and "ros__parameters" in section):
            raise ValueError(f"{path}: top-level key {key!r} is not a node section with 'ros__parameters'; "
                             "rcl cannot parse such a file")
        node_params.update(section["ros__parameters"])
    unknown = sorted(set(node_params) - set(PARAMETERS) - {"use_sim_time"})
    if unknown:
        raise ValueError(f"{path}: unknown parameters {unknown}")
    return node_params


def node_arguments(params_file: str | Path, *, use_sim_time: bool = False) -> dict:
    """The parameters the launch file gives the node: the file's, plus use_sim_time."""
    return {"parameters": dict(load_params_file(params_file), use_sim_time=bool(use_sim_time))}


def start_rviz(choice: str, rviz_found: bool) -> tuple[bool, str | None]:
    """rviz:=true|false|auto and whether rviz2 is installed -> (start it, warning to log)."""
    choice = choice.strip().lower()
    if choice not in RVIZ_CHOICES:
        raise ValueError(f"launch argument rviz:={choice!r} is not one of {RVIZ_CHOICES}")
    if choice == "false":
        return False, None
    if not rviz_found:
        return False, ("rviz:=true but rviz2 is not installed: starting the node without it" if choice == "true"
                       else None)
    return True, None


def ros_args(args: dict, *, log_level: str = "info", params_file: str | Path | None = None) -> list[str]:
    """The same as `--ros-args` for a plain process (tests, machines without `launch`)."""
    out = ["--ros-args", "--log-level", log_level]
    if params_file is not None:
        out += ["--params-file", str(params_file)]
    for k, v in args["parameters"].items():
        out += ["-p", f"{k}:={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"]
    return out


def split_layout(node_params: dict) -> tuple[dict, list[dict]]:
    """The split layout from the node's parameters: the fusion node's overrides (2D people in) and,
    per camera, the parameters of its people_node (same topics, transport, backbone and device)."""
    cams = list(node_params.get("cameras", PARAMETERS["cameras"][0]))
    topics = list(node_params.get("camera_topics") or cams)
    shared = {k: node_params[k] for k in ("image_transport", "backbone", "inference", "device") if k in node_params}
    people = [dict(shared, camera=c, topic=t) for c, t in zip(cams, topics)]
    return {"input": "keypoints"}, people


def check_layout(choice: str) -> str:
    choice = choice.strip().lower()
    if choice not in LAYOUTS:
        raise ValueError(f"launch argument layout:={choice!r} is not one of {LAYOUTS}")
    return choice
