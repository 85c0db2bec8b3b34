"""The shipped Grafana dashboards and Prometheus files, read the way Grafana and Prometheus read them, and
their queries with template variables substituted the way Grafana's Prometheus datasource does."""

from __future__ import annotations

import ast
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "grafana"
PROMETHEUS = ROOT / "prometheus"
DASHBOARD_FILES = {name: GRAFANA / "dashboards" / f"{name}.json" for name in ("overview", "routes")}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

PROMETHEUS_BIN = shutil.which("prometheus")
PROMTOOL_BIN = shutil.which("promtool")
NO_PROMETHEUS = "Debian's prometheus package (prometheus, promtool) not installed; scripts/test installs it"

# Grafana's own variables that a query may use without declaring them.
BUILTIN_VARIABLES = {"__rate_interval", "__interval", "__interval_ms", "__range", "__range_s", "__range_ms",
                     "__dashboard", "__from", "__to", "__org", "__user"}
# $name, ${name}, ${name:format}, [[name]]
VARIABLE = re.compile(r"\$\{(\w+)(?::[\w]+)?\}|\$(\w+)|\[\[(\w+)(?::[\w]+)?\]\]")
LABEL_VALUES = re.compile(r"^label_values\((?:(?P<selector>.+),\s*)?(?P<label>\w+)\)$", re.DOTALL)
METRIC_NAME = re.compile(r"\b(?:gateway_\w+|up)\b")
LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def load(name: str) -> dict[str, Any]:
    return json.loads(DASHBOARD_FILES[name].read_text())


def dashboards() -> dict[str, dict[str, Any]]:
    return {name: load(name) for name in DASHBOARD_FILES}


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows included, and the panels inside collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def targets(dashboard: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield panel, target


def template_variables(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return dashboard.get("templating", {}).get("list", [])


def variable_query(variable: dict[str, Any]) -> str:
    query = variable.get("query", "")
    return query.get("query", "") if isinstance(query, dict) else query


def variables_used(text: str) -> set[str]:
    return {next(group for group in match.groups() if group) for match in VARIABLE.finditer(text)}


def substitute(text: str, values: dict[str, str]) -> str:
    """Replace every template variable; a variable without a value is an error."""
    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name not in values:
            raise KeyError(f"no value for ${name} in {text!r}")
        return values[name]
    return VARIABLE.sub(value, text)


def regex_value(value: str) -> str:
    """A multi-value variable's value as Grafana puts it in a Prometheus `=~` matcher: regex-escaped, with the
    backslashes doubled for the PromQL string literal."""
    return re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\\\1", value)


def metrics_in(expr: str) -> set[str]:
    return set(METRIC_NAME.findall(expr))


def _declarations() -> Iterator[tuple[str, str, list[str]]]:
    """(name as exposed (counters with `_total`), type, label names) of every metric declared in
    gateway/shared/metrics.py (the single place they are), read from its source."""
    tree = ast.parse((ROOT / "gateway" / "shared" / "metrics.py").read_text())
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in ("Counter", "Gauge", "Histogram", "Summary") and node.args
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            name = node.args[0].value
            if node.func.id == "Counter" and not name.endswith("_total"):
                name += "_total"
            labels = node.args[2] if len(node.args) > 2 else next(
                (k.value for k in node.keywords if k.arg == "labelnames"), None)
            yield name, node.func.id.lower(), list(ast.literal_eval(labels)) if labels is not None else []


def declared_metrics() -> dict[str, str]:
    """Every metric declared in gateway/shared/metrics.py: {name as exposed (counters with `_total`): type}."""
    return {name: kind for name, kind, _ in _declarations()}


def declared_labels() -> dict[str, list[str]]:
    """The label names of every metric declared in gateway/shared/metrics.py (what the code passes; multiprocess
    `liveall` gauges also get `pid` when exposed)."""
    return {name: labels for name, _, labels in _declarations()}


def exposed_names(declared: dict[str, str]) -> set[str]:
    """The sample names Prometheus stores for the declared metrics (histograms as _bucket, _sum, _count)."""
    names = set()
    for name, kind in declared.items():
        if kind in ("histogram", "summary"):
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        else:
            names.add(name)
    return names


def alert_names() -> list[str]:
    """The alerts of prometheus/alerts.yml (their expressions are read from Prometheus itself, in the live test)."""
    return re.findall(r"^\s*- alert: (\w+)\s*$", (PROMETHEUS / "alerts.yml").read_text(), re.MULTILINE)
