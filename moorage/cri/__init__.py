"""The Kubernetes CRI (v1) over gRPC: kubelet's runtime and image services translated
onto the engine's own services, as `api/` translates the Docker Engine API.

`server` (the gRPC server on its unix socket, one error mapping), `backends` (what
the CRI needs of the engine: typing Protocols, wired by `daemon/main.py`), `records`
(what the CRI keeps beside the engine's records: pod and container metadata), `pods`
(sandboxes: a pause container holding the namespaces), `containers`, `execsync`,
`images`, `cni` (network plugins per the CNI specification), `convert` (CRI messages
↔ the engine's models). `proto/` holds the CRI's api.proto (Kubernetes 1.26) and the
modules generated from it (`scripts/cri_proto.sh`).
"""
