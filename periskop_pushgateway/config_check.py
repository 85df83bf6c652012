"""The checks of the settings that the gateway makes at start, beyond parsing each one, and
the `config` command's report of the settings in force."""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .config import ENV_PREFIX, RETIRED, SECRET_SETTINGS, SETTINGS, load_config
from .storage.engines import database_url
from .web.auth import credentials_from_config


def check_config(config: Mapping[str, Any]) -> None:
    """Raise ValueError for settings that parse one by one but that the gateway refuses:
    credentials without their hash or with a plain-text password, a database URL it cannot
    use."""
    credentials_from_config(config)
    database_url(config["DATABASE_URL"])


@dataclass(frozen=True)
class ShownSetting:
    variable: str
    shown: str  # the value, or for a secret only whether it is set
    source: str  # "default" or "environment"


def effective_settings(environ: Mapping[str, str]) -> tuple[list[ShownSetting], list[str]]:
    """([ShownSetting], [error]) for every setting: what is in force and where it came from,
    and what the gateway would refuse at start."""
    shown, errors = [], []
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
        shown.append(ShownSetting(variable, _shown(name, value), source))
    if not errors:
        try:
            check_config(load_config(environ))
        except ValueError as error:
            errors.append(str(error))
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
