"""textdepth_ros: monocular metric depth for ROS 2 from one RGB camera plus a scene
description (PixelFormer + CLIP text prior, TRCA and TBCP).

Imports go one way: ros -> inference -> model; train/eval -> data, model, metrics.
"""
__version__ = "0.1.0"
