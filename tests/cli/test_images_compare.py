"""Image commands through `moor` and `docker` against one daemon (dockerd, then moord)."""

from __future__ import annotations

import subprocess
import tarfile
from pathlib import Path

from clikit import Clis
from test_compare import masked, same


def test_listing_and_inspect(clis: Clis) -> None:
    for args in (("images",), ("images", "-q"), ("images", "--no-trunc"), ("image", "ls"),
                 ("image", "ls", "busybox"), ("images", "--digests"),
                 ("images", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}"),
                 ("images", "--format", "table {{.Repository}}\t{{.Tag}}"),
                 ("images", "--filter", "reference=busy*", "-q"),
                 ("image", "inspect", "-f", "{{.Os}} {{.Architecture}} {{.RepoTags}}", "busybox"),
                 ("image", "inspect", "-f", "{{json .Config.Cmd}} {{.Id}}", "busybox"),
                 ("image", "inspect", "nosuch"), ("history", "busybox"),
                 ("history", "-q", "busybox"), ("history", "--no-trunc", "busybox"),
                 ("history", "-H=false", "busybox"),
                 ("history", "--format", "{{.ID}}|{{.CreatedBy}}|{{.Size}}|{{.Comment}}|"
                  "{{.CreatedAt}}", "busybox"),
                 ("history", "--human=false", "--format", "table {{.ID}}\t{{.Size}}\t"
                  "{{.CreatedSince}}", "busybox"),
                 ("image", "history", "nosuch")):
        same(clis, *args)


def test_tag_and_remove(clis: Clis) -> None:
    for cli, name in ((clis.moor, "mybox-m"), (clis.docker, "mybox-d")):
        assert cli("tag", "busybox", f"{name}:1").returncode == 0
        assert cli("image", "tag", "busybox", f"{name}:2").returncode == 0
        listed = cli("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
        assert {f"{name}:1".encode(), f"{name}:2".encode()} <= set(listed)
        same(clis, "images", "-q")  # a line per tag: the ID more than once
        assert cli("rmi", f"{name}:1").stdout == f"Untagged: {name}:1\n".encode()
        assert cli("image", "rm", f"{name}:2").stdout == f"Untagged: {name}:2\n".encode()
    same(clis, "tag", "nosuch", "x:1")
    same(clis, "rmi", "busybox:nosuchtag")


def test_save_load_import_prune(clis: Clis, tmp_path: Path) -> None:
    archive = tmp_path / "b.tar"
    assert clis.moor("save", "-o", str(archive), "busybox").returncode == 0
    with tarfile.open(archive) as tar:
        assert "manifest.json" in tar.getnames()
    piped = clis.moor("save", "busybox").stdout
    assert piped[:512] and tarfile.is_tarfile(archive)
    same(clis, "load", "-i", str(archive))
    assert same(clis, "load", input=piped).stdout == b"Loaded image: busybox:latest\n"
    same(clis, "load", "-q", "-i", str(archive))
    same(clis, "load", "-i", str(tmp_path / "missing.tar"))
    # import: a one-file layer, as a new repository, through each CLI
    layer = tmp_path / "layer.tar"
    (tmp_path / "hello").write_text("hi\n")
    subprocess.run(["tar", "-C", str(tmp_path), "-cf", str(layer), "hello"], check=True)
    for cli, repo in ((clis.moor, "imp-m"), (clis.docker, "imp-d")):
        done = cli("import", "-m", "made here", str(layer), f"{repo}:v1")
        assert done.returncode == 0 and done.stdout.startswith(b"sha256:"), done.stderr
        assert cli("image", "inspect", "-f", "{{.Comment}}", f"{repo}:v1").stdout == \
            b"made here\n"
        cli("import", str(layer))  # untagged: dangling, for prune
    ours, theirs = clis.moor("rmi", "imp-m:v1"), clis.docker("rmi", "imp-d:v1")
    assert masked(ours.stdout.replace(b"imp-m", b"imp-d")) == masked(theirs.stdout)
    assert ours.stdout.startswith(b"Untagged: imp-m:v1\nDeleted: sha256:")
    ours = clis.moor("image", "prune", "-f")
    assert ours.returncode == 0 and b"deleted: sha256:" in ours.stdout
    assert ours.stdout.endswith(b"B\n") and b"Total reclaimed space: " in ours.stdout
    same(clis, "image", "prune", "-f")
    assert clis.moor("images", "-q", "--filter", "dangling=true").stdout == b""


def test_pull_output_and_all_tags(moord_clis: Clis, tmp_path: Path) -> None:
    from registrykit import start_moor

    clis = moord_clis
    with start_moor(str(tmp_path / "registry")) as registry:
        name = f"{registry.host}/bb"
        for tag in ("latest", "v2"):
            assert clis.docker("tag", "busybox", f"{name}:{tag}").returncode == 0
            assert clis.docker("push", f"{name}:{tag}").returncode == 0
        shown = []
        for cli in (clis.moor, clis.docker):
            clis.docker("rmi", f"{name}:latest")
            pulled = cli("pull", name)
            assert pulled.returncode == 0, pulled.stderr
            shown.append(masked(pulled.stdout))
        assert shown[0] == shown[1] and shown[0].startswith(b"Using default tag: latest")
        for args in (("pull", "-a", f"{name}:v2"), ("pull", "-q", name),
                     ("push", "-q", f"{name}:v2"), ("push", name), ("push", "-a", f"{name}:v2"),
                     ("push", "--all-tags", name), ("push", "-q", "-a", name),
                     ("push", "-q", f"{name}:nosuch")):
            same(clis, *args)
        shown = []
        for cli in (clis.moor, clis.docker):
            clis.docker("rmi", f"{name}:latest", f"{name}:v2")
            pulled = cli("pull", "--all-tags", name)
            assert pulled.returncode == 0, pulled.stderr
            shown.append(masked(pulled.stdout))
            tags = clis.docker("images", "--format", "{{.Tag}}", name).stdout.split()
            assert sorted(tags) == [b"latest", b"v2"]
        assert shown[0] == shown[1]
        assert shown[0].endswith(f"Status: Downloaded newer image for {name} {name}".encode())
