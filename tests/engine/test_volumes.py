"""Volumes as plain directories, compared with a real dockerd: named volumes that outlive
their containers, anonymous ones from `-v /path`, `--mount type=volume` and an image's
VOLUME, copy-up of the image's content, `rm -v` and `--rm`, read-only volumes, and the
errors for refused specifications; inspect's Mounts with IDs and data-roots masked.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import docker
import pytest
from comparekit import Pair, mask
from enginekit import Daemon, start_daemon, stop_daemon
from peers import Dockerd, dockerd_available, start_dockerd, stop_dockerd

from moorage.devkit import busybox

pytestmark = pytest.mark.skipif(not dockerd_available(), reason="needs dockerd")
PLAIN = "moor-volumes:plain"
WITH_VOLUME = "moor-volumes:volume"     # VOLUME /data over /data/hello, owned 1000:1000, 0750
MOOR = os.path.join(os.path.dirname(sys.executable), "moor")
# Each its own driver and volume names: dockerd serves one request a name at a time.
UNKNOWN_DRIVER_REQUESTS = [
    ("POST", "/volumes/create", {"Name": "vol-unknown-driver", "Driver": "nope"}),
    ("POST", "/containers/create", {"Image": PLAIN, "Cmd": ["true"], "HostConfig": {
        "Mounts": [{"Type": "volume", "Target": "/d",
                    "VolumeOptions": {"DriverConfig": {"Name": "nope-mount"}}}]}}),
    ("POST", "/containers/create", {"Image": PLAIN, "Cmd": ["true"], "HostConfig": {
        "Binds": ["vol-unknown-bind:/d"], "VolumeDriver": "nope-bind"}}),
]


@pytest.fixture(scope="module")
def pair(moord: Daemon) -> Iterator[Pair]:
    with tempfile.TemporaryDirectory(prefix="moor-volumes-") as base:
        root = Path(base)
        rootfs = root / "rootfs"
        busybox.build_rootfs(str(rootfs))
        (rootfs / "data").mkdir()
        (rootfs / "data" / "hello").write_text("hello from the image\n")
        for path in (rootfs / "data", rootfs / "data" / "hello"):
            os.chown(path, 1000, 1000)
        (rootfs / "data").chmod(0o750)
        tar = subprocess.run(["tar", "-C", str(rootfs), "-c", "."], capture_output=True,
                             check=True).stdout
        (root / "dockerd").mkdir()
        dockerd = start_dockerd(str(root / "dockerd"))
        try:
            for daemon in (moord, dockerd):
                daemon.docker("import", "-", PLAIN, input=tar, check=True)
                daemon.docker("import", "--change", "VOLUME /data", "-", WITH_VOLUME,
                              input=tar, check=True)
            pair = Pair(moord, dockerd, root)
            # dockerd looks an unknown volume driver up as a plugin for 15 s before its 404:
            # those requests go to it now, while the rest of the module runs.
            for method, path, body in UNKNOWN_DRIVER_REQUESTS:
                pair.ask_ahead(partial(_answer, method=method, path=path, body=body),
                               key=("api", method, path, json.dumps(body)))
            yield pair
            for daemon in (moord, dockerd):
                daemon.docker("rmi", PLAIN, WITH_VOLUME, check=True)
        finally:
            stop_dockerd(dockerd)


class Made:
    """What a test creates on both daemons, removed at teardown (anonymous volumes with
    their containers, named ones by name)."""

    def __init__(self, pair: Pair) -> None:
        self.pair = pair
        self.containers: list[str] = []
        self.volumes: list[str] = []

    def container(self) -> str:
        self.containers.append(f"c-{uuid.uuid4().hex[:8]}")
        return self.containers[-1]

    def volume(self) -> str:
        self.volumes.append(f"vol-{uuid.uuid4().hex[:8]}")
        return self.volumes[-1]


@pytest.fixture
def made(pair: Pair) -> Iterator[Made]:
    made = Made(pair)
    yield made
    if made.containers:
        pair.both("rm", "-f", "-v", *made.containers)
    for name in made.volumes:
        remove_volume(pair.moord, name)
        remove_volume(pair.dockerd, name)


def remove_volume(daemon: Daemon | Dockerd, name: str) -> None:
    daemon.docker("volume", "rm", "-f", name, check=True)


def volume_names(daemon: Daemon | Dockerd) -> set[str]:
    root = os.path.join(daemon.data_root, "volumes")
    return {n for n in os.listdir(root) if os.path.isdir(os.path.join(root, n, "_data"))}


def both_volume_names(pair: Pair) -> list[set[str]]:
    return [volume_names(pair.moord), volume_names(pair.dockerd)]


def mounts(daemon: Daemon | Dockerd, container: str) -> list[dict]:
    """inspect's Mounts, by destination, with the data-root and volume IDs masked."""
    result = daemon.docker("inspect", container, check=True)
    doc = json.loads(mask(result.stdout.replace(daemon.data_root.encode(), b"<ROOT>")))
    return sorted(doc[0]["Mounts"], key=lambda m: m["Destination"])


