"""A rendered recording with exact ground truth: a DeepMimic clip seen by a ring rig, camera
k mod N capturing key frame k (interleaved at the clip's key-frame rate). The mannequin is not a
person to a 2D detector; these recordings test the image/ROS plumbing, not 2D accuracy."""
from __future__ import annotations

import dataclasses

from dense_warper_ros.data.motion import load_clip
from dense_warper_ros.data.recording import Recording
from dense_warper_ros.data.render import HumanoidRenderer
from dense_warper_ros.data.rigs import H36M_LIKE, RigConfig, make_rig


def synthetic_recording(clip: str = "walk", *, rig: RigConfig = H36M_LIKE, num_frames: int = 24,
                        first_frame: int = 0, size: int = 320, dense: bool = False,
                        t0_ns: int = 1_000_000_000) -> Recording:
    """`num_frames` key frames from `first_frame`; interleaved (camera k mod N) or dense (all)."""
    scale = size / max(rig.width, rig.height)
    rig = dataclasses.replace(rig, width=round(rig.width * scale), height=round(rig.height * scale),
                              focal_px=rig.focal_px * scale)
    cams = make_rig(rig)
    motion = load_clip(clip)
    frames, truth = [], []
    with HumanoidRenderer(clip) as r:
        for k in range(first_frame, first_frame + num_frames):
            stamp = t0_ns + int(round(motion.key_times[k] * 1e9))
            which = range(len(cams)) if dense else [k % len(cams)]
            for c in which:
                frames.append((c, stamp, r.render(k, cams[c]).rgb))
            truth.append((stamp, motion.key_joints[k]))
    return Recording(names=[f"cam{c}" for c in range(len(cams))], cameras=cams, frames=frames,
                     ground_truth=truth, source=f"pybullet DeepMimic {clip!r}, key frames "
                     f"{first_frame}..{first_frame + num_frames - 1}, {'dense' if dense else 'interleaved'}",
                     truth_name="exact (the clip's motion-capture joints)")
