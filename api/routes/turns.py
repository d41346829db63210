from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import Response

from api import idempotency
from api.deps import DB, AgentName, IdempotencyKey, NamespaceDep, PageParams, SessionName, SettingsDep
from shared.schemas import Page
from shared.turns import service
from shared.turns.schemas import AppendResult, RedactResult, TurnBatch, TurnRead

router = APIRouter(prefix="/v1/namespaces/{namespace}/sessions/{session}/turns", tags=["turns"])


@router.post("", response_model=AppendResult, status_code=201)
def append_turns(ns: NamespaceDep, session: SessionName, batch: TurnBatch, db: DB, settings: SettingsDep,
                 request: Request, idempotency_key: IdempotencyKey = None) -> Response:
    """Append turns atomically (all or none), numbered seq = last + 1, …; limits in the README."""

    def work() -> idempotency.Outcome:
        result = service.append(db, ns, session, batch, max_turns=settings.max_turns_per_batch,
                                max_chars=settings.max_turn_chars)
        return 201, result, {}

    if idempotency_key is None:
        # What idempotency.run does without a key, with the answer serialized by pydantic straight to
        # JSON: a batch's answer is as large as the batch, so no dicts in between.
        _, result, _ = work()
        return Response(result.model_dump_json(), status_code=201, media_type="application/json")
    return idempotency.run(db, ns, idempotency_key, "POST", request.url.path, batch.model_dump(mode="json"), work)


@router.get("", response_model=Page[TurnRead])
def list_turns(ns: NamespaceDep, session: SessionName, db: DB, page: PageParams,
               participant: Annotated[AgentName | None, Query(
                   description="Only the turns this participant sees (its chat_turns).")] = None,
               after_seq: Annotated[int, Query(ge=0, le=2**62, description="Only turns with a larger seq.")] = 0,
               ) -> Page[TurnRead]:
    """List turns in seq order."""
    return service.list_(db, ns, session, participant=participant, after_seq=after_seq, cursor=page[1], limit=page[0])


@router.delete("/{seq}", response_model=RedactResult, responses={
    409: {"description": "The session is deleted."}})
def redact_turn(ns: NamespaceDep, session: SessionName, seq: Annotated[int, PathParam(ge=1, le=2**62)],
                db: DB) -> RedactResult:
    """Redact a turn: its content is erased (the seq stays, marked `redacted_at`), and every insight and memory
    that cites it is deleted, in one transaction. Integrations skip redacted turns. Redacting again changes
    nothing more."""
    return service.redact(db, ns, session, seq)