def same_mounts(pair: Pair, container: str) -> list[dict]:
    ours, theirs = mounts(pair.moord, container), mounts(pair.dockerd, container)
    assert ours == theirs
    return ours


def test_named_volume_persists(pair: Pair, made: Made) -> None:
    volume, writer, reader = made.volume(), made.container(), made.container()
    pair.same("run", "--name", writer, "-v", f"{volume}:/data", PLAIN, "sh", "-c",
              "echo kept > /data/f")
    pair.same("create", "--name", reader, "--mount", f"type=volume,src={volume},dst=/data",
              PLAIN, "cat", "/data/f")
    assert pair.same("start", "-a", reader) == 0
    found = same_mounts(pair, writer) + same_mounts(pair, reader)
    assert [(m["Type"], m["Name"], m["Source"], m["Mode"]) for m in found] == [
        ("volume", volume, f"<ROOT>/volumes/{volume}/_data", "z")] * 2
    # A named volume stays with rm -v: only anonymous ones go.
    pair.same("rm", "-v", writer, reader)
    assert volume in volume_names(pair.moord) and volume in volume_names(pair.dockerd)
    pair.same("run", "--rm", "-v", f"{volume}:/data", PLAIN, "cat", "/data/f")


def test_read_only_volume(pair: Pair, made: Made) -> None:
    volume, short, long = made.volume(), made.container(), made.container()
    assert pair.same("run", "--name", short, "-v", f"{volume}:/data:ro", PLAIN, "sh", "-c",
                     "ls /data; touch /data/f") == 1
    pair.same("create", "--name", long, "--mount",
              f"type=volume,src={volume},dst=/data,readonly", PLAIN, "true")
    assert [(m["Mode"], m["RW"]) for m in same_mounts(pair, short) + same_mounts(pair, long)] \
        == [("ro", False), ("z", False)]


def test_anonymous_volumes_go_with_rm_v(pair: Pair, made: Made) -> None:
    before = both_volume_names(pair)
    container = made.container()
    pair.same("run", "--name", container, "-v", "/anon", "--mount", "type=volume,dst=/opt",
              WITH_VOLUME, "sh", "-c", "cat /data/hello; ls -A /anon /opt")
    found = same_mounts(pair, container)
    assert [(m["Destination"], m["Name"], m["Mode"]) for m in found] == [
        ("/anon", "<ID>", ""), ("/data", "<ID>", ""), ("/opt", "<ID>", "z")]
    now = both_volume_names(pair)
    assert [len(now[i] - before[i]) for i in (0, 1)] == [3, 3]
    pair.same("rm", "-v", container)
    pair.same("run", "--rm", "-v", "/anon", WITH_VOLUME, "true")
    assert both_volume_names(pair) == before
    # Without -v they stay behind, dangling.
    kept = made.container()
    pair.same("create", "--name", kept, WITH_VOLUME, "true")
    pair.same("rm", kept)
    for daemon, then in zip((pair.moord, pair.dockerd), before, strict=True):
        left = volume_names(daemon) - then
        assert len(left) == 1
        remove_volume(daemon, left.pop())


