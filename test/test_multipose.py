"""MoveNet MultiPose: the PyTorch port against TF.js (its pure-JS CPU backend, same graph files), and
the whole-frame detector on a real two-person frame.

Images (real, letterboxed as the detector does): frame 0 of Pose2Sim's two-person demo (cam01, the
two people on the treadmill) and skimage's astronaut (public domain NASA). Thresholds: raw heads to
1e-4 of the head's peak; decoded people the same, in the same order, keypoints and boxes within
0.5 input pixel, scores within 1e-3. The parity test skips only when Node.js is absent (it installs
TF.js and extracts the graph with the project's scripts when missing).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dense_warper_ros.backbones import movenet_multipose as mp
from dense_warper_ros.backbones.adapter import letterbox_affine, warp_to_input
from dense_warper_ros.cameras import invert_affine
from dense_warper_ros.data.pose2sim import read_frames
from tfjs_runner import run_graph

REPO = Path(__file__).resolve().parents[1]
TFJS_DIR = REPO / ".cache" / "tfjs"
GRAPH = REPO / ".cache" / "npm" / "human-models-3.0.4" / "models" / "movenet-multipose.json"
VIDEO = REPO / "data" / "pose2sim_multi" / "videos" / "cam01.mp4"
HEADS = ("heatmaps", "centre", "regress", "offsets", "box_scale", "box_offset")
J = mp.NUM_KEYPOINTS

needs_node = pytest.mark.skipif(shutil.which("node") is None,
                                reason="Node.js not found: the TF.js reference cannot run")


# --------------------------------------------------------------------------------------------
# Inputs and the reference
# --------------------------------------------------------------------------------------------
def _two_person_frame() -> np.ndarray:
    """Frame 0 of the two-person demo, RGB (1920, 1088, 3); fetched by the project's script if missing."""
    if not VIDEO.exists():
        subprocess.run([sys.executable, str(REPO / "scripts" / "fetch_pose2sim.py")], check=True)
    return read_frames(VIDEO, [0])[0]


def _astronaut() -> np.ndarray:
    try:
        from skimage.data import astronaut
    except ImportError as e:   # a setup problem, not a reason to skip
        pytest.fail(f"scikit-image is needed for skimage.data.astronaut(): {e}")
    return astronaut()


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    return _two_person_frame()


@pytest.fixture(scope="module")
def model() -> mp.MoveNetMultiPose:
    if not mp.weights_paths()[0].exists():
        subprocess.run([sys.executable, str(REPO / "scripts" / "fetch_movenet.py")], check=True)
    return mp.load_multipose()


def letterboxed(image: np.ndarray, size: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size, 3) uint8, the detector's input."""
    return warp_to_input(image, letterbox_affine(image.shape[1], image.shape[0], size), size)


def _ensure_reference() -> None:
    """TF.js packages and the graph files, by the project's own scripts (once)."""
    if not all((TFJS_DIR / "node_modules" / "@tensorflow" / p / "package.json").exists()
               for p in ("tfjs-core", "tfjs-converter", "tfjs-backend-cpu")):
        subprocess.run(["bash", str(REPO / "scripts" / "install_tfjs_reference.sh")], check=True)
    if not (GRAPH.exists() and GRAPH.with_suffix(".bin").exists()):
        subprocess.run([sys.executable, str(REPO / "scripts" / "fetch_movenet.py")], check=True)


def run_tfjs(inputs: np.ndarray, tmp: Path) -> list[dict[str, np.ndarray]]:
    """inputs (N, S, S, 3) uint8 -> per input {head name: array} from scripts/tfjs_reference.js."""
    names = {node: head for head, node in mp.TF_OUTPUTS.items()}
    return [{names[k]: v for k, v in out.items()} for out in run_graph(GRAPH, list(names), inputs, tmp)]


# --------------------------------------------------------------------------------------------
# Comparisons
# --------------------------------------------------------------------------------------------
def check_heads(ours: mp.MultiPoseOutput, i: int, ref: dict[str, np.ndarray], label: str) -> None:
    """Each head (h, w, C) as TF.js lays it out: max abs difference / max |reference| < 1e-4."""
    for head in HEADS:
        a = getattr(ours, head)[i].permute(1, 2, 0).numpy()
        b = ref[head][0]
        rel = np.abs(a - b).max() / np.abs(b).max()
        print(f"{label} {head}: max abs {np.abs(a - b).max():.2e}, / max |ref| {rel:.2e}")
        assert rel < 1e-4, f"{label} {head}: {rel:.2e}"
    # sigmoid maps element-wise too: 1e-4 relative, 1e-8 absolute where they are ~0
    np.testing.assert_allclose(ours.heatmaps[i].permute(1, 2, 0).numpy(), ref["heatmaps"][0], rtol=1e-4, atol=1e-8)


def check_people(ours: np.ndarray, ref: np.ndarray, size: int, label: str) -> None:
    """(6, 56) decoded people: same order; keypoints and boxes within 0.5 input px; scores 1e-3."""
    kp_a, kp_b = ours[:, :3 * J].reshape(-1, J, 3), ref[:, :3 * J].reshape(-1, J, 3)
    kp_err = np.linalg.norm((kp_a[..., :2] - kp_b[..., :2]) * size, axis=-1)   # (6, 17) input px
    box_err = np.abs(ours[:, 3 * J:3 * J + 4] - ref[:, 3 * J:3 * J + 4]).max() * size
    s_err = max(np.abs(kp_a[..., 2] - kp_b[..., 2]).max(), np.abs(ours[:, -1] - ref[:, -1]).max())
    print(f"{label} people: scores {np.round(ref[:, -1], 3)}; keypoints max {kp_err.max():.2e} input px, "
          f"boxes max {box_err:.2e} input px, scores max abs {s_err:.1e}")
    assert kp_err.max() < 0.5 and box_err < 0.5 and s_err < 1e-3, label


