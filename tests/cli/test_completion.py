"""The bash completion script, sourced in a real bash: what `compgen` offers for a line."""

from __future__ import annotations

import shlex
import shutil
import subprocess

import pytest
from clikit import MOOR, Clis


def complete(clis: Clis, line: str, shell: str = "bash") -> list[str]:
    """COMPREPLY for `line` (the word being completed is its last, maybe empty)."""
    words = line.split(" ")
    script = (f"source <({MOOR} completion {shell}); PATH={shlex.quote(MOOR.rsplit('/', 1)[0])}"
              f":$PATH; COMP_WORDS=({' '.join(shlex.quote(w) for w in words)}); "
              f"COMP_CWORD={len(words) - 1}; _moor; printf '%s\\n' \"${{COMPREPLY[@]}}\"")
    done = subprocess.run(["bash", "-c", script], env=clis.env(), capture_output=True,
                          timeout=30, text=True)
    assert done.returncode == 0 and not done.stderr, done.stderr
    return sorted(filter(None, done.stdout.split("\n")))


def test_commands_and_groups(clis: Clis) -> None:
    assert complete(clis, "moor ru") == ["run"]
    assert complete(clis, "moor container st") == ["start", "stats", "stop"]
    assert complete(clis, "moor --host x ima") == ["image", "images"]
    assert "--tlsverify" in complete(clis, "moor --tls")


def test_flags(clis: Clis) -> None:
    assert complete(clis, "moor run --rea") == ["--read-only"]
    assert complete(clis, "moor container run --pids") == ["--pids-limit"]
    assert complete(clis, "moor ps --fo") == ["--format"]
    assert complete(clis, "moor image prune -") == ["--all", "--filter", "--force", "--help",
                                                    "-a", "-f"]


def test_container_and_image_names(clis: Clis) -> None:
    clis.docker("create", "--name", "compl-one", "busybox", "true")
    assert complete(clis, "moor logs compl-") == ["compl-one"]
    assert complete(clis, "moor container rm compl") == ["compl-one"]
    assert complete(clis, "moor rmi busy") == ["busybox:latest"]
    assert complete(clis, "moor run busy") == ["busybox:latest"]
    assert complete(clis, "moor images busy") == []


def test_zsh_runs_the_same_function(clis: Clis) -> None:
    """zsh calls the function through bashcompinit, which turns on ksharrays (0-based).
    Its compgen emulation leaves the prefix match to zsh's compadd, so the reply holds
    the group's verbs unfiltered."""
    if not shutil.which("zsh"):
        pytest.skip("zsh is not installed")
    script = (f"source <({MOOR} completion zsh) && setopt ksharrays && "
              "COMP_WORDS=(moor container st) && COMP_CWORD=2 && _moor && "
              'print -l "${COMPREPLY[@]}"')
    done = subprocess.run(["zsh", "-c", script], env=clis.env(), capture_output=True,
                          timeout=30, text=True)
    assert done.returncode == 0, done.stderr
    offered = set(done.stdout.split())
    assert {"start", "stats", "stop", "attach", "ls"} <= offered and "images" not in offered