def test_copy_up(pair: Pair, made: Made) -> None:
    volume = made.volume()
    show = "stat -c '%u:%g %a %n' /data /data/*; cat /data/*"
    # An empty named volume is filled from the image, owner and mode of /data included.
    pair.same("run", "--rm", "-v", f"{volume}:/data", WITH_VOLUME, "sh", "-c",
              "echo more > /data/more")
    ours = pair.moord.docker("run", "--rm", "-v", f"{volume}:/data", PLAIN, "sh", "-c", show)
    assert b"1000:1000 750 /data\n" in ours.stdout and b"hello from the image" in ours.stdout
    pair.same("run", "--rm", "-v", f"{volume}:/data", PLAIN, "sh", "-c", show)
    # A volume that holds something is left as it is.
    pair.same("run", "--rm", "-v", f"{volume}:/data", WITH_VOLUME, "sh", "-c",
              "rm /data/hello; ls -A /data")
    pair.same("run", "--rm", "-v", f"{volume}:/data", WITH_VOLUME, "ls", "-A", "/data")
    for spec in (["-v", f"{made.volume()}:/data:nocopy"],
                 ["--mount", f"type=volume,src={made.volume()},dst=/data,volume-nocopy"]):
        ours = pair.moord.docker("run", "--rm", *spec, WITH_VOLUME, "ls", "-A", "/data")
        assert ours.returncode == 0 and ours.stdout == b""
        pair.same("run", "--rm", *spec, WITH_VOLUME, "ls", "-A", "/data")


@pytest.mark.parametrize("spec", [
    ["-v", "bad$name:/data"], ["-v", "data:relative"], ["-v", "data:/"],
    ["-v", "data:/d:bogus"], ["-v", "data:/d:ro,rw"], ["-v", "ab:/d:rw,rshared"],
    ["-v", "/tmp:/d:nocopy"], ["--mount", "type=volume,src=/abs,dst=/x"],
    ["--mount", "type=volume,src=a,dst=/x"], ["--mount", "type=volume,src=ab,dst=rel"],
    ["--mount", "type=volume,dst=/x,readonly"],
    ["--mount", "type=bind,src=/tmp,dst=/x,bind-propagation=bogus"],
])
def test_refused_specs(pair: Pair, spec: list[str]) -> None:
    before = both_volume_names(pair)
    assert pair.same("create", *spec, PLAIN, "true") == 1
    assert both_volume_names(pair) == before


# --------------------------------------------------------------------------- the /volumes API


def api(daemon: Daemon | Dockerd, method: str, path: str, body: object = None,
        version: str = "1.41") -> tuple[int, object]:
    """One raw Engine API call: the status and the decoded JSON (None when empty)."""
    client = docker.APIClient(base_url=daemon.host, version=version, timeout=30)
    try:
        response = client.request(method, f"{client.base_url}/v{version}{path}", json=body)
        return response.status_code, response.json() if response.content else None
    finally:
        client.close()


def _answer(daemon: Daemon | Dockerd, method: str, path: str, body: object) -> tuple:
    """An API answer with the data-root masked, in an order both daemons share."""
    status, doc = api(daemon, method, path, body)
    if isinstance(doc, dict) and isinstance(doc.get("Volumes"), list):
        # dockerd lists in its map's random order
        doc["Volumes"] = sorted(doc["Volumes"], key=lambda v: v["Name"])
    text = json.dumps(doc, sort_keys=True).replace(daemon.data_root, "<ROOT>")
    return status, json.loads(mask(text.encode()))


def both_api(pair: Pair, method: str, path: str, body: object = None) -> tuple:
    """The same call on both; the answers with the data-roots masked, asserted equal."""
    answers = pair.each(partial(_answer, method=method, path=path, body=body),
                        key=("api", method, path, json.dumps(body)))
    assert answers[0] == answers[1]
    return answers[0]


def listed(daemon: Daemon | Dockerd) -> set[str]:
    return {v["Name"] for v in api(daemon, "GET", "/volumes")[1]["Volumes"]}


