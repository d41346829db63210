"""Settings check themselves: what each process misses is one clear message from Settings, and
importing the worker's Celery app reads nothing and falls back to nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest

from shared.config import Process, Settings, SettingsError

URLS = {"database_url": "postgresql://u@h/db", "redis_url": "redis://h:6379/0"}


@pytest.fixture(autouse=True)
def no_engram_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("ENGRAM_")]:
        monkeypatch.delenv(name)


def settings(**values: Any) -> Settings:
    # From these values alone: the environment is emptied above, and no .env file is read.
    return Settings(_env_file=None, **values)


def test_each_process_names_everything_it_misses_in_one_message() -> None:
    with pytest.raises(SettingsError) as api:
        settings().check_for("api")
    message = str(api.value)
    assert "ENGRAM_DATABASE_URL" in message and "ENGRAM_REDIS_URL" in message and "ENGRAM_ADMIN_KEY" in message
    assert "ENGRAM_WEBHOOK_SECRETS_KEY" in message
    assert "engram dev" in message  # and how to do without
    with pytest.raises(SettingsError, match="ENGRAM_FLOWER_BASIC_AUTH"):
        settings(**URLS).check_for("flower")
    with pytest.raises(SettingsError, match="ENGRAM_DATABASE_URL"):
        settings().check_for("migrate")


def test_complete_settings_pass_and_dev_mode_lifts_only_the_secrets() -> None:
    full = settings(**URLS, admin_key="k", flower_basic_auth="u:p", webhook_secrets_key="w")
    processes: tuple[Process, ...] = ("api", "worker", "scheduler", "flower", "migrate")
    for process in processes:
        assert full.check_for(process) is full
    dev = settings(**URLS, dev_mode=True)
    assert dev.check_for("api") is dev and dev.check_for("flower") is dev
    with pytest.raises(SettingsError, match="ENGRAM_REDIS_URL"):
        settings(database_url="postgresql://u@h/db", dev_mode=True).check_for("worker")


def test_no_default_broker() -> None:
    with pytest.raises(SettingsError, match="ENGRAM_REDIS_URL"):
        _ = settings().broker_url


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ENGRAM_")}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**clean, **env}, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))


def test_importing_the_worker_app_has_no_side_effect_and_no_fallback_broker() -> None:
    result = _run(
        "import logging, worker.app as w\n"
        "assert logging.getLogger().handlers == [], 'logging configured at import'\n"
        "try:\n"
        "    w.app.conf.broker_url\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc)\n"
        "else:\n"
        "    print('no error')\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("SettingsError ENGRAM_REDIS_URL")


def test_the_worker_app_takes_the_settings_broker() -> None:
    result = _run("import worker.app as w; print(w.app.conf.broker_url, w.app.conf.task_acks_late)",
                  ENGRAM_REDIS_URL="redis://127.0.0.1:1/7")
    assert result.stdout.split() == ["redis://127.0.0.1:1/7", "True"], result.stderr


def test_engram_api_without_a_key_fails_with_the_settings_message() -> None:
    result = subprocess.run([sys.executable, "-m", "cli", "api"], capture_output=True, text=True, timeout=60,
                            env={**{k: v for k, v in os.environ.items() if not k.startswith("ENGRAM_")},
                                 "ENGRAM_DATABASE_URL": "postgresql://u@127.0.0.1:1/x",
                                 "ENGRAM_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert result.returncode == 2
    assert "`engram api` needs ENGRAM_ADMIN_KEY" in result.stderr


def test_sentinel_urls_name_every_sentinel_and_the_database() -> None:
    from shared.config import redis_db, sentinels_of
    from shared.queue import broker_options

    url = "sentinel://10.0.0.1:26379;sentinel://:secret@10.0.0.2:26380;sentinel://redis-3/2"
    assert sentinels_of(url) == [("10.0.0.1", 26379), ("10.0.0.2", 26380), ("redis-3", 26379)]
    assert redis_db(url) == 2 and redis_db("redis://h:6379/5") == 5 and redis_db("redis://h") == 0
    assert sentinels_of("redis://h:6379/0") is None
    s = settings(redis_url=url, redis_sentinel_master="engram")
    options = broker_options(s)
    assert options["master_name"] == "engram" and options["sentinel_kwargs"]["socket_timeout"] == s.redis_tcp_timeout_seconds
    assert "master_name" not in broker_options(settings(redis_url="redis://h:6379/0"))
