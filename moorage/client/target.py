"""Which daemon a command talks to, as the docker CLI decides.

`-H` beats `--context`, which beats MOOR_HOST/DOCKER_HOST, then DOCKER_CONTEXT,
then `currentContext` in config.json, then the default socket.
"""

from __future__ import annotations

import os

from moorage.client.endpoint import DEFAULT_HOST, Endpoint, normalize_host
from moorage.client.errors import EndpointError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from moorage.client.tls_options import TLSOptions


def resolve(host: str | None, context: str | None, tls: TLSOptions | None) -> Endpoint:
    if host and context:
        raise EndpointError('conflicting options: cannot specify both "--host" and "--context"')
    if host:
        return Endpoint(normalize_host(host), tls)
    if not context:
        env_host = os.environ.get("MOOR_HOST") or os.environ.get("DOCKER_HOST")
        if env_host:
            return Endpoint(normalize_host(env_host), tls)
        from moorage.client.contexts import current

        context = current()
    if context and context != "default":
        from moorage.client.contexts import load

        return load(context)
    return Endpoint(DEFAULT_HOST, tls)
