"""glibc malloc settings for the processes that run the per-frame work.

Each frame allocates and frees the same large buffers (an image, the 2D network's activations, the
warps' feature maps). With glibc's defaults a freed block at the top of the heap beyond the trim
threshold goes back to the kernel, and blocks above the mmap threshold are mapped and unmapped on
every allocation, so the next frame page-faults the same memory in again, in kernel time the
fusion then lacks (measured in docs/experiments.md). Raising both thresholds keeps the memory
mapped; the process then holds its peak working set, which it needs again a frame later anyway.
"""
from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1           # mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20       # glibc's upper limit on 64-bit systems
TRIM_THRESHOLD = 128 << 20


def keep_freed_memory() -> bool:
    """Set the thresholds (where glibc's `mallopt` exists) -> whether they were set. Call it early:
    it changes how later allocations are served, not those already made."""
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt
    except (OSError, AttributeError):   # not glibc (musl, macOS): their allocators keep their own ways
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
