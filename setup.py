"""ament_python package: `colcon build` installs it into a ROS 2 workspace, and
`pip install -e .` installs the same package into the project venv (see README)."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "textdepth_ros"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "test.*", "bench"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml", "README.md"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml")),
        (f"share/{PACKAGE}/config/model", glob("config/model/*.yaml")),
        (f"share/{PACKAGE}/model", glob("model/*.md") + glob("model/*.json")),
        (f"share/{PACKAGE}/model/demo", glob("model/demo/*")),
    ],
    install_requires=["setuptools"],
    zip_safe=True,
    maintainer="textdepth_ros maintainers",
    maintainer_email="textdepth@example.org",
    description="Monocular metric depth for ROS 2: PixelFormer with a CLIP text prior (TRCA, TBCP).",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "textdepth = textdepth_ros.cli:entry",
            "depth_node = textdepth_ros.ros.depth_node:main",
            "managed_depth_node = textdepth_ros.ros.lifecycle_node:main",
            "evaluator_node = textdepth_ros.bags.evaluator_node:main",
        ],
    },
)
