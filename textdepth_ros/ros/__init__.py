"""The depth node's runtime: the node, message conversions, point cloud, text input,
diagnostics, spinning and the child-process wrapper the demo, bag tools and tests use."""
