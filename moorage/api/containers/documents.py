"""Docker's container documents (inspect, list) from the daemon's records."""

from __future__ import annotations

import time

from moorage.api.wire import encode
from moorage.model.networks import ContainerNetwork, PublishedPort
from moorage.model.records import ContainerRecord, ContainerState
from moorage.model.times import format_rfc3339_nano
from moorage.protocol.units import human_duration

# dockerd's NetworkSettings of a container on no network: every field present, empty.
_NETWORK_SETTINGS = {
    "Bridge": "", "SandboxID": "", "HairpinMode": False, "LinkLocalIPv6Address": "",
    "LinkLocalIPv6PrefixLen": 0, "Ports": {}, "SandboxKey": "", "SecondaryIPAddresses": None,
    "SecondaryIPv6Addresses": None, "EndpointID": "", "Gateway": "", "GlobalIPv6Address": "",
    "GlobalIPv6PrefixLen": 0, "IPAddress": "", "IPPrefixLen": 0, "IPv6Gateway": "",
    "MacAddress": "", "Networks": {},
}
# HostConfig fields this engine does not implement, with the values dockerd shows for them
# (API v1.41 HostConfig), so that inspect has every key a client may read.
_HOST_CONFIG_DEFAULTS = {
    "PortBindings": {}, "PublishAllPorts": False, "Links": None, "Cgroup": "",
    "UsernsMode": "", "Isolation": "", "BlkioWeight": 0,
    "BlkioWeightDevice": [], "BlkioDeviceReadBps": [], "BlkioDeviceWriteBps": [],
    "BlkioDeviceReadIOps": [], "BlkioDeviceWriteIOps": [], "CpuRealtimePeriod": 0,
    "CpuRealtimeRuntime": 0, "DeviceRequests": None,
    "KernelMemory": 0, "KernelMemoryTCP": 0, "MemorySwappiness": None, "CpuCount": 0,
    "CpuPercent": 0, "IOMaximumIOps": 0, "IOMaximumBandwidth": 0,
}


def state_document(state: ContainerState) -> dict:
    doc = {
        "Status": state.status, "Running": state.running, "Paused": state.paused,
        "Restarting": state.restarting, "OOMKilled": state.oom_killed, "Dead": state.dead,
        "Pid": state.pid, "ExitCode": state.exit_code, "Error": state.error,
        "StartedAt": format_rfc3339_nano(state.started_at),
        "FinishedAt": format_rfc3339_nano(state.finished_at),
    }
    if state.health is not None:
        health = state.health
        doc["Health"] = {
            "Status": health.status, "FailingStreak": health.failing_streak,
            "Log": [{"Start": format_rfc3339_nano(r.start), "End": format_rfc3339_nano(r.end),
                     "ExitCode": r.exit_code, "Output": r.output} for r in health.log]}
    return doc


def network_settings(record: ContainerRecord, networks: list[ContainerNetwork],
                     published: list[PublishedPort]) -> dict:
    """As dockerd's: each network's endpoint (its address only while running), the
    default bridge's at the top level, and while running the exposed ports with what
    publishes them."""
    running = record.state.running
    settings: dict = {**_NETWORK_SETTINGS, "Networks": {}, "Ports": {}}
    if running and networks and networks[0].endpoint.address:
        ports: dict[str, list | None] = {
            k if "/" in k else f"{k}/tcp": None for k in record.config.exposed_ports or {}}
        for p in published:
            found = ports.get(f"{p.port}/{p.proto}") or []
            found.append({"HostIp": p.host_ip, "HostPort": str(p.host_port)})
            ports[f"{p.port}/{p.proto}"] = found
        settings["Ports"] = dict(sorted(ports.items()))
    for network in networks:
        e = network.endpoint
        live = running and bool(e.address)
        aliases = None if network.name == "bridge" else list(e.aliases) or None
        settings["Networks"][network.name] = {
            "IPAMConfig": {"IPv4Address": e.requested_address} if e.requested_address
            else None,
            "Links": list(e.links) or None, "Aliases": aliases, "NetworkID": e.network_id,
            "EndpointID": e.id if live else "", "Gateway": e.gateway if live else "",
            "IPAddress": e.address if live else "", "IPPrefixLen": e.prefix_len if live else 0,
            "IPv6Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0,
            "MacAddress": e.mac if live else "", "DriverOpts": None}
        if network.name == "bridge" and live:
            settings.update(EndpointID=e.id, Gateway=e.gateway, IPAddress=e.address,
                            IPPrefixLen=e.prefix_len, MacAddress=e.mac)
    return settings


