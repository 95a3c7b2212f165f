"""Networks: moord beside a dockerd with its bridge networking on (in a namespace of its
own), driven by the docker CLI. Traffic goes only to the daemons' own containers."""

from __future__ import annotations

import json
import random
import subprocess
from collections.abc import Iterator
from functools import partial

import pytest
from comparekit import Pair, daemon_pair, mask
from enginekit import Daemon, daemon_bridge_name, start_daemon, stop_daemon
from peers import Dockerd, dockerd_available, in_netns

IMAGE = "busybox:latest"
RUN = ("run", "--pull", "never")

pytestmark = pytest.mark.skipif(not dockerd_available(), reason="needs dockerd")


@pytest.fixture(scope="module")
def pair(busybox_tar: bytes) -> Iterator[Pair]:
    with daemon_pair("moor-networks-", IMAGE, busybox_tar, networking=True) as found:
        yield found


def _subnet() -> str:
    """A /24 unlikely to meet another test's or helper's."""
    return f"10.{random.randint(100, 250)}.{random.randint(0, 255)}.0/24"


def _host(daemon: Daemon | Dockerd, *command: str) -> subprocess.CompletedProcess:
    """`command` where the daemon's bridges are: the host for moord, dockerd's namespace."""
    netns = daemon.netns if isinstance(daemon, Dockerd) else ""
    return subprocess.run(in_netns(netns, *command), capture_output=True, timeout=30)


def _rm(pair: Pair, *names: str, networks: tuple[str, ...] = ()) -> None:
    pair.each(partial(_rm_from, names=names, networks=networks))


def _rm_from(daemon: Daemon | Dockerd, names: tuple[str, ...], networks: tuple[str, ...]) -> None:
    daemon.docker("rm", "-f", *names)
    if networks:
        daemon.docker("network", "rm", *networks)


def test_none_has_only_lo_up(pair: Pair) -> None:
    command = (*RUN, "--rm", "--network", "none", IMAGE, "sh", "-c",
               "ip -o link | cut -d: -f2-3; ip -o -4 addr | awk '{print $2, $3, $4}'")
    ours, theirs = pair.both(*command)
    assert ours.returncode == theirs.returncode == 0, ours.stderr
    assert ours.stdout == theirs.stdout
    assert b"lo: <LOOPBACK,UP,LOWER_UP>" in ours.stdout
    assert b"lo inet 127.0.0.1/8" in ours.stdout


def test_default_bridge_container_served_to_the_host(pair: Pair) -> None:
    try:
        for daemon in (pair.moord, pair.dockerd):
            r = daemon.docker(*RUN, "-d", "--name", "web", "--hostname", "web1", IMAGE,
                              "httpd", "-f", "-p", "80", "-h", "/etc", check=True)
            doc = json.loads(daemon.docker("inspect", "web").stdout)[0]["NetworkSettings"]
            address = doc["IPAddress"]
            assert doc["Networks"]["bridge"]["IPAddress"] == address
            assert doc["MacAddress"] == "02:42:" + ":".join(
                f"{int(b):02x}" for b in address.split("."))
            got = _host(daemon, "wget", "-qO-", f"http://{address}/hostname")
            assert got.stdout == b"web1\n", (daemon, got.stderr, r.stdout)
            hosts = daemon.docker("exec", "web", "cat", "/etc/hosts").stdout.decode()
            assert hosts.splitlines()[-1] == f"{address}\tweb1"
            route = daemon.docker("exec", "web", "ip", "route").stdout.decode()
            assert route.startswith(f"default via {doc['Gateway']} dev eth0")
        fields = ["NetworkSettings.Networks.bridge", "NetworkSettings.Bridge",
                  "NetworkSettings.IPPrefixLen"]
        ours, theirs = pair.inspect("web", fields)
        assert sorted(ours) == sorted(theirs)
        for doc in (ours, theirs):
            entry = doc["NetworkSettings.Networks.bridge"]
            for key in ("NetworkID", "EndpointID", "IPAddress", "Gateway", "MacAddress"):
                entry[key] = bool(entry[key])
        assert ours == theirs
    finally:
        _rm(pair, "web")


