from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import DB, AgentName, NamespaceDep, PageParams, SessionName
from shared.schemas import Page
from shared.sessions import service
from shared.sessions.schemas import InsightRead, ParticipantRead

router = APIRouter(prefix="/v1/namespaces/{namespace}/sessions/{session}/participants", tags=["participants"])


@router.put("/{participant}", response_model=ParticipantRead,
            responses={201: {"model": ParticipantRead, "description": "Bound"}})
def bind(ns: NamespaceDep, session: SessionName, participant: AgentName, db: DB, response: Response) -> ParticipantRead:
    """Bind an agent of the namespace (201); it sees turns appended from now on. Already bound: 200."""
    read, created = service.bind(db, ns, session, participant)
    response.status_code = 201 if created else 200
    return read


@router.delete("/{participant}", status_code=204)
def unbind(ns: NamespaceDep, session: SessionName, participant: AgentName, db: DB) -> Response:
    """Unbind a participant. Its insights and the agent's memories stay."""
    service.unbind(db, ns, session, participant)
    return Response(status_code=204)


@router.get("", response_model=Page[ParticipantRead])
def list_participants(ns: NamespaceDep, session: SessionName, db: DB) -> Page[ParticipantRead]:
    """List participants with their watermark and pending (not yet integrated) turns; one page."""
    return service.participants(db, ns, session)


@router.get("/{participant}/insights", response_model=Page[InsightRead])
def list_insights(ns: NamespaceDep, session: SessionName, participant: AgentName, db: DB,
                  page: PageParams) -> Page[InsightRead]:
    """List the insights integrations drew for this participant in this session, oldest first."""
    return service.insights(db, ns, session, participant, cursor=page[1], limit=page[0])
