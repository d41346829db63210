"""The import graph: no module of Engram imports itself back, directly or through others, and the
`engram` command's client verbs start without the server's libraries."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("api", "worker", "shared", "cli", "engram_client")
# What the API, the workers and the migrations need, and a client verb must not load.
SERVER_LIBRARIES = ("celery", "kombu", "sqlalchemy", "alembic", "fastapi", "starlette", "uvicorn", "psycopg", "redis",
                    "shared", "api", "worker")


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Each cycle once, as the chain of modules from its smallest member back to it."""
    found: dict[frozenset[str], list[str]] = {}
    for module in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back is None:
                continue
            cycle = [module, *back]
            key = frozenset(cycle)
            if key not in found or len(cycle) < len(found[key]):
                found[key] = cycle
    return sorted(found.values())


def test_no_import_cycles() -> None:
    # Imports under `if TYPE_CHECKING:` and inside functions count too: a cycle hidden there is
    # still two modules that cannot be understood (or changed) one without the other.
    graph = grimp.build_graph(*PACKAGES, exclude_type_checking_imports=False, cache_dir=None)
    cycles = _cycles(graph)
    assert cycles == [], "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_client_imports_nothing_of_the_server() -> None:
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    for server in ("api", "worker", "shared", "cli"):
        chain = graph.find_shortest_chains(importer="engram_client", imported=server)
        assert not chain, f"engram_client imports {server}: {chain}"


def _imported_by(*argv: str) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    """The modules that `python -m cli ARGV` imports, read from -X importtime."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGRAM_")}
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "cli", *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    modules = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    return modules - {"package"}, proc  # "package" is the header line of -X importtime


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in (*SERVER_LIBRARIES, "rich"))


def test_help_starts_without_the_server_and_without_rich() -> None:
    modules, proc = _imported_by("--help")
    assert proc.returncode == 0 and "jobs" in proc.stdout, proc.stderr[-2000:]
    assert _heavy(modules) == []


def test_a_client_verb_starts_without_the_server() -> None:
    # Port 9 (discard) on localhost: refused at once, so the verb runs to its connection error.
    modules, proc = _imported_by("jobs", "show", "ns", "job_1", "--url", "http://127.0.0.1:9")
    assert proc.returncode == 6 and "cannot reach the Engram API" in proc.stderr, proc.stderr[-2000:]
    assert "engram_client" in modules and "httpx" in modules
    assert _heavy(modules) == []
