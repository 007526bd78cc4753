"""Reading the project's YAML files (model, training and node configs) with errors a
user can act on."""
from pathlib import Path

import yaml

from textdepth_ros.errors import UserError


def read_yaml_mapping(path, what: str) -> dict:
    """The mapping in a YAML file; a missing file, bad YAML or a non-mapping is one
    UserError naming `what` and the path. An empty file is an empty mapping."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"{what} {path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{what} {path} must be a mapping")
    return data
