"""The atomic writer behind every checkpoint, ONNX file and prediction: outputs get the
process's normal file mode, and what a SIGKILLed save left behind is removed by the next
write to the same target, never a live writer's temporary."""
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from textdepth_ros.model.checkpoint import write_checkpoint

TENSORS = {"w": torch.arange(250_000, dtype=torch.float32)}  # 1 MB


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_checkpoints_get_the_umask_mode_not_0600(tmp_path, umask_022):
    """safetensors writes 0600: a node running as another user (a systemd service) could
    not read a checkpoint that training or import-pixelformer wrote."""
    path = write_checkpoint(tmp_path / "model.safetensors", TENSORS, {"name": "x"})
    assert oct(path.stat().st_mode & 0o777) == oct(0o644)


def writer(target, action: str) -> subprocess.Popen:
    """A process saving `target` through write_checkpoint (what train and import-pixelformer
    call): 'kill' is SIGKILLed once the file is written, before the rename; 'hold' stays
    inside the save until its stdin closes (a live, slow save)."""
    script = textwrap.dedent(f"""
        import os, signal, sys
        import safetensors.torch, torch
        from textdepth_ros.model.checkpoint import write_checkpoint

        write = safetensors.torch.save_file

        def save(tensors, filename, metadata=None):
            write(tensors, filename, metadata=metadata)
            if {action!r} == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            print("saving", flush=True)
            sys.stdin.read()

        safetensors.torch.save_file = save
        write_checkpoint(sys.argv[1], {{"w": torch.zeros(250_000)}}, {{"name": "x"}})
    """)
    return subprocess.Popen([sys.executable, "-c", script, str(target)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)


def test_stale_temporaries_of_killed_saves_are_removed_but_a_live_save_is_kept(tmp_path, caplog):
    target = tmp_path / "last.safetensors"
    live = writer(target, "hold")
    try:
        assert live.stdout.readline() == "saving\n"
        held = {p.name for p in tmp_path.iterdir()}
        killed = writer(target, "kill")  # its own start leaves the live writer's folder alone
        assert killed.wait(120) == -signal.SIGKILL
        stale = {p.name for p in tmp_path.iterdir()} - held
        assert len(held) == len(stale) == 1 and stale.pop().startswith(".last.safetensors.tmp-")
        old_style = tmp_path / ".last.safetensors.tmp-999999999.safetensors"  # an earlier version's, pid gone
        old_style.write_bytes(b"x" * 1000)

        write_checkpoint(target, TENSORS, {"name": "x"})  # the next run's save

        assert {p.name for p in tmp_path.iterdir()} == {"last.safetensors"} | held  # the live one is kept
        lines = [r.getMessage() for r in caplog.records if "stale temporary" in r.getMessage()]
        assert lines == [f"removed 2 stale temporary file(s) of interrupted writes of {target} (1.0 MB)"], lines
    finally:
        live.stdin.close()
        assert live.wait(120) == 0
    assert {p.name for p in tmp_path.iterdir()} == {"last.safetensors"}
