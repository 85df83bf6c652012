"""The package type-checks under mypy (setup.cfg's [mypy]) and the code is ruff-clean
(ruff.toml), as the tests find them installed."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _run(*arguments):
    return subprocess.run(
        [sys.executable, "-m", *arguments], cwd=REPO, capture_output=True, text=True
    )


def test_mypy_finds_no_errors():
    result = _run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_finds_nothing_to_fix_or_reformat():
    for arguments in (("ruff", "check", "."), ("ruff", "format", "--check", ".")):
        result = _run(*arguments)
        assert result.returncode == 0, f"{' '.join(arguments)}:\n{result.stdout}{result.stderr}"
