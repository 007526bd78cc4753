"""Reading the project's YAML files (model, training and node configs) with errors a
user can act on."""
from pathlib import Path

import yaml

from textdepth_ros.errors import UserError


def read_yaml_mapping(path, what: str) -> dict:
    """The mapping in a YAML file; a missing or unreadable file, text that is not UTF-8,
    bad YAML, absurd nesting or a non-mapping is one UserError naming `what` and the path.
    An empty file is an empty mapping."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{what} not found: {path}")
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise UserError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise UserError(f"{what} {path} is not UTF-8 text (byte {exc.start}: {exc.object[exc.start:exc.start + 1]!r}); "
                        "save it as UTF-8") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise UserError(f"{what} {path} is not valid YAML: {one_line(exc)}") from None
    except RecursionError:
        raise UserError(f"{what} {path} is nested too deeply to be a config") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{what} {path} must be a mapping")
    return data


def one_line(exc: Exception) -> str:
    """PyYAML's messages span lines (a snippet with a caret); a CLI error is one line."""
    return " ".join(str(exc).split())
