"""Structured access logs and Prometheus metrics.

aiohttp calls the access logger after each response is sent, with the bytes
actually written, so one hook gives both the JSON log line and the counters.
Metrics use the Prometheus text exposition format, version 0.0.4.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

access_log = logging.getLogger("moor.registry.access")


@dataclass
class Metrics:
    requests: Counter[tuple[str, int]] = field(default_factory=Counter)
    bytes_served: int = 0
    blobs_stored: int = 0
    gc_runs: int = 0
    gc_blobs_deleted: int = 0

    def render(self) -> str:
        lines = ["# HELP moor_registry_http_requests_total HTTP requests by method and status.",
                 "# TYPE moor_registry_http_requests_total counter"]
        for (method, status), count in sorted(self.requests.items()):
            lines.append(f'moor_registry_http_requests_total{{method="{method}",'
                         f'status="{status}"}} {count}')
        for name, help_text, value in (
            ("bytes_served_total", "Response bytes sent, headers included.", self.bytes_served),
            ("blobs_stored_total", "Blobs committed by uploads and the pull-through cache.",
             self.blobs_stored),
            ("gc_runs_total", "Garbage collection passes.", self.gc_runs),
            ("gc_blobs_deleted_total", "Blobs deleted by garbage collection.",
             self.gc_blobs_deleted),
        ):
            lines += [f"# HELP moor_registry_{name} {help_text}",
                      f"# TYPE moor_registry_{name} counter", f"moor_registry_{name} {value}"]
        return "\n".join(lines) + "\n"


METRICS = web.AppKey("metrics", Metrics)


class AccessLogger(AbstractAccessLogger):
    def log(self, request: web.BaseRequest, response: web.StreamResponse, time_: float) -> None:
        metrics = request.app[METRICS] if isinstance(request, web.Request) else None
        if metrics is not None:
            metrics.requests[(request.method, response.status)] += 1
            metrics.bytes_served += response.body_length
        self.logger.info(json.dumps({
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "remote": request.remote, "method": request.method, "path": request.raw_path,
            "status": response.status, "bytes": response.body_length,
            "duration_ms": round(time_ * 1000, 2),
            "user_agent": request.headers.get("User-Agent", ""),
            "user": request.get("user"),
        }))
