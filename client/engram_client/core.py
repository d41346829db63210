"""What the sync and async clients share: settings, request headers, and reading an answer."""

from __future__ import annotations

from typing import Any, TypeVar

import httpx

from engram_client.calls import Call
from engram_client.errors import EngramConnectionError, raise_for_problem
from engram_client.settings import resolve_settings

T = TypeVar("T")
MAX_WAIT = 30  # the API's longest `?wait=`
PROGRESS_POLL = 2  # long-poll length when someone watches progress (the long-poll only wakes on finish)
USER_AGENT = "engram-client/0.1"


class ClientCore:
    """Settings and request plumbing of ``EngramClient`` and ``AsyncEngramClient``."""

    def __init__(self, base_url: str | None, api_key: str | None, timeout: float | None) -> None:
        self.base_url, self.api_key = resolve_settings(base_url, api_key)
        self.timeout = timeout
        self.last_response: httpx.Response | None = None  # the raw answer of the latest call

    @property
    def verifies_tls(self) -> bool:
        """Whether the HTTP client loads the CA bundle: only an https base URL makes TLS
        connections (every request goes to the base URL and redirects are not followed), and
        loading the bundle costs about 0.1 s at every start of a program such as `engram`."""
        return self.base_url.startswith("https://")

    def request_args(self, call: Call[Any]) -> dict[str, Any]:
        """The keyword arguments of ``httpx.Client.request`` for ``call``."""
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json, application/problem+json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        headers.update(call.headers or {})
        args: dict[str, Any] = dict(method=call.method, url=self.base_url + call.path, params=call.params,
                                    json=call.json, headers=headers)
        if call.wait and self.timeout is not None:  # a long-poll: room for it on top of the usual timeout
            args["timeout"] = httpx.Timeout(self.timeout + call.wait)
        return args

    def unreachable(self, exc: httpx.TransportError) -> EngramConnectionError:
        return EngramConnectionError(self.base_url, str(exc) or type(exc).__name__)

    def finish(self, call: Call[T], r: httpx.Response) -> T:
        """Keep the answer as ``last_response``, raise its error if it is one, else parse it."""
        self.last_response = r
        raise_for_problem(r)
        return call.parse(r)
