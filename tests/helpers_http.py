"""A real HTTP/1.1 receiver on loopback for webhook tests and benchmarks.

It runs an asyncio server (parsing with h11) on its own thread and event loop,
so it answers whatever the test's own loop is doing, and can be scripted:

    with Receiver() as rx:
        rx.script(500, 500, Reply(429, headers={"retry-after": "1"}))  # then 200s
        rx.handler = lambda req: 400 if req.json()["data"]["bad"] else None
        ... rx.url ...
        rx.wait_for(lambda: len(rx.ids()) == 10)

Every request is recorded (method, path, headers, body, arrival time, status
answered). ``Reply(hang=True)`` never answers until the receiver stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import h11
import orjson


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    hang: bool = False


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    status: int = 0
    """What the receiver answered (0 while it has not, or when it hung)."""

    def json(self) -> Any:
        return orjson.loads(self.body)


Handler = Callable[[Request], "Reply | int | None"]


class Receiver:
    """A scriptable HTTP server on 127.0.0.1 (see the module docstring)."""

    def __init__(self, default: Reply | int = 200, delay: float = 0.0) -> None:
        self.default = _reply(default)
        self.delay = delay
        self.handler: Handler | None = None
        self.requests: list[Request] = []
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._release: asyncio.Event | None = None
        self._closing: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    # -- control ----------------------------------------------------------------------

    def start(self, port: int = 0) -> Receiver:
        ready = threading.Event()

        def main() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            self._release = asyncio.Event()
            self._closing = asyncio.Event()
            self._server = loop.run_until_complete(
                asyncio.start_server(self._serve, "127.0.0.1", port))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            loop.close()

        self._thread = threading.Thread(target=main, name="http-receiver", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the test HTTP receiver did not start")
        return self

    def stop(self) -> None:
        loop = self._loop
        if loop is None or self._thread is None:
            return

        async def shutdown() -> None:
            assert self._release and self._closing and self._server
            self._release.set()
            self._closing.set()
            self._server.close()
            for w in list(self._writers):
                w.close()
            # let every connection's task end (one may be in a reply's delay) before the
            # loop closes, so none is left pending
            serving = asyncio.all_tasks() - {asyncio.current_task()}
            if serving:
                await asyncio.wait(serving, timeout=10)
            loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), loop)
        self._thread.join(10)
        self._loop = None

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, *replies: Reply | int) -> None:
        """Answer the next requests with these, in order; then ``handler`` or ``default``."""
        with self._lock:
            self._script.extend(_reply(r) for r in replies)

    def release(self) -> None:
        """Let hung requests go (they are then answered by closing the connection)."""
        if self._loop is not None and self._release is not None:
            self._loop.call_soon_threadsafe(self._release.set)

    # -- what arrived -------------------------------------------------------------------

    def ok(self) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if 200 <= r.status < 300]

    def ids(self, *, delivered: bool = True) -> set[str]:
        """``webhook-id`` of the requests answered 2xx (or of all requests)."""
        with self._lock:
            reqs = [r for r in self.requests if not delivered or 200 <= r.status < 300]
        return {r.headers.get("webhook-id", "") for r in reqs}

    def event_ids(self) -> list[str]:
        """Ids of the event envelopes in the bodies answered 2xx (batches unpacked)."""
        out: list[str] = []
        for r in self.ok():
            doc = r.json()
            for item in doc if isinstance(doc, list) else [doc]:
                out.append(item["id"])
        return out

    def wait_for(self, condition: Callable[[], bool], timeout: float = 10.0,
                 what: str = "condition") -> None:
        """Poll ``condition`` until true; AssertionError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}; "
                                     f"{len(self.requests)} request(s) arrived")
            time.sleep(0.01)

    # -- serving ------------------------------------------------------------------------

    def _choose(self, req: Request) -> Reply:
        with self._lock:
            self.requests.append(req)
            if self._script:
                return self._script.popleft()
        if self.handler is not None:
            got = self.handler(req)
            if got is not None:
                return _reply(got)
        return _reply(self.default)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                req = await self._read_request(conn, reader)
                if req is None:
                    return
                reply = self._choose(req)
                delay = reply.delay or self.delay
                if delay and not await self._pause(delay):
                    return
                if reply.hang:
                    assert self._release is not None
                    await self._release.wait()
                    return
                headers = [("content-length", str(len(reply.body)))]
                headers += list(reply.headers.items())
                writer.write(conn.send(h11.Response(status_code=reply.status, headers=headers)))
                writer.write(conn.send(h11.Data(data=reply.body)))
                writer.write(conn.send(h11.EndOfMessage()))
                await writer.drain()
                with self._lock:
                    req.status = reply.status
                if conn.our_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except (ConnectionError, h11.ProtocolError, asyncio.IncompleteReadError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _pause(self, seconds: float) -> bool:
        """Wait ``seconds``; False when the receiver stops meanwhile."""
        assert self._closing is not None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._closing.wait()
        return not self._closing.is_set()

    @staticmethod
    async def _read_request(conn: h11.Connection, reader: asyncio.StreamReader) -> Request | None:
        head: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await reader.read(65536)
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                return Request(head.method.decode(), head.target.decode(),
                               {k.decode().lower(): v.decode() for k, v in head.headers},
                               bytes(body), time.monotonic())
            elif isinstance(event, (h11.ConnectionClosed, h11.PAUSED)):
                return None


def _reply(r: Reply | int) -> Reply:
    return Reply(r) if isinstance(r, int) else r


def serve_in_process(port_queue: Any, delay: float = 0.0) -> None:
    """Run a 200-answering receiver until killed; puts its port on ``port_queue``.
    For benchmarks, where the receiver must not share the sender's interpreter."""
    rx = Receiver(delay=delay).start()
    port_queue.put(rx.port)
    threading.Event().wait()
