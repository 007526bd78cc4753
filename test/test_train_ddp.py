"""DDP on CPU: two gloo processes under torchrun train together, keep identical
replicas, and combine their evaluation shards without counting an image twice."""
import json
import os
import subprocess
import sys

import torch

from textdepth_ros.data.generate import generate_dataset

WORKER = """
import json, sys
import torch
from textdepth_ros.train import train
from textdepth_ros.training import distributed
from textdepth_ros.training.config import load_train_config

cfg = load_train_config(sys.argv[1], json.loads(sys.argv[2]))
ctx = distributed.setup("cpu")
summary = train(cfg, ctx)
torch.save(summary["model"].state_dict(), f"{sys.argv[3]}/rank{ctx.rank}.pt")
with open(f"{sys.argv[3]}/rank{ctx.rank}.json", "w") as f:
    json.dump({"step": summary["step"], "eval": summary["eval"], "losses": summary["losses"]}, f)
distributed.cleanup(ctx)
"""


def test_two_gloo_processes_keep_replicas_identical(repo_root, tmp_path):
    data = generate_dataset(tmp_path / "syn", n_train=8, n_test=3, height=64, width=96, seed=4)
    (tmp_path / "worker.py").write_text(WORKER)
    overrides = [f"data.root={data['root']}", f"data.train_list={data['train_list']}",
                 f"data.test_list={data['test_list']}", f"log.out_dir={tmp_path / 'run'}",
                 "train.batch_size=4", "train.epochs=2", "log.save_every=0"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(repo_root))
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(tmp_path / "worker.py"), str(repo_root / "config/train_tiny.yaml"), json.dumps(overrides), str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0.keys() == r1.keys()
    for key in r0:  # parameters and BatchNorm buffers
        torch.testing.assert_close(r0[key], r1[key], rtol=0, atol=0, msg=key)
    s0, s1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert s0["step"] == s1["step"] == 4  # 8 images / (2 processes x 2) = 2 steps per epoch, 2 epochs
    assert s0["eval"] == s1["eval"] and s0["eval"]["count"] == 3  # shards of 2 + 1, none repeated
    assert s0["losses"] != s1["losses"]  # each rank saw its own half of the data
    assert (tmp_path / "run/last.safetensors").is_file()
