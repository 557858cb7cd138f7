"""Synthetic camera rigs: a ring generator, a Human3.6M-like preset, and YAML loading.

World Z up, metres; cameras in the package convention (`cameras.Camera`: X_cam = R X_world + t,
OpenCV optical frame). A ring rig places N cameras evenly on an arc of a circle around the origin
(where `data.motion.load_clip` centres every clip), all looking at one point above the origin.

YAML (a `rig:` section of a bench config, or a file holding only that section):

    rig:
      num_cameras: 4          # ring generator (all fields of RigConfig; omitted ones keep defaults)
      radius_m: 5.0
    # or an explicit list, each camera by centre + look_at (or R + t), K (or focal_px):
    rig:
      cameras:
        - {name: c0, centre: [4, 0, 1.5], look_at: [0, 0, 1], focal_px: 1000, width: 1000, height: 1000}
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import yaml

from dense_warper_ros.cameras import Camera, centred_intrinsics, look_at_camera, look_at_rotation

T = typing.TypeVar("T")


# --- YAML -> frozen dataclass (shared by the data and eval configs) -----------------------------
def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Convert a YAML value to the field's annotated type (lists -> tuples; int -> float)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(value, inner[0], where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], where) for v in value)
        if len(args) != len(value):
            raise ValueError(f"{where}: expected {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, where) for v, a in zip(value, args))
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected true/false, got {value!r}")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected a string, got {value!r}")
        return value
    return value


def config_from_dict(cls: type[T], data: Mapping[str, Any] | None, where: str = "") -> T:
    """Build frozen dataclass `cls` from a mapping; unknown keys and wrong types raise ValueError."""
    data = dict(data or {})
    where = where or cls.__name__
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls) if f.init}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; expected some of {sorted(known)}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    return cls(**kwargs)


def read_yaml(path: str | Path) -> dict:
    """A YAML mapping; `extends: other.yaml` (relative to the file) is merged underneath, per section."""
    path = Path(path)
    with open(path) as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    base = data.pop("extends", None)
    if base is None:
        return data
    merged = read_yaml(path.parent / base)
    for key, value in data.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


# --- rigs ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RigConfig:
    """A ring of cameras around the origin (used when `cameras` is empty)."""

    name: str = "h36m_like"
    num_cameras: int = 4                  # 2..8
    radius_m: float = 5.0                 # horizontal distance of every camera from the origin
    height_m: float = 1.6                 # camera height above the floor
    target_height_m: float = 1.0          # all cameras look at (0, 0, target_height_m)
    focal_px: float = 1145.0              # fx = fy (Human3.6M cameras: about 1145 px)
    width: int = 1000                     # image size in pixels
    height: int = 1000
    start_azimuth_deg: float = 45.0       # azimuth of camera 0 (0 = on the +x axis)
    arc_deg: float = 360.0                # cameras spread evenly over this arc (360: full ring)
    cameras: tuple[Mapping[str, Any], ...] = ()   # explicit cameras instead of the ring (see module doc)

    def __post_init__(self) -> None:
        if not self.cameras and not 2 <= self.num_cameras <= 8:
            raise ValueError(f"rig {self.name!r}: num_cameras must be in 2..8, got {self.num_cameras}")
        for name in ("radius_m", "focal_px"):
            if getattr(self, name) <= 0:
                raise ValueError(f"rig {self.name!r}: {name} must be > 0, got {getattr(self, name)}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"rig {self.name!r}: image size must be > 0, got {self.width}x{self.height}")
        if not 0 < self.arc_deg <= 360:
            raise ValueError(f"rig {self.name!r}: arc_deg must be in (0, 360], got {self.arc_deg}")


H36M_LIKE = RigConfig()   # 4 cameras at 90 deg, 5 m away, 1.6 m high, f = 1145 px, 1000 x 1000


def _explicit_camera(spec: Mapping[str, Any], index: int) -> Camera:
    spec = dict(spec)
    name = str(spec.pop("name", f"cam{index}"))
    width, height = int(spec.pop("width", 1000)), int(spec.pop("height", 1000))
    if "K" in spec:
        K = np.asarray(spec.pop("K"), dtype=np.float64)
        spec.pop("focal_px", None)
    elif "focal_px" in spec:
        K = centred_intrinsics(float(spec.pop("focal_px")), width, height)
    else:
        raise ValueError(f"camera {name!r}: give K or focal_px")
    if "R" in spec and "t" in spec:
        R, t = np.asarray(spec.pop("R")), np.asarray(spec.pop("t"))
    elif "centre" in spec and "look_at" in spec:
        centre = np.asarray(spec.pop("centre"), dtype=np.float64)
        R = look_at_rotation(centre, spec.pop("look_at"))
        t = -R @ centre
    else:
        raise ValueError(f"camera {name!r}: give R and t, or centre and look_at")
    dist = spec.pop("dist", [])
    dist_model = spec.pop("dist_model", "plumb_bob" if len(dist) else "none")
    if spec:
        raise ValueError(f"camera {name!r}: unknown key(s) {sorted(spec)}")
    return Camera(K=K, R=R, t=t, width=width, height=height, dist=dist, dist_model=dist_model, name=name)


def make_rig(cfg: RigConfig = H36M_LIKE) -> list[Camera]:
    """The rig's cameras (V of them), in order."""
    if cfg.cameras:
        cams = [_explicit_camera(spec, i) for i, spec in enumerate(cfg.cameras)]
        if not 2 <= len(cams) <= 8:
            raise ValueError(f"rig {cfg.name!r}: needs 2..8 cameras, got {len(cams)}")
        return cams
    step = cfg.arc_deg / cfg.num_cameras if cfg.arc_deg >= 360 else cfg.arc_deg / (cfg.num_cameras - 1)
    target = np.array([0.0, 0.0, cfg.target_height_m])
    cams = []
    for c in range(cfg.num_cameras):
        az = np.deg2rad(cfg.start_azimuth_deg + c * step)
        centre = np.array([cfg.radius_m * np.cos(az), cfg.radius_m * np.sin(az), cfg.height_m])
        cams.append(look_at_camera(position=centre, target=target, focal_px=cfg.focal_px, width=cfg.width,
                                   height=cfg.height, name=f"cam{c}"))
    return cams


def ring_rig(num_cameras: int = 4, **fields: Any) -> list[Camera]:
    """The default ring (`H36M_LIKE`) with `num_cameras` cameras and any other `RigConfig` field
    changed, e.g. `ring_rig(2, start_azimuth_deg=10.0)`: one set of defaults for every ring."""
    return make_rig(dataclasses.replace(H36M_LIKE, num_cameras=num_cameras, **fields))


def rig_from_dict(data: Mapping[str, Any] | None) -> RigConfig:
    data = dict(data or {})
    if "cameras" in data:
        data["cameras"] = tuple(data["cameras"])
    return config_from_dict(RigConfig, data, "rig")


def load_rig(path: str | Path) -> RigConfig:
    """RigConfig from a YAML file holding a `rig:` section (or only the rig's fields)."""
    data = read_yaml(path)
    return rig_from_dict(data.get("rig", data))


def rig_summary(cfg: RigConfig, cameras: list[Camera]) -> dict:
    """A JSON-able description (for benchmark outputs)."""
    return {"name": cfg.name, "num_cameras": len(cameras),
            "cameras": [{"name": c.name, "K": c.K.tolist(), "R": c.R.tolist(), "t": c.t.tolist(),
                         "width": c.width, "height": c.height} for c in cameras],
            "config": {k: v for k, v in dataclasses.asdict(cfg).items() if k != "cameras"}}
