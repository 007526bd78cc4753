"""The depth node's output topics (relative: the node's namespace and remaps apply).

They follow image_transport's layout: an image's CameraInfo is the sibling topic
`camera_info` in the image topic's namespace (image_transport's getCameraInfoTopic drops
the last name component and appends `camera_info`). So `depth/image`, `depth/uncertainty`
and `depth/preview` all pair with `depth/camera_info`, and depth_image_proc, RViz's
DepthCloud and Camera displays or rtabmap find it without a camera_info remap.
realsense2_camera names its depth the same way (`depth/image_rect_raw` +
`depth/camera_info`); image_pipeline's nodes take `image_rect` + its sibling `camera_info`.
"""
DEPTH = "depth/image"  # sensor_msgs/Image 32FC1, metres
CAMERA_INFO = "depth/camera_info"  # the depth image's own CameraInfo (size, K, P)
UNCERTAINTY = "depth/uncertainty"  # sensor_msgs/Image 32FC1, metres
PREVIEW = "depth/preview"  # rgb8 colour map, for a person
POINTS = "points"  # sensor_msgs/PointCloud2, organized
