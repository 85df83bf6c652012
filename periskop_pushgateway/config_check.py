"""The checks of the settings that the gateway makes at start, beyond parsing each one, and
the `config` command's report of the settings in force."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .config import ENV_PREFIX, RETIRED, SECRET_SETTINGS, SETTINGS
from .storage.engines import database_url
from .web.auth import ROLE_OF_BLUEPRINT, credentials_from_config

_ROLES = sorted(set(ROLE_OF_BLUEPRINT.values()))


def _role_settings(role: str) -> tuple[str, str]:
    return f"{role}_USERNAME", f"{role}_PASSWORD_HASH"


def _credentials_check(role: str) -> Callable[[Mapping[str, Any]], None]:
    """The check of one role's credentials alone, so that each role's error is found."""

    def check(config: Mapping[str, Any]) -> None:
        only_this_role = {name: "" for other in _ROLES for name in _role_settings(other)}
        only_this_role.update({name: config[name] for name in _role_settings(role)})
        credentials_from_config(only_this_role)

    return check


# Each check beyond parsing: the settings it reads, and the check (ValueError when refused;
# what it returns is unused).
_CHECKS: list[tuple[tuple[str, ...], Callable[[Mapping[str, Any]], object]]] = [
    *((_role_settings(role), _credentials_check(role)) for role in _ROLES),
    (("DATABASE_URL",), lambda config: database_url(config["DATABASE_URL"])),
    (("MAX_DATABASE_BYTES", "SQLITE_WAL_LIMIT_BYTES"), lambda config: _room_for_data(config)),
]

# What MAX_DATABASE_BYTES must leave for the database beside the WAL's limit.
MIN_DATA_BYTES = 8 * 1024 * 1024


def _room_for_data(config: Mapping[str, Any]) -> None:
    room = config["MAX_DATABASE_BYTES"] - config["SQLITE_WAL_LIMIT_BYTES"]
    if room < MIN_DATA_BYTES:
        raise ValueError(
            "PERISKOP_PUSHGATEWAY_MAX_DATABASE_BYTES must exceed "
            f"PERISKOP_PUSHGATEWAY_SQLITE_WAL_LIMIT_BYTES by at least {MIN_DATA_BYTES} "
            f"(8 MiB for the database itself; the WAL's limit is inside the budget), got "
            f"{config['MAX_DATABASE_BYTES']} and {config['SQLITE_WAL_LIMIT_BYTES']}"
        )


def config_errors(config: Mapping[str, Any]) -> list[str]:
    """What the gateway refuses in settings that parse one by one: credentials without their
    hash or with a plain-text password, a database URL it cannot use. Each check runs when
    the settings it reads are in config (parsed), so every error is found in one go."""
    errors = []
    for names, check in _CHECKS:
        if all(name in config for name in names):
            try:
                check(config)
            except ValueError as error:
                errors.append(str(error))
    return errors


def check_config(config: Mapping[str, Any]) -> None:
    """Raise ValueError naming every error config_errors finds."""
    errors = config_errors(config)
    if errors:
        raise ValueError("; ".join(errors))


@dataclass(frozen=True)
class ShownSetting:
    variable: str
    shown: str  # the value, or for a secret only whether it is set
    source: str  # "default" or "environment"


def effective_settings(environ: Mapping[str, str]) -> tuple[list[ShownSetting], list[str]]:
    """([ShownSetting], [error]) for every setting: what is in force and where it came from,
    and what the gateway would refuse at start."""
    shown, errors = [], []
    parsed = {}
    for name, (default, parse, _description) in SETTINGS.items():
        variable = ENV_PREFIX + name
        raw = environ.get(variable)
        source = "environment" if raw else "default"
        try:
            value = parse(raw) if raw else default
        except ValueError as error:
            errors.append(f"{variable}: {error}")
            shown.append(ShownSetting(variable, "(invalid)", source))
            continue
        parsed[name] = value
        shown.append(ShownSetting(variable, _shown(name, value), source))
    # The checks whose settings parsed, even when others did not.
    errors.extend(config_errors(parsed))
    return shown, errors


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """PERISKOP_PUSHGATEWAY_* variables that are no setting (a typo, say): the gateway
    ignores them."""
    known = {ENV_PREFIX + name for name in (*SETTINGS, *RETIRED)}
    return sorted(v for v in environ if v.startswith(ENV_PREFIX) and v not in known)


def _shown(name: str, value: Any) -> str:
    if name in SECRET_SETTINGS:
        return "(set)" if value else "(unset)"
    if name == "DATABASE_URL":
        try:
            return database_url(value).render_as_string(hide_password=True)
        except ValueError:
            return "(invalid)"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)
