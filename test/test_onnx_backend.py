"""The 2D networks through ONNX Runtime (`backbones/onnx_runtime.py`): the same heatmaps and keypoints
as torch on real pose2sim frames, the same people from the MultiPose detector on the real two-person
frame, a deterministic export of each model, and the `inference: auto | torch | onnxruntime` rules,
including a machine where onnxruntime does not import.

Needs `make setup` (models/movenet_*.safetensors and .onnx, data/pose2sim/, data/pose2sim_multi/);
fails with that instruction when they are missing.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dense_warper_ros.backbones import Backbone2D, boxes_from_keypoints
from dense_warper_ros.backbones import movenet_multipose as mp
from dense_warper_ros.backbones import onnx_runtime as ox
from dense_warper_ros.backbones.adapter import letterbox_affine, warp_to_input
from dense_warper_ros.backbones.movenet import VARIANTS, weights_paths
from dense_warper_ros.data import pose2sim

from torch_threads import one_torch_thread  # noqa: F401  (the node's default: 1 thread for both backends)

FRAMES = (0, 40)
HEATMAP_ATOL = 1e-4       # heatmaps are sigmoids in [0, 1]
HEAD_REL = 1e-4           # regress / offsets reach tens of cells: max abs / max |torch|
KEYPOINT_PX = 0.05        # image pixels (1080 x 1920 frames; a heatmap cell is ~20-40 px here)
PEOPLE_PX = 0.5           # MultiPose people: keypoints and boxes, image pixels
PEOPLE_SCORE = 1e-3       # MultiPose keypoint and person scores
TWO_PERSON_VIDEO = Path(__file__).resolve().parents[1] / "data" / "pose2sim_multi" / "videos" / "cam01.mp4"

ort = pytest.importorskip("onnxruntime", reason="onnxruntime missing: run `make setup`")


def _need(variant: str) -> None:
    st = ox.onnx_spec(variant).safetensors(None)
    if not st.exists():
        pytest.fail(f"{st} missing: run `make setup` (scripts/fetch_movenet.py)")
    problem = ox.onnx_problem(variant)
    if problem is not None:
        pytest.fail(problem)


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    """8 real 1080x1920 RGB frames: 4 cameras at 2 instants."""
    try:
        demo = pose2sim.load_demo()
    except FileNotFoundError as e:
        pytest.fail(f"{e} (run `make setup`)")
    return [img for views in demo.frames(FRAMES) for img in views]


def _max_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


# --------------------------------------------------------------------------------------------
# Parity
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", VARIANTS)
def test_onnxruntime_equals_torch_on_real_frames(variant: str, images: list[np.ndarray]) -> None:
    """Letterboxed frames, then crops around the found person (as the node runs): the heads, the
    H36M heatmaps (direct and derived channels), the keypoints and scores agree."""
    _need(variant)
    ref = Backbone2D.movenet(variant, inference="torch")
    net = Backbone2D.movenet(variant, inference="onnxruntime", cpu_threads=1)
    assert ref.inference == "torch"
    assert net.inference == "onnxruntime (CPUExecutionProvider, 1 thread(s))"
    letterboxed = ref(images)
    for boxes in (None, boxes_from_keypoints(letterboxed.keypoints)):
        a, b = net(images, boxes), ref(images, boxes)
        np.testing.assert_array_equal(a.affines, b.affines)
        hm_err = float((a.heatmaps - b.heatmaps).abs().max())
        kp_err = float(np.abs(a.keypoints[..., :2] - b.keypoints[..., :2]).max())
        coco_err = float(np.abs(a.keypoints_coco[..., :2] - b.keypoints_coco[..., :2]).max())
        score_err = float(np.abs(a.keypoints[..., 2] - b.keypoints[..., 2]).max())
        kind = "letterboxed" if boxes is None else "cropped"
        print(f"{variant} {kind}: H36M heatmaps max abs {hm_err:.1e}, keypoints {kp_err:.1e} px "
              f"(COCO {coco_err:.1e} px), scores {score_err:.1e}")
        assert hm_err <= HEATMAP_ATOL
        assert kp_err <= KEYPOINT_PX and coco_err <= KEYPOINT_PX
        assert score_err <= HEATMAP_ATOL
        assert b.keypoints[..., 2].mean() > 0.3, "no person found: not a real test"
        # the raw heads on the same prepared batch (what decode reads)
        A_in = ref.input_affines(images, boxes)
        x = ref.prepare(images, A_in)
        with torch.inference_mode():
            ours, theirs = net.network(x), ref.network(x)
        for name, o, t in zip(ox.OUTPUT_NAMES, ours, theirs):
            err, rel = float((o - t).abs().max()), _max_rel(o, t)
            print(f"{variant} {kind} {name}: max abs {err:.1e}, / max |torch| {rel:.1e}")
            assert (err <= HEATMAP_ATOL) if name in ("heatmaps", "centre") else (rel <= HEAD_REL)
    # Repeated runs give identical bytes (the node's output must equal an offline replay's)
    again = net(images)
    np.testing.assert_array_equal(again.heatmaps.numpy(), net(images).heatmaps.numpy())


def test_dynamic_batch(images: list[np.ndarray]) -> None:
    """The file takes any batch: 1, 3 and 8 images give what torch gives."""
    _need("lightning")
    ref = Backbone2D.movenet("lightning", inference="torch")
    net = Backbone2D.movenet("lightning", inference="onnxruntime")
    for n in (1, 3, 8):
        A_in = ref.input_affines(images[:n], None)
        x = ref.prepare(images[:n], A_in)
        with torch.inference_mode():
            o, t = net.network(x), ref.network(x)
        assert o.heatmaps.shape == t.heatmaps.shape == (n, 17, 48, 48)
        assert float((o.heatmaps - t.heatmaps).abs().max()) <= HEATMAP_ATOL


def test_gradients_run_through_torch() -> None:
    """With gradients on (training), the torch module runs even when ONNX Runtime is set."""
    _need("lightning")
    net = Backbone2D.movenet("lightning", inference="onnxruntime")
    x = torch.full((1, 3, 192, 192), 128.0)
    with torch.enable_grad():
        assert net.network(x).heatmaps.grad_fn is not None
    with torch.inference_mode():
        assert net.network(x).heatmaps.grad_fn is None


# --------------------------------------------------------------------------------------------
# The MultiPose detector
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_person_frame() -> np.ndarray:
    """Frame 0 of Pose2Sim's two-person demo (cam01, the two people on the treadmill), RGB 1920 x 1088."""
    if not TWO_PERSON_VIDEO.exists():
        pytest.fail(f"{TWO_PERSON_VIDEO} missing: run `make setup` (scripts/fetch_pose2sim.py)")
    return pose2sim.read_frames(TWO_PERSON_VIDEO, [0])[0]


