"""The model config schema: every key a model config may hold, one line each, with its
type and range. A config comes from a YAML file the user wrote or from inside a
checkpoint someone sent, so nothing is trusted: unknown keys (typos) are errors with a
"did you mean", numbers have upper bounds (an n_bins of 1e6 would allocate gigabytes),
and names are checked against what timm and open_clip ship locally (a "hf-hub:" name
would make network requests just to build the model).

To add a key: one line in SCHEMA. Cross-key rules (divisibility, ordering) live in
config.py.
"""
import difflib
import functools
import math

from textdepth_ros.errors import UserError

# Prefixes with which timm / open_clip fetch a config (and more) from a hub or read a
# local folder's JSON, instead of using their built-in tables.
HUB_PREFIXES = ("hf-hub:", "hf_hub:", "local-dir:", "timm/")
OPENAI_CLIP_VOCAB = 49408  # tokens of the CLIP BPE tokenizer (open_clip's SimpleTokenizer)


class Check:
    """One key's rule. `check(value, key)` returns the value to keep or raises UserError."""

    def __init__(self, required: bool = False, default=None, nullable: bool = False):
        self.required, self.default, self.nullable = required, default, nullable

    def check(self, value, key: str):
        if value is None:
            if self.nullable:
                return None
            raise UserError(f"{key} must be {self.describe()}, got null")
        return self.convert(value, key)

    def fail(self, key: str, value):
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
        raise UserError(f"{key} must be {self.describe()}, got {shown}")


class Bool(Check):
    def describe(self):
        return "true or false"

    def convert(self, value, key):
        if not isinstance(value, bool):
            self.fail(key, value)
        return value


class Int(Check):
    def __init__(self, lo: int, hi: int, **kw):
        super().__init__(**kw)
        self.lo, self.hi = lo, hi

    def describe(self):
        return f"an integer in {self.lo}..{self.hi}"

    def convert(self, value, key):
        if isinstance(value, bool) or not isinstance(value, int) or not self.lo <= value <= self.hi:
            self.fail(key, value)
        return value


class Float(Check):
    """lo < value <= hi (lo excluded: ranges here are lengths and rates)."""

    def __init__(self, lo: float, hi: float, lo_included: bool = False, **kw):
        super().__init__(**kw)
        self.lo, self.hi, self.lo_included = lo, hi, lo_included

    def describe(self):
        return f"a number in {'[' if self.lo_included else '('}{self.lo:g}, {self.hi:g}]"

    def convert(self, value, key):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.fail(key, value)
        above_lo = value >= self.lo if self.lo_included else value > self.lo
        if not (above_lo and value <= self.hi):
            self.fail(key, value)
        return float(value)


class Ints(Check):
    """A list of integers in lo..hi with min_len..max_len entries."""

    def __init__(self, lo: int, hi: int, min_len: int, max_len: int, **kw):
        super().__init__(**kw)
        self.item, self.min_len, self.max_len = Int(lo, hi), min_len, max_len

    def describe(self):
        count = f"{self.min_len}" if self.min_len == self.max_len else f"{self.min_len}..{self.max_len}"
        return f"a list of {count} integers in {self.item.lo}..{self.item.hi}"

    def convert(self, value, key):
        if not isinstance(value, (list, tuple)) or not self.min_len <= len(value) <= self.max_len:
            self.fail(key, value)
        for item in value:
            if isinstance(item, bool) or not isinstance(item, int) or not self.item.lo <= item <= self.item.hi:
                self.fail(key, value)
        return list(value)


class Text(Check):
    def __init__(self, max_len: int = 200, **kw):
        super().__init__(**kw)
        self.max_len = max_len

    def describe(self):
        return f"a string of at most {self.max_len} characters"

    def convert(self, value, key):
        if not isinstance(value, str) or len(value) > self.max_len:
            self.fail(key, value)
        return value


class LocalName(Text):
    """A name from a library's built-in table (`names()`): never a hub download."""

    def __init__(self, what: str, names, **kw):
        super().__init__(**kw)
        self.what, self.names = what, names

    def describe(self):
        return f"the name of {self.what}"

    def convert(self, value, key):
        value = super().convert(value, key)
        if value.startswith(HUB_PREFIXES):
            raise UserError(f"{key} '{value}' names a model-hub or folder config: architectures are built from "
                            f"{self.what} only (the weights may come from a file or hub via 'pretrained')")
        known = self.names()
        if value not in known:
            close = difflib.get_close_matches(value, known, n=3)
            hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else f"e.g. {', '.join(sorted(known)[:4])}"
            raise UserError(f"{key} '{value}' is not {self.what} ({hint})")
        return value


class WeightsSource(Text):
    """null (random init), a local file, or a download tag. Inside a checkpoint the
    weights are the checkpoint's own, so config.py drops these there."""

    def describe(self):
        return "null, a weights file path or a download tag (see config/model/paper.yaml)"


class Section(Check):
    """A nested mapping; its keys are the SCHEMA lines below it."""

    def describe(self):
        return "a mapping"

    def convert(self, value, key):
        if not isinstance(value, dict):
            self.fail(key, value)
        return value


# ---------------------------------------------------------------- local name tables
def swin_names():
    """The Swin backbones model/swin.py builds, by timm's names (timm's weights load into them)."""
    from textdepth_ros.model.swin import SWIN_SIZES, swin_name

    return tuple(swin_name(size, window) for size in SWIN_SIZES for window in (7, 12))


def _open_clip_text_cfgs():
    import open_clip

    return {name: open_clip.get_model_config(name).get("text_cfg", {}) for name in open_clip.list_models()}


