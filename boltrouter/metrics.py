"""In-process counters, gauges and histograms, rendered as Prometheus text."""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from collections.abc import Iterable

Labels = tuple[tuple[str, str], ...]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0, 60.0)


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
        key = _labels(labels)
        series = self.histograms[name]
        hist = series.get(key)
        if hist is None:
            hist = series[key] = Histogram()
        hist.observe(value)

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
                if name in self.help:
                    out.append(f"# HELP {full} {self.help[name]}")
                out.append(f"# TYPE {full} {kind}")
                for labels, value in sorted(table[name].items()):
                    out.append(f"{full}{fmt(labels)} {value:g}")
        for name in sorted(self.histograms):
            full = prefix + name
            if name in self.help:
                out.append(f"# HELP {full} {self.help[name]}")
            out.append(f"# TYPE {full} histogram")
            for labels, hist in sorted(self.histograms[name].items(), key=lambda kv: kv[0]):
                cumulative = 0
                for bound, count in zip(hist.buckets, hist.counts):
                    cumulative += count
                    out.append(f"{full}_bucket{fmt(labels, (('le', f'{bound:g}'),))} {cumulative}")
                cumulative += hist.counts[-1]
                out.append(f"{full}_bucket{fmt(labels, (('le', '+Inf'),))} {cumulative}")
                out.append(f"{full}_sum{fmt(labels)} {hist.sum:g}")
                out.append(f"{full}_count{fmt(labels)} {hist.count}")
        return "\n".join(out) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
