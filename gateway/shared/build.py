"""What this installation runs: the package version, and which data plane (`compiled` when Cython built the
per-frame modules, else `python`). Decided by where those modules are imported from, so it cannot disagree
with what runs."""

from __future__ import annotations

import importlib.machinery
import importlib.util
from importlib.metadata import PackageNotFoundError, version

# The per-frame modules setup.py compiles; the plane is compiled only when every one of them is.
DATA_PLANE_MODULES = (
    "gateway.core.call", "gateway.core.policing", "gateway.core.rtp", "gateway.core.codec",
    "gateway.core.return_path", "gateway.core.session", "gateway.dataplane.telemetry", "gateway.dataplane.media",
    "gateway.dataplane.datagrams",
)


def data_plane() -> str:
    for name in DATA_PLANE_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is None or not isinstance(spec.loader, importlib.machinery.ExtensionFileLoader):
            return "python"
    return "compiled"


def package_version() -> str:
    try:
        return version("sinch-stream-gateway")
    except PackageNotFoundError:
        return "unknown"