@needs_node
@pytest.mark.parametrize("size", [256, 320])
def test_port_matches_tfjs(size: int, model: mp.MoveNetMultiPose, frame: np.ndarray, tmp_path: Path) -> None:
    """Heads and decoded people equal TF.js's on two real images (the graph's 256, and 320: any
    multiple of 32 runs, the decoder follows the map size)."""
    _ensure_reference()
    torch.set_num_threads(2)
    crops = np.stack([letterboxed(frame, size), letterboxed(_astronaut(), size)])   # (2, S, S, 3)
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float()                           # (2, 3, S, S)
    with torch.inference_mode():
        ours = model(x)
        people = model.decode(ours).numpy()                                           # (2, 6, 56)
    refs = run_tfjs(crops, tmp_path)
    for i, (ref, name) in enumerate(zip(refs, ("two-person frame", "astronaut"))):
        label = f"{size} {name}"
        check_heads(ours, i, ref, label)
        assert ref["people"].shape == (1, mp.NUM_PEOPLE, mp.PERSON_WIDTH)
        check_people(people[i], ref["people"][0], size, label)
    # not a vacuous comparison: the reference itself sees the 2 people (and, at the graph's own
    # size, the astronaut; at 320 she scores about 0.18)
    assert (refs[0]["people"][0, :, -1] >= 0.3).sum() == 2
    assert size != 256 or (refs[1]["people"][0, :, -1] >= 0.3).sum() == 1


def test_converted_file_is_the_graph(model: mp.MoveNetMultiPose) -> None:
    """models/movenet_multipose.safetensors holds exactly what a fresh conversion of the graph gives."""
    from dense_warper_ros.backbones.tfjs_convert import read_tfjs_weights
    if not GRAPH.exists():
        subprocess.run([sys.executable, str(REPO / "scripts" / "fetch_movenet.py")], check=True)
    graph = json.loads(GRAPH.read_text())
    config, state = mp.convert_tfjs_graph(graph, read_tfjs_weights(graph, GRAPH.parent))
    assert config == model.config
    saved = model.state_dict()
    assert set(state) == set(saved)
    for k, v in state.items():
        assert torch.equal(v, saved[k]), k


def test_decode_shapes_and_batch(model: mp.MoveNetMultiPose, frame: np.ndarray) -> None:
    """A batch decodes as its images one by one; output (B, 6, 56), boxes and keypoints in [0, 1]."""
    crops = np.stack([letterboxed(frame, 256), letterboxed(frame[:, ::-1].copy(), 256)])
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float()
    with torch.inference_mode():
        both = model.decode(model(x))
        one = model.decode(model(x[1:]))
    assert both.shape == (2, mp.NUM_PEOPLE, mp.PERSON_WIDTH)
    torch.testing.assert_close(both[1:], one, rtol=1e-4, atol=1e-5)
    box = both[..., 3 * J:3 * J + 4]
    assert box.min() >= 0 and box.max() <= 1
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.zeros(1, 3, 250, 256))


# --------------------------------------------------------------------------------------------
# Detector
# --------------------------------------------------------------------------------------------
def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
    return w * h / (area - w * h)


def test_detector_finds_the_two_people(model: mp.MoveNetMultiPose, frame: np.ndarray) -> None:
    """The two people on the treadmill: 2 detections, boxes apart, each well observed, keypoints in
    its own box and in the frame."""
    people = mp.MultiPoseDetector(model, inference="torch")(frame)   # the port (ONNX Runtime: test_onnx_backend)
    assert len(people) == 2, [p.score for p in people]
    a, b = people
    assert _iou(a.box, b.box) < 0.2, _iou(a.box, b.box)
    H, W = frame.shape[:2]
    for p in people:
        assert p.keypoints.shape == (J, 2) and p.scores.shape == (J,) and p.box.shape == (4,)
        good = p.scores >= 0.3
        assert good.sum() >= 12, p.scores
        k = p.keypoints[good]
        assert np.all((k >= [0, 0]) & (k <= [W - 1, H - 1]))
        pad = 0.05 * (p.box[3] - p.box[1])
        assert np.all((k >= p.box[:2] - pad) & (k <= p.box[2:] + pad))
    assert people[0].score >= people[1].score
    # the limits
    assert len(mp.MultiPoseDetector(model, max_people=1, inference="torch")(frame)) == 1
    assert mp.MultiPoseDetector(model, min_score=0.99, inference="torch")(frame) == []


def test_detector_maps_to_image_pixels(model: mp.MoveNetMultiPose, frame: np.ndarray) -> None:
    """Image pixel u (pixel-centre convention) -> input pixel A u; normalised n = (A u + 0.5) / S."""
    S = 256
    A = letterbox_affine(frame.shape[1], frame.shape[0], S)
    people = np.zeros((1, mp.PERSON_WIDTH))
    people[0, :3 * J] = np.tile([0.25, 0.5, 0.9], J)               # y, x normalised, score
    people[0, 3 * J:3 * J + 4] = [0.0, 0.0, 1.0, 1.0]               # the whole input
    people[0, -1] = 0.9
    (d,) = mp.people_to_detections(people, invert_affine(A), S)
    H, W = frame.shape[:2]
    # the input's outer pixel edges are the letterboxed frame's long side's edges
    np.testing.assert_allclose(d.box[[1, 3]], [-0.5, H - 0.5], atol=1e-9)
    np.testing.assert_allclose(d.keypoints[0], [(W - 1) / 2, -0.5 + 0.25 * H], atol=1e-9)
    assert not d.keypoints.flags.writeable
