"""One lock for every install path: requirements/lock.txt pins every dependency, agrees with
setup.cfg, and is what the README's commands, .ci/run and the Dockerfile install with."""

import configparser
import re
from importlib import metadata

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from .servers import REPO

LOCK = REPO / "requirements" / "lock.txt"


def locked():
    """{canonical name: version} of the lock's pins."""
    pins = re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", LOCK.read_text(), re.M)
    return {canonicalize_name(name): version for name, version in pins}


def declared():
    """setup.cfg's requirements: install_requires and every extra's."""
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    lines = setup["options"]["install_requires"].splitlines()
    for extra in setup["options.extras_require"].values():
        lines += extra.splitlines()
    return [Requirement(line) for line in lines if line.strip() and not line.startswith("#")]


def test_the_lock_pins_every_declared_dependency_within_its_bounds():
    pins = locked()
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not in {LOCK.name}: refresh the lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"{LOCK.name} pins {name}=={pins[name]}, outside setup.cfg's {requirement}: "
            "refresh the lock"
        )


def test_the_tests_run_on_exactly_the_locked_versions():
    differing = {}
    for name, version in locked().items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = None
        if installed != version:
            differing[name] = (version, installed)
    assert not differing, f"(locked, installed): {differing}"


@pytest.mark.parametrize(
    "path", ["README.md", ".ci/run", "Dockerfile"], ids=["readme", "ci", "dockerfile"]
)
def test_every_install_path_installs_with_the_lock(path):
    text = (REPO / path).read_text()
    installs = re.findall(r"pip install [^\n&]*", text)
    assert installs
    for command in installs:
        assert "-c requirements/lock.txt" in command, command
