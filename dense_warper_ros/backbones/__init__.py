"""2D pose backbones: pretrained MoveNet (ported from TF.js) and the paper's SimpleBaseline.

`Backbone2D` is the one entry point the rest of the package uses: RGB images (+ boxes) ->
Human3.6M-17 heatmaps, image -> heatmap affines and decoded keypoints.
"""
from .adapter import (
    Backbone2D,
    Backbone2DOutput,
    box_affine,
    boxes_from_keypoints,
    coco_to_h36m_heatmaps,
    coco_to_h36m_keypoints,
    letterbox_affine,
    warp_to_input,
)
from .movenet import MoveNet, MoveNetConfig, MoveNetOutput, load_movenet
from .simple_baseline import SimpleBaseline, SimpleBaselineConfig, load_simple_baseline

__all__ = [
    "Backbone2D", "Backbone2DOutput", "MoveNet", "MoveNetConfig", "MoveNetOutput", "SimpleBaseline",
    "SimpleBaselineConfig", "box_affine", "boxes_from_keypoints", "coco_to_h36m_heatmaps",
    "coco_to_h36m_keypoints", "letterbox_affine", "load_movenet", "load_simple_baseline", "warp_to_input",
]
