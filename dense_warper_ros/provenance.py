"""Where a result came from: the code's git commit and the digests of the files it read.

Benchmarks write the commit beside their figures, the asset fetchers and caches key on file digests;
one definition of each keeps them comparable. Standard library only, so the fetch scripts can use it
before anything else is installed.
"""
from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def git_hash(repo: str | Path = REPO) -> str:
    """The full commit id checked out in `repo`, or "unknown" outside a git checkout (an installed
    package, no git on PATH): a report must still be written."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else "unknown"


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks (the assets are up to hundreds of MB)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
