"""The suite's guard against Docker Hub (tests/conftest.py): `docker run` of an image the
daemon lacks makes the CLI ask its daemon for a pull from Docker Hub; under the guard that
pull fails on 127.0.0.1. moord and the CLI are watched with strace: neither resolves nor
reaches an outside name. dockerd 20.10 resolves "docker.io" itself before any pull (the
guard cannot stop that), so its case runs in a network namespace of its own with a DNS
sink at the resolver's address, which shows registry-1.docker.io is never asked for."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from clikit import Clis
from enginekit import Daemon
from peers import DOCKER_CLI, dockerd_available, in_netns, start_dockerd, stop_dockerd

PROBE = "hub-guard-probe:latest"

_TRACED = "trace=connect,sendto,sendmsg,sendmmsg"
# connect(…, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.0.0.1")}, …)
_INET = re.compile(r'sa_family=AF_INET6?, sin6?_port=htons\((\d+)\).*?'
                   r'(?:inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)")')


def _outside(trace: str) -> list[str]:
    """The lines of an strace log that look a name up (DNS on port 53, nscd, resolved)
    or reach beyond loopback."""
    found = []
    for line in trace.splitlines():
        address = _INET.search(line)
        beyond = address is not None and (
            address[1] == "53" or not ((address[2] or "").startswith("127.")
                                       or address[3] == "::1"))
        if beyond or "nscd" in line or "systemd/resolve" in line or "\\6docker\\2io" in line:
            found.append(line)
    return found


def _strace(log: Path, *command: str) -> list[str]:
    return ["strace", "-f", "-s", "256", "-e", _TRACED, "-o", str(log), *command]


def _proxy_port() -> str:
    return os.environ["HTTPS_PROXY"].rsplit(":", 1)[1]


def test_moord_and_cli_never_look_docker_hub_up(moord: Daemon, moord_clis: Clis,
                                               tmp_path: Path) -> None:
    daemon_log, cli_log = tmp_path / "daemon.trace", tmp_path / "cli.trace"
    tracer = subprocess.Popen(_strace(daemon_log, "-p", str(moord.process.pid)),
                              stderr=subprocess.PIPE, text=True)
    try:
        assert tracer.stderr is not None and "attached" in tracer.stderr.readline()
        ran = subprocess.run(_strace(cli_log, DOCKER_CLI, "run", "--rm", PROBE, "true"),
                             env=moord_clis.env(), capture_output=True, timeout=60)
    finally:
        tracer.send_signal(signal.SIGINT)
        tracer.communicate(timeout=30)
    stderr = ran.stderr.decode()
    assert ran.returncode == 125, stderr
    assert f"Unable to find image '{PROBE}' locally" in stderr
    # The pull was tried, and went to the guard's refusing proxy.
    daemon_trace = daemon_log.read_text()
    assert f"htons({_proxy_port()})" in daemon_trace, stderr
    assert _outside(daemon_trace) == []
    assert _outside(cli_log.read_text()) == []


# Answers every question "no such name" at once (a silent server would hold dockerd for
# its resolver's timeouts) and prints each question's name, one a line, until stdin closes.
_SINK = """
import select, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 53))
print("ready", flush=True)
while select.select([s, sys.stdin], [], [])[0] != [sys.stdin]:
    query, peer = s.recvfrom(512)
    labels, i = [], 12
    while query[i]:
        labels.append(query[i + 1:i + 1 + query[i]].decode())
        i += 1 + query[i]
    s.sendto(query[:2] + b"\\x81\\x83\\x00\\x01" + bytes(6) + query[12:i + 5], peer)
    print(".".join(labels), flush=True)
"""


@pytest.mark.skipif(not dockerd_available(), reason="dockerd not installed")
def test_dockerd_pull_goes_to_the_guard() -> None:
    resolver = next(line.split()[1] for line in Path("/etc/resolv.conf").read_text().splitlines()
                    if line.startswith("nameserver"))
    with tempfile.TemporaryDirectory(prefix="hub-guard-") as base:
        dockerd = start_dockerd(base, networking=True)
        sink = None
        try:
            if not resolver.startswith("127."):
                subprocess.run(in_netns(dockerd.netns, "ip", "addr", "add", f"{resolver}/32",
                                        "dev", "lo"), check=True)
            sink = subprocess.Popen(in_netns(dockerd.netns, sys.executable, "-c", _SINK, resolver),
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            assert sink.stdout is not None and sink.stdout.readline() == "ready\n"
            ran = dockerd.docker("run", "--rm", PROBE, "true")
        finally:
            asked = sink.communicate(timeout=10)[0].split() if sink else []
            stop_dockerd(dockerd)
    stderr = ran.stderr.decode()
    assert ran.returncode == 125
    assert f"proxyconnect tcp: dial tcp 127.0.0.1:{_proxy_port()}: connect: connection refused" \
        in stderr, stderr
    assert "registry-1.docker.io" not in asked
