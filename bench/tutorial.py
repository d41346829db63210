"""The tutorial-shape peer of submit: `POST /sessions/{name}/integrate` as a new user writes it
from the FastAPI and Celery tutorials. A sync handler, a SQLAlchemy ORM Session per request from a
`get_db` dependency (sessionmaker, the engine's default pool), an ORM model on its own table
(created by `metadata.create_all` at start), insert, commit, refresh, then `send_task`; 202 with
the job. Same PostgreSQL and Redis as Engram; its queue ("tutorial") is consumed by nobody and
emptied by the bench between rounds. Served as bench/hello.py serves hello world.

    python -m bench.tutorial --port 8002
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime

from celery import Celery
from fastapi import Depends, FastAPI
from pydantic import BaseModel, ConfigDict
from sqlalchemy import DateTime, Text, create_engine, func
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from bench.hello import port, serve
from shared.config import get_settings

QUEUE = "tutorial"  # Engram's workers listen on "engram" only
settings = get_settings()
engine = create_engine(settings.db_url)
SessionLocal = sessionmaker(bind=engine, autoflush=False)
celery_app = Celery("tutorial", broker=settings.broker_url)


class Base(DeclarativeBase):
    pass


class Job(Base):
    __tablename__ = "tutorial_jobs"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    session: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    session: str
    kind: str
    status: str
    created_at: datetime


def get_db() -> Iterator[Session]:
    db = SessionLocal()
    try:
        yield db
    finally:
        db.close()


app = FastAPI(title="tutorial")


@app.post("/sessions/{name}/integrate", status_code=202, response_model=JobOut)
def integrate(name: str, db: Session = Depends(get_db)) -> Job:  # noqa: B008 - the tutorials' way
    job = Job(session=name, kind="integrate", status="queued")
    db.add(job)
    db.commit()
    db.refresh(job)
    celery_app.send_task("tutorial.integrate", args=[str(job.id)], queue=QUEUE)
    return job


def main() -> None:
    given = port()
    Base.metadata.create_all(engine)  # once, before uvicorn imports the app (in each worker process)
    engine.dispose()
    serve("bench.tutorial:app", given)


if __name__ == "__main__":
    main()
