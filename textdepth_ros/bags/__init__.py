"""rosbag2 tooling: make-bag, replay, bag-eval (offline and live) and the evaluator node."""
