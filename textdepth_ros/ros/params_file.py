"""ROS 2 parameter files read the way rcl reads them, for the tools that read one
without being the node (bag-eval) and for the node's warning when a file it was given
holds nothing for it.

A file's top-level keys are node names, matched against the node's fully qualified
name: a key without a leading '/' is rooted at '/' (so `depth_node:` is only
`/depth_node`, never `/textdepth/depth_node`), `*` matches one name part, `**` any
number of them (none included): `/**` is every node, `/**/depth_node` is depth_node in
any namespace. Values of every matching key apply, later entries over earlier ones.
"""
import re

ROS_PARAMETERS = "ros__parameters"


def key_pattern(key: str) -> "re.Pattern":
    """A params-file node key -> a regex over fully qualified node names."""
    parts = [part for part in key.strip().split("/") if part]
    regex = ""
    for part in parts:
        if part == "**":
            regex += "(?:/[^/]+)*"
        elif part == "*":
            regex += "/[^/]+"
        else:  # rcl refuses `*` inside a name (e.g. `depth_*`), so it is never a wildcard here
            regex += "/" + re.escape(part)
    return re.compile(regex or "/")


def key_matches(key: str, fully_qualified_name: str) -> bool:
    return key_pattern(key).fullmatch(fully_qualified_name) is not None


def flatten(values: dict, prefix: str = "") -> dict:
    """Nested YAML mappings -> dotted parameter names, as rcl names them
    (`qos_overrides: {/image: {subscription: {reliability: x}}}` ->
    `qos_overrides./image.subscription.reliability`)."""
    flat = {}
    for name, value in values.items():
        full = f"{prefix}{name}"
        if isinstance(value, dict):
            flat.update(flatten(value, full + "."))
        else:
            flat[full] = value
    return flat


def parameters_for(document: dict, fully_qualified_name: str) -> "dict | None":
    """The parameters a params file gives the node `fully_qualified_name` (dotted names),
    or None when no key of the file matches it."""
    matched = None
    for key, entry in document.items():
        if not isinstance(entry, dict) or not key_matches(str(key), fully_qualified_name):
            continue
        matched = matched if matched is not None else {}
        matched.update(flatten(entry.get(ROS_PARAMETERS) or {}))
    return matched


def params_files_in(argv) -> list:
    """The files given with `--params-file` after `--ros-args` in a command line."""
    argv = list(argv or [])
    if "--ros-args" not in argv:
        return []
    ros_args = argv[argv.index("--ros-args"):]
    return [value for flag, value in zip(ros_args, ros_args[1:]) if flag == "--params-file"]


def unmatched_params_files(argv, fully_qualified_name: str) -> list:
    """(file, its node keys) of each params file in `argv` whose keys all miss this
    node: rcl drops such a file's values without a word."""
    import yaml

    missed = []
    for path in params_files_in(argv):
        try:
            with open(path) as stream:
                document = yaml.safe_load(stream) or {}
        except (OSError, yaml.YAMLError):
            continue  # rcl itself refuses unreadable files at init, loudly
        if isinstance(document, dict) and parameters_for(document, fully_qualified_name) is None:
            missed.append((path, [str(key) for key in document]))
    return missed


def unmatched_warning(path: str, keys: list, fully_qualified_name: str) -> str:
    return (f"params file {path} has no entry for {fully_qualified_name} (its keys: {', '.join(keys) or 'none'}): "
            f"none of its values apply. Key it '/**/{fully_qualified_name.rsplit('/', 1)[-1]}:' "
            "(this node in any namespace) or '/**:'")


def warn_unmatched(node, argv) -> None:
    """One warning per params file in `argv` that holds nothing for `node`."""
    name = node.get_fully_qualified_name()
    for path, keys in unmatched_params_files(argv, name):
        node.get_logger().warning(unmatched_warning(path, keys, name))
