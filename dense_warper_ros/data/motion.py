"""Ground-truth human motion: pybullet's DeepMimic clips -> Human3.6M-17 joints in metres.

Why this source: the 15 clips shipped in `pybullet_data/data/motions` are motion capture retargeted
to a rigid humanoid, so forward kinematics (FK) gives exact joint centres with constant bone lengths,
with no download. Frames are `[dt, root xyz, root quat wxyz, joint rotations...]` in the joint order
of `pybullet_data/humanoid/humanoid.urdf`, Y up, loaded with globalScaling 0.25 (metres).

Conventions of this module (and of the whole package):
    world Z up, x forward of the clip's first frame, y left; X_zup = R_ZUP_FROM_YUP @ X_yup.
    joints in Human3.6M-17 order (`skeleton.H36M_JOINTS`), shape (T, J, 3), metres.

FK runs once per clip in pybullet (DIRECT mode) at the native key frames and is cached in
`<cache>/motion/<clip>_pybullet-<version>_fk<N>.npz`. Between key frames the trajectory is a cubic
Hermite spline of the joint positions (Catmull-Rom tangents) with the bone lengths then restored
along the tree: smooth (C1), exact at key frames, bone lengths constant. It is deliberately *not*
the per-bone slerp that baseline (a) uses, so the ground truth does not hand that baseline its own
interpolant.
"""
from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dense_warper_ros.skeleton import H36M_PARENTS, NUM_JOINTS, PELVIS, flip_permutation

CLIP_NAMES: tuple[str, ...] = (
    "backflip", "cartwheel", "crawl", "dance_a", "dance_b", "getup_facedown", "getup_faceup",
    "jump", "kick", "punch", "roll", "run", "spin", "spinkick", "walk",
)
# Fixed split. Held-out clips cover each family once (gait, dance, martial arts, acrobatics,
# floor work) and all have 60 Hz key frames except walk (30 Hz), which is kept because walking is the
# canonical Human3.6M motion. Training keeps one clip of every family too.
TEST_CLIPS: tuple[str, ...] = ("walk", "dance_b", "spinkick", "cartwheel", "getup_faceup")
TRAIN_CLIPS: tuple[str, ...] = tuple(c for c in CLIP_NAMES if c not in TEST_CLIPS)

# Y-up (pybullet / DeepMimic) -> Z-up (this package): rotation of +90 deg about x.
R_ZUP_FROM_YUP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])

_FK_VERSION = 2            # bump when the joint definitions below change (invalidates the cache)
_URDF_SCALE = 0.25         # DeepMimic loads the humanoid with globalScaling 0.25
# Motion-file layout after [dt, root xyz (3), root quat wxyz (4)]: (URDF joint name, dof).
_MOTION_JOINTS: tuple[tuple[str, int], ...] = (
    ("chest", 4), ("neck", 4), ("right_hip", 4), ("right_knee", 1), ("right_ankle", 4),
    ("right_shoulder", 4), ("right_elbow", 1), ("left_hip", 4), ("left_knee", 1),
    ("left_ankle", 4), ("left_shoulder", 4), ("left_elbow", 1),
)
# Head points in the neck link frame (Y up, x forward; metres after scaling): the head sphere has
# its centre 0.175 m above the neck joint and radius 0.1025 m.
_NOSE_IN_NECK = np.array([0.09, 0.165, 0.0])
_HEAD_TOP_IN_NECK = np.array([0.0, 0.2775, 0.0])
# H36M joint -> URDF link whose frame origin is that joint centre. Every H36M bone joins two points
# rigid on one link, so FK bone lengths are exactly constant:
# pelvis = root; spine = chest joint (on root and chest links); thorax = neck joint (on chest and
# neck links; shoulder height); neck_nose and head = points on the neck (head) link.
_H36M_FROM_LINK: dict[int, str] = {
    0: "root", 1: "right_hip", 2: "right_knee", 3: "right_ankle", 4: "left_hip", 5: "left_knee",
    6: "left_ankle", 7: "chest", 8: "neck", 11: "left_shoulder", 12: "left_elbow",
    13: "left_wrist", 14: "right_shoulder", 15: "right_elbow", 16: "right_wrist",
}


def pybullet_version() -> str:
    return importlib.metadata.version("pybullet")


