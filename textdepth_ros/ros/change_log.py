"""One INFO line per period at most for something that may change at any rate: a scene
text from a 1 kHz topic (a line per change was ~770 lines/s), 200 `ros2 param set`s in
two seconds (200 lines), a camera re-created twice a second (a QoS switch each time).

A change after a quiet period is logged at once; later ones are merged and counted, and
`due()` (called from a timer) logs the merged newest state once the period is over, so
the last change always ends up in the log.
"""


class ChangeLog:
    def __init__(self, period: float, render, merge=None):
        """`render(pending, changes)` -> the line for `pending` after `changes` changes;
        `merge(pending, new)` -> the new pending value (default: the newest replaces it)."""
        self.period = period
        self._render = render
        self._merge = merge or (lambda _old, new: new)
        self._last_line = float("-inf")
        self._pending = None
        self._unlogged = 0  # changes since the last line

    def changed(self, value, now: float):
        """The line to log now, or None (due() logs it later)."""
        self._pending = value if self._pending is None else self._merge(self._pending, value)
        self._unlogged += 1
        return self.due(now)

    def due(self, now: float):
        if self._pending is None or now - self._last_line < self.period:
            return None
        line = self._render(self._pending, self._unlogged)
        self._last_line, self._pending, self._unlogged = now, None, 0
        return line


def since_last_line(changes: int, what: str = "changes") -> str:
    """' (the newest of N changes since the last line)' when more than one was merged."""
    return f" (the newest of {changes} {what} since the last line)" if changes > 1 else ""


def parameters_line(changed: dict, changes: int) -> str:
    """`changed`: each parameter's newest value; `changes`: set requests merged into it."""
    values = ", ".join(f"{name}={value!r}" for name, value in changed.items())
    return f"parameters set: {values}" + since_last_line(changes)


def merge_parameters(pending: dict, new: dict) -> dict:
    return {**pending, **new}
