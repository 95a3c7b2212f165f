"""The machine image: built on this host once, cached under a content key.

Debian bookworm from the host's Debian mirror (mmdebstrap, minbase, run as root so no
fakeroot), with the cloud kernel, systemd, openssh-server, acpid, sudo, python3 and the
tools the engine calls (nft, ip, modprobe); moorage's Python dependencies installed
from wheels fetched on the host (the guest has no network of its own). systemd is
PID 1 and boots lean: moord.service, ssh.service, acpid (the power button) and two
small units of ours (the seed disk on the first boot, the static network) in
multi-user.target, everything else a Debian system starts masked, no udev, no
journald, no generators (_systemd below): under TCG every unit costs time. The root
directory becomes an ext4 image with `mkfs.ext4 -d` (no loop mount) and then a qcow2
every machine overlays. The kernel and initrd are kept beside it: QEMU boots them directly.
moorage itself is not in the image: each machine's seed disk carries the client's
copy, so a change to moorage does not rebuild the image.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile

from moorage.machine.errors import MachineError, run
from moorage.machine.paths import cache_dir

SUITE = "bookworm"
PACKAGES = ("linux-image-cloud-amd64", "systemd", "openssh-server", "acpid", "sudo", "python3",
            "nftables", "iproute2", "kmod", "procps", "e2fsprogs")
GUEST_PYTHON = "3.11"
ROOT_SIZE_MB = 20000  # docker-machine's default disk; sparse, so it costs nothing unused
ROOT_SIZE = f"{ROOT_SIZE_MB}M"
SITE = f"usr/local/lib/python{GUEST_PYTHON}/dist-packages"
GUEST_ENGINE_PORT = 2376
_GUEST = os.path.join(os.path.dirname(__file__), "guest")
_BUILD_VERSION = "2"  # raised when what the key cannot see changes (the wheels' build)

# initramfs-tools with MODULES=list and a hook adding the virtio disk drivers: a 5 MB
# initrd instead of 30, and the cloud kernel builds virtio_blk as a module.
_INITRAMFS_HOOK = """#!/bin/sh
set -e
mkdir -p "$1/etc/initramfs-tools/hooks" "$1/etc/initramfs-tools/conf.d"
echo MODULES=list > "$1/etc/initramfs-tools/conf.d/moor.conf"
printf '%s\\n' '#!/bin/sh' '[ "$1" = prereqs ] && exit 0' \
  '. /usr/share/initramfs-tools/hook-functions' 'manual_add_modules virtio_pci virtio_blk' \
  > "$1/etc/initramfs-tools/hooks/moor-virtio"
chmod 755 "$1/etc/initramfs-tools/hooks/moor-virtio"
"""


# Our own initramfs instead of Debian's (udev and its scripts cost seconds under TCG):
# busybox, the virtio disk modules, and a script that mounts the root and hands over.
_INITRAMFS_INIT = """#!/bin/busybox sh
B=/bin/busybox
$B mkdir -p /dev /root
$B mount -t devtmpfs devtmpfs /dev
for m in $($B cat /modules.order); do $B insmod /lib/$m; done
i=0
while [ ! -b /dev/vda ] && [ $i -lt 200 ]; do $B usleep 50000; i=$((i+1)); done
$B mount -t ext4 -o rw /dev/vda /root || { echo "moor initramfs: no root disk"; exec $B sh; }
$B mount --move /dev /root/dev
exec $B switch_root /root /lib/systemd/systemd
"""
_INITRAMFS_MODULES = ("virtio_pci", "virtio_blk")


def mirror() -> str:
    return os.environ.get("MOOR_MACHINE_MIRROR") or _host_mirror()


def _host_mirror() -> str:
    """The Debian mirror this host's apt uses: the one place it may fetch packages from."""
    for path in ("/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"):
        try:
            with open(path) as f:
                for line in f:
                    words = line.split()
                    if words[:1] == ["URIs:"] and "security" not in words[1]:
                        return words[1]
                    if words[:1] == ["deb"] and "security" not in line:
                        return next(w for w in words[1:] if w.startswith("http"))
        except (OSError, StopIteration):
            continue
    return "http://deb.debian.org/debian"


