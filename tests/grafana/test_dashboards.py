"""The shipped monitoring files, checked without a server: the Grafana dashboard model, provisioning and
docker-compose wiring, and the Prometheus config and alerting rules through promtool (check and unit tests).
The queries themselves run against a live gateway in test_live_prometheus.py."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from tests.grafana.dashboards import (
    BUILTIN_VARIABLES,
    DASHBOARD_FILES,
    DATASOURCE,
    GRAFANA,
    LABEL_VALUES,
    NO_PROMETHEUS,
    PROMETHEUS,
    PROMTOOL_BIN,
    ROOT,
    alert_names,
    dashboards,
    declared_labels,
    declared_metrics,
    exposed_names,
    metrics_in,
    panels,
    targets,
    template_variables,
    variable_query,
    variables_used,
)
from tests.markdown import anchors

# Declared in gateway/shared/metrics.py but on no dashboard yet (none now): a metric being built may wait here
# until it lands; it then needs a panel, and the live test an event that moves it.
PENDING_METRICS: set[str] = set()
PANEL_TYPES = {"row", "timeseries", "stat"}
needs_promtool = pytest.mark.skipif(PROMTOOL_BIN is None, reason=NO_PROMETHEUS)


@pytest.fixture(scope="module")
def boards() -> dict:
    return dashboards()


# ---- the Grafana dashboard model ---------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(DASHBOARD_FILES))
def test_dashboard_model(boards, name):
    board = boards[name]
    assert isinstance(board["schemaVersion"], int) and board["schemaVersion"] >= 36  # datasource refs by uid
    assert board["uid"] and len(board["uid"]) <= 40
    assert board["title"]
    assert board.get("id") is None  # provisioned: Grafana assigns the database id
    assert "sinch-stream-gateway" in board["tags"]  # the dashboard links find each other by this tag
    ids = [panel["id"] for panel in panels(board)]
    assert all(isinstance(i, int) for i in ids)
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {name}: {sorted(ids)}"
    for panel in panels(board):
        assert panel["type"] in PANEL_TYPES, panel["title"]
        assert panel.get("title"), panel["id"]
        grid = panel["gridPos"]
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] >= 0 and grid["y"] >= 0
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            assert not panel.get("targets")
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            assert target["expr"].strip(), panel["title"]
            assert "vector(" not in target["expr"], f"{panel['title']}: a made-up series is no data"


@pytest.mark.parametrize("name", sorted(DASHBOARD_FILES))
def test_panels_do_not_overlap(boards, name):
    taken: dict[tuple[int, int], str] = {}
    for panel in panels(boards[name]):
        grid = panel["gridPos"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in taken, f"{panel['title']!r} overlaps {taken[(x, y)]!r}"
                taken[(x, y)] = panel["title"]


@pytest.mark.parametrize("name", sorted(DASHBOARD_FILES))
def test_template_variables(boards, name):
    board = boards[name]
    variables = template_variables(board)
    names = [variable["name"] for variable in variables]
    assert len(names) == len(set(names))
    datasource = variables[0]
    assert (datasource["name"], datasource["type"], datasource["query"]) == ("datasource", "datasource", "prometheus")
    # The monitoring mixins' selectors: cluster, then job, then the instances of that job.
    assert [name for name in names if name in ("cluster", "job", "instance")] == ["cluster", "job", "instance"]
    defined: set[str] = set()
    for variable in variables:
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE, variable["name"]
            query = variable_query(variable)
            assert LABEL_VALUES.match(query), f"${variable['name']}: {query!r}"
            assert variable.get("definition", query) == query
            # Grafana resolves variables in order: a query may use only the ones before it.
            assert variables_used(query) <= defined | BUILTIN_VARIABLES, variable["name"]
            assert variable["refresh"] in (1, 2)  # on load / on time range change: new instances show up
        defined.add(variable["name"])
    used = set()
    for panel in panels(board):
        used |= variables_used(panel.get("title", ""))
        if panel.get("repeat"):
            repeated = next(v for v in variables if v["name"] == panel["repeat"])
            assert repeated["multi"] or repeated["includeAll"]
            used.add(panel["repeat"])
    for _, target in targets(board):
        used |= variables_used(target["expr"])
    undefined = used - defined - BUILTIN_VARIABLES
    assert not undefined, f"{name} uses undefined variables {undefined}"
    assert set(names) - {"datasource"} <= used, "a variable that no panel uses"


def test_cluster_job_instance_and_route_variables(boards):
    selector = 'cluster=~"$cluster", job=~"$job", instance=~"$instance"'  # multi-value: regex matchers
    for board in boards.values():
        for _, target in targets(board):
            selectors = re.findall(r"\b(?:gateway_\w+|up)\{([^}]*)\}", target["expr"])
            assert selectors and all(found.startswith(selector) for found in selectors), target["expr"]
        variables = {variable["name"]: variable for variable in template_variables(board)}
        for name in ("cluster", "job"):  # All: any value, and none (a Prometheus without a cluster label)
            assert variables[name]["includeAll"] and variables[name]["allValue"] == ".*", name
        assert '{cluster=~"$cluster", job=~"$job"}' in variable_query(variables["instance"])
    route_targets = [target for _, target in targets(boards["routes"])]
    assert all('route=~"$route"' in target["expr"] for target in route_targets)
    route = next(v for v in template_variables(boards["routes"]) if v["name"] == "route")
    assert selector in variable_query(route)


def test_every_dashboard_metric_is_declared_by_the_gateway(boards):
    """A metric renamed in gateway/shared/metrics.py must not leave a panel behind showing "No data"."""
    declared = exposed_names(declared_metrics()) | {"up"}
    for name, board in boards.items():
        for panel, target in targets(board):
            unknown = metrics_in(target["expr"]) - declared
            assert not unknown, f"{name} / {panel['title']}: {unknown} not declared in gateway/shared/metrics.py"
        for variable in template_variables(board):
            if variable["type"] == "query":
                assert metrics_in(variable_query(variable)) <= declared, variable["name"]


def test_every_gateway_metric_is_on_a_dashboard(boards):
    used = set()
    for board in boards.values():
        for _, target in targets(board):
            used |= metrics_in(target["expr"])
    declared = declared_metrics()
    missing = []
    for name, kind in declared.items():
        names = {f"{name}_bucket", f"{name}_sum", f"{name}_count"} if kind == "histogram" else {name}
        if not names & used and name not in PENDING_METRICS:
            missing.append(name)
    assert not missing, f"metrics no dashboard shows: {missing}"
    assert not PENDING_METRICS - set(declared), "a pending metric was renamed or removed: update PENDING_METRICS"


def test_every_metric_with_a_route_label_is_on_the_routes_dashboard(boards):
    """What the gateway counts per route (downstream media service) is shown per route."""
    used = set()
    for _, target in targets(boards["routes"]):
        used |= metrics_in(target["expr"])
    per_route = [name for name, labels in declared_labels().items()
                 if "route" in labels and name not in PENDING_METRICS]
    kinds = declared_metrics()
    assert len(per_route) >= 12
    missing = [name for name in per_route if name not in PENDING_METRICS
               and not ({name, f"{name}_bucket", f"{name}_count"} if kinds[name] == "histogram" else {name}) & used]
    assert not missing, f"per-route metrics not on the routes dashboard: {missing}"


# ---- Prometheus: promtool ----------------------------------------------------------------------------


def promtool(*args: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PROMTOOL_BIN, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


@needs_promtool
def test_promtool_check_config():
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout + result.stderr


@needs_promtool
def test_promtool_check_rules():
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(alert_names())} rules found" in result.stdout + result.stderr


@needs_promtool
def test_promtool_unit_tests_of_the_alerts(tmp_path):
    result = promtool("test", "rules", str(PROMETHEUS / "alerts_test.yml"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_unit_tested_and_has_a_runbook():
    tested = set(re.findall(r"alertname: (\w+)", (PROMETHEUS / "alerts_test.yml").read_text()))
    names = alert_names()
    assert len(names) == len(set(names)) >= 6
    for name in names:
        assert name in tested, f"{name} has no case in prometheus/alerts_test.yml"


def test_every_alert_has_a_for_duration_and_a_runbook_url_into_the_docs():
    """Issue 14.11: a condition must hold for a while before it pages anyone, and every alert links to what to
    do about it: its own section of docs/metrics.md."""
    yaml = pytest.importorskip("yaml", reason="PyYAML is needed to read the alerting rules")
    rules = [rule for group in yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())["groups"]
             for rule in group["rules"]]
    runbooks = anchors(ROOT / "docs" / "metrics.md")
    assert [rule["alert"] for rule in rules] == alert_names()
    for rule in rules:
        name = rule["alert"]
        assert re.fullmatch(r"\d+[smh]", rule.get("for", "")), f"{name} has no `for:` duration"
        assert rule["annotations"]["runbook_url"] == f"docs/metrics.md#{name.lower()}", name
        assert name.lower() in runbooks, f"{name}: no runbook section `### {name}` in docs/metrics.md"


# ---- provisioning, docker compose, Dockerfile --------------------------------------------------------


@pytest.fixture(scope="module")
def yaml_files() -> dict:
    yaml = pytest.importorskip("yaml", reason="PyYAML is needed to read the compose and provisioning files")
    files = {
        "compose": ROOT / "docker-compose.yml",
        "datasources": GRAFANA / "provisioning" / "datasources" / "prometheus.yml",
        "providers": GRAFANA / "provisioning" / "dashboards" / "gateway.yml",
        "prometheus": PROMETHEUS / "prometheus.yml",
    }
    return {key: yaml.safe_load(path.read_text()) for key, path in files.items()}


def bind_mounts(service: dict) -> dict[str, Path]:
    """{container path: host path} of a compose service's bind mounts (named volumes left out)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith((".", "/")):
            mounts[target] = (ROOT / source).resolve()
    return mounts


