"""Settings: one typed object, read from ``ENGRAM_*`` environment variables (or a ``.env`` file).

Every process (api, worker, scheduler, flower, cli) reads the same class, so a variable means
the same thing everywhere. Field descriptions are the reference documentation; the README's
settings table is generated from the same text.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Process = Literal["api", "worker", "scheduler", "flower", "migrate"]

# What each process cannot start without. Dev mode (`engram dev`) lifts the secrets, not the URLs:
# it starts embedded servers and passes their URLs to the processes it runs.
_NEEDS: dict[str, tuple[str, ...]] = {
    "api": ("database_url", "redis_url", "admin_key", "webhook_secrets_key"),
    "worker": ("database_url", "redis_url", "webhook_secrets_key"),
    "scheduler": ("database_url", "redis_url"),
    "flower": ("redis_url", "flower_basic_auth"),
    "migrate": ("database_url",),
}
_SECRETS = {"admin_key", "flower_basic_auth", "webhook_secrets_key"}
_HINTS = {
    "database_url": "ENGRAM_DATABASE_URL (a PostgreSQL URL)",
    "redis_url": "ENGRAM_REDIS_URL (a Redis URL)",
    "admin_key": "ENGRAM_ADMIN_KEY (a long random secret, e.g. `openssl rand -hex 32`)",
    "flower_basic_auth": "ENGRAM_FLOWER_BASIC_AUTH (user:password)",
    "webhook_secrets_key": "ENGRAM_WEBHOOK_SECRETS_KEY (a long random secret, e.g. `openssl rand -hex 32`; "
                           "the same on the API and the workers)",
}


def libpq(url: str) -> str:
    """The SQLAlchemy URL (postgresql+psycopg://) in the form psycopg and psql take."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def sentinels_of(url: str) -> list[tuple[str, int]] | None:
    """The (host, port) of each sentinel of a `sentinel://h1:26379;sentinel://h2:26379/0` URL;
    None for a plain Redis URL."""
    if not url.startswith("sentinel://"):
        return None
    found = []
    for part in url.split(";"):
        netloc = urlsplit(part.strip()).netloc.rpartition("@")[2]
        host, _, port = netloc.rpartition(":") if ":" in netloc else (netloc, "", "26379")
        found.append((host.strip("[]"), int(port or 26379)))
    return found


def redis_db(url: str) -> int:
    """The database number at the end of a Redis or sentinel URL (0 when none)."""
    path = urlsplit(url.split(";")[-1].strip()).path.strip("/")
    return int(path) if path.isdigit() else 0


class SettingsError(RuntimeError):
    """The settings cannot start this process; the message says what to set."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ENGRAM_", env_file=".env", extra="ignore")

    # --- where state lives -------------------------------------------------------------------
    database_url: str | None = Field(
        None,
        description="PostgreSQL URL, e.g. postgresql://user:pw@host:5432/engram. "
        "Unset: `engram dev` starts an embedded PostgreSQL under ENGRAM_DATA_DIR.",
    )
    redis_url: str | None = Field(
        None,
        description="Redis URL used as the Celery broker, e.g. redis://host:6379/0, or the Redis Sentinels of a "
        "replicated Redis, `;`-separated: sentinel://s1:26379;sentinel://s2:26379;sentinel://s3:26379/0 "
        "(with ENGRAM_REDIS_SENTINEL_MASTER). Unset: `engram dev` starts an embedded Redis under ENGRAM_DATA_DIR.",
    )
    redis_sentinel_master: str = Field(
        "mymaster", min_length=1, description="With sentinel:// addresses in ENGRAM_REDIS_URL: the name of the master "
        "the sentinels watch. Every process follows the master the sentinels name, through a failover.")
    data_dir: Path = Field(
        Path("./.engram"),
        description="Folder for the embedded PostgreSQL and Redis data (kept between runs).",
    )

    # --- processes -----------------------------------------------------------------------------
    api_host: str = Field("127.0.0.1", description="Address the API binds to.")
    api_port: int = Field(8000, ge=1, le=65535, description="Port the API listens on.")
    api_workers: int = Field(1, ge=1, le=64, description="uvicorn worker processes for `engram api`.")
    flower_port: int = Field(5555, ge=1, le=65535, description="Port of the Flower dashboard.")
    flower_basic_auth: SecretStr | None = Field(
        None,
        description="`user:password` protecting Flower. Required outside dev mode.",
    )
    worker_concurrency: int = Field(2, ge=1, le=256, description="Processes per `engram worker`.")
    worker_metrics_port: int = Field(
        9540, ge=0, le=65535, description="Port of a worker's Prometheus metrics (`--metrics-port`); 0: none. "
        "Workers on one host need one port each.")
    dev_mode: bool = Field(
        False,
        description="Set by `engram dev`: without ENGRAM_ADMIN_KEY the API runs open "
        "(no authentication) and Flower runs without basic auth.",
    )

    # --- security ------------------------------------------------------------------------------
    admin_key: SecretStr | None = Field(
        None,
        description="Bearer key of the administrator (manages namespaces and namespace keys). "
        "Required by every way of starting except `engram dev`.",
    )

    # --- webhooks ------------------------------------------------------------------------------
    webhook_secrets_key: SecretStr | None = Field(
        None,
        description="Encrypts the webhooks' signing secrets in PostgreSQL, so that a dump of the database "
        "alone cannot sign. The same value on the API and the workers; required except by `engram dev`.",
    )
    webhook_allow_private_networks: bool | None = Field(
        None,
        description="Allow webhook URLs that resolve to private, loopback or link-local addresses. "
        "Default: false, except under `engram dev` (which says so at start).",
    )
    webhook_max_attempts: int = Field(10, ge=1, le=50, description="Tries of one delivery before it is marked failed.")
    webhook_retry_base_seconds: float = Field(
        10.0, gt=0, description="Wait before the first retry of a delivery; it doubles after each try, up to an hour.")
    webhook_timeout_seconds: float = Field(10.0, gt=0, le=120, description="Timeout of one delivery request.")

    # --- integration -----------------------------------------------------------------------------
    integrator: str = Field(
        "builtin",
        description="`builtin` (offline, deterministic), `openai` (any OpenAI-compatible "
        "chat-completions endpoint) or a dotted path `package.module:factory` to your own.",
    )
    llm_base_url: str = Field(
        "https://api.openai.com/v1", description="Base URL of the chat-completions endpoint."
    )
    llm_model: str = Field("gpt-4o-mini", description="Model name sent to the endpoint.")
    llm_api_key: SecretStr | None = Field(None, description="Bearer key for the endpoint.")
    llm_timeout_seconds: float = Field(60.0, gt=0, le=600, description="Timeout of one LLM call.")
    llm_max_retries: int = Field(
        4, ge=0, le=20, description="Retries (exponential backoff) on network errors, 429 and 5xx."
    )
    memory_similarity_threshold: float = Field(
        90.0,
        ge=0,
        le=100,
        description="A new memory whose similarity (rapidfuzz token-sort ratio, 0–100) to one of the agent's "
        "recent memories of the same kind reaches this value is a near-duplicate: it reinforces that memory "
        "(reinforcements + 1, last_seen_at) instead of being stored again.",
    )

    integration_context_turns: int = Field(
        60,
        ge=0,
        le=10_000,
        description="Turns of the session a participant integrated before, the latest this many, shown to the "
        "integrator beside the new ones as context (the built-in integrator's profiles gather a name's earlier "
        "sentences from them). 0: none.",
    )

    memory_dedup_window: int = Field(
        1000,
        ge=1,
        le=1_000_000,
        description="Near-duplicates are looked for among the agent's this many most recent memories "
        "(bounds the cost of an integration for agents that remember a lot).",
    )

    # --- embeddings ------------------------------------------------------------------------------
    embedder: str = Field(
        "none",
        description="`none` (full-text recall only), `openai` (any OpenAI-compatible `/embeddings` endpoint) or a "
        "dotted path `package.module:factory` to your own. Workers embed memories during integration; the API "
        "embeds recall queries. Needs pgvector in PostgreSQL, else recall stays full-text and says so.",
    )
    embedding_base_url: str | None = Field(
        None, description="Base URL of the `/embeddings` endpoint; default: ENGRAM_LLM_BASE_URL.")
    embedding_model: str = Field("text-embedding-3-small", description="Embedding model name sent to the endpoint.")
    embedding_api_key: SecretStr | None = Field(None, description="Bearer key of the endpoint; default: ENGRAM_LLM_API_KEY.")
    embedding_dimensions: int = Field(1536, ge=1, le=16000, description="Length of the model's vectors.")
    embedding_batch_size: int = Field(64, ge=1, le=2048, description="Texts per `/embeddings` request.")

    # --- recall ----------------------------------------------------------------------------------
    # Full-text recall ranks by BM25 over the agent's memories (statistics kept by triggers, see
    # shared/memories/repository.py); with an embedder, the vector ranking joins it by weighted
    # reciprocal rank fusion. Recency only breaks ties; importance is shown, not ranked on.
    recall_bm25_k1: float = Field(
        1.2, ge=0, le=10, description="BM25 term-frequency saturation: how much a word said again adds.")
    recall_bm25_b: float = Field(
        0.75, ge=0, le=1, description="BM25 length normalization: 0 none, 1 a memory's score scales with its length "
        "against the agent's average.")
    recall_max_scored: int = Field(
        1000, ge=10, le=1_000_000, description="Full-text recall scores at most this many memories per query: those "
        "holding the query's rarest words, rarest first while their memory counts add up to at most this (commoner "
        "words only add to their scores); when even the rarest word is in more, its shortest matches. It bounds a "
        "query's cost however much the agent remembers, and never by age.")
    recall_weight_reflections: float = Field(
        0.6, ge=0, le=10, description="A reflection's BM25 score is multiplied by this (an observation's by 1).")
    recall_weight_own_words: float = Field(
        0.6, ge=0, le=10, description="The BM25 score of a memory of the asking agent's own words (an observation "
        "whose speaker is the agent) is multiplied by this: what others told an agent holds the facts it is asked "
        "about, its own replies restate and elaborate them.")
    recall_candidates: int = Field(
        200, ge=10, le=10_000, description="Candidates each ranking (full-text, vector) hands to the fusion.")
    recall_weight_vectors: float = Field(
        1.0, ge=0, le=10, description="Weight of the vector ranking in the fusion, with an embedder (full-text weighs 1).")
    recall_rrf_k: int = Field(60, ge=1, le=10_000, description="Reciprocal rank fusion constant: weight / (k + rank).")

    # --- jobs ------------------------------------------------------------------------------------
    # Field after Field of one shape, here as in every section: each setting declared on its own, with
    # its bounds and its description (the reference text the README's settings table is made from).
    job_lease_seconds: float = Field(
        60.0, gt=0, description="A running job's lease; the worker renews it every third of it."
    )
    job_max_attempts: int = Field(
        3, ge=1, le=50, description="Runs of one job (worker lost, lease expired) before it fails."
    )
    job_redispatch_seconds: float = Field(
        30.0,
        gt=0,
        description="A job still queued this long after its message was sent gets a new message "
        "(the message was lost, e.g. Redis restarted empty); the wait doubles with each re-send, up to 16x.",
    )
    job_message_expires_seconds: int = Field(
        900, ge=10, description="Celery message expiry; the reconciler re-sends after it."
    )
    job_retention_days: float = Field(
        7.0, gt=0, description="Finished jobs are kept this long, then purged."
    )
    task_soft_time_limit_seconds: int = Field(
        1700, ge=1, description="Soft time limit of one job run (below the visibility timeout)."
    )
    broker_visibility_timeout_seconds: int = Field(
        3600,
        ge=60,
        description="Redis visibility timeout: an unacknowledged message is redelivered after it.",
    )
    reconcile_interval_seconds: float = Field(
        5.0, gt=0, description="How often the scheduler re-dispatches, expires leases and purges."
    )
    idempotency_retention_hours: float = Field(
        24.0, gt=0, description="How long an Idempotency-Key and its first response are kept."
    )

    # --- sessions --------------------------------------------------------------------------------
    session_retention_days: float = Field(
        30.0,
        gt=0,
        description="A soft-deleted session can be undeleted for this long (its expire_time), "
        "then the scheduler purges it with its turns, participants, insights and jobs.",
    )

    # --- limits ----------------------------------------------------------------------------------
    max_body_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, description="Largest request body; larger ones answer 413."
    )
    max_turns_per_batch: int = Field(1000, ge=1, description="Most turns in one append.")
    max_turn_chars: int = Field(32_000, ge=1, description="Longest turn content, in characters.")
    max_page_size: int = Field(200, ge=1, description="Largest `limit` of a list.")
    max_wait_seconds: int = Field(30, ge=0, le=300, description="Largest `?wait=` of a job GET.")

    db_pool_size: int = Field(
        20,
        ge=1,
        le=500,
        description="PostgreSQL connections per process and pool. The API has two pools of this size: "
        "one for the event loop (accepting and reading jobs) and one for its thread pool (the other "
        "endpoints), which runs at most this many requests at once.",
    )

    db_pool_timeout_seconds: float = Field(
        5.0, gt=0, le=300, description="A request waits at most this long for a pooled PostgreSQL connection, "
        "then answers 503.")
    db_connect_timeout_seconds: float = Field(
        5.0, ge=1, le=300, description="A connection attempt to PostgreSQL gives up after this long.")
    db_tcp_timeout_seconds: float = Field(
        10.0, ge=2, le=3600, description="A PostgreSQL connection whose link stops answering (a silent network cut) "
        "breaks after about this long: sent data unacknowledged this long (tcp_user_timeout), or keepalive probes "
        "unanswered from half of it on. With the pool and connect timeouts it bounds how long a request can hang "
        "on a lost database.")
    db_statement_timeout_seconds: float = Field(
        60.0, ge=1, le=86_400, description="PostgreSQL cancels a statement of Engram's that runs longer than this "
        "(statement_timeout); migrations are not bounded.")
    db_idle_in_transaction_timeout_seconds: float = Field(
        30.0, ge=1, le=86_400, description="PostgreSQL ends the session of an Engram process that leaves a "
        "transaction open and silent this long (idle_in_transaction_session_timeout): a frozen or cut-off worker "
        "releases its locks.")

    redis_tcp_timeout_seconds: float = Field(
        10.0, ge=2, le=3600, description="A Redis connection whose link stops answering (a silent network cut) "
        "breaks after about this long (reply overdue, unacknowledged data, keepalive probes), and a worker's "
        "consumer connects again; messages sent meanwhile wait in PostgreSQL and are sent again.")

    # --- logging -----------------------------------------------------------------------------
    log_level: str = Field("INFO", description="Log level of every process.")

    @field_validator("database_url")
    @classmethod
    def _psycopg_driver(cls, v: str | None) -> str | None:
        # Accept the URL every PostgreSQL tool understands and pick the psycopg 3 driver.
        if v and v.startswith(("postgres://", "postgresql://")):
            v = "postgresql+psycopg://" + v.split("://", 1)[1]
        return v

    @property
    def webhooks_reach_private_networks(self) -> bool:
        if self.webhook_allow_private_networks is not None:
            return self.webhook_allow_private_networks
        return self.dev_mode

    @property
    def auth_required(self) -> bool:
        return self.admin_key is not None or not self.dev_mode

    def check_for(self, process: Process) -> Settings:
        """These settings, or one SettingsError naming everything ``process`` misses."""
        missing = [name for name in _NEEDS[process]
                   if getattr(self, name) is None and not (self.dev_mode and name in _SECRETS)]
        if missing:
            raise SettingsError(
                f"`engram {process}` needs " + ", ".join(_HINTS[m] for m in missing) + ". "
                "Set them in the environment or in .env; `engram dev` runs everything locally with embedded "
                "PostgreSQL and Redis and needs none of them.")
        return self

    @property
    def db_url(self) -> str:
        """The database URL; a SettingsError when it is not set."""
        if self.database_url is None:
            self.check_for("migrate")
        return str(self.database_url)

    @property
    def libpq_url(self) -> str:
        """The database URL as libpq takes it (psycopg's own connections, psql)."""
        return libpq(self.db_url)

    @property
    def redis_sentinels(self) -> list[tuple[str, int]] | None:
        """The sentinels' (host, port) when ENGRAM_REDIS_URL names sentinels, else None."""
        return sentinels_of(self.redis_url) if self.redis_url else None

    @property
    def broker_url(self) -> str:
        """The Redis URL; a SettingsError when it is not set. Never a default broker."""
        if self.redis_url is None:
            raise SettingsError(f"{_HINTS['redis_url']} is not set; `engram dev` starts an embedded Redis.")
        return self.redis_url


@lru_cache
def get_settings() -> Settings:
    return Settings()
