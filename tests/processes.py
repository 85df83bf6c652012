"""Starting and killing the servers the tests run, so that Ctrl-C never leaves one behind."""

import contextlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path


def start_in_own_session(command, **options):
    """subprocess.Popen(command, start_new_session=True, **options), with Ctrl-C held back
    until Popen has returned. A KeyboardInterrupt raised inside Popen, after the child's exec,
    would leave a server running that no one knows of, in a session that the interrupted run's
    signals never reach: a Ctrl-C held back kills the new session, then is raised."""
    if threading.current_thread() is not threading.main_thread():
        return subprocess.Popen(command, start_new_session=True, **options)
    held = []
    previous = signal.signal(signal.SIGINT, lambda number, frame: held.append(number))
    try:
        process = subprocess.Popen(command, start_new_session=True, **options)
    finally:
        signal.signal(signal.SIGINT, previous)
    if held:
        kill_session(process)
        raise KeyboardInterrupt
    return process


def kill_session(process, timeout=10):
    """kill -9 every process of the session `process` leads, and wait until each has ended:
    the leader's children (gunicorn's workers) are left to pid 1 to reap, and can still be
    running for a moment after their leader has been."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout)
    deadline = time.monotonic() + timeout
    while (left := _live_members(process.pid)) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not left, f"processes {left} of session {process.pid} outlived SIGKILL"


def _live_members(session):
    return [
        pid
        for pid, fields in process_stats()
        if int(fields[3]) == session and fields[0] not in "ZX"
    ]


def process_stats():
    """(pid, the fields of /proc/<pid>/stat after the command's name) of every process: state,
    parent, process group, session, …"""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # ended while listed
            yield int(entry.name), stat.rsplit(")", 1)[1].split()
