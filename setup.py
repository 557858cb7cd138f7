"""pip install of the ROS-free library (core, model, data, training, evaluation).

ROS users build this package with colcon (package.xml, CMakeLists.txt); this file is for machines
without ROS, e.g. a GPU box that trains or benchmarks the model: `pip install .` or `pip install .[bench]`.
"""
from setuptools import find_packages, setup

setup(
    name="dense_warper_ros",
    version="0.1.0",
    description="DenseWarper multi-view 3D human pose from interleaved cameras (ROS-free core)",
    license="Apache-2.0",
    python_requires=">=3.10",
    # dense_warper_ros.ros holds everything that needs rclpy or works on ROS messages (the node, bags,
    # the per-frame path over messages, the demo, the rig publisher): colcon installs it, pip does not.
    packages=find_packages(include=["dense_warper_ros", "dense_warper_ros.*"],
                           exclude=["dense_warper_ros.ros", "dense_warper_ros.ros.*"]),
    install_requires=["numpy", "torch>=2.1", "opencv-python-headless", "pyyaml", "safetensors", "tqdm"],
    extras_require={
        "bench": ["matplotlib", "pybullet==3.2.7", "rosbags"],
        "test": ["pytest", "pytest-xdist"],
    },
    entry_points={"console_scripts": [
        "dense-warper-accuracy=dense_warper_ros.eval.accuracy:main",
    ]},
)
