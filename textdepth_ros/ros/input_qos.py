"""Input subscriptions that work with whatever publishes: their QoS follows the
publishers found on the topic (as `ros2 bag record` does), unless the standard ROS 2
QoS overrides fix it, and they say why when nothing arrives.

Why: a camera driver or `ros2 bag play` publishes RELIABLE with default DDS settings;
a best-effort subscription to that gets no 640x480 image at all (the big samples are
lost between the two and never repaired). A reliable subscription to a best-effort
publisher gets nothing either (incompatible QoS). So:
- reliability: RELIABLE when every publisher is reliable, else BEST_EFFORT;
- durability: TRANSIENT_LOCAL when every publisher is, else VOLATILE;
- re-checked when rclpy reports a publisher matched or one with incompatible QoS (a
  camera re-created with other settings is followed at once: a check once a second
  alone missed every best-effort phase of one re-created twice a second), and every
  second; the subscription is re-created when the answer changes;
- no publisher yet: best effort + volatile, which matches any publisher.
Overrides (read-only parameters, rclpy's names for QoSOverridingOptions):
  qos_overrides.<resolved topic>.subscription.{reliability,durability,history,depth}
each one set fixes that policy; the others keep adapting.
Warnings, each at most every WARN_PERIOD_S per topic: messages lost in transit (a
best-effort subscription's DDS reports samples it lost), publishers matched but no
message for STALL_S seconds (a stream: in the last STALL_S, so frames that stop are
reported too; not a stream, such as a latched scene text: none at all, since one
message may be all there is), and a publisher with incompatible QoS under an override.
"""
import copy
import os
import time
from collections import deque

from rclpy.exceptions import InvalidParameterTypeException, ParameterNotDeclaredException
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rcl_interfaces.msg import ParameterDescriptor

from textdepth_ros.errors import UserError
from textdepth_ros.ros.change_log import ChangeLog, since_last_line
from textdepth_ros.ros.fastdds_profile import ENV_VAR as FASTDDS_PROFILE_VAR
from textdepth_ros.ros.parameters import TYPE_WORDS
from textdepth_ros.ros.rclpy_support import SubscriptionEventCallbacks  # Jazzy or newer, else one line
from textdepth_ros.ros.spinning import spins_on_events_executor

CHECK_PERIOD_S = 1.0
SWITCH_LOG_S = 5.0  # at most one "subscribing ..." line per topic in this time (a camera re-created 2x/s)
STALL_S = 5.0
RETIRE_S = 5.0  # an old subscription delivers at most this long after a switch
WARN_PERIOD_S = 30.0
POLICIES = {  # policy -> (parameter type, enum class or None for an int)
    "reliability": (Parameter.Type.STRING, ReliabilityPolicy),
    "durability": (Parameter.Type.STRING, DurabilityPolicy),
    "history": (Parameter.Type.STRING, HistoryPolicy),
    "depth": (Parameter.Type.INTEGER, None),
}
LARGE_IMAGES = "docs/node.md 'Large images'"  # a heading test_input_qos_advice checks exists
IMAGE_TYPES = ("Image", "CompressedImage")


def default_input_qos(depth: int = 5) -> QoSProfile:
    """Before any publisher is seen: best effort + volatile match every publisher."""
    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.BEST_EFFORT, durability=DurabilityPolicy.VOLATILE)


def adapt_to_publishers(base: QoSProfile, offered) -> QoSProfile:
    """`base` with reliability and durability that every offered QoS in `offered` satisfies."""
    qos = copy.copy(base)
    offered = list(offered)
    if offered:
        qos.reliability = (ReliabilityPolicy.RELIABLE if all(o.reliability == ReliabilityPolicy.RELIABLE for o in offered)
                           else ReliabilityPolicy.BEST_EFFORT)
        qos.durability = (DurabilityPolicy.TRANSIENT_LOCAL
                          if all(o.durability == DurabilityPolicy.TRANSIENT_LOCAL for o in offered)
                          else DurabilityPolicy.VOLATILE)
    return qos


def message_key(msg):
    """What makes a message the same one when two subscriptions deliver it."""
    header = getattr(msg, "header", None)
    if header is not None:
        return (header.stamp.sec, header.stamp.nanosec, header.frame_id)
    return getattr(msg, "data", None)


def override_name(topic: str, policy: str) -> str:
    return f"qos_overrides.{topic}.subscription.{policy}"


