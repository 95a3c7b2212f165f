"""Errors without a daemon, and contexts shared with the docker CLI."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

from clikit import MOOR, Clis


def moor(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([MOOR, *args], env=env, capture_output=True, timeout=30)


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("DOCKER_HOST", "MOOR_HOST", "DOCKER_CONTEXT")}
    return {**env, "DOCKER_CONFIG": str(tmp_path / "config"), **extra}


def test_daemon_not_running_names_the_socket(tmp_path: Path) -> None:
    sock = tmp_path / "none.sock"
    done = moor("ps", env=clean_env(tmp_path, DOCKER_HOST=f"unix://{sock}"))
    assert done.returncode == 1
    assert done.stderr.decode() == (
        f"Cannot connect to the moorage daemon at unix://{sock}. Is the moord daemon running? "
        "(start it with: moord)\n")
    default = moor("-H", "unix:///run/moor/moord.sock", "version", env=clean_env(tmp_path))
    assert b"Client:" in default.stdout and b"unix:///run/moor/moord.sock" in default.stderr
    assert b"Traceback" not in default.stderr


def test_contexts_are_shared_with_docker(clis: Clis, tmp_path: Path) -> None:
    env = clean_env(tmp_path)
    made = moor("context", "create", "dd", "--docker", f"host={clis.host}",
                "--description", "the dockerd", env=env)
    assert made.returncode == 0 and made.stdout == b"dd\n"
    docker = subprocess.run(["docker", "context", "ls", "--format",
                             "{{.Name}} {{.DockerEndpoint}}"], env=env, capture_output=True)
    assert f"dd {clis.host}".encode() in docker.stdout
    assert moor("--context", "dd", "images", "-q", env=env).stdout.strip()
    assert moor("context", "use", "dd", env=env).returncode == 0
    assert b"dd *" in subprocess.run(["docker", "context", "ls"], env=env,
                                     capture_output=True).stdout
    assert moor("images", "-q", env=env).stdout.strip()  # through the current context
    ours = moor("context", "inspect", "dd", env=env).stdout
    theirs = subprocess.run(["docker", "context", "inspect", "dd"], env=env,
                            capture_output=True).stdout
    assert ours == theirs
    subprocess.run(["docker", "context", "use", "default"], env=env, check=True,
                   capture_output=True)
    assert moor("context", "rm", "dd", env=env).stdout == b"dd\n"
    gone = moor("context", "rm", "dd", env=env)
    assert gone.returncode == 1 and gone.stderr == b'context "dd" does not exist\n'


def test_ssh_transport_through_dial_stdio(clis: Clis, tmp_path: Path) -> None:
    """ssh://: an `ssh` stand-in that runs the remote command locally (no sshd here),
    so the CLI side, `system dial-stdio` and the relay are the real ones."""
    fake = tmp_path / "ssh"
    fake.write_text(f'#!/bin/sh\nwhile [ "$1" != "--" ]; do shift; done; shift; shift\n'
                    f'PATH={Path(MOOR).parent}:$PATH DOCKER_HOST={clis.host} exec "$@"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    env = clean_env(tmp_path, DOCKER_HOST="ssh://me@remote:2222", MOOR_SSH_COMMAND=str(fake))
    done = moor("version", "--format", "{{.Server.Version}}", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout == clis.docker("version", "--format", "{{.Server.Version}}").stdout
    assert moor("run", "--rm", "busybox", "echo", "over ssh", env=env).stdout == b"over ssh\n"


def _modes(root: Path) -> dict[str, str]:
    """Every path under `root` (context hashes are the same for both) and its mode."""
    return {str(p.relative_to(root)): oct(p.stat().st_mode & 0o7777)
            for p in sorted([root, *root.rglob("*")])}


def test_secrets_written_private_like_docker(tmp_path: Path) -> None:
    """config.json 0600 in a 0700 folder, TLS material 0600 in 0700 folders, metadata
    0644: the same modes as the docker CLI's, whatever the umask lets through."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=t"],
                   check=True, capture_output=True)
    endpoint = f"host=tcp://127.0.0.1:1,ca={cert},cert={cert},key={key}"
    seen = []
    for name, cli in (("moor", MOOR), ("docker", "docker")):
        env = clean_env(tmp_path / name)
        for args in (("context", "create", "t1", "--docker", endpoint), ("context", "use", "t1")):
            done = subprocess.run([cli, *args], env=env, capture_output=True, timeout=30,
                                  preexec_fn=lambda: os.umask(0o022))
            assert done.returncode == 0, done.stderr
        seen.append(_modes(tmp_path / name / "config"))
    assert seen[0] == seen[1]
    assert seen[0]["config.json"] == "0o600"
    # A config folder made for config.json alone is 0700 (docker's ConfigFile.Save
    # makes it so; `docker context use` writes nothing when the context is current).
    env = clean_env(tmp_path / "alone")
    done = subprocess.run([MOOR, "context", "use", "default"], env=env, capture_output=True,
                          timeout=30, preexec_fn=lambda: os.umask(0o022))
    assert done.returncode == 0, done.stderr
    assert _modes(tmp_path / "alone" / "config") == {".": "0o700", "config.json": "0o600"}


