"""Routes: which events go to which sinks. (Minimal version; full conditions to come.)"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

from .config import Validator, did_you_mean, one_of
from .events import Event
from .metrics import Metrics
from .sink import Delivery


@dataclass
class Target:
    sink: str
    payload: str | None = None
    topic: str | None = None


@dataclass
class Route:
    name: str
    when: dict[str, list[str]]
    targets: list[Target]
    raw: dict[str, Any] = field(default_factory=dict)

    def matches(self, event: Event) -> bool:
        for path, patterns in self.when.items():
            value = event.get(path)
            sval = "" if value is None else str(value)
            if not any(fnmatch.fnmatchcase(sval, p) for p in patterns):
                return False
        return True


def compile_routes(raw: list[Any], sink_names: set[str], v: Validator,
                   rule_names: set[str] | None = None) -> list[Route]:
    routes = []
    for i, r in enumerate(raw):
        path = ("routes", i)
        if not isinstance(r, dict):
            v.error(path, "a route must be a mapping with 'name', 'when' and 'to'")
            continue
        name = str(r.get("name") or f"route-{i + 1}")
        when = {k: [str(x) for x in (val if isinstance(val, list) else [val])]
                for k, val in (r.get("when") or {}).items()}
        to = r.get("to")
        to_list = to if isinstance(to, list) else [to]
        targets = []
        for j, t in enumerate(to_list):
            tpath = path + ("to", j) if isinstance(to, list) else path + ("to",)
            sink = t.get("sink") if isinstance(t, dict) else t
            if sink not in sink_names:
                v.error(tpath, f"unknown sink {sink!r}{did_you_mean(sink, sorted(sink_names))} "
                               f"({one_of(sink_names)})")
                continue
            targets.append(Target(sink, t.get("payload") if isinstance(t, dict) else None))
        routes.append(Route(name, when, targets, r))
    return routes


class RouteTable:
    def __init__(self, routes: list[Route], metrics: Metrics) -> None:
        self.routes = routes
        self.metrics = metrics

    def match(self, event: Event) -> list[tuple[str, Delivery]]:
        out = []
        for route in self.routes:
            if route.matches(event):
                self.metrics.inc("route_matched", route=route.name)
                for t in route.targets:
                    out.append((t.sink, Delivery(event, route.name, t.payload, t.topic)))
        return out

    def stats(self) -> dict[str, dict[str, float]]:
        return {r.name: {"fired": self.metrics.get("route_matched", route=r.name),
                         "suppressed": self.metrics.total("route_suppressed", route=r.name)}
                for r in self.routes}
