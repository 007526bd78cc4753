"""The network of the paper, one idea per file (see network.py for the assembly)."""
from textdepth_ros.model.config import VARIANTS, load_model_config
from textdepth_ros.model.network import PARTS, TextDepthNet, build_model

__all__ = ["PARTS", "VARIANTS", "TextDepthNet", "build_model", "load_model_config"]
