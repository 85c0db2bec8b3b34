"""The documentation holds together: README.md and docs/*.md link only to files and headings that exist, the
configuration reference is the one the config definition makes today, and every metric is explained."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.core.rtp import build_app
from gateway.shared.config_reference import REFERENCE, with_table
from tests.grafana.dashboards import declared_metrics
from tests.markdown import anchors, relative_links

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", ROOT / "grafana" / "README.md", *(ROOT / "docs").glob("*.md")])


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_relative_links_point_at_files_and_headings_that_exist(page):
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no heading #{anchor} in {linked.relative_to(ROOT)}")
    assert not broken, "\n".join(broken)


def test_the_pages_link_to_each_other():
    """Every page of docs/ is reachable from the README."""
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in relative_links(ROOT / "README.md")}
    assert set((ROOT / "docs").glob("*.md")) <= linked


def test_the_configuration_reference_is_current():
    """docs/configuration.md's table is made from gateway/shared/config.py; after changing a key, run
    `python -m gateway.shared.config_reference`."""
    text = REFERENCE.read_text()
    assert with_table(text) == text, "docs/configuration.md is stale: run python -m gateway.shared.config_reference"


def test_every_metric_is_explained():
    text = (ROOT / "docs" / "metrics.md").read_text()
    missing = [name for name in declared_metrics() if f"`{name}`" not in text]
    assert not missing, f"metrics not in the table of docs/metrics.md: {missing}"


def test_the_rtcp_app_worked_example_is_what_the_gateway_builds():
    """docs/protocol.md's CLER and MARK bytes, against gateway.core.rtp.build_app (the gateway's own MARK has
    the call's SSRC in place of the example's)."""
    lines = {line.split("  ")[0]: line for line in (ROOT / "docs" / "protocol.md").read_text().splitlines()}
    mark = (7).to_bytes(4, "big") + (48160).to_bytes(4, "big")
    expected = {
        "MARK from the media service": build_app(0x01020304, b"MARK", mark),
        "MARK from the gateway": build_app(0x01020304, b"MARK", mark, subtype=1),
        "CLER at that timestamp": build_app(0x01020304, b"CLER", (48160).to_bytes(4, "big")),
        "CLER without a timestamp": build_app(0x01020304, b"CLER"),
    }
    for label, packet in expected.items():
        documented = lines[label][len(label):].replace("<call SSRC>", "01 02 03 04").split()
        assert bytes.fromhex("".join(documented)) == packet, label
