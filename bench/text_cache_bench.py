"""Text encoder calls per frame: a cached text costs 0, a new text exactly 1 (counted,
not timed). Also prints what a new text costs in time against a cached one."""
import argparse
import time

import numpy as np
from common import verdict

from textdepth_ros.serving.inference import DepthEstimator


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="tiny", help="model config (default %(default)s)")
    parser.add_argument("--frames", type=int, default=20, help="frames with the same text (default %(default)s)")
    args = parser.parse_args(argv)
    estimator = DepthEstimator(args.config, device="cpu")
    frame = np.zeros((96, 128, 3), np.uint8)
    estimator.predict(frame, "a bedroom")
    before = estimator.encoder_calls
    for _ in range(args.frames):
        estimator.predict(frame, "a bedroom")
    cached_calls = (estimator.encoder_calls - before) / args.frames
    start = time.perf_counter()
    estimator.predict(frame, "a kitchen with a table")
    new_text_s = time.perf_counter() - start
    new_calls = estimator.encoder_calls - before
    start = time.perf_counter()
    estimator.predict(frame, "a kitchen with a table")
    cached_s = time.perf_counter() - start
    print(f"[text] encoder calls per frame with a cached text: {cached_calls:g} ({verdict(cached_calls, 0)})")
    print(f"[text] encoder calls for one new text: {new_calls} ({'MEETS' if new_calls == 1 else 'MISSES'} target == 1)")
    print(f"[text] frame with a new text / frame with a cached text = {new_text_s / cached_s:.2f}")
    return {"cached_calls_per_frame": cached_calls, "new_text_calls": new_calls}


if __name__ == "__main__":
    main()