def motion_dir() -> Path:
    """Folder of the DeepMimic clips inside the installed pybullet_data."""
    import pybullet_data
    return Path(pybullet_data.getDataPath()) / "data" / "motions"


def default_cache_dir() -> Path:
    """`$DENSE_WARPER_CACHE`, else `.cache` at the source checkout's root, else ~/.cache/..."""
    env = os.environ.get("DENSE_WARPER_CACHE")
    if env:
        return Path(env)
    root = Path(__file__).resolve().parents[2]
    if (root / "package.xml").exists() or (root / ".git").exists():
        return root / ".cache"
    return Path.home() / ".cache" / "dense_warper_ros"


# --- forward kinematics (pybullet) -------------------------------------------------------------
def read_motion_file(name: str) -> np.ndarray:
    """Raw DeepMimic frames (F, 44) of a clip, quaternions normalised (several clips store them with
    norms off by up to 40 %, which pybullet would otherwise turn into stretched bones)."""
    if name not in CLIP_NAMES:
        raise ValueError(f"unknown clip {name!r}; expected one of {CLIP_NAMES}")
    with open(motion_dir() / f"humanoid3d_{name}.txt") as f:
        data = json.load(f)
    frames = np.asarray(data["Frames"], dtype=np.float64)
    if frames.ndim != 2 or frames.shape[1] != 44:
        raise ValueError(f"clip {name!r}: expected frames of 44 values, got shape {frames.shape}")
    i = 4
    for _, dof in (("root", 4),) + _MOTION_JOINTS:
        if dof == 4:
            frames[:, i:i + 4] /= np.linalg.norm(frames[:, i:i + 4], axis=1, keepdims=True)
        i += dof
    return frames


@contextlib.contextmanager
def _quiet_stdio():
    """Silence C-level stdout/stderr (pybullet prints URDF warnings for every load)."""
    saved = [os.dup(1), os.dup(2)]
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved + [devnull]:
            os.close(fd)


class HumanoidFK:
    """The DeepMimic humanoid in a private pybullet DIRECT client; poses it and reads link frames."""

    def __init__(self) -> None:
        import pybullet as p
        import pybullet_data
        self._p = p
        with _quiet_stdio():
            self.client = p.connect(p.DIRECT)
            p.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=self.client)
            self.body = p.loadURDF("humanoid/humanoid.urdf", [0, 0, 0], globalScaling=_URDF_SCALE,
                                   useFixedBase=True, flags=p.URDF_MAINTAIN_LINK_ORDER,
                                   physicsClientId=self.client)
        self.link_index = {p.getJointInfo(self.body, j, physicsClientId=self.client)[12].decode(): j
                           for j in range(p.getNumJoints(self.body, physicsClientId=self.client))}

    def close(self) -> None:
        self._p.disconnect(self.client)

    def __enter__(self) -> "HumanoidFK":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def set_frame(self, frame: np.ndarray) -> None:
        """Pose the humanoid from one raw motion frame (44,) (quaternions wxyz -> pybullet xyzw)."""
        p, c = self._p, self.client
        wxyz = frame[4:8]
        p.resetBasePositionAndOrientation(self.body, frame[1:4].tolist(),
                                          [wxyz[1], wxyz[2], wxyz[3], wxyz[0]], physicsClientId=c)
        i = 8
        for name, dof in _MOTION_JOINTS:
            if dof == 4:
                q = frame[i:i + 4]
                value = [q[1], q[2], q[3], q[0]]
            else:
                value = [frame[i]]
            p.resetJointStateMultiDof(self.body, self.link_index[name], value, physicsClientId=c)
            i += dof

    def h36m_yup(self) -> np.ndarray:
        """(J, 3) Human3.6M joints of the current pose, pybullet world (Y up), metres."""
        p, c = self._p, self.client
        names = list(self.link_index)
        states = p.getLinkStates(self.body, [self.link_index[n] for n in names],
                                 computeForwardKinematics=True, physicsClientId=c)
        pos = {n: np.asarray(s[4]) for n, s in zip(names, states)}
        orn = {n: np.asarray(p.getMatrixFromQuaternion(s[5])).reshape(3, 3)
               for n, s in zip(names, states)}
        out = np.zeros((NUM_JOINTS, 3))
        for j, link in _H36M_FROM_LINK.items():
            out[j] = pos[link]
        out[9] = pos["neck"] + orn["neck"] @ _NOSE_IN_NECK
        out[10] = pos["neck"] + orn["neck"] @ _HEAD_TOP_IN_NECK
        return out


