"""Fan-out to sinks: one bounded queue and one worker per sink.

A slow, failing or hung sink fills only its own queue; what happens then is the
sink's ``overflow`` policy (``block`` waits for room, ``drop_oldest`` and
``drop_newest`` drop and count). On shutdown every queue is drained within a
grace period. Durable sinks (the webhook outbox) persist in ``accept`` instead.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from .metrics import Metrics
from .secrets import redact
from .sink import Delivery, Sink

log = logging.getLogger("boltrouter.bus")

_held: ContextVar[dict[SinkRunner, list[Delivery]] | None] = ContextVar("held", default=None)
"""The durable deliveries a ``Bus.grouped`` block of the current task collects."""


class SinkRunner:
    def __init__(self, name: str, sink: Sink, options: dict[str, Any], metrics: Metrics) -> None:
        self.name = name
        self.sink = sink
        self.metrics = metrics
        self.maxsize = options.get("queue_size") or 100_000
        self.overflow = options.get("overflow") or "drop_oldest"
        self.batch_size = options.get("batch_size") or 500
        self.linger = float(getattr(sink, "linger", 0.0) or 0.0)
        """Seconds the worker waits for a part-filled batch to fill (the sink's choice)."""
        self._fill = min(self.batch_size, self.maxsize)
        self.queue: deque[Delivery] = deque()
        self._wake = asyncio.Event()
        self._full = asyncio.Event()
        self._room = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.delivered = 0
        self.failed = 0
        self.dropped = 0
        self.accepted = 0
        self.last_error: str | None = None
        self._warned_full = 0.0

    # -- producer side -------------------------------------------------------------

    def offer(self, delivery: Delivery) -> bool:
        """Queue without waiting; False when the policy is ``block`` and it is full."""
        if self.sink.durable:
            self.accept([delivery])
            return True
        if len(self.queue) >= self.maxsize:
            if self.overflow == "block":
                return False
            self.dropped += 1
            self.metrics.inc("sink_dropped", sink=self.name)
            if self.overflow == "drop_oldest":
                self.queue.popleft()
            else:
                self._warn_full()
                return True
            self._warn_full()
        self.queue.append(delivery)
        self.accepted += 1
        self._idle.clear()
        self._wake.set()
        if len(self.queue) >= self._fill:
            self._full.set()
        return True

    def accept(self, batch: list[Delivery]) -> None:
        """Durable sinks: store ``batch`` at once (one transaction); counted as accepted
        once the sink's ``accept`` returned."""
        try:
            self.sink.accept(batch)
        except Exception as exc:
            self._count_failure(len(batch), exc)
            return
        self.accepted += len(batch)

    async def put(self, delivery: Delivery) -> None:
        while not self.offer(delivery):
            self._warn_full()
            self._room.clear()
            await self._room.wait()

    def _warn_full(self) -> None:
        now = time.monotonic()
        if now - self._warned_full > 10:
            self._warned_full = now
            log.warning("sink %r is not keeping up: queue full (%d); policy %s; %d dropped so far",
                        self.name, self.maxsize, self.overflow, self.dropped)

    # -- worker --------------------------------------------------------------------

    def start(self) -> None:
        if not self.sink.durable:
            self._task = asyncio.create_task(self._work(), name=f"sink:{self.name}")

    async def _work(self) -> None:
        while True:
            if not self.queue:
                self._idle.set()
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            if self.linger and len(self.queue) < self._fill and not self._closing:
                await self._let_batch_fill()
            queue = self.queue
            n = min(self.batch_size, len(queue))
            if n == len(queue):
                batch = list(queue)
                queue.clear()
            else:
                batch = [queue.popleft() for _ in range(n)]
            self._room.set()
            try:
                await self.sink.write(batch)
            except asyncio.CancelledError:
                self.failed += len(batch)
                raise
            except Exception as exc:
                self._count_failure(len(batch), exc)
                continue
            self.delivered += n
            self.metrics.inc("sink_delivered", n, sink=self.name)
            self.metrics.acknowledged(self.name, [d.event for d in batch])

    async def _let_batch_fill(self) -> None:
        """Wait up to ``linger`` for a full batch: a file or database write of many rows
        costs about what a write of one costs, so a quiet feed wakes the sink less."""
        self._full.clear()
        try:
            async with asyncio.timeout(self.linger):   # wait_for could lose a cancellation
                await self._full.wait()
        except TimeoutError:
            pass

    def _count_failure(self, n: int, exc: BaseException) -> None:
        self.failed += n
        self.metrics.inc("sink_failed", n, sink=self.name)
        self.last_error = redact(f"{type(exc).__name__}: {exc}")
        log.error("sink %r failed to deliver %d event(s): %s", self.name, n, self.last_error)

    async def drain(self, timeout: float) -> bool:
        """Deliver what is queued, then stop the worker. True if everything went out."""
        self._closing = True
        self._wake.set()
        self._full.set()
        done = True
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout)
            except TimeoutError:
                done = False
                self._task.cancel()
                await asyncio.wait([self._task], timeout=1.0)
                left = len(self.queue)
                self.queue.clear()
                self.dropped += left
                self.metrics.inc("sink_dropped", left, sink=self.name)
                log.error("sink %r did not drain within %gs; %d queued event(s) not delivered "
                          "(counted as dropped), the batch in progress counted as failed",
                          self.name, timeout, left)
            except Exception:
                pass
        return done

    def status(self) -> dict[str, Any]:
        st = {"type": self.sink.options.get("type"), "delivered": self.delivered,
              "failed": self.failed, "dropped": self.dropped, "queue": len(self.queue),
              "healthy": self.sink.healthy(), "last_error": self.last_error}
        try:
            st.update(self.sink.stats())
        except Exception:
            pass
        return st


class Bus:
    """Routes the deliveries of one event to the sinks' runners.

    The in-process implementation; the interface (``deliver``, ``drain``) is
    what a distributed transport would implement.
    """

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.runners: dict[str, SinkRunner] = {}

    def add(self, name: str, sink: Sink, options: dict[str, Any]) -> SinkRunner:
        runner = SinkRunner(name, sink, options, self.metrics)
        self.runners[name] = runner
        runner.start()
        return runner

    async def remove(self, name: str, grace: float) -> None:
        runner = self.runners.pop(name, None)
        if runner is not None:
            await runner.drain(grace)

    async def deliver(self, deliveries: list[tuple[str, Delivery]]) -> None:
        held = _held.get()
        for sink_name, delivery in deliveries:
            runner = self.runners.get(sink_name)
            if runner is None:
                continue
            if held is not None and runner.sink.durable:
                batch = held.get(runner)
                if batch is None:
                    held[runner] = [delivery]
                else:
                    batch.append(delivery)
                continue
            if not runner.offer(delivery):
                await runner.put(delivery)

    @contextmanager
    def grouped(self) -> Iterator[None]:
        """Within the block, durable sinks get the current task's deliveries in one
        ``accept`` call at its end (one outbox transaction for a whole upstream frame
        instead of one per event). Other sinks and other tasks are not affected."""
        if _held.get() is not None:
            yield
            return
        held: dict[SinkRunner, list[Delivery]] = {}
        token = _held.set(held)
        try:
            yield
        finally:
            _held.reset(token)
            for runner, batch in held.items():
                current = self.runners.get(runner.name)   # a reload may have replaced it
                if current is not None:
                    current.accept(batch)

    async def drain(self, grace: float) -> bool:
        results = await asyncio.gather(*(r.drain(grace) for r in self.runners.values()))
        return all(results)

    def queue_depth(self) -> int:
        return sum(len(r.queue) for r in self.runners.values())
