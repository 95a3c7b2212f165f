"""The distribution-spec error codes and the JSON body they travel in.

distribution-spec v1.1 "Error Codes": every failure is
``{"errors": [{"code": ..., "message": ..., "detail": ...}]}``. Statuses and
messages are those of the CNCF distribution registry (registry/api/errcode and
registry/api/v2/errors.go), so clients that show the message show the same text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

# code → (HTTP status, message)
CODES: dict[str, tuple[int, str]] = {
    "BLOB_UNKNOWN": (404, "blob unknown to registry"),
    "BLOB_UPLOAD_INVALID": (400, "blob upload invalid"),
    "BLOB_UPLOAD_UNKNOWN": (404, "blob upload unknown to registry"),
    "DIGEST_INVALID": (400, "provided digest did not match uploaded content"),
    "MANIFEST_BLOB_UNKNOWN": (400, "blob unknown to registry"),
    "MANIFEST_INVALID": (400, "manifest invalid"),
    "MANIFEST_UNKNOWN": (404, "manifest unknown"),
    "NAME_INVALID": (400, "invalid repository name"),
    "NAME_UNKNOWN": (404, "repository name not known to registry"),
    "SIZE_INVALID": (400, "provided length did not match content length"),
    "UNAUTHORIZED": (401, "authentication required"),
    "DENIED": (403, "requested access to the resource is denied"),
    "UNSUPPORTED": (405, "The operation is unsupported."),
    # The distribution registry's own codes for a bad `n` and for unmatched paths.
    "PAGINATION_NUMBER_INVALID": (400, "invalid number of results requested"),
    "NOT_FOUND": (404, "page not found"),
    "UNAVAILABLE": (503, "service unavailable"),
}


class RegistryError(Exception):
    """A failure the client sees as one spec error; ``status`` overrides the code's default."""

    def __init__(self, code: str, message: str | None = None, *, detail: Any = None,
                 status: int | None = None, headers: Mapping[str, str] | None = None) -> None:
        default_status, default_message = CODES[code]
        self.code = code
        self.message = message or default_message
        self.detail = detail
        self.status = status or default_status
        self.headers = dict(headers or {})
        super().__init__(f"{code}: {self.message}")

    def response(self) -> web.Response:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.detail is not None:
            body["detail"] = self.detail
        return web.Response(status=self.status, headers=self.headers,
                            text=json.dumps({"errors": [body]}),
                            content_type="application/json")
