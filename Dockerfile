# syntax=docker/dockerfile:1
#
# One image for every Engram process; the command picks the role:
#   engram migrate | api | worker | scheduler | flower   (see docker-compose.yml)
#
# Two stages: the first installs Engram and its dependencies into a virtualenv, the second
# copies only that virtualenv onto a clean python:3.11-slim, so neither the source tree nor
# pip's build artefacts end up in the image. Every dependency ships a manylinux wheel
# (psycopg[binary], rapidfuzz, ...), so no compiler or -dev package is installed anywhere.

# --- build: install the project into /opt/venv ----------------------------------------------
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# The lock, the packages listed in pyproject's [tool.setuptools.packages.find] include, and the
# Python client (its own distribution, which the CLI uses). README.md is left out on purpose: setuptools only
# warns without it, and the image has no use for it. The migrations ship inside `shared`, so
# `engram migrate` needs no alembic.ini.
COPY pyproject.toml ./
COPY requirements/lock.txt ./requirements/lock.txt
COPY api ./api
COPY worker ./worker
COPY shared ./shared
COPY cli ./cli
COPY client ./client

# Regular (non-editable) installs without the dev extras, at the versions of the lock (make lock):
# requirements/lock.txt pins every dependency of the server, the client and the dev extra, so as
# constraints it fixes each package installed here and adds none of the test tools. The client is
# installed from its path, never by name: "engram-client" on PyPI is an unrelated project.
RUN pip install -c requirements/lock.txt ./client . \
 && pip check

# --- runtime --------------------------------------------------------------------------------
FROM python:3.11-slim AS runtime

LABEL org.opencontainers.image.title="engram" \
      org.opencontainers.image.description="Working memory for AI agents: API, Celery worker, scheduler and Flower"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

# A fixed numeric uid/gid, so orchestrators can check runAsNonRoot and volumes can be chowned.
RUN groupadd --system --gid 10001 engram \
 && useradd --system --uid 10001 --gid engram --home-dir /app --no-create-home \
            --shell /usr/sbin/nologin engram \
 && install -d -o engram -g engram -m 0750 /app

COPY --from=build /opt/venv /opt/venv

WORKDIR /app
USER 10001:10001

# 8000: the API (engram api); 5555: Flower (engram flower).
EXPOSE 8000 5555

# No HEALTHCHECK here: one image runs five different roles (the api's check would mark every
# worker unhealthy). docker-compose.yml defines a check per service.

ENTRYPOINT ["engram"]
CMD ["api", "--host", "0.0.0.0"]
