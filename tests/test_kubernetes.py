"""The Kubernetes manifests agree with the gateway: the endpoints their probes ask, the port,
the settings they set, where the database lives, the user. They are parsed, not applied: no
cluster runs them here."""

from pathlib import Path

import pytest
import yaml

from periskop_pushgateway.cli import serve
from periskop_pushgateway.config import ENV_PREFIX, SETTINGS, load_config
from periskop_pushgateway.server.gunicorn_settings import DEFAULT_TIMEOUT

from .servers import REPO
from .test_dockerfile import gateway_port, image_user

MANIFESTS = REPO / "deploy" / "kubernetes"
VARIANTS = ["postgresql", "sqlite"]
WORKLOAD_KINDS = {"sqlite": "StatefulSet", "postgresql": "Deployment"}
PROBES = {"startupProbe": "/-/healthy", "livenessProbe": "/-/healthy", "readinessProbe": "/-/ready"}


def documents(variant):
    return [
        document
        for path in sorted((MANIFESTS / variant).glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]


def only(variant, kind):
    found = [d for d in documents(variant) if d["kind"] == kind]
    assert len(found) == 1, f"{variant}: {len(found)} {kind}"
    return found[0]


def workload(variant):
    return only(variant, WORKLOAD_KINDS[variant])


def gateway_container(variant):
    (container,) = workload(variant)["spec"]["template"]["spec"]["containers"]
    return container


def environment(variant):
    """Every variable the container gets: its env, and the keys of the Secrets it takes whole."""
    container = gateway_container(variant)
    values = {item["name"]: item["value"] for item in container.get("env", [])}
    secrets = {
        d["metadata"]["name"]: d["stringData"] for d in documents(variant) if d["kind"] == "Secret"
    }
    for source in container.get("envFrom", []):
        values.update(secrets[source["secretRef"]["name"]])
    return values


def test_both_variants_and_nothing_else():
    assert sorted(path.name for path in MANIFESTS.iterdir()) == VARIANTS
    for variant in VARIANTS:
        kinds = sorted(d["kind"] for d in documents(variant))
        assert kinds == sorted(["Secret", "Service", WORKLOAD_KINDS[variant]])
        assert all(d["apiVersion"] and d["metadata"]["name"] for d in documents(variant))


@pytest.mark.parametrize("variant", VARIANTS)
def test_probes_ask_the_endpoints_the_gateway_serves(variant, client):
    container = gateway_container(variant)
    assert {port["name"]: port["containerPort"] for port in container["ports"]} == {
        "http": gateway_port()
    }
    for probe, path in PROBES.items():
        assert container[probe]["httpGet"] == {"path": path, "port": "http"}, probe
        assert client.get(path).status_code == 200, path


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_service_sends_to_the_gateway_port(variant):
    service, spec = only(variant, "Service"), workload(variant)["spec"]
    labels = spec["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [
        (gateway_port(), "http")
    ]


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_variable_is_a_setting_the_gateway_reads(variant):
    settings = environment(variant)
    assert {name.removeprefix(ENV_PREFIX) for name in settings} <= SETTINGS.keys()
    assert all(name.startswith(ENV_PREFIX) for name in settings)
    load_config(settings)  # each value parses


def test_sqlite_keeps_its_one_database_on_the_volume_claim():
    spec = workload("sqlite")["spec"]
    url = environment("sqlite")[ENV_PREFIX + "DATABASE_URL"]
    mounts = {m["mountPath"]: m["name"] for m in gateway_container("sqlite")["volumeMounts"]}
    claims = [claim["metadata"]["name"] for claim in spec["volumeClaimTemplates"]]
    assert spec["replicas"] == 1
    assert url.startswith("sqlite:////")
    assert mounts[str(Path(url.removeprefix("sqlite:///")).parent)] in claims
    assert spec["serviceName"] == only("sqlite", "Service")["metadata"]["name"]


def test_postgresql_runs_several_replicas_on_the_database_from_the_secret():
    spec = workload("postgresql")["spec"]
    assert spec["replicas"] > 1
    assert ENV_PREFIX + "DATABASE_URL" not in {
        item["name"] for item in gateway_container("postgresql").get("env", [])
    }
    assert environment("postgresql")[ENV_PREFIX + "DATABASE_URL"].startswith("postgresql+psycopg:")


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_pod_runs_the_image_user_and_stops_within_its_grace_period(variant):
    pod = workload(variant)["spec"]["template"]["spec"]
    container = gateway_container(variant)
    assert pod["securityContext"]["runAsUser"] == image_user()
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    # The command is the CLI's own, and its options are ones it takes.
    assert container["args"][:2] == ["periskop-pushgateway", "serve"]
    serve.make_context("serve", container["args"][2:])
    pause = container.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    assert pod["terminationGracePeriodSeconds"] > pause + DEFAULT_TIMEOUT


@pytest.mark.parametrize("variant", VARIANTS)
def test_what_the_gateway_writes_is_on_a_volume_with_room_for_it(variant):
    # The root file system is read-only: the temporary directory (gunicorn's heartbeats, the
    # metrics files) and the rendered exports need volumes, the exports one that holds their
    # bound (an emptyDir past its sizeLimit gets the pod evicted).
    settings = load_config(environment(variant))
    mounts = {m["mountPath"]: m["name"] for m in gateway_container(variant)["volumeMounts"]}
    volumes = {v["name"]: v for v in workload(variant)["spec"]["template"]["spec"]["volumes"]}
    assert "/tmp" in mounts
    exports = volumes[mounts[settings["EXPORT_CACHE_DIR"]]]
    assert "medium" not in exports["emptyDir"]  # on disk: memory-backed counts as memory
    assert size_in_bytes(exports["emptyDir"]["sizeLimit"]) > settings["EXPORT_CACHE_BYTES"]


def size_in_bytes(quantity):
    """A Kubernetes quantity in binary units ("256Mi")."""
    number, unit = quantity[:-2], quantity[-2:]
    return int(number) * 1024 ** {"Ki": 1, "Mi": 2, "Gi": 3}[unit]
