"""Finished frames from the inference worker to a publisher thread.

The worker hands over a predicted frame and starts the next forward at once; the
publisher thread converts and publishes the previous frame meanwhile (on a GPU the
forward mostly waits on the device with the GIL released, so the two overlap). At most
one frame waits: when publishing is slower than inference the worker waits for it
(backpressure) instead of frames piling up, so memory stays bounded, every computed
frame is published, and outputs leave in the order their inputs came.
"""
import threading


class PublishQueue:
    def __init__(self, publish, on_error, name: str = "depth_publisher"):
        """`publish(item)` runs on the publisher thread; `on_error(exc)` when it raises."""
        self._publish, self._on_error = publish, on_error
        self._cond = threading.Condition()
        self._item = None
        self._busy = False  # the publisher is inside publish()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, item, timeout: float = None) -> bool:
        """Queue `item` once the previous waiting one was taken. False if closed first
        (or after `timeout` seconds)."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._item is None or self._closed, timeout):
                return False
            if self._closed:
                return False
            self._item = item
            self._cond.notify_all()
            return True

    def idle(self) -> bool:
        """Nothing waiting and nothing being published."""
        with self._cond:
            return self._item is None and not self._busy

    def wait_idle(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._item is None and not self._busy, timeout)

    def close(self, timeout: float = 5.0) -> bool:
        """Publish what is waiting (within `timeout`), then stop the thread; a frame not
        yet taken by then is dropped. True if the thread has ended."""
        self.wait_idle(timeout)
        with self._cond:
            self._closed = True
            self._item = None
            self._cond.notify_all()
        self._thread.join(max(timeout, 0.05))
        return not self._thread.is_alive()

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._item is not None or self._closed)
                if self._item is None:  # closed and drained
                    return
                item, self._item, self._busy = self._item, None, True
                self._cond.notify_all()  # a waiting put may go ahead
            try:
                self._publish(item)
            except Exception as exc:  # noqa: BLE001 - one bad frame must not stop publishing
                self._on_error(exc)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
