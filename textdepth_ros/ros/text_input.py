"""Scene descriptions from a topic, made safe for the text encoder.

Whatever arrives (empty, whitespace, control characters, invalid UTF-8, a megabyte
of text), the node gets either a clean string of at most the encoder's 77 tokens or
None meaning "keep the previous text", plus a note to log.
"""
import unicodedata

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from textdepth_ros.ros.change_log import ChangeLog, since_last_line

CONTEXT_LENGTH = 77  # CLIP's context, start and end tokens included
MAX_CHARS = 2048  # 77 tokens never need more; cut first so tokenizing a huge string is cheap


def text_qos() -> QoSProfile:
    """Reliable + transient local: a node started late still gets the last description
    (the `text` input, and the auto text the node publishes)."""
    return QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)


def usable_text(value: str):
    """None if `value` holds a usable description, else why not (a parameter check)."""
    return None if clean_text(value)[0] else "no usable text (empty, whitespace or control characters)"


def decode(raw) -> tuple:
    """str or bytes -> (str, note). Invalid UTF-8 bytes become U+FFFD."""
    if isinstance(raw, (bytes, bytearray)):
        text = bytes(raw).decode("utf-8", errors="replace")
    else:
        text = str(raw)
    return text, ("text had invalid UTF-8 bytes (replaced)" if "\ufffd" in text else None)


def clean_text(raw, tokenizer=None, context_length: int = CONTEXT_LENGTH):
    """-> (text or None, [notes]). None: nothing usable, keep the previous description."""
    text, note = decode(raw)
    notes = [note] if note else []
    if len(text) > MAX_CHARS:
        text = text[:MAX_CHARS]
        notes.append(f"text longer than {MAX_CHARS} characters (cut)")
    # Control characters (NUL, escapes) carry no meaning for CLIP; whitespace runs collapse.
    text = "".join(" " if unicodedata.category(ch)[0] == "C" else ch for ch in text.replace("\ufffd", " "))
    text = " ".join(text.split())
    if not text:
        return None, notes + ["empty or whitespace-only text (keeping the previous description)"]
    if tokenizer is not None:
        tokens = tokenizer.encode(text)
        if len(tokens) + 2 > context_length:
            text = tokenizer.decode(tokens[: context_length - 2]).strip()
            notes.append(f"text longer than {context_length} tokens (truncated)")
    return text, notes


class TextChangeLog(ChangeLog):
    """Scene text changes, one line per `period` at most (see ChangeLog)."""

    def __init__(self, period: float):
        super().__init__(period, lambda text, changes: f"scene text: '{text[:120]}'" + since_last_line(changes))
