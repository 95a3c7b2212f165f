"""Networks: moord beside a dockerd with its bridge networking on (in a namespace of its
own), driven by the docker CLI. Traffic goes only to the daemons' own containers."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
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


def test_addresses_after_a_restart_and_nothing_is_left(tmp_path, busybox_tar) -> None:
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
        # The daemon's stop stopped "first": as dockerd, its address went back to the
        # pool, and "second", started before it, may have it now.
        assert before.strip() and after.strip() and other.strip() and after != other
        daemon.docker("rm", "-f", "first", "second", check=True)
        daemon.docker("network", "rm", "keep", check=True)
    finally:
        stop_daemon(daemon)
    left = _host(daemon, "ip", "-o", "link").stdout.decode()
    assert bridge not in left and f"br-{network_id[:12]}" not in left


def _free_port() -> int:
    return random.randint(20000, 29999)


def _fetched_once_listening(daemon: Daemon | Dockerd, url: str) -> subprocess.CompletedProcess:
    """`run -d` returns once the process started, not once httpd listens: on a loaded
    machine the first request could come before it, on either daemon."""
    deadline = time.monotonic() + 10
    while True:
        got = _host(daemon, "wget", "-qO-", url)
        if got.returncode == 0 or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def test_published_ports_served_on_loopback_and_host_addresses(pair: Pair) -> None:
    port, local = _free_port(), _free_port()
    try:
        for daemon in (pair.moord, pair.dockerd):
            daemon.docker(*RUN, "-d", "--name", "pub", "--hostname", "pubhost", "-p",
                          f"{port}:80", "-p", f"127.0.0.1:{local}:80", "--expose", "70",
                          IMAGE, "httpd", "-f", "-p", "80", "-h", "/etc", check=True)
            for url in (f"http://127.0.0.1:{port}/hostname",
                        f"http://127.0.0.1:{local}/hostname"):
                got = _fetched_once_listening(daemon, url)
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


def _lookup(daemon: Daemon | Dockerd, container: str, name: str) -> tuple[int, str]:
    """nslookup's exit code, and the name it answered for."""
    found = daemon.docker("exec", container, "nslookup", name)
    _, answered, rest = found.stdout.decode().rpartition("Name:")
    return found.returncode, rest.split()[0] if answered else ""


def test_links_on_a_user_network_are_names_only_their_container_resolves(pair: Pair) -> None:
    """--link on a user network (docker-compose 1.29's `run` sends them) and network
    connect --link: the alias resolves from the linking container only, a link to a
    container that does not exist yet is accepted, and the default bridge's legacy links
    stay refused until moord makes /etc/hosts entries and variables for them."""
    ask = (*RUN, "--dns", "127.0.0.1")
    try:
        for daemon in (pair.moord, pair.dockerd):
            daemon.docker("network", "create", "--subnet", _subnet(), "lnk", check=True)
            daemon.docker(*ask, "-d", "--name", "target", "--network", "lnk", IMAGE,
                          "sleep", "60", check=True)
            daemon.docker(*ask, "-d", "--name", "linker", "--network", "lnk",
                          "--link", "target:db", "--link", "target", "--link", "later:x",
                          IMAGE, "sleep", "60", check=True)
            daemon.docker(*ask, "-d", "--name", "joiner", IMAGE, "sleep", "60", check=True)
            daemon.docker("network", "connect", "--link", "target:zz", "lnk", "joiner",
                          check=True)
        ours, theirs = ([*(_lookup(daemon, container, name) for container, name in
                           (("linker", "db"), ("target", "db"), ("joiner", "zz"))),
                         *(daemon.docker("inspect", "-f", "{{json .HostConfig.Links}} "
                                         "{{json .NetworkSettings.Networks.lnk.Links}}",
                                         name).stdout.decode().strip()
                           for name in ("linker", "joiner"))]
                        for daemon in (pair.moord, pair.dockerd))
        # the unknown bare name: dockerd's client waits on the upstream it forwards it to,
        # moord answers it locally; only the exit code is compared
        assert [ours[0], ours[1][0], ours[2]] == [theirs[0], theirs[1][0], theirs[2]] \
            == [(0, "db"), 1, (0, "zz")]
        assert ours[3:] == theirs[3:] == ['null ["target:db","target","later:x"]',
                                          'null ["target:zz"]']
        bad = pair.moord.docker(*RUN, "--rm", "--network", "lnk", "--link", "a:b:c", IMAGE,
                                "true")
        assert b"bad format for links: a:b:c" in bad.stderr
        moor = os.path.join(os.path.dirname(sys.executable), "moor")
        env = {**os.environ, "DOCKER_HOST": pair.moord.host}
        env.pop("MOOR_HOST", None)
        by_moor = subprocess.run(
            [moor, *RUN, "--rm", "--dns", "127.0.0.1", "--network", "lnk", "--network-alias",
             "me", "--link", "target:db2", IMAGE, "sh", "-c", "nslookup db2 && nslookup me"],
            env=env, capture_output=True, timeout=60)
        assert by_moor.returncode == 0, by_moor.stderr
        legacy = pair.moord.docker(*RUN, "--rm", "--link", "target:db", IMAGE, "true")
        assert legacy.returncode == 125
        assert b"legacy container links (--link) on the default bridge" in legacy.stderr
    finally:
        _rm(pair, "target", "linker", "joiner", networks=("lnk",))


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


