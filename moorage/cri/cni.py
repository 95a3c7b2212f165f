"""Pod networks through CNI plugins, per the CNI specification (1.0): the first
network configuration (list) found in the configuration folder, its plugins run in
turn with ADD (each given the previous one's result), in reverse with DEL. hostPort
mappings reach the plugins that ask for the `portMappings` capability (portmap)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
from dataclasses import dataclass

from moorage.errors import SystemFailure

log = logging.getLogger("moord.cri")
IFNAME = "eth0"
_PLUGIN_SECONDS = 30


@dataclass(frozen=True, slots=True)
class PodNetworkTarget:
    pod_id: str
    netns: str
    name: str
    namespace: str
    uid: str
    port_mappings: tuple[dict, ...] = ()


class Cni:
    def __init__(self, conf_dir: str, bin_dirs: str) -> None:
        self.conf_dir = conf_dir
        self.bin_dirs = bin_dirs

    def config(self) -> dict | None:
        """The network configuration list in use, or None (the network is not ready)."""
        try:
            names = sorted(os.listdir(self.conf_dir))
        except OSError:
            return None
        for entry in names:
            if not entry.endswith((".conf", ".conflist", ".json")):
                continue
            try:
                with open(os.path.join(self.conf_dir, entry)) as f:
                    data = json.load(f)
            except (OSError, ValueError) as err:
                log.warning("CNI configuration %s skipped: %s", entry, err)
                continue
            if not isinstance(data, dict):
                continue
            if "plugins" not in data:  # a single plugin's .conf: a list of one
                data = {"cniVersion": data.get("cniVersion", "0.4.0"),
                        "name": data.get("name", ""), "plugins": [data]}
            if data.get("plugins"):
                return data
        return None

    def not_ready_reason(self) -> str:
        if self.config() is None:
            return f"cni plugin not initialized: no network config found in {self.conf_dir}"
        return ""

    def add(self, network: dict, target: PodNetworkTarget) -> dict:
        """ADD through every plugin; the last result (its `ips`). A failure runs DEL on
        what was added, so nothing stays half made."""
        result: dict = {}
        try:
            for plugin in network["plugins"]:
                result = self._run("ADD", network, plugin, target, result)
        except BaseException:
            self.delete(network, target, result)
            raise
        return result

    def delete(self, network: dict, target: PodNetworkTarget, result: dict | None) -> None:
        """DEL in reverse order; a plugin's failure is logged and the rest still run
        (the spec asks DEL to tolerate what is already gone)."""
        for plugin in reversed(network["plugins"]):
            try:
                self._run("DEL", network, plugin, target, result or {})
            except SystemFailure as err:
                log.warning("pod %s: CNI DEL (%s): %s", target.pod_id, plugin.get("type"), err)

    def _run(self, command: str, network: dict, plugin: dict, target: PodNetworkTarget,
             previous: dict) -> dict:
        conf = {**plugin, "cniVersion": network.get("cniVersion", "0.4.0"),
                "name": network.get("name", "")}
        if previous:
            conf["prevResult"] = previous
        if (plugin.get("capabilities") or {}).get("portMappings") and target.port_mappings:
            conf["runtimeConfig"] = {"portMappings": list(target.port_mappings)}
        binary = self._find(str(plugin.get("type", "")))
        env = {"CNI_COMMAND": command, "CNI_CONTAINERID": target.pod_id,
               "CNI_NETNS": target.netns, "CNI_IFNAME": IFNAME, "CNI_PATH": self.bin_dirs,
               "CNI_ARGS": f"IgnoreUnknown=1;K8S_POD_NAMESPACE={target.namespace};"
                           f"K8S_POD_NAME={target.name};K8S_POD_INFRA_CONTAINER_ID="
                           f"{target.pod_id};K8S_POD_UID={target.uid}",
               "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
        try:
            done = subprocess.run([binary], input=json.dumps(conf).encode(), env=env,
                                  capture_output=True, timeout=_PLUGIN_SECONDS)
        except subprocess.TimeoutExpired:
            raise SystemFailure(f"plugin type={plugin.get('type')!r} {command}: timed out "
                                f"after {_PLUGIN_SECONDS}s") from None
        if done.returncode != 0:
            try:
                error = json.loads(done.stdout)
                message = f"{error.get('msg', '')}: {error.get('details', '')}".rstrip(": ")
            except ValueError:
                message = (done.stdout or done.stderr).decode(errors="replace").strip()
            raise SystemFailure(f"plugin type={plugin.get('type')!r} failed ({command}): "
                                f"{message}")
        if command == "DEL" or not done.stdout.strip():
            return previous
        return json.loads(done.stdout)

    def _find(self, plugin_type: str) -> str:
        for directory in self.bin_dirs.split(":"):
            path = os.path.join(directory, plugin_type)
            if plugin_type and "/" not in plugin_type and os.access(path, os.X_OK):
                return path
        raise SystemFailure(f'failed to find plugin "{plugin_type}" in path '
                            f"[{self.bin_dirs}]")


def first_ipv4(result: dict) -> str:
    for entry in result.get("ips") or ():
        address = str(entry.get("address", "")).partition("/")[0]
        if address and ":" not in address:
            return address
    return ""
