"""The probe: a busybox sh script that reports what a container sees, and its parser.

The script prints raw `key=value` lines (repeating a key for multi-line
sources); the Python side normalises away what legitimately differs between two
runs (ids, inode numbers, peer group ids, the container id and cgroup path), so
two runtimes given the same bundle must produce equal dicts.
"""

from __future__ import annotations

import os
import re
from typing import Any

# $$ rather than self: the init's own view, not that of the applet reading the file
# (a second execve would transform capabilities again).
PROBE_SH = r"""
p() { printf '%s=%s\n' "$1" "$2"; }
lines() { k=$1; shift; "$@" 2>&1 | while IFS= read -r l; do p "$k" "$l"; done; }
p hostname "$(hostname)"
p domainname "$(cat /proc/sys/kernel/domainname)"
lines uid_map cat /proc/$$/uid_map
lines gid_map cat /proc/$$/gid_map
lines status grep -E '^(Cap|NoNewPrivs|Seccomp:)' /proc/$$/status
p id_u "$(id -u)"
p id_g "$(id -g)"
p id_G "$(id -G)"
p umask "$(umask)"
p cwd "$(pwd)"
lines env env
lines mountinfo cat /proc/$$/mountinfo
lines cgroup cat /proc/$$/cgroup
lines limits cat /proc/$$/limits
p oom_score_adj "$(cat /proc/$$/oom_score_adj)"
for n in /proc/$$/ns/*; do p "ns_${n##*/}" "$(readlink $n)"; done
for f in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug /proc/latency_stats; do
  if [ -e $f ]; then p "masked_$f" "bytes:$(head -c 64 $f 2>&1 | wc -c)"
  else p "masked_$f" absent; fi
done
for d in /proc/acpi /proc/scsi /proc/asound /sys/firmware; do
  if [ -d $d ]; then p "masked_$d" "entries:$(ls -A $d 2>&1 | wc -l)"; else p "masked_$d" absent; fi
done
# `test -w` is always true for root; an open for append (no write: sysrq-trigger
# acts on writes) is what meets a read-only mount.
for f in /proc/sys/kernel/hostname /proc/sysrq-trigger /proc/irq/default_smp_affinity \
         /proc/bus/pci/devices /proc/fs/nfsd/versions /sys/kernel/uevent_helper; do
  [ -e $f ] && p "writable_$f" "$( (: >> $f) 2>&1 && echo yes)"
done
for d in / /tmp /dev /dev/shm /sys /sys/fs/cgroup /proc/sys; do
  p "writable_$d" "$(touch $d/.probe-w 2>&1 && rm $d/.probe-w && echo yes)"
done
for f in memory/memory.limit_in_bytes memory/memory.soft_limit_in_bytes \
         memory/memory.memsw.limit_in_bytes pids/pids.max cpu/cpu.cfs_quota_us \
         cpu/cpu.cfs_period_us cpu/cpu.shares cpuset/cpuset.cpus cpuset/cpuset.mems \
         memory.max pids.max cpu.max; do
  if [ -e /sys/fs/cgroup/$f ]; then p "cgfile_$f" "$(cat /sys/fs/cgroup/$f 2>&1)"; fi
done
lines cgroupfs ls /sys/fs/cgroup
for k in net/ipv4/ip_forward kernel/shmmax kernel/msgmax net/core/somaxconn; do
  p "sysctl_$k" "$(cat /proc/sys/$k 2>&1)"
done
lines dev sh -c 'for f in /dev/* /dev/pts/* /dev/shm/* /dev/mqueue/*; do
  [ -e "$f" ] || [ -L "$f" ] || continue
  if [ -L "$f" ]; then echo "$f -> $(readlink $f)";
  else stat -c "%n %F %a %u %g %t:%T" "$f"; fi; done'
lines etc ls -A /etc
p tty "$(tty 2>&1)"
p mkdir_tmp "$(mkdir /tmp/probe-dir 2>&1 && rmdir /tmp/probe-dir && echo ok)"
p mkdir_devshm "$(mkdir /dev/shm/probe-dir 2>&1 && rmdir /dev/shm/probe-dir && echo ok)"
for f in /mnt/tmpfs /mnt/file /mnt/dir /mnt/rbind /mnt/rbind/sub /mnt/mq; do
  if [ -e $f ]; then p "extra_$f" "$(stat -c '%F %a %u %g' $f)"; fi
done
[ -e /mnt/file ] && p extra_file_content "$(cat /mnt/file)"
[ -e /mnt/dir ] && p extra_dir_list "$(ls /mnt/dir | tr '\n' ' ')"
[ -e /mnt/tmpfs ] && p extra_tmpfs_write "$(touch /mnt/tmpfs/x 2>&1 && echo ok)"
[ -e /mnt/dir ] && p extra_dir_write "$(touch /mnt/dir/x 2>&1 && rm /mnt/dir/x && echo ok)"
[ -e /mnt/tmpfs ] && p extra_tmpfs_exec \
  "$(cp /bin/busybox /mnt/tmpfs/bb 2>&1 && /mnt/tmpfs/bb true 2>&1 && echo ok)"
exit 0
"""


