"""The scene types a model was trained with, and the template that turned them into its
training text, recorded in its checkpoint by `train`:

    extra metadata "scene_text": {"text_template": "a photo of a {scene}",
                                  "scene_labels": ["bathroom", "bedroom", ...]}

Scene recognition (the node's `text_source: auto`) chooses among these labels and
writes the chosen one through the template, so the depth network gets the kind of text
it was trained with. A checkpoint without the record (older ones, PixelFormer imports,
no checkpoint at all): NYU's scene types through the default template. The record comes
from a file someone sent, so it is checked like the model config before it is used.
"""
import unicodedata

from textdepth_ros.errors import UserError

RECORD_KEY = "scene_text"
DEFAULT_TEMPLATE = "a photo of a {scene}"  # train's data.text_template default
# NYU Depth v2's scene folders (PixelFormer's 36,253-image train list and the Eigen test
# list) as `train` turns them into scene names (data/scene_text.py: "living_room_0012" ->
# "living room"), NYU's own spellings included ("excercise_room", "nyu_office_1"): these
# are the words an NYU-trained model saw.
NYU_SCENE_TYPES = (
    "basement", "bathroom", "bedroom", "bookstore", "cafe", "classroom", "computer lab", "conference room",
    "dinette", "dining room", "excercise room", "foyer", "furniture store", "home office", "home storage",
    "indoor balcony", "kitchen", "laundry room", "living room", "nyu office", "office", "office kitchen",
    "playroom", "printer room", "reception room", "student lounge", "study", "study room",
)
MAX_LABELS = 1000
MAX_LABEL_CHARS = 100
MAX_TEMPLATE_CHARS = 200


def scene_text_record(template: str, labels) -> dict:
    """The checkpoint record of a training run: its template and sorted distinct labels."""
    return check_record({"text_template": template, "scene_labels": sorted(set(labels))}, "scene text record")


def check_template(template, where: str) -> str:
    if not isinstance(template, str) or not template.strip() or len(template) > MAX_TEMPLATE_CHARS:
        raise UserError(f"{where}: text_template must be a string of 1..{MAX_TEMPLATE_CHARS} characters")
    try:
        filled = template.format(scene="x")
    except (KeyError, IndexError, ValueError):
        filled = None
    if filled is None or "{scene}" not in template:
        raise UserError(f"{where}: text_template {template[:60]!r} must contain '{{scene}}' and no other "
                        "{...} field")
    return template


def check_labels(labels, where: str) -> list:
    """1..MAX_LABELS distinct, non-empty, printable labels of at most MAX_LABEL_CHARS."""
    if not isinstance(labels, (list, tuple)) or not 1 <= len(labels) <= MAX_LABELS:
        raise UserError(f"{where}: scene_labels must be a list of 1..{MAX_LABELS} labels")
    for label in labels:
        if not isinstance(label, str) or not label.strip() or len(label) > MAX_LABEL_CHARS or \
                any(unicodedata.category(ch)[0] == "C" for ch in label):
            shown = repr(label)[:60]
            raise UserError(f"{where}: scene label {shown} is not a printable string of 1..{MAX_LABEL_CHARS} "
                            "characters")
    if len(set(labels)) != len(labels):
        raise UserError(f"{where}: scene_labels holds duplicates")
    return list(labels)


def check_record(record, where: str):
    """A checkpoint's scene text record, checked; None stays None (no record)."""
    if record is None:
        return None
    if not isinstance(record, dict) or set(record) != {"text_template", "scene_labels"}:
        raise UserError(f"{where}: '{RECORD_KEY}' must be a mapping of exactly text_template and scene_labels")
    return {"text_template": check_template(record["text_template"], where),
            "scene_labels": check_labels(record["scene_labels"], where)}


def record_of(extra: dict, where: str):
    """The checked record in a checkpoint's extra metadata, or None."""
    return check_record(extra.get(RECORD_KEY) if isinstance(extra, dict) else None, where)


def parse_labels(text: str) -> list:
    """A comma-separated label list (a node parameter) -> labels, blanks dropped."""
    return [label.strip() for label in text.split(",") if label.strip()]


def label_texts(template: str, labels) -> list:
    """Each label written through the template, as training wrote scene types."""
    return [template.format(scene=label) for label in labels]
