"""The networks' pure parts: IPAM, the nftables ruleset, port specs, filters."""

from __future__ import annotations

import ipaddress

import pytest

from moorage.daemon.networks import firewall, ipam, ports
from moorage.daemon.networks.filters import NetworkFilters
from moorage.errors import Forbidden, InvalidParameter
from moorage.model.networks import NetworkRecord


def test_free_subnet_skips_docker0_and_what_is_taken() -> None:
    taken = [ipaddress.IPv4Network("172.18.0.0/16")]
    assert str(ipam.free_subnet(ipam.DEFAULT_POOLS, taken)) == "172.19.0.0/16"
    with pytest.raises(Forbidden):
        ipam.free_subnet([("10.0.0.0/24", 24)], [ipaddress.IPv4Network("10.0.0.0/8")])


def test_addresses_skip_the_gateway_and_aux_addresses() -> None:
    pool = ipam.make_pool("10.1.0.0/29", aux={"a": "10.1.0.2"})
    assert pool.gateway == "10.1.0.1"
    assert list(ipam.candidates(pool)) == ["10.1.0.3", "10.1.0.4", "10.1.0.5", "10.1.0.6"]
    ranged = ipam.make_pool("10.1.0.0/24", "10.1.0.254", "10.1.0.128/30")
    assert list(ipam.candidates(ranged)) == ["10.1.0.129", "10.1.0.130"]
    assert ipam.mac_for("172.17.0.2") == "02:42:ac:11:00:02"


def test_bad_pools_refused_as_libnetwork() -> None:
    with pytest.raises(InvalidParameter, match="invalid CIDR address: bogus"):
        ipam.make_pool("bogus")
    with pytest.raises(Forbidden):
        ipam.make_pool("10.1.0.0/24", ip_range="10.2.0.0/26")


def test_ruleset_masquerades_isolates_and_forwards() -> None:
    text = firewall.render("moorage_t", [
        firewall.BridgeRules("b1", "10.1.0.0/24", False),
        firewall.BridgeRules("b2", "10.2.0.0/24", False),
        firewall.BridgeRules("b3", "10.3.0.0/24", True)],
        [firewall.Forward("tcp", "", 8080, "10.1.0.2", 80)])
    assert text.startswith("table ip moorage_t {}\ndelete table ip moorage_t\n")
    assert 'ip saddr 10.1.0.0/24 oifname != "b1" masquerade' in text
    assert "10.3.0.0/24" not in text  # internal: nothing goes out
    assert 'iifname "b1" oifname { "b2", "b3" } drop' in text
    assert 'iifname "b3" oifname != "b3" drop' in text
    assert "fib daddr type local tcp dport 8080 dnat to 10.1.0.2:80" in text
    assert text.count("fib daddr type local tcp dport 8080 dnat to 10.1.0.2:80") == 2
    assert 'iifname { "b1", "b2", "b3" } ip daddr 127.0.0.0/8 drop' in text
    assert 'ip saddr 127.0.0.0/8 oifname "b1" masquerade' in text


def test_port_bindings_as_dockerd_reads_them() -> None:
    found = ports.bindings({"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080-8081"}],
                            "53/udp": None}, True, ["80/tcp", "70"])
    assert found == [ports.Binding(80, "tcp", "127.0.0.1", 8080, 8081),
                     ports.Binding(53, "udp", "", 0, 0), ports.Binding(70, "tcp", "", 0, 0)]
    with pytest.raises(InvalidParameter, match="invalid hostPort: 99999"):
        ports.bindings({"80/tcp": [{"HostPort": "99999"}]}, False, [])
    assert ports.host_addresses("") == ["0.0.0.0", "::"]


def test_filters() -> None:
    record = NetworkRecord(id="abc123", name="front", driver="bridge", created=0,
                           labels={"tier": "web"})
    assert NetworkFilters.parse({"label": ["tier=web"], "type": ["custom"]}).matches(record,
                                                                                      False)
    assert not NetworkFilters.parse({"dangling": ["false"]}).matches(record, False)
    with pytest.raises(InvalidParameter, match="invalid filter 'bogus'"):
        NetworkFilters.parse({"bogus": ["x"]})


def test_dns_messages_read_and_written() -> None:
    import dns.message  # the reference codec, for tests only

    from moorage.daemon.networks.dns import answer, parse_question

    query = dns.message.make_query("Web.Example", "A").to_wire()
    name, qtype, end = parse_question(query)  # type: ignore[misc]
    assert (name, qtype) == ("web.example", 1)
    reply = dns.message.from_wire(answer(query, end, ["10.0.0.2", "10.0.0.3"]))
    assert reply.id == dns.message.from_wire(query).id
    assert [r.address for r in reply.answer[0]] == ["10.0.0.2", "10.0.0.3"]
    assert dns.message.from_wire(answer(query, end, [], 2)).rcode() == 2
    assert parse_question(b"\x00" * 5) is None