@pytest.fixture(scope="module")
def multipose() -> mp.MoveNetMultiPose:
    _need(mp.NAME)
    return mp.load_multipose()


def test_multipose_onnxruntime_equals_torch_on_the_two_person_frame(
        multipose: mp.MoveNetMultiPose, two_person_frame: np.ndarray) -> None:
    """The detector's people: same count and order, keypoints and boxes within 0.5 image px, scores
    within 1e-3. The raw heads of a batch of 2 (the frame and its mirror: the batch is dynamic) as the
    single-pose heads, and the people decoded from them as above (input px)."""
    ref = mp.MultiPoseDetector(multipose, inference="torch")
    net = mp.MultiPoseDetector(multipose, inference="onnxruntime", cpu_threads=1)
    assert ref.inference == "torch" and ref.runner is None
    assert net.inference == "onnxruntime (CPUExecutionProvider, 1 thread(s))"
    a, b = net(two_person_frame), ref(two_person_frame)
    assert len(b) == 2, f"torch finds {len(b)} people, not the two: not a real test"
    assert len(a) == len(b)
    for i, (p, q) in enumerate(zip(a, b)):
        kp_err = float(np.linalg.norm(p.keypoints - q.keypoints, axis=-1).max())
        box_err = float(np.abs(p.box - q.box).max())
        s_err = max(float(np.abs(p.scores - q.scores).max()), abs(p.score - q.score))
        print(f"multipose person {i} (score {q.score:.3f}): keypoints max {kp_err:.1e} px, "
              f"box {box_err:.1e} px, scores {s_err:.1e}")
        assert kp_err <= PEOPLE_PX and box_err <= PEOPLE_PX and s_err <= PEOPLE_SCORE
    # the raw heads, batch of 2
    S = net.input_size
    frames = (two_person_frame, two_person_frame[:, ::-1].copy())
    crops = np.stack([warp_to_input(f, letterbox_affine(f.shape[1], f.shape[0], S), S) for f in frames])
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float()
    with torch.inference_mode():
        ours, theirs = net.network(x), ref.network(x)
        people = [multipose.decode(h).numpy() for h in (ours, theirs)]   # (2, 6, 56) each
    assert isinstance(ours, mp.MultiPoseOutput)
    for name, o, t in zip(mp.MultiPoseOutput._fields, ours, theirs):
        assert o.shape == t.shape and o.shape[0] == 2
        err, rel = float((o - t).abs().max()), _max_rel(o, t)
        print(f"multipose {name}: max abs {err:.1e}, / max |torch| {rel:.1e}")
        assert (err <= HEATMAP_ATOL) if name in ("heatmaps", "centre") else (rel <= HEAD_REL)
    J = mp.NUM_KEYPOINTS
    pa, pb = people
    kp_a, kp_b = pa[..., :3 * J].reshape(2, -1, J, 3), pb[..., :3 * J].reshape(2, -1, J, 3)
    assert np.abs(kp_a[..., :2] - kp_b[..., :2]).max() * S <= PEOPLE_PX
    assert np.abs(pa[..., 3 * J:3 * J + 4] - pb[..., 3 * J:3 * J + 4]).max() * S <= PEOPLE_PX
    assert max(np.abs(kp_a[..., 2] - kp_b[..., 2]).max(), np.abs(pa[..., -1] - pb[..., -1]).max()) <= PEOPLE_SCORE


