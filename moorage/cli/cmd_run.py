"""create and run: docker's container flags → the create body, then start and stream."""

from __future__ import annotations

import os
import sys

from moorage.cli.container_flags import (
    RESOURCE_FLAGS,
    env_list,
    file_lines,
    healthcheck,
    log_config,
    ram_in_bytes,
    resources,
    restart_policy,
)
from moorage.cli.flags import BOOL, INT, LIST, STR, Spec, flag
from moorage.cli.session import CommandError
from moorage.client.errors import APIError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from moorage.cli.flags import Options
    from moorage.cli.session import Session

CREATE_FLAGS = (
    *RESOURCE_FLAGS,
    flag("add-host", LIST, "Add a custom host-to-IP mapping (host:ip)"),
    flag("a|attach", LIST, "Attach to STDIN, STDOUT or STDERR"),
    flag("cap-add", LIST, "Add Linux capabilities"),
    flag("cap-drop", LIST, "Drop Linux capabilities"),
    flag("cgroup-parent", STR, "Optional parent cgroup for the container"),
    flag("cgroupns", STR, "Cgroup namespace to use (host|private)"),
    flag("cidfile", STR, "Write the container ID to the file"),
    flag("device", LIST, "Add a host device to the container"),
    flag("device-cgroup-rule", LIST, "Add a rule to the cgroup allowed devices list"),
    flag("dns", LIST, "Set custom DNS servers"),
    flag("dns-option", LIST, "Set DNS options"),
    flag("dns-search", LIST, "Set custom DNS search domains"),
    flag("domainname", STR, "Container NIS domain name"),
    flag("group-add", LIST, "Add additional groups to join"),
    flag("ip6", STR, "IPv6 address (e.g., 2001:db8::33)"),
    flag("ipc", STR, "IPC mode to use"),
    flag("label-file", LIST, "Read in a line delimited file of labels"),
    flag("mac-address", STR, "Container MAC address (e.g., 92:d0:c6:0a:29:33)"),
    flag("memory-swappiness", INT, "Tune container memory swappiness (0 to 100)", -1),
    flag("oom-kill-disable", BOOL, "Disable OOM Killer"),
    flag("oom-score-adj", INT, "Tune host's OOM preferences (-1000 to 1000)"),
    flag("pid", STR, "PID namespace to use"),
    flag("q|quiet", BOOL, "Suppress the pull output"),
    flag("storage-opt", LIST, "Storage driver options for the container"),
    flag("userns", STR, "User namespace to use"),
    flag("uts", STR, "UTS namespace to use"),
    flag("entrypoint", STR, "Overwrite the default ENTRYPOINT of the image"),
    flag("e|env", LIST, "Set environment variables"),
    flag("env-file", LIST, "Read in a file of environment variables"),
    flag("expose", LIST, "Expose a port or a range of ports"),
    flag("health-cmd", STR, "Command to run to check health"),
    flag("health-interval", STR, "Time between running the check (ms|s|m|h) (default 0s)"),
    flag("health-retries", INT, "Consecutive failures needed to report unhealthy"),
    flag("health-start-interval", STR, "Time between running the check during the start "
                                       "period (ms|s|m|h) (default 0s)"),
    flag("health-start-period", STR, "Start period for the container to initialize before "
                                     "starting health-retries countdown (ms|s|m|h) (default 0s)"),
    flag("health-timeout", STR, "Maximum time to allow one check to run (ms|s|m|h) "
                                "(default 0s)"),
    flag("h|hostname", STR, "Container host name"),
    flag("init", BOOL, "Run an init inside the container that forwards signals and reaps "
                       "processes"),
    flag("i|interactive", BOOL, "Keep STDIN open even if not attached"),
    flag("ip", STR, "IPv4 address (e.g., 172.30.100.104)"),
    flag("l|label", LIST, "Set meta data on a container"),
    flag("link", LIST, "Add link to another container"),
    flag("log-driver", STR, "Logging driver for the container"),
    flag("log-opt", LIST, "Log driver options"),
    flag("mount", LIST, "Attach a filesystem mount to the container"),
    flag("name", STR, "Assign a name to the container"),
    flag("network", STR, "Connect a container to a network"),
    flag("network-alias", LIST, "Add network-scoped alias for the container"),
    flag("no-healthcheck", BOOL, "Disable any container-specified HEALTHCHECK"),
    flag("platform", STR, "Set platform if server is multi-platform capable"),
    flag("privileged", BOOL, "Give extended privileges to this container"),
    flag("p|publish", LIST, "Publish a container's port(s) to the host"),
    flag("P|publish-all", BOOL, "Publish all exposed ports to random ports"),
    flag("pull", STR, 'Pull image before creating ("always", "missing", "never")', "missing"),
    flag("read-only", BOOL, "Mount the container's root filesystem as read only"),
    flag("restart", STR, "Restart policy to apply when a container exits", "no"),
    flag("rm", BOOL, "Automatically remove the container and its associated anonymous volumes "
                     "when it exits"),
    flag("runtime", STR, "Runtime to use for this container"),
    flag("security-opt", LIST, "Security Options"),
    flag("shm-size", STR, "Size of /dev/shm"),
    flag("stop-signal", STR, "Signal to stop the container"),
    flag("stop-timeout", INT, "Timeout (in seconds) to stop a container"),
    flag("sysctl", LIST, "Sysctl options"),
    flag("tmpfs", LIST, "Mount a tmpfs directory"),
    flag("t|tty", BOOL, "Allocate a pseudo-TTY"),
    flag("ulimit", LIST, "Ulimit options"),
    flag("u|user", STR, "Username or UID (format: <name|uid>[:<group|gid>])"),
    flag("v|volume", LIST, "Bind mount a volume"),
    flag("volume-driver", STR, "Optional volume driver for the container"),
    flag("volumes-from", LIST, "Mount volumes from the specified container(s)"),
    flag("w|workdir", STR, "Working directory inside the container"),
)
RUN_FLAGS = (
    *CREATE_FLAGS,
    flag("d|detach", BOOL, "Run container in background and print container ID"),
    flag("detach-keys", STR, "Override the key sequence for detaching a container"),
    flag("sig-proxy", BOOL, "Proxy received signals to the process", True),
)

