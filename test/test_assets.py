"""A test whose real asset is missing fails with the command that fetches it; it never skips."""
from __future__ import annotations

import pytest

from assets import MOVENET_FETCH, POSE2SIM_FETCH, require_movenet, require_pose2sim, require_shipped


def test_missing_assets_fail_naming_the_fetch_command(tmp_path):
    with pytest.raises(pytest.fail.Exception, match="make setup.*fetch_pose2sim.py"):
        require_pose2sim(tmp_path)
    with pytest.raises(pytest.fail.Exception, match="movenet_thunder.safetensors missing.*fetch_movenet.py"):
        require_movenet("thunder", tmp_path)
    with pytest.raises(pytest.fail.Exception, match="git checkout -- "):
        require_shipped(tmp_path / "dense_warper_gone.safetensors")
    assert "make setup" in POSE2SIM_FETCH and "make setup" in MOVENET_FETCH


def test_fetched_assets_pass():
    assert (require_pose2sim() / "videos").is_dir()
    assert require_movenet("lightning").stat().st_size > 1_000_000