def test_user_network_isolation_and_inspect(pair: Pair) -> None:
    subnet_a, subnet_b = _subnet(), _subnet()
    try:
        for daemon in (pair.moord, pair.dockerd):
            daemon.docker("network", "create", "--subnet", subnet_a, "--label", "k=v",
                          "neta", check=True)
            daemon.docker("network", "create", "--subnet", subnet_b, "--internal",
                          "netb", check=True)
            daemon.docker(*RUN, "-d", "--name", "srv", "--network", "neta",
                          "--network-alias", "www", IMAGE, "httpd", "-f", "-p", "80",
                          "-h", "/etc", check=True)
            address = json.loads(daemon.docker("inspect", "srv").stdout)[0][
                "NetworkSettings"]["Networks"]["neta"]["IPAddress"]
            same = daemon.docker(*RUN, "--rm", "--network", "neta", IMAGE, "wget", "-qO-",
                                 f"http://{address}/hostname")
            assert same.returncode == 0, same.stderr
            other = daemon.docker(*RUN, "--rm", "--network", "netb", IMAGE, "ping", "-c1",
                                  "-W1", address)
            assert other.returncode == 1
        pair.same("network", "ls", "--filter", "label=k=v", "--format", "{{.Name}}")
        pair.same("network", "ls", "--filter", "type=custom", "--format",
                  "{{.Name}} {{.Driver}}")
        ours, theirs = (json.loads(mask(r.stdout)) for r in
                        pair.both("network", "inspect", "neta", "netb"))
        for doc in (*ours, *theirs):
            doc.pop("Created")
            doc["Containers"] = {k: sorted(v) for k, v in doc["Containers"].items()}
        assert json.dumps(ours, sort_keys=True) == json.dumps(theirs, sort_keys=True)
        pair.same("network", "rm", "neta")
        pair.same("network", "connect", "neta", "srv")
        pair.same("network", "disconnect", "netb", "srv")
    finally:
        _rm(pair, "srv", networks=("neta", "netb"))


@pytest.mark.parametrize("case", ["overlap", "duplicate", "predefined", "missing",
                                  "host-driver", "bad-subnet"])
def test_bad_network_create_and_remove(pair: Pair, case: str) -> None:
    subnet = _subnet()
    try:
        for daemon in (pair.moord, pair.dockerd):
            daemon.docker("network", "create", "--subnet", subnet, "first", check=True)
        command = {
            "overlap": ("network", "create", "--subnet", subnet.replace("0/24", "0/16"), "x"),
            "duplicate": ("network", "create", "first"),
            "predefined": ("network", "rm", "bridge"),
            "missing": ("network", "rm", "nope"),
            "host-driver": ("network", "create", "-d", "host", "x"),
            "bad-subnet": ("network", "create", "--subnet", "bogus", "x"),
        }[case]
        assert pair.same(*command) != 0
        pair.same("network", "ls", "--format", "{{.Name}}")
    finally:
        _rm(pair, networks=("first", "x"))


def test_connect_twice_and_ip_on_default_bridge(pair: Pair) -> None:
    subnet = _subnet()
    try:
        for daemon in (pair.moord, pair.dockerd):
            daemon.docker("network", "create", "--subnet", subnet, "cn", check=True)
            daemon.docker(*RUN, "-d", "--name", "twice", "--network", "cn", IMAGE, "sleep",
                          "60", check=True)
        assert pair.same("network", "connect", "cn", "twice") == 1
        assert pair.same(*RUN, "--rm", "--ip", subnet.replace("0/24", "9"), IMAGE,
                         "true", stderr_lines=1) == 125
        taken = subnet.replace("0/24", "2")
        assert pair.same(*RUN, "--rm", "--network", "cn", "--ip", taken, IMAGE, "true",
                         stderr_lines=1) == 125
        pair.same("ps", "-a", "--format", "{{.Names}}")
    finally:
        _rm(pair, "twice", networks=("cn",))


