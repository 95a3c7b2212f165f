"""Stand-ins for critest's upstream images (cri-tools v1.26.1's names), as docker-archives
in a folder, one per image: a base layer plus a layer of the files and the config that
image's Dockerfile in cri-tools/images gives it. scripts/critest.sh pushes them to its
registry on 127.0.0.1.

The base is what the upstream busybox image is: Debian's dynamically linked busybox
(the package BUSYBOX_DEB, which critest.sh downloads) with its applets as hard links, so a masked /bin/ls masks ls
alone and the shell runs it as a program (busybox-static's shell runs applets itself);
the host's libc, ipcs and pgrep beside it, which that build lacks; and
critest_standin.c, built static, standing in for nginx, httpd, pause and nonewprivs.

    python scripts/critest_images.py OUT_DIR BUSYBOX_DEB
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile

_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_PASSWD = ("root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/bin/false\n"
           "default-user:x:1000:1000:Linux User,,,:/home/default-user:/bin/sh\n"
           "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
_GROUP = ("root:x:0:\nwww-data:x:33:\ndefault-user:x:1000:\n"
          "group-defined-in-image:x:50000:default-user\nnogroup:x:65534:\n")


E2E = "registry.k8s.io/e2e-test-images/"
STAGING = "gcr.io/k8s-staging-cri-tools/"
# name → (files the image adds, its config)
IMAGES: dict[str, tuple[dict[str, str], dict]] = {
    E2E + "busybox:1.29-2": ({}, {"Cmd": ["sh"]}),
    E2E + "nginx:1.14-2": ({}, {"Cmd": ["nginx", "-g", "daemon off;"]}),
    E2E + "httpd:2.4.39-4": ({}, {"Cmd": ["httpd", "-D", "FOREGROUND"]}),
    E2E + "nonewprivs:1.3": ({}, {"Cmd": ["nonewprivs"]}),
    STAGING + "hostnet-nginx-amd64:latest": ({}, {"Cmd": ["nginx", "-g", "daemon off;"],
                                                  "Env": [_PATH, "PORT=12003"]}),
    STAGING + "test-image-user-uid:latest": ({}, {"Cmd": ["sh"], "User": "1002"}),
    STAGING + "test-image-user-username:latest": ({}, {"Cmd": ["sh"], "User": "www-data"}),
    STAGING + "test-image-user-uid-group:latest": ({}, {"Cmd": ["sh"], "User": "1003:1003"}),
    STAGING + "test-image-user-username-group:latest": ({}, {"Cmd": ["sh"],
                                                              "User": "www-data:www-data"}),
    STAGING + "test-image-predefined-group:latest": ({}, {"Cmd": ["sh"], "User": "1000"}),
    STAGING + "test-image-latest:latest": ({"latest": "latest\n"}, {"Cmd": ["sh"]}),
    STAGING + "test-image-tag:test": ({"tag": "tag\n"}, {"Cmd": ["sh"]}),
    STAGING + "test-image-tag:all": ({"all": "all\n"}, {"Cmd": ["sh"]}),
    **{f"{STAGING}test-image-{n}:latest": ({f"test-image-{n}": f"{n}\n"}, {"Cmd": ["sh"]})
       for n in (1, 2, 3)},
    **{f"{STAGING}test-image-tags:{n}": ({"tags": "tags\n"}, {"Cmd": ["sh"]})
       for n in (1, 2, 3)},
    "moorage.test/pause:1": ({}, {"Cmd": ["pause"]}),
}


def _tar(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def archive(layers: list[bytes], config: dict, tag: str) -> bytes:
    diff_ids = [hashlib.sha256(layer).hexdigest() for layer in layers]
    document = json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
        "config": {"Env": [_PATH], **config},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{d}" for d in diff_ids]}}).encode()
    config_name = hashlib.sha256(document).hexdigest() + ".json"
    members = {f"{d}/layer.tar": layer for d, layer in zip(diff_ids, layers, strict=True)}
    members[config_name] = document
    members["manifest.json"] = json.dumps([{
        "Config": config_name, "RepoTags": [tag],
        "Layers": [f"{d}/layer.tar" for d in diff_ids]}]).encode()
    return _tar(members)


def _copy_program(path: str, rootfs: str, dest: str | None = None) -> None:
    """``path`` at ``dest`` (the same path by default) in ``rootfs``, with the host's
    shared libraries it needs."""
    libraries = subprocess.run(["ldd", path], capture_output=True, text=True).stdout
    for line in libraries.splitlines():
        found = line.split("=>")[-1].split("(")[0].strip()
        if found.startswith("/"):
            _copy(found, rootfs, found)
    _copy(path, rootfs, dest or path)


def _copy(path: str, rootfs: str, dest: str) -> None:
    target = os.path.join(rootfs, dest.lstrip("/"))
    os.makedirs(os.path.dirname(target), exist_ok=True)
    shutil.copy2(os.path.realpath(path), target)


def build_base(out: str, busybox_deb: str) -> str:
    rootfs = os.path.join(out, "rootfs")
    for folder in ("proc", "sys", "dev", "etc", "root", "var/run", "usr/local/bin"):
        os.makedirs(os.path.join(rootfs, folder), exist_ok=True)
    os.makedirs(os.path.join(rootfs, "tmp"), mode=0o1777, exist_ok=True)
    os.chmod(os.path.join(rootfs, "tmp"), 0o1777)
    unpacked = os.path.join(out, "busybox-deb")
    subprocess.run(["dpkg-deb", "-x", busybox_deb, unpacked], check=True)
    busybox = os.path.join(unpacked, "bin/busybox")
    _copy_program(busybox, rootfs, "/bin/busybox")
    applets = subprocess.run([busybox, "--list-full"], capture_output=True, text=True,
                             check=True).stdout.split()
    for applet in applets:
        link = os.path.join(rootfs, applet)
        if not os.path.lexists(link):
            os.makedirs(os.path.dirname(link), exist_ok=True)
            os.link(os.path.join(rootfs, "bin/busybox"), link)
    for program in ("ipcs", "pgrep"):
        _copy_program(shutil.which(program) or program, rootfs, f"/usr/bin/{program}")
    standin = os.path.join(rootfs, "usr/local/bin/nginx")
    subprocess.run(["gcc", "-static", "-Os", "-o", standin,
                    os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                 "critest_standin.c")], check=True)
    for name in ("httpd", "pause"):
        os.link(standin, os.path.join(rootfs, "usr/local/bin", name))
    nonewprivs = os.path.join(rootfs, "usr/local/bin/nonewprivs")
    shutil.copy(standin, nonewprivs)
    os.chmod(nonewprivs, 0o4755)
    return rootfs


def main(out: str, busybox_deb: str) -> None:
    rootfs = build_base(out, busybox_deb)
    base = subprocess.run(["tar", "-C", rootfs, "-c", "."], capture_output=True,
                          check=True).stdout
    users = _tar({"etc/passwd": _PASSWD.encode(), "etc/group": _GROUP.encode()})
    for number, (name, (files, config)) in enumerate(IMAGES.items()):
        extra = _tar({path: text.encode() for path, text in files.items()}) if files else users
        with open(os.path.join(out, f"image-{number}.tar"), "wb") as f:
            f.write(archive([base, extra], config, name))
        print(name, f"image-{number}.tar")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