@functools.lru_cache(maxsize=1)
def open_clip_text_towers():
    """open_clip configs whose text tower is built locally (not a Hugging Face model)."""
    return tuple(n for n, text in _open_clip_text_cfgs().items() if "hf_model_name" not in text)


@functools.lru_cache(maxsize=1)
def open_clip_local_tokenizers():
    """Tokenizer names open_clip resolves without a download: the CLIP BPE tokenizer that
    ships in the package (configs naming a Hugging Face tokenizer, and SigLIP's, download)."""
    return tuple(n for n, text in _open_clip_text_cfgs().items()
                 if "hf_tokenizer_name" not in text and "siglip" not in n.lower())


# ---------------------------------------------------------------------- the schema
# Upper bounds are several times the paper config's values; network.py also caps the
# total parameter count. backbone.img_size is read by nothing since the backbone computes
# Swin as PixelFormer does (no window shrinking for small inputs); it is still accepted so
# that checkpoints written before that load.
SCHEMA = {
    "name":                              Text(max_len=100, nullable=True),
    "trca":                              Bool(default=True),
    "tbcp":                              Bool(default=True),
    "text_range":                        Bool(default=True),
    "backbone":                          Section(required=True),
    "backbone.timm_name":                LocalName("a Swin model (timm's names)", swin_names, required=True),
    "backbone.pretrained":               WeightsSource(max_len=4096, nullable=True),
    "backbone.drop_path_rate":           Float(0.0, 0.9, lo_included=True, default=0.0),
    "backbone.img_size":                 Ints(224, 2048, 2, 2),  # ignored, see above
    "text_encoder":                      Section(nullable=True),
    "text_encoder.clip_model":           LocalName("an open_clip model config", open_clip_text_towers, nullable=True),
    "text_encoder.text_cfg":             Section(nullable=True),
    "text_encoder.text_cfg.context_length": Int(2, 512),
    "text_encoder.text_cfg.vocab_size":  Int(OPENAI_CLIP_VOCAB, 262144),
    "text_encoder.text_cfg.width":       Int(8, 4096),
    "text_encoder.text_cfg.heads":       Int(1, 64),
    "text_encoder.text_cfg.layers":      Int(1, 64),
    "text_encoder.embed_dim":            Int(8, 4096),
    # The image tower of the same CLIP (model/image_encoder.py), built only for scene
    # recognition; with clip_model its entries override that config's vision_cfg.
    "text_encoder.vision_cfg":           Section(nullable=True),
    "text_encoder.vision_cfg.image_size": Int(16, 1024),
    "text_encoder.vision_cfg.patch_size": Int(1, 128),
    "text_encoder.vision_cfg.width":     Int(8, 4096),
    "text_encoder.vision_cfg.layers":    Int(1, 64),
    "text_encoder.vision_cfg.head_width": Int(8, 1024),
    "text_encoder.quick_gelu":           Bool(default=False),
    "text_encoder.pretrained":           WeightsSource(max_len=4096, nullable=True),
    "text_encoder.tokenizer":            LocalName("an open_clip tokenizer", open_clip_local_tokenizers, default="ViT-L-14"),
    "text_encoder.cache_size":           Int(1, 65536, default=1024),
    "decoder":                           Section(required=True),
    "decoder.pqi_channels":              Int(8, 4096, required=True),
    "decoder.pool_scales":               Ints(1, 64, 1, 8, required=True),
    "decoder.sam_dims":                  Ints(4, 4096, 4, 4, required=True),
    "decoder.sam_heads":                 Ints(1, 128, 4, 4, required=True),
    "decoder.window_size":               Int(1, 32, required=True),
    "bins":                              Section(required=True),
    "bins.n_bins":                       Int(2, 4096, required=True),
    "bins.mlp_hidden":                   Int(8, 16384, required=True),
    "bins.dataset_min":                  Float(0.0, 1000.0, required=True),
    "bins.dataset_max":                  Float(0.0, 1000.0, required=True),
    "bins.fixed_min":                    Float(0.0, 1000.0, required=True),
}


def apply_schema(cfg: dict, schema: dict = None) -> dict:
    """Check every key of `cfg` against the schema and fill defaults, in place. Raises a
    UserError naming the first bad key (dotted), with a "did you mean" for unknown keys."""
    schema = SCHEMA if schema is None else schema
    if not isinstance(cfg, dict):
        raise UserError(f"a model config is a mapping, got {type(cfg).__name__}")
    _check_level(cfg, "", schema)
    return cfg


def _check_level(mapping: dict, prefix: str, schema: dict) -> None:
    level = {key[len(prefix):]: rule for key, rule in schema.items()
             if key.startswith(prefix) and "." not in key[len(prefix):]}
    for key in mapping:
        if key not in level:
            where = f"section '{prefix[:-1]}'" if prefix else "the top level"
            close = difflib.get_close_matches(str(key), list(level), n=1)
            hint = f"did you mean '{prefix}{close[0]}'?" if close else f"known: {', '.join(level)}"
            raise UserError(f"unknown key '{prefix}{key}' in {where} ({hint})")
    for key, rule in level.items():
        dotted = prefix + key
        if key not in mapping:
            if rule.required:
                raise UserError(f"{dotted} is missing ({rule.describe()})")
            if rule.default is not None:
                mapping[key] = rule.default
            continue
        mapping[key] = rule.check(mapping[key], dotted)
        if isinstance(rule, Section) and mapping[key] is not None:
            _check_level(mapping[key], dotted + ".", schema)