def test_container_network_mode_shares_the_namespace(pair: Pair) -> None:
    try:
        for daemon in (pair.moord, pair.dockerd):
            daemon.docker(*RUN, "-d", "--name", "owner", IMAGE, "sleep", "60", check=True)
        ours, theirs = pair.both(*RUN, "--rm", "--network", "container:owner", IMAGE, "sh",
                                 "-c", "ip -o addr show eth0 | awk '{print $4}'")
        mine = pair.moord.docker("inspect", "-f", "{{.NetworkSettings.IPAddress}}", "owner")
        assert ours.stdout.decode().split("/")[0] == mine.stdout.decode().strip()
        assert ours.returncode == theirs.returncode == 0
    finally:
        _rm(pair, "owner")


def test_addresses_survive_a_restart_and_nothing_is_left(tmp_path, busybox_tar) -> None:
    base = str(tmp_path)
    bridge = daemon_bridge_name(base)
    subnet = _subnet()
    daemon = start_daemon(base)
    try:
        daemon.docker("import", "-", IMAGE, input=busybox_tar, check=True)
        network_id = daemon.docker("network", "create", "--subnet", subnet, "keep",
                                   check=True).stdout.decode().strip()
        # A short stop timeout: the daemon's stop need not wait 10 s on the sleep.
        daemon.docker("create", "--name", "first", "--network", "keep", "--stop-timeout", "1",
                      IMAGE, "sleep", "60", check=True)
        started = daemon.docker("start", "first")
        assert started.returncode == 0, (started.stderr, daemon.log())
        before = daemon.docker("inspect", "-f", "{{.NetworkSettings.Networks.keep.IPAddress}}",
                               "first").stdout
    finally:
        stop_daemon(daemon)
    assert _host(daemon, "ip", "link", "show", bridge).returncode != 0
    assert f"moorage_{bridge}" not in _host(daemon, "nft", "list", "tables").stdout.decode()
    daemon = start_daemon(base)
    try:
        daemon.docker(*RUN, "-d", "--name", "second", "--network", "keep", IMAGE, "sleep", "60",
                      check=True)
        started = daemon.docker("start", "first")
        assert started.returncode == 0, (started.stderr, daemon.log())
        after = daemon.docker("inspect", "-f", "{{.NetworkSettings.Networks.keep.IPAddress}}",
                              "first").stdout
        other = daemon.docker("inspect", "-f", "{{.NetworkSettings.Networks.keep.IPAddress}}",
                              "second").stdout
        assert before == after != other
        daemon.docker("rm", "-f", "first", "second", check=True)
        daemon.docker("network", "rm", "keep", check=True)
    finally:
        stop_daemon(daemon)
    left = _host(daemon, "ip", "-o", "link").stdout.decode()
    assert bridge not in left and f"br-{network_id[:12]}" not in left


def _free_port() -> int:
    return random.randint(20000, 29999)


def test_published_ports_served_on_loopback_and_host_addresses(pair: Pair) -> None:
    port, local = _free_port(), _free_port()
    try:
        for daemon in (pair.moord, pair.dockerd):
            daemon.docker(*RUN, "-d", "--name", "pub", "--hostname", "pubhost", "-p",
                          f"{port}:80", "-p", f"127.0.0.1:{local}:80", "--expose", "70",
                          IMAGE, "httpd", "-f", "-p", "80", "-h", "/etc", check=True)
            for url in (f"http://127.0.0.1:{port}/hostname",
                        f"http://127.0.0.1:{local}/hostname"):
                got = _host(daemon, "wget", "-qO-", url)
                assert got.stdout == b"pubhost\n", (daemon, url, got.stderr)
            # Through the host's address from another container (DNAT, hairpin).
            gateway = daemon.docker("inspect", "-f", "{{.NetworkSettings.Gateway}}",
                                    "pub").stdout.decode().strip()
            inner = daemon.docker(*RUN, "--rm", IMAGE, "wget", "-qO-",
                                  f"http://{gateway}:{port}/hostname")
            assert inner.stdout == b"pubhost\n", (daemon, inner.stderr)
        pair.same("port", "pub")
        pair.same("port", "pub", "80")
        pair.same("ps", "--format", "{{.Names}} {{.Ports}}")
        ours, theirs = pair.inspect("pub", ["NetworkSettings.Ports", "HostConfig.PortBindings"])
        for doc in (ours, theirs):  # dockerd's order within a port follows a Go map's
            doc["NetworkSettings.Ports"] = {k: v and sorted(v, key=json.dumps) for k, v in
                                            doc["NetworkSettings.Ports"].items()}
        assert ours == theirs
    finally:
        _rm(pair, "pub")


