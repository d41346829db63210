"""The written rule for reaching PostgreSQL (README "Development", "Reaching PostgreSQL"), checked on
the code the service runs (api/, worker/, cli/, shared/; the migrations and shared/kit aside):

1. every statement runs through shared.kit.connector: nothing else executes SQL (no ORM session
   calls, no SQLAlchemy query builders, no ``exec_driver_sql``);
2. one form: text in psycopg's ``%(name)s`` style, never ``:name``, never assembled by ``str.format``;
3. every statement is a named module-level constant in a repository module, with a one-line
   purpose (the docstring under it), or a named statement-maker there for statements whose text
   depends on a setting (a function returning SQL, cached).
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [p for d in ("api", "worker", "cli", "shared") for p in sorted((ROOT / d).rglob("*.py"))
           if "migrations" not in p.parts and p.parent.name != "kit"]
# The modules that hold statements: each domain's repository, and the run's statements of jobs.
STATEMENT_MODULES = {"repository.py", "runs.py", "vectors.py"}

SQL_START = re.compile(r"\s*\(?\s*(WITH|SELECT|INSERT|UPDATE|DELETE|CREATE|LISTEN)\b")
COLON_PLACEHOLDER = re.compile(r"(?<![:\w]):[a-z_]\w*")  # :name, but not a ::cast
BUILDERS = {"select", "insert", "update", "delete", "text", "func", "literal", "any_", "or_", "and_", "bindparam",
            "column", "table", "literal_column", "case", "exists"}
SESSION_CALLS = {"execute", "exec_driver_sql", "add", "add_all", "get", "get_one", "flush", "refresh", "scalar",
                 "scalars", "merge", "delete", "expire", "connection"}


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _executions(tree: ast.Module, where: str) -> list[str]:
    """What in ``tree`` runs or builds SQL other than through the connector. (The models, which
    declare the tables for the migrations' check, may use SQLAlchemy's expressions for defaults.)"""
    offences = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sqlalchemy")
                and not where.startswith("shared/models/")):
            offences += [f"{where}:{node.lineno} imports {a.name} from {node.module}"
                         for a in node.names if a.name in BUILDERS]
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "db"
                and node.func.attr in SESSION_CALLS):
            offences.append(f"{where}:{node.lineno} calls db.{node.func.attr}")
        if isinstance(node, ast.Attribute) and node.attr == "exec_driver_sql":
            offences.append(f"{where}:{node.lineno} runs exec_driver_sql itself")
    return offences


def _formats(tree: ast.Module, where: str) -> list[str]:
    """Calls of ``str.format`` on a literal or a named string in ``tree``."""
    offences = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format"
                and isinstance(node.func.value, (ast.Constant, ast.Name))):
            receiver = node.func.value
            text = receiver.value if isinstance(receiver, ast.Constant) else receiver.id
            offences.append(f"{where}:{node.lineno} formats {str(text)[:40]!r}")
    return offences


def test_statements_run_only_through_the_connector() -> None:
    offences = [o for path in SOURCES for o in _executions(_tree(path), _rel(path))]
    assert offences == [], "SQL must run through shared.kit.connector:\n" + "\n".join(offences)


def _statements() -> list[tuple[Path, str, str, ast.stmt | None]]:
    """Every module-level string constant holding SQL: (file, name, text, the statement after it)."""
    found = []
    for path in SOURCES:
        tree = _tree(path)
        names = [(i, n) for i, n in enumerate(tree.body) if isinstance(n, ast.Assign) and len(n.targets) == 1
                 and isinstance(n.targets[0], ast.Name)]
        if not names:
            continue
        module = importlib.import_module(_module(path))
        for i, node in names:
            name = node.targets[0].id  # type: ignore[attr-defined]
            value = getattr(module, name, None)
            if isinstance(value, str) and SQL_START.match(value):
                found.append((path, name, value, tree.body[i + 1] if i + 1 < len(tree.body) else None))
    return found


def test_statements_are_named_in_repositories_with_a_purpose() -> None:
    statements = _statements()
    assert len(statements) > 40  # the scan finds the service's statements
    offences = []
    for path, name, _, after in statements:
        if path.name not in STATEMENT_MODULES:
            offences.append(f"{_rel(path)}: {name} is SQL outside a repository module")
        if not name.lstrip("_").isupper():
            offences.append(f"{_rel(path)}: {name} is SQL under a name that is not a constant's")
        described = (isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                     and isinstance(after.value.value, str))
        if not name.startswith("_") and not described:
            offences.append(f"{_rel(path)}: {name} has no one-line purpose (a docstring under it)")
    assert offences == [], "\n".join(offences)


def _foreign_fragments(tree: ast.Module, module: str, where: str) -> list[str]:
    """Names a module-level statement interpolates (f-string) that are neither the module's own,
    nor its domain's, nor the states of shared.models.states: another domain's fragments."""
    domain = module.rsplit(".", 1)[0]
    own = {t.id for n in tree.body if isinstance(n, ast.Assign) for target in n.targets for t in ast.walk(target)
           if isinstance(t, ast.Name)}
    own |= {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    own |= {a.asname or a.name for n in tree.body if isinstance(n, ast.ImportFrom) and n.module
            and (n.module == "shared.models.states" or n.module.startswith(domain + ".")) for a in n.names}
    offences = []
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and isinstance(node.value, (ast.JoinedStr, ast.BinOp))):
            continue
        bound = {t.id for c in ast.walk(node.value) if isinstance(c, ast.comprehension)
                 for t in ast.walk(c.target) if isinstance(t, ast.Name)}
        for value in (v for v in ast.walk(node.value) if isinstance(v, ast.FormattedValue)):
            for name in (n.id for n in ast.walk(value) if isinstance(n, ast.Name)):
                if name not in own and name not in bound:
                    offences.append(f"{where}:{node.lineno} interpolates {name}, not a fragment of its own module")
    return offences


def test_statements_are_composed_only_of_their_own_fragments() -> None:
    offences = [o for path in SOURCES if path.name in STATEMENT_MODULES
                for o in _foreign_fragments(_tree(path), _module(path), _rel(path))]
    assert offences == [], "\n".join(offences)


@pytest.mark.parametrize("form", ["colon placeholder", "format slot"])
def test_one_placeholder_style(form: str) -> None:
    offences = []
    for path, name, value, _ in _statements():
        text = re.sub(r"'[^']*'", "''", value)  # literals may hold anything
        if form == "colon placeholder" and COLON_PLACEHOLDER.search(text):
            offences.append(f"{_rel(path)}: {name} has a :name placeholder")
        if form == "format slot" and re.search(r"\{\w*\}", text):
            offences.append(f"{_rel(path)}: {name} has a str.format slot")
    assert offences == [], "\n".join(offences)


def test_no_sql_is_assembled_by_str_format() -> None:
    offences = [o for path in SOURCES for o in _formats(_tree(path), _rel(path))]
    assert offences == [], "\n".join(offences)


def test_the_checks_see_what_they_forbid() -> None:
    """Each check finds its offence in code written to break the rule (so none passes by seeing nothing)."""
    bad = ast.parse("from sqlalchemy import select, text\n"
                    "db.execute(select(Job))\nconn.exec_driver_sql('SELECT 1')\n"
                    "SQL = 'SELECT * FROM t WHERE {where}'.format(where='x')\n")
    assert len(_executions(bad, "bad")) == 4
    assert len(_formats(bad, "bad")) == 1
    borrowed = ast.parse("from shared.namespaces.repository import CALLER\nfrom shared.models.states import OPEN_SQL\n"
                         "_MINE = 'x'\nSQL = f'WITH c AS ({CALLER}) SELECT {_MINE} WHERE s IN {OPEN_SQL}'\n")
    assert _foreign_fragments(borrowed, "shared.jobs.repository", "bad") == [
        "bad:4 interpolates CALLER, not a fragment of its own module"]
    assert SQL_START.match("\n    WITH run AS (SELECT 1) SELECT 2")
    assert COLON_PLACEHOLDER.search("WHERE id = :id") and not COLON_PLACEHOLDER.search("SELECT x::text, %(a)s")
