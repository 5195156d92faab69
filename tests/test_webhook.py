"""The webhook sink against a real HTTP receiver on loopback: signatures, retries,
dead letters, ordering, batching, limits and templates."""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
import time
from pathlib import Path

import pytest
from helpers_http import Receiver, Reply
from helpers_sinks import boltrouter, score_event, start_app, wait_until, write_config
from standardwebhooks import Webhook

from boltrouter.app import App
from boltrouter.sinks.outbox import Outbox

KEY = b"0123456789abcdef0123456789abcdef"
WHSEC = "whsec_" + base64.b64encode(KEY).decode()


FAST_BACKOFF = ", backoff: {base: 10ms, max: 40ms}"


def hook_config(url: str, extra: str = "", route: str = "") -> str:
    if "backoff:" not in extra:
        extra = FAST_BACKOFF + extra
    return f"""
sinks:
  hook: {{type: webhook, url: "{url}"{extra}}}
routes:
  - {{name: all, when: {{type: "*"}}, to: {route or "hook"}}}
"""


@pytest.fixture
def rx():
    with Receiver() as receiver:
        yield receiver


async def hook_app(tmp_path: Path, url: str, extra: str = "", route: str = "") -> App:
    return await start_app(write_config(tmp_path, hook_config(url, extra, route)))


def events(n: int, start: int = 0) -> list:
    return [score_event(f"g{i}", i, home_score=i, away_score=0) for i in range(start, start + n)]


async def test_signed_deliveries_verify_with_the_standard_webhooks_library(tmp_path, rx) -> None:
    app = await hook_app(tmp_path, rx.url + "/in", f", secret: {WHSEC}")
    sent = events(3)
    await app.publish_many(sent)
    await wait_until(lambda: len(rx.ok()) == 3, what="three deliveries")
    await app.stop()

    verifier = Webhook(WHSEC)
    for req, event in zip(sorted(rx.ok(), key=lambda r: r.json()["id"]),
                          sorted(sent, key=lambda e: e.id), strict=True):
        assert req.path == "/in" and req.method == "POST"
        assert req.headers["content-type"] == "application/json"
        assert req.headers["webhook-id"] == event.id
        assert verifier.verify(req.body, req.headers) == event.to_dict()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sink_stats(app: App) -> dict:
    return app.sinks["hook"].stats()


def dead_letters(tmp_path: Path) -> list:
    with Outbox(tmp_path / "webhook-hook.db", "hook") as outbox:
        outbox.open()
        return outbox.dead_letters()


async def test_a_plain_text_secret_signs_with_its_own_bytes(tmp_path, rx) -> None:
    app = await hook_app(tmp_path, rx.url, ", secret: 'correct horse battery staple'")
    event = events(1)[0]
    await app.publish(event)
    await wait_until(lambda: rx.ok(), what="a delivery")
    await app.stop()
    req = rx.ok()[0]
    assert Webhook(b"correct horse battery staple").verify(req.body, req.headers)["id"] == event.id


async def test_without_a_secret_requests_carry_id_and_timestamp_but_no_signature(tmp_path,
                                                                                 rx) -> None:
    app = await hook_app(tmp_path, rx.url)
    event = events(1)[0]
    await app.publish(event)
    await wait_until(lambda: rx.ok(), what="a delivery")
    await app.stop()
    headers = rx.ok()[0].headers
    assert headers["webhook-id"] == event.id
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 300
    assert "webhook-signature" not in headers


async def test_a_receiver_failing_for_a_while_then_recovering_gets_every_event(tmp_path,
                                                                               rx) -> None:
    rx.script(*[500] * 25, Reply(503, b"maintenance"), *[502] * 5)
    app = await hook_app(tmp_path, rx.url, f", secret: {WHSEC}, max_attempts: 100")
    sent = events(20)
    await app.publish_many(sent)
    await wait_until(lambda: rx.ids() >= {e.id for e in sent}, timeout=30,
                     what="every event delivered")
    await wait_until(lambda: sink_stats(app)["outbox"] == 0, what="an empty outbox")
    await app.stop()
    assert sink_stats(app)["retries_total"] >= 31
    assert sink_stats(app)["dead_letters"] == 0
    verifier = Webhook(WHSEC)
    assert {verifier.verify(r.body, r.headers)["id"] for r in rx.ok()} == {e.id for e in sent}


