"""`python -m tests` (the README's test command) runs the suite on both databases and fails
when either pass fails."""

import subprocess
import sys

import pytest

from .conftest import TEST_DATABASE
from .test_docs import REPO

# It starts both passes itself: run once, in the SQLite pass.
pytestmark = pytest.mark.skipif(TEST_DATABASE != "sqlite", reason="the runner is tested once")

ONE_TEST = "tests/test_docs.py::test_readme_documents_every_setting_with_its_default"


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
