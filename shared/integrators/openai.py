"""An integrator backed by any OpenAI-compatible chat-completions endpoint.

The prompt follows the *reflection* step of Generative Agents (Park et al., 2023): the model reads
the agent's recent turns and infers a few higher-level insights, each with an importance score and
the turns it rests on. The answer is validated strictly; anything malformed is an error rather than
a half-trusted memory.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from typing import Annotated, Any

import httpx
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, StringConstraints, ValidationError

from shared.endpoints import EndpointError, JsonEndpoint, excerpt
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
        self.max_turn_chars = max_turn_chars
        self.endpoint = JsonEndpoint(self.url, "chat-completions", api_key, timeout, max_retries, client,
                                      backoff_base=backoff_base, backoff_max=backoff_max,
                                      retry_after_cap=retry_after_cap)

    def __repr__(self) -> str:
        return f"OpenAIIntegrator(url={self.url!r}, model={self.model!r})"

    def close(self) -> None:
        """Close the HTTP client if this integrator created it."""
        self.endpoint.close()

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
        try:
            response = self.endpoint.post(body)
        except EndpointError as exc:
            raise IntegratorError(str(exc), retryable=exc.retryable) from None
        return self._message_content(response)

    def _message_content(self, response: httpx.Response) -> str:
        try:
            data = response.json()
            content = data["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise IntegratorError(
                f"chat-completions endpoint {self.url} did not answer a chat completion: "
                f"{excerpt(response.text)}",
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
        raise invalid(f"not JSON ({exc}): {excerpt(content)}") from None
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