def test_api_create_inspect_list_remove(pair: Pair, made: Made) -> None:
    plain, labelled, tmpfs = made.volume(), made.volume(), made.volume()
    assert both_api(pair, "POST", "/volumes/create", {"Name": plain})[0] == 201
    both_api(pair, "POST", "/volumes/create", {"Name": labelled, "Labels": {"b": "2", "a": "1"},
                                               "DriverOpts": {}})
    both_api(pair, "POST", "/volumes/create", {
        "Name": tmpfs, "DriverOpts": {"type": "tmpfs", "device": "tmpfs", "o": "size=1m"}})
    # Creating again returns the volume as it is, whatever the request says.
    both_api(pair, "POST", "/volumes/create", {"Name": plain, "Labels": {"x": "y"}})
    for name in (plain, labelled, tmpfs):
        status, doc = both_api(pair, "GET", f"/volumes/{name}")
        assert status == 200 and doc["Mountpoint"] == f"<ROOT>/volumes/{name}/_data"
    for wanted in ({"name": ["vol-"]}, {"label": ["a"]}, {"label": ["a=1"]},
                   {"label": ["a=2"]}, {"driver": ["local"]}, {"driver": ["loc"]},
                   {"dangling": ["true"]}, {"dangling": ["0"]}, {"bogus": ["1"]},
                   {"dangling": ["maybe"]}):
        path = "/volumes?filters=" + json.dumps(wanted)
        both_api(pair, "GET", path)
    for path in ("/volumes?filters=bad", '/volumes?filters={"a":'):
        assert both_api(pair, "GET", path)[0] == 400
    # dockerd answers 500 here; the project's rule is a 400 for bad input, same words.
    answers = [api(d, "POST", "/volumes/prune?filters=bad") for d in (pair.moord, pair.dockerd)]
    assert [a[1] for a in answers] == [answers[1][1]] * 2 and answers[0][0] == 400
    assert both_api(pair, "DELETE", f"/volumes/{tmpfs}")[0] == 204
    assert both_api(pair, "GET", f"/volumes/{tmpfs}") == (
        404, {"message": f"get {tmpfs}: no such volume"})
    assert both_api(pair, "DELETE", f"/volumes/{tmpfs}")[0] == 404
    assert both_api(pair, "DELETE", f"/volumes/{tmpfs}?force=1")[0] == 204


@pytest.mark.parametrize("body", [
    {"Name": "a"}, {"Name": "bad$name"}, {"Name": "-lead"},
    {"Name": "ok1", "DriverOpts": {"foo": "bar"}}, {"Name": "ok1", "DriverOpts": {"o": "x"}},
    {"Name": "ok1", "DriverOpts": {"device": "x"}}, {"Name": "ok1", "DriverOpts": {"type": "x"}},
    {"Name": "ok1", "DriverOpts": {"size": "10"}}, {"Name": 5}, {"Labels": ["a"]},
])
def test_api_refused_creates(pair: Pair, body: dict) -> None:
    before = [listed(pair.moord), listed(pair.dockerd)]
    status, _doc = both_api(pair, "POST", "/volumes/create", body)
    assert status in (400, 404)
    assert [listed(pair.moord), listed(pair.dockerd)] == before


def test_in_use_volume_is_not_removed(pair: Pair, made: Made) -> None:
    volume, holder = made.volume(), made.container()
    pair.same("create", "--name", holder, "-v", f"{volume}:/data", PLAIN, "true")
    for path in (f"/volumes/{volume}", f"/volumes/{volume}?force=1"):
        status, doc = both_api(pair, "DELETE", path)
        assert status == 409
        assert doc["message"] == f"remove {volume}: volume is in use - [<ID>]"
    pair.same("volume", "rm", volume)
    status, doc = both_api(pair, "GET", f"/volumes?filters={json.dumps({'dangling': ['1']})}")
    assert volume not in {v["Name"] for v in doc["Volumes"]}


