"""cp both ways through `moor`, checked against what `docker cp` makes of the same copies."""

from __future__ import annotations

import io
import tarfile
import tempfile
from pathlib import Path

from clikit import Clis
from test_compare import same


def test_cp(clis: Clis, tmp_path: Path) -> None:
    clis.docker("run", "-d", "--name", "cc", "busybox", "sh", "-c",
                "mkdir /d; echo hi > /d/f; echo x > /x; sleep 60")
    assert clis.docker("exec", "cc", "true").returncode == 0
    for tool, cli in (("m", clis.moor), ("d", clis.docker)):
        out = tmp_path / tool
        out.mkdir()
        for src, dst in (("cc:/x", "x1"), ("cc:/d", ""), ("cc:/d", "renamed")):
            done = cli("cp", src, f"{out}/{dst}")
            assert (done.returncode, done.stdout, done.stderr) == (0, b"", b""), done
        local = tmp_path / "local.txt"
        local.write_text("local\n")
        assert cli("cp", str(local), f"cc:/tmp/in-{tool}/").returncode == 1  # no such dir
        assert cli("cp", str(local), "cc:/tmp/").returncode == 0
        assert cli("cp", str(local), f"cc:/tmp/renamed-{tool}").returncode == 0
    trees = [sorted((p.relative_to(tmp_path / t), p.read_bytes() if p.is_file() else None)
                    for p in (tmp_path / t).rglob("*")) for t in "md"]
    assert trees[0] == trees[1] and (Path("x1"), b"x\n") in trees[0]
    assert clis.moor("exec", "cc", "cat", "/tmp/local.txt", "/tmp/renamed-m").stdout == \
        b"local\nlocal\n"
    with tarfile.open(fileobj=io.BytesIO(clis.moor("cp", "cc:/d", "-").stdout)) as tar:
        assert tar.getnames() == ["d", "d/f"]
    same(clis, "cp", "cc:/nosuch", str(tmp_path))
    same(clis, "cp", "nosuch:/x", str(tmp_path))
    same(clis, "cp", "a", "b")
    # a path without "moor" in it: same() reads moor as docker in our messages
    with tempfile.TemporaryDirectory(prefix="cp-src-") as local_dir:
        same(clis, "cp", f"{local_dir}/missing", "cc:/tmp")