def host_namespaces() -> dict[str, str]:
    """type → `type:[inode]` of the test process, the host's reference."""
    return {n: os.readlink(f"/proc/self/ns/{n}") for n in os.listdir("/proc/self/ns")}


_PROPAGATION = re.compile(r"^(shared|master|propagate_from):\d+$")


def _mountinfo_line(line: str) -> str:
    """Mount point, fstype, source, sorted per-mount and superblock options, propagation.

    Mount ids, parent ids, device numbers, the bind root (it names the bundle's
    host path) and peer group numbers differ from run to run, so they go.
    """
    pre, _, post = line.partition(" - ")
    f = pre.split()
    fstype, source, *rest = post.split()
    super_opts = ",".join(sorted(rest[0].split(","))) if rest else ""
    mnt_opts = ",".join(sorted(f[5].split(",")))
    prop = sorted(_PROPAGATION.sub(r"\1", o) for o in f[6:]) or ["private"]
    return f"{f[4]} {fstype} {source} [{mnt_opts}] [{super_opts}] {','.join(prop)}"


def parse(
    out: str,
    *,
    replace: dict[str, str] | None = None,
    known_ns: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Probe output → dict; repeated keys become sorted lists.

    ``replace`` maps strings that legitimately differ between runs (container id,
    cgroupsPath) to placeholders; ``known_ns`` maps namespace link values to names
    (the host's as "host", a joined netns by its name), anything else is "new".
    """
    known = {v: "host" for v in host_namespaces().values()}
    known.update(known_ns or {})
    raw: dict[str, list[str]] = {}
    for line in out.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            raw.setdefault("_unparsed", []).append(line)
            continue
        for old, new in (replace or {}).items():
            value = value.replace(old, new)
        if key == "mountinfo":
            value = _mountinfo_line(value)
        elif key.startswith("ns_"):
            value = known.get(value, "new")
        elif key == "limits" or key in ("uid_map", "gid_map") or key == "status":
            value = " ".join(value.split())
        raw.setdefault(key, []).append(value)
    result: dict[str, Any] = {}
    for key, values in raw.items():
        result[key] = values[0] if len(values) == 1 else sorted(values)
    return result


def diff(a: dict[str, Any], b: dict[str, Any], a_name: str, b_name: str) -> str:
    """A field-by-field report of what differs, readable in a failing assertion."""
    out: list[str] = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key, "<missing>"), b.get(key, "<missing>")
        if va == vb:
            continue
        if isinstance(va, list) and isinstance(vb, list):
            only_a = [x for x in va if x not in vb]
            only_b = [x for x in vb if x not in va]
            out.append(f"{key}:")
            out += [f"    only {a_name}: {x}" for x in only_a]
            out += [f"    only {b_name}: {x}" for x in only_b]
        else:
            out.append(f"{key}:\n    {a_name}: {va!r}\n    {b_name}: {vb!r}")
    return "\n".join(out)
