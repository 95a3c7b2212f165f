"""moord killed with SIGKILL six times at random moments of real work (crashkit.py):
each restart finds a clean store and containers as their story allows, and nothing
is left at the end. scripts/crash_campaign.py runs the same campaign for longer."""

from __future__ import annotations

import tempfile

from crashkit import campaign


def test_crash_campaign(busybox_tar: bytes) -> None:
    with tempfile.TemporaryDirectory(prefix="moor-crash-") as base:
        outcome = campaign(base, busybox_tar, kills=6, seed=12)
    assert outcome.kills == 6
    assert outcome.faults == [], "\n".join(outcome.faults)