async def test_retry_after_of_a_429_is_honoured(tmp_path, rx) -> None:
    rx.script(Reply(429, b"slow down", headers={"retry-after": "1"}))
    app = await hook_app(tmp_path, rx.url)
    await app.publish(events(1)[0])
    await wait_until(lambda: rx.ok(), what="the retried delivery")
    await app.stop()
    first, second = rx.requests[:2]
    assert first.status == 429 and second.status == 200
    assert second.at - first.at >= 1.0


@pytest.mark.parametrize("status", [408, 500, 502, 503, 504])
async def test_transient_statuses_are_retried(tmp_path, rx, status: int) -> None:
    rx.script(status, status)
    app = await hook_app(tmp_path, rx.url)
    event = events(1)[0]
    await app.publish(event)
    await wait_until(lambda: rx.ok(), what="the delivery after two failures")
    await app.stop()
    assert [r.status for r in rx.requests] == [status, status, 200]
    assert {r.headers["webhook-id"] for r in rx.requests} == {event.id}


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422])
async def test_other_4xx_go_to_the_dead_letters_at_once(tmp_path, rx, status: int) -> None:
    rx.script(Reply(status, b'{"error": "no such hook"}'))
    app = await hook_app(tmp_path, rx.url)
    event = events(1)[0]
    await app.publish(event)
    await wait_until(lambda: sink_stats(app)["dead_letters"] == 1, what="a dead letter")
    await app.stop()
    assert len(rx.requests) == 1
    [dead] = dead_letters(tmp_path)
    assert (dead.event_id, dead.last_status, dead.attempts) == (event.id, status, 1)
    assert dead.response == '{"error": "no such hook"}'
    assert f"HTTP {status}" in dead.reason


async def test_a_request_that_times_out_is_retried(tmp_path, rx) -> None:
    rx.script(Reply(hang=True))
    app = await hook_app(tmp_path, rx.url, ", timeout: 300ms")
    event = events(1)[0]
    await app.publish(event)
    await wait_until(lambda: rx.ok(), what="the delivery after a timeout")
    await app.stop()
    assert [r.headers["webhook-id"] for r in rx.requests] == [event.id, event.id]
    assert sink_stats(app)["retries_total"] == 1


async def test_a_refused_connection_is_retried_until_the_receiver_comes_up(tmp_path) -> None:
    port = free_port()
    app = await hook_app(tmp_path, f"http://127.0.0.1:{port}/in", ", max_attempts: 1000")
    event = events(1)[0]
    await app.publish(event)
    await wait_until(lambda: sink_stats(app)["retries_total"] >= 2, what="failed attempts")
    with Receiver().start(port) as rx:
        await wait_until(lambda: rx.ok(), what="the delivery once the receiver is up")
        await app.stop()
    assert rx.ok()[0].json()["id"] == event.id


async def test_attempts_and_age_are_bounded(tmp_path, rx) -> None:
    rx.default = Reply(503, b"down for maintenance")
    app = await hook_app(tmp_path, rx.url, ", max_attempts: 3")
    await app.publish(events(1)[0])
    await wait_until(lambda: sink_stats(app)["dead_letters"] == 1, what="a dead letter")
    await app.stop()
    assert len(rx.requests) == 3
    [dead] = dead_letters(tmp_path)
    assert dead.attempts == 3 and dead.last_status == 503
    assert "gave up after 3 attempts" in dead.reason
    assert dead.response == "down for maintenance"

    aged = tmp_path / "aged"
    aged.mkdir()
    app = await hook_app(aged, rx.url, ", max_age: 300ms, backoff: {base: 100ms, max: 100ms}")
    await app.publish(events(1)[0])
    await wait_until(lambda: sink_stats(app)["dead_letters"] == 1, what="an expired event")
    await app.stop()
    [dead] = dead_letters(aged)
    assert dead.reason.startswith("expired") and dead.last_status == 503
