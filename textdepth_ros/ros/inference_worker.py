"""The thread that runs the model on the newest frame, and how it stops.

The executor thread `put`s frames into `slot`; this thread takes the newest and calls
`handle(*item)`. Stopping waits a bounded time for the frame in progress. A frame
that is still inside the model after that is dropped: its thread cannot be
interrupted, so instead the output gate closes, and whatever the frame later tries
to publish is discarded, never sent through a node that is being destroyed.
"""
import threading
import time
from contextlib import contextmanager

from textdepth_ros.ros.frame_slot import LatestSlot


class InferenceWorker:
    def __init__(self, handle, on_error, slot: LatestSlot, name: str = "depth_inference"):
        self.slot = slot
        self._handle, self._on_error = handle, on_error
        self._name = name
        self._stop = threading.Event()
        self._output_lock = threading.Lock()
        self._outputs_open = True
        self._thread = None
        self.busy = False  # inside handle()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            item = self.slot.take(timeout=0.2)
            if item is None:
                continue
            self.busy = True
            try:
                self._handle(*item)
            except Exception as exc:  # noqa: BLE001 - one bad frame must not stop the node
                if self._outputs_open:  # a dropped frame's late failure is nobody's concern
                    self._on_error(exc)
            finally:
                self.busy = False

    @contextmanager
    def outputs(self):
        """Publish inside this block, and only if it yields True (False: the frame was
        dropped at shutdown and the node may already be gone)."""
        with self._output_lock:
            yield self._outputs_open

    def stop(self, grace_s: float, hurry: threading.Event = None) -> bool:
        """Take no more frames; wait up to `grace_s` (or until `hurry` is set) for the
        frame in progress. Returns True if the thread ended, False if its frame was
        dropped and the thread is still inside the model."""
        self._stop.set()
        self.slot.close()
        if self._thread is None:
            return True
        deadline = time.monotonic() + grace_s
        while self._thread.is_alive() and time.monotonic() < deadline and not (hurry and hurry.is_set()):
            self._thread.join(0.05)
        if self._thread.is_alive():
            self.close_outputs()
            self._thread.join(0.1)  # it may have been between frames, about to leave
        return not self._thread.is_alive()

    def close_outputs(self) -> None:
        """From now on `outputs()` yields False (waits for a publish in progress)."""
        with self._output_lock:
            self._outputs_open = False
