"""Hypothesis profiles for the parser fuzz tests (docs/hostile-peers.md, "Fuzzing").

`ci` (the default): derandomized, so every run tries the same cases and a failure reproduces; no example
database. `explore`: random cases, failures kept in .hypothesis/ and printed as a reproduction blob. More cases:
GATEWAY_FUZZ_SCALE multiplies every test's budget, e.g.
`GATEWAY_FUZZ_PROFILE=explore GATEWAY_FUZZ_SCALE=20 .venv/bin/pytest tests/fuzz --hypothesis-show-statistics`.
"""

import os

from hypothesis import HealthCheck, settings

from tests.fuzz.strategies import CASES

COMMON = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}
settings.register_profile("ci", derandomize=True, database=None, **COMMON)
settings.register_profile("explore", print_blob=True, **COMMON)
settings.load_profile(os.environ.get("GATEWAY_FUZZ_PROFILE", "ci"))


def pytest_terminal_summary(terminalreporter) -> None:
    if CASES:
        per_test = ", ".join(f"{name} {count:,}" for name, count in CASES.items())
        terminalreporter.write_line(f"fuzz: {sum(CASES.values()):,} cases ({per_test})")
