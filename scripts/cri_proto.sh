#!/bin/sh
# Regenerates moorage/cri/proto/api_pb2{,_grpc}.py from the CRI's api.proto (k8s.io/cri-api,
# Kubernetes 1.26), kept verbatim beside them. gogoproto's options only steer Go's code
# generator: they are stripped so the Python modules need no gogo.proto.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/moorage/cri/proto"
sed -e '/^import "github.com\/gogo/d' -e '/^option (gogoproto/d' \
    -e 's/ *\[(gogoproto[^]]*\]//' \
    "$here/moorage/cri/proto/api.proto" > "$tmp/moorage/cri/proto/api.proto"
"${PYTHON:-$here/.venv/bin/python}" -m grpc_tools.protoc -I "$tmp" \
    --python_out="$here" --grpc_python_out="$here" "$tmp/moorage/cri/proto/api.proto"
