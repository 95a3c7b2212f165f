"""`config`'s output: the normalized model as Compose v2 prints it.

compose-go marshals Go structs: a struct's keys come in its fields' order (a port is
mode, target, published, protocol), a map's keys sorted (labels, environment, args); its
YAML is yaml.v3's (a string that would read as another type double-quoted, a multi-line
one as a literal block) and its JSON Go's (the top level is a map, so sorted; `<`, `>`
and `&` escaped)."""

from __future__ import annotations

import json
from typing import Any

# Field order of compose-go's structs (their yaml tags); a key missing here is sorted
# after them.
_FIELDS: dict[str, tuple[str, ...]] = {
    "project": ("name", "services", "networks", "volumes", "secrets", "configs", "models"),
    "service": (
        "profiles", "annotations", "attach", "build", "develop", "blkio_config", "cap_add",
        "cap_drop", "cgroup_parent", "cgroup", "cpu_count", "cpu_percent", "cpu_period",
        "cpu_quota", "cpu_rt_period", "cpu_rt_runtime", "cpus", "cpuset", "cpu_shares",
        "command", "configs", "container_name", "credential_spec", "depends_on", "deploy",
        "device_cgroup_rules", "devices", "dns", "dns_opt", "dns_search", "dockerfile",
        "domainname", "entrypoint", "provider", "environment", "env_file", "expose",
        "extends", "external_links", "extra_hosts", "group_add", "gpus", "hostname",
        "healthcheck", "image", "init", "ipc", "isolation", "labels", "label_file", "links",
        "logging", "log_driver", "log_opt", "mem_limit", "mem_reservation", "memswap_limit",
        "mem_swappiness", "mac_address", "models", "net", "network_mode", "networks",
        "oom_kill_disable", "oom_score_adj", "pid", "pids_limit", "platform", "ports",
        "privileged", "pull_policy", "read_only", "restart", "runtime", "scale", "secrets",
        "security_opt", "shm_size", "stdin_open", "stop_grace_period", "stop_signal",
        "storage_opt", "sysctls", "tmpfs", "tty", "ulimits", "use_api_socket", "user",
        "userns_mode", "uts", "volume_driver", "volumes", "volumes_from", "working_dir",
        "pre_start", "post_start", "pre_stop"),
    "build": (
        "context", "dockerfile", "dockerfile_inline", "entitlements", "args", "provenance",
        "sbom", "ssh", "labels", "cache_from", "cache_to", "no_cache", "no_cache_filter",
        "additional_contexts", "pull", "extra_hosts", "isolation", "network", "target",
        "secrets", "shm_size", "tags", "ulimits", "platforms", "privileged"),
    "develop": ("watch",),
    "trigger": ("path", "action", "target", "exec", "include", "ignore", "initial_sync"),
    "blkio": ("weight", "weight_device", "device_read_bps", "device_read_iops",
              "device_write_bps", "device_write_iops"),
    "device": ("source", "target", "permissions"),
    "logging": ("driver", "options"),
    "deploy": ("mode", "replicas", "labels", "update_config", "rollback_config", "resources",
               "restart_policy", "placement", "endpoint_mode"),
    "update": ("parallelism", "delay", "failure_action", "monitor", "max_failure_ratio",
               "order"),
    "resources": ("limits", "reservations"),
    "resource": ("cpus", "memory", "pids", "devices", "generic_resources"),
    "restart_policy": ("condition", "delay", "max_attempts", "window"),
    "placement": ("constraints", "preferences", "max_replicas_per_node"),
    "service_network": ("aliases", "driver_opts", "gw_priority", "interface_name",
                        "ipv4_address", "ipv6_address", "link_local_ips", "mac_address",
                        "priority"),
    "port": ("name", "mode", "host_ip", "target", "published", "protocol", "app_protocol"),
    "volume_mount": ("type", "source", "target", "read_only", "consistency", "bind", "volume",
                     "tmpfs", "image"),
    "bind": ("selinux", "propagation", "create_host_path", "recursive"),
    "volume_options": ("labels", "nocopy", "subpath"),
    "tmpfs": ("size", "mode"),
    "file_reference": ("source", "target", "uid", "gid", "mode"),
    "ulimit": ("single", "soft", "hard"),
    "healthcheck": ("test", "timeout", "interval", "retries", "start_period",
                    "start_interval", "disable"),
    "dependency": ("condition", "restart", "required"),
    "extends": ("file", "service"),
    "credential_spec": ("config", "file", "registry"),
    "hook": ("command", "image", "user", "privileged", "working_dir", "environment",
             "per_replica"),
    "network": ("name", "driver", "driver_opts", "ipam", "external", "internal", "attachable",
                "labels", "enable_ipv4", "enable_ipv6"),
    "ipam": ("driver", "config", "options"),
    "ipam_pool": ("subnet", "gateway", "ip_range", "aux_addresses"),
    "volume": ("name", "driver", "driver_opts", "external", "labels"),
    "file_object": ("name", "file", "environment", "content", "external", "labels", "driver",
                    "driver_opts", "template_driver"),
}

