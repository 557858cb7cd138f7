"""What multicam.launch.py computes, without the `launch` package (not installable everywhere):
the node's parameters and remappings from the params file and the launch arguments. The launch
file only wraps these in launch_ros actions; tests start the node with the same values."""
from __future__ import annotations

from pathlib import Path

import yaml

from dense_warper_ros.ros.params import PARAMETERS


def load_params_file(path: str | Path) -> tuple[dict, dict[str, str]]:
    """params file -> (node parameters, camera name -> topic namespace)."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    node_params: dict = {}
    for key, section in data.items():
        if key != "camera_topics" and isinstance(section, dict) and "ros__parameters" in section:
            node_params.update(section["ros__parameters"])
    unknown = sorted(set(node_params) - set(PARAMETERS) - {"use_sim_time"})
    if unknown:
        raise ValueError(f"{path}: unknown parameters {unknown}")
    topics = {str(k): str(v) for k, v in (data.get("camera_topics") or {}).items()}
    return node_params, topics


def remappings(cameras: list[str], camera_topics: dict[str, str]) -> list[tuple[str, str]]:
    """The node subscribes <cam>/image_raw[/compressed] and <cam>/camera_info; map them under each
    camera's driver namespace."""
    out = []
    for cam in cameras:
        ns = camera_topics.get(cam)
        if not ns or ns.rstrip("/") == cam:
            continue
        ns = ns.rstrip("/")
        for leaf in ("image_raw", "image_raw/compressed", "camera_info"):
            out.append((f"{cam}/{leaf}", f"{ns}/{leaf}"))
    return out


def node_arguments(params_file: str | Path, *, use_sim_time: bool = False) -> dict:
    """Everything the launch file passes to the node: parameters, remappings."""
    p, topics = load_params_file(params_file)
    p = dict(p, use_sim_time=bool(use_sim_time))
    cams = list(p.get("cameras", PARAMETERS["cameras"][0]))
    return {"parameters": p, "remappings": remappings(cams, topics)}


def ros_args(args: dict, *, log_level: str = "info") -> list[str]:
    """The same as `--ros-args` for a plain process (tests, machines without `launch`)."""
    out = ["--ros-args", "--log-level", log_level]
    for k, v in args["parameters"].items():
        out += ["-p", f"{k}:={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"]
    for a, b in args["remappings"]:
        out += ["-r", f"{a}:={b}"]
    return out
