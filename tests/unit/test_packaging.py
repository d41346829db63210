"""What `pip install` puts on a machine: the server's wheel holds exactly api, worker, shared and cli
(with the migrations inside shared), and the client's wheel holds engram_client and needs only
httpx, pydantic and standardwebhooks (for `engram_client.verify`; it has no dependencies).

The wheels are built from a copy of the sources, with the virtualenv's setuptools (no network)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVER_PACKAGES = {"api", "worker", "shared", "cli"}


def _build(sources: Path, out: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                    "--wheel-dir", str(out), str(sources)], check=True, capture_output=True, text=True, timeout=300)
    (wheel,) = out.glob("*.whl")
    return wheel


def _copy(names: list[str], src: Path, dst: Path) -> Path:
    for name in names:
        if (src / name).is_dir():
            shutil.copytree(src / name, dst / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src / name, dst / name)
    return dst


@pytest.fixture(scope="module")
def server_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = _copy(["pyproject.toml", "README.md", "api", "worker", "shared", "cli", "client"], ROOT,
                tmp_path_factory.mktemp("server-src"))
    return _build(src, tmp_path_factory.mktemp("server-wheel"))


@pytest.fixture(scope="module")
def client_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = _copy(["pyproject.toml", "README.md", "engram_client"], ROOT / "client", tmp_path_factory.mktemp("client-src"))
    return _build(src, tmp_path_factory.mktemp("client-wheel"))


def _metadata(wheel: Path) -> tuple[set[str], list[str], str]:
    """Top-level names in the wheel (without its .dist-info), its Requires-Dist, its Name."""
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        (meta,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        message = Parser().parsestr(z.read(meta).decode())
    top = {n.split("/", 1)[0] for n in names} - {meta.split("/", 1)[0]}
    return top, message.get_all("Requires-Dist") or [], message["Name"]


def _requirement_name(requirement: str) -> str:
    name = requirement.split(";", 1)[0]
    for stop in "<>=!~[ (":
        name = name.split(stop, 1)[0]
    return name.strip().lower().replace("_", "-")


def test_client_wheel_is_engram_client_and_needs_only_httpx_pydantic_standardwebhooks(client_wheel: Path) -> None:
    top, requires, name = _metadata(client_wheel)
    assert name == "engram-client"
    assert top == {"engram_client"}
    # The MCP SDK comes only with the `mcp` extra (engram-mcp): `pip install ./client` stays small.
    base = [r for r in requires if "extra ==" not in r]
    assert {_requirement_name(r) for r in base} == {"httpx", "pydantic", "standardwebhooks"}
    assert {_requirement_name(r) for r in requires if r not in base} == {"mcp"}
    assert all('extra == "mcp"' in r for r in requires if r not in base), requires
    assert all(any(op in r for op in (">=", ">")) for r in requires), f"no lower bound: {requires}"


def test_server_wheel_installs_only_api_worker_shared_and_cli(server_wheel: Path) -> None:
    top, requires, name = _metadata(server_wheel)
    assert name == "engram"
    assert top == SERVER_PACKAGES
    # The client is installed from its path, never by name: PyPI's "engram-client" is someone else's.
    assert not {_requirement_name(r) for r in requires} & {"engram-client", "engram"}


def test_server_wheel_ships_every_migration(server_wheel: Path) -> None:
    scripts = ROOT / "shared" / "migrations"
    expected = {f"shared/migrations/{p.relative_to(scripts).as_posix()}"
                for p in scripts.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert {"shared/migrations/env.py", "shared/migrations/script.py.mako"} <= expected
    assert any(p.startswith("shared/migrations/versions/") for p in expected)
    with zipfile.ZipFile(server_wheel) as z:
        shipped = set(z.namelist())
    assert expected <= shipped, sorted(expected - shipped)


def test_migrations_run_from_the_installed_wheel_without_a_checkout(server_wheel: Path, tmp_path: Path) -> None:
    # The wheel unpacked alone on the path, run from a directory with no alembic.ini: Alembic must
    # find env.py and every revision inside the installed package. Offline mode (--sql) runs each
    # migration script through env.py without a database.
    site = tmp_path / "site"
    with zipfile.ZipFile(server_wheel) as z:
        z.extractall(site)
    code = ("import shared, shared.migrations as m; from alembic import command; "
            f"assert shared.__file__.startswith({str(site)!r}), shared.__file__; "
            "command.upgrade(m.config('postgresql+psycopg://u@127.0.0.1:1/x'), 'head', sql=True)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENGRAM_")} | {"PYTHONPATH": str(site)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    heads = [p.stem.split("_")[1] for p in (ROOT / "shared" / "migrations" / "versions").glob("*.py")]
    assert "CREATE TABLE" in proc.stdout and f"UPDATE alembic_version SET version_num='{max(heads)}'" in proc.stdout
