"""The webhook sink against a real HTTP receiver on loopback: signatures, retries,
dead letters, ordering, batching, limits and templates."""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
import sqlite3
import time
from pathlib import Path

import orjson
import pytest
from helpers_http import Receiver, Reply
from helpers_sinks import boltrouter, score_event, start_app, wait_until, write_config
from standardwebhooks import Webhook

from boltrouter.app import App
from boltrouter.config import ConfigErrors, load_config
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
    # acknowledged deliveries feed the latency histograms of /metrics
    assert app.metrics.histogram("sink_latency_seconds", sink="hook").count == 3
    assert app.metrics.histogram("feed_to_sink_latency_seconds", sink="hook").count == 3

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


async def test_retry_after_of_a_429_pauses_the_whole_sink(tmp_path, rx) -> None:
    rx.script(Reply(429, b"slow down", headers={"retry-after": "1"}))
    app = await hook_app(tmp_path, rx.url, ", concurrency: 1")
    sent = events(3)
    await app.publish_many(sent)
    await wait_until(lambda: len(rx.ok()) == 3, what="every event after the pause")
    await app.stop()
    first, *rest = rx.requests
    assert first.status == 429 and [r.status for r in rest] == [200, 200, 200]
    assert all(r.at - first.at >= 1.0 for r in rest)
    assert rx.ids() == {e.id for e in sent}


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
    assert rx.requests[0].status == 0                   # never answered
    assert {r.headers["webhook-id"] for r in rx.requests} == {event.id}
    assert sink_stats(app)["retries_total"] == len(rx.requests) - 1


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
    app = await hook_app(aged, rx.url,
                         ", max_age: 300ms, max_attempts: 1000, backoff: {base: 100ms, max: 100ms}")
    await app.publish(events(1)[0])
    await wait_until(lambda: sink_stats(app)["dead_letters"] == 1, what="an expired event")
    await app.stop()
    [dead] = dead_letters(aged)
    assert dead.reason.startswith("expired") and dead.last_status == 503


def body_ids(req) -> list[str]:
    doc = req.json()
    return [item["id"] for item in doc] if isinstance(doc, list) else [doc["id"]]


async def test_ordered_delivery_waits_for_a_failing_head(tmp_path, rx) -> None:
    rx.script(500, 500, 500)
    app = await hook_app(tmp_path, rx.url, ", ordered: true")
    sent = events(5)
    await app.publish_many(sent)
    await wait_until(lambda: len(rx.ok()) == 5, what="five deliveries")
    await app.stop()
    head = sent[0].id
    assert [body_ids(r)[0] for r in rx.requests] == [head] * 4 + [e.id for e in sent[1:]]


async def test_unordered_a_failing_event_never_blocks_later_ones(tmp_path, rx) -> None:
    sent = events(6)
    poison = sent[0].id
    refusing = {"on": True}
    rx.handler = lambda req: 503 if refusing["on"] and body_ids(req) == [poison] else None
    app = await hook_app(tmp_path, rx.url, ", concurrency: 2, max_attempts: 1000")
    await app.publish_many(sent)
    await wait_until(lambda: rx.ids() == {e.id for e in sent[1:]}, what="the later events")
    await wait_until(lambda: sink_stats(app)["outbox"] == 1, what="only the first event left")
    assert poison not in rx.ids()
    refusing["on"] = False
    await wait_until(lambda: poison in rx.ids(), what="the first event once accepted")
    await app.stop()


async def test_batches_are_json_arrays_of_at_most_max_events(tmp_path, rx) -> None:
    app = await hook_app(tmp_path, rx.url,
                         f", secret: {WHSEC}, batch: {{max_events: 5, max_wait: 50ms}}")
    sent = events(12)
    await app.publish_many(sent)
    await wait_until(lambda: len(rx.event_ids()) == 12, what="every event in some batch")
    await app.stop()
    assert sorted(rx.event_ids()) == sorted(e.id for e in sent)
    verifier = Webhook(WHSEC)
    sizes = []
    for req in rx.ok():
        doc = verifier.verify(req.body, req.headers)
        assert isinstance(doc, list) and 1 <= len(doc) <= 5
        assert req.headers["webhook-id"].startswith("batch_")
        sizes.append(len(doc))
    assert max(sizes) == 5


