"""The realistic application's web service: counts visits in Redis and stores each one in
PostgreSQL; only Debian's python3 and psql (no client libraries)."""

import http.server
import socket
import subprocess

PSQL = "/usr/lib/postgresql/15/bin/psql"


def redis_incr(key: str) -> int:
    with socket.create_connection(("redis", 6379), timeout=5) as conn:
        conn.sendall(f"*2\r\n$4\r\nINCR\r\n${len(key)}\r\n{key}\r\n".encode())
        reply = conn.makefile("rb").readline()
    return int(reply[1:])


def sql(statement: str) -> str:
    return subprocess.run([PSQL, "-h", "db", "-U", "postgres", "-tAc", statement],
                          check=True, capture_output=True, text=True).stdout.strip()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/health":
            body = b"ok\n"
        else:
            visit = redis_incr("visits")
            sql(f"INSERT INTO visits (n) VALUES ({visit})")
            body = f"visit {visit}, stored {sql('SELECT count(*) FROM visits')}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


sql("CREATE TABLE IF NOT EXISTS visits (n integer, at timestamptz DEFAULT now())")
http.server.ThreadingHTTPServer(("0.0.0.0", 8000), Handler).serve_forever()
