"""Outputs that appear whole or not at all.

Each output is written inside a hidden temporary folder beside it (`.NAME.tmp-PID-TOKEN/
NAME`, so the name and suffix stay as the writer expects, and a writer's own
temporaries, such as safetensors', land there too) and renamed into place only when
everything was written (a rename within one filesystem is atomic). A full disk, a
read-only folder, an exception, Ctrl-C or SIGTERM removes the temporaries and leaves
whatever was at the targets before, with one UserError line for a write failure (also
the ones safetensors and torch.save raise as their own exception types). Outputs get
the process's normal file mode (0666 less the umask), whatever mode a writer chose.

A SIGKILL can leave a temporary folder (or a marked `.NAME.partial-*` staging folder):
the writer holds an flock on its folder while it writes, so the next write to the same
target removes the folders nobody holds (and says so in one line), never a live
process's; a truncated output under the real name never exists.
"""
import errno
import fcntl
import glob
import logging
import os
import re
import shutil
import signal
import socket
import threading
from contextlib import contextmanager
from pathlib import Path

from textdepth_ros.errors import UserError


TEMP_MARK = ".tmp-"
OURS_FOLDER, OURS_FILE = re.compile(r"\d+-[0-9a-f]{6}"), re.compile(r"\d+(\.[^/]*)?")  # after TEMP_MARK
log = logging.getLogger("textdepth_ros.atomic_io")


def temp_folder(target: Path) -> Path:
    """A new hidden folder beside `target` for writing it (this process, a random token)."""
    return target.with_name(f".{target.name}{TEMP_MARK}{os.getpid()}-{os.urandom(3).hex()}")


def locked_temp_folder(target: Path) -> tuple:
    """(folder, fd): a new temporary folder for `target`, held with an exclusive flock
    (released when the fd closes, also when the process is killed). Where the file system
    has no locks, the folder is simply not held (and never removed by another writer)."""
    while True:
        folder = temp_folder(target)
        folder.mkdir()
        fd = os.open(folder, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                os.close(fd)
                raise
        try:  # a cleaner that locked it first (between mkdir and flock) has removed it: again
            if os.path.samestat(os.fstat(fd), os.stat(folder)):
                return folder, fd
        except FileNotFoundError:
            pass
        os.close(fd)


def clear_stale_temporaries(target: Path) -> list:
    """Remove temporary folders of writes to `target` that nobody holds any more (killed
    writers); a live writer's folder is locked and kept. Also the `.NAME.tmp-PID.SUFFIX`
    files of earlier versions whose process is gone. Returns [(path, bytes)] removed."""
    removed = []
    for path in target.parent.glob(f".{glob.escape(target.name)}{TEMP_MARK}*"):
        tail = path.name[len(target.name) + len(TEMP_MARK) + 1:]
        try:
            if OURS_FOLDER.fullmatch(tail) and path.is_dir() and not path.is_symlink():
                fd = os.open(path, os.O_RDONLY)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live writer
                try:
                    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
                    shutil.rmtree(path)
                finally:
                    os.close(fd)
            else:
                pid = tail.split(".")[0]
                if not OURS_FILE.fullmatch(tail) or process_alive(int(pid)) or not path.is_file():
                    continue
                size = path.stat().st_size
                path.unlink()
        except OSError:
            continue  # gone meanwhile, or not ours to remove
        removed.append((path, size))
    if removed:
        log.warning(f"removed {len(removed)} stale temporary file(s) of interrupted writes of {target} "
                    f"({sum(size for _, size in removed) / 1e6:.1f} MB)")
    return removed


def process_umask() -> int:
    """This process's umask, read without changing it (os.umask sets it, racing other threads)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_failure(exc: Exception, folder: Path):
    """Why a writer library's own exception (safetensors' SafetensorError, torch.save's
    RuntimeError) was a failed write, in a few words; None for any other error (a bug
    keeps its traceback)."""
    text = " ".join(str(exc).split())
    found = re.search(r"os error (\d+)\)", text)  # safetensors: "I/O error: No space left ... (os error 28)"
    if found:
        return os.strerror(int(found.group(1)))
    found = re.search(r"failed with strerror: ([^.]+)", text)  # torch: "open file failed with strerror: ..."
    if found:
        return found.group(1).strip()
    if "inline_container" in text or "PytorchStreamWriter" in text:  # torch: a short write, no errno
        try:
            stat = os.statvfs(folder)
        except OSError:
            return "the write failed"
        if stat.f_flag & os.ST_RDONLY:
            return os.strerror(errno.EROFS)
        if stat.f_bavail * stat.f_frsize < 1 << 20:
            return os.strerror(errno.ENOSPC)
        return f"the write failed ({text[:120]})"
    return None


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
    folders, locks, temps = [], [], []
    try:
        with terminate_as_interrupt():
            for target in targets:
                target.parent.mkdir(parents=True, exist_ok=True)
                clear_stale_temporaries(target)
                folder, fd = locked_temp_folder(target)
                folders.append(folder)
                locks.append(fd)
                temps.append(folder / target.name)
            yield temps
            mode = 0o666 & ~process_umask()
            for temp in temps:
                os.chmod(temp, mode)  # safetensors writes 0600: another user's node could not read it
                fsync_path(temp)
            for temp, target in zip(temps, targets):
                os.replace(temp, target)
            for folder in {t.parent for t in targets}:
                fsync_path(folder)
    except Exception as exc:
        reason = (exc.strerror or str(exc)) if isinstance(exc, OSError) else write_failure(exc, targets[0].parent)
        if reason is None:
            raise
        raise UserError(f"cannot write {what} {targets[0] if len(targets) == 1 else targets[0].parent}: "
                        f"{reason}") from None
    finally:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
        for fd in locks:
            os.close(fd)


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
