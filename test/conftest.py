"""Test-wide setup: each pytest process gets its own ROS domain (no crosstalk between xdist
workers or concurrent runs), and a fresh ROS log directory."""
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "test"))

# Fast DDS supports domain ids 0..232; spread processes over 1..200 by pid.
os.environ["ROS_DOMAIN_ID"] = str(1 + os.getpid() % 200)
os.environ.setdefault("ROS_LOG_DIR", tempfile.mkdtemp(prefix="dw_roslog_"))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
