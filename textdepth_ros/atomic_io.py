"""Outputs that appear whole or not at all.

Each output is written under a hidden temporary name in its own folder and renamed into
place only when everything was written (a rename within one filesystem is atomic). A
full disk, a read-only folder, an exception, Ctrl-C or SIGTERM removes the temporaries
and leaves whatever was at the targets before; a SIGKILL can leave a hidden
`.NAME.tmp-PID` file, never a truncated output under the real name.
"""
import os
import signal
import threading
from contextlib import contextmanager
from pathlib import Path

from textdepth_ros.errors import UserError


def temp_path(target: Path) -> Path:
    """Hidden sibling of `target` that keeps its suffix (np.save and cv2.imwrite go by it)."""
    return target.with_name(f".{target.name}.tmp-{os.getpid()}{target.suffix}")


@contextmanager
def terminate_as_interrupt():
    """SIGTERM (and SIGHUP) raise KeyboardInterrupt inside the block, so clean-up code runs
    as for Ctrl-C; handlers are restored after. Only the main thread can set handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextmanager
def atomic_files(*targets, what: str = "output"):
    """`with atomic_files(a, b) as (tmp_a, tmp_b): write tmp_a, tmp_b` -> a and b replaced
    together on success. A write error (ENOSPC, EROFS, EACCES ...) becomes one UserError."""
    targets = [Path(t) for t in targets]
    temps = [temp_path(t) for t in targets]
    try:
        with terminate_as_interrupt():
            for target in targets:
                target.parent.mkdir(parents=True, exist_ok=True)
            yield temps
            for temp in temps:
                fsync_path(temp)
            for temp, target in zip(temps, targets):
                os.replace(temp, target)
            for folder in {t.parent for t in targets}:
                fsync_path(folder)
    except OSError as exc:
        raise UserError(f"cannot write {what} {targets[0] if len(targets) == 1 else targets[0].parent}: "
                        f"{exc.strerror or exc}") from None
    finally:
        for temp in temps:
            try:
                temp.unlink(missing_ok=True)
            except OSError:
                pass


def fsync_path(path: Path) -> None:
    """Flush a file's (or a folder's entries') data to disk: a full disk can first show here."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
