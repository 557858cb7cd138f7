"""Provenance helpers shared by the benchmarks, fetchers and caches: the checkout's commit and a
file's SHA-256."""
from __future__ import annotations

import hashlib
import re

from dense_warper_ros.provenance import REPO, file_sha256, git_hash


def test_git_hash_is_the_checkouts_commit_or_unknown(tmp_path):
    h = git_hash()
    assert re.fullmatch(r"[0-9a-f]{40}", h) or (h == "unknown" and not (REPO / ".git").exists())
    assert git_hash(tmp_path) == "unknown"                  # not a git checkout: a report still gets written


def test_file_sha256_matches_hashlib_on_the_whole_file(tmp_path):
    data = bytes(range(256)) * 5000                         # more than one read chunk
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert file_sha256(empty) == hashlib.sha256(b"").hexdigest()
