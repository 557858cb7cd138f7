"""The thin ROS 2 layer: messages <-> core types, the node, TF, launch logic. Needs rclpy."""
