"""A full disk under moord's data-root: each refusal names its cause as dockerd's does,
nothing is left half-made, and work goes on once there is room again.

dockerd's words, run here with its data-root on a 40 MB tmpfs: `docker commit` of 22 MB
"Error processing tar file(exit status 1): write /big: no space left on device";
`docker cp` of 50 MB into a container "Error processing tar file(exit status 1): write
/tmp/src/big: no space left on device"; moord has no untar process to give an "(exit
status 1)". On the full disk dockerd still runs `exec`, `stop`, `start` and `rm -f`
(measured); moord too, through the room it keeps for moor.db (moorage.store.reserve).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from enginekit import daemon_bridge_name, mounts_under, start_daemon, stop_daemon, store_clean


@contextmanager
def _data_root_on_40mb(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """The folder for start_daemon, and its data-root on a tmpfs of its own."""
    base = tmp_path / "moord"
    data = base / "data"
    data.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m", "tmpfs", str(data)], check=True)
    try:
        yield base, data
    finally:
        subprocess.run(["umount", str(data)], check=True)


def test_full_disk(tmp_path: Path, busybox_tar: bytes) -> None:
    with _data_root_on_40mb(tmp_path) as (base, data):
        daemon = start_daemon(str(base))
        try:
            daemon.docker("import", "-", "busybox:latest", input=busybox_tar, check=True)
            for name, megabytes in (("big", 15), ("small", 1)):
                made = daemon.docker("run", "--name", name, "busybox:latest", "dd",
                                     "if=/dev/urandom", f"of=/{name}", "bs=1M",
                                     f"count={megabytes}")
                assert made.returncode == 0, made.stderr
            # The layer is written twice (the blob, the snapshot unpacked from it).
            refused = daemon.docker("commit", "big", "big-image")
            assert refused.returncode == 1
            assert b"no space left on device" in refused.stderr.lower(), refused.stderr
            store_clean(daemon)
            assert daemon.docker("commit", "small", "small-image").returncode == 0
            ran = daemon.docker("run", "--rm", "small-image", "wc", "-c", "/small")
            assert ran.stdout.split()[0] == b"1048576", ran.stderr
            assert daemon.docker("rm", "big", "small").returncode == 0
            store_clean(daemon)

            source = tmp_path / "src"
            source.mkdir()
            (source / "big").write_bytes(os.urandom(50 << 20))
            daemon.docker("run", "-d", "--name", "cc", "busybox:latest", "sleep", "600",
                          check=True)
            copied = daemon.docker("cp", str(source), "cc:/tmp/")
            assert copied.returncode == 1
            assert copied.stderr.splitlines()[-1] == b"Error response from daemon: Error " \
                b"processing tar file: write /tmp/src/big: no space left on device"
            # What was written stays, as with dockerd: the disk is full. As with dockerd,
            # the container can still be used, stopped and removed.
            assert os.statvfs(data).f_bavail == 0
            ran = daemon.docker("exec", "cc", "echo", "still")
            assert (ran.returncode, ran.stdout) == (0, b"still\n"), ran.stderr
            for step in (("stop", "-t", "1", "cc"), ("start", "cc"), ("rm", "-f", "cc")):
                done = daemon.docker(*step)
                assert (done.returncode, done.stdout) == (0, b"cc\n"), (step, done.stderr)
            assert not os.path.exists(data / "moor.db-reserve")
            # Room again: the room kept for moor.db is taken back.
            subprocess.run(["mount", "-o", "remount,size=80m", str(data)], check=True)
            daemon.docker("create", "--name", "more", "busybox:latest", "true", check=True)
            assert (data / "moor.db-reserve").stat().st_blocks * 512 == 4 << 20
            daemon.docker("rm", "more", check=True)
            store_clean(daemon)
        finally:
            stop_daemon(daemon)


def test_stop_past_the_reserve(tmp_path: Path, busybox_tar: bytes) -> None:
    """The disk filled again after the room kept for moor.db was given back: the exit of
    the container the daemon's stop ends cannot be saved. The stop still ends whole
    (no bridge, firewall table or mount left), and the next start records the exit."""
    with _data_root_on_40mb(tmp_path) as (base, data):
        bridge = daemon_bridge_name(str(base))
        daemon = start_daemon(str(base))
        try:
            daemon.docker("import", "-", "busybox:latest", input=busybox_tar, check=True)
            daemon.docker("run", "-d", "--name", "kept", "--stop-timeout", "1",
                          "busybox:latest", "sleep", "600", check=True)
            fill = ["dd", "if=/dev/zero", "bs=1M"]
            subprocess.run([*fill, f"of={data / 'filler'}"], capture_output=True)
            daemon.docker("pause", "kept", check=True)  # a write: the reserve goes
            subprocess.run([*fill, f"of={data / 'filler-after-the-reserve'}"],
                           capture_output=True)
            assert os.statvfs(data).f_bavail == 0
            assert not (data / "moor.db-reserve").exists()
        finally:
            stop_daemon(daemon)
        assert daemon.process.returncode == 0, Path(daemon.log_path).read_text()
        assert not Path(f"/sys/class/net/{bridge}").exists()
        tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True)
        assert f"moorage_{bridge}" not in tables.stdout
        assert mounts_under(str(base)) == {str(data)}

        for filler in ("filler", "filler-after-the-reserve"):
            (data / filler).unlink()
        daemon = start_daemon(str(base))
        try:
            shown = daemon.docker("ps", "-a", "--format", "{{.Names}} {{.Status}}")
            assert shown.stdout.decode().startswith("kept Exited (137) "), shown
            daemon.docker("rm", "kept", check=True)
            store_clean(daemon)
        finally:
            stop_daemon(daemon)
