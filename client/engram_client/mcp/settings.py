"""What ``engram-mcp`` reads from its environment and command line.

Engram is found as every client finds it (``ENGRAM_URL``, ``ENGRAM_API_KEY``); the rest is the MCP
server's own, prefixed ``ENGRAM_MCP_``. The default namespace and agent let a host pin one agent's
memory: the tools use them whenever a call leaves ``namespace`` or ``agent`` out.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from engram_client.models import SLUG_PATTERN
from engram_client.settings import resolve_settings

Transport = Literal["stdio", "http"]
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_PATH = "/mcp"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class SettingsError(ValueError):
    """A setting is missing or wrong; the message says which and what to do."""


@dataclass(frozen=True)
class McpSettings:
    url: str  # ENGRAM_URL: the Engram API
    api_key: str | None  # ENGRAM_API_KEY (fallback ENGRAM_ADMIN_KEY): the key sent to the API
    namespace: str | None = None  # ENGRAM_MCP_NAMESPACE: used when a tool call names none
    agent: str | None = None  # ENGRAM_MCP_AGENT: used when a tool call names none
    transport: Transport = "stdio"  # ENGRAM_MCP_TRANSPORT
    host: str = DEFAULT_HOST  # ENGRAM_MCP_HOST: where streamable HTTP listens
    port: int = DEFAULT_PORT  # ENGRAM_MCP_PORT
    path: str = DEFAULT_PATH  # ENGRAM_MCP_PATH: the MCP endpoint's path
    token: str | None = None  # ENGRAM_MCP_TOKEN: bearer token HTTP clients must send
    timeout: float = 30.0  # ENGRAM_MCP_TIMEOUT_SECONDS: per request to the API (long-polls get more)
    log_level: str = "WARNING"  # ENGRAM_MCP_LOG_LEVEL: on stderr

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, **given: object) -> McpSettings:
        """Command-line values (``given``, None for "not given") over ``ENGRAM_*`` variables over defaults."""
        env = os.environ if env is None else env

        def pick(key: str, variable: str) -> str | None:
            value = given.get(key)
            return str(value) if value is not None else (env.get(variable) or None)

        url, api_key = resolve_settings(pick("url", "ENGRAM_URL"), pick("api_key", "ENGRAM_API_KEY"))
        transport = pick("transport", "ENGRAM_MCP_TRANSPORT") or "stdio"
        if transport not in ("stdio", "http"):
            raise SettingsError(f"ENGRAM_MCP_TRANSPORT must be stdio or http, not {transport!r}")
        log_level = (pick("log_level", "ENGRAM_MCP_LOG_LEVEL") or "WARNING").upper()
        if log_level not in LOG_LEVELS:
            raise SettingsError(f"ENGRAM_MCP_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not {log_level!r}")
        settings = cls(
            url=url, api_key=api_key,
            namespace=_slug(pick("namespace", "ENGRAM_MCP_NAMESPACE"), "ENGRAM_MCP_NAMESPACE"),
            agent=_slug(pick("agent", "ENGRAM_MCP_AGENT"), "ENGRAM_MCP_AGENT"),
            transport="http" if transport == "http" else "stdio",
            host=pick("host", "ENGRAM_MCP_HOST") or DEFAULT_HOST,
            port=int(_number(pick("port", "ENGRAM_MCP_PORT"), "ENGRAM_MCP_PORT", DEFAULT_PORT, integer=True)),
            path="/" + (pick("path", "ENGRAM_MCP_PATH") or DEFAULT_PATH).strip("/"),
            token=env.get("ENGRAM_MCP_TOKEN") or None,
            timeout=_number(pick("timeout", "ENGRAM_MCP_TIMEOUT_SECONDS"), "ENGRAM_MCP_TIMEOUT_SECONDS", 30.0),
            log_level=log_level,
        )
        settings.check()
        return settings

    @property
    def loopback(self) -> bool:
        """Whether ``host`` only accepts connections from this machine."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host.strip("[]")).is_loopback
        except ValueError:  # a host name other than localhost may resolve to anything
            return False

    def check(self) -> None:
        """Refuse what would be unsafe or cannot work, before anything starts."""
        if self.transport == "http" and not self.loopback and not self.token:
            raise SettingsError(
                f"refusing to serve MCP over HTTP on {self.host}, beyond this machine, without a token: set "
                "ENGRAM_MCP_TOKEN to a long random secret (clients send it as `Authorization: Bearer <token>`), "
                "or listen on 127.0.0.1")
        if self.token is not None and len(self.token) < 16:
            raise SettingsError("ENGRAM_MCP_TOKEN is too short: use at least 16 characters (e.g. `openssl rand -hex 32`)")
        if not 0 < self.port < 65536:
            raise SettingsError(f"ENGRAM_MCP_PORT must be a TCP port (1-65535), not {self.port}")


def _slug(value: str | None, variable: str) -> str | None:
    if value is not None and not re.fullmatch(SLUG_PATTERN, value):
        raise SettingsError(f"{variable} must be a slug (lowercase letters, digits, - and _; at most 63), not {value!r}")
    return value


def _number(value: str | None, variable: str, default: float, integer: bool = False) -> float:
    if value is None:
        return default
    try:
        number = int(value) if integer else float(value)
    except ValueError:
        raise SettingsError(f"{variable} must be {'an integer' if integer else 'a number'}, not {value!r}") from None
    if number <= 0:
        raise SettingsError(f"{variable} must be positive, not {value!r}")
    return number
