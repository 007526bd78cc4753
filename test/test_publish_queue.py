"""PublishQueue: the worker -> publisher hand-over of depth_node (real threads)."""
import threading
import time

from textdepth_ros.ros.publish_queue import PublishQueue


def test_frames_are_published_in_order_while_the_worker_goes_on():
    published, release = [], threading.Event()

    def publish(item):
        release.wait(5)
        published.append(item)

    queue = PublishQueue(publish, on_error=lambda exc: None)
    assert queue.put(1, timeout=1)  # taken at once by the publisher (which now waits on `release`)
    time.sleep(0.05)
    assert queue.put(2, timeout=1)  # waits in the one slot
    assert not queue.put(3, timeout=0.1)  # a third frame waits for the slot: backpressure, not a pile-up
    release.set()
    assert queue.put(3, timeout=2)
    queue.close(timeout=5)
    assert published == [1, 2, 3]


def test_a_failing_frame_is_reported_and_publishing_goes_on():
    published, errors = [], []

    def publish(item):
        if item == "bad":
            raise ValueError("cannot publish this one")
        published.append(item)

    queue = PublishQueue(publish, on_error=errors.append)
    for item in ["a", "bad", "b"]:
        assert queue.put(item, timeout=2)
    assert queue.wait_idle(5)
    queue.close()
    assert published == ["a", "b"] and len(errors) == 1 and "cannot publish" in str(errors[0])


def test_close_publishes_what_waits_then_refuses_new_frames():
    published = []
    queue = PublishQueue(lambda item: (time.sleep(0.05), published.append(item)), on_error=lambda exc: None)
    queue.put("x")
    queue.put("y")
    assert queue.close(timeout=5)
    assert published == ["x", "y"] and queue.idle()
    assert not queue.put("z", timeout=0.1)


def test_close_in_a_hurry_drops_the_waiting_frame():
    published, release = [], threading.Event()
    queue = PublishQueue(lambda item: (release.wait(5), published.append(item)), on_error=lambda exc: None)
    queue.put("in progress")
    time.sleep(0.05)
    queue.put("waiting")
    assert not queue.close(timeout=0)  # still inside publish()
    release.set()
    queue._thread.join(5)
    assert published == ["in progress"]
