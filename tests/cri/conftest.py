"""A moord serving the CRI on a temporary socket, data-root and CNI network."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest
from crikit import (
    Cri,
    Network,
    clean_network,
    load_images,
    make_network,
    remove_all_pods,
    start_cri,
)
from enginekit import stop_daemon


def _needs() -> None:
    if not os.path.isfile("/usr/lib/cni/bridge"):
        pytest.skip("needs Debian's containernetworking-plugins (make deps)")


@pytest.fixture(scope="module")
def network() -> Iterator[Network]:
    _needs()
    base = tempfile.mkdtemp(prefix="cri-net-")
    found = make_network(base)
    try:
        yield found
    finally:
        clean_network(found)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def cri(network: Network, busybox_tar: bytes) -> Iterator[Cri]:
    """One daemon per module; each test removes its pods."""
    with tempfile.TemporaryDirectory(prefix="cri-moord-") as base:
        found = start_cri(base, network)
        try:
            load_images(found, busybox_tar)
            yield found
        finally:
            try:
                remove_all_pods(found)
            finally:
                found.close()
                stop_daemon(found.daemon)


@pytest.fixture
def logs(tmp_path: object) -> str:
    path = os.path.join(str(tmp_path), "pods")
    os.makedirs(path)
    return path
