"""Calling an OpenAI-compatible JSON endpoint with retries: the one place both the LLM integrator
and the embedder get their HTTP behaviour from.

Network errors, timeouts, 429 and 5xx are retried with exponential backoff (a numeric
``Retry-After`` replaces the computed wait, capped); other answers are final. The key is kept as a
SecretStr so it never shows up in a repr, a traceback or a log line.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import httpx
import tenacity
from pydantic import SecretStr

log = logging.getLogger(__name__)


class EndpointError(Exception):
    """The endpoint could not give an answer. ``retryable`` says if a later job run may succeed."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class _Transient(Exception):
    """A failure worth retrying (network, timeout, 429, 5xx)."""

    def __init__(self, status: str, retry_after: float | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.retry_after = retry_after


class JsonEndpoint:
    """``POST url`` with a JSON body, retried on transient failures."""

    def __init__(self, url: str, what: str, api_key: str | SecretStr | None, timeout: float, max_retries: int,
                 client: httpx.Client | None = None, *, backoff_base: float = 0.5, backoff_max: float = 30.0,
                 retry_after_cap: float = 60.0) -> None:
        self.url, self.what = url, what
        self._api_key = api_key if isinstance(api_key, SecretStr) or api_key is None else SecretStr(api_key)
        self.timeout = timeout
        self.max_retries = max(0, max_retries)
        self.backoff_base, self.backoff_max, self.retry_after_cap = backoff_base, backoff_max, retry_after_cap
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client(timeout=timeout)

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def post(self, body: dict[str, Any]) -> httpx.Response:
        """The 2xx answer, or EndpointError (retryable when the retries ran out on transient failures)."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._api_key is not None:
            headers["Authorization"] = f"Bearer {self._api_key.get_secret_value()}"
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_retries + 1),
            wait=self._wait,
            retry=tenacity.retry_if_exception_type(_Transient),
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            return retrying(self._post, body, headers)
        except _Transient as exc:
            raise EndpointError(f"{self.what} endpoint {self.url} failed after {self.max_retries + 1} attempt(s); "
                                f"last status: {exc.status}", retryable=True) from None

    def _post(self, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
        try:
            response = self._client.post(self.url, json=body, headers=headers, timeout=self.timeout)
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            # A misconfigured base URL: no retry will fix it.
            raise EndpointError(f"cannot call {self.url!r}: {exc}", retryable=False) from None
        except httpx.TransportError as exc:
            # str(exc) names the failure (refused, timed out, ...) but never the request headers.
            raise _Transient(f"no response ({type(exc).__name__}: {exc})") from None
        status = response.status_code
        if status == 429 or status >= 500:
            raise _Transient(f"HTTP {status}", _retry_after(response))
        if status >= 300:
            raise EndpointError(f"{self.what} endpoint {self.url} answered HTTP {status}: {excerpt(response.text)}",
                                retryable=False)
        return response

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Transient) and exc.retry_after is not None:
            return min(exc.retry_after, self.retry_after_cap)
        return float(min(self.backoff_base * 2 ** (state.attempt_number - 1), self.backoff_max))

    def _log_retry(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning("%s %s: %s; retry %d/%d in %.2fs", self.what, self.url, exc, state.attempt_number,
                    self.max_retries, wait)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: fall back to exponential backoff
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def excerpt(text: str, limit: int = 200) -> str:
    """A one-line excerpt of an answer, for error messages."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"
