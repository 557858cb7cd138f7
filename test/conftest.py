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


@pytest.fixture()
def ros_node():
    """An rclpy node in the test process, on this process's ROS domain (the test rig's side)."""
    rclpy = pytest.importorskip("rclpy", reason="rclpy missing: run `make setup`")
    rclpy.init()
    node = rclpy.create_node("dw_test_rig")
    yield node
    node.destroy_node()
    rclpy.try_shutdown()


@pytest.fixture(scope="module")
def recording():
    """12 interleaved real pose2sim frames of 4 cameras at quarter size (the DDS node tests' input)."""
    from dense_warper_ros.data.pose2sim_recording import pose2sim_recording
    try:
        return pose2sim_recording(num_frames=12, scale=0.25, with_truth=False)
    except FileNotFoundError as e:
        pytest.fail(f"pose2sim demo not fetched ({e}); run `make setup` (scripts/fetch_pose2sim.py)")


@pytest.fixture(scope="module")
def two_person_recording():
    """20 interleaved real frames of pose2sim's two-person recording (4 cameras) at 0.35 size."""
    from dense_warper_ros.data.pose2sim_recording import pose2sim_recording
    try:
        return pose2sim_recording(num_frames=20, scale=0.35, with_truth=False, root=REPO / "data" / "pose2sim_multi")
    except FileNotFoundError as e:
        pytest.fail(f"pose2sim two-person demo not fetched ({e}); run `make setup` (scripts/fetch_pose2sim.py)")
