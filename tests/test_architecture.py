"""The layers of docs/architecture.md (and loadtest/README.md) hold: import-linter checks the contracts in
pyproject.toml, and no two modules of the gateway or of its load harness import each other, directly or through
others."""

import grimp
from importlinter.cli import EXIT_STATUS_SUCCESS, lint_imports


def test_the_import_contracts_hold():
    assert lint_imports(no_cache=True, no_logo=True) == EXIT_STATUS_SUCCESS  # the broken contract is printed


def test_no_import_cycles():
    graph = grimp.build_graph("gateway", "loadtest", cache_dir=None)
    cycles = sorted(
        f"{importer} -> {imported} -> ... -> {importer}"
        for importer in graph.modules
        for imported in graph.find_modules_directly_imported_by(importer)
        if graph.find_shortest_chain(importer=imported, imported=importer)
    )
    assert not cycles, "\n".join(cycles)
