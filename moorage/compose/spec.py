"""A service's container, as the Engine API's create body (Compose v2's mapping)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from moorage.compose import labels
from moorage.compose.durations import nanoseconds, size
from moorage.compose.errors import ComposeError

if TYPE_CHECKING:
    from moorage.compose.loader import Project

# Keys that decide nothing on a container, or that other commands read (build, develop).
# Keys other steps read: build, pull (pull_policy), ordering, scale, watch, attached logs.
_NO_EFFECT = {"image", "build", "depends_on", "profiles", "scale", "deploy", "develop",
              "container_name", "pull_policy", "extends", "attach", "platform"}
_DIRECT = {"command", "entrypoint", "environment", "labels", "working_dir", "user", "tty",
           "stdin_open", "hostname", "domainname", "stop_signal", "stop_grace_period",
           "healthcheck", "ports", "expose", "volumes", "tmpfs", "restart", "network_mode",
           "networks", "init", "privileged", "cap_add", "cap_drop", "devices", "ulimits",
           "sysctls", "logging", "read_only", "shm_size", "extra_hosts", "dns", "dns_search",
           "dns_opt", "security_opt", "group_add", "pid", "ipc", "oom_score_adj",
           "mem_limit", "memswap_limit", "mem_reservation", "cpus", "cpu_shares",
           "pids_limit", "secrets", "configs", "mac_address", "runtime", "cgroup_parent",
           "userns_mode", "uts", "volumes_from", "links", "storage_opt",
           "cpuset", "oom_kill_disable", "device_cgroup_rules"}


def refuse_unsupported(name: str, service: dict[str, Any]) -> None:
    for key in service:
        if key not in _NO_EFFECT and key not in _DIRECT and not key.startswith("x-"):
            raise ComposeError(f"services.{name}.{key}: not supported by moor compose yet")
    for net, options in (service.get("networks") or {}).items():
        for option in options or {}:
            if option not in ("aliases", "ipv4_address", "ipv6_address"):
                raise ComposeError(f"services.{name}.networks.{net}.{option}: not supported "
                                   "by moor compose yet")
    deploy = service.get("deploy") or {}
    for key in deploy:
        if key not in ("replicas", "resources", "restart_policy"):
            raise ComposeError(f"services.{name}.deploy.{key}: not supported by moor "
                               "compose yet")
    resources = deploy.get("resources") or {}
    for section, allowed in (("limits", ("cpus", "memory", "pids")),
                             ("reservations", ("memory",))):
        for key in resources.get(section) or {}:
            if key not in allowed:
                raise ComposeError(f"services.{name}.deploy.resources.{section}.{key}: not "
                                   "supported by moor compose yet")


def _healthcheck(check: dict[str, Any]) -> dict[str, Any]:
    if check.get("disable"):
        return {"Test": ["NONE"]}
    out: dict[str, Any] = {}
    if "test" in check:
        out["Test"] = check["test"]
    for key, wire in (("interval", "Interval"), ("timeout", "Timeout"),
                      ("start_period", "StartPeriod"), ("start_interval", "StartInterval")):
        if key in check:
            out[wire] = nanoseconds(check[key])
    if "retries" in check:
        out["Retries"] = int(check["retries"])
    return out


_DEPLOY_RESTART = {"none": "", "on-failure": "on-failure", "any": "always"}


def _restart(service: dict[str, Any]) -> dict[str, Any]:
    deployed = (service.get("deploy") or {}).get("restart_policy")
    if deployed and "restart" not in service:
        # deploy.restart_policy, as Compose v2 maps it for a single engine
        return {"Name": _DEPLOY_RESTART.get(deployed.get("condition", "any"), "always"),
                "MaximumRetryCount": int(deployed.get("max_attempts") or 0)}
    policy = service.get("restart") or "no"
    name, _, count = policy.partition(":")
    if name not in ("no", "always", "on-failure", "unless-stopped"):
        raise ComposeError(f"invalid restart policy: unknown policy '{name}'")
    return {"Name": "" if name == "no" else name, "MaximumRetryCount": int(count or 0)}


def _mounts(project: Project, service: dict[str, Any]) -> list[dict[str, Any]]:
    volumes = project.model.get("volumes") or {}
    out = []
    for v in service.get("volumes") or ():
        mount: dict[str, Any] = {"Type": v["type"], "Target": v["target"],
                                 "ReadOnly": bool(v.get("read_only"))}
        if v["type"] == "volume" and v.get("source"):
            mount["Source"] = volumes[v["source"]]["name"]
            if (v.get("volume") or {}).get("nocopy"):
                mount["VolumeOptions"] = {"NoCopy": True}
        elif v["type"] == "bind":
            mount["Source"] = v["source"]
        elif v["type"] == "tmpfs" and (v.get("tmpfs") or {}).get("size"):
            mount["TmpfsOptions"] = {"SizeBytes": size(v["tmpfs"]["size"])}
        out.append(mount)
    for target, entry, ref in _file_refs(project, service):
        if "file" in entry:
            if {"uid", "gid", "mode"} & set(ref):
                sys.stderr.write("WARN[0000] secrets `uid`, `gid` and `mode` are not supported, "
                                 "they will be ignored\n")
            out.append({"Type": "bind", "Source": entry["file"], "Target": target,
                        "ReadOnly": True})
    return out


def _file_refs(project: Project, service: dict[str, Any]
               ) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(path in the container, the top-level definition, the service's reference) of each
    secret and config; external ones exist only in a swarm."""
    out = []
    for section, where in (("secrets", "/run/secrets/"), ("configs", "/")):
        defined = project.model.get(section) or {}
        for ref in service.get(section) or ():
            entry = defined[ref["source"]]
            if entry.get("external"):
                raise ComposeError(f"unsupported external {section[:-1]} {ref['source']}")
            target = ref.get("target") or ref["source"]
            if not target.startswith("/"):
                target = where + target
            out.append((target, entry, ref))
    return out


