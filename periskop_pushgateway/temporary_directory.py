"""A temporary directory that belongs to the process that made it, gone when that process
ends: removed at its exit, or, after a kill -9, by the next gateway to make one."""

import atexit
import os
import shutil
import tempfile
from pathlib import Path


def own_temporary_directory(prefix: str) -> Path:
    """A new directory named `<prefix><pid>-...` in the system's temporary directory, removed
    when this process exits (forked workers leave it to the process that made it). Those of
    dead processes with the same prefix are removed first: a year of restarts after kills
    would otherwise fill the disk. Raises OSError when none can be made."""
    creator = os.getpid()
    _remove_abandoned(Path(tempfile.gettempdir()), prefix)
    directory = Path(tempfile.mkdtemp(prefix=f"{prefix}{creator}-"))

    def remove() -> None:
        if os.getpid() == creator:
            shutil.rmtree(directory, ignore_errors=True)

    atexit.register(remove)
    return directory


def _remove_abandoned(temporary: Path, prefix: str) -> None:
    for candidate in temporary.glob(f"{prefix}*-*"):
        pid = candidate.name[len(prefix) :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(candidate, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True
