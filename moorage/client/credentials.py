"""The credentials `login` (moor's or docker's) stored in config.json's "auths", as the
X-Registry-Auth header pull and push send for an image's registry."""

from __future__ import annotations

INDEX_SERVER = "https://index.docker.io/v1/"


def stored(key: str) -> tuple[str, str]:
    """(username, password) saved for `key`, or empty strings."""
    import base64

    from moorage.client.contexts import read_config

    entry = (read_config().get("auths") or {}).get(key) or {}
    user, _, password = base64.b64decode(entry.get("auth") or "").decode().partition(":")
    return user, password


def registry_of(reference: str) -> str:
    """The key an image reference's registry is stored under (Hub's v1 URL for Hub)."""
    first = reference.split("/", 1)[0]
    return first if "/" in reference and ("." in first or ":" in first
                                          or first == "localhost") else INDEX_SERVER


def auth_header(reference: str) -> dict[str, str]:
    """X-Registry-Auth (base64url JSON) for the registry of `reference`; empty without
    stored credentials."""
    registry = registry_of(reference)
    user, password = stored(registry)
    if not user:
        return {}
    import base64

    from moorage import json_codec

    doc = json_codec.dumps({"username": user, "password": password, "serveraddress": registry})
    return {"X-Registry-Auth": base64.urlsafe_b64encode(doc.encode()).decode()}
