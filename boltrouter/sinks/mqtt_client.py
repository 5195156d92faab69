"""A small asyncio MQTT client (3.1.1 and 5) for the ``mqtt`` sink.

Publishing is the hot path of the sink: a message is encoded into bytes by the
caller and appended to a write buffer that goes to the socket once per pass of
the event loop, so a burst of thousands of events costs a few system calls and no
thread hand-over. Acknowledgements are read in the same way, many per read.

Delivery: QoS 1 and 2 messages are kept until the broker acknowledges them, at
most ``max_inflight`` at a time (fewer when an MQTT 5 broker announces a smaller
receive maximum); after a reconnect the unacknowledged ones are sent again,
flagged DUP, before anything new. QoS 0 messages are written only while connected.
The client reconnects by itself with a doubling delay between ``reconnect_min``
and ``reconnect_max``, and keeps the connection alive with PINGREQ.

Everything runs on the event loop; the callbacks are plain functions called there.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import ssl
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("boltrouter.sink.mqtt")

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = 8, 9, 12, 13, 14

_V311_REFUSALS = {1: "Unacceptable protocol version", 2: "Identifier rejected",
                  3: "Server unavailable", 4: "Bad user name or password", 5: "Not authorized"}
_V5_REASONS = {
    0x04: "Disconnect with will message", 0x80: "Unspecified error",
    0x81: "Malformed packet", 0x82: "Protocol error", 0x83: "Implementation specific error",
    0x84: "Unsupported protocol version", 0x85: "Client identifier not valid",
    0x86: "Bad user name or password", 0x87: "Not authorized", 0x88: "Server unavailable",
    0x89: "Server busy", 0x8A: "Banned", 0x8B: "Server shutting down",
    0x8C: "Bad authentication method", 0x8D: "Keep alive timeout", 0x8E: "Session taken over",
    0x8F: "Topic filter invalid", 0x90: "Topic name invalid", 0x93: "Receive maximum exceeded",
    0x94: "Topic alias invalid", 0x95: "Packet too large", 0x96: "Message rate too high",
    0x97: "Quota exceeded", 0x98: "Administrative action", 0x99: "Payload format invalid",
    0x9A: "Retain not supported", 0x9B: "QoS not supported", 0x9C: "Use another server",
    0x9D: "Server moved", 0x9F: "Connection rate exceeded"}

# MQTT 5 property identifiers by the size of their value (those a broker may send us)
_PROP_BYTE = {0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A}
_PROP_U16 = {0x13, 0x21, 0x22, 0x23}
_PROP_U32 = {0x02, 0x11, 0x18, 0x27}
_PROP_VARINT = {0x0B}
_PROP_STR = {0x03, 0x08, 0x09, 0x12, 0x15, 0x16, 0x1A, 0x1C, 0x1F}
_PROP_PAIR = {0x26}

_ONE_BYTE = [bytes((n,)) for n in range(128)]
_TOPIC_CACHE = 4096
_V311_QOS2_WINDOW = 20
"""MQTT 3.1.1 has no way for a broker to say how many QoS 2 messages it takes at once;
Mosquitto's default is 20 and it drops what comes beyond."""


def reason_text(code: int, v5: bool) -> str:
    if v5:
        return _V5_REASONS.get(code, f"reason code 0x{code:02X}")
    return _V311_REFUSALS.get(code, f"return code {code}")


def varint(n: int) -> bytes:
    if n < 128:
        return _ONE_BYTE[n]
    out = bytearray()
    while True:
        n, byte = n >> 7, n & 0x7F
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _str16(value: bytes) -> bytes:
    return len(value).to_bytes(2, "big") + value


def _read_varint(data: bytes | bytearray, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data) or shift > 21:
            raise ValueError("malformed variable byte integer")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 128:
            return value, pos
        shift += 7


