"""The webhook sink speaks HTTP/2 to a receiver that offers it (TLS with ALPN, a
real Hypercorn server on loopback trusting a test CA) and HTTP/1.1 to one that
does not."""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers_http import Receiver
from helpers_mqtt import make_certs
from helpers_sinks import score_event, start_app, wait_until, write_config
from standardwebhooks import Webhook

pytest.importorskip("hypercorn", reason="the HTTP/2 receiver needs hypercorn "
                                        "(pip install -e '.[test]')")
pytest.importorskip("h2", reason="HTTP/2 needs the h2 package (pip install 'httpx[http2]')")

from hypercorn.asyncio import serve
from hypercorn.config import Config as HypercornConfig

KEY = b"fedcba9876543210fedcba9876543210"
WHSEC = "whsec_" + base64.b64encode(KEY).decode()


@dataclass
class Seen:
    http_version: str
    connection: tuple[str, int]
    path: str
    headers: dict[str, str]
    body: bytes


class H2Receiver:
    """An ASGI app served by Hypercorn over TLS on 127.0.0.1; records every request
    with the HTTP version and the client end of the connection it came on."""

    def __init__(self) -> None:
        self.seen: list[Seen] = []
        self.port = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.seen.append(Seen(scope["http_version"], tuple(scope["client"]), scope["path"],
                              {k.decode(): v.decode() for k, v in scope["headers"]}, body))
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"


@pytest.fixture
def certs(tmp_path: Path) -> dict[str, Path]:
    made = make_certs(tmp_path / "certs")
    if made is None:
        pytest.skip("openssl is needed to make the test CA and server certificate")
    return made


@pytest.fixture
async def h2(certs: dict[str, Path]) -> AsyncIterator[H2Receiver]:
    receiver = H2Receiver()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    receiver.port = sock.getsockname()[1]
    config = HypercornConfig()
    config.bind = [f"fd://{sock.detach()}"]
    config.certfile = str(certs["server_cert"])
    config.keyfile = str(certs["server_key"])
    config.accesslog = None
    config.errorlog = logging.getLogger("test.hypercorn")
    done = asyncio.Event()
    server = asyncio.create_task(serve(receiver, config, shutdown_trigger=done.wait))
    yield receiver
    done.set()
    await asyncio.wait_for(server, 15)


async def test_deliveries_go_over_one_http2_connection_signed_and_http1_still_works(
        tmp_path: Path, certs: dict[str, Path], h2: H2Receiver) -> None:
    with Receiver() as plain:
        app = await start_app(write_config(tmp_path, f"""
sinks:
  secure: {{type: webhook, url: "{h2.url}/in", secret: {WHSEC}, tls: {{ca_file: {certs['ca']}}}}}
  plain: {{type: webhook, url: "{plain.url}/in", secret: {WHSEC}}}
routes:
  - {{name: all, when: {{type: "*"}}, to: [secure, plain]}}
"""))
        sent = [score_event(f"g{i}", i, home_score=i, away_score=0) for i in range(6)]
        try:
            await app.publish_many(sent)
            await wait_until(lambda: len(h2.seen) == 6 and len(plain.ok()) == 6,
                             what="six deliveries to each receiver")
        finally:
            await app.stop()

    assert {s.http_version for s in h2.seen} == {"2"}
    assert max(Counter(s.connection for s in h2.seen).values()) >= 2, \
        "HTTP/2 requests should share a connection"
    verifier = Webhook(WHSEC)
    by_id = {e.id: e for e in sent}
    for s in h2.seen:
        assert s.path == "/in"
        assert verifier.verify(s.body, s.headers) == by_id[s.headers["webhook-id"]].to_dict()
    assert sorted(s.headers["webhook-id"] for s in h2.seen) == sorted(by_id)
    assert sorted(r.headers["webhook-id"] for r in plain.ok()) == sorted(by_id)


async def test_a_missing_ca_file_is_a_clear_error_and_the_other_sinks_run(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "out.csv"
    app = await start_app(write_config(tmp_path, f"""
sinks:
  secure: {{type: webhook, url: "https://127.0.0.1:9/in", tls: {{ca_file: nowhere/ca.pem}}}}
  csv: {{type: csv, path: "{out}"}}
routes:
  - {{name: all, when: {{type: "*"}}, to: [secure, csv]}}
"""))
    try:
        await app.publish_many([score_event("g1", 1, home_score=1, away_score=0)])
        await wait_until(lambda: out.exists() and "g1" in out.read_text(), what="the CSV row")
    finally:
        await app.stop()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("tls.ca_file" in m and str(tmp_path / "nowhere" / "ca.pem") in m
               and "does not exist" in m for m in errors), errors
