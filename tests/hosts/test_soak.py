"""The soak, short: a few minutes of jobs under a fault every ~20 s (tests/hosts/soak.py; `make
soak` runs the long one). Every count must hold: each accepted job succeeded, no append or
integration applied twice, nothing stuck."""

from __future__ import annotations

from tests.hosts.soak import holds, soak


def test_a_short_soak_under_faults_loses_nothing_and_doubles_nothing() -> None:
    counts, faults = soak(jobs=20_000, minutes=2.5, every=20.0, seed=7)
    assert len(faults) >= 6, faults
    assert counts["accepted jobs"] > 100, counts
    assert holds(counts), (counts, faults)
