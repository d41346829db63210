"""The host tier: Engram's parts on separate hosts (network namespaces, tests/hosts.py), with
their own PostgreSQL and Redis, and faults between them."""

from __future__ import annotations

import pytest

from tests.hosts.net import unavailable


@pytest.fixture(scope="package", autouse=True)
def can_make_hosts() -> None:
    why = unavailable()
    if why is not None:
        pytest.fail(why, pytrace=False)
