"""`python -m tests` (the README's test command) runs the suite on both databases and fails
when either pass fails."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import TEST_DATABASE
from .processes import process_stats
from .test_docs import REPO

# It starts both passes itself: run once, in the SQLite pass.
pytestmark = pytest.mark.skipif(TEST_DATABASE != "sqlite", reason="the runner is tested once")

ONE_TEST = (
    "tests/test_docs.py::test_the_configuration_page_documents_every_setting_with_its_default"
)


def run_both(*arguments):
    command = [sys.executable, "-m", "tests", "-q", "-p", "no:cacheprovider", *arguments]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_both_databases_pass_and_each_pass_is_shown_whole():
    result = run_both(ONE_TEST)
    assert result.returncode == 0, result.stdout
    for database in ("sqlite", "postgresql"):
        assert f"===== {database} pass: exit status 0" in result.stdout
        assert f"{database}: passed" in result.stdout
    assert result.stdout.count("1 passed") == 2


def test_a_failing_pass_fails_the_run():
    # No test matches: pytest's exit status 5 in both passes.
    result = run_both(ONE_TEST, "-k", "no_test_has_this_name")
    assert result.returncode == 5, result.stdout
    assert "sqlite: FAILED" in result.stdout and "postgresql: FAILED" in result.stdout


def test_ctrl_c_lets_each_pass_stop_the_servers_its_tests_started():
    # A test that serves from gunicorn for a few seconds; Ctrl-C reaches the runner's group.
    command = [sys.executable, "-m", "tests", "-q", "-p", "no:cacheprovider"]
    command += ["tests/test_flush_later.py", "-k", "arriving_together"]
    runner = subprocess.Popen(
        command,
        cwd=REPO,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while not (servers := [pid for pid in descendants(runner.pid) if is_gunicorn(pid)]):
        assert time.monotonic() < deadline, "no gunicorn started"
        time.sleep(0.1)
    os.killpg(runner.pid, signal.SIGINT)
    assert runner.wait(120) != 0
    assert [pid for pid in servers if is_gunicorn(pid)] == []


def descendants(pid):
    parents = {child: int(fields[1]) for child, fields in process_stats()}
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def is_gunicorn(pid):
    try:
        return b"gunicorn" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