def test_context_update_export_import_and_from_as_docker(tmp_path: Path) -> None:
    """Each step through moor and through the docker CLI on twin contexts in one store:
    the same output, and the same documents after."""
    env = clean_env(tmp_path)

    def both(*args: str, stderr: bool = True) -> None:
        """`@` in `args` stands for "mm1" in moor's names and "dd1" in docker's."""
        ours = moor(*[a.replace("@", "mm1") for a in args], env=env)
        theirs = subprocess.run(["docker", *[a.replace("@", "dd1") for a in args]], env=env,
                                capture_output=True)
        shown = [(r.returncode, r.stdout.replace(name, b"@"),
                  r.stderr.replace(name, b"@") if stderr else b"")
                 for r, name in ((ours, b"mm1"), (theirs, b"dd1"))]
        assert shown[0] == shown[1], (args, ours, theirs)

    def documents(*names: str) -> list[dict]:
        found = json.loads(moor("context", "inspect", *names, env=env).stdout)
        return [{k: v for k, v in doc.items() if k not in ("Name", "Storage")} for doc in found]

    both("context", "create", "src-@", "--docker", "host=tcp://127.0.0.1:2375",
         "--description", "one")
    both("context", "create", "copy-@", "--from", "src-@")
    both("context", "update", "copy-@", "--description", "two", "--docker",
         "host=unix:///tmp/other.sock")
    assert documents("copy-mm1") == documents("copy-dd1")
    assert documents("copy-mm1")[0]["Metadata"] == {"Description": "two"}
    both("context", "export", "copy-@", str(tmp_path / "copy-@.tar"))
    both("context", "import", "back-@", str(tmp_path / "copy-@.tar"))
    assert documents("back-mm1", "back-dd1") == documents("copy-mm1") * 2
    # moor imports docker's export
    imported = moor("context", "import", "cross", str(tmp_path / "copy-dd1.tar"), env=env)
    assert imported.returncode == 0 and documents("cross") == documents("copy-dd1")
    # the context in use: refused without -f
    for cli, name in ((lambda *a: moor(*a, env=env), "copy-mm1"),
                      (lambda *a: subprocess.run(["docker", *a], env=env, capture_output=True),
                       "copy-dd1")):
        cli("context", "use", name)
        refused = cli("context", "rm", name)
        assert (refused.returncode, refused.stderr) == (
            1, f'context "{name}" is in use, set -f flag to force remove\n'.encode())
    both("context", "use", "default")
    both("context", "rm", "copy-@", "back-@", "src-@")
    both("context", "update", "nosuch-@", "--description", "x", stderr=False)
