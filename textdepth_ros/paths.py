"""Where the package's data files live: the source tree in a checkout or venv
(editable install), or share/textdepth_ros in a colcon install."""
from pathlib import Path

PACKAGE = "textdepth_ros"
_SOURCE_ROOT = Path(__file__).resolve().parent.parent


def share_dir() -> Path:
    """The directory holding config/, launch/ and model/."""
    if (_SOURCE_ROOT / "config").is_dir() and (_SOURCE_ROOT / "package.xml").is_file():
        return _SOURCE_ROOT
    try:  # installed by colcon: ament index knows the share directory
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory(PACKAGE))
    except Exception:  # noqa: BLE001 - any failure means "not installed by colcon"
        return _SOURCE_ROOT


def config_dir() -> Path:
    return share_dir() / "config"


def weights_dir() -> Path:
    """model/: where users put checkpoints and pretrained files (see model/README.md)."""
    return share_dir() / "model"


# Checkpoints written by `textdepth import-pixelformer` under these names in model/ are
# used by `textdepth demo` when no --checkpoint is given: indoor (NYU) first.
IMPORTED_CHECKPOINTS = ("pixelformer_nyu.safetensors", "pixelformer_kitti.safetensors")


def imported_checkpoint(folder=None):
    """The first imported PixelFormer checkpoint in model/ (or `folder`), or None."""
    folder = Path(folder) if folder is not None else weights_dir()
    return next((folder / name for name in IMPORTED_CHECKPOINTS if (folder / name).is_file()), None)
