#!/usr/bin/env python3
"""Fetch the Pose2Sim demos (4 synchronized real videos + Qualisys calibration each).

Why: real multi-view footage of a person with a calibration, from a registry (PyPI `pose2sim`,
BSD-3-Clause), to check the 2D backbone by triangulation. Only the demo's videos/ and
calibration/ are extracted (no code of the package is installed or run).

Steps (each skipped when done):
 1. `pip download pose2sim==0.10.49 --no-deps` into .cache/pip/ (about 51 MB, once);
 2. unzip Pose2Sim/Demo_SinglePerson/{videos,calibration}/ and the licence into data/pose2sim/
    (the demo and the benchmark's real video), and Pose2Sim/Demo_MultiPerson/ (same rig and
    calibration, a second recording with two people) into data/pose2sim_multi/ (fine-tuning data
    that the benchmark never scores).

Usage (from the repository root): .venv/bin/python scripts/fetch_pose2sim.py
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VERSION = "0.10.49"
WHEEL = f"pose2sim-{VERSION}-py3-none-any.whl"
CACHE = REPO / ".cache" / "pip"
DEMOS = {"Pose2Sim/Demo_SinglePerson/": REPO / "data" / "pose2sim",     # wheel folder -> destination
         "Pose2Sim/Demo_MultiPerson/": REPO / "data" / "pose2sim_multi"}
PARTS = ("videos/", "calibration/")
LICENCE = f"pose2sim-{VERSION}.dist-info/licenses/LICENSE"
EXPECTED = [f"videos/cam0{i}.mp4" for i in range(1, 5)] + ["calibration/Calib.qca.txt"]

sys.path.insert(0, str(REPO))
from dense_warper_ros.provenance import file_sha256  # noqa: E402  (standard library only)


def log(msg: str) -> None:
    print(f"[fetch_pose2sim] {msg}", flush=True)


def download() -> Path:
    whl = CACHE / WHEEL
    if whl.exists():
        log(f"cached {whl.relative_to(REPO)}")
        return whl
    CACHE.mkdir(parents=True, exist_ok=True)
    log(f"pip download pose2sim=={VERSION} --no-deps (about 51 MB) ...")
    subprocess.run([sys.executable, "-m", "pip", "download", f"pose2sim=={VERSION}", "--no-deps",
                    "--only-binary", ":all:", "-d", str(CACHE), "-q"], check=True)
    if not whl.exists():
        raise SystemExit(f"pip download did not produce {whl}")
    return whl


def done(whl_sha: str, dest: Path) -> bool:
    meta = dest / "SOURCE.json"
    if not meta.exists() or not all((dest / e).exists() for e in EXPECTED):
        return False
    try:
        return json.loads(meta.read_text()).get("wheel_sha256") == whl_sha
    except json.JSONDecodeError:
        return False


def extract(whl: Path, whl_sha: str, prefix: str, dest: Path) -> None:
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    n = 0
    with zipfile.ZipFile(whl) as z:
        for info in z.infolist():
            name = info.filename
            if name == LICENCE:
                (tmp / "LICENSE").write_bytes(z.read(info))
                continue
            if info.is_dir() or not name.startswith(prefix):
                continue
            rel = name[len(prefix):]
            if not rel.startswith(PARTS) or ".." in Path(rel).parts or rel.endswith(".gitkeep"):
                continue
            out = tmp / rel
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(z.read(info))
            n += 1
    missing = [e for e in EXPECTED if not (tmp / e).exists()]
    if missing:
        raise SystemExit(f"{whl.name} lacks {missing}")
    (tmp / "SOURCE.json").write_text(json.dumps({
        "registry": "PyPI", "package": "pose2sim", "version": VERSION, "wheel": whl.name,
        "wheel_sha256": whl_sha, "path_in_wheel": prefix, "licence": "BSD-3-Clause (see LICENSE)",
        "files": {e: file_sha256(tmp / e) for e in EXPECTED},
    }, indent=1) + "\n")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    log(f"extracted {n} files into {dest.relative_to(REPO)}")


def main() -> int:
    whl = download()
    whl_sha = file_sha256(whl)
    for prefix, dest in DEMOS.items():
        if done(whl_sha, dest):
            log(f"{dest.relative_to(REPO)} up to date")
        else:
            extract(whl, whl_sha, prefix, dest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
