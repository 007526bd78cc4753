"""CUDA graphs for the inference forward: captured once per input size, replayed per frame.

Why: the paper model's eager forward launches ~1,700 small kernels; on an H200 the GPU
is busy ~9 ms of a 22-30 ms forward, the rest is Python and launch overhead, and that
Python holds the GIL the ROS executor thread needs. A CUDA graph replays the same
kernels with one launch call (measured before this module existed: 9.2 ms fp16, outputs
equal to eager).

One `StaticProgram` per (height, width): a static uint8 image buffer on the GPU, the
program captured reading it and the shared static text-embedding buffer, and the flat
float32 output it writes. A frame copies its bytes into the image buffer and replays; a
new text is copied into the text buffer (no re-capture). At most `max_sizes` sizes stay
captured (least recently used goes first), so a stream of odd sizes cannot exhaust GPU
memory. When a capture fails the cache turns itself off with one log line and the
caller runs the same program eagerly.

Not thread-safe: one thread (the node's worker) drives an estimator.
"""
import contextlib
import logging
from collections import OrderedDict
from typing import Callable, Optional

import torch

log = logging.getLogger("textdepth_ros.serving.cuda_graphs")

WARMUP_CALLS = 2  # eager runs before capture: cuBLAS/cuDNN handles, autotune, torch.compile


def capture_cuda_graph(program: Callable[[], torch.Tensor]) -> Callable[[], torch.Tensor]:
    """Capture `program()` (which reads only static buffers) into a CUDA graph and
    return `replay()`, which reruns its kernels and returns the same output tensor."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up off the default stream, as the CUDA graph docs ask
        for _ in range(WARMUP_CALLS):
            program()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    # thread_local: only this thread's unsafe calls break the capture; the node's other
    # threads (executor, publisher) may touch CUDA meanwhile.
    with torch.cuda.graph(graph, capture_error_mode="thread_local"):
        output = program()

    def replay() -> torch.Tensor:
        graph.replay()
        return output

    replay.graph = graph  # keeps the graph (and its memory pool) alive with the closure
    return replay


class StaticProgram:
    """The buffers and the replay of one captured input size."""

    def __init__(self, image: torch.Tensor, staging: Optional[torch.Tensor], replay: Callable[[], torch.Tensor]):
        self.image = image  # [H, W, 3] uint8 on the device, read by the captured program
        self.staging = staging  # pinned host copy of the same shape (None off CUDA)
        self.replay = replay


class GraphCache:
    """Captured programs by input size (LRU), sharing one static text buffer.

    `program_fn(image_u8, text_embedding)` is the whole per-frame computation on the
    device (preprocessing, network, output packing); it must read its inputs only from
    the tensors it is given, since those are the static buffers a replay reads again.
    `capture` turns a no-argument program into a replay function (`capture_cuda_graph`
    on a GPU)."""

    def __init__(self, program_fn, device: torch.device, max_sizes: int = 4,
                 capture: Callable = capture_cuda_graph):
        if max_sizes < 1:
            raise ValueError(f"max_sizes must be >= 1, got {max_sizes}")
        self.program_fn = program_fn
        self.device = device
        self.max_sizes = int(max_sizes)
        self.capture = capture
        self.programs: "OrderedDict[tuple, StaticProgram]" = OrderedDict()
        self.text_buffer: Optional[torch.Tensor] = None
        self.text_key = None  # what the text buffer holds now
        self.captures = 0  # successful captures (a re-capture after eviction counts again)
        self.evictions = 0
        self.disabled_reason: Optional[str] = None

    @property
    def enabled(self) -> bool:
        return self.disabled_reason is None

    def set_text(self, key, embedding_fn: Callable[[], torch.Tensor]) -> None:
        """Make the text buffer hold `key`'s embedding; `embedding_fn` runs only when
        `key` differs from what the buffer holds (a new text, encoded once)."""
        if self.text_buffer is not None and key == self.text_key:
            return
        embedding = embedding_fn().to(self.device, torch.float32)
        if self.text_buffer is None or self.text_buffer.shape != embedding.shape:
            if self.programs:  # a new shape would leave the captured programs reading a stale buffer
                self.clear()
            self.text_buffer = torch.empty_like(embedding)
        self.text_buffer.copy_(embedding)
        self.text_key = key

    def run(self, rgb: torch.Tensor) -> Optional[torch.Tensor]:
        """Replay the program of this image's size with `rgb` (HxWx3 uint8, CPU) copied
        into its static buffer; returns the program's output tensor (owned by the graph:
        read it before the next run), or None when disabled (capture failed)."""
        if not self.enabled:
            return None
        size = tuple(rgb.shape[:2])
        program = self.programs.get(size)
        if program is None:
            program = self._capture(size, rgb)
            if program is None:
                return None
        else:
            self.programs.move_to_end(size)
            self._upload(program, rgb)
        return program.replay()

    def _upload(self, program: StaticProgram, rgb: torch.Tensor) -> None:
        if program.staging is not None:  # bytes -> pinned -> device, asynchronously
            program.staging.copy_(rgb)
            program.image.copy_(program.staging, non_blocking=True)
        else:
            program.image.copy_(rgb)

    def _capture(self, size, rgb: torch.Tensor) -> Optional[StaticProgram]:
        while len(self.programs) >= self.max_sizes:
            self.programs.popitem(last=False)  # its graph and buffers go with it
            self.evictions += 1
        cuda = self.device.type == "cuda"
        image = torch.empty((*size, 3), dtype=torch.uint8, device=self.device)
        staging = torch.empty((*size, 3), dtype=torch.uint8, pin_memory=True) if cuda else None
        program = StaticProgram(image, staging, replay=None)
        self._upload(program, rgb)
        text = self.text_buffer
        try:
            with torch.cuda.device(self.device) if cuda else contextlib.nullcontext():  # streams of cuda:N
                program.replay = self.capture(lambda: self.program_fn(image, text))
        except Exception as exc:  # noqa: BLE001 - any capture failure means: run eagerly
            first_line = (str(exc).strip().splitlines() or [""])[0][:200]
            self.disabled_reason = f"{type(exc).__name__}: {first_line}"
            log.warning("CUDA graph capture failed at %dx%d (%s): running the eager forward from now on",
                        size[0], size[1], self.disabled_reason)
            self.clear()
            if cuda:
                torch.cuda.synchronize(self.device)
            return None
        self.captures += 1
        self.programs[size] = program
        return program

    def clear(self) -> None:
        self.programs.clear()
