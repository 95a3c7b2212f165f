"""The registry remembers verified basic credentials instead of running bcrypt (tens
of milliseconds of its event loop) on every request, and never answers a wrong or
outdated password from that memory."""

from __future__ import annotations

import asyncio
import time

import bcrypt

from moorage.registry.auth import VERIFIED_CACHE_SIZE, Auth


def _check(auth: Auth, user: str, password: str) -> bool:
    return asyncio.run(auth.check_password(user, password))


def _hash(password: str, rounds: int = 10) -> bytes:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds))


def test_a_verified_password_is_not_hashed_again() -> None:
    auth = Auth({"alice": _hash("s3cret", rounds=12)})
    started = time.monotonic()
    assert _check(auth, "alice", "s3cret")
    first = time.monotonic() - started
    started = time.monotonic()
    for _ in range(100):
        assert _check(auth, "alice", "s3cret")
    again = (time.monotonic() - started) / 100
    assert again < first / 50, (first, again)


def test_wrong_and_changed_passwords_are_refused() -> None:
    auth = Auth({"alice": _hash("s3cret"), "bob": _hash("b0b")})
    assert _check(auth, "alice", "s3cret")
    assert not _check(auth, "alice", "s3cret ")
    assert not _check(auth, "bob", "s3cret")
    assert not _check(auth, "nobody", "s3cret")
    auth.users["alice"] = _hash("new")  # the htpasswd entry changed
    assert not _check(auth, "alice", "s3cret")
    assert _check(auth, "alice", "new")
    del auth.users["alice"]
    assert not _check(auth, "alice", "new")


def test_the_memory_is_bounded() -> None:
    hashed = _hash("pw", rounds=4)
    auth = Auth({f"user{i}": hashed for i in range(VERIFIED_CACHE_SIZE + 10)})
    for i in range(VERIFIED_CACHE_SIZE + 10):
        assert _check(auth, f"user{i}", "pw")
    assert len(auth._verified) == VERIFIED_CACHE_SIZE
    assert "user0" not in auth._verified