def test_taken_host_port_and_bad_port_specs(pair: Pair) -> None:
    port = _free_port()
    try:
        for daemon in (pair.moord, pair.dockerd):
            daemon.docker(*RUN, "-d", "--name", "holder", "-p", f"{port}:80", IMAGE,
                          "sleep", "60", check=True)
        assert pair.same(*RUN, "-d", "--name", "second", "-p", f"{port}:80", IMAGE,
                         "sleep", "60", stderr_lines=1) == 125
        pair.same("ps", "-a", "--format", "{{.Names}} {{.Status}} {{.Ports}}")
        pair.same("port", "second")
        for spec in ("99999:80", "abc", "80:abc"):
            assert pair.same(*RUN, "--rm", "-p", spec, IMAGE, "true", stderr_lines=1) == 125
    finally:
        _rm(pair, "holder", "second")


def test_names_and_aliases_resolve_on_user_networks_only(pair: Pair) -> None:
    """The embedded DNS: names, aliases and round-robin on the network; a name it does
    not know goes to --dns 127.0.0.1, where nothing answers: nothing leaves the host."""
    ask = (*RUN, "--rm", "--dns", "127.0.0.1")

    def resolve(daemon: Daemon | Dockerd) -> None:
        daemon.docker("network", "create", "--subnet", _subnet(), "dnsa", check=True)
        daemon.docker("network", "create", "--subnet", _subnet(), "dnsb", check=True)
        addresses = set()
        for name in ("one", "two"):
            daemon.docker(*RUN, "-d", "--name", name, "--hostname", name, "--network",
                          "dnsa", "--network-alias", "svc", IMAGE, "httpd", "-f", "-p",
                          "80", "-h", "/etc", check=True)
            addresses.add(daemon.docker(
                "inspect", "-f", "{{.NetworkSettings.Networks.dnsa.IPAddress}}",
                name).stdout.decode().strip())
        got = daemon.docker(*ask, "--network", "dnsa", IMAGE, "sh", "-c",
                            "grep nameserver /etc/resolv.conf; nslookup one; "
                            "wget -qO- http://two/hostname; nslookup svc")
        out = got.stdout.decode()
        assert got.returncode == 0, (daemon, got.stderr)
        assert "nameserver 127.0.0.11\n" in out and "two\n" in out
        assert {line.split()[-1] for line in out.splitlines()
                if line.startswith("Address:") and "#" not in line
                and ":53" not in line} >= addresses
        other = daemon.docker(*ask, "--network", "dnsb", IMAGE, "nslookup", "one")
        assert other.returncode == 1, (daemon, other.stdout)

    try:
        pair.each(resolve)
    finally:
        _rm(pair, "one", "two", networks=("dnsa", "dnsb"))


def test_an_exhausted_pool(pair: Pair) -> None:
    subnet = _subnet().replace("0/24", "0/30")  # the gateway and one address
    try:
        for daemon in (pair.moord, pair.dockerd):
            daemon.docker("network", "create", "--subnet", subnet, "tiny", check=True)
            daemon.docker(*RUN, "-d", "--name", "tiny1", "--network", "tiny", IMAGE, "sleep",
                          "60", check=True)
        assert pair.same(*RUN, "-d", "--name", "tiny2", "--network", "tiny", IMAGE, "true",
                         stderr_lines=1) == 125
        pair.same("ps", "-a", "--format", "{{.Names}} {{.Status}}")
    finally:
        _rm(pair, "tiny1", "tiny2", networks=("tiny",))