def test_prune(pair: Pair, made: Made) -> None:
    keep, go, tagged, with_opts, used = (made.volume() for _ in range(5))
    user = made.container()
    for name in (keep, go, used):
        pair.same("volume", "create", name)
    pair.same("volume", "create", "--label", "keep", tagged)
    pair.same("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", with_opts)
    pair.same("create", "--name", user, "-v", f"{used}:/d", PLAIN, "true")
    for refused in ({"all": ["1"]}, {"dangling": ["1"]}, {"name": ["x"]}):
        assert both_api(pair, "POST", f"/volumes/prune?filters={json.dumps(refused)}")[0] == 400
    # API 1.41: every unused local volume without options, the label filters respected.
    for daemon in (pair.moord, pair.dockerd):
        status, doc = api(daemon, "POST",
                          "/volumes/prune?filters=" + json.dumps({"label!": ["keep"]}))
        assert status == 200
        assert {keep, go} <= set(doc["VolumesDeleted"])
        assert not {tagged, with_opts, used} & set(doc["VolumesDeleted"])
        assert {tagged, with_opts, used} <= listed(daemon)


def test_prune_newer_api_keeps_named_volumes(pair: Pair, made: Made) -> None:
    """API 1.42+ (moord only: dockerd 20.10 stops at 1.41): anonymous volumes unless
    `all`."""
    named, anonymous = made.volume(), made.container()
    pair.moord.docker("volume", "create", named, check=True)
    pair.moord.docker("create", "--name", anonymous, "-v", "/anon", PLAIN, "true", check=True)
    anon = mounts(pair.moord, anonymous)[0]
    pair.moord.docker("rm", anonymous, check=True)
    made.containers.remove(anonymous)
    before = listed(pair.moord)
    status, doc = api(pair.moord, "POST", "/volumes/prune", version="1.44")
    assert status == 200 and named not in doc["VolumesDeleted"]
    assert len(before - listed(pair.moord)) == len(doc["VolumesDeleted"]) >= 1
    assert anon["Name"] == "<ID>"
    status, doc = api(pair.moord, "POST", "/volumes/prune?filters=" + json.dumps(
        {"all": ["true"], "label": ["nothing-has-this"]}), version="1.44")
    assert status == 200 and doc["VolumesDeleted"] == []
    status, doc = api(pair.moord, "POST", "/volumes/prune?filters=" + json.dumps(
        {"all": ["true"]}), version="1.44")
    assert named in doc["VolumesDeleted"]


# --------------------------------------------------------------------------- the CLIs


def test_cli_output(pair: Pair, made: Made) -> None:
    first, second = made.volume(), made.volume()
    # One label: the docker CLI joins several in its map's random order.
    pair.same("volume", "create", "--label", "a=1", first)
    pair.same("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "-o", "o=size=1m",
              second)
    shown = ["--filter", "name=vol-"]
    for args in ([], ["-q"], ["--format", "{{json .}}"], ["--format", "json"],
                 ["--format", '{{.Name}} {{.Label "a"}} {{.Labels}} {{.Links}} {{.Size}}'],
                 ["--format", "table {{.Name}}\t{{.Driver}}\t{{.Labels}}\t{{.Scope}}"],
                 ["--filter", "label=a=1"], ["--filter", "bogus=1"]):
        assert_same_masked(pair, "volume", "ls", *shown, *args)
    assert_same_masked(pair, "volume", "inspect", first, second)
    assert_same_masked(pair, "volume", "inspect", "--format", "{{.Name}} {{.Options}}", second)
    assert_same_masked(pair, "volume", "inspect", first, "no-such-volume")
    assert_same_masked(pair, "volume", "create", "-o", "foo=bar", "refused")
    assert_same_masked(pair, "volume", "create", "x")
    assert_same_masked(pair, "volume", "rm", "no-such-volume", second,
                       again=lambda: pair.moord.docker("volume", "create", second, check=True))


