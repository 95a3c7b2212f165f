"""``moor registry``: an OCI distribution (v1.1) and Docker Registry HTTP API v2 server.

    python -m moorage.registry serve --listen 127.0.0.1:5000 --storage DIR
        [--htpasswd FILE] [--tls-cert FILE --tls-key FILE]
        [--proxy-remote URL [--proxy-username U --proxy-password P]]
    python -m moorage.registry gc --storage DIR [--grace SECONDS] [--dry-run]

Entry point: ``moorage.registry.cli.main(argv)``, argv being what follows
``registry``. Besides /v2 the server answers:

* ``GET /moor/token?service=…&scope=…``: the bearer-token service (auth.py has the policy);
* ``POST /moor/registry/gc[?grace=SECONDS][&dry_run=1]``: online garbage collection (gc.py);
* ``GET /metrics``: Prometheus counters (observe.py).

Modules: app (routing, middleware), api_blobs and api_manifests (handlers),
storage and uploads (the filesystem), manifests and names (pure validation),
auth, proxy (pull-through), gc, observe, cli.
"""
