"""depth_node's `text_source`: scene text from the camera when no one writes it.

`topic` (default): the `text` topic as always; nothing here is loaded.
`auto`: every `auto_text_period` seconds CLIP's image tower recognises the scene on the
newest frame the depth worker decoded (scene_recognition.py) among the scene labels,
SceneChooser (text_choice.py) keeps or changes the label in use with hysteresis, and
the label written through the training template becomes the text the depth network
reads. Texts published on `text` are ignored.
`topic_first`: as auto, but a text published on `text` wins for `auto_text_hold`
seconds after its last message.

Recognition runs in a thread of its own at a lower CPU priority with one torch CPU
thread (on CUDA, on a stream of its own), never on the depth worker's path; it only reads the frame reference the
worker hands over. Each decision publishes the label in use as text on `text/auto`
and its probability on `text/auto/score`, and /diagnostics carries both.
"""
import threading
import time

from std_msgs.msg import Float32, String

from textdepth_ros.model.scene_labels import parse_labels
from textdepth_ros.ros.parameters import Spec
from textdepth_ros.ros.text_input import text_qos
from textdepth_ros.serving.text_choice import TEXT_SOURCES, SceneChooser, TextArbiter

AUTO_TEXT_TOPIC = "text/auto"
AUTO_SCORE_TOPIC = "text/auto/score"
THROTTLE_S = 5.0
MAX_WAIT_S = 0.25  # the thread looks at the clock at least this often (hold expiry, stop)

PARAMETERS = {
    "text_source": Spec("topic", "topic (the `text` topic), auto (CLIP zero-shot scene recognition on the newest "
                        "frame; `text` ignored) or topic_first (auto, but a published text wins for auto_text_hold "
                        "seconds)", check=lambda v: None if v in TEXT_SOURCES else " or ".join(TEXT_SOURCES)),
    "auto_text_period": Spec(3.0, "auto: seconds between scene decisions", dynamic=True, low=0.05, high=3600.0),
    "auto_text_margin": Spec(0.1, "auto: probability by which another scene must lead the one in use to replace it",
                             dynamic=True, low=0.0, high=1.0),
    "auto_text_confirmations": Spec(2, "auto: consecutive decisions that lead must hold before the text switches",
                                    dynamic=True, low=1, high=1000),
    "auto_text_hold": Spec(30.0, "topic_first: seconds a published text wins after its last message", dynamic=True,
                           low=0.0, high=86400.0),
    "auto_text_labels": Spec("", "auto: scene labels, comma-separated (empty: the checkpoint's trained scene types, "
                             "else NYU's)"),
    "auto_text_clip_weights": Spec("", "auto: CLIP file (or open_clip tag) of the image tower, the one the text tower "
                                   "came from (empty: the model config's text_encoder.pretrained; none: random, "
                                   "warned)"),
}


