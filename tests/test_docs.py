"""The README states what the code does: its settings and its test command."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from periskop_pushgateway.config import ENV_PREFIX, SETTINGS, load_config

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()


def test_readme_documents_every_setting_with_its_default():
    documented = dict(re.findall(r"^\| `(PERISKOP_PUSHGATEWAY_\w+)` \| `([^`]*)` \|", README, re.M))
    assert set(documented) == {ENV_PREFIX + name for name in SETTINGS}
    for name, (default, _parse, _description) in SETTINGS.items():
        assert documented[ENV_PREFIX + name].lower() == str(default).lower()


def test_readme_has_two_setup_commands_and_ci_runs_the_test_one():
    commands = re.findall(r"^```sh\n(.*?)\n```", README, re.M | re.S)
    assert len(commands) == 2
    run, test = commands
    assert "periskop-pushgateway serve" in run
    assert test.endswith(".venv/bin/python -m tests")  # both databases (tests/__main__.py)
    assert test in (REPO / ".ci" / "run").read_text()


def test_the_docs_build_strictly(tmp_path):
    # Strict: a link to a missing page or heading (mkdocs.yml's validation) fails the build.
    built = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert built.returncode == 0, built.stderr
    assert (tmp_path / "site" / "protocol" / "index.html").is_file()


@pytest.mark.parametrize(
    "name, value",
    [("OCCURRENCES_PER_KEY", "0"), ("AUTO_MIGRATE", "maybe"), ("MAX_BODY_BYTES", "lots")],
)
def test_bad_settings_are_named_when_refused(name, value):
    with pytest.raises(ValueError, match=ENV_PREFIX + name):
        load_config({ENV_PREFIX + name: value})
