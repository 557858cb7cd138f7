"""Method (d) and (d+) of the accuracy benchmark: DenseWarper on the interleaved frames of an
`EvidenceBank`, batched over target instants (`model.DenseWarper.pose_at`).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dense_warper_ros.cameras import undistorter
from dense_warper_ros.data.evidence import EvidenceBank
from dense_warper_ros.devices import resolve_device
from dense_warper_ros.skeleton import NUM_JOINTS


@dataclass
class WarperHandle:
    """A model for (d) or (d+), ready on its device, and how the tables name it."""

    model: Any                      # dense_warper_ros.model.DenseWarper
    status: str                     # "trained: <file>" / "untrained (identity warps)"
    heatmap_size: int | None        # what the model expects, when it says

    @property
    def decoder(self) -> dict[str, Any]:
        """The model's soft-argmax settings: every method decodes heatmaps the same way."""
        return self.model.config.decoder


def decoder_of(warper: WarperHandle | None) -> dict[str, Any]:
    """Soft-argmax settings shared by all methods: the model's, else the method's defaults."""
    return warper.decoder if warper is not None else {}


def load_warper(weights: Path | None, config_name: str,
                device: str | torch.device = "cpu") -> WarperHandle | None:
    """The model for (d) on `device` (`devices.resolve_device` names); None when the model module is
    unavailable."""
    try:
        from dense_warper_ros import model as model_mod
    except ImportError as exc:
        print(f"[accuracy] (d) skipped: cannot import dense_warper_ros.model ({exc})", file=sys.stderr)
        return None
    if weights is not None:
        if not Path(weights).exists():
            raise FileNotFoundError(f"weights file {weights} does not exist")
        net = model_mod.DenseWarper.load(weights)
        status = f"trained {net.config.name}: {Path(weights).name}"
    else:
        net = model_mod.DenseWarper(model_mod.ModelConfig.named(config_name))
        status = f"untrained {config_name} (identity warps)"
    net.to(resolve_device(device)).eval()
    return WarperHandle(net, status, net.heatmap_size)


def _previous_frames(bank: EvidenceBank, prev: np.ndarray, t_ref: float, device: torch.device | None = None):
    """Bank slots (B, V, K) (-1: none) -> `model.PreviousFrames` on `device` (zeros where missing)."""
    from dense_warper_ros.model import PreviousFrames
    B, V, K = prev.shape
    ok = prev >= 0
    safe = np.maximum(prev, 0)
    hm = bank.heatmaps(safe.ravel()).to(device)
    hm = hm.view(B, V, K, *hm.shape[1:]) * torch.as_tensor(ok, dtype=hm.dtype, device=device)[..., None, None, None]
    return PreviousFrames(hm, torch.as_tensor(bank.affines[safe], dtype=torch.float32, device=device),
                          torch.as_tensor(bank.time[safe] - t_ref, dtype=torch.float64, device=device),
                          torch.as_tensor(ok, device=device))


@torch.no_grad()
def model_poses(handle: WarperHandle, bank: EvidenceBank, sel: np.ndarray, targets: np.ndarray,
                batch_size: int, prev: np.ndarray | None = None) -> np.ndarray:
    """(d): pose at each target (T,) from the selected frames (T, V) -> (T, J, 3). `prev` (T, V, K):
    each selected frame's earlier frames of the same camera (temporal-context models), or None."""
    T, V = sel.shape
    undistort = undistorter(list(bank.cameras))
    out = np.full((T, NUM_JOINTS, 3), np.nan)
    dev = next(handle.model.parameters()).device
    P = torch.as_tensor(bank.P, dtype=torch.float32, device=dev)
    t_ref = float(targets.min()) if T else 0.0          # times relative to the sequence: float32-safe
    for s in range(0, T, batch_size):
        b = np.arange(s, min(s + batch_size, T))
        sb = sel[b]                                      # (B, V)
        valid = sb >= 0
        safe = np.maximum(sb, 0)
        hm = bank.heatmaps(safe.ravel()).to(dev)                    # (B*V, J, h, w)
        hm = hm.view(len(b), V, *hm.shape[1:])                      # (B, V, J, h, w)
        hm = hm * torch.as_tensor(valid, dtype=hm.dtype, device=dev)[..., None, None, None]
        previous = None if prev is None else _previous_frames(bank, prev[b], t_ref, dev)
        res = handle.model.pose_at(
            hm, P.expand(len(b), V, 3, 4),
            torch.as_tensor(bank.affines[safe], dtype=torch.float32, device=dev),
            torch.as_tensor(bank.time[safe] - t_ref, dtype=torch.float32, device=dev),
            torch.as_tensor(valid, device=dev),
            torch.as_tensor(targets[b] - t_ref, dtype=torch.float32, device=dev), undistort=undistort,
            previous=previous)
        out[b] = res.points.double().cpu().numpy()
    return out