async def test_a_rate_limit_spaces_requests_and_drops_nothing(tmp_path, rx) -> None:
    app = await hook_app(tmp_path, rx.url, ", rate_limit: {count: 2, per: 1s}")
    sent = events(5)
    published = time.monotonic()
    await app.publish_many(sent)
    await wait_until(lambda: len(rx.ok()) == 5, what="five deliveries")
    await app.stop()
    assert rx.ids() == {e.id for e in sent}
    # two at once, then one every half second: the fifth cannot come before 1.5 s
    assert max(r.at for r in rx.requests) - published >= 1.5


@pytest.mark.parametrize("policy", ["reject_new", "drop_oldest"])
async def test_a_full_outbox_follows_its_policy(tmp_path, caplog, policy: str) -> None:
    port = free_port()
    app = await hook_app(tmp_path, f"http://127.0.0.1:{port}", ", max_attempts: 1000, "
                         f"outbox: {{max_events: 5, when_full: {policy}}}")
    sent = events(8)
    with caplog.at_level(logging.WARNING):
        await app.publish_many(sent)
    assert sink_stats(app)["outbox"] == 5
    assert "the outbox is full" in caplog.text
    kept = sent[:5] if policy == "reject_new" else sent[3:]
    counter = "rejected_total" if policy == "reject_new" else "dropped_total"
    assert sink_stats(app)[counter] == 3
    with Receiver().start(port) as rx:
        await wait_until(lambda: len(rx.event_ids()) == 5, what="the kept events delivered")
        await app.stop()
    assert set(rx.event_ids()) == {e.id for e in kept}


async def test_url_headers_and_body_are_templates_and_a_route_payload_wins(tmp_path, rx) -> None:
    config = f"""
sinks:
  hook:
    type: webhook
    url: "{rx.url}/{{{{ sport }}}}/{{{{ universal_id }}}}"
    headers: {{x-game: "{{{{ game }}}}", x-source: boltrouter}}
    body: '{{"text": "{{{{ game }}}}: {{{{ data.home_score }}}}-{{{{ data.away_score }}}}"}}'
routes:
  - {{name: plain, when: {{universal_id: g0}}, to: hook}}
  - name: custom
    when: {{universal_id: g1}}
    to: [{{sink: hook, payload: '{{"score": {{{{ data.home_score }}}}}}'}}]
"""
    app = await start_app(write_config(tmp_path, config))
    await app.publish_many(events(2))
    await wait_until(lambda: len(rx.ok()) == 2, what="two deliveries")
    await app.stop()
    by_path = {r.path: r for r in rx.ok()}
    assert set(by_path) == {"/NFL/g0", "/NFL/g1"}
    assert by_path["/NFL/g0"].json() == {"text": "Game g0: 0-0"}
    assert by_path["/NFL/g1"].json() == {"score": 1}
    assert by_path["/NFL/g0"].headers["x-game"] == "Game g0"
    assert by_path["/NFL/g1"].headers["x-source"] == "boltrouter"


async def test_a_hung_receiver_does_not_slow_the_sqlite_sink(tmp_path, rx) -> None:
    rx.default = Reply(hang=True)
    config = f"""
shutdown_grace: 200ms
sinks:
  hook: {{type: webhook, url: "{rx.url}", timeout: 1h}}
  archive: {{type: sqlite, path: archive.db, flush_interval: 50ms}}
routes:
  - {{name: all, when: {{type: "*"}}, to: [hook, archive]}}
"""
    app = await start_app(write_config(tmp_path, config))
    sent = events(300)
    await app.publish_many(sent)

    def archived() -> int:
        conn = sqlite3.connect(tmp_path / "archive.db")
        try:
            return conn.execute("SELECT count(*) FROM events").fetchone()[0]
        finally:
            conn.close()

    await wait_until(lambda: archived() == 300, what="every event in SQLite")
    assert sink_stats(app)["outbox"] == 300
    assert rx.ok() == []
    await app.stop()
    with Outbox(tmp_path / "webhook-hook.db", "hook") as outbox:
        outbox.open()
        assert outbox.count() == 300      # still queued for the next start