def test_multipose_auto_uses_onnxruntime_when_the_file_matches(
        tmp_path: Path, multipose: mp.MoveNetMultiPose, two_person_frame: np.ndarray) -> None:
    d = _models_copy(tmp_path, onnx=True, name=mp.NAME)
    assert mp.MultiPoseDetector(models_dir=d).inference == "onnxruntime (CPUExecutionProvider, 1 thread(s))"
    # the callers' form (pipeline._multi_pipeline, ros/people_node._people_detector): a loaded module,
    # inference left at its default (auto)
    det = mp.MultiPoseDetector(mp.load_multipose(device="cpu"), max_people=2)
    assert det.runner is not None and det.inference.startswith("onnxruntime (CPUExecutionProvider")
    assert len(det(two_person_frame)) == 2
    assert mp.MultiPoseDetector(multipose, inference="torch").inference == "torch"
    default_threads = mp.MultiPoseDetector(multipose, cpu_threads=0)
    assert default_threads.inference == "onnxruntime (CPUExecutionProvider, default threads)"


@pytest.mark.parametrize("alter", ["missing", "source_digest", "onnx_bytes", "format"])
def test_multipose_stale_or_missing_file_auto_runs_torch_explicit_is_an_error(tmp_path: Path, alter: str) -> None:
    _need(mp.NAME)
    d = _models_copy(tmp_path, onnx=alter != "missing", name=mp.NAME)
    reason = "movenet_multipose.onnx not found" if alter == "missing" else _alter(mp.NAME, d, alter)
    det = mp.MultiPoseDetector(models_dir=d)
    assert det.runner is None and det.inference.startswith("torch (auto: ") and reason in det.inference
    err = FileNotFoundError if alter == "missing" else ValueError
    with pytest.raises(err, match=f"inference 'onnxruntime'.*{reason}.*make setup"):
        mp.MultiPoseDetector(models_dir=d, inference="onnxruntime")


def test_multipose_file_that_cannot_serve_runs_torch(multipose: mp.MoveNetMultiPose) -> None:
    """A caller's module with other weights than the file's source, or another input side: auto runs
    torch saying why, onnxruntime is an error; an unknown setting is an error."""
    other = mp.MoveNetMultiPose(multipose.config)
    other.load_state_dict(multipose.state_dict())
    with torch.no_grad():
        next(other.head_centre.parameters()).add_(1e-3)     # one weight of the centre head moved
    det = mp.MultiPoseDetector(other)
    assert det.runner is None and det.inference.startswith("torch (auto: the model's weights are not those of")
    with pytest.raises(ValueError, match="inference 'onnxruntime': the model's weights are not those of"):
        mp.MultiPoseDetector(other, inference="onnxruntime")
    det = mp.MultiPoseDetector(multipose, input_size=320)
    assert det.runner is None and "takes 256 x 256 inputs, the detector's input_size is 320" in det.inference
    with pytest.raises(ValueError, match="input_size is 320: set inference to 'auto' or 'torch'"):
        mp.MultiPoseDetector(multipose, input_size=320, inference="onnxruntime")
    with pytest.raises(ValueError, match="inference must be one of"):
        mp.MultiPoseDetector(multipose, inference="fast")


