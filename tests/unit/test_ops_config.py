"""ops/prometheus.yml scrapes the ports the compose services and the settings really use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from shared.config import Settings

ROOT = Path(__file__).resolve().parents[2]
SCRAPE: dict[str, Any] = yaml.safe_load((ROOT / "ops" / "prometheus.yml").read_text())
COMPOSE: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _job(name: str) -> dict[str, Any]:
    [job] = [j for j in SCRAPE["scrape_configs"] if j["job_name"] == name]
    return job


def _port_of(service: str) -> str:
    command = COMPOSE["services"][service]["command"]
    return command[command.index("--port") + 1]


def test_the_scrape_configuration_targets_the_services_ports() -> None:
    assert _job("engram-api")["static_configs"][0]["targets"] == [f"api:{_port_of('api')}"]
    assert _job("engram-flower")["static_configs"][0]["targets"] == [f"flower:{_port_of('flower')}"]
    [workers] = _job("engram-worker")["dns_sd_configs"]
    assert workers["names"] == ["worker"] and "worker" in COMPOSE["services"]
    default = Settings.model_fields["worker_metrics_port"].default
    assert workers["port"] == default and "ENGRAM_WORKER_METRICS_PORT" not in COMPOSE["services"]["worker"].get(
        "environment", {})
