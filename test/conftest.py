"""Test-wide setup: each pytest process gets its own ROS domain (no crosstalk between xdist
workers or concurrent runs), and a fresh ROS log directory."""
import os
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "test"))

# Fast DDS supports domain ids 0..232; spread processes over 1..200 by pid.
os.environ["ROS_DOMAIN_ID"] = str(1 + os.getpid() % 200)
os.environ.setdefault("ROS_LOG_DIR", tempfile.mkdtemp(prefix="dw_roslog_"))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


@pytest.fixture
def file_size_limit():
    """Call with a byte count: from then on a file written past it fails as on a full disk (EFBIG,
    SIGXFSZ ignored) in this process, until called without one or the test ends. POSIX only."""
    resource = pytest.importorskip("resource")
    import signal
    if not hasattr(resource, "RLIMIT_FSIZE"):
        pytest.skip("needs POSIX file-size limits")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    yield lambda nbytes=None: resource.setrlimit(resource.RLIMIT_FSIZE, (soft if nbytes is None else nbytes, hard))
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    signal.signal(signal.SIGXFSZ, handler)
