"""moord's configuration: command-line flags over /etc/moor/daemon.json (Docker's keys)."""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass, field

from moorage.errors import InvalidParameter

DEFAULT_CONFIG_FILE = "/etc/moor/daemon.json"
DEFAULT_SOCKET = "unix:///run/moor/moord.sock"
# The CRI's defaults, containerd's: Debian's CNI plugins are in /usr/lib/cni.
_CNI_CONF_DIR = "/etc/cni/net.d"
_CNI_BIN_DIR = "/usr/lib/cni:/opt/cni/bin"
_SANDBOX_IMAGE = "registry.k8s.io/pause:3.9"
# Keys of Docker's daemon.json this daemon understands; others are refused as
# dockerd refuses them, so a typo never silently falls back to a default.
_KNOWN_KEYS = {
    "data-root", "exec-root", "hosts", "log-level", "default-runtime", "runtimes",
    "registry-mirrors", "registry-mirrors-by-registry", "insecure-registries", "live-restore",
    "log-driver", "log-opts",
    "bip", "bridge", "default-address-pools", "tls", "tlsverify", "tlscacert", "tlscert", "tlskey",
    "debug", "storage-driver", "features", "experimental",
    "cri-socket", "cni-conf-dir", "cni-bin-dir", "cri-sandbox-image",
}


@dataclass(frozen=True, slots=True)
class Runtime:
    name: str
    path: str
    args: tuple[str, ...] = ()


DEFAULT_DATA_ROOT = "/var/lib/moor"
DEFAULT_EXEC_ROOT = "/run/moor"


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    data_root: str = DEFAULT_DATA_ROOT
    exec_root: str = DEFAULT_EXEC_ROOT
    hosts: tuple[str, ...] = (DEFAULT_SOCKET,)
    log_level: str = "info"
    default_runtime: str = "moor-runtime"
    runtimes: tuple[Runtime, ...] = field(default_factory=tuple)
    registry_mirrors: tuple[str, ...] = ()
    # moorage's own key, as containerd's `registry.mirrors."<host>".endpoint`: a registry
    # named here is pulled through its own mirrors instead of registry-mirrors'.
    registry_mirrors_by_registry: dict[str, tuple[str, ...]] = field(default_factory=dict)
    insecure_registries: tuple[str, ...] = ()
    live_restore: bool = False
    log_driver: str = "json-file"   # daemon.json log-driver and log-opts: containers' defaults
    log_opts: dict[str, str] = field(default_factory=dict)
    # TLS for tcp:// hosts, dockerd's --tls/--tlsverify/--tlscacert/--tlscert/--tlskey.
    # tls is None when neither the flag nor daemon.json said: tcp:// is then refused
    # unless encrypted (dockerd 27+); tls=False asks for plain tcp:// explicitly.
    tls: bool | None = None
    tls_verify: bool = False
    tls_ca_cert: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    # The default bridge network: its Linux bridge, its address (daemon.json `bip`, CIDR)
    # and the pools user networks take subnets from ((base, size) pairs).
    bridge: str = "moor0"
    bip: str = ""
    address_pools: tuple[tuple[str, int], ...] = ()
    # The Kubernetes CRI (moorage/cri): its gRPC socket ("" serves none), the CNI
    # network configurations and plugins, the pause image of pod sandboxes.
    cri_socket: str = ""
    cni_conf_dir: str = _CNI_CONF_DIR
    cni_bin_dir: str = _CNI_BIN_DIR
    cri_sandbox_image: str = _SANDBOX_IMAGE

    def runtime(self, name: str) -> Runtime:
        for runtime in self.runtimes:
            if runtime.name == name:
                return runtime
        raise InvalidParameter(f"unknown or invalid runtime name: {name}")


def builtin_runtimes() -> tuple[Runtime, ...]:
    """moor-runtime always; runc and crun when installed (selectable with --runtime)."""
    found = [Runtime("moor-runtime", "moor-runtime")]
    for name in ("runc", "crun"):
        for directory in ("/usr/sbin", "/usr/bin", "/usr/local/bin", "/usr/local/sbin"):
            path = os.path.join(directory, name)
            if os.access(path, os.X_OK):
                found.append(Runtime(name, path))
                break
    return tuple(found)


