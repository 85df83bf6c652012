"""The Dockerfile agrees with the gateway: its port, health check, volume and command
(tests/test_container.py builds and runs it where podman is installed)."""

import json
import re
from urllib.parse import urlsplit

from periskop_pushgateway.server.gunicorn_settings import DEFAULT_BIND

from .servers import REPO

DOCKERFILE = REPO / "Dockerfile"


def instructions():
    """(INSTRUCTION, arguments) for each instruction, continuation lines joined."""
    lines = [
        line for line in DOCKERFILE.read_text().splitlines() if not line.lstrip().startswith("#")
    ]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    return [tuple(line.split(None, 1)) for line in joined.splitlines() if line.strip()]


def instruction(name):
    found = [arguments for keyword, arguments in instructions() if keyword == name]
    assert len(found) == 1, f"{name}: {found}"
    return found[0]


def final_env():
    """The ENV settings of the final stage."""
    return dict(re.findall(r"(\w+)=(\S+)", instruction("ENV")))


def image_user():
    return int(instruction("USER").split(":")[0])


def gateway_port():
    return int(DEFAULT_BIND.rsplit(":", 1)[1])


def test_the_image_serves_the_gateway_with_its_own_command_on_its_port():
    assert json.loads(instruction("CMD")) == ["periskop-pushgateway", "serve"]  # exec form
    assert instruction("EXPOSE") == str(gateway_port())


def test_the_healthcheck_asks_the_liveness_endpoint_on_the_gateway_port(client):
    url = re.search(r"'(http://[^']+)'", instruction("HEALTHCHECK")).group(1)
    assert urlsplit(url).port == gateway_port()
    assert urlsplit(url).path == "/-/healthy"
    assert client.get(urlsplit(url).path).status_code == 200


def test_the_database_is_on_the_volume_and_the_user_is_not_root():
    database = final_env()["PERISKOP_PUSHGATEWAY_DATABASE_URL"].removeprefix("sqlite:///")
    assert database.rsplit("/", 1)[0] == instruction("VOLUME")
    assert image_user() != 0


def test_the_dockerfile_names_no_package_index():
    # Where pip finds packages is the builder's configuration (pip.conf, PIP_INDEX_URL).
    assert not re.search(r"index-url|find-links|pypi|pythonhosted", DOCKERFILE.read_text(), re.I)