def _length(data: bytearray, pos: int, end: int) -> tuple[int, int] | None:
    """The remaining length at ``pos`` and where the packet body starts; None while
    the length field is incomplete."""
    value = 0
    for i in range(4):
        if pos + i >= end:
            return None
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if byte < 128:
            return value, pos + i + 1
    raise ValueError("remaining length longer than 4 bytes")


def read_properties(data: bytes, pos: int) -> tuple[dict[int, Any], int]:
    """The MQTT 5 properties at ``pos``: {identifier: value} (user properties left out)."""
    length, pos = _read_varint(data, pos)
    end = pos + length
    props: dict[int, Any] = {}
    while pos < end:
        ident = data[pos]
        pos += 1
        if ident in _PROP_BYTE:
            props[ident] = data[pos]
            pos += 1
        elif ident in _PROP_U16:
            props[ident] = int.from_bytes(data[pos:pos + 2], "big")
            pos += 2
        elif ident in _PROP_U32:
            props[ident] = int.from_bytes(data[pos:pos + 4], "big")
            pos += 4
        elif ident in _PROP_VARINT:
            props[ident], pos = _read_varint(data, pos)
        elif ident in _PROP_STR:
            n = int.from_bytes(data[pos:pos + 2], "big")
            props[ident] = bytes(data[pos + 2:pos + 2 + n])
            pos += 2 + n
        elif ident in _PROP_PAIR:
            for _ in range(2):
                pos += 2 + int.from_bytes(data[pos:pos + 2], "big")
        else:
            raise ValueError(f"unknown MQTT 5 property 0x{ident:02X}")
    if pos != end:
        raise ValueError("malformed MQTT 5 properties")
    return props, end


class Sent:
    """A message handed to the client; ``done`` once the broker has it (QoS 0: at once,
    since nothing will ever confirm it)."""

    __slots__ = ("done",)

    def __init__(self, done: bool = False) -> None:
        self.done = done

    def is_published(self) -> bool:
        return self.done


@dataclass
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


class _Wire(asyncio.Protocol):
    def __init__(self, client: MqttClient) -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[Exception | None] = \
            asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport   # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.client._received(self, data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(exc)


class _Refused(Exception):
    pass


