"""Shipped weights are found from a checkout, from an install tree, and from the env override."""
from pathlib import Path

import pytest

from dense_warper_ros import weights


def test_checkout_models_dir_holds_the_default_models_weights(monkeypatch):
    monkeypatch.delenv("DENSE_WARPER_MODELS_DIR", raising=False)
    d = weights.models_dir()
    assert d == Path(weights.__file__).resolve().parents[1] / "models"
    assert weights.default_weights(weights.DEFAULT_MODEL) == d / f"dense_warper_{weights.DEFAULT_MODEL}.safetensors"
    assert weights.default_weights("no_such_config") is None


def test_env_override(monkeypatch, tmp_path):
    monkeypatch.setenv("DENSE_WARPER_MODELS_DIR", str(tmp_path))
    assert weights.models_dir() == tmp_path
    assert weights.default_weights(weights.DEFAULT_MODEL) is None


def test_installed_package_without_checkout_uses_the_share_directory(monkeypatch, tmp_path):
    """An installed package has no models/ beside it: the ament share directory is used."""
    pytest.importorskip("ament_index_python")
    monkeypatch.delenv("DENSE_WARPER_MODELS_DIR", raising=False)
    share = tmp_path / "share" / "dense_warper_ros"
    (share / "models").mkdir(parents=True)
    (tmp_path / "share" / "ament_index" / "resource_index" / "packages").mkdir(parents=True)
    (tmp_path / "share" / "ament_index" / "resource_index" / "packages" / "dense_warper_ros").touch()
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(tmp_path))
    assert weights.models_dir(checkout=tmp_path / "site-packages" / "models") == share / "models"
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(tmp_path / "nowhere"))
    missing = tmp_path / "site-packages" / "models"
    assert weights.models_dir(checkout=missing) == missing, "nothing installed: the checkout path (errors name it)"


def test_a_failed_weights_write_keeps_the_last_good_file(tmp_path, file_size_limit):
    """Saving over a weights file on a full disk (a file-size limit here) keeps the old file loadable,
    leaves no temporary, and names the file in the error; the same for the torch.save format."""
    torch = pytest.importorskip("torch")
    from dense_warper_ros.model import DenseWarper
    model = DenseWarper.load(weights.default_weights(weights.DEFAULT_MODEL))
    for name in ("w.safetensors", "w.pt"):
        path = tmp_path / name
        model.save(path)
        before = path.read_bytes()
        file_size_limit(len(before) // 2)
        with pytest.raises(OSError, match=rf"could not write .*{name}"):
            model.save(path)
        file_size_limit()
        assert path.read_bytes() == before and list(tmp_path.glob("*.tmp")) == []
        again = DenseWarper.load(path).state_dict()
        assert all(torch.equal(again[k], v) for k, v in model.state_dict().items())
