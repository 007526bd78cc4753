"""The node tables (README.md's one-line tables and docs/node.md's full ones), the
evaluator node's tables (docs/bags.md), the launch arguments (docs/node.md) and the CLI
table (README.md) name exactly what the code declares, so they stay true as parameters,
topics and commands change."""
import re

import pytest
from ros_helpers import REPO, Client
from test_docs import launch_arguments
from textdepth_ros.bags.evaluator_node import parameters as evaluator_parameters
from textdepth_ros.cli import COMMANDS
from textdepth_ros.ros.auto_text import AUTO_SCORE_TOPIC, AUTO_TEXT_TOPIC
from textdepth_ros.ros.depth_node import PARAMETERS as DEPTH_PARAMETERS

README, NODE, BAGS = "README.md", "docs/node.md", "docs/bags.md"
QOS_ROWS = {"qos_overrides.<topic>.subscription.*",
            "qos_overrides.<topic>.subscription.{reliability,durability,history,depth}"}


def section(page: str, heading: str) -> str:
    """The text under the markdown heading `heading` of `page`, up to the next heading of
    the same or a higher level."""
    text = (REPO / page).read_text()
    match = re.search(rf"^(#+) {re.escape(heading)}\s*$", text, re.MULTILINE)
    assert match, f"{page} has no heading '{heading}'"
    level = len(match.group(1))
    end = re.search(rf"^#{{1,{level}}} ", text[match.end():], re.MULTILINE)
    return text[match.end():match.end() + end.start() if end else len(text)]


def first_column(page: str, heading: str, table_heading: str) -> set:
    """Backticked names in the first column of the table starting with `table_heading`
    under `heading` of `page`."""
    text = section(page, heading)
    assert table_heading in text, f"{page}, '{heading}': no table starting with {table_heading!r}"
    rows = text[text.index(table_heading):].split("\n\n")[0].splitlines()[2:]
    return {name for row in rows for name in re.findall(r"`([^`]+)`", row.split("|")[1])}


@pytest.mark.parametrize("page, heading", [(README, "Parameters"), (NODE, "Parameters")])
def test_depth_node_parameter_tables_match_the_code(page, heading):
    assert first_column(page, heading, "| parameter |") - QOS_ROWS == set(DEPTH_PARAMETERS)


@pytest.mark.parametrize("page", [README, NODE])
def test_depth_node_topic_tables_match_the_code(page):
    assert first_column(page, "Subscribed topics", "| topic |") == {"image", "image/compressed", "camera_info", "text"}
    assert first_column(page, "Published topics", "| topic |") == \
        set(Client.OUTPUTS) | {"/diagnostics", AUTO_TEXT_TOPIC, AUTO_SCORE_TOPIC}


def test_launch_argument_table_matches_the_launch_file():
    assert first_column(NODE, "Launching", "| launch argument |") == launch_arguments("depth.launch.py")


def test_cli_table_names_every_subcommand():
    assert first_column(README, "Command line: `textdepth`", "| command |") == set(COMMANDS)


def test_evaluator_node_tables_match_the_code():
    heading = "The ROS route: `evaluator_node`"
    assert first_column(BAGS, heading, "| parameter |") - QOS_ROWS == set(evaluator_parameters())
    assert first_column(BAGS, heading, "| subscribed |") == {"depth", "gt_depth"}
    assert first_column(BAGS, heading, "| published |") == {"evaluation"}