# --------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", ox.ONNX_MODELS)
def test_export_is_deterministic_and_is_the_setup_file(variant: str) -> None:
    _need(variant)
    model = ox.onnx_spec(variant).load(None)
    first, second = ox.export_bytes(model), ox.export_bytes(model)
    assert first == second
    path, meta_path = ox.onnx_paths(variant)
    meta = json.loads(meta_path.read_text())
    assert hashlib.sha256(first).hexdigest() == meta["sha256"], \
        f"{path} is not this code's export: run `make setup` (scripts/export_onnx.py)"
    assert meta["opset"] == ox.OPSET == 17 and meta["batch"] == "dynamic"

    import onnx
    proto = onnx.load_model_from_string(first)
    assert {o.domain or "ai.onnx": o.version for o in proto.opset_import}["ai.onnx"] == 17
    assert [i.name for i in proto.graph.input] == [ox.INPUT_NAME]
    assert [o.name for o in proto.graph.output] == list(ox.output_names(variant))
    batch = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param == "batch"


def test_export_script_writes_files_and_skips_when_up_to_date(tmp_path: Path, capsys) -> None:
    _need("lightning")
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "export_onnx", Path(__file__).resolve().parents[1] / "scripts" / "export_onnx.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    st, _ = weights_paths("lightning")
    (tmp_path / st.name).symlink_to(st)
    args = ["--variants", "lightning", "--models-dir", str(tmp_path)]
    assert script.main(args) == 0
    assert ox.onnx_problem("lightning", tmp_path) is None
    assert (tmp_path / "movenet_lightning.onnx").read_bytes() == ox.onnx_paths("lightning")[0].read_bytes()
    assert script.main(args) == 0
    assert "up to date" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------
# The `inference` rules
# --------------------------------------------------------------------------------------------
def _models_copy(tmp_path: Path, *, onnx: bool, name: str = "lightning") -> Path:
    """A models folder with a model's weights (and its ONNX files when `onnx`)."""
    st = ox.onnx_spec(name).safetensors(None)
    (tmp_path / st.name).symlink_to(st)
    if onnx:
        for p in ox.onnx_paths(name):
            shutil.copy(p, tmp_path / p.name)
    return tmp_path


def _alter(name: str, d: Path, alter: str) -> str:
    """Make the ONNX files of `name` in `d` stale or altered; returns what `onnx_problem` says of it."""
    path, meta_path = ox.onnx_paths(name, d)
    meta = json.loads(meta_path.read_text())
    if alter == "source_digest":       # the safetensors were re-converted since the export
        meta["source"]["sha256"] = "0" * 64
    elif alter == "format":
        meta["format"] = "dense_warper_ros.movenet_onnx/0"
    else:
        data = bytearray(path.read_bytes())
        data[-1] ^= 1
        path.write_bytes(bytes(data))
    meta_path.write_text(json.dumps(meta))
    return {"source_digest": "exported from other weights", "onnx_bytes": "does not match the sha256",
            "format": "export format"}[alter]


def test_auto_uses_onnxruntime_when_the_file_matches(tmp_path: Path) -> None:
    _need("lightning")
    d = _models_copy(tmp_path, onnx=True)
    assert Backbone2D.movenet("lightning", models_dir=d, inference="auto").inference.startswith("onnxruntime (CPU")
    assert Backbone2D.movenet("lightning", models_dir=d, inference="torch").inference == "torch"


