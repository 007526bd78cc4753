"""The README's per-node tables (Subscribed / Published / Parameters) name exactly what
the code declares, so they stay true as parameters and topics change."""
import re

from ros_helpers import REPO, Client
from textdepth_ros.bags.evaluator_node import parameters as evaluator_parameters
from textdepth_ros.ros.auto_text import AUTO_SCORE_TOPIC, AUTO_TEXT_TOPIC
from textdepth_ros.ros.depth_node import PARAMETERS as DEPTH_PARAMETERS

README = (REPO / "README.md").read_text()


def first_column(table_heading: str, start: str, end: str) -> set:
    """Backticked names in the first column of the table after `table_heading` in [start, end)."""
    section = README[README.index(start):README.index(end)]
    rows = section[section.index(table_heading):].split("\n\n")[0].splitlines()[2:]
    return {name for row in rows for name in re.findall(r"`([^`]+)`", row.split("|")[1])}


def test_depth_node_parameter_table_matches_the_code():
    documented = first_column("| parameter |", "### Parameters", "### Input QoS")
    documented.discard("qos_overrides.<topic>.subscription.{reliability,durability,history,depth}")
    assert documented == set(DEPTH_PARAMETERS)


def test_depth_node_topic_tables_match_the_code():
    subscribed = first_column("| topic |", "### Subscribed topics", "### Published topics")
    assert subscribed == {"image", "image/compressed", "camera_info", "text"}
    published = first_column("| topic |", "### Published topics", "### Parameters")
    assert published == set(Client.OUTPUTS) | {"/diagnostics", AUTO_TEXT_TOPIC, AUTO_SCORE_TOPIC}


def test_evaluator_node_tables_match_the_code():
    documented = first_column("| parameter |", "`evaluator_node` (node name", "Without `ros2`,")
    documented.discard("qos_overrides.<topic>.subscription.*")
    assert documented == set(evaluator_parameters())
    assert first_column("| subscribed |", "`evaluator_node` (node name", "Without `ros2`,") == {"depth", "gt_depth"}
    assert first_column("| published |", "`evaluator_node` (node name", "Without `ros2`,") == {"evaluation"}