async def cli(*args: str) -> tuple[int, str]:
    result = await asyncio.to_thread(boltrouter, "deadletters", *args)
    return result.returncode, result.stdout + result.stderr


async def test_deadletters_list_show_retry_and_purge(tmp_path, rx) -> None:
    accepting = {"on": False}
    rx.handler = lambda req: None if accepting["on"] else Reply(400, b'{"error": "bad team"}')
    cfg = write_config(tmp_path, hook_config(rx.url))
    app = await start_app(cfg)
    first, second = events(2)
    await app.publish_many([first, second])
    await wait_until(lambda: sink_stats(app)["dead_letters"] == 2, what="two dead letters")

    code, out = await cli("list", "--config", str(cfg))
    assert code == 0, out
    assert first.id in out and second.id in out and "400" in out and "score.changed" in out
    code, out = await cli("list", "--config", str(cfg), "--json")
    listed = orjson.loads(out)
    # the two events were sent concurrently, so either may have failed first
    assert sorted((d["sink"], d["event_id"], d["last_status"]) for d in listed) == sorted([
        ("hook", first.id, 400), ("hook", second.id, 400)])
    assert {d["response"] for d in listed} == {'{"error": "bad team"}'}
    ids = {d["event_id"]: d["id"] for d in listed}

    code, out = await cli("show", "--config", str(cfg), str(ids[first.id]))
    assert code == 0, out
    assert "last status:   400" in out and '{"error": "bad team"}' in out
    assert f'"id": "{first.id}"' in out

    accepting["on"] = True
    code, out = await cli("retry", "--config", str(cfg), str(ids[first.id]))
    assert code == 0 and "a running boltrouter delivers them now" in out, out
    await wait_until(lambda: first.id in rx.ids(), what="the retried dead letter delivered")
    await wait_until(lambda: sink_stats(app)["dead_letters"] == 1, what="one dead letter left")

    code, out = await cli("purge", "--config", str(cfg), "--all")
    assert code == 0 and "deleted 1 dead letter(s)" in out, out
    code, out = await cli("list", "--config", str(cfg))
    assert out.strip() == "no dead letters"
    await app.stop()
    assert second.id not in rx.ids()


async def test_deadletters_retry_without_a_daemon_is_delivered_on_the_next_start(tmp_path,
                                                                                 rx) -> None:
    rx.script(Reply(422, b"unknown field"))
    cfg = write_config(tmp_path, hook_config(rx.url))
    app = await start_app(cfg)
    event = events(1)[0]
    await app.publish(event)
    await wait_until(lambda: sink_stats(app)["dead_letters"] == 1, what="a dead letter")
    await app.stop()

    code, out = await cli("retry", "--config", str(cfg), "--all")
    assert code == 0, out
    assert "the next `boltrouter run` delivers them" in out
    app = await start_app(cfg)
    await wait_until(lambda: event.id in rx.ids(), what="delivery after the restart")
    await app.stop()
    assert dead_letters(tmp_path) == []


async def test_deadletters_commands_explain_wrong_input(tmp_path, rx) -> None:
    cfg = write_config(tmp_path, hook_config(rx.url).replace(
        "routes:", f"  other: {{type: webhook, url: '{rx.url}'}}\nroutes:"))
    code, out = await cli("list", "--config", str(cfg), "--sink", "hok")
    assert code == 1 and "no webhook sink 'hok'; did you mean 'hook'?" in out
    code, out = await cli("show", "--config", str(cfg), "1")
    assert code == 1 and "add --sink (valid: hook, other)" in out
    code, out = await cli("retry", "--config", str(cfg), "--sink", "hook")
    assert code == 2 and "give the ids to retry or --all" in out
    app = await start_app(cfg)
    await app.stop()
    code, out = await cli("purge", "--config", str(cfg), "--sink", "hook", "7")
    assert code == 1 and "sink 'hook' has no dead letter 7; nothing was changed" in out


