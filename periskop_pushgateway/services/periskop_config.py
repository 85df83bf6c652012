"""The Periskop server's `services:` configuration for this gateway: one service per group, as
the Periskop server scrapes each group as a target of its own."""

import re
from collections.abc import Iterable

import yaml

DEFAULT_SERVICE_NAME = "periskop-pushgateway"
# host:port as a Periskop (Prometheus) static target: a name, an IPv4 address or a bracketed
# IPv6 one, and a port.
_ADDRESS = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):[0-9]{1,5}")
# A Go duration, as the Periskop server parses refresh_interval: 30s, 1m30s, 500ms.
_DURATION = re.compile(r"(?:[0-9]+(?:\.[0-9]+)?(?:ns|us|µs|ms|s|m|h))+")


def export_path(group: str) -> str:
    return f"/services/{group}/-/errors" if group else "/-/errors"


def periskop_services(
    address: str,
    refresh_interval: str,
    groups: Iterable[str],
    default_name: str = DEFAULT_SERVICE_NAME,
) -> str:
    """The YAML text of a `services:` list: the default group as `default_name`, then each
    named group under its own name. Raises ValueError for an address, interval or name the
    Periskop server would not take."""
    if not _ADDRESS.fullmatch(address):
        raise ValueError(f"the address must be HOST:PORT, as Periskop's targets are: {address!r}")
    if not _DURATION.fullmatch(refresh_interval):
        raise ValueError(f"the refresh interval must be a duration like 30s: {refresh_interval!r}")
    named = sorted(group for group in groups if group)
    if default_name in named:
        raise ValueError(
            f"a group is named {default_name!r}, the default group's service name: "
            "choose another for the default group"
        )
    services = [
        {
            "name": group or default_name,
            "static_configs": [{"targets": [address]}],
            "scraper": {"endpoint": export_path(group), "refresh_interval": refresh_interval},
        }
        for group in ["", *named]
    ]
    return yaml.safe_dump({"services": services}, sort_keys=False, allow_unicode=True)
