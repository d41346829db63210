"""The container files (Dockerfile, .dockerignore, docker-compose.yml) agree with the code they run.

No Docker engine is needed: the files are parsed and every reference in them (commands, options,
settings, health-check endpoints, package dirs) is checked against the installed project.
"""

from __future__ import annotations

import fnmatch
import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())  # resolves anchors and `<<` merges
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]

# Variables that must never hold a literal value in the compose file.
REQUIRED_SECRETS = ("ENGRAM_ADMIN_KEY", "ENGRAM_FLOWER_BASIC_AUTH", "ENGRAM_WEBHOOK_SECRETS_KEY", "POSTGRES_PASSWORD")
OPTIONAL_SECRETS = ("ENGRAM_LLM_API_KEY",)
LONG_RUNNING = ("api", "worker", "scheduler")


def _built_from_here(service: dict[str, Any]) -> bool:
    build = service.get("build")
    context = build.get("context") if isinstance(build, dict) else build
    return context in (".", "./")


ENGRAM_SERVICES = sorted(name for name, svc in SERVICES.items() if _built_from_here(svc))


def _environment(service: dict[str, Any]) -> dict[str, str | None]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, None) for item in env)
    return dict(env)


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def _healthcheck_text(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    return test if isinstance(test, str) else " ".join(test)


def _option(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with line continuations joined and comments dropped."""
    logical, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    instructions = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    return instructions


def _dockerfile(keyword: str) -> list[str]:
    return [args for kw, args in _dockerfile_instructions() if kw == keyword]


def _settings_env_names() -> set[str]:
    from shared.config import Settings

    return {f"ENGRAM_{name.upper()}" for name in Settings.model_fields}


# --- commands ------------------------------------------------------------------------------------


def test_compose_uses_the_compose_spec_without_version_key():
    assert "version" not in COMPOSE
    assert set(ENGRAM_SERVICES) == {"migrate", "api", "worker", "scheduler", "flower"}


@pytest.mark.parametrize("service", ENGRAM_SERVICES)
def test_built_service_runs_an_existing_engram_command(service):
    command = _command(SERVICES[service])
    assert command, f"{service} relies on the image's default command; name it explicitly"
    # click parses every given option before the eager --help fires, so a misspelt option of a
    # command that does not pass unknown options through fails here too.
    result = subprocess.run(
        [sys.executable, "-m", "cli", *command, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"`engram {' '.join(command)} --help` failed:\n{result.stdout}{result.stderr}"
    assert "Usage:" in result.stdout


def test_dockerfile_default_command_is_an_existing_engram_command():
    (cmd,) = _dockerfile("CMD")
    command = json.loads(cmd)
    result = subprocess.run(
        [sys.executable, "-m", "cli", *command, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("service", ENGRAM_SERVICES)
def test_built_service_options_are_declared_by_its_command(service):
    # `worker` and `flower` pass unknown options on to Celery, so --help alone would not catch a
    # misspelt option there: compare against the options each command declares.
    import typer.main

    from cli.main import app

    group = typer.main.get_command(app)
    name, *args = _command(SERVICES[service])
    command = group.commands[name]  # type: ignore[attr-defined]
    declared = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    used = {arg.split("=", 1)[0] for arg in args if arg.startswith("-")}
    assert used <= declared, f"{service}: {sorted(used - declared)} not options of `engram {name}`"


# --- settings and secrets ------------------------------------------------------------------------


def test_every_engram_variable_is_a_settings_field():
    text = COMPOSE_FILE.read_text() + DOCKERFILE.read_text()
    used = set(re.findall(r"\bENGRAM_[A-Z0-9_]+\b", text))
    assert used, "no ENGRAM_* variable found"
    unknown = used - _settings_env_names()
    assert not unknown, f"not fields of shared.config.Settings: {sorted(unknown)}"


@pytest.mark.parametrize("service", ENGRAM_SERVICES)
def test_engram_services_reach_the_compose_postgres_and_redis(service):
    env = _environment(SERVICES[service])
    assert re.fullmatch(r"postgres(ql)?://engram:[^@]+@postgres:5432/engram", env["ENGRAM_DATABASE_URL"] or "")
    assert re.fullmatch(r"redis://redis:6379/\d+", env["ENGRAM_REDIS_URL"] or "")
    assert {"postgres", "redis"} <= set(SERVICES)


def _is_reference(value: str | None, name: str, *, required: bool) -> bool:
    pattern = rf"\$\{{{name}:\?[^}}]*\}}" if required else rf"\$\{{{name}(:?[-?][^}}]*)?\}}"
    return value is not None and re.fullmatch(pattern, value) is not None


def test_secrets_are_environment_references_not_literals():
    seen = set()
    for name, service in SERVICES.items():
        for key, value in _environment(service).items():
            if key in REQUIRED_SECRETS:
                seen.add(key)
                assert _is_reference(value, key, required=True), f"{name}: {key} must be ${{{key}:?...}}, got {value!r}"
            elif key in OPTIONAL_SECRETS:
                # No value: Compose passes the caller's variable through, or leaves it unset.
                assert value is None or _is_reference(value, key, required=False), f"{name}: {key}={value!r}"
            elif isinstance(value, str) and "://" in value:
                # The password inside a URL is a reference too.
                m = re.search(r"://[^:/@]+:([^@]*)@", value)
                if m:
                    assert _is_reference(m.group(1), "POSTGRES_PASSWORD", required=True), f"{name}: {key}"
    assert seen == set(REQUIRED_SECRETS)


def test_no_literal_secret_anywhere_in_the_compose_file():
    # The same, on the raw text: any `SECRET: value` or `SECRET=value` is a reference.
    lines = COMPOSE_FILE.read_text().splitlines()
    text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    for name in (*REQUIRED_SECRETS, *OPTIONAL_SECRETS):
        for m in re.finditer(rf"(?<!\{{)\b{name}\s*[:=][ \t]*(\S*)", text):
            assert m.group(1) == "" or m.group(1).startswith("${"), f"literal value for {name}: {m.group(0)!r}"


# --- health checks -------------------------------------------------------------------------------


def _healthcheck_url(service: str) -> tuple[int, str]:
    m = re.search(r"http://127\.0\.0\.1:(\d+)(/[^'\"\s]*)", _healthcheck_text(SERVICES[service]))
    assert m, f"{service}: health check requests no http://127.0.0.1 URL"
    return int(m.group(1)), m.group(2)


def test_api_healthcheck_requests_a_real_api_route():
    from api.main import create_app
    from shared.config import Settings

    port, path = _healthcheck_url("api")
    api = SERVICES["api"]
    assert port == int(_option(_command(api), "--port") or 0)
    assert any(str(p).split(":")[-1] == str(port) for p in api["ports"])
    app = create_app(
        Settings(database_url="postgresql+psycopg://u@127.0.0.1:1/x", redis_url="redis://127.0.0.1:1/0", admin_key="x",
                 webhook_secrets_key="w")
    )
    paths = app.openapi()["paths"]
    assert path == "/readyz"
    assert "get" in paths.get(path, {}), f"{path} is not a GET route of the API"


def test_flower_healthcheck_requests_a_real_unauthenticated_flower_handler():
    from flower import urls
    from flower.views.error import NotFoundErrorHandler

    port, path = _healthcheck_url("flower")
    flower = SERVICES["flower"]
    assert port == int(_option(_command(flower), "--port") or 0)
    assert any(str(p).split(":")[-1] == str(port) for p in flower["ports"])
    # Tornado serves the first handler whose pattern matches; the last one is the catch-all 404.
    for handler in urls.handlers:
        pattern, cls = (handler.regex.pattern, handler.handler_class) if hasattr(handler, "regex") else handler[:2]
        if re.fullmatch(pattern.rstrip("$"), path):
            break
    else:  # pragma: no cover
        pytest.fail(f"no Flower handler for {path}")
    assert cls is not NotFoundErrorHandler, f"{path} is not a Flower endpoint"
    # Behind ENGRAM_FLOWER_BASIC_AUTH, a check of an @authenticated handler would always fail.
    assert not hasattr(cls.get, "__wrapped__"), f"{cls.__name__}.get requires authentication"


def test_worker_healthcheck_pings_this_replicas_celery_node():
    check = _healthcheck_text(SERVICES["worker"])
    m = re.search(r"celery -A ([\w.]+) inspect ping -d celery@\$\$HOSTNAME", check)
    assert m, check
    # `engram worker` keeps Celery's default node name celery@<hostname> only without --hostname.
    assert _option(_command(SERVICES["worker"]), "--hostname") is None
    result = subprocess.run(
        [sys.executable, "-c", f"import celery, {m.group(1)} as m; assert isinstance(m.app, celery.Celery)"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_healthy_dependencies_define_a_healthcheck():
    for name, service in SERVICES.items():
        for dep, spec in (service.get("depends_on") or {}).items():
            assert dep in SERVICES, f"{name} depends on unknown service {dep}"
            if spec.get("condition") == "service_healthy":
                assert "healthcheck" in SERVICES[dep], f"{name} waits for {dep} to be healthy; it has no check"


def test_postgres_and_redis_healthchecks():
    assert "pg_isready -U engram -d engram" in _healthcheck_text(SERVICES["postgres"])
    assert "redis-cli ping" in _healthcheck_text(SERVICES["redis"])


# --- topology ------------------------------------------------------------------------------------


def test_postgres_is_version_16_with_pgvector_and_a_volume():
    postgres = SERVICES["postgres"]
    # The pgvector project's image: PostgreSQL 16 with the extension, for vector recall.
    assert re.fullmatch(r"pgvector/pgvector:pg16([.-][\w.-]*)?", postgres["image"])
    env = _environment(postgres)
    assert env["POSTGRES_DB"] == "engram" and env["POSTGRES_USER"] == "engram"
    volume = postgres["volumes"][0].split(":")
    assert volume[0] in COMPOSE["volumes"] and volume[1] == "/var/lib/postgresql/data"


def test_redis_is_version_7_with_aof_and_noeviction():
    redis = SERVICES["redis"]
    assert re.fullmatch(r"redis:7([.-][\w.-]*)?", redis["image"])
    command = " ".join(_command(redis))
    assert command.startswith("redis-server")
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command
    volume = redis["volumes"][0].split(":")
    assert volume[0] in COMPOSE["volumes"] and volume[1] == "/data"


def test_worker_runs_at_least_two_replicas_and_stops_gracefully():
    worker = SERVICES["worker"]
    assert worker["deploy"]["replicas"] >= 2
    assert "container_name" not in worker  # replicas need generated names
    grace = re.fullmatch(r"(\d+)(s|m)", worker["stop_grace_period"])
    assert grace and int(grace.group(1)) * (60 if grace.group(2) == "m" else 1) >= 60


def test_migrate_runs_once_before_api_worker_and_scheduler():
    migrate = SERVICES["migrate"]
    assert _command(migrate) == ["migrate"]
    assert migrate["restart"] == "no"
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in LONG_RUNNING:
        condition = SERVICES[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully", f"{name} starts before migrations finish"


# --- Dockerfile ----------------------------------------------------------------------------------


def test_dockerfile_entrypoint_is_engram_and_it_serves_the_api_by_default():
    (entrypoint,) = _dockerfile("ENTRYPOINT")
    assert json.loads(entrypoint) == ["engram"]
    (cmd,) = _dockerfile("CMD")
    assert json.loads(cmd)[:3] == ["api", "--host", "0.0.0.0"]
    exposed = {port for args in _dockerfile("EXPOSE") for port in args.split()}
    assert {"8000", "5555"} <= exposed


def test_dockerfile_copies_every_package_of_pyproject():
    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*").rstrip(".") for pattern in include}
    copied: set[str] = set()
    for args in _dockerfile("COPY"):
        parts = [p for p in args.split() if not p.startswith("--")]
        if any(p.startswith("--from") for p in args.split()):
            continue
        copied.update(p.rstrip("/").removeprefix("./") for p in parts[:-1])
    assert packages <= copied, f"not copied into the image: {sorted(packages - copied)}"
    assert {"pyproject.toml"} <= copied
    for package in packages:
        assert (ROOT / package / "__init__.py").is_file(), f"{package} is not a package dir"


def test_dockerfile_installs_without_dev_extras_on_python_311_slim_as_non_root():
    images = [args.split()[0] for args in _dockerfile("FROM")]
    assert images and all(image == "python:3.11-slim" for image in images)
    runs = " ".join(_dockerfile("RUN"))
    installed = {arg for line in re.findall(r"pip install ([^&\\]+)", runs) for arg in line.split()
                 if not arg.startswith("-")}
    assert "." in installed, "the project is not installed with `pip install .`"
    # The client is installed from its path: by name, pip would fetch PyPI's unrelated engram-client.
    assert "./client" in installed, "the Python client is not installed with `pip install ./client`"
    assert "[dev]" not in runs and "-e " not in runs
    users = _dockerfile("USER")
    assert users and users[-1].split(":")[0] not in ("root", "0")


def test_dockerignore_keeps_local_state_out_and_sources_in():
    patterns = [
        line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip() and not line.startswith("#")
    ]
    for required in (".venv", ".git", ".engram", "tests", ".env", "**/__pycache__"):
        assert required in patterns, f".dockerignore misses {required}"
    copied = [
        p.rstrip("/").removeprefix("./")
        for args in _dockerfile("COPY") if "--from" not in args
        for p in args.split()[:-1] if not p.startswith("--")
    ]
    for source in copied:
        hits = [pat for pat in patterns if not pat.startswith("!") and fnmatch.fnmatch(source, pat)]
        assert not hits, f"{source} is copied by the Dockerfile but excluded by .dockerignore {hits}"
