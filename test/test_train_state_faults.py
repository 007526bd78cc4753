"""`train --resume` from a state someone edited, and training saves on a disk that fills
up: one line naming the problem, never a traceback, and the previous save stays the
resume point with nothing partial beside it."""
import io
import os
import sys

import pytest
import torch

from fs_helpers import require_private_mounts, run_on_tmpfs
from test_train_state import progress, run_objects, steps
from textdepth_ros.data.generate import generate_dataset
from textdepth_ros.errors import UserError
from textdepth_ros.training import state


def first_moments(saved):
    return next(iter(saved["optimizer"]["state"].values()))


# Each edit keeps the weights' hash and the step, so only the structure check can tell.
EDITS = {
    "wrong-type": (lambda s: s.update(optimizer="adam"), "has optimizer as a str, expected a dict"),
    "missing-entry": (lambda s: s.pop("scheduler"), "lacks the state['scheduler']"),
    "extra-entry": (lambda s: s["progress"].update(lr=0.1), "unexpected entry progress['lr']"),
    "moment-of-another-shape": (lambda s: first_moments(s).update(exp_avg=torch.zeros(3)),
                                "['exp_avg'] as a float32 tensor of shape (3,), expected a float tensor of shape (256,)"),
    "params-of-another-model": (lambda s: s["optimizer"]["param_groups"][0]["params"].pop(),
                                "trains 313 parameter tensors, this run 314 (was train.freeze changed?"),
    "bad-torch-rng": (lambda s: s["rng"].update(torch=torch.zeros(10, dtype=torch.uint8)),
                      "rng['torch'] as a uint8 tensor of shape (10,)"),
    "bad-python-rng": (lambda s: s["rng"]["python"][0].__setitem__(624, 10**6), "RNG state the generators refuse"),
    "scheduler-field-of-wrong-type": (lambda s: s["scheduler"].update(last_epoch="7"),
                                      "scheduler['last_epoch'] as a str (7), expected a int"),
    "negative-epoch": (lambda s: s["progress"].update(epoch=-1), "progress['epoch'] = -1"),
}


@pytest.fixture(scope="module")
def saved_pair(tmp_path_factory):
    out = tmp_path_factory.mktemp("edited_state")
    objects = run_objects()
    steps(*objects[:3], 1)
    state.save_last(out, *objects, progress(1), extra={})
    return out, (out / "last_state.pt").read_bytes(), objects


@pytest.mark.parametrize("edit", list(EDITS))
def test_an_edited_state_is_refused_before_any_of_it_is_used(saved_pair, edit):
    out, pristine, objects = saved_pair
    path = out / "last_state.pt"
    edited = torch.load(io.BytesIO(pristine), weights_only=True)
    change, message = EDITS[edit]
    change(edited)
    torch.save(edited, path)
    try:
        model, optimizer, scheduler, scaler = objects
        before = {k: v.clone() for k, v in model.state_dict().items()}
        with pytest.raises(UserError) as info:
            state.load_last(out, model, optimizer, scheduler, scaler, "cpu")
        assert message in str(info.value) and "\n" not in str(info.value), str(info.value)
        assert str(info.value).startswith(f"cannot resume: {path} ")
        assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # nothing loaded
    finally:
        path.write_bytes(pristine)



def test_training_saves_on_a_full_disk_are_one_line_and_keep_the_previous_pair(repo_root, tmp_path, saved_pair):
    """The disk fills up while a resumed run trains: its first save cannot fit (safetensors
    raised its own SafetensorError, which the atomic writer did not catch). The resume
    itself passes the structure check: the unedited state is accepted by the real CLI."""
    require_private_mounts()
    data = generate_dataset(tmp_path / "syn", n_train=4, n_test=0, height=64, width=96, seed=3)
    previous, _, _ = saved_pair
    sizes = {name: (previous / name).stat().st_size for name in ("last.safetensors", "last_state.pt")}
    disk = tmp_path / "disk"
    argv = [sys.executable, "-m", "textdepth_ros.cli", "train", "--config", repo_root / "config/train_tiny.yaml",
            "--out", disk, "--resume", "--set", f"data.root={data['root']}",
            "--set", f"data.train_list={data['train_list']}", "--set", "data.test_list=null",
            "--set", "train.epochs=3", "--set", "log.save_every=1"]  # the saved pair ends epoch 0
    result, listing = run_on_tmpfs(disk, argv, size_kb=sum(sizes.values()) // 1024 + 512,
                                   prepare=f"cp {previous}/last.safetensors {previous}/last_state.pt {disk}/")
    lines = [line for line in result.stderr.splitlines() if line.startswith("textdepth train:")]
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert lines == [f"textdepth train: error: cannot write checkpoint {disk}/last.safetensors.new: "
                     "No space left on device"], result.stderr[-3000:]
    kept = {name: size for name, size in listing.items() if name in sizes}
    assert kept == sizes, listing  # the previous pair, untouched
    assert not [name for name in listing if name.startswith(".") or name.endswith(".new")], listing
    assert os.path.getsize(previous / "last.safetensors") == sizes["last.safetensors"]
