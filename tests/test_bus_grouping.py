"""Durable sinks store the events of one upstream frame in one ``accept`` call."""

from __future__ import annotations

import asyncio
from typing import Any

from boltrouter.bus import Bus
from boltrouter.events import Event
from boltrouter.metrics import Metrics
from boltrouter.sink import Delivery, Sink


class Ledger(Sink):
    durable = True

    def __init__(self, fail: bool = False) -> None:
        super().__init__("ledger", {"type": "ledger"}, None)  # type: ignore[arg-type]
        self.calls: list[list[str]] = []
        self.fail = fail

    def accept(self, batch: list[Delivery]) -> None:
        if self.fail:
            raise OSError("disk full")
        self.calls.append([d.event.id for d in batch])


def deliveries(n: int, sink: str = "ledger") -> list[tuple[str, Delivery]]:
    return [(sink, Delivery(Event("odds.line_changed", {"n": i}))) for i in range(n)]


def bus_with(sink: Sink) -> Bus:
    bus = Bus(Metrics())
    bus.add("ledger", sink, {})
    return bus


async def test_the_events_of_one_frame_reach_a_durable_sink_in_one_accept_call() -> None:
    ledger = Ledger()
    bus = bus_with(ledger)
    first, second = deliveries(3), deliveries(2)
    with bus.grouped():
        await bus.deliver(first)
        await bus.deliver(second)
        assert ledger.calls == []
    assert ledger.calls == [[d.event.id for _, d in first + second]]
    assert bus.runners["ledger"].accepted == 5


async def test_outside_a_frame_each_delivery_is_accepted_at_once() -> None:
    ledger = Ledger()
    bus = bus_with(ledger)
    await bus.deliver(deliveries(2))
    assert len(ledger.calls) == 2
    assert bus.runners["ledger"].accepted == 2


async def test_another_task_publishing_meanwhile_is_accepted_before_its_publish_returns() -> None:
    ledger = Ledger()
    bus = bus_with(ledger)
    other: list[Any] = []
    inside = asyncio.Event()
    leave = asyncio.Event()

    async def frame() -> None:
        with bus.grouped():
            await bus.deliver(deliveries(2))
            inside.set()
            await leave.wait()

    async def other_feed() -> None:
        await inside.wait()
        await bus.deliver(deliveries(1))
        other.append(list(ledger.calls))
        leave.set()

    await asyncio.gather(frame(), other_feed())
    assert len(other[0]) == 1 and len(other[0][0]) == 1   # the other task's event, alone
    assert [len(c) for c in ledger.calls] == [1, 2]


async def test_a_frame_the_sink_cannot_store_counts_every_event_as_failed() -> None:
    bus = bus_with(Ledger(fail=True))
    with bus.grouped():
        await bus.deliver(deliveries(4))
    runner = bus.runners["ledger"]
    assert runner.failed == 4 and runner.accepted == 0
    assert "disk full" in (runner.last_error or "")


async def test_a_sink_removed_while_a_frame_is_handled_gets_nothing_from_it() -> None:
    ledger = Ledger()
    bus = bus_with(ledger)
    with bus.grouped():
        await bus.deliver(deliveries(2))
        await bus.remove("ledger", 1.0)
    assert ledger.calls == []
    assert bus.runners == {}
