"""Where the shipped weights are, which DenseWarper configuration is the default, and how a
weights file is written without ever leaving a half-written one.

Torch-free on purpose: the launch logic and the parameter declarations read it. The directory is
found the same way for every caller: `$DENSE_WARPER_MODELS_DIR`; else `models/` beside the package
in a source checkout; else the installed share directory (`share/dense_warper_ros/models`, where
CMakeLists.txt installs models/), because an installed package has no checkout around it and would
otherwise silently fall back to untrained warps.
"""
from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
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


@contextlib.contextmanager
def written_atomically(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to; it replaces `path` only once the write finished.
    A full disk mid-write (training checkpoints and paper-sized weights are hundreds of MB) then
    costs the new file, never the last good one, and says which file and how much room was left."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
    except BaseException as e:                  # Ctrl-C mid-write too: no temporary left behind
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if not isinstance(e, Exception):
            raise
        # torch reports a full disk as RuntimeError, safetensors as its own error type
        raise OSError(f"could not write {path} ({_free_space(path.parent)}): {e}") from e
    tmp.replace(path)


def _free_space(folder: Path) -> str:
    try:
        return f"{shutil.disk_usage(folder).free / 2**30:.1f} GiB free there"
    except OSError:
        return "its folder cannot be read"
