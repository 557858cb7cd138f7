"""The per-frame memory stays mapped: with `keep_freed_memory`, a process that allocates and frees
the same large buffers round after round stops page-faulting them in again (glibc)."""
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

PROBE = """
import resource, sys
import numpy as np
from dense_warper_ros.allocator import keep_freed_memory
if sys.argv[1] == "keep" and not keep_freed_memory():
    print("unsupported"); sys.exit(0)
def round_():                                    # 20 x 1 MiB alive at once, then all freed: a frame
    arrays = [np.ones((1 << 20) // 8) for _ in range(20)]
    del arrays
for _ in range(5):
    round_()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    round_()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 50)
"""


def faults_per_round(mode: str) -> str:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_freed_memory_is_kept_mapped():
    kept = faults_per_round("keep")
    if kept == "unsupported":
        pytest.skip("no glibc mallopt here")
    default = float(faults_per_round("default"))
    print(f"minor page faults per round: {default:.0f} with glibc's defaults, {float(kept):.0f} kept")
    assert default > 1000, "glibc's defaults give the 20 MiB back and fault it in again every round"
    assert float(kept) < 50
