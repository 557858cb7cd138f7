"""Evaluation: pose metrics (`metrics`), comparison methods (`baselines`) and the accuracy benchmark:
its configuration (`bench_config`), method (d) (`densewarper_method`), every method on one sequence
(`methods`), the clips and the video (`sequences`), scores, tables and figures (`report`), and the
command line (`accuracy`, run as `python -m dense_warper_ros.eval.accuracy`). ROS-free."""
