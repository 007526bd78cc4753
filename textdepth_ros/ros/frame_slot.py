"""A one-frame mailbox between the executor thread and the inference worker.

The subscription callback `put`s the newest frame and returns at once; the worker
`take`s whatever is newest. A frame replaced before the worker took it is dropped
and counted. Memory stays at one frame whatever the input rate.
"""
import threading


class LatestSlot:
    def __init__(self):
        self._cond = threading.Condition()
        self._item = None
        self._closed = False
        self.received = 0
        self.dropped = 0

    def put(self, item) -> None:
        with self._cond:
            if self._item is not None:
                self.dropped += 1
            self._item = item
            self.received += 1
            self._cond.notify()

    def take(self, timeout: float):
        """The newest item, or None after `timeout` seconds or once closed."""
        with self._cond:
            self._cond.wait_for(lambda: self._item is not None or self._closed, timeout)
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def reopen(self) -> None:
        """Serve again after close() (a managed node re-activated); a frame left from
        before is dropped, the counters go on."""
        with self._cond:
            if self._item is not None:
                self.dropped += 1
            self._item, self._closed = None, False
