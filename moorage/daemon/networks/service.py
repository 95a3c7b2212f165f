"""Networks: the /networks API's backend, and what a container's start and removal
need of them (endpoints, addresses, links).

The predefined networks (`bridge`, `host`, `none`) are made at the first start and kept
in moor.db like user networks; a bridge network's Linux bridge and the daemon's
nftables table are rebuilt from that state at every start. When the daemon stops
with no container left running (always, without live-restore) it removes its bridges
and its table: nothing of it stays in the kernel while nothing uses it, unlike
dockerd's docker0, and test daemons leave no trace.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from moorage.daemon.config import DaemonConfig
from moorage.daemon.events.bus import Event, EventBus
from moorage.daemon.networks import dns, firewall, ipam, links, netns, ports
from moorage.daemon.networks.filters import NetworkFilters
from moorage.errors import Conflict, Forbidden, InvalidParameter, NotFound, SystemFailure
from moorage.model.network_requests import IPAMConfig
from moorage.model.networks import (
    ENDPOINT_VERSION,
    NETWORK_VERSION,
    PREDEFINED,
    ContainerNetwork,
    CreateRequest,
    EndpointRecord,
    EndpointRequest,
    IpamPool,
    NetworkRecord,
    NetworkView,
    PublishedPort,
    parse_link,
)
from moorage.model.times import now_ns
from moorage.store.metadata import Metadata

BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"
# -o options of the bridge driver honoured; others are refused, never ignored.
_BRIDGE_OPTIONS = (BRIDGE_NAME_OPTION,)


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    id: str
    name: str          # "/name"
    pid: int           # its init while running, else 0
    network_mode: str
    dns: tuple[str, ...] = ()   # --dns: the embedded DNS's upstreams


@dataclass(frozen=True, slots=True)
class Attachment:
    network: NetworkRecord
    endpoint: EndpointRecord


Lookup = Callable[[str], ContainerInfo]


class NetworkService:
    def __init__(self, config: DaemonConfig, metadata: Metadata, events: EventBus) -> None:
        self.config = config
        self.metadata = metadata
        self.events = events
        self.table = firewall.table_name(config.bridge)
        self._networks = metadata.records("networks")
        self._endpoints = metadata.records("endpoints")
        self._lock = threading.Lock()     # network create/remove and endpoint changes
        # The running containers' published ports (in memory: they live as long as the
        # container runs, and a daemon restart stops every container).
        self._ports: dict[str, ports.ContainerPorts] = {}
        self._ports_lock = threading.Lock()
        self.resolver = dns.Resolver(self._resolve)
        self._default_id = ""   # the default bridge's: no names resolve there
        # name → index of the bridges made at the start or by a network create: a
        # start's veth goes on its bridge without asking for the index.
        self._bridges: dict[str, int] = {}
        # Endpoints in memory too: the DNS server's questions read them.
        self._endpoint_cache = {e.id: e for e in (
            EndpointRecord.from_json(doc) for _, _, _, doc in self._endpoints.load_all())}
        self.lookup: Lookup = _no_containers
        # Called with a running container's id when it joins its first user network:
        # its resolv.conf then names the embedded DNS, as dockerd rewrites it.
        self.embedded_dns_joined: Callable[[str], None] = lambda container_id: None
        events.subscribe(self._on_event)

    # ------------------------------------------------------------------ daemon

    async def start(self) -> None:
        await asyncio.to_thread(self._start)

    def _start(self) -> None:
        with self._lock:
            names = {r.name for r in self._all()}
            for name in PREDEFINED:
                if name not in names:
                    self._put(self._predefined(name))
            with netns.routes() as ipr:
                for network in self._all():
                    if network.driver == "bridge":
                        pool = network.pools[0]
                        self._bridges[network.bridge] = links.ensure_bridge(
                            ipr, network.bridge, pool.gateway,
                            ipaddress.ip_network(pool.subnet).prefixlen)
            self._default_id = self.get("bridge").id
            self._apply_firewall()

    async def stop(self, keep: bool) -> None:
        """`keep`: containers run on (live-restore) and keep their networks."""
        await asyncio.to_thread(self.resolver.close)
        if not keep:
            await asyncio.to_thread(self._teardown)

    def _teardown(self) -> None:
        with self._lock, netns.routes() as ipr:
            for network in self._all():
                if network.bridge:
                    links.delete_link(ipr, network.bridge)
            firewall.remove(self.table)

    def _predefined(self, name: str) -> NetworkRecord:
        if name != "bridge":
            return NetworkRecord(id=secrets.token_hex(32), name=name, created=now_ns(),
                                 driver="host" if name == "host" else "null")
        subnet = self.config.bip and str(ipaddress.ip_interface(self.config.bip).network)
        gateway = self.config.bip and str(ipaddress.ip_interface(self.config.bip).ip)
        pool = ipam.make_pool(subnet or str(self._free_subnet()), gateway)
        return NetworkRecord(
            id=secrets.token_hex(32), name="bridge", driver="bridge", created=now_ns(),
            bridge=self.config.bridge, pools=(pool,), options={
                "com.docker.network.bridge.default_bridge": "true",
                "com.docker.network.bridge.enable_icc": "true",
                "com.docker.network.bridge.enable_ip_masquerade": "true",
                "com.docker.network.bridge.host_binding_ipv4": "0.0.0.0",
                BRIDGE_NAME_OPTION: self.config.bridge,
                "com.docker.network.driver.mtu": "1500"})

    def _free_subnet(self) -> ipaddress.IPv4Network:
        return ipam.free_subnet(self.config.address_pools or ipam.DEFAULT_POOLS,
                                self._taken_subnets())

    def _taken_subnets(self) -> list[ipaddress.IPv4Network]:
        taken = [ipaddress.ip_network(p.subnet) for n in self._all() for p in n.pools]
        with netns.routes() as ipr:
            for route in ipr.get_routes(family=2):
                dst = route.get_attr("RTA_DST")
                if dst:
                    taken.append(ipaddress.ip_network(f"{dst}/{route['dst_len']}",
                                                      strict=False))
        return taken

    def _apply_firewall(self) -> None:
        with self._ports_lock:
            forwards = [firewall.Forward(p.proto, "" if p.host_ip == "0.0.0.0" else p.host_ip,
                                         p.host_port, p.target, p.port)
                        for ports in self._ports.values() for p in ports.published
                        if ":" not in p.host_ip]
        firewall.apply(self.table, [
            firewall.BridgeRules(n.bridge, n.pools[0].subnet, n.internal)
            for n in self._all() if n.driver == "bridge"], forwards)

    # ------------------------------------------------------------------ records

    def _all(self) -> list[NetworkRecord]:
        return [NetworkRecord.from_json(doc) for _, _, _, doc in self._networks.load_all()]

    def _put(self, record: NetworkRecord) -> None:
        self._networks.put(record.id, record.name, NETWORK_VERSION, record.to_json())

    def _all_endpoints(self) -> list[EndpointRecord]:
        return list(self._endpoint_cache.values())

    def get(self, ref: str) -> NetworkRecord:
        """By full id, name, or unique id prefix (dockerd's order); NotFound otherwise."""
        networks = self._all()
        for match in (lambda n: n.id == ref, lambda n: n.name == ref,
                      lambda n: n.id.startswith(ref)):
            found = [n for n in networks if match(n)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise InvalidParameter(f"network {ref} is ambiguous ({len(found)} matches "
                                       "found based on ID prefix)")
        raise NotFound(f"network {ref} not found")

    def endpoints(self, network_id: str | None = None,
                  container_id: str | None = None) -> list[EndpointRecord]:
        return [e for e in self._all_endpoints()
                if (network_id is None or e.network_id == network_id)
                and (container_id is None or e.container_id == container_id)]

    def active(self, network: NetworkRecord) -> list[tuple[EndpointRecord, ContainerInfo]]:
        """The endpoints of running containers on the network, with the containers."""
        found = []
        for endpoint in self.endpoints(network.id):
            try:
                info = self.lookup(endpoint.container_id)
            except NotFound:
                continue
            if info.pid:
                found.append((endpoint, info))
        return found

    # ------------------------------------------------------------------ API

    async def list(self, filters: Mapping[str, Sequence[str]]) -> list[NetworkView]:
        """As dockerd's list: the networks without their containers."""
        spec = NetworkFilters.parse(filters)
        networks = await asyncio.to_thread(self._all)
        return [NetworkView(n) for n in networks if spec.matches(n, self._in_use(n))]

    async def inspect(self, ref: str) -> NetworkView:
        def view() -> NetworkView:
            network = self.get(ref)
            return NetworkView(network, tuple((e, info.name.lstrip("/"))
                                              for e, info in self.active(network)))
        return await asyncio.to_thread(view)

    def container_networks(self, container_id: str,
                           network_mode: str) -> list[ContainerNetwork]:
        """Its endpoints; on `host` or `none`, that network with no endpoint of its own."""
        networks = self._all()
        if network_mode in ("host", "none"):
            return [ContainerNetwork(n.name, EndpointRecord("", n.id, container_id))
                    for n in networks if n.name == network_mode]
        names = {n.id: n.name for n in networks}
        return [ContainerNetwork(names[e.network_id], e)
                for e in self.endpoints(container_id=container_id) if e.network_id in names]

    def _in_use(self, network: NetworkRecord) -> bool:
        """As dockerd's: a stopped container holds no endpoint there, so a network only
        stopped containers are on is dangling, and prune removes it."""
        return bool(self.active(network))

    async def create(self, request: CreateRequest) -> NetworkRecord:
        _validate_request(request)
        record = await asyncio.to_thread(self._create, request)
        self.events.publish("network", "create", record.id,
                            {"name": record.name, "type": record.driver})
        return record

    def _create(self, request: CreateRequest) -> NetworkRecord:
        with self._lock:
            if any(n.name == request.name for n in self._all()):
                raise Conflict(f"network with name {request.name} already exists")
            network_id = secrets.token_hex(32)
            options = dict(request.options or {})
            bridge = options.get(BRIDGE_NAME_OPTION) or f"br-{network_id[:12]}"
            if any(n.bridge == bridge for n in self._all()):
                raise Forbidden(f"bridge name {bridge} is used by another network")
            pools = _pools(request.pools)
            taken = self._taken_subnets()
            for pool in pools:
                subnet = ipaddress.ip_network(pool.subnet)
                if any(subnet.overlaps(t) for t in taken):
                    raise Forbidden("Pool overlaps with other one on this address space")
            if not pools:
                pools = (ipam.make_pool(str(self._free_subnet())),)
            record = NetworkRecord(
                id=network_id, name=request.name, driver="bridge", created=now_ns(),
                bridge=bridge, internal=request.internal, attachable=request.attachable,
                pools=pools, options=options, labels=dict(request.labels or {}))
            with netns.routes() as ipr:
                pool = pools[0]
                try:
                    self._bridges[bridge] = links.ensure_bridge(
                        ipr, bridge, pool.gateway, ipaddress.ip_network(pool.subnet).prefixlen)
                    self._put(record)
                    self._apply_firewall()
                except BaseException:
                    self._bridges.pop(bridge, None)
                    links.delete_link(ipr, bridge)
                    self._networks.delete(record.id)
                    raise
            return record

    async def remove(self, ref: str) -> None:
        record = await asyncio.to_thread(self._remove, ref)
        self.events.publish("network", "destroy", record.id,
                            {"name": record.name, "type": record.driver})

    def _remove(self, ref: str) -> NetworkRecord:
        with self._lock:
            record = self.get(ref)
            if record.name in PREDEFINED:
                raise Forbidden(f"{record.name} is a pre-defined network and cannot be removed")
            if self.active(record):
                raise Forbidden(f"error while removing network: network {record.name} id "
                                f"{record.id} has active endpoints")
            self._drop(record)
            return record

    def _drop(self, record: NetworkRecord) -> None:
        for endpoint in self.endpoints(record.id):
            self._forget(endpoint)
        self._networks.delete(record.id)
        self._apply_firewall()
        self._bridges.pop(record.bridge, None)
        with netns.routes() as ipr:
            links.delete_link(ipr, record.bridge)

    async def prune(self, filters: Mapping[str, Sequence[str]]) -> list[str]:
        spec = NetworkFilters.parse(filters, prune=True)
        removed = await asyncio.to_thread(self._prune, spec)
        for record in removed:
            self.events.publish("network", "destroy", record.id,
                                {"name": record.name, "type": record.driver})
        return [r.name for r in removed]

    def _prune(self, spec: NetworkFilters) -> list[NetworkRecord]:
        removed = []
        with self._lock:
            for record in self._all():
                if record.name in PREDEFINED or self._in_use(record) \
                        or not spec.matches(record, False):
                    continue
                self._drop(record)
                removed.append(record)
        return removed

    async def connect(self, ref: str, container_ref: str, aliases: Sequence[str] = (),
                      address: str = "", links: Sequence[str] = ()) -> None:
        record, info = await asyncio.to_thread(self._connect, ref, container_ref,
                                               tuple(aliases), address, None, "", tuple(links))
        self.events.publish("network", "connect", record.id,
                            {"container": info.id, "name": record.name,
                             "type": record.driver})

    def reserve(self, info: ContainerInfo, request: EndpointRequest) -> None:
        """At a container's create: the endpoint on its network with the aliases and
        address asked for."""
        network = "bridge" if request.network == "default" else request.network
        if info.network_mode in ("host", "none") or info.network_mode.startswith("container:"):
            raise InvalidParameter("conflicting options: network aliases, addresses or a MAC "
                                   f"address and the network mode {info.network_mode}")
        self._connect(network, info.id, request.aliases, request.ipv4_address, info,
                      request.mac_address, request.links, at_create=True)

    def _connect(self, ref: str, container_ref: str, aliases: tuple[str, ...],
                 address: str, info: ContainerInfo | None = None, mac: str = "",
                 links: tuple[str, ...] = (),
                 at_create: bool = False) -> tuple[NetworkRecord, ContainerInfo]:
        info = info or self.lookup(container_ref)
        with self._lock:
            record = self.get(ref)
            if "host" in (record.driver, info.network_mode):
                raise InvalidParameter("container cannot be disconnected from host network "
                                       "or connected to host network")
            if record.driver != "bridge" or info.network_mode == "none" \
                    or info.network_mode.startswith("container:"):
                raise InvalidParameter(f"container {info.id} is not attachable to network "
                                       f"{record.name}")
            if record.name == "bridge" and address:
                raise InvalidParameter("user specified IP address is supported on user "
                                       "defined networks only")
            if record.name == "bridge" and aliases:
                raise InvalidParameter("network-scoped alias is supported only for "
                                       "containers in user defined networks")
            if record.name == "bridge" and links:
                raise InvalidParameter("legacy container links (--link) on the default "
                                       "bridge network are not supported yet")
            if not at_create:
                aliases = _joined_aliases(record, info.id, aliases)
            endpoint = self._endpoint(record, info, aliases, address, self._free_ifname(info.id),
                                      mac, links)
            if info.pid:
                try:
                    endpoint = self._with_address(record, endpoint)
                    self._plug(netns.namespace_path(info.pid), [(record, endpoint)],
                               loopback=False)
                    if record.name != "bridge":
                        self.resolver.attach(info.id, netns.namespace_path(info.pid),
                                             dns.upstreams(info.dns))
                        self.embedded_dns_joined(info.id)
                except BaseException:
                    self._forget(endpoint)
                    raise
        return record, info

    async def disconnect(self, ref: str, container_ref: str, force: bool = False) -> None:
        record, info = await asyncio.to_thread(self._disconnect, ref, container_ref, force)
        self.events.publish("network", "disconnect", record.id,
                            {"container": info.id, "name": record.name,
                             "type": record.driver})

    def _disconnect(self, ref: str, container_ref: str,
                    force: bool) -> tuple[NetworkRecord, ContainerInfo]:
        with self._lock:
            record = self.get(ref)
            try:
                info = self.lookup(container_ref)
            except NotFound:
                if not force:
                    raise
                info = ContainerInfo(container_ref, "", 0, "")
            found = self.endpoints(record.id, info.id)
            if not found:
                raise SystemFailure(f"container {info.id} is not connected to network "
                                    f"{record.name}")
            if info.pid:
                links.unplug(netns.namespace_path(info.pid), found[0].ifname)
            self._forget(found[0])
        return record, info

    # ------------------------------------------------------------------ containers

    def prepare(self, info: ContainerInfo) -> list[Attachment]:
        """Before a start: the container's endpoints, made on its network the first
        time, each with an address claimed until the container stops."""
        mode = info.network_mode or "default"
        if mode in ("host", "none") or mode.startswith("container:"):
            return []
        with self._lock:
            record = self.get("bridge" if mode == "default" else mode)
            if record.driver != "bridge":
                raise InvalidParameter(f"network mode {mode}: cannot join a {record.driver} "
                                       "network this way")
            mine = self.endpoints(container_id=info.id)
            if not any(e.network_id == record.id for e in mine):
                mine.insert(0, self._endpoint(record, info, (), "", self._free_ifname(info.id)))
            networks = {n.id: n for n in self._all()}
            found: list[Attachment] = []
            try:
                for e in mine:
                    if e.network_id in networks:
                        network = networks[e.network_id]
                        found.append(Attachment(network, self._with_address(network, e)))
            except BaseException:
                self._release_addresses(info.id)
                raise
            return found

    def new_namespace(self, info: ContainerInfo) -> int | None:
        """Before a start: the network namespace of a container that gets one of its own
        (None for the host's or another container's), held by the fd returned until the
        runtime's create has joined it. Made ahead, as libnetwork makes its sandbox, so
        that plug runs beside the runtime's create instead of after it."""
        mode = info.network_mode or "default"
        if mode == "host" or mode.startswith("container:"):
            return None
        return netns.new_namespace()

    def plug(self, info: ContainerInfo, attachments: Sequence[Attachment],
             namespace: str | None = None) -> None:
        """`lo` up (every mode with a namespace of its own), a veth per endpoint, and on
        a user-defined network the embedded DNS server. `namespace`: the path of the
        namespace made by new_namespace, plugged while the runtime creates the
        container; then serve_dns follows once the init is in it. Without it, between
        the runtime's create and start, in the init's namespace."""
        mode = info.network_mode or "default"
        if mode == "host" or mode.startswith("container:"):
            return
        self._plug(namespace or netns.namespace_path(info.pid),
                   [(a.network, a.endpoint) for a in attachments], loopback=True)
        if namespace is None:
            self.serve_dns(info, attachments)

    @staticmethod
    def embedded_dns(attachments: Sequence[Attachment]) -> bool:
        """Whether the container gets the embedded DNS server: on a user-defined network."""
        return any(a.network.name != "bridge" for a in attachments)

    def serve_dns(self, info: ContainerInfo, attachments: Sequence[Attachment]) -> None:
        """The embedded DNS server of a container on a user-defined network, in its init's
        namespace (the server keeps that path to forward queries from there)."""
        if self.embedded_dns(attachments):
            self.resolver.attach(info.id, netns.namespace_path(info.pid),
                                 dns.upstreams(info.dns))

    def check_ports(self, network_mode: str, port_bindings: Mapping[str, object] | None,
                    publish_all: bool, exposed: Iterable[str]) -> None:
        """At create: the bindings parse, and the network mode can publish."""
        found = ports.bindings(port_bindings, publish_all, exposed)
        if found and (network_mode in ("host", "none") or network_mode.startswith("container:")):
            raise InvalidParameter("conflicting options: port publishing and the container "
                                   "type network mode")

    @staticmethod
    def publishes(port_bindings: Mapping[str, object] | None, publish_all: bool,
                  exposed: Iterable[str]) -> bool:
        """Whether a start has ports to publish."""
        return bool(ports.bindings(port_bindings, publish_all, exposed))

    def publish(self, info: ContainerInfo, attachments: Sequence[Attachment],
                port_bindings: Mapping[str, object] | None, publish_all: bool,
                exposed: Iterable[str]) -> None:
        """After plug: the listeners and DNAT rules of the container's published ports,
        all or none (dockerd's error when a host port is taken)."""
        found = ports.bindings(port_bindings, publish_all, exposed)
        if not found or not attachments:
            return
        endpoint = attachments[0].endpoint
        taken = ports.ContainerPorts()
        with self._ports_lock:
            held = {(p.proto, p.host_port) for c in self._ports.values() for p in c.published}
            try:
                for binding in found:
                    published, listeners = ports.bind(binding, endpoint.address, held)
                    taken.published += published
                    taken.listeners += listeners
                    held |= {(p.proto, p.host_port) for p in published}
            except ports.PortTaken as err:
                taken.close()
                raise SystemFailure(
                    f"driver failed programming external connectivity on endpoint "
                    f"{info.name.lstrip('/')} ({endpoint.id}): {err}") from None
            self._ports[info.id] = taken
        try:
            self._apply_firewall()
        except BaseException:
            self.stopped(info.id)
            raise
        for listener in taken.listeners:
            listener.start()

    def readopt(self, info: ContainerInfo, port_bindings: Mapping[str, object] | None,
                publish_all: bool, exposed: Iterable[str]) -> None:
        """A container live-restore kept running: its published ports and DNS server
        again (its links and addresses never went away)."""
        attachments = self.prepare(info)
        self.publish(info, attachments, port_bindings, publish_all, exposed)
        if self.embedded_dns(attachments):
            self.resolver.attach(info.id, netns.namespace_path(info.pid),
                                 dns.upstreams(info.dns))

    def stopped(self, container_id: str) -> None:
        """When the container stops: its DNS server, port listeners and rules go, and
        its addresses, as dockerd releases them at the stop (a start claims anew)."""
        self.resolver.detach(container_id)
        with self._ports_lock:
            taken = self._ports.pop(container_id, None)
        if taken is not None:
            taken.close()
            self._apply_firewall()
        with self._lock:  # last: on a full disk it fails, and the next start does it
            self._release_addresses(container_id)

    def release_stopped(self, container_ids: set[str]) -> None:
        """At the daemon's start: the addresses the stopped containers still hold."""
        with self._lock:
            for container_id in container_ids:
                self._release_addresses(container_id)

    def published(self, container_id: str) -> list[PublishedPort]:
        with self._ports_lock:
            taken = self._ports.get(container_id)
            return list(taken.published) if taken else []

    def release(self, container_id: str) -> None:
        """At a container's removal: its endpoints and addresses."""
        with self._lock:
            for endpoint in self.endpoints(container_id=container_id):
                self._forget(endpoint)

    def bridge_gateway(self) -> str:
        """host-gateway in --add-host: the default bridge's gateway, as dockerd."""
        return self.get("bridge").pools[0].gateway

    # ------------------------------------------------------------------ endpoints

    def _endpoint(self, record: NetworkRecord, info: ContainerInfo,
                  aliases: tuple[str, ...], address: str, ifname: str,
                  mac: str = "", links: tuple[str, ...] = ()) -> EndpointRecord:
        """The container on the network, with no address yet: a running container's
        is claimed by _with_address."""
        pool = record.pools[0]
        if address and ipaddress.ip_address(address) not in ipaddress.ip_network(pool.subnet):
            raise Forbidden(f"invalid address {address}: It does not belong to any of "
                            "this network's subnets")
        endpoint = EndpointRecord(
            id=secrets.token_hex(32), network_id=record.id, container_id=info.id,
            prefix_len=ipaddress.ip_network(pool.subnet).prefixlen, gateway=pool.gateway,
            mac=mac.lower(), aliases=aliases, requested_address=address, ifname=ifname,
            links=links)
        try:
            self._store(endpoint)
        except sqlite3.IntegrityError:
            raise Forbidden(f"endpoint with name {info.name.lstrip('/')} already exists in "
                            f"network {record.name}") from None
        return endpoint

    def _with_address(self, record: NetworkRecord, endpoint: EndpointRecord) -> EndpointRecord:
        """The endpoint with an address claimed: the one asked for with --ip, else the
        first free one; its MAC follows the address unless one was given."""
        if endpoint.address:
            return endpoint
        wanted = endpoint.requested_address
        if wanted:
            if not self.metadata.claim_address(record.id, wanted, endpoint.id):
                raise Forbidden("Address already in use")
            chosen = wanted
        else:
            claimed = self.metadata.claimed_addresses(record.id)
            chosen = next((a for a in ipam.candidates(record.pools[0]) if a not in claimed
                           and self.metadata.claim_address(record.id, a, endpoint.id)), "")
            if not chosen:
                raise Forbidden(f"no available IPv4 addresses on this network's address "
                                f"pools: {record.name} ({record.id})")
        endpoint = replace(endpoint, address=chosen, mac=endpoint.mac or ipam.mac_for(chosen),
                           aliases=_joined_aliases(record, endpoint.container_id,
                                                   endpoint.aliases))
        self._store(endpoint)
        return endpoint

    def _release_addresses(self, container_id: str) -> None:
        for endpoint in self.endpoints(container_id=container_id):
            if endpoint.address:
                self.metadata.release_addresses(endpoint.id)
                given_mac = endpoint.mac if endpoint.mac != ipam.mac_for(endpoint.address) else ""
                self._store(replace(endpoint, address="", mac=given_mac))

    def _store(self, endpoint: EndpointRecord) -> None:
        self._endpoints.put(endpoint.id, endpoint.key, ENDPOINT_VERSION, endpoint.to_json())
        self._endpoint_cache[endpoint.id] = endpoint
        self._names_changed([endpoint])

    def _names_changed(self, endpoints: Iterable[EndpointRecord]) -> None:
        """The embedded DNS forgets what it knew once a user network's endpoint changed
        (the default bridge has no names: its churn costs no lookup a second ask)."""
        if any(e.network_id != self._default_id for e in endpoints):
            self.resolver.changed()

    def _on_event(self, event: Event) -> None:
        # A start makes a container's names resolve to its address, a rename moves them.
        if event.type == "container" and event.action in ("start", "rename"):
            self._names_changed(self.endpoints(container_id=event.actor_id))

    def _free_ifname(self, container_id: str) -> str:
        used = {e.ifname for e in self.endpoints(container_id=container_id)}
        return next(f"eth{i}" for i in range(len(used) + 1) if f"eth{i}" not in used)

    def _resolve(self, container_id: str, name: str) -> list[str] | None:
        """What the embedded DNS answers `container_id` for `name`: the addresses of the
        running containers known by that name on the user networks they share, or for
        one of its links' aliases, of the linked container on the link's network."""
        endpoints = self._all_endpoints()
        mine = {e.network_id: e for e in endpoints if e.container_id == container_id}
        mine.pop(self._default_id, None)
        for network_id, endpoint in mine.items():
            for link in endpoint.links:
                target, alias = parse_link(link)
                if alias.lower() == name:
                    found = self._addresses(endpoints, {network_id}, target.lower())
                    if found is not None:
                        return found
        return self._addresses(endpoints, set(mine), name)

    def _addresses(self, endpoints: Sequence[EndpointRecord], network_ids: set[str],
                   name: str) -> list[str] | None:
        """The addresses of the running containers known as `name` on these networks;
        None when no container has that name, [] when none of them runs."""
        found: list[str] | None = None
        for endpoint in endpoints:
            if endpoint.network_id not in network_ids:
                continue
            try:
                info = self.lookup(endpoint.container_id)
            except NotFound:
                continue
            names = {info.name.lstrip("/").lower(), endpoint.container_id[:12],
                     *(a.lower() for a in endpoint.aliases)}
            if name in names:
                found = found or []
                if info.pid:
                    found.append(endpoint.address)
        return found

    def _forget(self, endpoint: EndpointRecord) -> None:
        self._endpoint_cache.pop(endpoint.id, None)
        self._endpoints.delete(endpoint.id)
        self.metadata.release_addresses(endpoint.id)
        self._names_changed([endpoint])

    def _plug(self, namespace: str, endpoints: Sequence[tuple[NetworkRecord, EndpointRecord]],
              loopback: bool) -> None:
        # A bridge not made by this daemon's start or create (a network removed while
        # the container started) is asked for: gone, the kernel's ENODEV says so.
        links.plug(namespace, [links.Veth(
            self._bridges.get(record.bridge) or links.link_index(record.bridge),
            "veth" + endpoint.id[:11], endpoint.ifname,
            endpoint.address, endpoint.prefix_len, endpoint.gateway, endpoint.mac,
            default_route=not record.internal and endpoint.ifname == "eth0")
            for record, endpoint in endpoints], loopback)


def _joined_aliases(record: NetworkRecord, container_id: str,
                    aliases: tuple[str, ...]) -> tuple[str, ...]:
    """On a user network dockerd lists the container's short ID among its aliases from
    the moment it joins (a start or a connect) and keeps it after a stop."""
    short = container_id[:12]
    if record.name == "bridge" or short in aliases:
        return aliases
    return (*aliases, short)


def _no_containers(ref: str) -> ContainerInfo:
    raise NotFound(f"No such container: {ref}")


def _validate_request(request: CreateRequest) -> None:
    if not request.name:
        raise InvalidParameter("network name must be specified")  # assumed; see tests
    if request.name in PREDEFINED:
        raise Forbidden(f"{request.name} is a pre-defined network and cannot be created")
    if request.driver in ("host", "null"):
        raise Forbidden(f'only one instance of "{request.driver}" network is allowed')
    if request.driver not in ("bridge", ""):
        raise NotFound(f"plugin \"{request.driver}\" not found")
    if request.enable_ipv6:
        raise InvalidParameter("IPv6 networks are not supported yet")
    if request.ipam_driver not in ("default", ""):
        raise NotFound(f"plugin \"{request.ipam_driver}\" not found")
    for option in request.options or {}:
        if option not in _BRIDGE_OPTIONS:
            raise InvalidParameter(f"bridge driver option {option} is not supported yet")


def _pools(configs: Sequence[IPAMConfig]) -> tuple[IpamPool, ...]:
    pools = []
    for config in configs:
        if not config.subnet:
            raise InvalidParameter("an IPAM pool without a subnet is not supported yet")
        pools.append(ipam.make_pool(config.subnet, config.gateway, config.ip_range,
                                    dict(config.auxiliary_addresses or {}),
                                    shows_gateway=bool(config.gateway)))
    if len(pools) > 1:
        raise InvalidParameter("more than one IPv4 pool per network is not supported yet")
    for i, pool in enumerate(pools):
        for other in pools[i + 1:]:
            if ipaddress.ip_network(pool.subnet).overlaps(ipaddress.ip_network(other.subnet)):
                raise Forbidden("Pool overlaps with other one on this address space")
    return tuple(pools)

