"""The resume point (last.safetensors + last_state.pt) is one unit: a pair from two
saves is refused with one line, a save killed between its two renames is completed on
resume, a save killed while writing leaves the previous pair in use."""
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from textdepth_ros.cli import main
from textdepth_ros.data.generate import generate_dataset
from textdepth_ros.errors import UserError
from textdepth_ros.model.checkpoint import read_checkpoint
from textdepth_ros.training import state

SETUP = """
import torch
from textdepth_ros.model import build_model
from textdepth_ros.training.optim import build_optimizer, build_scheduler


def run_objects():
    torch.manual_seed(0)
    model = build_model("tiny", pretrained=False)
    optimizer = build_optimizer(model, "adam", 1e-3)
    return model, optimizer, build_scheduler(optimizer, 100), torch.amp.GradScaler("cpu", enabled=False)


def steps(model, optimizer, scheduler, n):
    # Real optimizer steps on one small tensor (Adam skips parameters without a grad): fast,
    # and they change both a weight and the optimizer state.
    param = [p for p in model.parameters() if p.requires_grad][-1]
    for _ in range(n):
        param.grad = torch.full_like(param, 0.5)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()


def progress(step):
    return {"step": step, "epoch": 0, "batch": step, "best": {}}
"""
namespace = {}
exec(SETUP, namespace)  # the same helpers in this process and in the killed one
run_objects, steps, progress = namespace["run_objects"], namespace["steps"], namespace["progress"]


def _save(out, objects, step):
    state.save_last(out, *objects, progress(step), extra={})


def test_a_pair_from_two_saves_is_refused(tmp_path):
    objects = run_objects()
    model, optimizer, scheduler, _ = objects
    _save(tmp_path / "run", objects, 4)
    old_state = (tmp_path / "run/last_state.pt").read_bytes()
    steps(model, optimizer, scheduler, 1)
    _save(tmp_path / "run", objects, 8)
    state.check_pair(tmp_path / "run")  # a real pair passes
    (tmp_path / "run/last_state.pt").write_bytes(old_state)  # weights of step 8, state of step 4
    with pytest.raises(UserError, match=r"last.safetensors is step 8 but last_state.pt is step 4") as info:
        state.load_last(tmp_path / "run", *run_objects(), "cpu")
    assert "\n" not in str(info.value)

    _save(tmp_path / "other", objects, 8)  # the same step from another run: the hash tells them apart
    steps(model, optimizer, scheduler, 1)
    _save(tmp_path / "run", objects, 8)
    (tmp_path / "run/last_state.pt").write_bytes((tmp_path / "other/last_state.pt").read_bytes())
    with pytest.raises(UserError, match="both step 8 but from different saves"):
        state.check_pair(tmp_path / "run")
    (tmp_path / "run/last_state.pt").write_bytes(b"\x80\x02truncated")
    with pytest.raises(UserError, match="last_state.pt is unreadable"):
        state.check_pair(tmp_path / "run")


def test_save_killed_between_its_renames_is_completed_on_resume(repo_root, tmp_path):
    killed = tmp_path / "killed.py"
    killed.write_text(SETUP + textwrap.dedent("""
        import os, signal, sys
        from textdepth_ros.model.checkpoint import save_checkpoint
        from textdepth_ros.training import state

        out = sys.argv[1]
        objects = run_objects()
        model, optimizer, scheduler, _ = objects
        steps(model, optimizer, scheduler, 1)
        state.save_last(out, *objects, progress(4), extra={})
        steps(model, optimizer, scheduler, 1)
        save_checkpoint(out + "/expected_step8.safetensors", model)
        rename = os.replace

        def replace(src, dst):  # SIGKILL once the new weights are in place, before the state is
            if os.path.basename(dst) == "last_state.pt":
                os.kill(os.getpid(), signal.SIGKILL)
            return rename(src, dst)

        os.replace = replace
        state.save_last(out, *objects, progress(8), extra={})
    """))
    result = subprocess.run([sys.executable, str(killed), str(tmp_path)], capture_output=True, text=True,
                            timeout=300, env=dict(os.environ, PYTHONPATH=str(repo_root)))
    assert result.returncode == -9, result.stderr[-2000:]
    assert (tmp_path / "last_state.pt.new").is_file()  # the cut left weights of step 8, state of step 4
    model, optimizer, scheduler, scaler = run_objects()
    assert state.load_last(tmp_path, model, optimizer, scheduler, scaler, "cpu")["step"] == 8
    expected, _, _ = read_checkpoint(tmp_path / "expected_step8.safetensors")
    for key, value in model.state_dict().items():
        assert torch.equal(value, expected[key]), key
    assert int(next(iter(optimizer.state.values()))["step"]) == 2 and scheduler.last_epoch == 2
    assert not (tmp_path / "last_state.pt.new").exists()
    state.check_pair(tmp_path)  # now an ordinary consistent pair


def test_save_killed_while_writing_keeps_the_previous_pair(tmp_path):
    objects = run_objects()
    model, optimizer, scheduler, _ = objects
    steps(model, optimizer, scheduler, 1)
    _save(tmp_path, objects, 4)
    weights_at_4 = (tmp_path / "last.safetensors").read_bytes()
    # What a kill mid-write leaves: half a staged weights file, a torn staged state.
    (tmp_path / "last.safetensors.new").write_bytes(weights_at_4[: len(weights_at_4) // 2])
    (tmp_path / "last_state.pt.new").write_bytes((tmp_path / "last_state.pt").read_bytes()[:100])
    fresh = run_objects()
    assert state.load_last(tmp_path, *fresh, "cpu")["step"] == 4
    assert (tmp_path / "last.safetensors").read_bytes() == weights_at_4
    steps(model, optimizer, scheduler, 1)
    _save(tmp_path, objects, 5)  # the next save overwrites the leftovers
    assert state.check_pair(tmp_path)["progress"]["step"] == 5


def test_train_resume_with_a_mismatched_pair_is_one_line(repo_root, tmp_path, capsys):
    data = generate_dataset(tmp_path / "syn", n_train=4, n_test=0, height=64, width=96, seed=3)
    objects = run_objects()
    _save(tmp_path / "run", objects, 4)
    old_state = (tmp_path / "run/last_state.pt").read_bytes()
    steps(*objects[:3], 1)
    _save(tmp_path / "run", objects, 8)
    (tmp_path / "run/last_state.pt").write_bytes(old_state)
    code = main(["train", "--config", str(repo_root / "config/train_tiny.yaml"), "--out", str(tmp_path / "run"),
                 "--resume", "--set", f"data.root={data['root']}", "--set", f"data.train_list={data['train_list']}",
                 "--set", "data.test_list=null"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines() == [f"textdepth train: error: cannot resume: {tmp_path / 'run/last.safetensors'} "
                                        "is step 8 but last_state.pt is step 4; they are not one save, so resuming "
                                        "would mix two runs (start without --resume, or put back a matching pair)"]
