"""Writes a report to a directory: report.json, the HdrHistogram logs, the PNG plots, report.md that shows them."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

from loadtest.report.hlog import write_hlogs
from loadtest.report.markdown import render
from loadtest.report.plots import write_plots

REPORT_JSON = "report.json"
REPORT_MD = "report.md"


def prepare_out_dir(out_dir: str | Path) -> Path:
    """The report's directory, made before a run so that one that cannot be made stops the run before it starts."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    return out


def write_outputs(report: dict[str, Any], out_dir: str | Path, plots: bool = True) -> Path:
    out = prepare_out_dir(out_dir)
    (out / REPORT_JSON).write_text(json.dumps(report, indent=1) + "\n")
    hlogs = write_hlogs(report, out) if _installed("hdrh", "HdrHistogram logs") else []
    pngs = write_plots(report, out) if plots and _installed("matplotlib", "PNG plots") else []
    (out / REPORT_MD).write_text(render(report, pngs, hlogs))
    return out


def _installed(module: str, what: str) -> bool:
    if importlib.util.find_spec(module) is None:
        print(f"loadtest: {module} is not installed (pip install '.[loadtest]'): no {what}", file=sys.stderr)
        return False
    return True


def read_report(path: str | Path) -> dict[str, Any]:
    """A report.json, given as the file or its directory."""
    path = Path(path)
    if path.is_dir():
        path = path / REPORT_JSON
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"{path}: not a report.json ({exc})") from None
