"""The data plane that runs is the one asked for: compiled unless GATEWAY_NO_EXTENSIONS=1 (CI fails here if the
compiled plane silently did not build), and never an extension older than the source it was built from."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from gateway.shared.build import DATA_PLANE_MODULES, data_plane

NO_EXTENSIONS = bool(os.environ.get("GATEWAY_NO_EXTENSIONS"))


def test_the_plane_asked_for_runs():
    assert data_plane() == ("python" if NO_EXTENSIONS else "compiled")
    for name in DATA_PLANE_MODULES:
        origin = importlib.util.find_spec(name).origin
        assert origin.endswith(".py") == NO_EXTENSIONS, origin


def test_no_extension_is_older_than_its_source():
    """A stale extension would run old code beside newer source: scripts/bootstrap rebuilds what changed."""
    for name in DATA_PLANE_MODULES:
        source = Path(importlib.util.find_spec(name).origin).with_suffix("")
        for extension in source.parent.glob(source.name + ".*.so"):
            newest = max(path.stat().st_mtime for path in (source.with_suffix(".py"), source.with_suffix(".pxd"))
                         if path.exists())
            assert extension.stat().st_mtime >= newest, f"{extension} is older than its source: run scripts/bootstrap"


def test_no_extensions_selects_the_python_plane_even_beside_built_extensions():
    code = ("from gateway.shared.build import data_plane; import gateway.dataplane.media as media; "
            "print(data_plane(), media.__file__)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60,
                            env={**os.environ, "GATEWAY_NO_EXTENSIONS": "1"})
    plane, origin = result.stdout.split()
    assert plane == "python" and origin.endswith("media.py")
