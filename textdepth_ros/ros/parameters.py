"""Node parameters: declared with descriptors (so `ros2 param describe` says what each
one is, its range, and whether it is fixed), checked at start-up and at run time, and
applied while the node runs where that makes sense.

rclpy itself rejects a change to a read-only parameter, a value of the wrong type and
a value outside the descriptor's range, each with a reason; a `check` function rejects
what a range cannot say. At start-up the same faults become one UserError line.
Accepted changes are logged, throttled like scene texts (ChangeLog: 200 `ros2 param
set`s in two seconds were 200 lines).
"""
import time
from dataclasses import dataclass
from typing import Callable, Optional

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.parameter import Parameter

from textdepth_ros.errors import UserError
from textdepth_ros.ros.change_log import ChangeLog, merge_parameters, parameters_line

TYPE_WORDS = {bool: "a bool (true/false)", int: "an integer", float: "a double (write 5.0, not 5)", str: "a string"}


@dataclass(frozen=True)
class Spec:
    default: object
    description: str
    dynamic: bool = False  # may change while the node runs
    low: Optional[float] = None  # inclusive range (int and double parameters)
    high: Optional[float] = None
    check: Optional[Callable] = None  # value -> reason it is refused, or None


def descriptor(name: str, spec: Spec) -> ParameterDescriptor:
    fixed = "" if spec.dynamic else " (fixed at start-up: restart the node to change it)"
    desc = ParameterDescriptor(name=name, description=spec.description + fixed, read_only=not spec.dynamic,
                               type=Parameter.Type.from_parameter_value(spec.default).value)
    if spec.low is not None:
        if isinstance(spec.default, float):
            desc.floating_point_range = [FloatingPointRange(from_value=float(spec.low), to_value=float(spec.high))]
        else:
            desc.integer_range = [IntegerRange(from_value=int(spec.low), to_value=int(spec.high), step=1)]
    return desc


def _refusal(spec: Spec, value) -> Optional[str]:
    """Why `value` is refused beyond type and range (rclpy checks those), or None."""
    return spec.check(value) if spec.check else None


class LiveParameters:
    """The parameters of `node` per `specs`. `values` is a dict that is replaced, never
    changed in place, so another thread reading it sees one consistent set. Accepted
    run-time changes call `on_change({name: value})` after they are stored. With
    `log_period`, they are logged at most once per period; the node calls
    `pending_log_line()` from a timer for the line that holds the newest values."""

    def __init__(self, node, specs: dict, on_change: Callable = None, log_period: float = None):
        self._specs = specs
        self._on_change = on_change
        self._logger = node.get_logger()
        self._log = ChangeLog(log_period, parameters_line, merge_parameters) if log_period else None
        self.values = {name: _declare(node, name, spec) for name, spec in specs.items()}
        node.add_on_set_parameters_callback(self._validate)
        node.add_post_set_parameters_callback(self._apply)

    def __getitem__(self, name):
        return self.values[name]

    def _validate(self, parameters) -> SetParametersResult:
        for param in parameters:
            spec = self._specs.get(param.name)
            reason = _refusal(spec, param.value) if spec else None
            if reason:
                return SetParametersResult(successful=False, reason=f"{param.name}: {reason}")
        return SetParametersResult(successful=True)

    def _apply(self, parameters) -> None:
        changed = {p.name: p.value for p in parameters if p.name in self._specs}
        if changed:
            self.values = {**self.values, **changed}
            if self._on_change is not None:
                self._on_change(changed)
            line = self._log.changed(changed, time.monotonic()) if self._log else None
            if line:
                self._logger.info(line)

    def pending_log_line(self):
        """The line with the changes not logged yet, once the period allows; else None."""
        return self._log.due(time.monotonic()) if self._log else None


def _declare(node, name: str, spec: Spec):
    try:
        value = node.declare_parameter(name, spec.default, descriptor(name, spec)).value
    except InvalidParameterTypeException:
        raise UserError(f"parameter '{name}' must be {TYPE_WORDS[type(spec.default)]}") from None
    except InvalidParameterValueException as exc:  # out of range (NaN included)
        reason = str(exc).split("Reason: ", 1)[-1].removesuffix(f": {name}")
        raise UserError(f"parameter '{name}': {reason}") from None
    reason = _refusal(spec, value)
    if reason:
        raise UserError(f"parameter '{name}' = {value!r}: {reason}")
    return value



def set_timer_period(timer, seconds: float) -> None:
    """A new period from now on (changing the period alone keeps the next call that
    the old period scheduled: back from 60 s to 0.2 s would wait out the minute)."""
    timer.timer_period_ns = int(seconds * 1e9)
    timer.reset()
