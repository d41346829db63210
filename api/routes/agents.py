from __future__ import annotations

from fastapi import APIRouter, Response

from api.deps import DB, AgentName, NamespaceDep, PageParams
from shared.agents import service
from shared.agents.schemas import AgentRead, AgentUpsert
from shared.schemas import Page

router = APIRouter(prefix="/v1/namespaces/{namespace}/agents", tags=["agents"])


@router.put("/{agent}", response_model=AgentRead, responses={201: {"model": AgentRead, "description": "Created"}})
def put_agent(ns: NamespaceDep, agent: AgentName, db: DB, response: Response,
              body: AgentUpsert | None = None) -> AgentRead:
    """Create an agent (201) or replace its description and metadata (200)."""
    read, created = service.put(db, ns, agent, body or AgentUpsert())
    response.status_code = 201 if created else 200
    return read


# list/get/delete as webhooks.py's and alike: each route declared on its own, with its own types, status
# codes and docstring (its OpenAPI text); a route factory would hide them.
@router.get("", response_model=Page[AgentRead])
def list_agents(ns: NamespaceDep, db: DB, page: PageParams) -> Page[AgentRead]:
    """List the namespace's agents by name."""
    return service.list_(db, ns, cursor=page[1], limit=page[0])


@router.get("/{agent}", response_model=AgentRead)
def get_agent(ns: NamespaceDep, agent: AgentName, db: DB) -> AgentRead:
    """Get one agent."""
    return service.to_read(service.get(db, ns, agent))


@router.delete("/{agent}", status_code=204)
def delete_agent(ns: NamespaceDep, agent: AgentName, db: DB) -> Response:
    """Delete an agent with its memories, insights and session participations."""
    service.delete(db, ns, agent)
    return Response(status_code=204)

