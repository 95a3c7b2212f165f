"""The terminal: a websocket from xterm.js to a TTY exec in the container.

Frames from the page are JSON: {"type": "input", "data": "..."} or
{"type": "resize", "cols": C, "rows": R}; the exec's output goes back as binary frames.
The exec's hijacked socket is read by a thread (the client is blocking, and its socket may
be TLS or ssh), which hands the bytes to the loop.
"""

from __future__ import annotations

import _socket
import asyncio
import contextlib
import json
import threading

from aiohttp import WSMsgType, web

from moorage.dashboard.engine import APIError
from moorage.dashboard.keys import ENGINE

READ_SIZE = 65536
DEFAULT_SHELL = "/bin/sh"


def _pump(sock: _socket.socket, loop: asyncio.AbstractEventLoop,
          out: asyncio.Queue[bytes | None]) -> None:
    try:
        while data := sock.recv(READ_SIZE):
            loop.call_soon_threadsafe(out.put_nowait, data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(out.put_nowait, None)


async def websocket(request: web.Request) -> web.WebSocketResponse:
    engine = request.app[ENGINE]
    container = request.match_info["id"]
    command = request.query.get("cmd", DEFAULT_SHELL).split() or [DEFAULT_SHELL]
    ws = web.WebSocketResponse(heartbeat=30)
    await ws.prepare(request)
    try:
        created = await engine.post(f"/containers/{container}/exec", body={
            "AttachStdin": True, "AttachStdout": True, "AttachStderr": True, "Tty": True,
            "Cmd": command, "Env": ["TERM=xterm-256color"]})
        exec_id = created["Id"]
        sock, early = await engine.hijack_exec(exec_id)
    except Exception as err:  # the engine's refusal (not running, no such shell…)
        await ws.send_str(json.dumps({"error": getattr(err, "message", str(err))}))
        await ws.close()
        return ws
    loop = asyncio.get_running_loop()
    output: asyncio.Queue[bytes | None] = asyncio.Queue()
    if early:
        output.put_nowait(early)
    threading.Thread(target=_pump, args=(sock, loop, output), daemon=True,
                     name="dashboard-terminal").start()

    async def forward() -> None:
        while (data := await output.get()) is not None:
            await ws.send_bytes(data)
        await ws.close()

    forwarding = asyncio.create_task(forward())
    try:
        async for message in ws:
            if message.type != WSMsgType.TEXT:
                continue
            frame = json.loads(message.data)
            if frame.get("type") == "input":
                data = str(frame.get("data", "")).encode()
                await loop.run_in_executor(None, sock.sendall, data)
            elif frame.get("type") == "resize":
                with contextlib.suppress(APIError):  # the exec may have just ended
                    await engine.post(f"/exec/{exec_id}/resize",
                                      {"h": int(frame["rows"]), "w": int(frame["cols"])})
    except (OSError, ValueError, KeyError):
        pass
    finally:
        with contextlib.suppress(OSError):
            sock.shutdown(_socket.SHUT_RDWR)
        sock.close()
        forwarding.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await forwarding
    return ws
