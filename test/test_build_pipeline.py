"""`pipeline.build_pipeline` turns the node's parameters into a pipeline: every bad parameter gives
the caller an error that names it, before any frame is processed."""
from __future__ import annotations

import pytest

from dense_warper_ros.model import DenseWarper, ModelConfig
from dense_warper_ros.pipeline import build_pipeline, load_backbone

from torch_threads import one_torch_thread  # noqa: F401


def test_a_camera_count_the_model_cannot_take_is_a_value_error():
    # `lite` has one time-conditioned warp: any 2 or more views
    with pytest.raises(ValueError, match=r"model 'lite' takes 2 or more views, not 1 cameras"):
        build_pipeline(num_cameras=1, model_config="lite", weights="none", device="cpu")


def test_pairwise_warps_take_exactly_their_view_count(tmp_path):
    """Pairwise warps (the paper's layout) are bound to their rig's view count; a small model of
    that layout saved to a file stands in for the paper-sized one."""
    cfg = ModelConfig.named("paper", name="pairwise_small", num_views=3, heatmap_size=48, input_size=192,
                            warp_blocks=1, warp_channels=4, offset_dilations=(1,))
    path = tmp_path / "pairwise_small.safetensors"
    DenseWarper(cfg).save(path)
    with pytest.raises(ValueError, match=r"model 'pairwise_small' takes 3 views, not 4 cameras"):
        build_pipeline(num_cameras=4, weights=path, device="cpu")
    assert build_pipeline(num_cameras=3, weights=path, device="cpu").model.config.name == "pairwise_small"


def test_missing_weights_file_names_the_path(tmp_path):
    missing = tmp_path / "nowhere.safetensors"
    with pytest.raises(FileNotFoundError, match="nowhere.safetensors"):
        build_pipeline(num_cameras=4, weights=missing, device="cpu")


def test_unknown_model_configuration():
    with pytest.raises(ValueError, match="unknown configuration 'huge'"):
        build_pipeline(num_cameras=4, model_config="huge", weights="none", device="cpu")


def test_unknown_backbone():
    with pytest.raises(ValueError, match="unknown backbone 'resnet'"):
        build_pipeline(num_cameras=4, backbone="resnet", device="cpu")
    with pytest.raises(ValueError, match="unknown backbone 'resnet'"):
        load_backbone("resnet")


def test_simple_baseline_needs_its_weights():
    with pytest.raises(ValueError, match="needs backbone_weights"):
        build_pipeline(num_cameras=4, backbone="simple_baseline", device="cpu")


def test_backbone_heatmaps_must_fit_the_model():
    # MoveNet Thunder gives 64 px heatmaps; the shipped lite_tc warps read 48 px ones
    with pytest.raises(ValueError, match=r"'movenet_thunder' gives 64px heatmaps, model 'lite_tc' expects 48px"):
        build_pipeline(num_cameras=4, backbone="movenet_thunder", device="cpu")


def test_bad_device():
    with pytest.raises(ValueError, match="'gpu' is not a torch device"):
        build_pipeline(num_cameras=4, device="gpu")


def test_bad_buffer_parameters():
    with pytest.raises(ValueError, match="timing must be one of"):
        build_pipeline(num_cameras=4, timing="sometimes", device="cpu")
    with pytest.raises(ValueError, match="min_views must be >= 1"):
        build_pipeline(num_cameras=4, min_views=0, device="cpu")
