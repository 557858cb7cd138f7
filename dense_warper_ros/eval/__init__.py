"""Evaluation: pose metrics (`metrics`), comparison methods (`baselines`) and the accuracy benchmark
(`accuracy`, run as `python -m dense_warper_ros.eval.accuracy`). ROS-free."""
