"""Types shared by every domain's schemas: names, safe strings, JSON objects, pages."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from shared.errors import Unprocessable

SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN)]

MAX_JSON_BYTES = 64 * 1024


def _no_nul(value: str) -> str:
    # PostgreSQL text and jsonb cannot hold U+0000, and UTF-8 cannot hold a lone surrogate (JSON's
    # "\ud800" escape decodes to one): refuse both here, as a 422, not a 500 later.
    if "\x00" in value:
        raise ValueError("must not contain NUL (U+0000) characters")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"must be valid Unicode: lone surrogate U+{ord(value[exc.start]):04X} "
                             f"at character {exc.start}") from None
    return value


NO_NUL = "^[^\u0000]*$"  # the rule of _no_nul, as the OpenAPI document states it
SafeStr = Annotated[str, AfterValidator(_no_nul), Field(json_schema_extra={"pattern": NO_NUL})]


def _check_json(value: Any, depth: int = 0) -> None:
    if depth > 32:
        raise ValueError("is nested deeper than 32 levels")
    if isinstance(value, str):
        _no_nul(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            _no_nul(k)
            _check_json(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _check_json(v, depth + 1)
    elif isinstance(value, float) and (value != value or abs(value) == float("inf")):
        raise ValueError("must not contain NaN or Infinity")
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**100:
        raise ValueError("has an integer of more than 100 digits")


def check_json_object(value: dict[str, Any]) -> dict[str, Any]:
    _check_json(value)
    if len(json.dumps(value, separators=(",", ":"))) > MAX_JSON_BYTES:
        raise ValueError(f"is larger than {MAX_JSON_BYTES} bytes serialized")
    return value


# The OpenAPI document states the rules that a schema can: no NUL in keys or strings, at any depth.
_JSON_VALUE: dict[str, Any] = {"anyOf": [
    {"type": "string", "pattern": NO_NUL}, {"type": "number"}, {"type": "boolean"}, {"type": "null"},
    {"type": "array", "items": {}}, {"type": "object", "propertyNames": {"pattern": NO_NUL}}]}
JsonObject = Annotated[dict[str, Any], AfterValidator(check_json_object), Field(json_schema_extra={
    "propertyNames": {"pattern": NO_NUL}, "additionalProperties": _JSON_VALUE})]


class Schema(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class InputSchema(BaseModel):
    # Unknown fields are an error: a typo must not be silently ignored.
    model_config = ConfigDict(extra="forbid")


T = TypeVar("T")
R = TypeVar("R")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = Field(None, description="Pass as `cursor` to get the next page; null on the last.")


def encode_cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None, kind: type) -> Any:
    """The position in a cursor, or a 422 naming the cursor when it was not one of ours."""
    if cursor is None:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, UnicodeDecodeError):
        raise Unprocessable("is not a cursor returned by this list", loc=["query", "cursor"]) from None
    if not isinstance(value, kind) or isinstance(value, bool) or (isinstance(value, int) and abs(value) >= 2**63):
        raise Unprocessable("is not a cursor returned by this list", loc=["query", "cursor"])
    return value


def page_of(fetch: Callable[[Any, int], Sequence[R]], cursor: str | None, position_type: type, limit: int, *,
            item: Callable[[R], T], position: Callable[[R], Any]) -> Page[T]:
    """A page of a list, the one place the rule is written: ``fetch(after, n)`` reads up to ``n``
    rows after the cursor's position; one row more than ``limit`` is read only to learn whether a
    next page exists, and the next cursor carries the position of the page's last row."""
    rows = list(fetch(decode_cursor(cursor, position_type), limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page[T](items=[item(r) for r in rows], next_cursor=encode_cursor(position(rows[-1])) if more else None)
