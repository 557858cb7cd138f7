"""The pipeline's single-person tracking: the backbone's crop follows the last pose, the track id
stays while the person is seen, `lost` and a new id when a window finds no person, and no crop
from a pose older than `track_timeout_ns`. A stub backbone records the crops it is given and a stub
model returns the pose the test scripts, so only the pipeline's own logic is under test."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from dense_warper_ros.buffer import BufferConfig
from dense_warper_ros.data.rigs import ring_rig
from dense_warper_ros.pipeline import PipelineConfig, PosePipeline

J = 17
PERIOD_NS = 50_000_000                    # 2 cameras interleaved, 10 frames/s each
T0 = 1_000_000_000


class StubBackbone:
    """Records the crop box of every call; heatmaps are blank (the stub model ignores them)."""

    def __init__(self):
        self.boxes: list[np.ndarray | None] = []

    def __call__(self, images, boxes=None):
        self.boxes.append(None if boxes is None else np.asarray(boxes)[0])
        return SimpleNamespace(heatmaps=torch.zeros(1, J, 8, 8), affines=np.eye(2, 3)[None])


class StubModel:
    """`pose_at` gives `person` (J, 3), or all-NaN joints when it is None (nobody there)."""

    config = SimpleNamespace(temporal_context=0)
    num_joints, heatmap_size = J, 8                # the stub backbone's heatmaps

    def __init__(self):
        self.person: np.ndarray | None = None

    def pose_at(self, hm, P, A, times, valid, target, *, undistort=None, previous=None, context_cache=None):
        V = hm.shape[1]
        pts = np.full((J, 3), np.nan) if self.person is None else self.person
        return SimpleNamespace(points=torch.as_tensor(pts)[None], confidence=torch.ones(1, J),
                               covariance=torch.eye(3).repeat(1, J, 1, 1), num_views=torch.full((1, J), V),
                               rejected=torch.zeros(1, V, J, dtype=torch.bool))


def person_at(x: float) -> np.ndarray:
    """17 joints of a 1.7 m tall person standing at (x, 0)."""
    g = np.random.default_rng(0)
    return np.column_stack([x + g.uniform(-0.25, 0.25, J), g.uniform(-0.15, 0.15, J), np.linspace(0.1, 1.7, J)])


@pytest.fixture
def rig():
    cams = ring_rig(2)
    model, backbone = StubModel(), StubBackbone()
    pipe = PosePipeline(model=model, backbone=backbone,
                        config=PipelineConfig(buffer=BufferConfig(num_cameras=2, timing="causal", min_views=2)))
    frame = np.zeros((cams[0].height, cams[0].width, 3), np.uint8)

    def push(k: int, stamp_ns: int | None = None) -> list:
        """Frame k of the interleaved stream (camera k mod 2)."""
        c = k % 2
        return pipe.process(c, T0 + k * PERIOD_NS if stamp_ns is None else stamp_ns, frame, cams[c], f"cam{c}")
    return SimpleNamespace(cams=cams, model=model, backbone=backbone, pipe=pipe, push=push)


def expected_box(cam, points: np.ndarray, margin: float = 1.3) -> np.ndarray:
    """The projected pose's square box, centre and side in whole pixels."""
    uv = cam.project(points)
    centre, side = np.round((uv.min(0) + uv.max(0)) / 2), np.round((uv.max(0) - uv.min(0)).max() * margin)
    return np.concatenate([centre - side / 2, centre + side / 2])


def test_crop_box_follows_the_person(rig):
    rig.model.person = person_at(0.0)
    assert rig.push(0) == []                                   # one view: no window yet
    (first,) = rig.push(1)
    assert rig.backbone.boxes == [None, None]                  # no earlier pose: whole frames
    rig.push(2)
    np.testing.assert_allclose(rig.backbone.boxes[-1], expected_box(rig.cams[0], first.points), atol=1e-9)
    uv = rig.cams[0].project(first.points)
    x0, y0, x1, y1 = rig.backbone.boxes[-1]
    assert (uv[:, 0] > x0).all() and (uv[:, 0] < x1).all() and (uv[:, 1] > y0).all() and (uv[:, 1] < y1).all()
    rig.model.person = person_at(0.6)                          # the person walks 0.6 m
    (moved,) = rig.push(3)
    rig.push(4)
    box = rig.backbone.boxes[-1]
    np.testing.assert_allclose(box, expected_box(rig.cams[0], moved.points), atol=1e-9)
    shift = (box[:2] + box[2:]) / 2 - (rig.backbone.boxes[2][:2] + rig.backbone.boxes[2][2:]) / 2
    want = rig.cams[0].project(moved.points).mean(0) - uv.mean(0)
    assert np.linalg.norm(shift) > 20 and np.dot(shift, want) > 0.9 * np.linalg.norm(shift) * np.linalg.norm(want)


def test_track_id_is_stable_and_a_lost_person_gets_a_new_one(rig):
    rig.model.person = person_at(0.0)
    poses = [p for k in range(8) for p in rig.push(k)]
    assert len(poses) == 7 and {p.track_id for p in poses} == {0} and not rig.pipe.lost
    rig.model.person = None                                    # nobody in the next window
    assert rig.push(8) == [] and rig.pipe.lost
    assert rig.pipe.crop_box(rig.cams[1], T0 + 9 * PERIOD_NS) is None
    rig.model.person = person_at(0.3)                          # someone again: a new track
    (again,) = rig.push(9)
    assert again.track_id == 1 and not rig.pipe.lost
    rig.model.person = None
    rig.push(10)
    rig.push(11)                                               # still nobody: lost once, one new id
    rig.model.person = person_at(0.3)
    assert rig.push(12)[0].track_id == 2


def test_no_crop_from_a_pose_older_than_the_timeout(rig):
    rig.model.person = person_at(0.0)
    (pose,) = [p for k in range(2) for p in rig.push(k)]
    timeout = rig.pipe.config.track_timeout_ns
    assert rig.pipe.crop_box(rig.cams[0], pose.stamp_ns + timeout) is not None
    assert rig.pipe.crop_box(rig.cams[0], pose.stamp_ns + timeout + 1) is None
    rig.push(2, pose.stamp_ns + timeout + 1)                   # the next frame comes after the timeout
    assert rig.backbone.boxes[-1] is None                      # ... and is searched whole


def test_a_person_is_lost_after_the_timeout(rig):
    rig.model.person = person_at(0.0)
    (pose,) = [p for k in range(2) for p in rig.push(k)]
    gap = rig.pipe.config.track_timeout_ns + PERIOD_NS         # no frames at all for longer than that
    results = [p for k in range(2) for p in rig.push(k, pose.stamp_ns + gap + k * PERIOD_NS)]
    assert rig.pipe.lost or (results and results[-1].track_id != pose.track_id)
