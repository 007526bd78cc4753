"""Real small or read-only filesystems for fault tests: a tmpfs mounted in a private
mount namespace (`unshare -m`), so it vanishes with the command and no test can leave a
mount behind. Needs root (CI containers run as root); tests skip otherwise."""
import functools
import os
import shlex
import shutil
import subprocess

import pytest


@functools.lru_cache(maxsize=1)
def private_mounts_available() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=4k tmpfs /mnt"],
                           capture_output=True, timeout=30)
    return probe.returncode == 0


def require_private_mounts():
    if not private_mounts_available():
        pytest.skip("needs root and unshare -m to mount a small tmpfs (a real full / read-only filesystem)")


def run_on_tmpfs(folder, argv, size_kb: int, read_only: bool = False, prepare: str = "", timeout: int = 300):
    """Mount a tmpfs of `size_kb` KiB on `folder` (privately), run `prepare` (shell) then
    `argv` there, and list what the folder holds afterwards (hidden files too).
    Returns (completed process of argv, {name: size in bytes})."""
    os.makedirs(folder, exist_ok=True)
    options = f"size={size_kb}k" + (",ro" if read_only else "")
    script = (
        f"mount -t tmpfs -o {options} tmpfs {shlex.quote(str(folder))} || exit 99\n"
        f"{prepare}\n"
        f"{shlex.join(map(str, argv))} > {shlex.quote(str(folder))}.stdout 2> {shlex.quote(str(folder))}.stderr\n"
        f"echo $? > {shlex.quote(str(folder))}.rc\n"
        f"cd {shlex.quote(str(folder))} && find . -mindepth 1 -printf '%P\\t%s\\n' > ../{shlex.quote(os.path.basename(str(folder)))}.listing\n"
    )
    wrapper = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=timeout)
    assert wrapper.returncode != 99, f"mount failed: {wrapper.stderr}"
    base = str(folder)
    with open(base + ".rc") as f:
        rc = int(f.read().strip())
    with open(base + ".stdout") as f:
        stdout = f.read()
    with open(base + ".stderr") as f:
        stderr = f.read()
    with open(os.path.join(os.path.dirname(base), os.path.basename(base) + ".listing")) as f:
        listing = dict(line.rsplit("\t", 1) for line in f.read().splitlines())
    return subprocess.CompletedProcess(argv, rc, stdout, stderr), {k: int(v) for k, v in listing.items()}
