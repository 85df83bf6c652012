"""The README and the manual in docs/ state what the code does: its settings and its test
command; and the manual builds, every link in it resolving."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from markdown.extensions.toc import slugify

from periskop_pushgateway.config import ENV_PREFIX, SETTINGS, WholeNumber, load_config

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()
DOCS = REPO / "docs"
CONFIGURATION = (DOCS / "configuration.md").read_text()
SETTING_ROW = re.compile(r"^\| `(PERISKOP_PUSHGATEWAY_\w+)` \| `([^`]*)` \|", re.M)


def test_the_configuration_page_documents_every_setting_with_its_default():
    documented = dict(SETTING_ROW.findall(CONFIGURATION))
    assert set(documented) == {ENV_PREFIX + name for name in SETTINGS}
    for name, (default, _parse, _description) in SETTINGS.items():
        assert documented[ENV_PREFIX + name].lower() == str(default).lower()


def test_the_configuration_page_gives_every_number_settings_range():
    rows = re.findall(
        r"^\| `PERISKOP_PUSHGATEWAY_(\w+)` \| ([\d,]+) to ([\d,]+) \|", CONFIGURATION, re.M
    )
    documented = {
        name: (int(low.replace(",", "")), int(high.replace(",", ""))) for name, low, high in rows
    }
    ranges = {
        name: (parse.low, parse.high)
        for name, (_default, parse, _description) in SETTINGS.items()
        if isinstance(parse, WholeNumber)
    }
    assert documented == ranges
    for name, (default, _parse, _description) in SETTINGS.items():
        if name in ranges:
            assert ranges[name][0] <= default <= ranges[name][1], name


def test_the_readmes_short_settings_table_gives_the_defaults_in_force():
    rows = SETTING_ROW.findall(README)
    assert rows
    assert len({name for name, _default in rows}) == len(rows)
    for variable, default in rows:
        name = variable.removeprefix(ENV_PREFIX)
        assert name in SETTINGS, variable
        assert default.lower() == str(SETTINGS[name][0]).lower(), variable


def test_readme_has_two_setup_commands_and_ci_runs_the_test_one():
    commands = re.findall(r"^```sh\n(.*?)\n```", README, re.M | re.S)
    assert len(commands) == 2
    run, test = commands
    assert "periskop-pushgateway serve" in run
    assert test.endswith(".venv/bin/python -m tests")  # both databases (tests/__main__.py)
    assert test in (REPO / ".ci" / "run").read_text()


def _headings(markdown):
    """The anchors MkDocs gives a page's headings (outside fenced code)."""
    text = re.sub(r"^```.*?^```", "", markdown, flags=re.M | re.S)
    return {slugify(title.strip(), "-") for title in re.findall(r"^#+ (.+)$", text, re.M)}


def test_the_readmes_links_into_the_docs_resolve():
    links = re.findall(r"\]\((docs/[^)#]+)(?:#([^)]+))?\)", README)
    assert links
    for path, anchor in links:
        target = REPO / path
        assert target.is_file(), path
        if anchor:
            assert anchor in _headings(target.read_text()), f"{path}#{anchor}"


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
    [
        ("OCCURRENCES_PER_KEY", "0"),
        ("AUTO_MIGRATE", "maybe"),
        ("MAX_BODY_BYTES", "lots"),
        # Each number past its setting's range: too large to mean anything, or to work.
        ("MAX_BODY_BYTES", "1" + "0" * 19),
        ("MAX_BODY_BYTES", str(256 * 1024 * 1024 + 1)),
        ("MAX_KEYS_PER_GROUP", "9" * 20),
        ("RETENTION_SECONDS", "9" * 20),
        ("MAX_COUNTERS_PER_GROUP", "9" * 20),
        ("BODY_READ_TIMEOUT_SECONDS", "9" * 20),
        ("MAX_CAUSE_DEPTH", "101"),
        ("SQLITE_BUSY_TIMEOUT_MS", str(2**31)),
    ],
)
def test_bad_settings_are_named_when_refused(name, value):
    with pytest.raises(ValueError, match=ENV_PREFIX + name):
        load_config({ENV_PREFIX + name: value})
