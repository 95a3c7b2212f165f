"""Stand-ins for critest's upstream images (cri-tools v1.26.1's names), as docker-archives
in a folder, one per image: busybox (devkit's static build) plus a layer of the files
and the config that image's Dockerfile in cri-tools/images gives it. scripts/critest.sh
pushes them to its registry on 127.0.0.1.

    python scripts/critest_images.py OUT_DIR
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

from moorage.devkit import busybox

_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_PASSWD = ("root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/bin/false\n"
           "default-user:x:1000:1000:Linux User,,,:/home/default-user:/bin/sh\n"
           "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
_GROUP = ("root:x:0:\nwww-data:x:33:\ndefault-user:x:1000:\n"
          "group-defined-in-image:x:50000:default-user\nnogroup:x:65534:\n")


def _web(port: int) -> list[str]:
    return ["sh", "-c", f"mkdir -p /www && echo ok > /www/index.html && "
            f"exec httpd -f -p {port} -h /www"]


E2E = "registry.k8s.io/e2e-test-images/"
STAGING = "gcr.io/k8s-staging-cri-tools/"
# name → (files the image adds, its config)
IMAGES: dict[str, tuple[dict[str, str], dict]] = {
    E2E + "busybox:1.29-2": ({}, {"Cmd": ["sh"]}),
    E2E + "nginx:1.14-2": ({}, {"Cmd": _web(80)}),
    E2E + "httpd:2.4.39-4": ({}, {"Cmd": _web(80)}),
    STAGING + "hostnet-nginx-amd64:latest": ({}, {"Cmd": _web(12003)}),
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
    "moorage.test/pause:1": ({}, {"Cmd": ["sleep", "86400"]}),
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


def main(out: str) -> None:
    rootfs = os.path.join(out, "rootfs")
    busybox.build_rootfs(rootfs)
    base = subprocess.run(["tar", "-C", rootfs, "-c", "."], capture_output=True,
                          check=True).stdout
    users = _tar({"etc/passwd": _PASSWD.encode(), "etc/group": _GROUP.encode()})
    for number, (name, (files, config)) in enumerate(IMAGES.items()):
        extra = _tar({path: text.encode() for path, text in files.items()}) if files else users
        with open(os.path.join(out, f"image-{number}.tar"), "wb") as f:
            f.write(archive([base, extra], config, name))
        print(name, f"image-{number}.tar")


if __name__ == "__main__":
    main(sys.argv[1])
