"""Builds the compiled data plane: the per-frame modules, compiled by Cython from their own .py source (pure
Python mode, typed by the .pxd beside each). The same files run uncompiled as the Python data plane, which a
machine without a C compiler gets (with a warning at start), and which GATEWAY_NO_EXTENSIONS=1 selects.

`pip install .` builds it; scripts/bootstrap also runs `python setup.py build_ext --inplace`, which rebuilds only
what changed, so a checkout never runs a stale extension beside newer source.
"""

import os
import sys

from setuptools import setup
from setuptools.command.build_ext import build_ext

COMPILED_MODULES = [
    "gateway/core/call.py",
    "gateway/core/policing.py",
    "gateway/core/rtp.py",
    "gateway/core/codec.py",
    "gateway/core/return_path.py",
    "gateway/core/session.py",
    "gateway/dataplane/telemetry.py",
    "gateway/dataplane/media.py",
    "gateway/dataplane/datagrams.py",
]


class OptionalBuildExt(build_ext):
    """A failed compile leaves the Python data plane, never a failed install (as aiohttp and uvloop's users
    expect); the gateway says which plane runs at start, and the test suite fails if it is not the compiled one."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:
            print(f"WARNING: the compiled data plane was not built ({exc}); the Python one will run", file=sys.stderr)

    def build_extension(self, ext) -> None:  # noqa: ANN001 - setuptools' own signature
        try:
            super().build_extension(ext)
        except Exception as exc:
            print(f"WARNING: {ext.name} was not compiled ({exc}); it runs as Python", file=sys.stderr)


def extensions() -> list:
    if os.environ.get("GATEWAY_NO_EXTENSIONS"):
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        print("WARNING: Cython is missing: the Python data plane will run", file=sys.stderr)
        return []
    return cythonize(COMPILED_MODULES, language_level=3, quiet=True,
                     compiler_directives={"annotation_typing": False})


setup(ext_modules=extensions(), cmdclass={"build_ext": OptionalBuildExt})