# Which struct a key holds, by the struct it is in: "x" a struct, "x{}" a map of them,
# "x[]" a list of them; a key not listed holds a map (sorted) or a plain value.
_HOLDS: dict[str, dict[str, str]] = {
    "project": {"services": "service{}", "networks": "network{}", "volumes": "volume{}",
                "secrets": "file_object{}", "configs": "file_object{}"},
    "service": {
        "build": "build", "develop": "develop", "blkio_config": "blkio", "devices": "device[]",
        "logging": "logging", "deploy": "deploy", "networks": "service_network{}",
        "ports": "port[]", "volumes": "volume_mount[]", "secrets": "file_reference[]",
        "configs": "file_reference[]", "ulimits": "ulimit{}", "healthcheck": "healthcheck",
        "depends_on": "dependency{}", "extends": "extends", "credential_spec": "credential_spec",
        "pre_start": "hook[]", "post_start": "hook[]", "pre_stop": "hook[]"},
    "build": {"ulimits": "ulimit{}"},
    "develop": {"watch": "trigger[]"},
    "deploy": {"update_config": "update", "rollback_config": "update",
               "resources": "resources", "restart_policy": "restart_policy",
               "placement": "placement"},
    "resources": {"limits": "resource", "reservations": "resource"},
    "volume_mount": {"bind": "bind", "volume": "volume_options", "tmpfs": "tmpfs"},
    "network": {"ipam": "ipam"},
    "ipam": {"config": "ipam_pool[]"},
}


def _struct(value: Any, kind: str) -> Any:
    if not isinstance(value, dict):
        return value
    fields = _FIELDS[kind]
    holds = _HOLDS.get(kind, {})
    keys = [k for k in fields if k in value] + sorted(k for k in value if k not in fields)
    return {k: _held(value[k], holds.get(k)) for k in keys}


def _held(value: Any, kind: str | None) -> Any:
    if kind is None:
        return _sorted(value)
    if kind.endswith("{}") and isinstance(value, dict):
        return {k: _struct(value[k], kind[:-2]) for k in sorted(value)}
    if kind.endswith("[]") and isinstance(value, list):
        return [_struct(v, kind[:-2]) for v in value]
    return _struct(value, kind)


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def ordered(model: dict[str, Any]) -> dict[str, Any]:
    """The model's keys in the order compose-go's structs give them."""
    ordered_model: dict[str, Any] = _struct(model, "project")
    return ordered_model


def to_yaml(model: dict[str, Any]) -> str:
    import yaml

    class Dumper(yaml.SafeDumper):
        def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
            # Sequences indented under their key, as yaml.v3 writes them.
            super().increase_indent(flow, False)

    def string(dumper: yaml.SafeDumper, text: str) -> yaml.Node:
        style = None
        if "\n" in text:
            style = "|"
        elif dumper.resolve(yaml.ScalarNode, text, (True, False)) != "tag:yaml.org,2002:str":
            style = '"'  # yaml.v3 double-quotes a string that would read as a number or bool
        return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)

    Dumper.add_representer(str, string)
    text: str = yaml.dump(ordered(model), Dumper=Dumper, sort_keys=False,
                          default_flow_style=False, allow_unicode=True, width=1 << 16)
    return text


def to_json(model: dict[str, Any]) -> str:
    # Project.MarshalJSON puts the top level in a Go map: its keys come out sorted.
    top = ordered(model)
    text = json.dumps({k: top[k] for k in sorted(top)}, indent=2)
    # Go's encoder escapes HTML's special characters.
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026") + "\n"
