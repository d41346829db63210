"""An integrator backed by any OpenAI-compatible chat-completions endpoint.

The prompt follows the *reflection* step of Generative Agents (Park et al., 2023): the model reads
the agent's recent turns and infers a few higher-level insights, each with an importance score and
the turns it rests on. The answer is validated strictly; anything malformed is an error rather than
a half-trusted memory.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Sequence
from typing import Annotated, Any

import httpx
import tenacity
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, StringConstraints, ValidationError

from shared.integrators.base import ChatTurn, InsightDraft, IntegratorError, Reflection

log = logging.getLogger(__name__)

MAX_INSIGHT_CHARS = 2000

SYSTEM_PROMPT = """\
You are the reflection step of an AI agent's long-term memory.
You are given who the agent is and a numbered list of recent conversation turns, each written as
"[seq] speaker: content". Step back from the individual turns and infer the few high-level
insights that are worth remembering later: durable facts about the people involved, their
preferences, goals, decisions, commitments, and open problems. Do not restate small talk and do
not invent anything the turns do not support.

Answer with one JSON object and nothing else, in exactly this shape:
{"insights": [{"content": "<one self-contained sentence>", "importance": <integer 1-10>, "evidence": [<seq>, ...]}]}

- content: the insight, understandable without the conversation.
- importance: on a scale of 1 to 10, where 1 is purely mundane (greetings, small talk) and 10 is
  critical (a decision, deadline or fact the agent must never forget).
- evidence: the seq numbers of the turns that support the insight; only numbers shown in brackets.
Give at most 5 insights, fewer if the turns hold little worth remembering, and
{"insights": []} if nothing is."""


# --- the answer's schema -------------------------------------------------------------------------


def _whole_number(value: Any) -> Any:
    # Lax pydantic would turn True into 1 and "7" into 7; a model answering that way is confused,
    # so only JSON numbers with an integral value are accepted (7 and 7.0, not 7.5).
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("must be an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be an integer, not a fraction")
        return int(value)
    return value


_WholeNumber = Annotated[int, BeforeValidator(_whole_number)]


class _InsightOut(BaseModel):
    model_config = ConfigDict(extra="ignore")

    # Whitespace is stripped before the length checks, so "   " is empty.
    content: Annotated[
        str, StringConstraints(strict=True, strip_whitespace=True, min_length=1, max_length=MAX_INSIGHT_CHARS)
    ]
    importance: Annotated[_WholeNumber, Field(ge=1, le=10)]
    evidence: list[_WholeNumber]


class _Answer(BaseModel):
    model_config = ConfigDict(extra="ignore")

    insights: list[_InsightOut]


class _Transient(Exception):
    """A failure worth retrying (network, timeout, 429, 5xx)."""

    def __init__(self, status: str, retry_after: float | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.retry_after = retry_after


_FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*[ \t]*\n?(.*?)\n?\s*```\s*$", re.DOTALL)


class OpenAIIntegrator:
    """Reflection by an OpenAI-compatible chat-completions endpoint (``POST {base_url}/chat/completions``)."""

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | SecretStr | None = None,
        timeout: float = 60.0,
        max_retries: int = 4,
        client: httpx.Client | None = None,
        *,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        retry_after_cap: float = 60.0,
        max_turn_chars: int = 4000,
    ) -> None:
        """``backoff_base`` is the first retry's wait; each next one doubles, up to ``backoff_max``.

        A numeric ``Retry-After`` replaces the computed wait, capped at ``retry_after_cap``. Each
        turn is cut to ``max_turn_chars`` in the prompt so one huge turn cannot overflow the
        model's context (which would fail the job permanently).
        """
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        # Kept as a SecretStr so it never shows up in a repr, traceback local dump or log line.
        self._api_key = api_key if isinstance(api_key, SecretStr) or api_key is None else SecretStr(api_key)
        self.timeout = timeout
        self.max_retries = max(0, max_retries)
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.retry_after_cap = retry_after_cap
        self.max_turn_chars = max_turn_chars
        self._owns_client = client is None
        self._client = client if client is not None else httpx.Client(timeout=timeout)

    def __repr__(self) -> str:
        return f"OpenAIIntegrator(url={self.url!r}, model={self.model!r})"

    def close(self) -> None:
        """Close the HTTP client if this integrator created it."""
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> OpenAIIntegrator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- public ----------------------------------------------------------------------------

    def reflect(self, reflection: Reflection) -> list[InsightDraft]:
        """Insights for the reflection's turns; evidence only cites seqs of those turns."""
        turns = [t for t in reflection.turns if t.content and t.content.strip()]
        if not turns:
            return []
        content = self._complete(self._messages(reflection, turns))
        return parse_insights(content, {t.seq for t in reflection.turns})

    # --- request ---------------------------------------------------------------------------

    def _messages(self, reflection: Reflection, turns: Sequence[ChatTurn]) -> list[dict[str, str]]:
        lines = [f"[{t.seq}] {t.speaker}: {self._clip(t.content)}" for t in turns]
        who = f"Agent: {reflection.agent}"
        if reflection.agent_description.strip():
            who += f"\nDescription: {reflection.agent_description.strip()}"
        user = f"{who}\n\nTurns:\n" + "\n".join(lines) + "\n\nWhat high-level insights can you infer from these turns?"
        return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]

    def _clip(self, text: str) -> str:
        # One turn per line keeps the "[seq] speaker:" framing unambiguous for the model.
        text = " ".join(text.split())
        return text if len(text) <= self.max_turn_chars else text[: self.max_turn_chars] + " …"

    def _complete(self, messages: list[dict[str, str]]) -> str:
        body = {
            "model": self.model,
            "messages": messages,
            "temperature": 0,
            "response_format": {"type": "json_object"},
        }
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
            response = retrying(self._post, body, headers)
        except _Transient as exc:
            raise IntegratorError(
                f"chat-completions endpoint {self.url} failed after {self.max_retries + 1} "
                f"attempt(s); last status: {exc.status}",
                retryable=True,
            ) from None
        return self._message_content(response)

    def _post(self, body: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
        try:
            response = self._client.post(self.url, json=body, headers=headers, timeout=self.timeout)
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            # A misconfigured ENGRAM_LLM_BASE_URL: no retry will fix it.
            raise IntegratorError(f"cannot call {self.url!r}: {exc}", retryable=False) from None
        except httpx.TransportError as exc:
            # str(exc) names the failure (refused, timed out, ...) but never the request headers.
            raise _Transient(f"no response ({type(exc).__name__}: {exc})") from None
        status = response.status_code
        if status == 429 or status >= 500:
            raise _Transient(f"HTTP {status}", _retry_after(response))
        if status >= 300:
            raise IntegratorError(
                f"chat-completions endpoint {self.url} answered HTTP {status}: {_excerpt(response.text)}",
                retryable=False,
            )
        return response

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Transient) and exc.retry_after is not None:
            return min(exc.retry_after, self.retry_after_cap)
        return float(min(self.backoff_base * 2 ** (state.attempt_number - 1), self.backoff_max))

    def _log_retry(self, state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "chat-completions %s: %s; retry %d/%d in %.2fs",
            self.url, exc, state.attempt_number, self.max_retries, wait,
        )

    def _message_content(self, response: httpx.Response) -> str:
        try:
            data = response.json()
            content = data["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise IntegratorError(
                f"chat-completions endpoint {self.url} did not answer a chat completion: "
                f"{_excerpt(response.text)}",
                retryable=False,
            ) from None
        if not isinstance(content, str):
            raise IntegratorError(
                f"chat-completions endpoint {self.url} answered no message content "
                f"(finish_reason: {data['choices'][0].get('finish_reason')!r})",
                retryable=False,
            )
        return content


