"""In-process counters, gauges and histograms, rendered as Prometheus text."""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

Labels = tuple[tuple[str, str], ...]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0, 60.0)

HELP = {
    "events_in": "Events published, by type and feed.",
    "route_matched": "Events a route fired for.",
    "route_suppressed": "Events a route matched but throttle, cooldown or dedupe held back.",
    "route_errors": "Route templates or conditions that failed.",
    "sink_delivered": "Events a sink acknowledged.",
    "sink_failed": "Events a sink failed to deliver.",
    "sink_dropped": "Events dropped because the sink's queue was full.",
    "sink_queue_depth": "Events waiting in the sink's in-memory queue.",
    "sink_healthy": "1 when the sink reports itself healthy.",
    "outbox_size": "Deliveries waiting in a durable sink's on-disk outbox.",
    "dead_letters": "Deliveries a durable sink gave up on.",
    "feed_reconnects": "Times a feed's connection dropped and was re-established.",
    "feed_connected": "1 while the feed is connected.",
    "feed_last_message_age_seconds": "Seconds since the feed's last message.",
    "sink_latency_seconds": "From receipt by boltrouter to the sink's acknowledgement.",
    "feed_to_sink_latency_seconds": "From the feed's own timestamp to the sink's acknowledgement.",
    "reloads": "Config reloads, applied or rejected.",
    "queue_depth": "Events waiting in every sink queue together.",
    "uptime_seconds": "Seconds since the daemon started.",
}
"""Help text of the metrics boltrouter itself keeps (plugins may ``describe`` theirs)."""


def _labels(kw: dict[str, object]) -> Labels:
    return tuple(sorted((k, str(v)) for k, v in kw.items()))


class Histogram:
    __slots__ = ("buckets", "count", "counts", "sum")

    def __init__(self, buckets: Iterable[float] = LATENCY_BUCKETS) -> None:
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1


class Metrics:
    """A small registry. Names are Prometheus names without the ``boltrouter_`` prefix."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counters: dict[str, dict[Labels, float]] = defaultdict(lambda: defaultdict(float))
        self.gauges: dict[str, dict[Labels, float]] = defaultdict(dict)
        self.histograms: dict[str, dict[Labels, Histogram]] = defaultdict(dict)
        self.help: dict[str, str] = {}

    def inc(self, name: str, value: float = 1, **labels: object) -> None:
        self.counters[name][_labels(labels)] += value

    def set(self, name: str, value: float, **labels: object) -> None:
        self.gauges[name][_labels(labels)] = value

    def observe(self, name: str, value: float, **labels: object) -> None:
        self.histogram(name, **labels).observe(value)

    def histogram(self, name: str, **labels: object) -> Histogram:
        key = _labels(labels)
        series = self.histograms[name]
        hist = series.get(key)
        if hist is None:
            hist = series[key] = Histogram()
        return hist

    def acknowledged(self, sink: str, events: Iterable[Any], *, from_disk: bool = False) -> None:
        """Record the latency of events a sink just acknowledged.

        ``sink_latency_seconds``: from receipt by boltrouter; ``feed_to_sink_latency_seconds``:
        from the feed's own timestamp (``event.time``), so upstream delay counts too.
        Durable sinks pass ``from_disk=True`` for events read back from their outbox:
        receipt is then taken from ``event.received`` (the in-memory clock is gone).
        """
        mono, wall = time.monotonic(), time.time()
        from_receipt = self.histogram("sink_latency_seconds", sink=sink)
        from_feed = self.histogram("feed_to_sink_latency_seconds", sink=sink)
        for event in events:
            if from_disk:
                received = _epoch(event.received)
                if received is not None:
                    from_receipt.observe(max(0.0, wall - received))
            else:
                from_receipt.observe(mono - event.mono)
            stamp = _epoch(event.time)
            if stamp is not None:
                from_feed.observe(max(0.0, wall - stamp))

    def get(self, name: str, **labels: object) -> float:
        key = _labels(labels)
        if name in self.counters:
            return self.counters[name].get(key, 0.0)
        return self.gauges.get(name, {}).get(key, 0.0)

    def total(self, name: str, **match: object) -> float:
        """Sum of a counter over every series whose labels include ``match``."""
        want = {(k, str(v)) for k, v in match.items()}
        return sum(v for key, v in self.counters.get(name, {}).items() if want <= set(key))

    def describe(self, name: str, text: str) -> None:
        self.help[name] = text

    def render(self, prefix: str = "boltrouter_") -> str:
        out: list[str] = []

        def fmt(labels: Labels, extra: Labels = ()) -> str:
            allp = labels + extra
            if not allp:
                return ""
            inner = ",".join(f'{k}="{_escape(v)}"' for k, v in allp)
            return "{" + inner + "}"

        for kind, table in (("counter", self.counters), ("gauge", self.gauges)):
            for name in sorted(table):
                full = prefix + name + ("_total" if kind == "counter" else "")
                if name in self.help or name in HELP:
                    out.append(f"# HELP {full} {self.help.get(name) or HELP[name]}")
                out.append(f"# TYPE {full} {kind}")
                for labels, value in sorted(table[name].items()):
                    out.append(f"{full}{fmt(labels)} {_number(value)}")
        for name in sorted(self.histograms):
            full = prefix + name
            if name in self.help or name in HELP:
                out.append(f"# HELP {full} {self.help.get(name) or HELP[name]}")
            out.append(f"# TYPE {full} histogram")
            for labels, hist in sorted(self.histograms[name].items(), key=lambda kv: kv[0]):
                cumulative = 0
                for bound, count in zip(hist.buckets, hist.counts):
                    cumulative += count
                    out.append(f"{full}_bucket{fmt(labels, (('le', f'{bound:g}'),))} {cumulative}")
                cumulative += hist.counts[-1]
                out.append(f"{full}_bucket{fmt(labels, (('le', '+Inf'),))} {cumulative}")
                out.append(f"{full}_sum{fmt(labels)} {_number(hist.sum)}")
                out.append(f"{full}_count{fmt(labels)} {hist.count}")
        return "\n".join(out) + "\n"


def _number(value: float) -> str:
    """A sample value in full precision (``{:g}`` would turn 1234567 into 1.23457e+06)."""
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


@lru_cache(maxsize=4096)
def _epoch(iso: str) -> float | None:
    try:
        moment = datetime.fromisoformat(iso)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
