"""Routes: which events go to which sinks, and under which conditions.

A route is compiled once from the config. ``when`` holds per-field conditions:
an exact value, a shell glob, a list of either, a transition ``{from, to}`` or a
threshold ``{above, below}``. ``if`` is a sandboxed Jinja2 expression;
``throttle``, ``cooldown`` and ``dedupe`` suppress repeats per key.

``RouteTable.match`` does not look at every route: routes are indexed by their
exact ``type`` and, within a type, by one more exact-valued field (the one most
of them use, typically ``game``), so a thousand routes on different games cost
about as much as ten.
"""

from __future__ import annotations

import logging
import operator
import re
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from fnmatch import translate
from time import time as wall_time
from typing import Any

import orjson

from .config import Validator, did_you_mean, format_path, one_of, parse_duration
from .events import ENVELOPE_FIELDS, EVENT_TYPES, Event
from .metrics import Metrics
from .sink import Delivery
from .templates import TemplateConfigError, compile_expression, compile_template

log = logging.getLogger("boltrouter.routes")

ROUTE_KEYS = ("name", "when", "if", "for", "throttle", "cooldown", "dedupe", "to", "enabled")
TARGET_KEYS = ("sink", "payload", "topic")
DATA_SHORTHANDS = ("market", "outcome", "target", "line", "over_under")
"""``when`` keys that mean ``data.<key>`` (the fields of an odds line)."""

MAX_KEYS = 100_000
"""Most keys one route remembers per kind of state; the least recently used go first."""

_CORE_TYPE_PREFIXES = frozenset(t.split(".", 1)[0] for t in EVENT_TYPES)
_BUILTIN_FEEDS = ("odds", "scores", "playbyplay", "rest")
_GLOB_CHARS = re.compile(r"[*?\[]")
_INDEX_PREFERENCE = ("game", "universal_id", "data.market", "sportsbook", "sport",
                     "data.outcome", "home", "away", "feed")
_MIN_INDEXED = 4
"""Type buckets with fewer routes than this are scanned without a second index."""
_MERGED_MAX = 4096
"""Most merged candidate lists a table keeps (emptied and refilled when reached)."""


# --- values ------------------------------------------------------------------------