def forward_kinematics(frames: np.ndarray) -> np.ndarray:
    """Raw frames (F, 44) -> (F, J, 3) Human3.6M joints, world Z up, metres."""
    with HumanoidFK() as fk:
        out = np.empty((len(frames), NUM_JOINTS, 3))
        for i, frame in enumerate(frames):
            fk.set_frame(frame)
            out[i] = fk.h36m_yup()
    return out @ R_ZUP_FROM_YUP.T


def _cache_path(name: str, cache_dir: Path) -> Path:
    return cache_dir / "motion" / f"{name}_pybullet-{pybullet_version()}_fk{_FK_VERSION}.npz"


def fk_clip(name: str, *, cache_dir: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Key-frame times (F,) s and joints (F, J, 3) metres Z up; cached on disk after the first call."""
    path = _cache_path(name, cache_dir or default_cache_dir())
    if path.exists():
        with np.load(path) as z:
            return z["times"], z["joints"]
    frames = read_motion_file(name)
    # The last frame's dt is 0 (unused); drop any other zero-length step.
    keep = np.concatenate([[True], frames[:-1, 0] > 0])
    frames = frames[keep]
    times = np.concatenate([[0.0], np.cumsum(frames[:-1, 0])])
    joints = forward_kinematics(frames)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + f".{os.getpid()}.tmp.npz")
    np.savez(tmp, times=times, joints=joints)
    os.replace(tmp, path)
    return times, joints


# --- trajectories on any time grid --------------------------------------------------------------
def _rot_z(yaw: float | np.ndarray) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    z, o = np.zeros_like(c), np.ones_like(c)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def restore_bone_lengths(joints: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(..., J, 3) joints with bone directions kept and lengths (J,) (per child joint) imposed, root fixed."""
    out = joints.copy()
    for j, parent in enumerate(H36M_PARENTS):
        if parent < 0:
            continue
        d = joints[..., j, :] - joints[..., parent, :]
        n = np.linalg.norm(d, axis=-1, keepdims=True)
        out[..., j, :] = out[..., parent, :] + d / np.maximum(n, 1e-12) * lengths[j]
    return out


def _hermite(times: np.ndarray, values: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Cubic Hermite interpolation with Catmull-Rom (finite-difference) tangents.

    times (F,) increasing, values (F, ...), query (Q,) inside [times[0], times[-1]] -> (Q, ...).
    """
    F = len(times)
    if F == 1:
        return np.repeat(values[:1], len(query), axis=0)
    tangents = np.empty_like(values)
    tangents[1:-1] = (values[2:] - values[:-2]) / (times[2:] - times[:-2]).reshape(-1, *[1] * (values.ndim - 1))
    tangents[0] = (values[1] - values[0]) / (times[1] - times[0])
    tangents[-1] = (values[-1] - values[-2]) / (times[-1] - times[-2])
    i = np.clip(np.searchsorted(times, query, side="right") - 1, 0, F - 2)
    h = (times[i + 1] - times[i])
    s = ((query - times[i]) / h).reshape(-1, *[1] * (values.ndim - 1))
    h = h.reshape(s.shape)
    s2, s3 = s * s, s * s * s
    return ((2 * s3 - 3 * s2 + 1) * values[i] + (s3 - 2 * s2 + s) * h * tangents[i]
            + (-2 * s3 + 3 * s2) * values[i + 1] + (s3 - s2) * h * tangents[i + 1])


@dataclass(frozen=True, eq=False)
class MotionClip:
    """One clip's ground truth: key frames and a resampler. Arrays are float64 numpy."""

    name: str
    key_times: np.ndarray          # (F,) seconds, key_times[0] = 0
    key_joints: np.ndarray         # (F, J, 3) metres, world Z up
    bone_lengths: np.ndarray = field(init=False)  # (J,) length of the bone ending at joint j (0 at root)

    def __post_init__(self) -> None:
        parents = np.array([max(p, 0) for p in H36M_PARENTS])
        lengths = np.linalg.norm(self.key_joints - self.key_joints[:, parents], axis=-1).mean(0)
        lengths[PELVIS] = 0.0
        object.__setattr__(self, "bone_lengths", lengths)

    @property
    def duration(self) -> float:
        return float(self.key_times[-1])

    @property
    def native_rate_hz(self) -> float:
        return float(1.0 / np.median(np.diff(self.key_times)))

    def at(self, times: np.ndarray) -> np.ndarray:
        """Joints (T, J, 3) at times (T,) s inside [0, duration]. Clips are not looped: even the
        "wrap" clips differ by 9-40 cm between their last and first frames, so a loop would jump."""
        times = np.asarray(times, dtype=np.float64).ravel()
        eps = 1e-9
        bad = times[(times < -eps) | (times > self.duration + eps)]
        if bad.size:
            raise ValueError(f"clip {self.name!r}: time {bad[0]:.6f} s outside [0, {self.duration:.6f}]")
        out = _hermite(self.key_times, self.key_joints, np.clip(times, 0.0, self.duration))
        return restore_bone_lengths(out, self.bone_lengths)


def load_clip(name: str, *, center: bool = True, cache_dir: Path | None = None) -> MotionClip:
    """A clip's ground truth; `center` moves the mean root position (horizontal) to the origin, the
    centre of every rig of `data.rigs`."""
    times, joints = fk_clip(name, cache_dir=cache_dir)
    if center:
        joints = joints.copy()
        joints[..., :2] -= joints[:, PELVIS, :2].mean(0)
    return MotionClip(name=name, key_times=times, key_joints=joints)


def time_grid(duration: float, rate_hz: float, *, start: float = 0.0) -> np.ndarray:
    """(T,) instants start, start + 1/rate, ... <= start + duration."""
    if rate_hz <= 0:
        raise ValueError(f"rate_hz must be > 0, got {rate_hz}")
    n = int(np.floor(duration * rate_hz + 1e-9)) + 1
    return start + np.arange(n) / rate_hz


# --- augmentation -------------------------------------------------------------------------------
@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the training augmentations (all uniform)."""

    yaw_deg: float = 180.0                 # rotation about the vertical axis in [-yaw, yaw]
    translation_m: float = 0.5             # horizontal shift in [-t, t] on x and y
    mirror_prob: float = 0.5               # reflect left/right (and swap the joint labels)
    speed_range: tuple[float, float] = (0.5, 2.0)   # playback speed, sampled log-uniformly

    def __post_init__(self) -> None:
        lo, hi = self.speed_range
        if not 0 < lo <= hi:
            raise ValueError(f"speed_range must satisfy 0 < lo <= hi, got {self.speed_range}")
        if not 0 <= self.mirror_prob <= 1:
            raise ValueError(f"mirror_prob must be in [0, 1], got {self.mirror_prob}")


@dataclass(frozen=True)
class Augmentation:
    """One drawn augmentation: spatial X' = Rz(yaw) (mirror X) + translation, time t' = speed t."""

    yaw: float = 0.0                       # radians
    translation: tuple[float, float, float] = (0.0, 0.0, 0.0)
    mirror: bool = False
    speed: float = 1.0

    def apply(self, joints: np.ndarray) -> np.ndarray:
        """(..., J, 3) -> (..., J, 3)."""
        out = np.asarray(joints, dtype=np.float64)
        if self.mirror:
            out = out[..., flip_permutation(), :] * np.array([1.0, -1.0, 1.0])
        return out @ _rot_z(self.yaw).T + np.asarray(self.translation)

    def sample(self, clip: MotionClip, times: np.ndarray) -> np.ndarray:
        """Joints (T, J, 3) of the augmented clip at times (T,) s of the augmented (re-timed) clip."""
        return self.apply(clip.at(np.asarray(times) * self.speed))

    def duration(self, clip: MotionClip) -> float:
        return clip.duration / self.speed


DEFAULT_AUGMENT = AugmentConfig()


def sample_augmentation(rng: np.random.Generator, cfg: AugmentConfig = DEFAULT_AUGMENT) -> Augmentation:
    lo, hi = cfg.speed_range
    return Augmentation(
        yaw=float(np.deg2rad(rng.uniform(-cfg.yaw_deg, cfg.yaw_deg))),
        translation=(float(rng.uniform(-cfg.translation_m, cfg.translation_m)),
                     float(rng.uniform(-cfg.translation_m, cfg.translation_m)), 0.0),
        mirror=bool(rng.random() < cfg.mirror_prob),
        speed=float(np.exp(rng.uniform(np.log(lo), np.log(hi)))),
    )