def assert_same_masked(pair: Pair, *args: str, again: Callable[[], object] = lambda: None
                       ) -> None:
    """docker on both and `moor` on moord: one exit code and output, data-roots masked.
    `again` restores moord's state between docker and moor."""
    ours, theirs = pair.both(*args)
    again()
    moor = subprocess.run([MOOR, "-H", pair.moord.host, *args], capture_output=True,
                          timeout=60)
    views = [(r.returncode, mask(r.stdout.replace(root.encode(), b"<ROOT>")),
              mask(r.stderr.replace(root.encode(), b"<ROOT>")))
             for r, root in ((ours, pair.moord.data_root), (theirs, pair.dockerd.data_root),
                             (moor, pair.moord.data_root))]
    assert views[0] == views[1], f"{args}: moord {views[0]} dockerd {views[1]}"
    assert views[2] == views[1], f"{args}: moor {views[2]} docker {views[1]}"


# --------------------------------------------------------------------------- containers


def test_shared_between_containers(pair: Pair, made: Made) -> None:
    volume, writer, reader = made.volume(), made.container(), made.container()
    pair.same("run", "-d", "--name", writer, "-v", f"{volume}:/data", PLAIN, "sh", "-c",
              "echo one > /data/f; sleep 30")
    pair.same("run", "--name", reader, "-v", f"{volume}:/shared", PLAIN, "sh", "-c",
              "while ! test -s /shared/f; do sleep 0.1; done; cat /shared/f; "
              "echo two >> /shared/f")
    pair.same("exec", writer, "cat", "/data/f")


def test_volumes_from(pair: Pair, made: Made) -> None:
    volume, source, ro, rw = made.volume(), made.container(), made.container(), made.container()
    pair.same("run", "--name", source, "-v", f"{volume}:/named", "-v", "/anon", PLAIN, "sh",
              "-c", "echo n > /named/f; echo a > /anon/f")
    assert pair.same("run", "--name", ro, "--volumes-from", f"{source}:ro", PLAIN, "sh", "-c",
                     "cat /named/f /anon/f; touch /named/g") == 1
    pair.same("create", "--name", rw, "--volumes-from", source, "-v", f"{made.volume()}:/anon",
              PLAIN, "true")
    for name in (ro, rw):
        same_mounts(pair, name)
    for spec in (f"{source}:bad", f"{source}:ro,rshared", f"{source}:nocopy", f"{source}:ro,rw",
                 ""):
        assert pair.same("create", "--volumes-from", spec, PLAIN, "true") == 1
    # A missing source is a 400 (the docker CLI would go pulling the image on a 404).
    body = {"Image": PLAIN, "Cmd": ["true"], "HostConfig": {"VolumesFrom": ["no-such-c"]}}
    assert both_api(pair, "POST", "/containers/create", body) == (
        400, {"message": "No such container: no-such-c"})
    # No copy-up into a volume that came with --volumes-from.
    empty = made.container()
    pair.same("create", "--name", empty, "-v", f"{made.volume()}:/data:nocopy", PLAIN, "true")
    pair.same("run", "--rm", "--volumes-from", empty, WITH_VOLUME, "ls", "-A", "/data")
    # rm -v of a container that borrowed them leaves the source's volumes alone.
    pair.same("rm", "-v", ro, rw)
    pair.same("run", "--rm", "--volumes-from", source, PLAIN, "cat", "/named/f", "/anon/f")