# What only the client side uses: the guest runs the engine, never `moor machine`.
_CLIENT_ONLY = ("cryptography", "asyncssh")


def _requirements() -> list[str]:
    from importlib.metadata import requires

    listed = requires("moorage") or []
    return sorted(r for r in listed if "extra ==" not in r and not r.startswith(_CLIENT_ONLY))


def key() -> str:
    """The recipe's sources (this module, the unit's, the guest files) are in the key:
    a changed recipe never boots a stale image."""
    sources = [__file__, os.path.join(os.path.dirname(__file__), "service.py"),
               *(os.path.join(_GUEST, name) for name in _GUEST_FILES)]
    recipe = {"version": _BUILD_VERSION, "suite": SUITE, "mirror": mirror(),
              "requirements": _requirements(), "python": GUEST_PYTHON,
              "sources": [_digest(path) for path in sources]}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def _digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class Image:
    def __init__(self, path: str) -> None:
        self.path = path
        self.disk = os.path.join(path, "disk.qcow2")
        self.kernel = os.path.join(path, "vmlinuz")
        self.initrd = os.path.join(path, "initrd.img")

    def exists(self) -> bool:
        return all(os.path.exists(p) for p in (self.disk, self.kernel, self.initrd))


def cached() -> Image:
    return Image(os.path.join(cache_dir(), "images", key()))


def ensure(progress: object = None, in_use: frozenset[str] | None = frozenset()) -> Image:
    """The cached image, built first when missing. A failed build leaves nothing behind;
    a new one replaces the images of older recipes but those in `in_use` (folders whose
    disk backs a machine's overlay; None keeps them all)."""
    image = cached()
    if image.exists():
        return image
    parent = os.path.dirname(image.path)
    os.makedirs(parent, exist_ok=True)
    work = tempfile.mkdtemp(prefix=".build-", dir=parent)
    try:
        _build(work, progress)
        try:
            os.rename(os.path.join(work, "out"), image.path)
        except OSError:
            if not image.exists():  # another create finished the same build first
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for name in os.listdir(parent) if in_use is not None else ():
        stale = os.path.join(parent, name)
        # Another create's build in progress is a dot folder; leave it to its owner.
        if not name.startswith(".") and stale != image.path and stale not in in_use:
            shutil.rmtree(stale, ignore_errors=True)
    return image


def dependencies() -> str:
    """moorage's Python dependencies for the guest's Python, from wheels fetched on this
    host and byte-compiled here (compiling on a TCG guest costs seconds): a folder the
    image build and the generic driver both ship, cached under its own key."""
    recipe = json.dumps({"requirements": _requirements(), "python": GUEST_PYTHON,
                         "version": _BUILD_VERSION})
    target = os.path.join(cache_dir(), "dependencies",
                          hashlib.sha256(recipe.encode()).hexdigest()[:16])
    if os.path.isdir(target):
        return target
    os.makedirs(os.path.dirname(target), exist_ok=True)
    work = tempfile.mkdtemp(prefix=".build-", dir=os.path.dirname(target))
    try:
        run([_pip(), "install", "--quiet", "--disable-pip-version-check", "--no-compile",
             "--target", work, "--only-binary=:all:", "--implementation", "cp",
             "--python-version", GUEST_PYTHON, "--platform", "manylinux2014_x86_64",
             "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64",
             *_requirements()], "pip install (moorage's dependencies)", timeout=600)
        run([sys.executable, "-P", "-m", "compileall", "-q", "-j0", work],
            "compiling moorage's dependencies")
        try:
            os.rename(work, target)
        except OSError:
            if not os.path.isdir(target):  # another create finished the same build first
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def copy_moorage(target: str) -> None:
    """The client's moorage package at `target`, with its bytecode: compiling moorage
    on a TCG guest costs seconds."""
    import moorage

    shutil.copytree(os.path.dirname(moorage.__file__), target,
                    ignore=shutil.ignore_patterns("*.opt-*.pyc"))
    run([sys.executable, "-P", "-m", "compileall", "-q", target], "compiling moorage for the guest")