def _ports(specs: list[str], exposed: dict[str, Any]) -> dict[str, list[dict[str, str]]]:
    bindings: dict[str, list[dict[str, str]]] = {}
    for spec in specs:
        container, _, proto = spec.partition("/")
        parts = container.rsplit(":", 2) if not container.startswith("[") else [container]
        host_ip, host_port, private = "", "", parts[-1]
        if len(parts) == 2:
            host_port = parts[0]
        elif len(parts) == 3:
            host_ip, host_port = parts[0].strip("[]"), parts[1]
        key = f"{private}/{proto or 'tcp'}"
        exposed[key] = {}
        bindings.setdefault(key, []).append({"HostIp": host_ip, "HostPort": host_port})
    return bindings


def _volumes(specs: list[str], volumes: dict[str, Any]) -> list[str]:
    binds = []
    for spec in specs:
        parts = spec.split(":")
        if len(parts) == 1:
            volumes[parts[0]] = {}  # an anonymous volume
        else:
            binds.append(spec)
    return binds


def _tmpfs(specs: list[str]) -> dict[str, str]:
    return {path: options for path, _, options in (s.partition(":") for s in specs)}


def create_body(opts: Options, image: str, command: list[str]) -> dict[str, Any]:
    exposed: dict[str, Any] = {f"{p}/tcp" if "/" not in p else p: {} for p in opts.expose}
    volumes: dict[str, Any] = {}
    attach = {s.lower() for s in opts.attach}
    detached = getattr(opts, "detach", False)
    config: dict[str, Any] = {
        "Image": image, "Cmd": command or None, "Env": env_list(opts.env_file, opts.env),
        "Tty": opts.tty, "OpenStdin": opts.interactive, "StdinOnce": opts.interactive,
        "AttachStdin": opts.interactive or "stdin" in attach,
        "AttachStdout": not detached and (not attach or "stdout" in attach),
        "AttachStderr": not detached and (not attach or "stderr" in attach),
        "Labels": dict(item.partition("=")[::2]
                       for item in file_lines(opts.label_file, opts.label)),
        "WorkingDir": opts.workdir or "", "User": opts.user or "",
        "Hostname": opts.hostname or "", "Domainname": opts.domainname or "",
    }
    if opts.mac_address:
        config["MacAddress"] = opts.mac_address
    if opts.entrypoint is not None:
        config["Entrypoint"] = [opts.entrypoint] if opts.entrypoint else [""]
    if opts.stop_signal:
        config["StopSignal"] = opts.stop_signal
    health = healthcheck(opts)
    if health is not None:
        config["Healthcheck"] = health
    if opts.stop_timeout is not None:
        config["StopTimeout"] = opts.stop_timeout
    host: dict[str, Any] = {
        "Binds": _volumes(opts.volume, volumes) or None,
        "PortBindings": _ports(opts.publish, exposed) or None,
        "PublishAllPorts": opts.publish_all, "AutoRemove": opts.rm,
        "CapAdd": opts.cap_add or None, "CapDrop": opts.cap_drop or None,
        "ReadonlyRootfs": opts.read_only, "Privileged": opts.privileged,
        "RestartPolicy": restart_policy(opts.restart), "LogConfig": log_config(opts),
        "Tmpfs": _tmpfs(opts.tmpfs) or None,
        "Dns": opts.dns or None, "ExtraHosts": opts.add_host or None,
        "SecurityOpt": opts.security_opt or None,
        "Sysctls": dict(s.partition("=")[::2] for s in opts.sysctl) or None,
    }
    if opts.init:
        host["Init"] = True
    if opts.runtime:
        host["Runtime"] = opts.runtime
    host.update(resources(opts))
    if opts.shm_size:
        host["ShmSize"] = ram_in_bytes(opts.shm_size)
    for name, key in (("cgroup_parent", "CgroupParent"), ("cgroupns", "CgroupnsMode"),
                      ("ipc", "IpcMode"), ("pid", "PidMode"), ("userns", "UsernsMode"),
                      ("uts", "UTSMode")):
        if getattr(opts, name):
            host[key] = getattr(opts, name)
    for name, key in (("device_cgroup_rule", "DeviceCgroupRules"), ("dns_option", "DnsOptions"),
                      ("dns_search", "DnsSearch"), ("group_add", "GroupAdd")):
        if getattr(opts, name):
            host[key] = getattr(opts, name)
    if opts.memory_swappiness != -1:
        host["MemorySwappiness"] = opts.memory_swappiness
    if opts.oom_kill_disable:
        host["OomKillDisable"] = True
    if opts.oom_score_adj:
        host["OomScoreAdj"] = opts.oom_score_adj
    if opts.storage_opt:
        host["StorageOpt"] = dict(o.partition("=")[::2] for o in opts.storage_opt)
    if opts.network:
        host["NetworkMode"] = opts.network
    if opts.link:
        host["Links"] = opts.link
    if opts.network_alias or opts.ip or opts.ip6:
        endpoint: dict = {"Aliases": opts.network_alias or None}
        if opts.ip or opts.ip6:
            endpoint["IPAMConfig"] = {key: value for key, value in (
                ("IPv4Address", opts.ip), ("IPv6Address", opts.ip6)) if value}
        config["NetworkingConfig"] = {
            "EndpointsConfig": {opts.network or "default": endpoint}}
    if opts.mount:
        from moorage.cli.mount_spec import parse_mounts

        host["Mounts"] = parse_mounts(opts.mount)
    if opts.volumes_from:
        host["VolumesFrom"] = opts.volumes_from
    if opts.volume_driver:
        host["VolumeDriver"] = opts.volume_driver
    config["ExposedPorts"] = exposed or None
    config["Volumes"] = volumes or None
    config["HostConfig"] = host
    return config


