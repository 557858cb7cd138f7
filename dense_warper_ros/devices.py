"""Which torch device a run uses. One rule for the node, training and the benchmark: `auto` is CUDA
when torch sees a GPU, else the CPU; asking for CUDA on a machine without one is an error, not a
silent CPU run (a user who asked for the GPU must learn that they did not get it)."""
from __future__ import annotations

import torch


def resolve_device(name: str | torch.device) -> torch.device:
    """`auto`, `cpu`, `cuda` or `cuda:N` -> the device; ValueError for anything else."""
    if str(name) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"device {str(name)!r} is not a torch device (auto, cpu, cuda, cuda:N)") from exc
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device {str(name)!r}: only cpu and cuda are supported")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(name)!r} asked for, but torch {torch.__version__} sees no CUDA device; "
                         "use cpu or auto")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {str(name)!r}: torch sees {torch.cuda.device_count()} CUDA device(s)")
    return dev