async def test_secrets_never_reach_logs_or_deadletters_output(tmp_path, rx, caplog) -> None:
    token = "tok-9f8e7d6c5b4a"
    rx.handler = lambda req: Reply(401, f"bad credentials {req.headers['authorization']}"
                                   .encode())
    cfg = write_config(tmp_path, hook_config(
        rx.url, f", secret: {WHSEC}, headers: {{authorization: 'Bearer {token}'}}"))
    with caplog.at_level(logging.DEBUG):
        app = await start_app(cfg)
        await app.publish(events(1)[0])
        await wait_until(lambda: sink_stats(app)["dead_letters"] == 1, what="a dead letter")
        await app.stop()
    assert rx.requests[0].headers["authorization"] == f"Bearer {token}"
    outputs = [caplog.text, dead_letters(tmp_path)[0].response or ""]
    for args in (["list"], ["list", "--json"], ["show", "1"], ["show", "1", "--json"]):
        code, out = await cli(*args, "--config", str(cfg))
        assert code == 0, out
        outputs.append(out)
    assert "bad credentials ***" in outputs[1]
    for text in outputs:
        assert token not in text and WHSEC not in text


async def test_a_corrupt_outbox_is_moved_aside_and_delivery_goes_on(tmp_path, rx, caplog) -> None:
    (tmp_path / "webhook-hook.db").write_bytes(b"this is not a database" * 100)
    cfg = write_config(tmp_path, hook_config(rx.url))
    with caplog.at_level(logging.ERROR):
        app = await start_app(cfg)
    aside = list(tmp_path.glob("webhook-hook.db.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes().startswith(b"this is not a database")
    assert f"moved it aside to {aside[0]}" in caplog.text
    event = events(1)[0]
    await app.publish(event)
    await wait_until(lambda: event.id in rx.ids(), what="delivery from the fresh outbox")
    await app.stop()
    app = await start_app(cfg)                  # and the next start is an ordinary one
    await app.stop()
    assert len(list(tmp_path.glob("webhook-hook.db.corrupt-*"))) == 1


async def test_a_torn_last_write_loses_only_that_write(tmp_path, rx) -> None:
    live, crashed = tmp_path / "live", tmp_path / "crashed"
    live.mkdir()
    crashed.mkdir()
    sent = events(5)
    outbox = Outbox(live / "webhook-hook.db", "hook")
    outbox.open()
    for event in sent:
        outbox.add([(event.id, event.to_json(), None, None)])
    for suffix in ("", "-wal"):        # the files as a crash leaves them: nothing checkpointed
        (crashed / f"webhook-hook.db{suffix}").write_bytes(
            (live / f"webhook-hook.db{suffix}").read_bytes())
    outbox.close()
    wal = crashed / "webhook-hook.db-wal"
    wal.write_bytes(wal.read_bytes()[:-100])     # the last commit only half on disk

    app = await hook_app(crashed, rx.url)
    await wait_until(lambda: len(rx.ok()) == 4, what="the four complete events")
    await app.stop()
    assert sorted(rx.event_ids()) == sorted(e.id for e in sent[:4])
    assert not list(crashed.glob("*.corrupt-*"))


def test_bad_webhook_options_are_explained_without_quoting_the_secret(tmp_path) -> None:
    cfg = write_config(tmp_path, """
sinks:
  hook:
    type: webhook
    url: "ftp://example.com/x"
    secret: "whsec_!!not-base64-at-all"
    rate_limit: "lots"
    backoff: {base: 10m, max: 1m}
    outbox: {when_full: explode}
routes:
  - {name: all, when: {type: "*"}, to: hook}
""")
    with pytest.raises(ConfigErrors) as caught:
        load_config(cfg)
    messages = [str(e) for e in caught.value.errors]
    expected = [
        (":7: sinks.hook.url:", "is not an http:// or https:// URL"),
        (":8: sinks.hook.secret:", "must continue with base64"),
        (":9: sinks.hook.rate_limit:", "is not a rate like '30/min'"),
        (":10: sinks.hook.backoff.base:", "must not be larger than backoff.max"),
        (":11: sinks.hook.outbox.when_full:", "(valid: drop_oldest, reject_new)"),
    ]
    for where, what in expected:
        assert any(where in m and what in m for m in messages), (where, messages)
    assert not any("not-base64-at-all" in m for m in messages)


async def test_a_reload_with_a_new_url_and_secret_loses_nothing(tmp_path, rx) -> None:
    new_secret = "whsec_" + base64.b64encode(b"another key of 24 bytes!").decode()
    cfg = write_config(tmp_path, hook_config(rx.url + "/old", f", secret: {WHSEC}"))
    rx.handler = lambda req: 503 if req.path == "/old" else None
    app = await start_app(cfg)
    before = events(3)
    await app.publish_many(before)
    await wait_until(lambda: sink_stats(app)["retries_total"] >= 3, what="failed attempts")

    sink = app.sinks["hook"]
    write_config(tmp_path, hook_config(rx.url + "/new", f", secret: {new_secret}"))
    assert await app.reload() == []
    assert app.sinks["hook"] is sink          # applied in place: never stopped accepting
    after = events(3, start=3)
    await app.publish_many(after)
    await wait_until(lambda: rx.ids() == {e.id for e in before + after}, what="every event")
    await app.stop()
    verifier = Webhook(new_secret)
    for req in rx.ok():
        assert req.path == "/new"
        verifier.verify(req.body, req.headers)


async def test_retries_back_off_exponentially_with_full_jitter(tmp_path, rx) -> None:
    rx.default = 503
    config = "shutdown_grace: 100ms\n" + hook_config(
        rx.url, ", backoff: {base: 10s, max: 15s}, max_attempts: 99")
    app = await start_app(write_config(tmp_path, config))
    await app.publish_many(events(20))
    await wait_until(lambda: sink_stats(app)["retries_total"] >= 20, what="one failure each")
    await app.stop()
    with Outbox(tmp_path / "webhook-hook.db", "hook") as outbox:
        outbox.open()
        rows = outbox.get(seq for seq, _ in outbox.pending())
    assert len(rows) == 20
    waits = []
    for row in rows:
        assert row.last_status == 503 and row.last_attempt is not None
        waits.append(row.next_at - row.last_attempt)
        assert 0 <= waits[-1] <= min(15, 10 * 2 ** (row.attempts - 1))
    assert len({round(w, 3) for w in waits}) > 10       # spread out, not in lockstep


async def test_many_dead_letters_do_not_flood_the_log(tmp_path, caplog) -> None:
    app = await hook_app(tmp_path, f"http://127.0.0.1:{free_port()}", ", max_attempts: 1")
    with caplog.at_level(logging.ERROR, logger="boltrouter.sink.hook"):
        await app.publish_many(events(20))
        await wait_until(lambda: sink_stats(app)["dead_letters"] == 20, what="20 dead letters")
        await app.stop()
    lines = [r.getMessage() for r in caplog.records if "dead letters" in r.getMessage()]
    assert 2 <= len(lines) <= 5
    assert "1 event(s) moved to the dead letters" in lines[0]
    assert "deadletters list --config" in lines[0]
    assert "(20 waiting there in all)" in lines[-1]


async def test_a_second_process_on_the_same_outbox_only_queues_for_the_first(tmp_path, rx,
                                                                              caplog) -> None:
    cfg = write_config(tmp_path, hook_config(rx.url))
    daemon = await start_app(cfg)
    first, *sent = events(6)
    await daemon.publish(first)
    await wait_until(lambda: first.id in rx.ids(), what="the daemon delivering")
    with caplog.at_level(logging.WARNING):
        replay = await start_app(cfg)            # e.g. `boltrouter replay` with the same config
        await replay.publish_many(sent)
        await wait_until(lambda: "another boltrouter process is delivering" in caplog.text,
                         what="the warning")
        await replay.stop()
    await wait_until(lambda: rx.ids() == {e.id for e in [first, *sent]},
                     what="the daemon delivering the other process's events")
    await daemon.stop()
    assert replay.sinks["hook"].stats()["delivered_total"] == 0
    assert daemon.sinks["hook"].stats()["delivered_total"] == 6