# A DNS server for a container's loopback: it prints each name asked and answers
# NXDOMAIN, so a test sees what the embedded DNS forwards and nothing goes further.
_RECORDER = r"""
import socket, struct
server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
server.bind(("127.0.0.1", 53))
print("ready", flush=True)
while True:
    data, peer = server.recvfrom(4096)
    labels, pos = [], 12
    while data[pos]:
        labels.append(data[pos + 1:pos + 1 + data[pos]].decode())
        pos += 1 + data[pos]
    print(".".join(labels), flush=True)
    server.sendto(data[:2] + struct.pack("!HHHHH", 0x8183, 1, 0, 0, 0) + data[12:pos + 5],
                  peer)
"""


def _names_forwarded(daemon: Daemon | Dockerd, container: str,
                     *lookups: str) -> tuple[list[str], list[subprocess.CompletedProcess]]:
    """What `nslookup` says of each name in the container, and the names its embedded
    DNS passed on to the recorder on the container's own 127.0.0.1 (its --dns)."""
    pid = daemon.docker("inspect", "-f", "{{.State.Pid}}", container).stdout.decode().strip()
    recorder = subprocess.Popen(["nsenter", f"--net=/proc/{pid}/ns/net", sys.executable,
                                 "-c", _RECORDER], stdout=subprocess.PIPE)
    try:
        assert recorder.stdout is not None and recorder.stdout.readline() == b"ready\n"
        answers = [daemon.docker("exec", container, "nslookup", name) for name in lookups]
    finally:
        recorder.terminate()
        out, _ = recorder.communicate(timeout=10)
    return sorted(set(out.decode().split())), answers


def test_single_label_names_are_answered_locally(pair: Pair) -> None:
    """A bare name the embedded DNS does not know gets NXDOMAIN and goes nowhere; a
    dotted one goes to --dns 127.0.0.1, the container's own loopback as on dockerd.
    dockerd forwards the bare name too: its client sees the upstream's NXDOMAIN."""
    try:
        found = []
        for daemon in (pair.moord, pair.dockerd):
            daemon.docker("network", "create", "--subnet", _subnet(), "leak", check=True)
            daemon.docker(*RUN, "-d", "--name", "asker", "--dns", "127.0.0.1", "--network",
                          "leak", IMAGE, "sleep", "60", check=True)
            found.append(_names_forwarded(daemon, "asker", "srv", "asker", "srv.moorage.test"))
        (ours, our_answers), (theirs, their_answers) = found
        srv, asker, _ = our_answers
        assert srv.returncode == 1 and b"can't find srv: NXDOMAIN" in srv.stdout, srv.stdout
        assert asker.returncode == 0
        assert [(r.returncode, r.stdout) for r in our_answers[::2]] == \
            [(r.returncode, r.stdout) for r in their_answers[::2]]
        assert ours == ["srv.moorage.test"]
        assert theirs == ["srv", "srv.moorage.test"]
    finally:
        _rm(pair, "asker", networks=("leak",))


