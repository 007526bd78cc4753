"""TextChangeLog with a given clock: the lines a stream of text changes produces."""
from textdepth_ros.ros.text_input import TextChangeLog


def test_first_change_at_once_then_the_newest_once_per_period():
    log = TextChangeLog(period=5.0)
    assert log.changed("a kitchen", now=100.0) == "scene text: 'a kitchen'"
    assert log.changed("a garage", now=101.0) is None
    assert log.changed("a bedroom", now=102.0) is None
    assert log.due(now=104.9) is None
    assert log.due(now=105.0) == "scene text: 'a bedroom' (the newest of 2 changes since the last line)"
    assert log.due(now=200.0) is None  # nothing new
    assert log.changed("an office", now=200.0) == "scene text: 'an office'"


def test_a_thousand_changes_in_two_seconds_give_one_line_then_one_more():
    log = TextChangeLog(period=5.0)
    lines = [log.changed(f"room {i}", now=i / 1000) for i in range(2000)]
    lines += [log.due(now=t) for t in (3.0, 5.0, 6.0)]
    assert [line for line in lines if line] == ["scene text: 'room 0'",
                                                "scene text: 'room 1999' (the newest of 1999 changes since the last line)"]