def _say(progress: object, text: str) -> None:
    if progress is not None:
        progress(text)  # type: ignore[operator]


def _build(work: str, progress: object) -> None:
    root = os.path.join(work, "root")
    hook = os.path.join(work, "initramfs-hook")
    with open(hook, "w") as f:
        f.write(_INITRAMFS_HOOK)
    os.chmod(hook, 0o755)
    _say(progress, f"debootstrapping Debian {SUITE} from {mirror()}")
    step = "building the image: mmdebstrap"
    run(["mmdebstrap", "--mode=root", "--variant=minbase", "--include=" + ",".join(PACKAGES),
         *(f"--dpkgopt=path-exclude=/usr/share/{d}/*" for d in ("doc", "man", "locale", "info")),
         f"--essential-hook={hook}", SUITE, root, mirror()], step, timeout=900)
    _say(progress, "installing moorage's Python dependencies from wheels")
    shutil.copytree(dependencies(), os.path.join(root, SITE), dirs_exist_ok=True)
    _finish_root(root)
    _assemble(root, work, os.path.join(work, "out"), progress)


def _assemble(root: str, work: str, out: str, progress: object) -> None:
    """The finished root directory as the image: kernel, our initramfs, qcow2 disk."""
    os.makedirs(out)
    boot = os.path.join(root, "boot")
    kernels = sorted(n for n in os.listdir(boot) if n.startswith("vmlinuz-"))
    if not kernels:
        raise MachineError("no vmlinuz-* in the root filesystem", "building the image")
    shutil.copy(os.path.join(boot, kernels[-1]), os.path.join(out, "vmlinuz"))
    _initramfs(root, kernels[-1].removeprefix("vmlinuz-"), work,
               os.path.join(out, "initrd.img"))
    _say(progress, "making the disk image (mkfs.ext4 -d)")
    raw = os.path.join(work, "disk.raw")
    run(["mkfs.ext4", "-q", "-F", "-L", "moor-root", "-E", "lazy_itable_init=1,lazy_journal_init=1",
         "-d", root, raw, ROOT_SIZE], "building the image: mkfs.ext4", timeout=600)
    run(["qemu-img", "convert", "-O", "qcow2", raw, os.path.join(out, "disk.qcow2")],
        "building the image: qemu-img convert", timeout=600)
    os.unlink(raw)
    with open(os.path.join(out, "key.json"), "w") as f:
        json.dump({"key": key(), "mirror": mirror(), "packages": PACKAGES}, f)


def _initramfs(root: str, release: str, work: str, target: str) -> None:
    """A newc cpio of busybox, the disk modules (dependencies first, from modules.dep)
    and _INITRAMFS_INIT."""
    modules = os.path.join(root, "lib", "modules", release)
    deps: dict[str, list[str]] = {}
    with open(os.path.join(modules, "modules.dep")) as f:
        for line in f:
            path, _, rest = line.partition(":")
            deps[os.path.basename(path).removesuffix(".ko")] = [path, *rest.split()]
    order: list[str] = []
    for name in _INITRAMFS_MODULES:
        path, *needs = deps[name]
        for item in [*reversed(needs), path]:
            if item not in order:
                order.append(item)
    tree = os.path.join(work, "initramfs")
    os.makedirs(os.path.join(tree, "bin"))
    os.makedirs(os.path.join(tree, "lib"))
    shutil.copy("/bin/busybox", os.path.join(tree, "bin", "busybox"))
    for item in order:
        shutil.copy(os.path.join(modules, item), os.path.join(tree, "lib"))
    with open(os.path.join(tree, "modules.order"), "w") as f:
        f.write("\n".join(os.path.basename(item) for item in order) + "\n")
    with open(os.path.join(tree, "init"), "w") as f:
        f.write(_INITRAMFS_INIT)
    os.chmod(os.path.join(tree, "init"), 0o755)
    names = sorted(os.path.relpath(os.path.join(d, n), tree)
                   for d, dirs, files in os.walk(tree) for n in dirs + files)
    import subprocess

    with open(target, "wb") as f:
        done = subprocess.run(["cpio", "-o", "-H", "newc", "--quiet"], cwd=tree, stdout=f,
                              input="\n".join(names).encode(), stderr=subprocess.PIPE,
                              check=False)
    if done.returncode:
        raise MachineError(f"cpio: {done.stderr.decode().strip()}",
                           "building the image: initramfs")


