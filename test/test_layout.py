"""The layering the package promises: the core (geometry, buffer, model, training, evaluation)
imports without rclpy or any message type, so it runs on a GPU box without ROS."""
import subprocess
import sys

BLOCKED = ("rclpy", "sensor_msgs", "geometry_msgs", "std_msgs", "visualization_msgs", "diagnostic_msgs",
           "tf2_msgs", "rosbags", "ament_index_python", "dense_warper_ros.msg")


def test_the_core_imports_without_ros():
    code = ("import sys\n"
            f"for name in {BLOCKED!r}: sys.modules[name] = None   # any import of them now fails\n"
            "import dense_warper_ros.pipeline, dense_warper_ros.eval.accuracy, dense_warper_ros.train.loop\n"
            "import dense_warper_ros.data.video, dense_warper_ros.clock_check, dense_warper_ros.scheduler\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_no_core_module_imports_the_ros_layer():
    """Arrows point down: nothing outside dense_warper_ros/ros imports it."""
    import re
    from pathlib import Path
    pkg = Path(__file__).resolve().parents[1] / "dense_warper_ros"
    imports_ros = re.compile(r"^\s*(from|import)\s+(dense_warper_ros\.ros\b|dense_warper_ros import ros\b|\.+ros\b)",
                             re.MULTILINE)
    offenders = [str(p.relative_to(pkg)) for p in pkg.rglob("*.py")
                 if p.relative_to(pkg).parts[0] != "ros" and imports_ros.search(p.read_text())]
    assert offenders == []
