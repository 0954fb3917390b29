"""A scriptable OpenAI-compatible chat-completions server on 127.0.0.1, for judge tests.

Each test says how the server answers call ``n`` (status, body, delay) and reads back what it
received and how many requests it held at once. It binds port 0 on the loopback interface, so
nothing leaves the machine.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PATH = "/v1/chat/completions"


@dataclass(frozen=True)
class Reply:
    """How to answer one call. ``trickle_s`` > 0 sends the body one byte per ``trickle_s``
    seconds after prompt headers (or, with ``trickle_headers``, the headers too), as a hostile
    or overloaded server might: each read returns in time, the response never ends."""

    status: int = 200
    body: bytes = b""
    delay_s: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()
    trickle_s: float = 0.0
    trickle_headers: bool = False


def completion(content: object, delay_s: float = 0.0) -> Reply:
    """A well-formed chat completion whose message content is ``content``."""
    body = {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "model": "test-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
    }
    return Reply(200, json.dumps(body).encode(), delay_s)


Script = Callable[[int, dict[str, Any]], Reply]
"""Call number (from 0) and request body -> the reply."""


class ChatServer:
    """The server's state; see :func:`chat_server`."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.paths: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.url = ""

    @property
    def calls(self) -> int:
        return len(self.paths)

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length", 0))
        raw = handler.rfile.read(length)
        with self.lock:
            call = len(self.paths)
            self.paths.append(handler.path)
            self.headers.append(dict(handler.headers.items()))
            self.bodies.append(json.loads(raw) if raw else {})
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if handler.path != PATH:
                reply = Reply(404, b'{"error": "not found"}')
            else:
                reply = self.script(call, self.bodies[call])
            if reply.delay_s:
                self.stop.wait(reply.delay_s)
        finally:
            with self.lock:
                self.in_flight -= 1
        if reply.trickle_s:
            self.trickle(handler, reply)
            return
        try:
            handler.send_response(reply.status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers:
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)

    def trickle(self, handler: BaseHTTPRequestHandler, reply: Reply) -> None:
        head = (
            f"HTTP/1.1 {reply.status} OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(reply.body)}\r\n\r\n"
        ).encode()
        slow = head + reply.body if reply.trickle_headers else reply.body
        try:
            if not reply.trickle_headers:
                handler.wfile.write(head)
                handler.wfile.flush()
            for byte in slow:
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
                if self.stop.wait(reply.trickle_s):
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up
        handler.close_connection = True


@contextmanager
def chat_server(script: Script) -> Iterator[ChatServer]:
    """Runs a server answering with ``script`` until the block ends; ``.url`` is its API root."""
    state = ChatServer(script)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            state.handle(self)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01})
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield state
    finally:
        state.stop.set()
        server.shutdown()
        server.server_close()
        thread.join()


def answer(content: str) -> Script:
    """A script that always replies ``content``."""
    return lambda call, body: completion(content)