# --- parsing -------------------------------------------------------------------------------------


def parse_insights(content: str, seqs: set[int]) -> list[InsightDraft]:
    """The model's message content as insights, or IntegratorError saying what is wrong with it."""

    def invalid(detail: str) -> IntegratorError:
        return IntegratorError(f"the model's answer is not valid JSON insights: {detail}", retryable=False)

    fenced = _FENCE.match(content)
    text = fenced.group(1) if fenced else content
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise invalid(f"not JSON ({exc}): {_excerpt(content)}") from None
    if not isinstance(raw, dict):
        raise invalid(f'expected a JSON object with key "insights", got {type(raw).__name__}')
    try:
        answer = _Answer.model_validate(raw)
    except ValidationError as exc:
        raise invalid(_describe(exc)) from None

    drafts = []
    for i, item in enumerate(answer.insights):
        unknown = [s for s in item.evidence if s not in seqs]
        if unknown:
            raise invalid(f"insights[{i}].evidence: {unknown} not among the turns' seqs")
        evidence = list(dict.fromkeys(item.evidence))  # de-duplicated, order kept
        drafts.append(InsightDraft(content=item.content, importance=item.importance, evidence=evidence))
    return drafts


def _describe(exc: ValidationError, limit: int = 3) -> str:
    parts = []
    for err in exc.errors()[:limit]:
        path = ""
        for key in err["loc"]:
            path += f"[{key}]" if isinstance(key, int) else (f".{key}" if path else str(key))
        # Drop pydantic's "Value error, " prefix from our own validators' messages.
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{path or 'answer'}: {msg}")
    more = exc.error_count() - limit
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: fall back to exponential backoff
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _excerpt(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"
