"""The MQTT client under the mqtt sink: delivery at every QoS against a real Mosquitto,
and what it does when a broker misbehaves (a scripted broker on loopback)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers_mqtt import MISSING, Broker, Subscriber, free_port, make_certs, mosquitto_binary
from helpers_sinks import wait_until

from boltrouter.sinks.mqtt_client import MqttClient, Sent, Will, tls_context


def make_client(port: int, **kw: Any) -> tuple[MqttClient, dict[str, list[Any]]]:
    seen: dict[str, list[Any]] = {"connect": [], "disconnect": [], "unreachable": [],
                                  "message": []}
    client = MqttClient(
        "127.0.0.1", port, client_id=kw.pop("client_id", "test-client"),
        reconnect_min=0.05, reconnect_max=0.2,
        on_connect=lambda reason, failed: seen["connect"].append((reason, failed)),
        on_disconnect=lambda reason: seen["disconnect"].append(reason),
        on_unreachable=lambda reason: seen["unreachable"].append(reason),
        on_message=lambda topic, payload, retain: seen["message"].append((topic, payload)),
        **kw)
    return client, seen


@contextlib.contextmanager
def own_broker(folder: Path, **kw: Any) -> Iterator[Broker]:
    """A Mosquitto with its own options for one test; skips when none is installed."""
    if mosquitto_binary() is None:
        pytest.skip(MISSING)
    broker = Broker(folder, **kw)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.mark.parametrize("v5", [False, True], ids=["3.1.1", "5"])
async def test_every_message_arrives_once_and_in_order_at_qos_0_1_and_2(
        broker: Broker, v5: bool) -> None:
    client, seen = make_client(broker.port, v5=v5)
    with Subscriber(broker.port, ["t/#"]) as sub:
        client.start()
        try:
            await wait_until(lambda: client.connected, 10, "the client to connect")
            sent: list[Sent | None] = []
            for qos in (0, 1, 2):
                sent += [client.publish(f"t/{qos}", f"{qos}-{i}".encode(), qos)
                         for i in range(300)]
            await wait_until(lambda: len(sub.under("t/")) >= 900, 20, "every message")
            await wait_until(lambda: all(s is not None and s.done for s in sent), 10,
                             "every acknowledgement")
            for qos in (0, 1, 2):
                assert [m.payload for m in sub.on(f"t/{qos}")] == \
                    [f"{qos}-{i}".encode() for i in range(300)]
            assert client.pending == 0
            assert seen["disconnect"] == []
        finally:
            await client.stop()


async def test_an_mqtt_5_broker_s_receive_maximum_is_respected(tmp_path: Path) -> None:
    with own_broker(tmp_path / "broker", extra=["max_inflight_messages 3"]) as broker:
        client, seen = make_client(broker.port, v5=True)
        with Subscriber(broker.port, ["t/#"]) as sub:
            client.start()
            await wait_until(lambda: client.connected, 10, "the client to connect")
            sent = [client.publish("t/x", str(i).encode(), 1) for i in range(1000)]
            await wait_until(lambda: len(sub.on("t/x")) >= 1000, 20, "every message")
            assert [m.payload for m in sub.on("t/x")] == [str(i).encode() for i in range(1000)]
            await wait_until(lambda: all(s is not None and s.done for s in sent), 10,
                             "every acknowledgement")
            await client.stop()
        assert len(seen["connect"]) == 1 and seen["disconnect"] == []
        assert "exceeded" not in broker.log.read_text()


async def test_a_topic_mqtt_does_not_allow_is_refused_without_touching_the_connection(
        broker: Broker) -> None:
    client, seen = make_client(broker.port)
    client.start()
    try:
        await wait_until(lambda: client.connected, 10, "the client to connect")
        for bad in ("a/+/b", "a/#", "", "nul\x00"):
            with pytest.raises(ValueError, match="MQTT topic"):
                client.publish(bad, b"x", 1)
        ok = client.publish("a/b", b"x", 1)
        await wait_until(lambda: ok is not None and ok.done, 10, "the good message's ack")
        assert seen["disconnect"] == []
    finally:
        await client.stop()


async def test_the_last_will_is_published_when_the_client_vanishes_but_not_on_stop(
        broker: Broker) -> None:
    with Subscriber(broker.port, ["will/#"]) as sub:
        for name in ("vanished", "stopped"):
            client, _ = make_client(broker.port, client_id=name,
                                    will=Will(f"will/{name}", b"offline", qos=1, retain=False))
            client.start()
            await wait_until(lambda c=client: c.connected, 10, "the client to connect")
            if name == "vanished":
                assert client._wire is not None and client._wire.transport is not None
                client._wire.transport.abort()     # the TCP connection dies, no DISCONNECT
                await wait_until(lambda: sub.on("will/vanished"), 10, "the last will")
            await client.stop()
        sub.publish("will/probe", b"1")    # the broker is done with the stopped client
        await wait_until(lambda: sub.on("will/probe"), 10, "the probe")
        assert sub.on("will/stopped") == []


# -- a scripted broker: what no well-behaved Mosquitto does -----------------------------------

class ScriptedBroker:
    """A TCP server that reads MQTT packets and lets each test decide the answers."""

    def __init__(self, handler: Callable[[ScriptedBroker, int, asyncio.StreamReader,
                                          asyncio.StreamWriter], Awaitable[None]]) -> None:
        self.handler = handler
        self.connections = 0
        self.packets: list[tuple[int, int, bytes]] = []   # (connection, first byte, body)
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> ScriptedBroker:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: Any) -> None:
        assert self.server is not None
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(self, self.connections, reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def read(self, conn: int, reader: asyncio.StreamReader) -> tuple[int, bytes]:
        first = (await reader.readexactly(1))[0]
        length, shift = 0, 0
        while True:
            byte = (await reader.readexactly(1))[0]
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 128:
                break
        body = await reader.readexactly(length)
        self.packets.append((conn, first, body))
        return first, body


def publishes(broker: ScriptedBroker, conn: int) -> list[tuple[bool, bytes]]:
    """(DUP flag, payload) of each QoS 1 PUBLISH the client sent on connection ``conn``."""
    out = []
    for c, first, body in broker.packets:
        if c == conn and first >> 4 == 3:
            n = int.from_bytes(body[:2], "big")
            out.append((bool(first & 0x08), body[2 + n + 2:]))
    return out


async def test_messages_not_acknowledged_before_a_drop_are_sent_again_flagged_dup_first(
        ) -> None:
    async def handler(b: ScriptedBroker, conn: int, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        await b.read(conn, reader)                               # CONNECT
        writer.write(b"\x20\x02\x00\x00")                        # CONNACK, accepted
        while True:
            first, body = await b.read(conn, reader)
            if conn == 1 and len(publishes(b, 1)) == 5:
                return                                           # drop, acknowledging nothing
            if conn > 1 and first >> 4 == 3:
                writer.write(b"\x40\x02" + body[2 + int.from_bytes(body[:2], "big"):][:2])

    async with ScriptedBroker(handler) as fake:
        client, seen = make_client(fake.port)
        client.start()
        try:
            await wait_until(lambda: client.connected, 10, "the client to connect")
            first = [client.publish("t", f"m{i}".encode(), 1) for i in range(5)]
            await wait_until(lambda: fake.connections >= 2 and client.connected, 10,
                             "the reconnect")
            later = client.publish("t", b"after", 1)
            await wait_until(lambda: all(s is not None and s.done for s in [*first, later]),
                             10, "every acknowledgement")
        finally:
            await client.stop()
    assert publishes(fake, 2) == [(True, f"m{i}".encode()) for i in range(5)] + \
        [(False, b"after")]
    assert len(seen["disconnect"]) == 1


async def test_a_broker_that_stops_answering_is_dropped_after_the_keepalive(
        ) -> None:
    async def handler(b: ScriptedBroker, conn: int, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        await b.read(conn, reader)
        writer.write(b"\x20\x02\x00\x00")
        while True:
            await b.read(conn, reader)                            # PINGREQ goes unanswered

    async with ScriptedBroker(handler) as fake:
        client, seen = make_client(fake.port, keepalive=1)
        client.start()
        try:
            await wait_until(lambda: seen["disconnect"], 15, "the keepalive to give up")
            await wait_until(lambda: fake.connections >= 2, 10, "a reconnect")
        finally:
            await client.stop()
    assert "keepalive" in seen["disconnect"][0]
    assert any(first == 0xC0 for _, first, _ in fake.packets)     # it did ask first


async def test_garbage_from_the_broker_ends_the_connection_with_a_clear_reason(
        ) -> None:
    async def handler(b: ScriptedBroker, conn: int, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        await b.read(conn, reader)
        writer.write(b"\x20\x02\x00\x00")
        if conn == 1:
            writer.write(b"\x30\xff\xff\xff\xff\x7f")              # a length of 5 bytes
        await reader.read()

    async with ScriptedBroker(handler) as fake:
        client, seen = make_client(fake.port)
        client.start()
        try:
            await wait_until(lambda: seen["disconnect"], 10, "the connection to end")
            await wait_until(lambda: fake.connections >= 2 and client.connected, 10,
                             "a reconnect")
        finally:
            await client.stop()
    assert "bad packet from the broker" in seen["disconnect"][0]


async def test_a_refused_connection_reports_the_broker_s_reason_and_retries() -> None:
    async def handler(b: ScriptedBroker, conn: int, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        await b.read(conn, reader)
        writer.write(b"\x20\x02\x00\x05")                         # not authorised
        await reader.read()

    async with ScriptedBroker(handler) as fake:
        client, seen = make_client(fake.port, username="u", password="s3cret")
        client.start()
        try:
            await wait_until(lambda: len(seen["connect"]) >= 2, 10, "a second attempt")
        finally:
            await client.stop()
    assert seen["connect"][0] == ("Not authorized", True)
    assert not client.connected
    connect = fake.packets[0][2]
    assert connect[7] & 0xC0 == 0xC0                               # user name and password


async def test_an_unreachable_broker_is_reported_and_retried() -> None:
    client, seen = make_client(free_port())
    client.start()
    try:
        await wait_until(lambda: len(seen["unreachable"]) >= 2, 10, "two attempts")
    finally:
        await client.stop()
    assert "refused" in seen["unreachable"][0].lower()


async def test_a_message_larger_than_an_mqtt_5_broker_takes_is_refused_up_front(
        tmp_path: Path) -> None:
    with own_broker(tmp_path / "broker", extra=["max_packet_size 1000"]) as broker:
        client, seen = make_client(broker.port, v5=True)
        client.start()
        await wait_until(lambda: client.connected, 10, "the client to connect")
        with pytest.raises(ValueError, match="larger than the broker takes"):
            client.publish("t/big", b"x" * 2000, 1)
        small = client.publish("t/small", b"x" * 100, 1)
        await wait_until(lambda: small is not None and small.done, 10, "the small message")
        await client.stop()
        assert seen["disconnect"] == []


async def test_a_broker_certificate_from_an_unknown_ca_is_reported_as_not_trusted(
        tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "certs")
    other = make_certs(tmp_path / "other")
    if certs is None or other is None:
        pytest.skip("openssl is not installed: it makes the test certificates")
    with own_broker(tmp_path / "tls", certs=certs) as broker:
        assert broker.tls_port is not None
        wrong = tls_context(str(other["ca"]), str(certs["client_cert"]),
                            str(certs["client_key"]), insecure=False)
        client, seen = make_client(broker.tls_port, ssl_context=wrong)
        client.start()
        try:
            await wait_until(lambda: seen["unreachable"], 10, "the TLS failure")
        finally:
            await client.stop()
    assert seen["unreachable"][0].startswith("TLS certificate not trusted")
    assert seen["connect"] == []
