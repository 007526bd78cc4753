"""Where the package's data files live, and where model files (checkpoints, pretrained
weights, .onnx) are looked up.

Data files: the source tree in a checkout or venv (editable install), or
share/textdepth_ros in a colcon install.

Model files, one order for the node's parameters, every CLI option and the model configs
(docs/install.md, "Model files"):
  1. an absolute path (`~` expanded): that file, nowhere else;
  2. a relative path that exists from the working directory;
  3. each folder in $TEXTDEPTH_MODEL_DIR (several separated by ':');
  4. ~/.cache/textdepth_ros;
  5. the package's own model folder: share/textdepth_ros/model of the colcon install
     (found through ament_index), or model/ of the source checkout when running from one.
In 3-5 a leading `model/` names "the model folder" (config/model/paper.yaml's
`model/swin_large_...pth` is `swin_large_...pth` there).
"""
import os
from pathlib import Path

from textdepth_ros.errors import WeightsUnavailableError

PACKAGE = "textdepth_ros"
MODEL_DIR_VARIABLE = "TEXTDEPTH_MODEL_DIR"
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
    """The package's own model folder (step 5 above; see model/README.md)."""
    return share_dir() / "model"


def user_model_dir() -> Path:
    """~/.cache/textdepth_ros (step 4)."""
    return Path.home() / ".cache" / PACKAGE


def model_dirs() -> list:
    """Steps 3-5 above: the folders relative model file names are looked up in, in order."""
    extra = [Path(d).expanduser() for d in os.environ.get(MODEL_DIR_VARIABLE, "").split(os.pathsep) if d.strip()]
    return extra + [user_model_dir(), weights_dir()]


def find_model_file(name, what: str = "model file", error=WeightsUnavailableError) -> Path:
    """The file `name` names, by the order above; `error` (one line, every place looked in)
    when there is none."""
    path = Path(str(name)).expanduser()
    if path.is_absolute():
        if path.is_file():
            return path
        raise error(f"{what} not found: {path}")
    if path.is_file():
        return path
    in_folder = Path(*path.parts[1:]) if len(path.parts) > 1 and path.parts[0] == "model" else path
    for folder in model_dirs():
        if (folder / in_folder).is_file():
            return folder / in_folder
    looked = ", ".join(str(d / in_folder) for d in model_dirs())
    raise error(f"{what} not found: {name} (looked in the working directory, {looked}; "
                f"put it in one of them or set ${MODEL_DIR_VARIABLE}: docs/install.md, 'Model files')")


# Checkpoints written by `textdepth import-pixelformer` under these names in a model folder
# are used by `textdepth demo` when no --checkpoint is given: indoor (NYU) first.
IMPORTED_CHECKPOINTS = ("pixelformer_nyu.safetensors", "pixelformer_kitti.safetensors")


def imported_checkpoint(folder=None):
    """The first imported PixelFormer checkpoint in `folder`, or else in the model folders
    (steps 3-5, in order), or None."""
    folders = [Path(folder)] if folder is not None else model_dirs()
    return next((d / name for name in IMPORTED_CHECKPOINTS for d in folders if (d / name).is_file()), None)
