"""Where the shipped weights are, and which DenseWarper configuration is the default.

Torch-free on purpose: the launch logic and the parameter declarations read it. The directory is
found the same way for every caller: `$DENSE_WARPER_MODELS_DIR`; else `models/` beside the package
in a source checkout; else the installed share directory (`share/dense_warper_ros/models`, where
CMakeLists.txt installs models/), because an installed package has no checkout around it and would
otherwise silently fall back to untrained warps.
"""
from __future__ import annotations

import os
from pathlib import Path

# The node's and the evaluator's default: the temporal-context extension (each view's previous frame
# as an extra warp input). It beats the faithful `lite` on the synthetic benchmark, and windowed on
# the real video (models/MODEL_CARD.md); the faithful method stays selectable as "lite".
DEFAULT_MODEL = "lite_tc"

_CHECKOUT_MODELS = Path(__file__).resolve().parents[1] / "models"


def _share_models() -> Path | None:
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
    except ImportError:
        return None
    try:
        return Path(get_package_share_directory("dense_warper_ros")) / "models"
    except (PackageNotFoundError, ValueError):
        return None


def models_dir(checkout: Path = _CHECKOUT_MODELS) -> Path:
    env = os.environ.get("DENSE_WARPER_MODELS_DIR")
    if env:
        return Path(env)
    if checkout.is_dir():
        return checkout
    share = _share_models()
    return share if share is not None and share.is_dir() else checkout


def default_weights(model_config: str) -> Path | None:
    """The shipped weights of a named configuration, if present."""
    p = models_dir() / f"dense_warper_{model_config}.safetensors"
    return p if p.exists() else None