def _pull(session: Session, image: str, quiet: bool) -> None:
    from moorage.cli.pulling import pull_image

    pull_image(session, image, quiet=quiet, stream=sys.stderr)


def _normalized(image: str) -> str:
    last = image.rsplit("/", 1)[-1]
    return image if ":" in last or "@" in image else image + ":latest"


def create_container(session: Session, opts: Options, args: list[str]) -> str:
    image, command = args[0], args[1:]
    body = create_body(opts, image, command)
    cidfile = _open_cidfile(opts.cidfile) if opts.cidfile else None
    try:
        container = _create(session, opts, image, body)
    except BaseException:
        if cidfile is not None:
            cidfile.close()
            os.unlink(opts.cidfile)
        raise
    if cidfile is not None:
        with cidfile:
            cidfile.write(container)
    return container


def _loopback(address: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _open_cidfile(path: str) -> Any:
    """The docker CLI's --cidfile: made before the create, refused when it exists (another
    container may be running with it), removed when the create fails."""
    try:
        return open(path, "x")
    except FileExistsError:
        raise CommandError(f"container ID file found, make sure the other container isn't "
                           f"running or delete {path}", 125) from None
    except OSError as err:
        raise CommandError(f"failed to create the container ID file: open {path}: "
                           f"{err.strerror.lower()}", 125) from None


def _create(session: Session, opts: Options, image: str, body: dict[str, Any]) -> str:
    params = {"name": opts.name, "platform": opts.platform}
    client = session.client
    local = next((server for server in opts.dns if _loopback(server)), None)
    if local is not None:
        sys.stderr.write(f"WARNING: Localhost DNS ({local}) may fail in containers.\n")
    if opts.pull == "always":
        _pull(session, image, opts.quiet)
    try:
        created = client.post("/containers/create", params, body)
    except APIError as err:
        if err.status != 404 or opts.pull == "never" or "image" not in err.message.lower():
            raise CommandError(f"Error response from daemon: {err.message}", 125,
                               with_help=True) from None
        if not opts.quiet:
            sys.stderr.write(f"Unable to find image '{_normalized(image)}' locally\n")
        try:
            _pull(session, image, opts.quiet)
            created = client.post("/containers/create", params, body)
        except APIError as again:
            raise CommandError(f"Error response from daemon: {again.message}", 125,
                               with_help=True) from None
    for warning in created.get("Warnings") or []:
        sys.stderr.write(f"WARNING: {warning}\n")
    return str(created["Id"])


def create(session: Session, opts: Options, args: list[str]) -> int:
    sys.stdout.write(create_container(session, opts, args) + "\n")
    return 0


def run(session: Session, opts: Options, args: list[str]) -> int:
    from moorage.cli import interactive

    container = create_container(session, opts, args)
    client = session.client
    if opts.detach:
        try:
            client.post(f"/containers/{container}/start")
        except APIError as err:
            from moorage.cli.start_errors import start_error

            raise start_error(err) from None
        sys.stdout.write(container + "\n")
        return 0
    return interactive.run_attached(session, container, opts)


SPECS = {
    "create": Spec("[OPTIONS] IMAGE [COMMAND] [ARG...]", create, CREATE_FLAGS, min_args=1,
                   interspersed=False, aliases=("moor container create", "moor create")),
    "run": Spec("[OPTIONS] IMAGE [COMMAND] [ARG...]", run, RUN_FLAGS, min_args=1,
                interspersed=False, aliases=("moor container run", "moor run")),
}
