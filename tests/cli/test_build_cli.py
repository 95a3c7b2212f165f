"""moor build beside docker build (classic builder) against one daemon: the context
they send (.dockerignore by Docker's rules), their flags, their errors."""

from __future__ import annotations

import uuid
from pathlib import Path

from clikit import Clis

_FILES = {
    "app/main.py": "print(1)", "app/debug.log": "x", "app/deep/er/trace.log": "x",
    "keep/important.log": "k", "secret.txt": "s", "docs/a.md": "a", "docs/sub/b.md": "b",
    "build/out.bin": "o", "README": "r",
}
_IGNORE = "# comment\n**/*.log\n!keep/*.log\nsecret.txt\n/build\ndocs/*.md\nDockerfile\n"
_DOCKERFILE = ("FROM busybox\nARG WHO=nobody\nLABEL from=file\nCOPY . /ctx\n"
               "RUN echo $WHO > /who\n")


def _context(root: Path) -> Path:
    for name, text in _FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / ".dockerignore").write_text(_IGNORE)
    (root / "Dockerfile").write_text(_DOCKERFILE)
    return root


def _listing(clis: Clis, tag: str) -> bytes:
    result = clis.docker("run", "--rm", tag, "sh", "-c", "cd /ctx && find . | sort; cat /who")
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_context_and_flags(clis: Clis, tmp_path: Path) -> None:
    context = _context(tmp_path)
    ours, theirs = (f"cli-{who}-{uuid.uuid4().hex[:6]}" for who in ("moor", "docker"))
    iid = tmp_path.parent / f"{ours}.iid"
    try:
        built = clis.moor("build", "-t", ours, "--build-arg", "WHO=moor", "--label", "l=1",
                          "--iidfile", str(iid), str(context), timeout=180)
        assert built.returncode == 0, built.stderr
        assert b"Step 5/6 : RUN echo $WHO > /who" in built.stdout
        other = clis.docker("build", "-t", theirs, "--build-arg", "WHO=moor", "--label",
                            "l=1", str(context), timeout=180, DOCKER_BUILDKIT="0")
        assert other.returncode == 0, other.stderr
        assert _listing(clis, ours) == _listing(clis, theirs)
        image_id = iid.read_text()
        inspect = clis.docker("inspect", "-f", "{{.Id}} {{json .Config.Labels}}", ours)
        assert inspect.stdout.decode().strip() == f'{image_id} {{"from":"file","l":"1"}}'
        quiet = clis.moor("build", "-q", "--build-arg", "WHO=moor", "--label", "l=1",
                          str(context))
        assert quiet.stdout.decode().strip() == image_id  # every step from the cache
        stdin = clis.moor("build", "-q", "-f", "-", str(context),
                          input=b"FROM busybox\nRUN echo piped > /p\n")
        assert stdin.returncode == 0, stdin.stderr
        piped = stdin.stdout.decode().strip()
        assert clis.docker("run", "--rm", piped, "cat", "/p").stdout == b"piped\n"
        clis.docker("rmi", piped)
    finally:
        clis.docker("rmi", "-f", ours, theirs)


