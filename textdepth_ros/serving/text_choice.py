"""Which scene text the depth network reads when the camera chooses it (the node's
`text_source`). Pure decision logic, with the clock passed in, so tests drive it.

SceneChooser: per decision, the zero-shot score of every label (CLIP probabilities)
-> the label in use. Hysteresis against flapping: another label replaces the one in
use only once it has led it by at least `margin` in `confirmations` consecutive
decisions (a decision where it does not, or where another label leads, starts the
count again). The first decision takes the best label at once: before it the node
reads `default_text`, which no recognition has confirmed either.

TextArbiter: `topic_first`: a text someone publishes on `text` wins for `hold_s`
after its last message, then the recognised scene's text again. `auto`: published
texts are ignored. (`topic`, today's behaviour, needs neither.)
"""
from dataclasses import dataclass
from typing import Optional

TEXT_SOURCES = ("topic", "auto", "topic_first")


@dataclass
class Decision:
    label: str  # the label in use after this decision
    score: float  # its score in this decision
    best: str  # this decision's highest-scoring label
    best_score: float
    switched: bool  # the label in use changed in this decision
    streak: int  # consecutive decisions the best label has led the one in use by the margin


class SceneChooser:
    def __init__(self, labels, margin: float, confirmations: int):
        if not labels:
            raise ValueError("no labels to choose from")
        self.labels = list(labels)
        self.margin, self.confirmations = margin, confirmations
        self.current: Optional[int] = None
        self._challenger: Optional[int] = None
        self._streak = 0

    def decide(self, scores) -> Decision:
        scores = [float(s) for s in scores]
        if len(scores) != len(self.labels):
            raise ValueError(f"{len(scores)} scores for {len(self.labels)} labels")
        best = max(range(len(scores)), key=scores.__getitem__)  # the first of equal scores, as argmax
        switched = False
        if self.current is None:
            self.current, switched = best, True
        elif best == self.current or scores[best] - scores[self.current] < self.margin:
            self._challenger, self._streak = None, 0
        else:
            self._streak = self._streak + 1 if best == self._challenger else 1
            self._challenger = best
            if self._streak >= self.confirmations:
                self.current, switched = best, True
        streak = self._streak
        if switched:
            self._challenger, self._streak = None, 0
        return Decision(self.labels[self.current], scores[self.current], self.labels[best], scores[best], switched,
                        streak)


class TextArbiter:
    """The text to use now, from the recognised scene's text and what people publish."""

    def __init__(self, mode: str, hold_s: float):
        if mode not in ("auto", "topic_first"):
            raise ValueError(f"text source {mode!r} needs no arbiter")
        self.mode, self.hold_s = mode, hold_s
        self.scene_text: Optional[str] = None
        self.human_text: Optional[str] = None
        self._human_at = float("-inf")

    def human(self, text: str, now: float) -> bool:
        """A published text; False if this mode ignores it."""
        if self.mode == "auto":
            return False
        self.human_text, self._human_at = text, now
        return True

    def held_until(self) -> float:
        """When the last human text stops holding (-inf: none holds)."""
        return self._human_at + self.hold_s if self.human_text is not None else float("-inf")

    def current(self, now: float):
        """(text, source): source 'human', 'auto', or (None, None) before either exists."""
        if self.human_text is not None and now < self.held_until():
            return self.human_text, "human"
        if self.scene_text is not None:
            return self.scene_text, "auto"
        return None, None