def injected_files(project: Project, service: dict[str, Any]) -> list[tuple[str, bytes, int]]:
    """Secrets and configs given by `environment` or `content`: written into the container
    before it starts, as Compose v2 copies them (path, data, mode)."""
    out = []
    for target, entry, ref in _file_refs(project, service):
        if "file" in entry:
            continue
        if "environment" in entry:
            value = project.environment.get(entry["environment"])
            if value is None:
                raise ComposeError(f"environment variable {entry['environment']!r} required "
                                   f"by {ref['source']} is not set")
        else:
            value = str(entry.get("content", ""))
        mode = ref.get("mode", 0o444)
        out.append((target, value.encode(), int(str(mode), 8) if isinstance(mode, str)
                    else int(mode)))
    return out


def _ports(service: dict[str, Any]) -> tuple[dict[str, Any], dict[str, list[dict[str, str]]]]:
    exposed: dict[str, Any] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for p in service.get("ports") or ():
        key = f"{p['target']}/{p.get('protocol', 'tcp')}"
        exposed[key] = {}
        bindings.setdefault(key, []).append({"HostIp": p.get("host_ip", ""),
                                             "HostPort": str(p.get("published", ""))})
    for e in service.get("expose") or ():
        port, _, proto = str(e).partition("/")
        exposed[f"{port}/{proto or 'tcp'}"] = {}
    return exposed, bindings


def _from(spec: str, names: dict[str, str]) -> str:
    """volumes_from: `service[:ro]` names a service, `container:name[:ro]` a container."""
    if spec.startswith("container:"):
        return spec.split(":", 1)[1]
    source, sep, mode = spec.partition(":")
    return f"{names.get(source, source)}{sep}{mode}"


def _link(spec: str, names: dict[str, str]) -> str:
    service, _, alias = spec.partition(":")
    return f"{names.get(service, service)}:{alias or service}"


def network_mode(project: Project, service: dict[str, Any], names: dict[str, str]) -> str:
    mode = service.get("network_mode")
    if mode:
        if mode.startswith("service:"):
            other = mode.split(":", 1)[1]
            return f"container:{names[other]}"
        return str(mode)
    first = next(iter(service.get("networks") or {"default": None}))
    return str(project.model["networks"][first]["name"])


def endpoint(project: Project, name: str, key: str, service: dict[str, Any],
             container_name: str) -> dict[str, Any]:
    options = (service.get("networks") or {}).get(key) or {}
    aliases = [name, *(options.get("aliases") or ())]
    out: dict[str, Any] = {"Aliases": aliases}
    if options.get("ipv4_address") or options.get("ipv6_address"):
        out["IPAMConfig"] = {"IPv4Address": options.get("ipv4_address", ""),
                             "IPv6Address": options.get("ipv6_address", "")}
    return out