def _pip() -> str:
    return os.path.join(os.path.dirname(sys.executable), "pip")


def _moord_unit() -> str:
    from moorage.machine import service

    # No moorage, no engine: a bare VM's seed brings none (the generic driver's tests).
    return service.unit("/usr/local/bin/moord", GUEST_ENGINE_PORT,
                        f"ConditionPathExists=/{SITE}/moorage\n")


def _link(root: str, target: str, link: str) -> None:
    path = os.path.join(root, link.lstrip("/"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.lexists(path):
        os.unlink(path)
    os.symlink(target, path)


def _write(root: str, path: str, text: str, mode: int = 0o644) -> None:
    full = os.path.join(root, path.lstrip("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w") as f:
        f.write(text)
    os.chmod(full, mode)


def _finish_root(root: str) -> None:
    """systemd's lean boot (below), moor and moord on PATH, and no host keys of the
    image's own: each machine brings its own on its seed disk."""
    _systemd(root)
    for name, module in (("moord", "moorage.daemon.main"), ("moor", "moorage.cli.main")):
        _write(root, f"/usr/local/bin/{name}", f"#!/usr/bin/python3\nimport sys\nfrom {module} "
               "import main\nsys.exit(main())\n", 0o755)
    ssh = os.path.join(root, "etc", "ssh")
    for name in os.listdir(ssh):
        if name.startswith("ssh_host_"):
            os.unlink(os.path.join(ssh, name))
    _write(root, "/etc/ssh/sshd_config.d/moor.conf", "PermitRootLogin prohibit-password\n"
           "PasswordAuthentication no\nUseDNS no\nHostKey /etc/ssh/ssh_host_ed25519_key\n")
    # Not the build host's resolver (mmdebstrap copies it): the VM reaches nothing beyond
    # its forwarded ports, so a lookup would only wait for its timeout.
    _write(root, "/etc/resolv.conf", "# moor machine: no DNS (the VM has no network)\n")
    _write(root, "/etc/hosts", "127.0.0.1\tlocalhost\n")
    # No root entry: systemd would order an fsck after /dev/vda's device unit, which
    # only udev (not in the image) announces. The kernel mounts the root rw.
    _write(root, "/etc/fstab", "# the root (/dev/vda) is mounted by the kernel\n")


# Units of a Debian system the engine and sshd do not use: each costs time under TCG.
# Without udev (not installed) nothing would announce devices; without D-Bus no logind.
MASKED = (
    # consoles, logins, utmp: the machine is reached over SSH only
    "getty.target", "systemd-logind.service", "systemd-user-sessions.service",
    "systemd-update-utmp.service", "systemd-update-utmp-runlevel.service",
    "systemd-ask-password-wall.path", "systemd-ask-password-console.path",
    # first-boot set-up: the image is finished at build time (firstboot would prompt)
    "systemd-firstboot.service", "systemd-sysusers.service", "systemd-machine-id-commit.service",
    "ldconfig.service", "systemd-hwdb-update.service", "systemd-journal-catalog-update.service",
    "systemd-update-done.service", "systemd-random-seed.service", "systemd-pstore.service",
    "systemd-repart.service", "systemd-pcrphase.service", "systemd-pcrphase-sysinit.service",
    "systemd-tmpfiles-setup.service", "systemd-tmpfiles-setup-dev.service",
    "kmod-static-nodes.service", "systemd-sysctl.service", "systemd-binfmt.service",
    "systemd-remount-fs.service",
    # udev's units (the daemon is not installed)
    "systemd-udevd.service", "systemd-udev-trigger.service", "systemd-udev-settle.service",
    "systemd-udevd-control.socket", "systemd-udevd-kernel.socket",
    # file systems nobody mounts here
    "dev-hugepages.mount", "dev-mqueue.mount", "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount", "sys-kernel-config.mount", "sys-fs-fuse-connections.mount",
    "proc-sys-fs-binfmt_misc.automount", "cryptsetup.target", "integritysetup.target",
    "veritysetup.target", "remote-fs.target",
    # timers and maintenance
    "apt-daily.timer", "apt-daily-upgrade.timer", "dpkg-db-backup.timer", "e2scrub_all.timer",
    "fstrim.timer", "systemd-tmpfiles-clean.timer", "e2scrub_reap.service",
    # the journal: moord writes /var/log/moord.log, the rest goes to the kernel's log
    "systemd-journald.service", "systemd-journald.socket", "systemd-journald-dev-log.socket",
    "systemd-journald-audit.socket", "systemd-journal-flush.service",
    # sysvinit compatibility, acpid's path trigger (acpid.service is wanted directly)
    "systemd-initctl.socket", "acpid.path",
)
_GENERATORS_KEPT = ("systemd-debug-generator",)  # systemd.mask= and friends on the command line


# guest/ file → where the image has it, and its mode
_GUEST_FILES = {
    "moor-seed": ("/usr/local/sbin/moor-seed", 0o755),
    "moor-seed.service": ("/usr/lib/systemd/system/moor-seed.service", 0o644),
    "moor-network.service": ("/usr/lib/systemd/system/moor-network.service", 0o644),
    "network": ("/etc/moor/network", 0o644),
    "modules.conf": ("/etc/modules-load.d/moor.conf", 0o644),
    "ssh.conf": ("/etc/systemd/system/ssh.service.d/moor.conf", 0o644),
    "acpi-power": ("/etc/acpi/events/moor-power", 0o644),
}


def _systemd(root: str) -> None:
    """moord.service, moor-seed.service (first boot) and moor-network.service enabled
    beside ssh.service and acpid.service (the power button); the default target is
    multi-user.target; MASKED and the generators but the debug one are masked."""
    for name, (target, mode) in _GUEST_FILES.items():
        with open(os.path.join(_GUEST, name)) as f:
            _write(root, target, f.read(), mode)
    # Where a package puts its units: a generic driver's /etc/systemd/system/moord.service
    # (a bare VM of this image in the tests) overrides it and leaves it on rm.
    _write(root, "/usr/lib/systemd/system/moord.service", _moord_unit())
    _write(root, "/etc/systemd/system.conf.d/moor.conf",
           "[Manager]\n# No journald: services' output goes to the kernel's log (dmesg)\n"
           "DefaultStandardOutput=kmsg\nDefaultStandardError=kmsg\n")
    _link(root, "/usr/lib/systemd/system/multi-user.target",
          "/etc/systemd/system/default.target")
    wants = "/etc/systemd/system/multi-user.target.wants"
    for unit in ("moord.service", "moor-seed.service", "moor-network.service", "acpid.service"):
        _link(root, f"/usr/lib/systemd/system/{unit}", f"{wants}/{unit}")
    for unit in MASKED:
        _link(root, "/dev/null", f"/etc/systemd/system/{unit}")
    generators = os.path.join(root, "usr/lib/systemd/system-generators")
    for name in os.listdir(generators):
        if name not in _GENERATORS_KEPT:
            _link(root, "/dev/null", f"/etc/systemd/system-generators/{name}")
