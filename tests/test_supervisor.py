import subprocess
import sys


def test_supervisor_imports_nothing_of_the_media_path():
    """Forked children must not inherit loops, threads or media state from the supervisor (design notes)."""
    code = (
        "import sys, gateway.cli, gateway.supervisor\n"
        "heavy = ('picows', 'numpy', 'uvloop', 'aiohttp', 'gateway.session', 'gateway.worker')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert result.stdout.strip() == "[]"
