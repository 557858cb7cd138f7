"""Runs a TF.js graph model through scripts/tfjs_reference.js (TF.js's pure-JS CPU backend): the
reference the MoveNet ports are checked against."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TFJS_DIR = REPO / ".cache" / "tfjs"


def run_graph(model: Path, outputs: list[str], inputs: np.ndarray, tmp: Path) -> list[dict[str, np.ndarray]]:
    """inputs (N, S, S, 3) uint8 -> per input, {graph node name: float32 array}."""
    files = []
    for i, x in enumerate(inputs):
        f = tmp / f"in{i}.bin"
        x.astype("<i4").tofile(f)
        files.append({"file": str(f), "shape": [1, *x.shape]})
    job = {"tfjs_dir": str(TFJS_DIR), "model": str(model), "outputs": outputs, "inputs": files,
           "out_dir": str(tmp / "out")}
    (tmp / "job.json").write_text(json.dumps(job))
    r = subprocess.run(["node", str(REPO / "scripts" / "tfjs_reference.js"), str(tmp / "job.json")],
                       check=False, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    result = json.loads((tmp / "out" / "result.json").read_text())
    assert result["backend"] == "cpu"
    out: list[dict[str, np.ndarray]] = [{} for _ in inputs]
    for f in result["files"]:
        out[f["input"]][f["node"]] = np.fromfile(f["file"], "<f4").reshape(f["shape"])
    return out
