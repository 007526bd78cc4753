"""ROS 2 layer: message conversions, point clouds, the depth node and its demo.

Nothing here builds tensors: frames go to `textdepth_ros.inference.DepthEstimator`.
"""
