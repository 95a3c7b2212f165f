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
    containerd_available,
    make_network,
    remove_pod_cgroups,
    running,
)


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
        remove_pod_cgroups()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module", params=["moord", "containerd"])
def cri(request: pytest.FixtureRequest, network: Network, busybox_tar: bytes
        ) -> Iterator[Cri]:
    """moord, then the reference containerd, each running the module's scenarios (the
    containerd run shows the scenario is what a CRI runtime does); each test removes
    its pods."""
    if request.param == "containerd" and not containerd_available():
        pytest.skip("needs containerd")
    with running(request.param, network, busybox_tar) as found:
        yield found


@pytest.fixture
def logs(tmp_path: object) -> str:
    path = os.path.join(str(tmp_path), "pods")
    os.makedirs(path)
    return path
