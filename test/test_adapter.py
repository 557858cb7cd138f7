"""Crops, affines, the COCO -> H36M mapping, the Backbone2D wrapper and SimpleBaseline checkpoints.

Round trips on synthetic data (fast, no files) plus one check with the real MoveNet weights when
`make setup` has run (translation equivariance of the whole image -> heatmap -> image chain).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dense_warper_ros.backbones import (
    Backbone2D,
    MoveNet,
    MoveNetConfig,
    box_affine,
    boxes_from_keypoints,
    coco_to_h36m_heatmaps,
    coco_to_h36m_keypoints,
    letterbox_affine,
    warp_to_input,
)
from dense_warper_ros.backbones.movenet import weights_paths
from dense_warper_ros.backbones.simple_baseline import (
    SimpleBaseline,
    SimpleBaselineConfig,
    config_from_state_dict,
    load_simple_baseline,
)
from dense_warper_ros.cameras import apply_affine
from dense_warper_ros.heatmaps import render_gaussians
from dense_warper_ros.skeleton import COCO_TO_H36M, H36M_JOINTS

J = {name: i for i, name in enumerate(H36M_JOINTS)}
LIGHTNING = MoveNetConfig(   # the Lightning graph's shapes, to build an untrained model without files
    name="lightning", input_size=192, stem=32,
    blocks=((32, 32, 16, 1), (16, 96, 24, 2), (24, 144, 24, 1), (24, 144, 32, 2), (32, 192, 32, 1),
            (32, 192, 32, 1), (32, 192, 64, 2), (64, 384, 64, 1), (64, 384, 64, 1), (64, 384, 64, 1),
            (64, 384, 96, 1), (96, 576, 96, 1), (96, 576, 96, 1), (96, 576, 160, 2), (160, 960, 160, 1),
            (160, 960, 160, 1), (160, 960, 320, 1)))


def blob_image(h: int, w: int, centre: tuple[float, float], sigma: float) -> np.ndarray:
    """(h, w, 3) uint8 with a Gaussian blob at `centre` (x, y), pixel-centre coordinates."""
    ys, xs = np.mgrid[0:h, 0:w]
    g = np.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2 * sigma ** 2))
    return np.repeat((255 * g).round().astype(np.uint8)[..., None], 3, axis=2)


def centroid(img: np.ndarray) -> np.ndarray:
    g = img[..., 0].astype(np.float64)
    ys, xs = np.mgrid[0:g.shape[0], 0:g.shape[1]]
    return np.array([(g * xs).sum(), (g * ys).sum()]) / g.sum()


# --- crops -------------------------------------------------------------------------------------
def test_letterbox_affine_fits_portrait_frame():
    A = letterbox_affine(1080, 1920, 256)
    s = 256 / 1920
    np.testing.assert_allclose(A[:, :2], np.eye(2) * s)
    np.testing.assert_allclose(apply_affine(A, [539.5, 959.5]), [127.5, 127.5])   # centre -> centre
    # top and bottom edges of the frame land on the crop's edges
    np.testing.assert_allclose(apply_affine(A, [[0, -0.5], [0, 1919.5]])[:, 1], [-0.5, 255.5])


def test_box_affine_is_square_around_box():
    A = box_affine([100, 200, 300, 600], 256)      # 200 x 400 box -> 400 px square
    np.testing.assert_allclose(A[0, 0], 256 / 400)
    np.testing.assert_allclose(apply_affine(A, [200, 400]), [127.5, 127.5], atol=1e-9)   # centre
    with pytest.raises(ValueError, match="box"):
        box_affine([10, 10, 10, 10], 256)


@pytest.mark.parametrize("box", [[200.0, 300.0, 1000.0, 1100.0],   # downscale: INTER_AREA path
                                 [560.0, 690.0, 660.0, 790.0]])     # upscale: bilinear path
def test_warp_to_input_follows_affine(box):
    """A blob at image point p appears at A p in the crop (the crop convention, end to end)."""
    p = (612.3, 741.8)
    img = blob_image(1920, 1080, p, sigma=12.0)
    A = box_affine(box, 192)
    crop = warp_to_input(img, A, 192)
    np.testing.assert_allclose(centroid(crop), apply_affine(A, p), atol=0.1)


def test_warp_to_input_outside_is_black():
    crop = warp_to_input(np.full((100, 100, 3), 255, np.uint8), box_affine([500, 500, 600, 700], 64), 64)
    assert crop.shape == (64, 64, 3) and crop.max() == 0


def test_boxes_from_keypoints():
    kp = np.zeros((2, 17, 3))
    kp[0, :3] = [[10, 20, 0.9], [110, 220, 0.8], [500, 500, 0.1]]   # the low-score point is ignored
    box = boxes_from_keypoints(kp, margin=1.0)
    np.testing.assert_allclose(box[0], [-40, 20, 160, 220])
    assert np.all(np.isnan(box[1]))


# --- COCO -> H36M ------------------------------------------------------------------------------
def coco_example() -> torch.Tensor:
    rng = np.random.default_rng(0)
    coco = np.concatenate([rng.uniform(16, 32, (17, 2)), rng.uniform(0.3, 1.0, (17, 1))], axis=1)
    return torch.tensor(coco)


def test_coco_to_h36m_keypoints_by_hand():
    coco = coco_example()
    h = coco_to_h36m_keypoints(coco[None])[0].numpy()
    c = coco.numpy()
    for hj, cj in COCO_TO_H36M.items():
        np.testing.assert_array_equal(h[hj], c[cj])
    pelvis = (c[11, :2] + c[12, :2]) / 2
    thorax = (c[5, :2] + c[6, :2]) / 2
    np.testing.assert_allclose(h[J["pelvis"]], [*pelvis, min(c[11, 2], c[12, 2])])
    np.testing.assert_allclose(h[J["thorax"]], [*thorax, min(c[5, 2], c[6, 2])])
    np.testing.assert_allclose(h[J["spine"], :2], (pelvis + thorax) / 2)
    ears = min(c[3, 2], c[4, 2]) >= min(c[1, 2], c[2, 2])
    centre = (c[3, :2] + c[4, :2]) / 2 if ears else (c[1, :2] + c[2, :2]) / 2
    np.testing.assert_allclose(h[J["head"], :2], centre + (1.0 if ears else 0.7) * (centre - thorax))
    assert h[J["head"], 2] < min(c[5, 2], c[6, 2])


def test_coco_to_h36m_heatmaps():
    hm = torch.rand(1, 17, 48, 48) * 0.1
    kp = coco_to_h36m_keypoints(coco_example()[None].float())
    out = coco_to_h36m_heatmaps(hm, kp, sigma=1.5)
    assert out.shape == (1, 17, 48, 48)
    for hj, cj in COCO_TO_H36M.items():
        assert torch.equal(out[0, hj], hm[0, cj])
    for name in ("pelvis", "spine", "thorax", "head"):
        ch = out[0, J[name]]
        y, x = divmod(int(ch.argmax()), 48)
        assert abs(x - kp[0, J[name], 0]) <= 0.5 and abs(y - kp[0, J[name], 1]) <= 0.5
        assert float(ch.max()) <= float(kp[0, J[name], 2]) + 1e-6


def test_derived_channels_are_the_packages_gaussians_scaled_by_score():
    """Derived joints use `heatmaps.render_gaussians` (unit peak) times the joint's score; a joint
    without a position (NaN) is an empty channel, never NaN."""
    hm = torch.rand(2, 17, 48, 48)
    kp = coco_to_h36m_keypoints(torch.stack([coco_example(), coco_example()]).float())
    kp[1, J["head"], :2] = float("nan")
    out = coco_to_h36m_heatmaps(hm, kp, sigma=1.5)
    for name in ("pelvis", "spine", "thorax"):
        j = J[name]
        want = render_gaussians(kp[:, j, :2], 48, 1.5) * kp[:, j, 2, None, None]
        torch.testing.assert_close(out[:, j], want)
    assert torch.isfinite(out).all() and out[1, J["head"]].abs().sum() == 0
    with pytest.raises(ValueError, match="square"):
        coco_to_h36m_heatmaps(torch.rand(1, 17, 48, 64), kp[:1])


# --- the wrapper, untrained weights --------------------------------------------------------------
def test_backbone2d_shapes_and_affines():
    torch.manual_seed(0)
    net = Backbone2D(MoveNet(LIGHTNING))
    imgs = [np.zeros((480, 640, 3), np.uint8), np.full((300, 200, 3), 90, np.uint8)]
    out = net(imgs, boxes=np.array([[np.nan] * 4, [20, 30, 120, 230]]))
    assert out.heatmaps.shape == (2, 17, 48, 48) and out.heatmaps.dtype == torch.float32
    assert out.affines.shape == (2, 2, 3) and out.keypoints.shape == (2, 17, 3)
    # image 0 letterboxed: the affine's scale is heatmap size / longest side
    np.testing.assert_allclose(out.affines[0, 0, 0], 48 / 640)
    # keypoints are the decoded cells mapped back through the affine
    cells = apply_affine(out.affines[1], out.keypoints[1, :, :2])
    assert np.all(cells > -1) and np.all(cells < 49)
    with pytest.raises(ValueError, match=r"images\[0\]"):
        net([np.zeros((10, 10), np.uint8)])
    with pytest.raises(ValueError, match="boxes"):
        net(imgs, boxes=np.zeros((3, 4)))


def test_movenet_heatmap_convention():
    """Cell i sits at input continuous coordinate 4 i (MoveNet decodes (i + offset) / h)."""
    A = MoveNet(LIGHTNING).heatmap_from_input
    np.testing.assert_allclose(apply_affine(A, [4 * 7 - 0.5, 4 * 9 - 0.5]), [7, 9])


def test_movenet_rejects_wrong_input():
    with pytest.raises(ValueError, match="192"):
        MoveNet(LIGHTNING)(torch.zeros(1, 3, 256, 256))


# --- the real weights: translation equivariance ----------------------------------------------------
def test_real_movenet_box_and_letterbox_agree():
    """The astronaut letterboxed, and the same pixels pasted at (100, 50) in a bigger canvas and
    cropped by a box: keypoints move by exactly (100, 50). Checks letterbox, box crop, heatmap
    affine and decoding as one chain."""
    path, _ = weights_paths("lightning")
    if not path.exists():
        pytest.fail(f"{path} missing: run `make setup`")
    try:
        from skimage.data import astronaut
    except ImportError as e:
        pytest.fail(f"scikit-image is needed for skimage.data.astronaut(): {e}")
    img = astronaut()                                                  # (512, 512, 3) RGB
    canvas = np.zeros((700, 800, 3), np.uint8)
    canvas[50:562, 100:612] = img
    net = Backbone2D.movenet("lightning")
    a = net([img])
    b = net([canvas], boxes=np.array([[99.5, 49.5, 611.5, 561.5]]))
    np.testing.assert_allclose(b.keypoints[0, :, :2], a.keypoints[0, :, :2] + [100, 50], atol=1e-3)
    assert a.keypoints[0, [J["l_shoulder"], J["r_shoulder"]], 2].min() > 0.5   # a person was found


# --- SimpleBaseline ------------------------------------------------------------------------------
TINY = SimpleBaselineConfig(layers=(1, 1, 2, 1), input_size=64)


def test_simple_baseline_paper_size():
    m = SimpleBaseline()
    # the paper's 2D backbone: SimpleBaseline ResNet-152 (Xiao et al., ECCV 2018), 68.6 M parameters
    assert sum(p.numel() for p in m.parameters()) == pytest.approx(68.6e6, rel=0.01)
    assert m.heatmap_size == 96


def test_simple_baseline_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    m = SimpleBaseline(TINY).eval()
    for p in m.parameters():     # non-trivial BN statistics too
        p.data.normal_(0, 0.05)
    x = torch.rand(2, 3, 64, 64) * 255
    ref = m(x)
    assert ref.shape == (2, 17, 16, 16)
    path = tmp_path / "sb.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in m.state_dict().items()}, "epoch": 3}, path)
    loaded = load_simple_baseline(path, input_size=64)
    assert loaded.config.layers == (1, 1, 2, 1)
    torch.testing.assert_close(loaded(x), ref)


def test_simple_baseline_strict_errors(tmp_path):
    sd = SimpleBaseline(TINY).state_dict()
    bad = dict(sd)
    del bad["layer2.0.bn2.running_var"]
    bad["extra.weight"] = torch.zeros(1)
    torch.save(bad, tmp_path / "a.pth")
    with pytest.raises(ValueError, match=r"missing \(1\): layer2.0.bn2.running_var.*unexpected \(1\): extra.weight"):
        load_simple_baseline(tmp_path / "a.pth", input_size=64)
    bad = dict(sd)
    bad["layer1.0.conv2.weight"] = torch.zeros(64, 64, 1, 1)
    torch.save(bad, tmp_path / "b.pth")
    with pytest.raises(ValueError, match=r"layer1.0.conv2.weight: checkpoint \(64, 64, 1, 1\)"):
        load_simple_baseline(tmp_path / "b.pth", input_size=64)
    with pytest.raises(ValueError, match="layer1"):
        config_from_state_dict({"final_layer.weight": torch.zeros(17, 256, 1, 1)})


def test_simple_baseline_decode():
    ys, xs = torch.meshgrid(torch.arange(24.0), torch.arange(32.0), indexing="ij")
    hm = torch.exp(-((xs - 10.3) ** 2 + (ys - 20.7) ** 2) / 2)[None, None].repeat(1, 2, 1, 1)
    kp = SimpleBaseline.decode(hm)
    np.testing.assert_allclose(kp[0, 0, :2].numpy(), [10.25, 20.75])


def test_backbone2d_with_simple_baseline(tmp_path):
    torch.save(SimpleBaseline(TINY).state_dict(), tmp_path / "sb.pth")
    net = Backbone2D(load_simple_baseline(tmp_path / "sb.pth", input_size=64))
    out = net([np.zeros((100, 120, 3), np.uint8)], boxes=np.array([[10, 10, 74, 74]]))
    assert out.heatmaps.shape == (1, 17, 16, 16)
    # box centre 42 -> input pixel 31.5 (crop convention) -> cell 31.5 / 4 (cell i at input pixel 4 i)
    np.testing.assert_allclose(apply_affine(out.affines[0], [42, 42]), [7.875, 7.875])
    np.testing.assert_allclose(out.affines[0, 0, 0], 0.25)
