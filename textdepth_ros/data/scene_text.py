"""Per-image scene text: from the scene folder name through a prompt template, or from
a captions folder holding one .txt per image (same relative path, .txt suffix), or one
fixed description for every image (KITTI's lists name no scene type).

"living_room_0012" -> "living room"; "kitchen_0028b" -> "kitchen"; the Eigen test
list's folders ("bathroom") are already scene types.
"""
import re
from pathlib import Path

from textdepth_ros.errors import UserError

_SUFFIX = re.compile(r"_\d+[a-z]?$")  # NYU raw scene ids: _0012, _0028b


def scene_name(folder: str) -> str:
    name = _SUFFIX.sub("", folder.strip("/"))
    return name.replace("_", " ").strip() or "room"


class SceneText:
    def __init__(self, template: str = "a photo of a {scene}", captions_dir=None, text: str = None):
        if text is not None and not str(text).split():
            raise UserError("the fixed scene text is empty")
        self.text = " ".join(str(text).split()) if text is not None else None
        if "{scene}" not in template:
            raise UserError(f"text template {template!r} must contain '{{scene}}'")
        self.template = template
        self.captions_dir = Path(captions_dir) if captions_dir else None
        if self.captions_dir is not None and not self.captions_dir.is_dir():
            raise UserError(f"captions folder not found: {self.captions_dir}")

    def text_for(self, sample) -> str:
        if self.captions_dir is not None:
            path = (self.captions_dir / sample.rgb).with_suffix(".txt")
            if path.is_file():
                text = " ".join(path.read_text().split())
                if text:
                    return text
            # No caption for this image: fall back to the scene name rather than fail
            # a 20-epoch run on one missing file; the logged texts show it.
        if self.text is not None:
            return self.text
        return self.template.format(scene=scene_name(sample.scene))
