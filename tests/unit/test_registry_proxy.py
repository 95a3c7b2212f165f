"""Which proxy a registry request takes (distribution/mirrors.proxy_for), as dockerd's
Go ProxyFromEnvironment chooses: by scheme, none for NO_PROXY, localhost and loopback;
and the words of a failed dial, direct or through the proxy."""

from __future__ import annotations

import socket

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey

from moorage.distribution.client import _dial_error
from moorage.distribution.mirrors import proxy_for


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy",
                 "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_by_scheme(env: pytest.MonkeyPatch) -> None:
    env.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    env.setenv("http_proxy", "proxy.internal:8080")
    assert proxy_for("https://registry-1.docker.io/v2/") == "http://127.0.0.1:3128"
    assert proxy_for("http://registry.internal/v2/") == "http://proxy.internal:8080"


def test_none_without_one(env: pytest.MonkeyPatch) -> None:
    assert proxy_for("https://registry-1.docker.io/v2/") is None


@pytest.mark.parametrize("url", ["https://127.0.0.1:5000/v2/", "https://localhost:5000/v2/",
                                 "https://[::1]:5000/v2/", "https://127.3.4.5/v2/",
                                 "https://registry.internal/v2/"])
def test_direct(env: pytest.MonkeyPatch, url: str) -> None:
    env.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    env.setenv("NO_PROXY", "registry.internal")
    assert proxy_for(url) is None


def _key(host: str, port: int) -> ConnectionKey:
    return ConnectionKey(host, port, True, True, None, None, None, None)


def test_dial_errors_in_gos_words() -> None:
    """What a pull says when the registry or its proxy cannot be reached, as dockerd."""
    url = "https://registry.invalid/v2/"
    unknown = aiohttp.ClientConnectorError(_key("registry.invalid", 443),
                                           socket.gaierror(-2, "Name or service not known"))
    assert _dial_error("GET", url, unknown) == \
        'Get "https://registry.invalid/v2/": dial tcp: lookup registry.invalid: no such host'
    refused = aiohttp.ClientProxyConnectionError(_key("127.0.0.1", 3128),
                                                 ConnectionRefusedError(111, "refused"))
    assert _dial_error("GET", url, refused) == ('Get "https://registry.invalid/v2/": '
                                                "proxyconnect tcp: dial tcp 127.0.0.1:3128: "
                                                "connect: connection refused")