class AutoText:
    """The recognition thread of one node, its publishers and its diagnostics."""

    def __init__(self, node, recognizer, report: dict, vocabulary_source: str):
        self.node, self.recognizer, self.report = node, recognizer, report
        p = node.params
        self.mode = p["text_source"]
        self.chooser = SceneChooser(recognizer.labels, p["auto_text_margin"], p["auto_text_confirmations"])
        self.arbiter = TextArbiter(self.mode, p["auto_text_hold"])
        self.vocabulary_source = vocabulary_source
        self.pub_text = node.create_publisher(String, AUTO_TEXT_TOPIC, text_qos())
        self.pub_score = node.create_publisher(Float32, AUTO_SCORE_TOPIC, text_qos())
        self._frame = None  # (rgb, sequence number) from the depth worker
        self._frame_seq = 0
        self._decided_seq = 0
        self._lock = threading.Lock()  # the arbiter and the node's text change together
        self._stop = threading.Event()
        self._thread = None
        self._gate = threading.Lock()  # publishing happens inside it, and only while open
        self._open = False
        self.decision = None
        self.decisions = self.switches = self.failures = self.ignored_texts = 0
        self.last_ms = 0.0
        self._total_ms = 0.0
        self._last_warned = {}

    # -- set-up (the node's load_model / serve / stop) ------------------------------------
    @classmethod
    def load(cls, node):
        """An AutoText for `node` (after its model loaded), or None for text_source topic
        or a model that reads no text. UserError on a bad label list or CLIP file."""
        from textdepth_ros.serving.scene_recognition import SceneRecognizer, scene_vocabulary  # torch loads only here

        p, log = node.params, node.get_logger()
        if p["text_source"] == "topic":
            return None
        model = node.estimator.model
        if model.text_encoder is None:
            log.warning(f"text_source {p['text_source']}: the '{model.variant}' variant reads no text; "
                        "no scene recognition")
            return None
        template, labels, source = scene_vocabulary(p["checkpoint"] or None, parse_labels(p["auto_text_labels"]))
        weights = p["auto_text_clip_weights"] or model.config["text_encoder"].get("pretrained") or None
        device = next(model.text_encoder.parameters()).device
        amp = getattr(node.estimator, "amp_dtype", None) if device.type == "cuda" else None
        recognizer, report = SceneRecognizer.for_model(model, labels, template, weights, device, amp)
        auto = cls(node, recognizer, report, source)
        log.info(f"text_source {auto.mode}: {len(labels)} scene labels from {source}, as '{template}', every "
                 f"{p['auto_text_period']:g} s on {device}")
        if report["untrained"]:
            log.warning("UNTRAINED CLIP image tower (random weights): the recognised scene is not meaningful; set "
                        "auto_text_clip_weights to the CLIP file the text tower came from")
        elif report.get("text_tower_matches") is False:
            log.warning(f"the CLIP file {report['file']} holds another text tower than the model's: its image "
                        "embeddings do not compare with the model's text embeddings (give the CLIP file the "
                        "model's text tower came from)")
        return auto

    def start(self) -> None:
        """Start the thread; returns once it has set itself up (start it before the depth
        worker: see scene_recognition.run_in_background)."""
        self._stop.clear()
        with self._gate:
            self._open = True
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="auto_text", daemon=True)
        self._thread.start()
        ready.wait(10.0)

    def stop(self, grace_s: float = 3.0) -> None:
        """No more decisions; a recognition still running after `grace_s` publishes nothing."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(grace_s)
        with self._gate:
            self._open = False

    def release(self) -> None:
        """Stop and remove the publishers (the managed node's cleanup)."""
        self.stop()
        self.node.destroy_publisher(self.pub_text)
        self.node.destroy_publisher(self.pub_score)

    # -- from the node's other threads ----------------------------------------------------
    def offer_frame(self, rgb) -> None:
        """Depth worker: the frame it just decoded (a reference, nothing copied)."""
        self._frame_seq += 1
        self._frame = (rgb, self._frame_seq)

    def human(self, text: str) -> None:
        """Executor: a text published on `text` (or set as default_text): in use at once
        (topic_first), or ignored (auto)."""
        with self._lock:
            if self.arbiter.human(text, time.monotonic()):
                self._apply(time.monotonic())
                return
        self.ignored_texts += 1
        self._warn_limited("ignored", f"text_source auto: ignoring the text '{text[:60]}' (published on `text` or "
                           "set as default_text; text_source topic_first lets it win for a while)")
        return False

    # -- the thread -----------------------------------------------------------------------
    def _run(self, ready: threading.Event) -> None:
        from textdepth_ros.serving.scene_recognition import run_in_background

        run_in_background()  # lower priority, one torch CPU thread
        ready.set()
        next_at = 0.0
        while not self._stop.is_set():
            self._follow_parameters()
            now = time.monotonic()
            frame = self._frame
            if frame is not None and frame[1] != self._decided_seq and now >= next_at:
                next_at = now + self.node.params["auto_text_period"]
                self._decided_seq = frame[1]
                self._decide(frame[0])
            with self._lock:
                self._apply(time.monotonic())
            held = self.arbiter.held_until() - time.monotonic()
            wait = min(MAX_WAIT_S, max(next_at - time.monotonic(), 0.01), held if held > 0 else MAX_WAIT_S)
            self._stop.wait(max(wait, 0.005))

    def _follow_parameters(self) -> None:
        p = self.node.params.values  # one consistent set (replaced, never changed in place)
        with self._lock:
            self.chooser.margin, self.chooser.confirmations = p["auto_text_margin"], p["auto_text_confirmations"]
            self.arbiter.hold_s = p["auto_text_hold"]

    def _decide(self, rgb) -> None:
        try:
            scores = self.recognizer.scores(rgb)
        except Exception as exc:  # noqa: BLE001 - a failed recognition keeps the text in use
            self.failures += 1
            self._warn_limited("failed", f"scene recognition failed: {type(exc).__name__}: {exc}")
            return
        decision = self.chooser.decide(scores.probabilities)
        self.decision, self.decisions, self.last_ms = decision, self.decisions + 1, scores.ms
        self._total_ms += scores.ms
        with self._lock:
            self.arbiter.scene_text = self.recognizer.texts[self.recognizer.labels.index(decision.label)]
        if decision.switched:
            self.switches += 1
            self.node.get_logger().info(f"scene: {decision.label} (p {decision.score:.2f}) -> "
                                        f"'{self.arbiter.scene_text}'")
        with self._gate:
            if self._open:
                self.pub_text.publish(String(data=self.arbiter.scene_text))
                self.pub_score.publish(Float32(data=float(decision.score)))

    def _apply(self, now: float) -> None:
        """The node's text := the arbiter's (with self._lock held)."""
        text, _source = self.arbiter.current(now)
        if text is not None and text != self.node.current_text:
            self.node.set_text(text)

    def _warn_limited(self, kind: str, message: str) -> None:
        now = time.monotonic()
        if now - self._last_warned.get(kind, -THROTTLE_S) >= THROTTLE_S:
            self._last_warned[kind] = now
            self.node.get_logger().warning(message)

    # -- /diagnostics ---------------------------------------------------------------------
    def diagnostic_values(self) -> dict:
        d, now = self.decision, time.monotonic()
        _, source = self.arbiter.current(now)
        return {
            "text_origin": source or "default_text",
            "auto_text_label": d.label if d else "",
            "auto_text_score": f"{d.score:.3f}" if d else "",
            "auto_text_best": f"{d.best} ({d.best_score:.3f})" if d else "",
            "auto_text_decisions": self.decisions,
            "auto_text_switches": self.switches,
            "auto_text_failures": self.failures,
            "auto_text_ms_last": f"{self.last_ms:.1f}",
            "auto_text_ms_mean": f"{self._total_ms / self.decisions:.1f}" if self.decisions else "0.0",
            "auto_text_labels": f"{len(self.recognizer.labels)} ({self.vocabulary_source})",
            "auto_text_image_tower_untrained": str(bool(self.report["untrained"])).lower(),
            "text_hold_s_left": f"{max(self.arbiter.held_until() - now, 0.0):.1f}",
            "texts_ignored": self.ignored_texts,
        }
