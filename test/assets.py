"""The real files tests read, and how each gets there. A missing one fails its test with the command
that brings it back, never a skip: a skip would hide a broken setup behind a green run."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
POSE2SIM_FETCH = "`make setup` (or `.venv/bin/python scripts/fetch_pose2sim.py`)"
MOVENET_FETCH = "`make setup` (or `.venv/bin/python scripts/fetch_movenet.py`)"


def require_pose2sim(root: Path | None = None) -> Path:
    """The pose2sim demo's folder (videos + calibration), fetched by scripts/fetch_pose2sim.py."""
    from dense_warper_ros.data.pose2sim import default_root
    root = Path(root) if root is not None else default_root()
    if not (root / "videos").is_dir() or not (root / "calibration").is_dir():
        pytest.fail(f"pose2sim demo missing under {root}: run {POSE2SIM_FETCH}")
    return root


def require_movenet(variant: str = "lightning", models_dir: Path | None = None) -> Path:
    """models/movenet_<variant>.safetensors, converted by scripts/fetch_movenet.py."""
    from dense_warper_ros.backbones.movenet import weights_paths
    path = weights_paths(variant, models_dir)[0]
    if not path.exists():
        pytest.fail(f"{path} missing: run {MOVENET_FETCH}")
    return path


def require_shipped(path: Path) -> Path:
    """A weights file tracked in git under models/: missing means a damaged checkout."""
    path = Path(path)
    if not path.exists():
        rel = path.resolve().relative_to(REPO) if path.resolve().is_relative_to(REPO) else path
        pytest.fail(f"{path} missing: it ships with the repository; restore it with `git checkout -- {rel}`")
    return path
