"""Zero-shot scene recognition with CLIP: frame in -> a probability per scene label.

The labels (the checkpoint's recorded scene types, else NYU's, or the user's) are
written through the checkpoint's text template ("a photo of a {scene}") and encoded
once by the depth model's own text tower: the texts CLIP compares the image with are
exactly the texts the depth network then reads (already in its text cache). The image
goes through the image tower of the same CLIP (model/image_encoder.py); probabilities
are CLIP's: softmax over labels of logit_scale x cosine similarity.

Used by the node's `text_source: auto` (ros/auto_text.py) from a thread of its own,
and by bench/auto_text_bench.py.
"""
import logging
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from textdepth_ros.errors import UserError
from textdepth_ros.model.checkpoint import read_checkpoint_config
from textdepth_ros.model.image_encoder import ClipImageEncoder
from textdepth_ros.model.scene_labels import (
    DEFAULT_TEMPLATE,
    NYU_SCENE_TYPES,
    check_labels,
    check_template,
    label_texts,
    record_of,
)

log = logging.getLogger("textdepth_ros.serving.scene_recognition")


@dataclass
class Scores:
    similarities: np.ndarray  # cosine similarity image-text per label
    probabilities: np.ndarray  # softmax(logit_scale * similarities)
    ms: float  # wall time of this recognition (prepare + tower + compare)


def scene_vocabulary(checkpoint=None, labels=None, template=None):
    """(template, labels, where from): the given ones first, else the checkpoint's record,
    else NYU's scene types through the checkpoint's training template (older checkpoints
    of ours name it in their train config) or the default one."""
    record, trained_template = None, None
    if checkpoint:
        _, extra = read_checkpoint_config(checkpoint)
        record = record_of(extra, f"checkpoint {checkpoint}")
        try:
            trained_template = check_template(extra["train_config"]["data"]["text_template"], "")
        except (KeyError, TypeError, UserError):
            trained_template = None
    if labels:
        source = "the auto_text_labels parameter"
    elif record:
        labels, source = record["scene_labels"], "the checkpoint's recorded scene types"
    else:
        labels, source = list(NYU_SCENE_TYPES), "NYU Depth v2's scene types (the checkpoint records none)"
    template = template or (record or {}).get("text_template") or trained_template or DEFAULT_TEMPLATE
    return check_template(template, "text template"), check_labels(labels, "scene labels"), source


class SceneRecognizer:
    """CLIP zero-shot over a fixed label list. One thread at a time."""

    def __init__(self, image_encoder: ClipImageEncoder, text_embeddings: torch.Tensor, labels, texts,
                 device=torch.device("cpu"), amp_dtype=None):
        self.encoder = image_encoder.to(device)
        self.device, self.amp_dtype = device, amp_dtype
        self.labels, self.texts = list(labels), list(texts)
        self.text_embeddings = text_embeddings.to(device=device, dtype=torch.float32)
        # CUDA: a stream of its own, so recognition never queues behind or in front of a
        # depth frame's kernels on the worker's stream.
        self.stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        self.calls = 0

    @classmethod
    def for_model(cls, model, labels, template: str, weights: str = None, device="cpu", amp_dtype=None):
        """A recognizer beside a depth network `model` (its text tower and config):
        `weights` is a CLIP file or tag for the image tower; None: random init. Returns
        (recognizer, report); report['untrained'] says whether the image tower is random."""
        te_cfg = model.config.get("text_encoder") if model.text_encoder is not None else None
        if te_cfg is None:
            raise UserError(f"scene recognition needs a model that reads text; the '{model.variant}' variant "
                            "has no text encoder")
        encoder = ClipImageEncoder(te_cfg)
        report = {"untrained": weights is None}
        if weights:
            report.update(encoder.load_pretrained(weights, te_cfg.get("clip_model"), model.text_encoder.tower))
        texts = label_texts(template, labels)
        embeddings = model.text_encoder(texts)  # cached for the depth network too
        device = torch.device(device)
        return cls(encoder, embeddings, labels, texts, device, amp_dtype), report

    @torch.inference_mode()
    def scores(self, rgb: np.ndarray) -> Scores:
        """Probabilities and similarities of every label for one HxWx3 uint8 RGB frame."""
        start = time.perf_counter()
        image = self.encoder.prepare(rgb)[None]
        with torch.cuda.stream(self.stream) if self.stream is not None else nullcontext():
            image = image.to(self.device, non_blocking=self.stream is not None)
            with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                                enabled=self.amp_dtype is not None):
                embedding = self.encoder(image)
            similarities = (embedding @ self.text_embeddings.T)[0]
            probabilities = torch.softmax(self.encoder.logit_scale * similarities, dim=0)
            out = torch.stack([similarities, probabilities]).cpu()
        self.calls += 1
        return Scores(out[0].numpy(), out[1].numpy(), (time.perf_counter() - start) * 1000.0)


def run_in_background(niceness: int = 10) -> dict:
    """Make the calling thread a background one for CPU recognition: a lower CPU priority
    (Linux; the OpenMP workers it starts later inherit it), and torch ops on ONE CPU
    thread, so on a small CPU recognition never competes with the depth worker's
    threads for every core (latency does not matter here; measured: with two threads on
    a loaded 2-core machine, OpenMP's spin-waiting made a tiny-config decision cost
    ~25x the CPU time of one thread). Call it before other threads run their first
    torch op (see use_one_cpu_thread). Returns what it did."""
    return {"niced": lower_thread_priority(niceness), "torch_threads": use_one_cpu_thread()}


def lower_thread_priority(niceness: int) -> bool:
    """This thread `niceness` steps lower; False where the OS does not allow it."""
    try:
        import threading

        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, 0) + niceness)
        return True
    except (OSError, AttributeError):
        return False


def use_one_cpu_thread() -> int:
    """This thread's torch CPU ops on one thread; other threads keep their count.
    torch.set_num_threads is per thread (OpenMP, MKL) but also stores a process-wide
    default that a thread copies at its first torch op: that default is put back at
    once, from a helper thread. Returns this thread's count now."""
    import threading

    threads = torch.get_num_threads()  # this thread's first torch call: its own count is set up now
    torch.set_num_threads(1)
    helper = threading.Thread(target=torch.set_num_threads, args=(threads,), name="restore_torch_threads")
    helper.start()
    helper.join()
    return torch.get_num_threads()