def describe(qos: QoSProfile) -> str:
    return f"{qos.reliability.name.lower()}, {qos.durability.name.lower()}"


def declare_if_given(node, name: str, kind: Parameter.Type, description: str):
    """Declare `name` read-only with the value given on the command line or in a params
    file and return it; None (and not declared) when none was given.

    Not declared without a value, as rclpy's own QoS overrides never are: a parameter
    declared with a type and no value made rclpy's get_parameters service answer nothing
    for any request naming it, and `ros2 param dump` names them all, so it printed
    nothing. A read-only parameter cannot be undeclared, hence the probe first."""
    try:
        return node.get_parameter(name).value  # declared when an earlier activate subscribed
    except ParameterNotDeclaredException:
        pass
    try:
        value = node.declare_parameter(name, kind, ParameterDescriptor(description=description)).value
    except InvalidParameterTypeException:
        raise UserError(f"parameter '{name}' must be {TYPE_WORDS[int if kind == Parameter.Type.INTEGER else str]}") \
            from None
    node.undeclare_parameter(name)
    if value is None:
        return None
    return node.declare_parameter(name, value, ParameterDescriptor(description=description, read_only=True)).value


class AdaptiveInput:
    """One input topic of `node`. `callback(msg)` runs on the executor thread."""

    def __init__(self, node, msg_type, topic: str, callback, base_qos: QoSProfile = None, stream: bool = True):
        """`stream`: messages keep coming (a camera), so their stopping is worth a warning;
        False: one message may be all there is (a latched scene text)."""
        self.node, self.msg_type, self.callback, self.stream = node, msg_type, callback, stream
        self.topic = node.resolve_topic_name(topic)
        self.type_name = f"{msg_type.__module__.split('.')[0]}/msg/{msg_type.__name__}"
        self.base = base_qos or default_input_qos()
        self.overrides = self._declare_overrides()
        self.subscription = self._retiring = None
        self._handed_over = deque(maxlen=32)
        self._generation = 0
        self.qos = None
        self._last_warned = {}
        self.arrivals, self._last_arrival = 0, None  # over every subscription of this input
        self._switch_log = ChangeLog(SWITCH_LOG_S, lambda line, n: line + since_last_line(n, "switches"))
        # rclpy's EventsExecutor crashed here (SIGSEGV in rclpy's PyTuple_New with no thread state;
        # rclpy issue #1644 is the same family) when subscriptions with a `matched` callback were
        # destroyed while publishers came and went, as every switch does. There, new publishers
        # are followed by the periodic check; incompatible ones still at once (that event is safe:
        # used since the first release).
        self._follow_matches = not spins_on_events_executor(getattr(node, "executor_kind", "auto"))
        self._subscribe(self._wanted_qos())
        # One timer per input: rclpy's EventsExecutor prints a warning from 8 timers on a clock.
        self._timer = node.create_timer(CHECK_PERIOD_S, self._periodic_check)

    # -- QoS ---------------------------------------------------------------------------
    def _declare_overrides(self) -> dict:
        overrides = {}
        for policy, (kind, enum) in POLICIES.items():
            name = override_name(self.topic, policy)
            value = declare_if_given(self.node, name, kind, f"{policy} of the subscription to {self.topic} "
                                     "(fixed at start-up; not given: follows the publishers)")
            if value is None:
                continue
            if enum is not None:
                try:
                    value = enum[str(value).upper()]
                except KeyError:
                    choices = ", ".join(m.name.lower() for m in enum if m.name not in ("UNKNOWN",))
                    raise UserError(f"{name}: '{value}' is not one of {choices}") from None
            overrides[policy] = value
        return overrides

    def publishers(self) -> list:
        """Publishers of our message type on the topic (TopicEndpointInfo)."""
        return [p for p in self.node.get_publishers_info_by_topic(self.topic) if p.topic_type == self.type_name]

    def _wanted_qos(self, publishers=None) -> QoSProfile:
        publishers = self.publishers() if publishers is None else publishers
        qos = adapt_to_publishers(self.base, [p.qos_profile for p in publishers])
        for policy, value in self.overrides.items():
            setattr(qos, policy, value)
        return qos

    def _subscribe(self, qos: QoSProfile) -> None:
        """Subscribe with `qos`. The previous subscription keeps delivering until the new one
        has a message (or RETIRE_S passed), so a switch loses nothing a bag or camera sent
        meanwhile; a message both deliver (same header stamp, or same text) passes once."""
        self._retire()
        self._retiring, self._retiring_since = self.subscription, time.monotonic()
        if self._retiring is not None:
            self._retiring.callback = self._on_retiring
        self._generation += 1
        generation = self._generation

        def current(handle):  # only the current subscription's events count
            return lambda info: handle(info) if generation == self._generation else None

        def on_lost(info):
            self.lost += int(info.total_count_change)

        events = SubscriptionEventCallbacks(incompatible_qos=current(self._on_incompatible),
                                            message_lost=current(on_lost),
                                            matched=current(self._on_matched) if self._follow_matches else None)
        self.subscription = self.node.create_subscription(self.msg_type, self.topic, self._on_current, qos,
                                                          event_callbacks=events)
        self.qos = qos
        self.received = self.lost = self._lost_reported = 0  # per subscription: the old one's losses are history
        self._matched_since = None  # monotonic time this subscription first had a publisher

    def _retire(self) -> None:
        if self._retiring is not None:
            self.node.destroy_subscription(self._retiring)
        self._retiring, self._handed_over = None, deque(maxlen=32)

    # -- events (executor thread) ---------------------------------------------------------
    def _on_current(self, msg) -> None:
        if self._retiring is not None and message_key(msg) in self._handed_over:
            return  # the old subscription already delivered it
        self.received += 1
        self._arrived(msg)

    def _on_retiring(self, msg) -> None:
        if self.received == 0:  # until the new subscription takes over
            self._handed_over.append(message_key(msg))
            self._arrived(msg)

    def _arrived(self, msg) -> None:
        self.arrivals, self._last_arrival = self.arrivals + 1, time.monotonic()
        self.callback(msg)

    def _on_matched(self, _info) -> None:
        """A publisher came or went: follow it now (should the graph not list it yet, the
        periodic check will)."""
        self.check()

    def _on_incompatible(self, info) -> None:
        policy = info.last_policy_kind.name.lower().removeprefix("rmw_qos_policy_")  # rclpy 9: RMW_QOS_POLICY_...
        if policy not in self.overrides:  # adapting: re-subscribe to fit, now
            self.check(incompatible=policy)
            return
        self._warn("incompatible", (
            f"{self.topic}: a publisher offers QoS incompatible with this subscription ({policy}: "
            f"override {override_name(self.topic, policy)}={self.overrides[policy].name.lower()}); nothing from it "
            f"arrives. Remove the override (the node then follows the publishers) or change the publisher"))

    # -- the periodic check ---------------------------------------------------------------
    def check(self, incompatible: str = None) -> None:
        """Follow the publishers; warn about losses and stalls. `incompatible`: the policy
        an incompatible-QoS event named (the graph may not list that publisher yet)."""
        now = time.monotonic()
        if self._retiring is not None and (self.received or now - self._retiring_since > RETIRE_S):
            self._retire()
        publishers = self.publishers()
        wanted = self._wanted_qos(publishers)
        if incompatible == "reliability" and "reliability" not in self.overrides:
            wanted.reliability = ReliabilityPolicy.BEST_EFFORT
        if incompatible == "durability" and "durability" not in self.overrides:
            wanted.durability = DurabilityPolicy.VOLATILE
        if (wanted.reliability, wanted.durability) != (self.qos.reliability, self.qos.durability):
            self._log_switches(now, f"{self.topic}: {len(publishers)} publisher(s) offering {self._offers(publishers)}"
                               + (f" (one with incompatible {incompatible})" if incompatible else "")
                               + f": subscribing {describe(wanted)}")
            self._subscribe(wanted)
            return
        matched = self.subscription.get_publisher_count()
        if matched == 0:
            self._matched_since = None
        elif self._matched_since is None:
            self._matched_since = now
        if self.lost > self._lost_reported:
            if self._warn("lost", self._lost_message(publishers)):
                self._lost_reported = self.lost
        elif self._stalled(now):
            self._warn("stall", self._stall_message(publishers, matched, now))

    def _periodic_check(self) -> None:
        self._log_switches(time.monotonic())  # the newest of the switches not logged yet, when due
        self.check()

    def _stalled(self, now: float) -> bool:
        """Publishers matched for over STALL_S, and nothing arrived in that time (a
        stream) or nothing at all (not a stream: a latched text that arrived counts,
        whenever it came)."""
        if self._matched_since is None or now - self._matched_since <= STALL_S:
            return False
        if self._last_arrival is None:
            return True
        return self.stream and now - self._last_arrival > STALL_S

    def _log_switches(self, now: float, line: str = None) -> None:
        line = self._switch_log.changed(line, now) if line else self._switch_log.due(now)
        if line:
            self.node.get_logger().info(line)

    def _offers(self, publishers) -> str:
        return ", ".join(sorted({describe(p.qos_profile) for p in publishers})) or "nothing"

    def _names(self, publishers) -> str:
        return ", ".join(f"{p.node_namespace.rstrip('/')}/{p.node_name} ({describe(p.qos_profile)})"
                         for p in publishers) or "unknown"

    def _fix(self, publishers) -> str:
        best_effort = [p for p in publishers if p.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT]
        if "reliability" in self.overrides and self.qos.reliability == ReliabilityPolicy.BEST_EFFORT and not best_effort:
            return (f"the publishers are reliable but this subscription is best effort (override "
                    f"{override_name(self.topic, 'reliability')}): set it to reliable or remove it")
        if self.msg_type.__name__ not in IMAGE_TYPES:  # camera_info, text: small, so not the segment size
            return ("these messages are small, so this is not the large-message loss: a lossy or congested link or "
                    "an overloaded machine; make the publisher reliable (DDS then repairs losses), or check the "
                    "network between publisher and node")
        profile = os.environ.get(FASTDDS_PROFILE_VAR) or "a Fast DDS XML profile with a larger <segment_size>"
        return ("large best-effort messages are lost on the SENDING side with default DDS settings, which only the "
                f"publisher can change: start it with {FASTDDS_PROFILE_VAR}={profile} (a 32 MB shared-memory "
                f"segment), or make it publish reliable; see {LARGE_IMAGES}")

    def _lost_message(self, publishers) -> str:
        return (f"{self.topic}: at least {self.lost} message(s) lost in transit, {self.received} received "
                f"(publishers: {self._names(publishers)}; subscription: {describe(self.qos)}). Fix: {self._fix(publishers)}")

    def _stall_message(self, publishers, matched: int, now: float) -> str:
        if self._last_arrival is None:
            quiet = f"no message arrived in {now - self._matched_since:.0f} s"
        else:
            quiet = f"no message in the last {now - self._last_arrival:.0f} s ({self.arrivals} before)"
        line = f"{self.topic}: {matched} publisher(s) matched ({self._names(publishers)}) but {quiet} " \
               f"(subscription: {describe(self.qos)})."
        if any(p.qos_profile.reliability == ReliabilityPolicy.BEST_EFFORT for p in publishers) or \
                self.qos.reliability == ReliabilityPolicy.BEST_EFFORT:
            return f"{line} If it is publishing: {self._fix(publishers)}"
        return f"{line} Is it publishing?"

    def _warn(self, kind: str, message: str) -> bool:
        now = time.monotonic()
        if now - self._last_warned.get(kind, -WARN_PERIOD_S) < WARN_PERIOD_S:
            return False
        self._last_warned[kind] = now
        self.node.get_logger().warning(message)
        return True

    def destroy(self) -> None:
        """Unsubscribe (the override parameters stay declared)."""
        self.node.destroy_timer(self._timer)
        self._retire()
        if self.subscription is not None:
            self.node.destroy_subscription(self.subscription)
            self.subscription = None


TRANSPORTS = ("raw", "compressed")


def subscribe_inputs(node) -> list:
    """depth_node's three inputs, each following its publishers: `image` (to
    node.on_image; with node.params['transport'] == 'compressed' the CompressedImage
    topic image_transport names `<image>/compressed`), `camera_info`
    (node.on_camera_info), `text` (node.on_text, depth 1: only the latest matters; not
    a stream: published once and latched is the README's way)."""
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image
    from std_msgs.msg import String

    transport = node.params["transport"]
    if transport not in TRANSPORTS:
        raise UserError(f"transport '{transport}' is not one of {', '.join(TRANSPORTS)}")
    # Remapping `image` moves the compressed topic with it, as image_transport does.
    image = (CompressedImage, node.resolve_topic_name("image") + "/compressed") if transport == "compressed" \
        else (Image, "image")
    return [AdaptiveInput(node, *image, node.on_image),
            AdaptiveInput(node, CameraInfo, "camera_info", node.on_camera_info),
            AdaptiveInput(node, String, "text", node.on_text, default_input_qos(depth=1), stream=False)]