def read_file(path: str, *, required: bool) -> dict:
    try:
        with open(path) as f:
            raw = f.read()
    except FileNotFoundError:
        if required:
            raise InvalidParameter(f"unable to configure the daemon: open {path}: "
                                   "no such file or directory") from None
        return {}
    try:
        data = json.loads(raw) if raw.strip() else {}
    except ValueError as err:
        raise InvalidParameter(f"unable to configure the daemon with file {path}: {err}") \
            from None
    if not isinstance(data, dict):
        raise InvalidParameter(f"unable to configure the daemon with file {path}: "
                               "not a JSON object")
    unknown = sorted(set(data) - _KNOWN_KEYS)
    if unknown:
        raise InvalidParameter("the following directives don't match any configuration "
                               f"option: {', '.join(unknown)}")
    return data


def build(file_data: dict, flags: dict) -> DaemonConfig:
    """Flags win over the file; both use daemon.json's key names."""
    merged = {**file_data, **{k: v for k, v in flags.items() if v not in (None, [], ())}}
    runtimes = list(builtin_runtimes())
    for name, spec in (merged.get("runtimes") or {}).items():
        runtimes = [r for r in runtimes if r.name != name]
        runtimes.append(Runtime(name, spec["path"], tuple(spec.get("runtimeArgs") or ())))
    config = DaemonConfig(
        # not DaemonConfig.data_root: with slots that is the field's descriptor
        data_root=merged.get("data-root", DEFAULT_DATA_ROOT),
        exec_root=merged.get("exec-root", DEFAULT_EXEC_ROOT),
        hosts=tuple(merged.get("hosts") or (DEFAULT_SOCKET,)),
        log_level=merged.get("log-level", "info"),
        default_runtime=merged.get("default-runtime", "moor-runtime"),
        runtimes=tuple(runtimes),
        registry_mirrors=tuple(merged.get("registry-mirrors") or ()),
        registry_mirrors_by_registry=_mirrors_by_registry(
            merged.get("registry-mirrors-by-registry") or {}),
        insecure_registries=tuple(merged.get("insecure-registries") or ()),
        live_restore=bool(merged.get("live-restore", False)),
        log_driver=str(merged.get("log-driver") or "json-file"),
        log_opts={str(k): str(v) for k, v in (merged.get("log-opts") or {}).items()},
        tls=_tri_state(merged.get("tls")), tls_verify=bool(merged.get("tlsverify", False)),
        tls_ca_cert=merged.get("tlscacert", ""), tls_cert=merged.get("tlscert", ""),
        tls_key=merged.get("tlskey", ""),
        bridge=merged.get("bridge") or "moor0", bip=_bip(merged.get("bip") or ""),
        address_pools=_address_pools(merged.get("default-address-pools") or []),
        cri_socket=_cri_socket(merged.get("cri-socket") or ""),
        cni_conf_dir=merged.get("cni-conf-dir") or _CNI_CONF_DIR,
        cni_bin_dir=merged.get("cni-bin-dir") or _CNI_BIN_DIR,
        cri_sandbox_image=merged.get("cri-sandbox-image") or _SANDBOX_IMAGE,
    )
    config.runtime(config.default_runtime)
    return config


def _cri_socket(value: str) -> str:
    """The socket's path; containerd and kubelet write it unix:///path."""
    if not value:
        return ""
    path = value.removeprefix("unix://")
    if not path.startswith("/"):
        raise InvalidParameter(f"invalid cri-socket {value!r}: expected unix:///path")
    return path


def _bip(value: str) -> str:
    try:
        return str(ipaddress.IPv4Interface(value)) if value else ""
    except ValueError:
        raise InvalidParameter(f"invalid bip: {value}") from None


def _address_pools(pools: object) -> tuple[tuple[str, int], ...]:
    found = []
    for pool in pools if isinstance(pools, list) else [pools]:
        try:
            found.append((str(ipaddress.IPv4Network(pool["base"])), int(pool["size"])))
        except (TypeError, KeyError, ValueError):
            raise InvalidParameter(f"invalid default-address-pools entry: {pool}") from None
    return tuple(found)


def _tri_state(value: object) -> bool | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.lower() not in ("false", "0", "no")
    return bool(value)


def _mirrors_by_registry(value: object) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, dict) or not all(
            isinstance(mirrors, list) and all(isinstance(m, str) for m in mirrors)
            for mirrors in value.values()):
        raise InvalidParameter("registry-mirrors-by-registry: want an object of registry "
                               'names to lists of mirror URLs, e.g. {"gcr.io": '
                               '["https://mirror.example"]}')
    return {str(registry): tuple(mirrors) for registry, mirrors in value.items()}