def create_body(project: Project, name: str, service: dict[str, Any], number: int,
                image_id: str, container_name: str, names: dict[str, str],
                oneoff: bool = False) -> dict[str, Any]:
    refuse_unsupported(name, service)
    exposed, bindings = _ports(service)
    env = [k if v is None else f"{k}={v}" for k, v in (service.get("environment") or {}).items()]
    limits = ((service.get("deploy") or {}).get("resources") or {}).get("limits") or {}
    host: dict[str, Any] = {
        "NetworkMode": network_mode(project, service, names),
        "RestartPolicy": _restart(service),
        "Mounts": _mounts(project, service),
        "PortBindings": bindings,
        "Init": service.get("init"),
        "Privileged": bool(service.get("privileged")),
        "CapAdd": service.get("cap_add"), "CapDrop": service.get("cap_drop"),
        "ReadonlyRootfs": bool(service.get("read_only")),
        "ExtraHosts": [f"{h}:{ip}" for h, ip in (service.get("extra_hosts") or {}).items()]
        or None,
        "Dns": service.get("dns"), "DnsSearch": service.get("dns_search"),
        "DnsOptions": service.get("dns_opt"), "SecurityOpt": service.get("security_opt"),
        "GroupAdd": service.get("group_add"), "PidMode": service.get("pid", ""),
        "IpcMode": service.get("ipc", ""), "Sysctls": service.get("sysctls"),
        "Tmpfs": {t: "" for t in ([service["tmpfs"]] if isinstance(service.get("tmpfs"), str)
                                  else service.get("tmpfs") or ())} or None,
        "VolumesFrom": [_from(v, names) for v in service.get("volumes_from") or ()] or None,
        "Links": [_link(v, names) for v in service.get("links") or ()] or None,
        "CgroupParent": service.get("cgroup_parent", ""),
        "UsernsMode": service.get("userns_mode", ""), "UTSMode": service.get("uts", ""),
        "OomScoreAdj": service.get("oom_score_adj", 0),
        "OomKillDisable": service.get("oom_kill_disable"),
        "CpusetCpus": service.get("cpuset", ""),
        "CpuShares": int(service.get("cpu_shares", 0)),
        "StorageOpt": service.get("storage_opt"),
        "DeviceCgroupRules": service.get("device_cgroup_rules"),
    }
    if service.get("runtime"):
        host["Runtime"] = service["runtime"]
    reserved = ((service.get("deploy") or {}).get("resources") or {}).get("reservations") or {}
    if reserved.get("memory") and not service.get("mem_reservation"):
        host["MemoryReservation"] = size(reserved["memory"])
    memory = service.get("mem_limit") or limits.get("memory")
    if memory:
        host["Memory"] = size(memory)
    if service.get("memswap_limit"):
        host["MemorySwap"] = size(service["memswap_limit"])
    if service.get("mem_reservation"):
        host["MemoryReservation"] = size(service["mem_reservation"])
    cpus = service.get("cpus") or limits.get("cpus")
    if cpus:
        host["NanoCpus"] = int(float(cpus) * 1e9)
    pids = service.get("pids_limit") or limits.get("pids")
    if pids:
        host["PidsLimit"] = int(pids)
    if service.get("shm_size"):
        host["ShmSize"] = size(service["shm_size"])
    if service.get("ulimits"):
        host["Ulimits"] = [
            {"Name": n, "Soft": u, "Hard": u} if isinstance(u, int)
            else {"Name": n, "Soft": u["soft"], "Hard": u["hard"]}
            for n, u in service["ulimits"].items()]
    if service.get("devices"):
        host["Devices"] = []
        for d in service["devices"]:
            if isinstance(d, dict):
                d = f"{d['source']}:{d.get('target', d['source'])}:{d.get('permissions', 'rwm')}"
            parts = d.split(":")
            host["Devices"].append({"PathOnHost": parts[0],
                                    "PathInContainer": parts[1] if len(parts) > 1 else parts[0],
                                    "CgroupPermissions": parts[2] if len(parts) > 2 else "rwm"})
    if service.get("logging"):
        host["LogConfig"] = {"Type": service["logging"].get("driver", "json-file"),
                             "Config": service["logging"].get("options") or {}}
    body: dict[str, Any] = {
        "Image": service.get("image") or f"{project.name}-{name}",
        "Env": env,
        "Labels": {**(service.get("labels") or {}),
                   **labels.for_container(project, name, service, number, oneoff, image_id)},
        "Tty": bool(service.get("tty")),
        "OpenStdin": bool(service.get("stdin_open")),
        "AttachStdin": False, "AttachStdout": not oneoff, "AttachStderr": not oneoff,
        "ExposedPorts": exposed or None,
        "WorkingDir": service.get("working_dir", ""),
        "User": str(service.get("user", "")),
        "Hostname": service.get("hostname", ""),
        "Domainname": service.get("domainname", ""),
        "HostConfig": {k: v for k, v in host.items() if v is not None},
    }
    if "command" in service:
        body["Cmd"] = service["command"]
    if "entrypoint" in service:
        body["Entrypoint"] = service["entrypoint"]
    if service.get("stop_signal"):
        body["StopSignal"] = service["stop_signal"]
    if service.get("stop_grace_period"):
        body["StopTimeout"] = nanoseconds(service["stop_grace_period"]) // 1_000_000_000
    if service.get("healthcheck"):
        body["Healthcheck"] = _healthcheck(service["healthcheck"])
    if service.get("mac_address"):
        body["MacAddress"] = service["mac_address"]
    mode = host["NetworkMode"]
    if not service.get("network_mode"):
        key = next(iter(service.get("networks") or {"default": None}))
        body["NetworkingConfig"] = {"EndpointsConfig": {
            mode: endpoint(project, name, key, service, container_name)}}
    return body