def test_missing_file_auto_runs_torch_explicit_names_the_command(tmp_path: Path) -> None:
    _need("lightning")
    d = _models_copy(tmp_path, onnx=False)
    net = Backbone2D.movenet("lightning", models_dir=d, inference="auto")
    assert net.runner is None and net.inference.startswith("torch (auto: ") and "not found" in net.inference
    with pytest.raises(FileNotFoundError, match=r"inference 'onnxruntime'.*movenet_lightning\.onnx not found.*"
                                                r"make setup.*scripts/export_onnx\.py"):
        Backbone2D.movenet("lightning", models_dir=d, inference="onnxruntime")


@pytest.mark.parametrize("alter", ["source_digest", "onnx_bytes", "format"])
def test_stale_or_altered_file_auto_runs_torch_explicit_is_an_error(tmp_path: Path, alter: str) -> None:
    _need("lightning")
    d = _models_copy(tmp_path, onnx=True)
    reason = _alter("lightning", d, alter)
    net = Backbone2D.movenet("lightning", models_dir=d, inference="auto")
    assert net.runner is None and reason in net.inference
    with pytest.raises(ValueError, match=f"inference 'onnxruntime'.*{reason}.*make setup"):
        Backbone2D.movenet("lightning", models_dir=d, inference="onnxruntime")


def test_without_onnxruntime_torch_runs_and_explicit_is_an_error(monkeypatch, images) -> None:
    """A machine where onnxruntime does not import (None in sys.modules makes `import` fail)."""
    _need("lightning")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    net = Backbone2D.movenet("lightning", inference="auto")
    assert net.runner is None and net.inference == "torch (auto: onnxruntime does not import)"
    ref = Backbone2D.movenet("lightning", inference="torch")
    np.testing.assert_array_equal(net(images[:2]).keypoints, ref(images[:2]).keypoints)
    with pytest.raises(ImportError, match=r"inference 'onnxruntime' asked for, but the onnxruntime package does "
                                          r"not import.*scripts/requirements\.txt.*'auto' or 'torch'"):
        Backbone2D.movenet("lightning", inference="onnxruntime")
    from dense_warper_ros.pipeline import build_pipeline
    pipe = build_pipeline(num_cameras=4, weights="none", device="cpu")
    assert pipe.backbone.inference.startswith("torch")
    det = mp.MultiPoseDetector(inference="auto")
    assert det.runner is None and det.inference == "torch (auto: onnxruntime does not import)"
    with pytest.raises(ImportError, match="inference 'onnxruntime' asked for, but the onnxruntime package"):
        mp.MultiPoseDetector(inference="onnxruntime")


def test_cuda_without_its_provider_runs_torch() -> None:
    """CUDA asked for with an onnxruntime build that has no CUDAExecutionProvider: torch on CUDA (a
    warning when onnxruntime was asked for explicitly). Only the choice is made here, no CUDA needed."""
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    runner, what = ox.movenet_runner("auto", variant="lightning", device=torch.device("cuda"))
    assert runner is None and "no CUDAExecutionProvider" in what and what.startswith("torch")
    with pytest.warns(RuntimeWarning, match="inference 'onnxruntime' on cuda.*running torch on cuda"):
        runner, _ = ox.movenet_runner("onnxruntime", variant="lightning", device=torch.device("cuda"))
    assert runner is None


def test_bad_values_name_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"inference must be one of \('auto', 'torch', 'onnxruntime'\), "
                                         r"got 'tensorrt'"):
        ox.movenet_runner("tensorrt", variant="lightning", device=torch.device("cpu"))
    with pytest.raises(ValueError, match="inference 'onnxruntime' runs the MoveNet backbones only"):
        Backbone2D.simple_baseline(tmp_path / "user.safetensors", inference="onnxruntime")


def test_build_pipeline_passes_the_choice_down() -> None:
    _need("lightning")
    from dense_warper_ros.pipeline import build_pipeline
    on = build_pipeline(num_cameras=4, weights="none", device="cpu", inference="onnxruntime", cpu_threads=1)
    assert on.backbone.inference == "onnxruntime (CPUExecutionProvider, 1 thread(s))"
    off = build_pipeline(num_cameras=4, weights="none", device="cpu", inference="torch")
    assert off.backbone.inference == "torch"
    assert build_pipeline(num_cameras=4, weights="none", device="cpu").backbone.inference.startswith("onnxruntime")
    with pytest.raises(ValueError, match="inference must be one of"):
        build_pipeline(num_cameras=4, weights="none", device="cpu", inference="fast")
