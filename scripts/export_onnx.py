#!/usr/bin/env python3
"""Export the converted MoveNet weights (models/movenet_<name>.safetensors) to ONNX for ONNX Runtime.

Why: the node's `inference: auto | onnxruntime` setting runs the 2D networks with ONNX Runtime from
models/movenet_<name>.onnx (`dense_warper_ros.backbones.onnx_runtime`): the single-pose variants
(thunder, lightning) and the MultiPose person detector (multipose). The file is made here, from the same
weights torch loads, so both backends run the same numbers.

Per model (skipped when models/movenet_<name>.onnx.json names the current safetensors' sha256 and
the ONNX file's own sha256 matches):
 1. torch.onnx.export of the network's heads, opset 17, dynamic batch (same weights -> same bytes);
 2. checks: onnx.checker, the declared opset, ONNX Runtime vs torch within 1e-4 on a fixed input;
 3. writes the .onnx and the .onnx.json (sha256s, shapes, exporter versions).

Usage (from the repository root, after scripts/fetch_movenet.py): .venv/bin/python scripts/export_onnx.py [--force]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from dense_warper_ros.backbones import onnx_runtime as ox  # noqa: E402


def log(msg: str) -> None:
    print(f"[export_onnx] {msg}", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--force", action="store_true", help="export even when the files are up to date")
    ap.add_argument("--variants", nargs="+", default=list(ox.ONNX_MODELS), choices=ox.ONNX_MODELS,
                    help="the models to export (default: all)")
    ap.add_argument("--models-dir", type=Path, default=None, help="default: the package's models/")
    args = ap.parse_args(argv)
    for variant in args.variants:
        st = ox.onnx_spec(variant).safetensors(args.models_dir)
        if not st.exists():
            raise SystemExit(f"{st} not found: run scripts/fetch_movenet.py first (make setup does)")
        problem = ox.onnx_problem(variant, args.models_dir)
        path, _ = ox.onnx_paths(variant, args.models_dir)
        if problem is None and not args.force:
            log(f"{path.name} up to date")
            continue
        if problem is not None:
            log(f"{variant}: {problem.split(': run')[0]}")
        t0 = time.perf_counter()
        path = ox.export_movenet_onnx(variant, args.models_dir)
        log(f"wrote {path.name} ({path.stat().st_size / 2**20:.1f} MiB, opset {ox.OPSET}, dynamic batch) and "
            f"{path.name}.json in {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
