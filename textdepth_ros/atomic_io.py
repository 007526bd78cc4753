"""Outputs that appear whole or not at all.

Each output is written under a hidden temporary name in its own folder and renamed into
place only when everything was written (a rename within one filesystem is atomic). A
full disk, a read-only folder, an exception, Ctrl-C or SIGTERM removes the temporaries
and leaves whatever was at the targets before; a SIGKILL can leave a hidden
`.NAME.tmp-PID` file (or a marked `.NAME.partial-*` staging folder, which the next run
removes), never a truncated output under the real name.
"""
import glob
import os
import shutil
import signal
import socket
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


# ------------------------------------------------------------------------ folders
STAGING_MARKER = "textdepth_staging.txt"  # inside every staging folder: it is ours to delete


class StagedFolder:
    """A folder (a rosbag2 bag) built beside `target` and moved there only when complete.

    Layout: TARGET_PARENT/.NAME.partial-PID-TOKEN/{textdepth_staging.txt, NAME/}. The
    writer fills `self.path` (= .../NAME, so files named after the folder keep their
    names), then `commit()` renames it to `target`; `discard()` removes everything. A
    staging folder a killed run left behind is recognised by its marker (this host, a
    dead PID) and removed by the next StagedFolder for the same target; a folder without
    the marker is never touched.
    """

    def __init__(self, target):
        self.target = Path(os.path.abspath(target))
        self.cleared = clear_stale_staging(self.target)
        self.staging = self.target.parent / f".{self.target.name}.partial-{os.getpid()}-{os.urandom(3).hex()}"
        self.staging.mkdir(parents=True)
        (self.staging / STAGING_MARKER).write_text(
            f"textdepth_ros staging folder: delete freely\npid={os.getpid()}\nhost={socket.gethostname()}\n"
            f"target={self.target.name}\n")
        self.path = self.staging / self.target.name

    def commit(self) -> None:
        """Move the finished folder to `target`; an existing target (the caller allowed
        replacing it) moves into the staging folder first and is deleted with it."""
        fsync_path(self.staging)
        if self.target.exists() or self.target.is_symlink():
            os.replace(self.target, self.staging / "replaced")
        os.replace(self.path, self.target)
        fsync_path(self.target.parent)
        self.discard()

    def discard(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)


def clear_stale_staging(target: Path) -> list:
    """Remove staging folders for `target` left by killed runs: marker present, written on
    this host, by a process that no longer exists. Returns what was removed."""
    cleared = []
    for folder in target.parent.glob(f".{glob.escape(target.name)}.partial-*"):
        marker = folder / STAGING_MARKER
        if folder.is_symlink() or not marker.is_file():
            continue
        fields = dict(line.split("=", 1) for line in marker.read_text(errors="replace").splitlines() if "=" in line)
        if fields.get("host") != socket.gethostname() or not fields.get("pid", "").isdigit():
            continue
        if not process_alive(int(fields["pid"])):
            shutil.rmtree(folder, ignore_errors=True)
            cleared.append(folder)
    return cleared


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