def test_stopped_containers_release_addresses_and_prune_their_networks(pair: Pair) -> None:
    """As dockerd: a stop gives the address back (the next container takes it, the
    restarted one gets another), and a network only stopped containers are on is
    dangling: prune removes it, and their start then fails."""
    address = "{{.NetworkSettings.Networks.held.IPAddress}}"
    subnet = _subnet()
    try:
        for daemon in (pair.moord, pair.dockerd):
            daemon.docker("network", "create", "--subnet", subnet, "held", check=True)
            for name in ("first", "second"):
                daemon.docker(*RUN, "-d", "--name", name, "--network", "held", IMAGE,
                              "sleep", "60", check=True)
            daemon.docker("stop", "-t", "0", "first", check=True)
            daemon.docker(*RUN, "-d", "--name", "third", "--network", "held", IMAGE,
                          "sleep", "60", check=True)
            daemon.docker("start", "first", check=True)
        pair.same("inspect", "-f", address, "first", "second", "third")
        for daemon in (pair.moord, pair.dockerd):
            daemon.docker("rm", "-f", "second", "third", check=True)
            daemon.docker("stop", "-t", "0", "first", check=True)
        pair.same("inspect", "-f", address, "first")
        assert pair.same("network", "prune", "-f") == 0
        pair.same("network", "ls", "--format", "{{.Name}}")
        assert pair.same("start", "first", compare_stderr=False) == 1
    finally:
        _rm(pair, "first", "second", "third", networks=("held",))


def test_connect_to_a_user_network_switches_to_the_embedded_dns(pair: Pair) -> None:
    try:
        for daemon in (pair.moord, pair.dockerd):
            daemon.docker("network", "create", "--subnet", _subnet(), "later", check=True)
            daemon.docker(*RUN, "-d", "--name", "joiner", "--dns", "127.0.0.1",
                          "--dns-search", "moorage.test", IMAGE, "sleep", "60", check=True)
            daemon.docker(*RUN, "-d", "--name", "peer", "--network", "later", IMAGE,
                          "sleep", "60", check=True)
            daemon.docker("create", "--name", "idle", "--dns-option", "ndots:2", IMAGE,
                          "sleep", "60", check=True)
        pair.same("exec", "joiner", "cat", "/etc/resolv.conf")
        assert pair.same("network", "connect", "later", "joiner") == 0
        pair.same("exec", "joiner", "cat", "/etc/resolv.conf")
        pair.same("exec", "joiner", "nslookup", "peer", compare_stdout=False)
        pair.same("network", "connect", "later", "idle")
        pair.same("start", "idle")
        pair.same("exec", "idle", "cat", "/etc/resolv.conf")
    finally:
        _rm(pair, "joiner", "peer", "idle", networks=("later",))


def _aliases_through_a_life(daemon: Daemon | Dockerd, subnet: str) -> list[object]:
    def aliases(name: str) -> object:
        found = json.loads(daemon.docker("inspect", name, check=True).stdout)[0]
        seen = found["NetworkSettings"]["Networks"]["life"]["Aliases"]
        return seen and [a.replace(found["Id"][:12], "<id>") for a in seen]

    daemon.docker("network", "create", "--subnet", subnet, "life", check=True)
    daemon.docker("create", "--name", "made", "--network", "life", "--network-alias", "web",
                  IMAGE, "sleep", "60", check=True)
    daemon.docker("create", "--name", "joined", IMAGE, "sleep", "60", check=True)
    daemon.docker("network", "connect", "--alias", "x", "life", "joined", check=True)
    seen = [aliases("made"), aliases("joined")]
    daemon.docker("start", "made", check=True)
    seen.append(aliases("made"))
    daemon.docker("stop", "-t", "0", "made", check=True)
    daemon.docker("start", "made", check=True)
    daemon.docker("kill", "made", check=True)
    return [*seen, aliases("made")]


def test_aliases_gain_the_short_id_when_the_container_joins(pair: Pair) -> None:
    """dockerd lists a container's short ID among its aliases on a user network from its
    first start or connect on, and keeps it once stopped (only once, however often)."""
    subnet = _subnet()
    try:
        ours, theirs = pair.each(partial(_aliases_through_a_life, subnet=subnet))
        assert ours == theirs == [["web"], ["x", "<id>"], ["web", "<id>"], ["web", "<id>"]]
    finally:
        _rm(pair, "made", "joined", networks=("life",))