def test_compose_services_reference_files_that_exist(yaml_files):
    compose = yaml_files["compose"]
    services = compose["services"]
    assert set(services) == {"gateway", "prometheus", "grafana"}
    for name, service in services.items():
        for container_path, host_path in bind_mounts(service).items():
            assert host_path.exists(), f"{name}: {host_path} (mounted at {container_path}) does not exist"
        named = [v.split(":")[0] for v in service.get("volumes", []) if not v.startswith((".", "/"))]
        assert set(named) <= set(compose.get("volumes", {})), name
        assert set(service.get("depends_on", [])) <= set(services)
    assert (ROOT / services["gateway"]["build"] / "Dockerfile").is_file()
    prometheus_mounts = bind_mounts(services["prometheus"])
    config = next(a for a in services["prometheus"]["command"] if a.startswith("--config.file="))
    config_path = config.partition("=")[2]
    mount = next(target for target in prometheus_mounts if config_path.startswith(target + "/"))
    assert (prometheus_mounts[mount] / config_path[len(mount) + 1:]).resolve() == PROMETHEUS / "prometheus.yml"


def test_compose_wiring_matches_prometheus_and_grafana_config(yaml_files):
    from gateway.shared.config import Config

    services = yaml_files["compose"]["services"]
    defaults = Config()
    metrics_port = defaults.metrics_listen.rpartition(":")[2]
    listening = {getattr(defaults, key).rpartition(":")[2] for key in dir(defaults)
                 if key == "listen" or (key.endswith("_listen") and isinstance(getattr(defaults, key), str))}
    published = {port.split(":")[1] for port in services["gateway"]["ports"]}
    assert metrics_port in listening
    assert listening <= published, "a port the gateway listens on is not published"

    scrape = yaml_files["prometheus"]["scrape_configs"]
    assert [job["job_name"] for job in scrape] == ["gateway"]  # the alert rules select job="gateway"
    targets_ = [t for job in scrape for group in job["static_configs"] for t in group["targets"]]
    assert targets_ == [f"gateway:{metrics_port}"]
    assert all((PROMETHEUS / rule_file).is_file() for rule_file in yaml_files["prometheus"]["rule_files"])

    datasources = yaml_files["datasources"]["datasources"]
    assert yaml_files["datasources"]["apiVersion"] == 1
    (datasource,) = datasources
    assert datasource["type"] == "prometheus" and datasource["isDefault"]
    assert datasource["url"] == f"http://prometheus:{services['prometheus']['ports'][0].split(':')[1]}"
    assert datasource["jsonData"]["timeInterval"] == yaml_files["prometheus"]["global"]["scrape_interval"]

    grafana = services["grafana"]
    mounts = bind_mounts(grafana)
    assert mounts["/etc/grafana/provisioning/datasources"] == GRAFANA / "provisioning" / "datasources"
    assert mounts["/etc/grafana/provisioning/dashboards"] == GRAFANA / "provisioning" / "dashboards"
    (provider,) = yaml_files["providers"]["providers"]
    assert yaml_files["providers"]["apiVersion"] == 1 and provider["type"] == "file"
    assert mounts[provider["options"]["path"]] == GRAFANA / "dashboards"
    home = Path(grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert mounts[str(home.parent)] / home.name == DASHBOARD_FILES["overview"]


def test_dockerfile_builds_from_files_that_exist():
    """A builder stage with a C compiler builds the package's wheel (the compiled data plane); the image, from
    the same base, installs that wheel and carries no compiler."""
    lines = [line.split() for line in (ROOT / "Dockerfile").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    stages = [words for words in lines if words[0] == "FROM"]
    base = "python:3.11.11-slim-bookworm"  # pinned: a Python release and a Debian release
    assert stages == [["FROM", base, "AS", "build"], ["FROM", base]]
    build = lines[:lines.index(stages[1])]
    assert any(words[0] == "RUN" and "gcc" in words for words in build)
    assert ["RUN", "pip", "wheel", "--no-cache-dir", "--wheel-dir", "/wheels", "."] in build
    for words in lines:
        if words[0] == "COPY" and not words[1].startswith("--from"):
            for source in words[1:-1]:
                assert (ROOT / source).exists(), source
    assert any(words[:4] == ["RUN", "pip", "install", "--no-cache-dir"] and "/wheels/*.whl" in words
               for words in lines[lines.index(stages[1]):])
    entrypoint = next(words for words in lines if words[0] == "ENTRYPOINT")
    assert " ".join(entrypoint[1:]) == '["gateway", "serve"]'
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "gateway" in scripts