def inspect_document(record: ContainerRecord, exec_ids: list[str], graph: dict[str, str],
                     size: tuple[int, int] | None,
                     networks: list[ContainerNetwork] | None = None,
                     published: list[PublishedPort] | None = None) -> dict:
    # HostConfig.Tmpfs mounts are not mount points: dockerd's Mounts leaves them out.
    tmpfs = record.host_config.tmpfs or {}
    doc = {
        "Id": record.id, "Created": format_rfc3339_nano(record.created),
        "Path": record.path, "Args": list(record.args), "State": state_document(record.state),
        "Image": record.image, "ResolvConfPath": record.resolv_conf_path,
        "HostnamePath": record.hostname_path, "HostsPath": record.hosts_path,
        # dockerd shows the local driver's files nowhere.
        "LogPath": record.log_path if record.host_config.log_config.type == "json-file"
        else "", "Name": record.name, "RestartCount": record.restart_count,
        "Driver": "overlay2", "Platform": "linux", "MountLabel": "", "ProcessLabel": "",
        "AppArmorProfile": "", "ExecIDs": exec_ids or None,
        "HostConfig": {**_HOST_CONFIG_DEFAULTS, **encode(record.host_config)},
        "GraphDriver": {"Name": "overlay2", "Data": graph},
        # A --mount tmpfs keeps its options in Mode for the spec; dockerd shows "".
        "Mounts": [{**encode(m), "Mode": ""} if m.type == "tmpfs" else encode(m)
                   for m in record.mounts if not (m.type == "tmpfs" and m.destination in tmpfs)],
        "Config": encode(record.config),
        "NetworkSettings": network_settings(record, networks or [], published or []),
    }
    if size is not None:
        doc["SizeRw"], doc["SizeRootFs"] = size
    return doc


def status_text(record: ContainerRecord) -> str:
    state = record.state
    now = time.time_ns()
    if state.restarting:
        return (f"Restarting ({state.exit_code}) "
                f"{human_duration((now - state.finished_at) / 1e9)} ago")
    if state.running:
        text = f"Up {human_duration((now - state.started_at) / 1e9)}"
        if state.paused:
            return text + " (Paused)"
        if state.health is not None:
            shown = "health: starting" if state.health.status == "starting" \
                else state.health.status
            return f"{text} ({shown})"
        return text
    if state.status == "exited":
        return (f"Exited ({state.exit_code}) "
                f"{human_duration((now - state.finished_at) / 1e9)} ago")
    return state.status.capitalize()


def command_text(record: ContainerRecord) -> str:
    """The list's Command: arguments with a space quoted in '' (moby daemon/list.go)."""
    args = [f"'{a}'" if " " in a else a for a in record.args]
    return " ".join([record.path, *args])


def summary(record: ContainerRecord, size: tuple[int, int] | None,
            published: list[PublishedPort] | None = None,
            networks: list[ContainerNetwork] | None = None) -> dict:
    ports: list[dict] = [{"IP": p.host_ip, "PrivatePort": p.port, "PublicPort": p.host_port,
                          "Type": p.proto} for p in published or ()]
    bound = {(p.port, p.proto) for p in published or ()}
    for key in record.config.exposed_ports or {} if record.state.running else {}:
        port, _, proto = key.partition("/")
        if (int(port), proto or "tcp") not in bound:
            ports.append({"PrivatePort": int(port), "Type": proto or "tcp"})
    doc = {
        "Id": record.id, "Names": [record.name], "Image": record.config.image,
        "ImageID": record.image, "Command": command_text(record),
        "Created": record.created // 1_000_000_000, "Ports": ports,
        "Labels": record.config.labels, "State": record.state.status,
        "Status": status_text(record),
        "HostConfig": {"NetworkMode": record.host_config.network_mode or "default"},
        "NetworkSettings": {"Networks": network_settings(record, networks or [],
                                                         [])["Networks"]},
        "Mounts": [encode(m) for m in record.mounts],
    }
    if size is not None:
        doc["SizeRw"], doc["SizeRootFs"] = size
    return doc