def test_starts_leave_no_network_namespace_held(pair: Pair) -> None:
    """A start makes the container's network namespace ahead and holds it by an fd only
    until the runtime's create has joined it: none stays open in moord after a start,
    nor after one whose create the runtime refused (dockerd has no such fd to compare)."""
    moord = pair.moord
    try:
        assert moord.docker(*RUN, "-d", "--name", "nsfd-ok", IMAGE, "sleep", "60"
                            ).returncode == 0
        refused = moord.docker(*RUN, "-d", "--name", "nsfd-refused", IMAGE, "/no/such")
        assert refused.returncode != 0
        folder = f"/proc/{moord.process.pid}/fd"
        held = []
        for fd in os.listdir(folder):
            try:
                link = os.readlink(f"{folder}/{fd}")
            except FileNotFoundError:  # closed meanwhile
                continue
            if link.startswith("net:["):
                held.append(link)
        assert held == []
    finally:
        _rm_from(moord, ("nsfd-ok", "nsfd-refused"), ())


def test_names_follow_renames_stops_disconnects_and_removals(pair: Pair) -> None:
    """The embedded DNS answers from what it was told until a name's container changes:
    each change shows at the next lookup, asked right after the command that made it."""
    ask = (*RUN, "--dns", "127.0.0.1")

    def follow(daemon: Daemon | Dockerd) -> list[tuple[int, str]]:
        daemon.docker("network", "create", "--subnet", _subnet(), "chg", check=True)
        daemon.docker(*ask, "-d", "--name", "asker", "--network", "chg", IMAGE, "sleep", "60",
                      check=True)
        daemon.docker(*ask, "-d", "--name", "old", "--network", "chg", IMAGE, "sleep", "60",
                      check=True)
        seen = [_lookup(daemon, "asker", "old")]
        daemon.docker("rename", "old", "new", check=True)
        seen += [_lookup(daemon, "asker", "old"), _lookup(daemon, "asker", "new")]
        daemon.docker("stop", "-t", "0", "new", check=True)
        daemon.docker("start", "new", check=True)
        seen.append(_lookup(daemon, "asker", "new"))
        daemon.docker("network", "disconnect", "chg", "new", check=True)
        seen.append(_lookup(daemon, "asker", "new"))
        daemon.docker("network", "connect", "chg", "new", check=True)
        seen.append(_lookup(daemon, "asker", "new"))
        daemon.docker("rm", "-f", "new", check=True)
        seen.append(_lookup(daemon, "asker", "new"))
        return [(code, name) for code, name in seen]

    try:
        ours, theirs = (follow(daemon) for daemon in (pair.moord, pair.dockerd))
        # dockerd forwards an unknown bare name, moord answers it: exit codes compared
        assert [code for code, _ in ours] == [code for code, _ in theirs] \
            == [0, 1, 0, 0, 1, 0, 1]
    finally:
        _rm(pair, "asker", "old", "new", networks=("chg",))


def test_an_ended_dns_process_is_started_again(pair: Pair) -> None:
    """moord's embedded DNS answers from a process of its own: killed, it comes back
    with every container's server (dockerd has no such process)."""
    daemon = pair.moord
    ask = (*RUN, "--dns", "127.0.0.1")
    try:
        daemon.docker("network", "create", "--subnet", _subnet(), "dnsd", check=True)
        for name in ("asker", "target"):
            daemon.docker(*ask, "-d", "--name", name, "--network", "dnsd", IMAGE, "sleep",
                          "60", check=True)
        assert _lookup(daemon, "asker", "target") == (0, "target")
        dnsd = subprocess.run(["pgrep", "-P", str(daemon.process.pid), "-f", "networks.dnsd"],
                              capture_output=True, text=True).stdout.split()
        assert len(dnsd) == 1
        os.kill(int(dnsd[0]), signal.SIGKILL)
        deadline = time.monotonic() + 20
        while _lookup(daemon, "asker", "target") != (0, "target"):
            assert time.monotonic() < deadline
    finally:
        _rm_from(daemon, ("asker", "target"), ("dnsd",))
