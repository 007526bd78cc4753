"""`textdepth demo`: depth_node on a rendered room sequence over real ROS 2 topics."""
