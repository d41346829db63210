"""Broker failover with Redis Sentinel: three Redis servers (a master and two replicas) and three
sentinels on hosts of their own; Engram is given the sentinels (ENGRAM_REDIS_URL=sentinel://…).
The master is killed in the middle of a load of integrations: the sentinels promote a replica,
every process follows it, the API keeps accepting, and every accepted job runs once."""

from __future__ import annotations

import shutil
import signal
import tempfile
from collections.abc import Callable
from pathlib import Path

from tests.hosts.cluster import cluster
from tests.hosts.soak import Soak, holds


def test_a_redis_master_killed_mid_load_fails_over_and_loses_no_job() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="engram-s-"))
    try:
        with cluster("sentinel", tmp, sentinel=True) as c:
            first = c.sentinel_master()
            assert first == c.redis.address

            def kill_master() -> Callable[[], None]:
                c.redis.stop("redis", signal.SIGKILL)  # its sentinel stays: two of three agree it is down
                return lambda: None

            soak = Soak(c, jobs=100_000, minutes=1.5, every=30.0, seed=3,
                        faults=[("Redis master killed (kill -9)", kill_master)])
            counts = soak.run()
            assert [name for _, name in soak.tally.faults] == ["Redis master killed (kill -9)"]
            assert c.sentinel_master() in {r.address for r in c.replicas}  # failed over
            assert set(soak.tally.answers) <= {200, 201, 202}, soak.tally.answers  # the API kept accepting
            assert counts["accepted jobs"] > 50, counts
            assert holds(counts), counts
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
