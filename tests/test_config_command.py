"""`periskop-pushgateway config`: every setting in force and where it came from, secrets as
set or unset only; a value the gateway would refuse at start exits 1, saying so."""

import os
import re
import subprocess
import sys

import pytest
from werkzeug.security import generate_password_hash

from periskop_pushgateway import create_app
from periskop_pushgateway.config import ENV_PREFIX, SECRET_SETTINGS, SETTINGS, load_config

HASH = generate_password_hash("push-secret")


def run_config(**settings):
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    env.update({ENV_PREFIX + name: value for name, value in settings.items()})
    return subprocess.run(
        [sys.executable, "-m", "periskop_pushgateway", "config"],
        env=env,
        capture_output=True,
        text=True,
    )


def shown(stdout):
    """variable -> (value, source)"""
    return {
        variable: (value, source)
        for variable, value, source in re.findall(r"^(\w+)=(.*)  # (\w+)$", stdout, re.M)
    }


def test_every_setting_is_shown_with_its_default():
    result = run_config()
    assert result.returncode == 0, result.stderr
    settings = shown(result.stdout)
    assert set(settings) == {ENV_PREFIX + name for name in SETTINGS}
    assert len(result.stdout.splitlines()) == len(SETTINGS)
    defaults = load_config({})
    for name in SETTINGS:
        value, source = settings[ENV_PREFIX + name]
        assert source == "default"
        if name not in SECRET_SETTINGS:
            assert value.lower() == str(defaults[name]).lower()


def test_the_environment_wins_and_secrets_show_only_whether_they_are_set():
    result = run_config(
        MAX_GROUPS="5",
        PUSH_USERNAME="jobs",
        PUSH_PASSWORD_HASH=HASH,
        DATABASE_URL="postgresql+psycopg://gateway:db-secret@db.internal/periskop",
        SCRUB_CARD_NUMBERS="no",
        SECRET_KEY="form-signing-key",
    )
    assert result.returncode == 0, result.stderr
    settings = shown(result.stdout)
    assert settings[ENV_PREFIX + "MAX_GROUPS"] == ("5", "environment")
    assert settings[ENV_PREFIX + "PUSH_PASSWORD_HASH"] == ("(set)", "environment")
    assert settings[ENV_PREFIX + "ADMIN_PASSWORD_HASH"] == ("(unset)", "default")
    assert settings[ENV_PREFIX + "SCRUB_CARD_NUMBERS"] == ("false", "environment")
    assert settings[ENV_PREFIX + "DATABASE_URL"] == (
        "postgresql+psycopg://gateway:***@db.internal/periskop",
        "environment",
    )
    assert settings[ENV_PREFIX + "SECRET_KEY"] == ("(set)", "environment")
    assert HASH not in result.stdout and "db-secret" not in result.stdout
    assert "form-signing-key" not in result.stdout


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"MAX_GROUPS": "0"}, "PERISKOP_PUSHGATEWAY_MAX_GROUPS: expected a positive"),
        (
            {"MAX_BODY_BYTES": "1" * 20},
            "PERISKOP_PUSHGATEWAY_MAX_BODY_BYTES: expected a positive whole number up to 268435456",
        ),
        ({"LOG_FORMAT": "xml"}, "PERISKOP_PUSHGATEWAY_LOG_FORMAT: expected text or json"),
        ({"LOG_LEVEL": "LOUD"}, "PERISKOP_PUSHGATEWAY_LOG_LEVEL: expected DEBUG"),
        ({"SQLITE_SYNCHRONOUS": "SOMETIMES"}, "PERISKOP_PUSHGATEWAY_SQLITE_SYNCHRONOUS"),
        ({"PUSH_USERNAME": "jobs", "PUSH_PASSWORD_HASH": "plain"}, "not a password hash"),
        ({"ADMIN_USERNAME": "root"}, "_USERNAME and _PASSWORD_HASH go together"),
        ({"DATABASE_URL": "sqlite://"}, "in-memory"),
        ({"DATABASE_URL": "not a url"}, "not a SQLAlchemy URL"),
    ],
)
def test_a_value_the_gateway_refuses_at_start_exits_1_saying_so(settings, message, monkeypatch):
    result = run_config(**settings)
    assert result.returncode == 1
    assert "the gateway would not start" in result.stderr
    assert message in result.stderr
    # The app refuses the same, with the same words.
    for name, value in settings.items():
        monkeypatch.setenv(ENV_PREFIX + name, value)
    with pytest.raises(ValueError, match=re.escape(message)):
        create_app()


def test_every_error_is_reported_in_one_run():
    result = run_config(
        MAX_GROUPS="0",
        PUSH_USERNAME="jobs",
        PUSH_PASSWORD_HASH="plain",
        ADMIN_USERNAME="root",
        SCRAPE_USERNAME="prometheus",
        SCRAPE_PASSWORD_HASH=HASH,
        DATABASE_URL="sqlite://",
    )
    assert result.returncode == 1
    errors = result.stderr.split("the gateway would not start:\n")[1].splitlines()
    assert len(errors) == 4, result.stderr
    for message in (
        "PERISKOP_PUSHGATEWAY_MAX_GROUPS: expected a positive",
        "PERISKOP_PUSHGATEWAY_PUSH_PASSWORD_HASH is not a password hash",
        "PERISKOP_PUSHGATEWAY_ADMIN_USERNAME and _PASSWORD_HASH go together",
        "in-memory",
    ):
        assert sum(message in line for line in errors) == 1, (message, errors)


def test_unknown_and_retired_variables_are_warned_of():
    result = run_config(MAX_GRUPS="5", CLIENT_COUNTER_TTL_SECONDS="60")
    assert result.returncode == 0
    assert "PERISKOP_PUSHGATEWAY_MAX_GRUPS is no setting" in result.stderr
    assert "PERISKOP_PUSHGATEWAY_CLIENT_COUNTER_TTL_SECONDS is set but no longer used" in (
        result.stderr
    )