def test_local_driver_mounts(pair: Pair, made: Made) -> None:
    tmpfs, bind, broken = made.volume(), made.volume(), made.volume()
    pair.same("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs",
              "-o", "o=size=1m,mode=0700", tmpfs)
    pair.same("run", "--rm", "-v", f"{tmpfs}:/t", PLAIN, "sh", "-c",
              "grep ' /t ' /proc/mounts | cut -d' ' -f3,4; stat -c %a /t; echo x > /t/f")
    # The device is unmounted with the last container: a tmpfs starts empty again.
    pair.same("run", "--rm", "-v", f"{tmpfs}:/t", PLAIN, "ls", "-A", "/t")
    # An empty bind device is filled from the image (copy-up); a volume on /etc keeps
    # the hosts file mounted into it. One host directory per daemon.
    seen = []
    for daemon in (pair.moord, pair.dockerd):
        host_dir = pair.base / f"bind-{uuid.uuid4().hex[:6]}"
        host_dir.mkdir()
        try:
            daemon.docker("volume", "create", "-o", "type=none", "-o", f"device={host_dir}",
                          "-o", "o=bind", bind, check=True)
            done = daemon.docker("run", "--rm", "-v", f"{bind}:/etc", PLAIN, "sh", "-c",
                                 "ls /etc; echo kept > /etc/mine")
            seen.append((done.returncode, done.stdout, (host_dir / "mine").read_text(),
                         sorted(os.listdir(host_dir))))
        finally:
            subprocess.run(["umount", "-l", str(host_dir)], capture_output=True)
            shutil.rmtree(host_dir, ignore_errors=True)
    assert seen[0] == seen[1] and seen[0][2] == "kept\n"
    pair.same("volume", "create", "-o", "type=none", "-o", "device=/no/such/dir",
              "-o", "o=bind", broken)
    # Refused at start where the image has nothing to copy, at create where it has.
    for target in ("/nothing-here", "/etc"):
        container = made.container()
        ours, theirs = pair.both("run", "--name", container, "-v", f"{broken}:{target}",
                                 PLAIN, "true")
        assert ours.returncode == theirs.returncode
        assert [r.stderr.split(b"\n")[0].replace(d.data_root.encode(), b"<ROOT>")
                for r, d in ((ours, pair.moord), (theirs, pair.dockerd))] == [
            theirs.stderr.split(b"\n")[0].replace(pair.dockerd.data_root.encode(),
                                                  b"<ROOT>")] * 2
        assert b"failed to mount local volume" in ours.stderr


def test_mount_keys(pair: Pair, made: Made) -> None:
    volume, container = made.volume(), made.container()
    pair.same("run", "--name", container, "--mount",
              f"type=volume,src={volume},dst=/d,volume-opt=type=tmpfs,volume-opt=device=tmpfs,"
              "volume-opt=o=size=2m,volume-label=team=a,consistency=cached",
              "--mount", "type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1770", PLAIN, "sh", "-c",
              "grep -E ' /(d|t) ' /proc/mounts | cut -d' ' -f2-4; stat -c %a /t")
    same_mounts(pair, container)
    pair.same("volume", "inspect", "--format", "{{.Labels}} {{.Options}}", volume)
    # moor's --mount, --volumes-from and --volume-driver make the same request.
    args = ["--mount", f"type=volume,src={volume},dst=/d,volume-opt=type=tmpfs,"
            "volume-label=team=a,consistency=cached,readonly",
            "--mount", "type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1770",
            "--mount", f"type=bind,src={pair.base},dst=/b,bind-propagation=rshared",
            "--volumes-from", f"{container}:ro", "--volume-driver", "local", "-v", "/anon"]
    by_docker, by_moor = made.container(), made.container()
    pair.moord.docker("create", "--name", by_docker, *args, PLAIN, "true", check=True)
    subprocess.run([MOOR, "-H", pair.moord.host, "create", "--name", by_moor, *args, PLAIN,
                    "true"], check=True, capture_output=True, timeout=60)
    shown = ("{{json .HostConfig.Mounts}} {{json .HostConfig.VolumesFrom}} "
             "{{json .HostConfig.VolumeDriver}} {{json .Config.Volumes}}")
    docs = [pair.moord.docker("inspect", "--format", shown, name).stdout
            for name in (by_docker, by_moor)]
    assert docs[0] == docs[1]
    assert [{**m, "Name": "", "Source": m["Source"].split("/volumes/")[0]}
            for m in mounts(pair.moord, by_moor)] == [
        {**m, "Name": "", "Source": m["Source"].split("/volumes/")[0]}
        for m in mounts(pair.moord, by_docker)]
    assert pair.same("run", "--rm", "--mount",
                     f"type=volume,src={made.volume()},dst=/d,volume-opt=foo=bar",
                     PLAIN, "true") == 125
    assert pair.same("run", "--rm", "--mount", f"type=bind,src={pair.base},dst=/b,"
                     "bind-propagation=rslave", PLAIN, "true") == 125