class MqttClient:
    """One connection to a broker, kept up until ``stop``.

    Callbacks (all on the event loop): ``on_connect(reason, failed)`` after each
    CONNACK, ``on_disconnect(reason)`` when an established connection ends,
    ``on_unreachable(reason)`` when the broker cannot be reached,
    ``on_message(topic, payload, retain)``, ``on_acked(count)`` as messages are
    acknowledged (QoS 0: written), ``on_refused(topic, reason)`` when an MQTT 5
    broker refuses a published message.
    """

    def __init__(self, host: str, port: int, *, client_id: str, v5: bool = False,
                 keepalive: float = 30.0, username: str | None = None,
                 password: str | None = None, ssl_context: ssl.SSLContext | None = None,
                 will: Will | None = None, reconnect_min: float = 1.0,
                 reconnect_max: float = 60.0, max_inflight: int = 1000,
                 max_pending: int = 50_000, connect_timeout: float = 10.0,
                 on_connect: Callable[[str, bool], None] | None = None,
                 on_disconnect: Callable[[str], None] | None = None,
                 on_unreachable: Callable[[str], None] | None = None,
                 on_message: Callable[[str, bytes, bool], None] | None = None,
                 on_acked: Callable[[int], None] | None = None,
                 on_refused: Callable[[str, str], None] | None = None) -> None:
        self.host, self.port = host, port
        self.client_id = client_id
        self.v5 = v5
        self.keepalive = max(0, int(keepalive))
        self.username, self.password = username, password
        self.ssl_context = ssl_context
        self.will = will
        self.reconnect_min, self.reconnect_max = reconnect_min, reconnect_max
        self.max_inflight = max(1, min(max_inflight, 65_000))
        self.max_pending = max_pending
        self.connect_timeout = connect_timeout
        noop = lambda *_a: None   # noqa: E731
        self.on_connect = on_connect or noop
        self.on_disconnect = on_disconnect or noop
        self.on_unreachable = on_unreachable or noop
        self.on_message = on_message or noop
        self.on_acked = on_acked or noop
        self.on_refused = on_refused or noop

        self.connected = False
        self._wire: _Wire | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._no_props = b"\x00" if v5 else b""
        self._topics: dict[str, bytes] = {}
        # outgoing QoS 1/2: in flight by message id, and waiting for room in the window
        self._inflight: dict[int, list[Any]] = {}   # mid -> [topic, packet, qos, sent, state]
        self._waiting: deque[list[Any]] = deque()
        self._window = self.max_inflight
        self._max_qos = 2
        self._max_packet = 0          # announced by an MQTT 5 broker; 0: no limit
        self._next_mid = 0
        self._qos2_in: set[int] = set()
        self._subscriptions: dict[int, list[str]] = {}
        # writing
        self._out: list[bytes] = []
        self._flush_soon = False
        self._written0 = 0            # QoS 0 messages in ``_out``
        self._last_out = self._last_in = 0.0
        self._ping_sent: float | None = None
        self._rbuf = bytearray()
        self._connack: asyncio.Future[tuple[int, dict[int, Any]]] | None = None
        self._disconnect_reason: str | None = None

    # -- public ------------------------------------------------------------------------------

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pending(self) -> int:
        """QoS 1/2 messages not acknowledged yet (in flight and waiting)."""
        return len(self._inflight) + len(self._waiting)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=f"mqtt-client:{self.client_id}")

    async def stop(self) -> None:
        """Say DISCONNECT (the broker then drops the last will) and close."""
        self._stopping = True
        wire = self._wire
        if wire is not None and wire.transport is not None and self.connected:
            self._write(b"\xe0\x01\x00" if self.v5 else b"\xe0\x00")
            self._flush()
            wire.transport.close()
            try:
                async with asyncio.timeout(2.0):
                    await asyncio.shield(wire.closed)
            except TimeoutError:
                wire.transport.abort()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self.connected = False

    async def wait_published(self, sent: Sent, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not sent.done and time.monotonic() < deadline and self.connected:
            await asyncio.sleep(0.01)
        return sent.done

    def publish(self, topic: str, payload: bytes, qos: int = 0,
                retain: bool = False) -> Sent | None:
        """Queue a message; None when it cannot be taken (QoS 0 while disconnected, or
        ``max_pending`` QoS 1/2 messages already waiting). A topic MQTT does not allow
        raises ValueError."""
        encoded = self._topics.get(topic)
        if encoded is None:
            encoded = self._encode_topic(topic)
        if qos > self._max_qos:
            qos = self._max_qos
        if self._max_packet and len(encoded) + len(payload) + 12 > self._max_packet:
            raise ValueError(f"a message of {len(payload)} bytes is larger than the broker "
                             f"takes ({self._max_packet} bytes a packet)")
        if qos == 0:
            if not self.connected:
                return None
            body = len(encoded) + len(self._no_props) + len(payload)
            self._write(b"".join((bytes((0x31 if retain else 0x30,)), varint(body), encoded,
                                  self._no_props, payload)))
            self._written0 += 1
            return Sent(True)
        if len(self._inflight) + len(self._waiting) >= self.max_pending:
            return None
        sent = Sent()
        entry = [encoded, payload, 0x30 | (qos << 1) | (1 if retain else 0), sent, 0]
        if self.connected and len(self._inflight) < self._limit(entry) and not self._waiting:
            self._send_entry(entry)
        else:
            self._waiting.append(entry)
        return sent

    def subscribe(self, filters: list[tuple[str, int]]) -> None:
        if not self.connected or not filters:
            return
        mid = self._mid()
        body = bytearray(mid.to_bytes(2, "big"))
        body += self._no_props
        for topic, qos in filters:
            body += _str16(topic.encode())
            body.append(qos)
        self._subscriptions[mid] = [t for t, _ in filters]
        self._write(b"\x82" + varint(len(body)) + bytes(body))

    # -- encoding ---------------------------------------------------------------------------

    def _encode_topic(self, topic: str) -> bytes:
        raw = topic.encode("utf-8")
        if not raw or "+" in topic or "#" in topic or "\x00" in topic or len(raw) > 65535:
            raise ValueError("an MQTT topic must be 1 to 65535 bytes of UTF-8 without "
                             "+, # or NUL")
        encoded = _str16(raw)
        if len(self._topics) >= _TOPIC_CACHE:
            self._topics.clear()
        self._topics[topic] = encoded
        return encoded

    def _mid(self) -> int:
        for _ in range(65535):
            self._next_mid = self._next_mid % 65535 + 1
            if self._next_mid not in self._inflight and self._next_mid not in self._subscriptions:
                return self._next_mid
        raise RuntimeError("no free MQTT message id")

    def _send_entry(self, entry: list[Any]) -> None:
        mid = self._mid()
        encoded, payload, head = entry[0], entry[1], entry[2]
        body = len(encoded) + 2 + len(self._no_props) + len(payload)
        self._write(b"".join((bytes((head,)), varint(body), encoded, mid.to_bytes(2, "big"),
                              self._no_props, payload)))
        entry[4] = 0
        self._inflight[mid] = entry

    def _write(self, packet: bytes) -> None:
        self._out.append(packet)
        if not self._flush_soon:
            self._flush_soon = True
            assert self._loop is not None
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_soon = False
        if not self._out:
            return
        data = b"".join(self._out)
        self._out.clear()
        wire = self._wire
        if wire is not None and wire.transport is not None and not wire.transport.is_closing():
            wire.transport.write(data)
            self._last_out = time.monotonic()
        # else: QoS 1/2 messages stay in flight and go again after the reconnect
        if self._written0:
            n, self._written0 = self._written0, 0
            self.on_acked(n)

    # -- reading ----------------------------------------------------------------------------

    def _received(self, wire: _Wire, data: bytes) -> None:
        if wire is not self._wire:
            return
        self._last_in = time.monotonic()
        self._ping_sent = None
        buf = self._rbuf
        buf += data
        end = len(buf)
        pos = 0
        acked = 0
        try:
            while end - pos >= 2:
                first = buf[pos]
                length = buf[pos + 1]
                start = pos + 2
                if length & 0x80:
                    parsed = _length(buf, pos + 1, end)
                    if parsed is None:
                        break
                    length, start = parsed
                if start + length > end:
                    break
                if first == 0x40 and length >= 2:                    # PUBACK
                    acked += self._finished(buf[start] << 8 | buf[start + 1],
                                            buf[start + 2] if length > 2 else 0)
                else:
                    acked += self._packet(first >> 4, first & 0x0F,
                                          bytes(buf[start:start + length]))
                pos = start + length
        except (ValueError, IndexError) as exc:
            self._drop(wire, f"bad packet from the broker: {exc or type(exc).__name__}")
            return
        del buf[:pos]
        if acked:
            self._release()
            self.on_acked(acked)

    def _finished(self, mid: int, reason: int) -> int:
        entry = self._inflight.pop(mid, None)
        if entry is None:
            return 0
        entry[3].done = True
        if reason >= 0x80:
            topic = bytes(entry[0][2:]).decode("utf-8", "replace")
            self.on_refused(topic, reason_text(reason, True))
        return 1

    def _release(self) -> None:
        while self._waiting and len(self._inflight) < self._limit(self._waiting[0]) \
                and self.connected:
            self._send_entry(self._waiting.popleft())

    def _limit(self, entry: list[Any]) -> int:
        if entry[2] & 0x04 and not self.v5:
            return min(self._window, _V311_QOS2_WINDOW)
        return self._window

    def _packet(self, ptype: int, flags: int, body: bytes) -> int:
        if ptype == PUBLISH:
            self._incoming(flags, body)
        elif ptype == PUBREC:
            mid = int.from_bytes(body[:2], "big")
            entry = self._inflight.get(mid)
            if len(body) > 2 and body[2] >= 0x80:
                return self._finished(mid, body[2])
            if entry is not None:
                entry[4] = 1
            self._write(b"\x62\x02" + body[:2])                       # PUBREL
        elif ptype in (PUBACK, PUBCOMP):
            return self._finished(int.from_bytes(body[:2], "big"), 0)
        elif ptype == PUBREL:
            self._qos2_in.discard(int.from_bytes(body[:2], "big"))
            self._write(b"\x70\x02" + body[:2])                       # PUBCOMP
        elif ptype == SUBACK:
            topics = self._subscriptions.pop(int.from_bytes(body[:2], "big"), [])
            pos = 2
            if self.v5:
                _, pos = read_properties(body, pos)
            for topic, code in zip(topics, body[pos:]):
                if code >= 0x80:
                    log.warning("the MQTT broker %s refused the subscription to %s (%s)",
                                self.where, topic, reason_text(code, True) if self.v5
                                else "failure")
        elif ptype == CONNACK:
            if len(body) < 2:
                raise ValueError("CONNACK too short")
            props = read_properties(body, 2)[0] if self.v5 and len(body) > 2 else {}
            if self._connack is not None and not self._connack.done():
                self._connack.set_result((body[1], props))
        elif ptype == DISCONNECT:
            if body:
                self._disconnect_reason = reason_text(body[0], True)
        elif ptype != PINGRESP:
            raise ValueError(f"unexpected packet type {ptype}")
        return 0

    def _incoming(self, flags: int, body: bytes) -> None:
        qos, retain = (flags >> 1) & 3, bool(flags & 1)
        n = int.from_bytes(body[:2], "big")
        topic = body[2:2 + n].decode("utf-8", "replace")
        pos = 2 + n
        mid = 0
        if qos:
            mid = int.from_bytes(body[pos:pos + 2], "big")
            pos += 2
        if self.v5:
            _, pos = read_properties(body, pos)
        payload = body[pos:]
        if qos == 1:
            self._write(b"\x40\x02" + mid.to_bytes(2, "big"))
        elif qos == 2:
            self._write(b"\x50\x02" + mid.to_bytes(2, "big"))
            if mid in self._qos2_in:
                return     # sent again before our PUBREC arrived: already delivered
            self._qos2_in.add(mid)
        try:
            self.on_message(topic, payload, retain)
        except Exception:
            log.exception("handling a message on %s failed; the connection goes on", topic)

    # -- the connection ---------------------------------------------------------------------

    def _connect_packet(self) -> bytes:
        flags = 0x02     # clean session / clean start
        payload = bytearray(_str16(self.client_id.encode()))
        if self.will is not None:
            flags |= 0x04 | (self.will.qos << 3) | (0x20 if self.will.retain else 0)
            payload += self._no_props
            payload += _str16(self.will.topic.encode()) + _str16(self.will.payload)
        if self.username:
            flags |= 0x80
            payload += _str16(self.username.encode())
            if self.password is not None:
                flags |= 0x40
                payload += _str16(self.password.encode())
        head = b"\x00\x04MQTT" + bytes((5 if self.v5 else 4, flags)) \
            + self.keepalive.to_bytes(2, "big") + self._no_props
        body = head + bytes(payload)
        return b"\x10" + varint(len(body)) + body

    async def _run(self) -> None:
        delay = self.reconnect_min
        while not self._stopping:
            try:
                established = await self._session()
            except asyncio.CancelledError:
                raise
            except _Refused as exc:
                self.on_connect(str(exc), True)
                established = False
            except (OSError, TimeoutError, ssl.SSLError, ValueError) as exc:
                self.on_unreachable(_describe(exc))
                established = False
            except Exception:
                log.exception("the connection to the MQTT broker %s failed; reconnecting",
                              self.where)
                established = False
            if self._stopping:
                return
            if established:
                delay = self.reconnect_min
            await asyncio.sleep(delay * random.uniform(0.8, 1.0))
            if not established:
                delay = min(delay * 2, self.reconnect_max)

    async def _session(self) -> bool:
        """One connection, from the TCP connect to its end; whether it was established."""
        loop = asyncio.get_running_loop()
        self._wire = None
        self._flush()      # what was meant for the last connection is gone with it
        async with asyncio.timeout(self.connect_timeout):
            _, wire = await loop.create_connection(
                lambda: _Wire(self), self.host, self.port, ssl=self.ssl_context,
                server_hostname=self.host if self.ssl_context is not None else None)
        self._wire = wire
        self._rbuf.clear()
        self._disconnect_reason = None
        self._connack = loop.create_future()
        try:
            self._write(self._connect_packet())
            self._flush()
            try:
                async with asyncio.timeout(self.connect_timeout):
                    await asyncio.wait([self._connack, wire.closed],
                                       return_when=asyncio.FIRST_COMPLETED)
            except TimeoutError:
                raise TimeoutError("no CONNACK from the broker") from None
            if not self._connack.done():
                self._closed_before_connack(wire)
            code, props = self._connack.result()
            if code != 0:
                raise _Refused(reason_text(code, self.v5))
            self._window = min(self.max_inflight, props.get(0x21, 65535))
            self._max_qos = props.get(0x24, 2)
            self._max_packet = props.get(0x27, 0)
            if 0x13 in props:
                self.keepalive = props[0x13]
            self.connected = True
            self._last_in = self._last_out = time.monotonic()
            self._ping_sent = None
            self._resend()
            self.on_connect("Success", False)
            reason = await self._watch(wire)
        finally:
            was = self.connected
            self.connected = False
            if wire.transport is not None:
                wire.transport.abort()
            self._wire = None
            self._subscriptions.clear()
        if was and not self._stopping:
            self.on_disconnect(reason)
        return was

    def _closed_before_connack(self, wire: _Wire) -> None:
        exc = wire.closed.result()
        raise ConnectionError(self._disconnect_reason or (
            f"the broker closed the connection before answering ({exc})" if exc
            else "the broker closed the connection before answering"))

    def _resend(self) -> None:
        """After a reconnect: what the broker did not acknowledge goes again, first."""
        again = list(self._inflight.values())
        self._inflight.clear()
        for entry in again:
            entry[2] |= 0x08                       # DUP
        self._waiting.extendleft(reversed(again))
        self._release()

    async def _watch(self, wire: _Wire) -> str:
        """Keep the connection alive until it ends; why it ended."""
        step = max(0.5, self.keepalive / 2) if self.keepalive else 3600.0
        while True:
            done, _ = await asyncio.wait([wire.closed], timeout=step)
            if done:
                exc = wire.closed.result()
                return self._disconnect_reason or (
                    f"connection lost: {_describe(exc)}" if exc else "connection closed")
            if not self.keepalive:
                continue
            now = time.monotonic()
            if self._ping_sent is not None and now - self._ping_sent >= self.keepalive:
                self._drop(wire, "no answer to PINGREQ: keepalive timeout")
            elif now - max(self._last_out, self._last_in) >= self.keepalive * 0.75:
                self._ping_sent = now
                self._write(b"\xc0\x00")

    def _drop(self, wire: _Wire, why: str) -> None:
        self._disconnect_reason = why
        if wire.transport is not None:
            wire.transport.abort()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted: {exc.verify_message}"
    if isinstance(exc, OSError) and exc.errno and not isinstance(exc, ssl.SSLError):
        return os.strerror(exc.errno)
    return str(exc) or type(exc).__name__


def tls_context(ca_file: str | None, cert_file: str | None, key_file: str | None,
                insecure: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file)
    if cert_file:
        context.load_cert_chain(cert_file, key_file)
    if insecure:
        context.check_hostname = False
    return context


__all__ = ["MqttClient", "Sent", "Will", "tls_context", "varint", "read_properties"]