def test_errors(clis: Clis, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN exit 7\n")
    failed = clis.moor("build", str(tmp_path), timeout=120)
    real = clis.docker("build", str(tmp_path), timeout=120, DOCKER_BUILDKIT="0")
    assert (failed.returncode, failed.stderr.decode().strip().splitlines()[-1]) == \
        (real.returncode, real.stderr.decode().strip().splitlines()[-1])
    missing = clis.moor("build", str(tmp_path / "nope"))
    assert missing.returncode == 1
    assert b'unable to prepare context: path "' in missing.stderr


def test_commit_and_diff(clis: Clis) -> None:
    name = f"cd-{uuid.uuid4().hex[:6]}"
    tags = [f"committed-{who}-{uuid.uuid4().hex[:6]}:v1" for who in ("moor", "docker")]
    try:
        assert clis.docker("run", "--name", name, "busybox", "sh", "-c",
                           "touch /new && rm /etc/group").returncode == 0
        ours, theirs = clis.moor("diff", name), clis.docker("diff", name)
        assert sorted(ours.stdout.splitlines()) == sorted(theirs.stdout.splitlines())
        for cli, tag in zip((clis.moor, clis.docker), tags, strict=True):
            done = cli("commit", "-c", "ENV X=1", "-c", 'CMD ["ls", "/new"]', "-m", "msg",
                       name, tag)
            assert done.returncode == 0, done.stderr
            assert done.stdout.startswith(b"sha256:")
        shown = [clis.docker("run", "--rm", tag).stdout for tag in tags]
        assert shown[0] == shown[1] == b"/new\n"
        envs = [clis.docker("inspect", "-f", "{{json .Config.Env}} {{.Comment}}", t).stdout
                for t in tags]
        assert envs[0] == envs[1]
        assert clis.moor("diff", "nosuch").stderr == clis.docker("diff", "nosuch").stderr
    finally:
        clis.docker("rm", "-f", name)
        clis.docker("rmi", *tags)


def test_terminal_progress(clis: Clis, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN echo progress-line\n")
    first = clis.moor("build", "--progress=tty", "--no-cache", "-t", "progress:1",
                      str(tmp_path), timeout=120)
    assert first.returncode == 0, first.stderr
    lines = first.stdout.decode().splitlines()
    assert lines[0] == "[+] Building"
    assert any(line.startswith(" => [2/2] RUN echo progress-line  ") for line in lines)
    assert any(line.startswith(" => #2 ") and line.endswith(" progress-line") for line in lines)
    again = clis.moor("build", "--progress=tty", "-t", "progress:1", str(tmp_path))
    assert " => CACHED [2/2] RUN echo progress-line" in again.stdout.decode().splitlines()
    assert clis.moor("build", "--progress=fancy", str(tmp_path)).stderr.strip() == \
        b'invalid progress mode "fancy": use auto, plain or tty'
    clis.docker("rmi", "progress:1")


def test_stdin_contexts(clis: Clis, tmp_path: Path) -> None:
    import io
    import tarfile

    only = clis.moor("build", "-q", "-", input=b"FROM busybox\nRUN echo only > /o\n")
    assert only.returncode == 0, only.stderr
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        for name, body in (("Dockerfile", b"FROM busybox\nCOPY f /f\n"), ("f", b"in tar")):
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    tarred = clis.moor("build", "-q", "-", input=data.getvalue())
    assert tarred.returncode == 0, tarred.stderr
    image = tarred.stdout.decode().strip()
    assert clis.docker("run", "--rm", image, "cat", "/f").stdout == b"in tar"
    both = clis.moor("build", "-f", "-", "-", input=b"")
    assert both.returncode == 1
    clis.docker("rmi", image, only.stdout.decode().strip())


def test_output_local_and_tar(clis: Clis, tmp_path: Path) -> None:
    import tarfile

    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM busybox\nRUN mkdir /out && echo o > /out/f && "
                                        "rm -rf /etc/group /home\n")
    local = tmp_path / "rootfs"
    done = clis.moor("build", "-q", "--output", f"type=local,dest={local}", str(context),
                     timeout=120)
    assert done.returncode == 0, done.stderr
    assert (local / "out" / "f").read_text() == "o\n"
    assert (local / "bin" / "busybox").exists()
    assert not (local / "etc" / "group").exists() and not (local / "home").exists()
    archive = tmp_path / "fs.tar"
    done = clis.moor("build", "-q", "-o", f"type=tar,dest={archive}", str(context))
    assert done.returncode == 0, done.stderr
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert "out/f" in names and "etc/group" not in names and "bin/busybox" in names
    bad = clis.moor("build", "-o", "type=registry", str(context))
    assert bad.stderr.strip() == b"output type 'registry' is not supported: use local or tar"
    clis.docker("rmi", done.stdout.decode().strip())


def test_resource_flags_reach_the_run_steps(clis: Clis, tmp_path: Path) -> None:
    """The classic builder's resource parameters: each RUN step's container has them."""
    from test_compare import CPU, MEMORY, V2

    (tmp_path / "Dockerfile").write_text(
        f"FROM busybox\nRUN cat {MEMORY} {CPU} > /limits; df -k /dev/shm | tail -1 | "
        "awk '{print $2}' >> /limits\n")
    made = []
    try:
        for cli in (clis.moor, clis.docker):
            built = cli("build", "-q", "--no-cache", "--memory", "64m", "--memory-swap", "-1",
                        "--cpu-period", "50000", "--cpu-quota", "25000", "--shm-size", "8m",
                        "--rm=false", str(tmp_path), DOCKER_BUILDKIT="0")
            assert built.returncode == 0, built.stderr
            made.append(built.stdout.decode().strip())
            shown = clis.docker("run", "--rm", made[-1], "cat", "/limits")
            quota = b"25000 50000" if V2 else b"25000"
            assert shown.stdout == b"67108864\n" + quota + b"\n8192\n", shown.stderr
        refused = [cli("build", "--ulimit", "nofile=10:20", str(tmp_path),
                       DOCKER_BUILDKIT="0") for cli in (clis.moor, clis.docker)]
        assert refused[0].returncode == refused[1].returncode, refused
    finally:
        clis.docker("rmi", "-f", *made)
        clis.docker("container", "prune", "-f")