def normalize(value: Any) -> Any:
    """The comparison key of a value: numbers and booleans compare by value."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return orjson.dumps(value, default=str, option=orjson.OPT_SORT_KEYS).decode()


def _hashable(value: Any) -> Hashable:
    if isinstance(value, (dict, list)):
        return normalize(value)
    return value


def glob_problem(pattern: str) -> str | None:
    """Why a shell glob is invalid (an unclosed ``[``), or None."""
    i, n = 0, len(pattern)
    while i < n:
        if pattern[i] == "[":
            j = i + 1
            if j < n and pattern[j] == "!":
                j += 1
            if j < n and pattern[j] == "]":
                j += 1
            while j < n and pattern[j] != "]":
                j += 1
            if j >= n:
                return (f"glob {pattern!r} has an unclosed '['; close it, or write '[[]' "
                        "to match a literal '['")
            i = j
        i += 1
    return None


class Matcher:
    """Exact values (a set lookup) and shell globs (one compiled regex)."""

    __slots__ = ("exact", "regex", "text")

    def __init__(self, values: list[Any]) -> None:
        exact: set[Any] = set()
        globs: list[str] = []
        for value in values:
            if isinstance(value, str) and _GLOB_CHARS.search(value):
                globs.append(value)
            else:
                exact.add(normalize(value))
        self.exact = frozenset(exact)
        self.regex = re.compile("|".join(f"(?:{translate(g)})" for g in globs)) if globs \
            else None
        self.text = ", ".join(repr(v) for v in values)

    def test(self, key: Any) -> bool:
        """``key`` is a normalized value."""
        if key in self.exact:
            return True
        return self.regex is not None and key is not None and self.regex.match(key) is not None


# --- field paths ---------------------------------------------------------------------

Getter = Callable[[Event], Any]


def resolve_field(name: Any) -> str | None:
    """The canonical path of a field name in ``when``/keys, or None if it is unknown."""
    if not isinstance(name, str):
        return None
    if name in ENVELOPE_FIELDS or name == "data":
        return name
    if name in DATA_SHORTHANDS:
        return "data." + name
    if name.startswith("data.") and all(name.split(".")[1:]):
        return name
    return None


def field_error(name: Any) -> str:
    known = list(ENVELOPE_FIELDS) + list(DATA_SHORTHANDS)
    return (f"unknown field {name!r}{did_you_mean(name, known)} (use an envelope field: "
            f"{', '.join(ENVELOPE_FIELDS)}, or data.<path> such as data.outcome)")


def getter(path: str) -> Getter:
    if "." not in path:
        if path == "data":
            return operator.attrgetter("data")
        return operator.attrgetter(path)
    rest = path[len("data."):]
    if "." not in rest:
        return lambda event: event.data.get(rest)
    return lambda event: event.get(path)


def _default_entity(event: Event) -> tuple[Any, ...]:
    return (event.universal_id or event.game, event.sportsbook,
            _hashable(event.data.get("outcome")))


def key_getter(paths: list[str]) -> Callable[[Event], tuple[Any, ...]]:
    getters = [getter(p) for p in paths]
    if not getters:
        return lambda event: ()
    return lambda event: tuple(_hashable(g(event)) for g in getters)


# --- per-route state ---------------------------------------------------------------------

class LruMap:
    """A bounded map; the least recently written keys are dropped first."""

    __slots__ = ("data", "cap")

    def __init__(self, cap: int = MAX_KEYS) -> None:
        self.data: OrderedDict[Hashable, Any] = OrderedDict()
        self.cap = cap

    def get(self, key: Hashable, default: Any = None) -> Any:
        return self.data.get(key, default)

    def put(self, key: Hashable, value: Any) -> None:
        data = self.data
        data[key] = value
        data.move_to_end(key)
        if len(data) > self.cap:
            data.popitem(last=False)

    def __len__(self) -> int:
        return len(self.data)


class Window:
    """Times keys were last recorded; a key is active for ``period`` seconds after.

    Entries older than the period expire as new ones arrive, and there are never
    more than ``cap`` of them.
    """

    __slots__ = ("period", "seen", "cap")

    def __init__(self, period: float, cap: int = MAX_KEYS) -> None:
        self.period = period
        self.seen: OrderedDict[Hashable, float] = OrderedDict()
        self.cap = cap

    def active(self, key: Hashable, now: float) -> bool:
        t = self.seen.get(key)
        return t is not None and t <= now < t + self.period

    def record(self, key: Hashable, now: float) -> None:
        seen = self.seen
        seen[key] = now
        seen.move_to_end(key)
        while seen:
            oldest_key, oldest = next(iter(seen.items()))
            if len(seen) > self.cap or oldest + self.period <= now:
                del seen[oldest_key]
            else:
                break

    def __len__(self) -> int:
        return len(self.seen)


# --- conditions ---------------------------------------------------------------------------

@dataclass(eq=False)
class Static:
    """A stateless condition on one field."""

    path: str
    get: Getter
    matcher: Matcher


@dataclass(eq=False)
class Transition:
    """Fires when the field's value for an entity changes from ``from`` to ``to``."""

    path: str
    get: Getter
    before: Matcher | None
    after: Matcher | None

    def step(self, event: Event, entity: tuple[Any, ...], state: LruMap) -> bool:
        value = self.get(event)
        if value is None:
            return False
        new = normalize(value)
        prev = state.data.get(entity, _MISSING)
        if prev is _MISSING or prev != new:
            state.put(entity, new)
        if prev is _MISSING or prev == new:
            return False
        return ((self.before is None or self.before.test(prev))
                and (self.after is None or self.after.test(new)))


@dataclass(eq=False)
class Threshold:
    """Fires once when a number enters (above, below) for an entity, again only after
    it left the range and came back."""

    path: str
    get: Getter
    above: float | None
    below: float | None

    def step(self, event: Event, entity: tuple[Any, ...], state: LruMap) -> bool:
        number = _number(self.get(event))
        if number is None:
            return False
        inside = ((self.above is None or number > self.above)
                  and (self.below is None or number < self.below))
        was_inside = state.data.get(entity, _MISSING)
        if inside != was_inside:    # also a first sighting: remembered either way
            state.put(entity, inside)
        return inside and was_inside is not True


_MISSING = object()


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        try:
            number = float(str(value).strip())
        except ValueError:
            return None
    return number if number == number else None


# --- routes ----------------------------------------------------------------------------

@dataclass(eq=False)
class Target:
    sink: str
    payload: str | None = None
    topic: str | None = None
    render_payload: Callable[[Event], str] | None = None
    render_topic: Callable[[Event], str] | None = None


@dataclass(eq=False)
class Limit:
    """throttle, cooldown or dedupe: a period and the fields of its key."""

    period: float
    key: Callable[[Event], tuple[Any, ...]]


@dataclass(eq=False)
class RouteState:
    """Everything a route remembers; carried over a reload when its conditions stay."""

    entities: list[LruMap] = field(default_factory=list)
    throttle: Window | None = None
    cooldown: Window | None = None
    dedupe: Window | None = None
    logged_errors: set[str] = field(default_factory=set)


@dataclass(eq=False)
class Route:
    name: str
    index: int
    targets: list[Target]
    static: list[Static] = field(default_factory=list)
    stateful: list[Transition | Threshold] = field(default_factory=list)
    entity: Callable[[Event], tuple[Any, ...]] = _default_entity
    condition: Callable[[Event], bool] | None = None
    throttle: Limit | None = None
    cooldown: Limit | None = None
    dedupe: Limit | None = None
    enabled: bool = True
    signature: bytes = b""
    raw: dict[str, Any] = field(default_factory=dict)
    state: RouteState = field(default_factory=RouteState)
    checks: tuple[tuple[Getter, frozenset[Any], re.Pattern[str] | None], ...] = ()
    """``static`` flattened for matching, the hot path, without an exact ``type``
    condition: the route table offers the route only to events of those types; set by
    ``seal``."""
    limited: bool = False
    """True when the route has a throttle, cooldown or dedupe; set by ``seal``."""
    plain_sinks: tuple[str, ...] | None = None
    """The sinks of the targets when none renders a template (deliveries are then the
    event and the route's name alone); set by ``seal``."""

    def seal(self) -> None:
        """Derive what matching reads on every event, once the conditions are compiled."""
        self.checks = tuple((c.get, c.matcher.exact, c.matcher.regex) for c in self.static
                            if c.path != "type" or c.matcher.regex is not None)
        self.limited = (self.throttle is not None or self.cooldown is not None
                        or self.dedupe is not None)
        self.plain_sinks = None if any(t.render_payload is not None
                                       or t.render_topic is not None
                                       for t in self.targets) \
            else tuple(t.sink for t in self.targets)

    def new_state(self) -> RouteState:
        return RouteState(
            entities=[LruMap() for _ in self.stateful],
            throttle=Window(self.throttle.period) if self.throttle else None,
            cooldown=Window(self.cooldown.period) if self.cooldown else None,
            dedupe=Window(self.dedupe.period) if self.dedupe else None,
        )

    def exact(self, path: str) -> frozenset[Any] | None:
        """The exact values this route requires for ``path`` (None: no such condition)."""
        for cond in self.static:
            if cond.path == path and cond.matcher.regex is None:
                return cond.matcher.exact
        return None

    def step_state(self, event: Event, entity: tuple[Any, ...]) -> bool:
        """Feed transitions and thresholds the event's ``entity`` (``self.entity(event)``);
        True when every one of them fires."""
        fired = True
        for cond, state in zip(self.stateful, self.state.entities):
            if not cond.step(event, entity, state):
                fired = False
        return fired

    def suppressed(self, event: Event, now: float) -> str | None:
        """Why this firing is suppressed (dedupe, cooldown, throttle), or None."""
        st = self.state
        if self.dedupe is not None and st.dedupe is not None:
            key = self.dedupe.key(event)
            seen = st.dedupe.active(key, now)
            st.dedupe.record(key, now)
            if seen:
                return "dedupe"
        if self.cooldown is not None and st.cooldown is not None \
                and st.cooldown.active(self.cooldown.key(event), now):
            return "cooldown"
        if self.throttle is not None and st.throttle is not None \
                and st.throttle.active(self.throttle.key(event), now):
            return "throttle"
        return None

    def fired(self, event: Event, now: float) -> None:
        st = self.state
        if self.cooldown is not None and st.cooldown is not None:
            st.cooldown.record(self.cooldown.key(event), now)
        if self.throttle is not None and st.throttle is not None:
            st.throttle.record(self.throttle.key(event), now)

    def deliveries(self, event: Event) -> list[tuple[str, Delivery]]:
        out = []
        for t in self.targets:
            payload = t.render_payload(event) if t.render_payload is not None else None
            topic = t.render_topic(event) if t.render_topic is not None else None
            out.append((t.sink, Delivery(event, self.name, payload, topic)))
        return out


# --- compiling --------------------------------------------------------------------------

PathT = tuple[Any, ...]


class _Compiler:
    def __init__(self, sink_names: set[str], v: Validator, rule_names: set[str]) -> None:
        self.sinks = sink_names
        self.v = v
        self.rules = rule_names
        self.ok = True

    def error(self, path: PathT, message: str) -> None:
        self.ok = False
        self.v.error(path, message)

    def values(self, raw: Any, path: PathT, what: str) -> Matcher | None:
        items = raw if isinstance(raw, list) else [raw]
        if isinstance(raw, list) and not raw:
            self.error(path, f"{what}: an empty list matches nothing; give at least one value")
            return None
        good = True
        for i, item in enumerate(items):
            ipath = path + (i,) if isinstance(raw, list) else path
            if isinstance(item, (dict, list)):
                self.error(ipath, f"{what}: expected a value or a glob, not "
                                  f"{'a mapping' if isinstance(item, dict) else 'a list'}")
                good = False
            elif isinstance(item, str) and (problem := glob_problem(item)):
                self.error(ipath, problem)
                good = False
        return Matcher(items) if good else None

    def check_known_values(self, path: str, matcher: Matcher, where: PathT) -> None:
        """Near-misses of built-in event types and of feed/rule names are typos."""
        for value in matcher.exact:
            if not isinstance(value, str):
                continue
            if path == "type" and value not in EVENT_TYPES \
                    and value.split(".", 1)[0] in _CORE_TYPE_PREFIXES:
                prefix = value.split(".", 1)[0] + "."
                same = [t for t in EVENT_TYPES if t.startswith(prefix)]
                self.error(where, f"unknown event type {value!r}"
                                  f"{did_you_mean(value, list(EVENT_TYPES))} "
                                  f"({one_of(same)}; globs like {prefix + '*'!r} work too)")
            elif path == "feed":
                known = list(_BUILTIN_FEEDS) + sorted(self.rules)
                hint = did_you_mean(value, known)
                if value not in known and hint:
                    self.error(where, f"unknown feed or rule {value!r}{hint}")

    def condition(self, key: Any, raw: Any, path: PathT,
                  route: Route) -> None:
        resolved = resolve_field(key)
        if resolved is None:
            self.error(path, field_error(key))
            return
        get = getter(resolved)
        if not isinstance(raw, dict):
            matcher = self.values(raw, path, resolved)
            if matcher is not None:
                self.check_known_values(resolved, matcher, path)
                route.static.append(Static(resolved, get, matcher))
            return
        keys = set(raw)
        if keys and keys <= {"from", "to"}:
            before = self.values(raw["from"], path + ("from",), "from") if "from" in raw else None
            after = self.values(raw["to"], path + ("to",), "to") if "to" in raw else None
            route.stateful.append(Transition(resolved, get, before, after))
            return
        if keys and keys <= {"above", "below"}:
            bounds: dict[str, float | None] = {"above": None, "below": None}
            for bound in ("above", "below"):
                if bound not in raw:
                    continue
                number = raw[bound]
                if isinstance(number, bool) or not isinstance(number, (int, float)):
                    self.error(path + (bound,), f"{bound} must be a number, not {number!r}")
                    return
                bounds[bound] = float(number)
            low, high = bounds["above"], bounds["below"]
            if low is not None and high is not None and low >= high:
                self.error(path, f"above ({low:g}) must be lower than below ({high:g}), "
                                 "or nothing can ever be inside the range")
                return
            route.stateful.append(Threshold(resolved, get, low, high))
            return
        allowed = ["from", "to", "above", "below"]
        unknown = sorted(str(k) for k in keys - set(allowed))
        if unknown:
            self.error(path + (unknown[0],),
                       f"unknown condition {unknown[0]!r}{did_you_mean(unknown[0], allowed)} "
                       "(a mapping here is a transition {from, to} or a threshold "
                       "{above, below})")
        else:
            self.error(path, "mix either from/to (a transition) or above/below (a threshold), "
                             "not both")

    def fields(self, raw: Any, path: PathT) -> list[str] | None:
        items = raw if isinstance(raw, list) else [raw]
        out = []
        for i, item in enumerate(items):
            resolved = resolve_field(item)
            if resolved is None:
                self.error(path + (i,) if isinstance(raw, list) else path, field_error(item))
                return None
            out.append(resolved)
        return out

    def limit(self, raw: Any, path: PathT, period_key: str,
              default_key: list[str]) -> Limit | None:
        if not isinstance(raw, dict):
            raw = {period_key: raw}
        allowed = ["key", period_key]
        for k in raw:
            if k not in allowed:
                self.error(path + (k,), f"unknown key {k!r}{did_you_mean(k, allowed)} "
                                        f"({one_of(allowed)})")
                return None
        if raw.get(period_key) is None:
            self.error(path + (period_key,), f"is required: a duration like 60s or 10m "
                                             f"(e.g. {{{period_key}: 60s}})")
            return None
        try:
            period = parse_duration(raw[period_key])
        except ValueError as exc:
            self.error(path + (period_key,), str(exc))
            return None
        if period <= 0:
            self.error(path + (period_key,), "must be longer than 0s")
            return None
        paths = self.fields(raw["key"], path + ("key",)) if "key" in raw else default_key
        if paths is None:
            return None
        return Limit(period, key_getter(paths))

    def template(self, source: Any, path: PathT, compile_: Callable[[Any], Any]) -> Any:
        if isinstance(source, dict):
            self.error(path, "must be a quoted string: YAML reads an unquoted {{ ... }} as a "
                             "mapping; write it as \"{{ ... }}\"")
            return None
        try:
            return compile_(source)
        except TemplateConfigError as exc:
            self.error(path, str(exc))
            return None

    def targets(self, raw: Any, path: PathT) -> list[Target]:
        if raw is None:
            self.error(path, f"is required: a sink name, a list, or {{sink, payload}} items "
                             f"({one_of(self.sinks)})")
            return []
        items = raw if isinstance(raw, list) else [raw]
        out = []
        for j, item in enumerate(items):
            tpath = path + (j,) if isinstance(raw, list) else path
            target = Target("")
            if isinstance(item, dict):
                for k in item:
                    if k not in TARGET_KEYS:
                        self.error(tpath + (k,), f"unknown key {k!r}"
                                                 f"{did_you_mean(k, TARGET_KEYS)} "
                                                 f"({one_of(TARGET_KEYS)})")
                sink = item.get("sink")
                for k in ("payload", "topic"):
                    src = item.get(k)
                    if src is None:
                        continue
                    render = self.template(src, tpath + (k,), compile_template)
                    setattr(target, k, src)
                    setattr(target, f"render_{k}", render)
                if sink is None:
                    self.error(tpath, f"needs 'sink' ({one_of(self.sinks)})")
                    continue
            else:
                sink = item
            if not isinstance(sink, str) or sink not in self.sinks:
                self.error(tpath, f"unknown sink {sink!r}"
                                  f"{did_you_mean(str(sink), sorted(self.sinks))} "
                                  f"({one_of(self.sinks)})")
                continue
            target.sink = sink
            out.append(target)
        return out

    def route(self, r: Any, i: int, names: dict[str, int]) -> Route | None:
        path: PathT = ("routes", i)
        if not isinstance(r, dict):
            self.error(path, "a route must be a mapping with 'when' and 'to' "
                             "(and usually a 'name')")
            return None
        self.ok = True
        for k in r:
            if k not in ROUTE_KEYS:
                self.error(path + (k,), f"unknown key {k!r}{did_you_mean(str(k), ROUTE_KEYS)} "
                                        f"({one_of(ROUTE_KEYS)})")
        name = r.get("name")
        if name is None:
            name = f"route-{i + 1}"
        elif isinstance(name, (int, float)) and not isinstance(name, bool):
            name = str(name)
        elif not isinstance(name, str) or not name.strip():
            hint = (" (YAML reads unquoted yes/no/on/off as true/false: quote the name)"
                    if isinstance(name, bool) else "")
            self.error(path + ("name",), f"must be a non-empty string{hint}")
            name = f"route-{i + 1}"
        if name in names:
            self.error(path + ("name",), f"route name {name!r} is already used by "
                                         f"{format_path(('routes', names[name]))}; "
                                         "names must be unique")
        names.setdefault(name, i)
        enabled = r.get("enabled", True)
        if not isinstance(enabled, bool):
            self.error(path + ("enabled",), "must be true or false")
            enabled = True
        route = Route(name, i, self.targets(r.get("to"), path + ("to",)), enabled=enabled, raw=r)
        when = r.get("when")
        if when is None:
            self.error(path + ("when",), "is required: the conditions an event must meet, "
                                         "e.g. {type: score.changed}; {type: '*'} matches all")
        elif not isinstance(when, dict):
            self.error(path + ("when",), "must be a mapping of field: value, e.g. "
                                         "{type: odds.line_changed, sport: NBA}")
        else:
            for key, raw in when.items():
                self.condition(key, raw, path + ("when", key), route)
        if "for" in r:
            entity = self.fields(r["for"], path + ("for",))
            if entity is not None:
                route.entity = key_getter(entity)
        if r.get("if") is not None:
            route.condition = self.template(r["if"], path + ("if",), compile_expression)
        for kind, period_key, default_key in (("throttle", "every", []),
                                              ("cooldown", "for", []),
                                              ("dedupe", "window", ["id"])):
            if r.get(kind) is not None:
                setattr(route, kind, self.limit(r[kind], path + (kind,), period_key,
                                                default_key))
        route.signature = orjson.dumps(
            {k: r.get(k) for k in ("when", "if", "for", "throttle", "cooldown", "dedupe")},
            default=str, option=orjson.OPT_SORT_KEYS)
        route.state = route.new_state()
        route.seal()
        return route if self.ok else None


def compile_routes(raw: list[Any], sink_names: set[str], v: Validator,
                   rule_names: set[str] | None = None) -> list[Route]:
    """Compile the ``routes`` section; problems are reported through ``v`` with their path.

    ``rule_names`` are the configured rules: rule events carry the rule's name in
    ``feed``, so ``when: {feed: ...}`` may name them.
    """
    if not isinstance(raw, list):
        v.error(("routes",), "must be a list of routes (each with when and to)")
        return []
    compiler = _Compiler(set(sink_names), v, set(rule_names or ()))
    names: dict[str, int] = {}
    routes = []
    for i, r in enumerate(raw):
        route = compiler.route(r, i, names)
        if route is not None:
            routes.append(route)
    return routes


# --- matching --------------------------------------------------------------------------

def event_seconds(event: Event) -> float:
    """The event's receive time in seconds (so replays throttle like the live run did)."""
    try:
        return datetime.fromisoformat(event.received).timestamp()
    except (TypeError, ValueError):
        return wall_time()


@dataclass(eq=False)
class _Bucket:
    """The routes of one exact event type, indexed by one more exact field."""

    get: Getter | None
    by_value: dict[Any, list[Route]]
    rest: list[Route]

    def candidates(self, event: Event) -> list[Route]:
        if self.get is None:
            return self.rest
        hit = self.by_value.get(normalize(self.get(event)))
        return self.rest if hit is None else hit


def _order(route: Route) -> int:
    return route.index


def _index_on(routes: list[Route], path: str) -> tuple[dict[Any, list[Route]], list[Route]]:
    """Routes by each exact value they require for ``path``, and the routes that do not."""
    by_value: dict[Any, list[Route]] = {}
    rest = []
    for route in routes:
        values = route.exact(path)
        if values is None:
            rest.append(route)
            continue
        for value in values:
            by_value.setdefault(value, []).append(route)
    return by_value, rest


def _bucket(routes: list[Route]) -> _Bucket:
    """Index ``routes`` on the field that leaves the fewest candidates per event: the
    routes without an exact value for it, plus the average number sharing a value."""
    if len(routes) < _MIN_INDEXED:
        return _Bucket(None, {}, routes)
    paths = {cond.path for route in routes for cond in route.static
             if cond.path != "type" and cond.matcher.regex is None}
    best: tuple[float, int, str, dict[Any, list[Route]], list[Route]] | None = None
    for path in paths:
        by_value, rest = _index_on(routes, path)
        if len(by_value) < 2 and not rest:
            continue
        cost = len(rest) + sum(map(len, by_value.values())) / max(len(by_value), 1)
        pref = _INDEX_PREFERENCE.index(path) if path in _INDEX_PREFERENCE else 99
        if best is None or (cost, pref) < best[:2]:
            best = (cost, pref, path, by_value, rest)
    if best is None or best[0] >= len(routes) * 0.75:  # not worth a lookup
        return _Bucket(None, {}, routes)
    _, _, path, by_value, rest = best
    if rest:   # each value's routes merged with the rest once, in config order
        by_value = {value: sorted(hit + rest, key=_order) for value, hit in by_value.items()}
    return _Bucket(getter(path), by_value, rest)


class RouteTable:
    """The compiled routes, indexed for matching, with their metrics."""

    def __init__(self, routes: list[Route], metrics: Metrics) -> None:
        self.routes = routes
        self.metrics = metrics
        self._matched = metrics.counters["route_matched"]
        """The ``route_matched`` counters, keyed by each route's label (the hot path)."""
        self._label = {id(r): (("route", r.name),) for r in routes}
        by_type: dict[Any, list[Route]] = {}
        any_type: list[Route] = []
        for route in routes:
            if not route.enabled:
                continue
            types = route.exact("type")
            if types is None:
                any_type.append(route)
            else:
                for t in types:
                    by_type.setdefault(t, []).append(route)
        self._buckets = {t: _bucket(rs) for t, rs in by_type.items()}
        self._any = _bucket(any_type)
        """Routes with a type glob (or no type), indexed by their next best field."""
        self._empty = _Bucket(None, {}, [])
        self._merged: dict[tuple[int, int], list[Route]] = {}
        """The candidates of a typed bucket's list and a typeless one's, merged in config
        order, by the ids of the two lists (they live as long as the table)."""

    def candidates(self, event: Event) -> list[Route]:
        """The routes that may match ``event`` (in config order), found through the index."""
        found = self._buckets.get(event.type, self._empty).candidates(event)
        more = self._any.candidates(event)
        if not more:
            return found
        if not found:
            return more
        key = (id(found), id(more))
        merged = self._merged.get(key)
        if merged is None:
            if len(self._merged) >= _MERGED_MAX:
                self._merged.clear()
            merged = self._merged[key] = sorted(found + more, key=_order)
        return merged

    def match(self, event: Event) -> list[tuple[str, Delivery]]:
        """Where ``event`` goes: ``[(sink name, Delivery)]`` over every route that fires."""
        out: list[tuple[str, Delivery]] = []
        now: float | None = None
        entity_of: Callable[[Event], tuple[Any, ...]] | None = None
        entity: tuple[Any, ...] = ()
        for route in self.candidates(event):
            for get, exact, regex in route.checks:     # the stateless part of ``when``
                key = get(event)
                if key is not None and type(key) is not str:
                    key = normalize(key)
                if key not in exact and (regex is None or key is None
                                         or regex.match(key) is None):
                    break
            else:
                if route.stateful:
                    if route.entity is not entity_of:   # routes keyed alike share it
                        entity_of = route.entity
                        entity = entity_of(event)
                    if not route.step_state(event, entity):
                        continue
                if route.condition is not None:
                    try:
                        if not route.condition(event):
                            continue
                    except Exception as exc:
                        self._failed(route, "if", exc)
                        continue
                if route.limited:
                    if now is None:
                        now = event_seconds(event)
                    reason = route.suppressed(event, now)
                    if reason is not None:
                        self.metrics.inc("route_suppressed", route=route.name, reason=reason)
                        continue
                sinks = route.plain_sinks
                if sinks is None:
                    try:
                        deliveries = route.deliveries(event)
                    except Exception as exc:
                        self._failed(route, "a payload or topic template", exc)
                        continue
                    out.extend(deliveries)
                else:
                    name = route.name
                    for sink in sinks:
                        out.append((sink, Delivery(event, name)))
                if route.limited and now is not None:
                    route.fired(event, now)
                self._matched[self._label[id(route)]] += 1
        return out

    def _failed(self, route: Route, what: str, exc: Exception) -> None:
        self.metrics.inc("route_errors", route=route.name)
        message = f"{type(exc).__name__}: {exc}"
        logged = route.state.logged_errors
        if message not in logged and len(logged) < 20:
            logged.add(message)
            log.warning("route %s: %s failed (%s); the route did not fire. Further "
                        "identical errors are only counted (route_errors).",
                        route.name, what, message)

    def updated(self, new_routes: Iterable[Route]) -> RouteTable:
        """A table of ``new_routes`` that keeps the throttle, cooldown, dedupe, transition
        and threshold state of every route whose name and conditions did not change."""
        old = {r.name: r for r in self.routes}
        routes = list(new_routes)
        for route in routes:
            prev = old.get(route.name)
            if prev is not None and prev.signature == route.signature:
                route.state = prev.state
        return RouteTable(routes, self.metrics)

    def stats(self) -> dict[str, dict[str, float]]:
        return {r.name: {"fired": self.metrics.get("route_matched", route=r.name),
                         "suppressed": self.metrics.total("route_suppressed", route=r.name)}
                for r in self.routes}

