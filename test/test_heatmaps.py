"""The soft-argmax window: the released disc (`paper`) and the square (`lite`, `lite_tc`)."""
import numpy as np
import pytest
import torch

from dense_warper_ros.heatmaps import render_gaussians, soft_argmax
from dense_warper_ros.model import ModelConfig


from torch_threads import one_torch_thread  # noqa: E402,F401  (autouse fixture)


def released_decode(hm: np.ndarray, width: float, temperature: float) -> np.ndarray:
    """The released decoder, brute force: softmax over the whole heatmap, times a uniform radial
    window (pixels within width / 2 of the hard argmax), renormalised; expectation of (x, y)."""
    H, W = hm.shape
    y0, x0 = np.unravel_index(hm.argmax(), hm.shape)
    ys, xs = np.mgrid[:H, :W]
    e = np.exp((hm - hm.max()) / temperature)
    p = e / e.sum() * (np.hypot(xs - x0, ys - y0) <= width / 2)
    p /= p.sum()
    return np.array([(p * xs).sum(), (p * ys).sum()])


def two_diagonal_peaks(step: int, second: float) -> torch.Tensor:
    """(1, 96, 96) sigma-3 peaks at (40, 40) and (40 + step, 40 + step), the second one lower."""
    uv = torch.tensor([[40.0, 40.0], [40.0 + step, 40.0 + step]], dtype=torch.float64)
    g = render_gaussians(uv, 96, 3.0)
    return (g[0] + second * g[1])[None]


@pytest.mark.parametrize("step", [6, 7])
def test_paper_decodes_two_diagonal_peaks_as_the_released_disc(step):
    """Peaks 6-7 px apart along both axes: the second one's core is inside the 15 x 15 square but
    beyond 7.5 px, outside the released disc. The paper's decoder equals the released one; the
    square pulls the estimate ~1.8 px toward the second peak."""
    paper = ModelConfig.named("paper")
    hm = two_diagonal_peaks(step, 0.95)
    uv = soft_argmax(hm, **paper.decoder)[0][0]
    ref = released_decode(hm[0].numpy(), 15.0, paper.softargmax_temperature)
    np.testing.assert_allclose(uv.numpy(), ref, rtol=0, atol=1e-9)
    square = soft_argmax(hm, **ModelConfig.named("paper", softargmax_window_shape="square").decoder)[0][0]
    assert (square - uv).norm() > 1.5, "the square window must read the second peak here"


def test_disc_equals_the_released_window_on_random_heatmaps():
    """Random heatmaps with the peak anywhere (borders and corners clip the disc): the disc's
    coordinates and spread equal a brute-force evaluation; at 96 px the width is 15 (5 sigma)."""
    g = torch.Generator().manual_seed(0)
    hm = torch.rand(40, 96, 96, generator=g, dtype=torch.float64) * 0.9
    pos = torch.randint(0, 96, (40, 2), generator=g)
    pos[:4] = torch.tensor([[0, 0], [95, 3], [2, 95], [95, 95]])
    hm[torch.arange(40), pos[:, 1], pos[:, 0]] = 1.0
    uv, peak, _, spread = soft_argmax(hm, temperature=0.05, window_shape="disc")
    ys, xs = np.mgrid[:96, :96]
    for j in range(40):
        ref = released_decode(hm[j].numpy(), 15.0, 0.05)
        np.testing.assert_allclose(uv[j].numpy(), ref, rtol=0, atol=1e-9)
        x0, y0 = pos[j].tolist()
        inside = np.hypot(xs - x0, ys - y0) <= 7.5
        w = np.exp(hm[j].numpy()[inside] / 0.05)
        w /= w.sum()
        var = (w * (xs[inside] - ref[0]) ** 2).sum() + (w * (ys[inside] - ref[1]) ** 2).sum()
        assert spread[j].item() == pytest.approx(np.sqrt(var / 2), abs=1e-9)
    assert (peak == 1.0).all()


def test_window_shapes_and_what_each_config_uses():
    """A single Gaussian decodes the same in both windows (the disc drops only the square's corners,
    where a sigma-2 peak at 48 px has no weight left); the configs say which one they use, and a
    stored config without the field (written before it existed) keeps the square it was trained with."""
    uv = torch.tensor([[20.3, 17.6], [40.8, 5.2]])
    hm = render_gaussians(uv, 48, 2.0)
    sq = soft_argmax(hm, temperature=0.1)[0]
    disc = soft_argmax(hm, temperature=0.1, window_shape="disc")[0]
    torch.testing.assert_close(disc, sq, atol=1e-4, rtol=0)
    assert ModelConfig.named("paper").decoder["window_shape"] == "disc"
    for name in ("lite", "lite_tc"):
        assert ModelConfig.named(name).decoder["window_shape"] == "square"
    stored = ModelConfig.named("paper").to_dict()
    del stored["softargmax_window_shape"]
    assert ModelConfig.from_dict(stored).softargmax_window_shape == "square"
    with pytest.raises(ValueError, match="'circle'"):
        soft_argmax(hm, window_shape="circle")
    with pytest.raises(ValueError, match="'circle'"):
        ModelConfig.named("paper", softargmax_window_shape="circle")
