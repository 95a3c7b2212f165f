#!/bin/sh
# critest (cri-tools v1.26.1, built outside the project) against moord's CRI and, for
# comparison, a private containerd 1.6, in a network namespace of its own: critest's
# upstream image names are pulled through a mirror on 127.0.0.1 (a distribution registry
# holding busybox stand-ins) and nothing can reach any other address.
#
#   sh scripts/critest.sh /tmp/critools/build/critest moord|containerd [ginkgo args...]
#
# Build critest first, offline, in scratch space:
#   git -C <cri-tools mirror> archive v1.26.1 | tar x -C /tmp/critools
#   cd /tmp/critools && GOFLAGS=-mod=vendor GOPROXY=off go test -c -o build/critest ./cmd/critest
set -eu
critest=$1; runtime=$2; shift 2
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${CRITEST_IN_NETNS:-}" ]; then
    # Debian's dynamically linked busybox, for the stand-ins (critest_images.py), fetched
    # here: inside the network namespace no registry can be reached.
    debs=${TMPDIR:-/tmp}/critest-debs
    mkdir -p "$debs"
    ls "$debs"/busybox_*.deb >/dev/null 2>&1 || (cd "$debs" && apt-get download -q busybox)
    export CRITEST_BUSYBOX_DEB="$(ls "$debs"/busybox_*.deb | head -n 1)"
    CRITEST_IN_NETNS=1 exec unshare --net --fork sh "$0" "$critest" "$runtime" "$@"
fi
ip link set lo up
base=$(mktemp -d /tmp/critest-XXXXXX)
py=$here/.venv/bin/python
cleanup() {
    set +e  # every step runs, whatever the one before said
    for pid in ${runtime_pid:-} ${registry_pid:-}; do
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    umount -R "$base" 2>/dev/null
    rm -rf "$base"
    # containerd's parent of pods without a cgroup parent of their own (critest's)
    if [ "$runtime" = containerd ] && [ -z "$k8s_cgroups_before" ]; then
        for d in /sys/fs/cgroup/*/k8s.io /sys/fs/cgroup/k8s.io; do
            [ -d "$d" ] && rmdir "$d" 2>/dev/null
        done
    fi
    # and the folder of its pods' namespaces, when it made it (empty again by now)
    [ "$run_netns_before" = no ] && rmdir /run/netns 2>/dev/null
}
run_netns_before=$([ -d /run/netns ] && echo yes || echo no)
k8s_cgroups_before=$(ls -d /sys/fs/cgroup/*/k8s.io /sys/fs/cgroup/k8s.io 2>/dev/null || true)
trap cleanup EXIT

# Stand-ins for critest's images (scripts/critest_images.py), served by a registry here.
PYTHONPATH=$here "$py" "$here/scripts/critest_images.py" "$base" "$CRITEST_BUSYBOX_DEB" \
    > "$base/images.txt"
cat > "$base/registry.yml" <<YML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $base/registry
http:
  addr: 127.0.0.1:5000
YML
docker-registry serve "$base/registry.yml" >"$base/registry.log" 2>&1 &
registry_pid=$!
sleep 1
while read -r name file; do
    # containerd imports the pause image; moord pulls it as registry.k8s.io/pause:1
    case $name in moorage.test/*) pause=$base/$file;; esac
    skopeo copy -q --dest-tls-verify=false "docker-archive:$base/$file" \
        "docker://127.0.0.1:5000/${name#*/}"
done < "$base/images.txt"

mkdir -p "$base/cni"
cat > "$base/cni/10-critest.conflist" <<JSON
{"cniVersion": "0.4.0", "name": "critest", "plugins": [
 {"type": "bridge", "bridge": "critest0", "isGateway": true, "ipMasq": false,
  "ipam": {"type": "host-local", "dataDir": "$base/ipam", "ranges": [[{"subnet": "10.88.0.0/16"}]]}},
 {"type": "portmap", "capabilities": {"portMappings": true}},
 {"type": "loopback"}]}
JSON
sock=$base/cri.sock
if [ "$runtime" = moord ]; then
    # The same two registries through the mirror as containerd's config (crikit).
    cat > "$base/daemon.json" <<JSON
{"registry-mirrors-by-registry": {"registry.k8s.io": ["http://127.0.0.1:5000"],
                                  "gcr.io": ["http://127.0.0.1:5000"]}}
JSON
    "$here/.venv/bin/moord" --data-root "$base/data" --exec-root "$base/exec" \
        -H "unix://$base/moord.sock" --config-file "$base/daemon.json" --bridge critestm0 \
        --cri-socket "unix://$sock" --cni-conf-dir "$base/cni" --cni-bin-dir /usr/lib/cni \
        --cri-sandbox-image registry.k8s.io/pause:1 \
        >"$base/runtime.log" 2>&1 &
    runtime_pid=$!
    while [ ! -S "$sock" ]; do sleep 0.1; done
else
    sock=$base/containerd.sock
    PYTHONPATH=$here/tests:$here/tests/engine:$here/tests/cri "$py" -c \
        'import sys; from crikit import containerd_config; print(containerd_config(*sys.argv[1:]))' \
        "$base" "$base/cni" http://127.0.0.1:5000 > "$base/containerd.toml"
    containerd --config "$base/containerd.toml" >"$base/runtime.log" 2>&1 &
    runtime_pid=$!
    while [ ! -S "$sock" ]; do sleep 0.1; done
    sleep 1
    ctr -a "$sock" -n k8s.io images import "$pause" >/dev/null
fi
"$critest" --runtime-endpoint "unix://$sock" --image-endpoint "unix://$sock" \
    -ginkgo.no-color "$@" 2>&1 | tee "$base/critest.log" | grep -E "^(Ran|FAIL|PASS|SUCCESS|\[FAIL\])|Passed|Summarizing|\[It\]" || true
cp "$base/critest.log" "/tmp/critest-$runtime.log"
cp "$base/runtime.log" "/tmp/critest-$runtime-runtime.log"