def test_survives_daemon_restart(pair: Pair, busybox_rootfs: str) -> None:
    """A moord of its own, stopped and started again: volumes, labels, options and data
    stay; dockerd's own restart behaviour is not in question here."""
    with tempfile.TemporaryDirectory(prefix="moor-volumes-restart-") as base:
        daemon = start_daemon(base)
        try:
            tar = subprocess.run(["tar", "-C", busybox_rootfs, "-c", "."], capture_output=True,
                                 check=True).stdout
            daemon.docker("import", "-", PLAIN, input=tar, check=True)
            daemon.docker("volume", "create", "--label", "k=v", "kept", check=True)
            daemon.docker("run", "--rm", "-v", "kept:/d", PLAIN, "sh", "-c", "echo data > /d/f",
                          check=True)
            daemon.docker("create", "--name", "holder", "-v", "kept:/d", "-v", "/anon", PLAIN,
                          "true", check=True)
            before = daemon.docker("volume", "inspect", "kept", check=True).stdout
            stop_daemon(daemon)
            daemon = start_daemon(base)
            assert daemon.docker("volume", "inspect", "kept", check=True).stdout == before
            assert daemon.docker("run", "--rm", "-v", "kept:/d", PLAIN, "cat", "/d/f",
                                 check=True).stdout == b"data\n"
            assert daemon.docker("volume", "rm", "kept").returncode == 1  # still leased
            daemon.docker("rm", "-v", "holder", check=True)
            daemon.docker("volume", "rm", "kept", check=True)
            assert daemon.docker("volume", "ls", "-q", check=True).stdout == b""
            daemon.docker("rmi", PLAIN, check=True)
        finally:
            stop_daemon(daemon)


def test_live_restore_keeps_device_mounts(busybox_rootfs: str) -> None:
    """With live-restore a running container keeps its tmpfs volume across a daemon
    restart, and a container started after shares that same tmpfs."""
    with tempfile.TemporaryDirectory(prefix="moor-volumes-live-") as base:
        daemon = start_daemon(base, "--live-restore")
        try:
            tar = subprocess.run(["tar", "-C", busybox_rootfs, "-c", "."], capture_output=True,
                                 check=True).stdout
            daemon.docker("import", "-", PLAIN, input=tar, check=True)
            daemon.docker("volume", "create", "-o", "type=tmpfs", "-o", "device=tmpfs", "shm",
                          check=True)
            daemon.docker("run", "-d", "--name", "keeper", "-v", "shm:/s", PLAIN, "sh", "-c",
                          "echo live > /s/f; sleep 60", check=True)
            stop_daemon(daemon)
            daemon = start_daemon(base, "--live-restore")
            assert daemon.docker("run", "--rm", "-v", "shm:/s", PLAIN, "cat", "/s/f",
                                 check=True).stdout == b"live\n"
            daemon.docker("rm", "-f", "keeper", check=True)
            mountpoint = os.path.join(daemon.data_root, "volumes", "shm", "_data")
            assert not os.path.ismount(mountpoint)
            daemon.docker("volume", "rm", "shm", check=True)
            daemon.docker("rmi", PLAIN, check=True)
        finally:
            daemon.docker("rm", "-f", "keeper")
            stop_daemon(daemon)


# Last in the module: dockerd's answers, asked when the module began, have had their 15 s.
@pytest.mark.parametrize("request_", UNKNOWN_DRIVER_REQUESTS, ids=["volume", "mount", "bind"])
def test_unknown_driver_refused(pair: Pair, request_: tuple[str, str, dict]) -> None:
    """An unknown volume driver is a 404, and nothing is made (asked through the API: the
    docker CLI would take a container create's 404 for a missing image and go pulling)."""
    method, path, body = request_
    before = listed(pair.moord)
    status, doc = both_api(pair, method, path, body)
    driver = body.get("Driver") or body["HostConfig"].get("VolumeDriver") or \
        body["HostConfig"]["Mounts"][0]["VolumeOptions"]["DriverConfig"]["Name"]
    assert status == 404 and f'plugin "{driver}" not found' in doc["message"]
    assert listed(pair.moord) == before
    assert not {"vol-unknown-driver", "vol-unknown-bind"} & listed(pair.dockerd)
