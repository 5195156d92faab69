"""YAML -> validated config. Every error names file:line, the path, what is wrong
and what would be valid.

Schemas are small declarative ``Field`` trees. Sinks, rules and feeds declare the
options they accept as ``options_schema`` on their class, so a plugin's options
are checked exactly like the built-in ones.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .secrets import register_secret

PathT = tuple[Any, ...]


# --- errors ----------------------------------------------------------------------

@dataclass
class ConfigError:
    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path or '(top level)'}: {self.message}"


class ConfigErrors(Exception):
    def __init__(self, errors: list[ConfigError]) -> None:
        self.errors = errors
        super().__init__("\n".join(str(e) for e in errors))


def format_path(path: PathT) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def one_of(choices: Sequence[str]) -> str:
    items = sorted(str(c) for c in choices)
    if not items:
        return "none are defined"
    return "valid: " + ", ".join(items)


# --- durations -----------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(value: Any) -> float:
    """``30s``, ``10m``, ``1.5h``, ``250ms`` or a number of seconds -> seconds."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    m = _DURATION.match(str(value))
    if not m:
        raise ValueError(f"{value!r} is not a duration (examples: 500ms, 30s, 10m, 1h)")
    return float(m.group(1)) * _UNITS[m.group(2)]


# --- YAML with line numbers ----------------------------------------------------------

class _Lines:
    """Line numbers of every key and list item, by path."""

    def __init__(self) -> None:
        self.by_path: dict[PathT, int] = {}
        self.duplicates: list[tuple[PathT, int, int]] = []
        """Keys given twice in one mapping: (path, line, line of the first one)."""

    def get(self, path: PathT) -> int | None:
        path = tuple(path)
        while path:
            if path in self.by_path:
                return self.by_path[path]
            path = path[:-1]
        return self.by_path.get((), None)


def _construct(node: yaml.Node, path: PathT, lines: _Lines, loader: yaml.SafeLoader) -> Any:
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        loader.flatten_mapping(node)
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if isinstance(key, Hashable) and key in out:
                lines.duplicates.append((path + (key,), key_node.start_mark.line + 1,
                                         lines.by_path[path + (key,)]))
            lines.by_path[path + (key,)] = key_node.start_mark.line + 1
            out[key] = _construct(value_node, path + (key,), lines, loader)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, child in enumerate(node.value):
            lines.by_path[path + (i,)] = child.start_mark.line + 1
            items.append(_construct(child, path + (i,), lines, loader))
        return items
    return loader.construct_object(node, deep=True)


def load_yaml(text: str, filename: str) -> tuple[Any, _Lines]:
    lines = _Lines()
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigErrors([ConfigError(filename, line, "", f"invalid YAML: {problem}")]) from None
    finally:
        loader.dispose()
    if node is None:
        return {}, lines
    lines.by_path[()] = node.start_mark.line + 1
    return _construct(node, (), lines, yaml.SafeLoader("")), lines


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(value: Any, environ: dict[str, str], unset: list[str]) -> Any:
    """Expand ``${VAR}`` and ``${VAR:-default}`` in every string; unset -> empty."""
    if isinstance(value, str):
        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            got = environ.get(name)
            if got is None or (got == "" and default is not None):
                if default is None:
                    unset.append(name)
                    return ""
                return default
            return got
        return _ENV.sub(sub, value)
    if isinstance(value, dict):
        return {k: expand_env(v, environ, unset) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, environ, unset) for v in value]
    return value


# --- schema -------------------------------------------------------------------------

@dataclass
class Field:
    """One option. ``kind`` is str, int, float, bool, list, dict, 'duration' or 'any'."""

    kind: Any = "any"
    required: bool = False
    default: Any = None
    choices: Sequence[Any] | None = None
    secret: bool = False
    schema: dict[str, Field] | None = None   # known keys of a dict (others are errors)
    items: Field | None = None                # each item of a list
    values: Field | None = None               # each value of a free-form dict
    one_or_list: bool = False                   # accept a scalar and wrap it in a list
    min: float | None = None
    check: Callable[[Any], str | None] | None = None  # extra validation: message or None
    help: str = ""


_KIND_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
               list: "a list", dict: "a mapping", "duration": "a duration like 30s or 10m"}


class Validator:
    def __init__(self, filename: str, lines: _Lines) -> None:
        self.filename = filename
        self.lines = lines
        self.errors: list[ConfigError] = []

    def error(self, path: PathT, message: str) -> None:
        self.errors.append(ConfigError(self.filename, self.lines.get(path), format_path(path),
                                       message))

    def validate(self, value: Any, spec: Field, path: PathT) -> Any:
        if value is None:
            if spec.required:
                self.error(path, "is required")
            default = _copy_default(spec.default)
            if isinstance(default, dict) and spec.schema is not None:
                default = self.validate_mapping(default, spec.schema, path)
            return default
        kind = spec.kind
        if spec.secret and isinstance(value, (str, int, float)) and not isinstance(value, bool):
            register_secret(str(value))  # before any message could quote it
        if spec.one_or_list and not isinstance(value, list):
            value = [value]
        if kind == "duration":
            try:
                value = parse_duration(value)
            except ValueError as exc:
                self.error(path, "must be a duration like 30s or 10m" if spec.secret
                           else str(exc))
                return _copy_default(spec.default)
        elif kind in (int, float, bool) and isinstance(value, str) \
                and (parsed := _from_text(value, kind)) is not None:
            value = parsed  # ${VAR} expands to text: "1883" is a fine port
        elif kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        elif kind is str and isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        elif kind != "any" and not _is_kind(value, kind):
            # a secret's value is never quoted, only what it should be
            self.error(path, f"must be {_KIND_NAMES.get(kind, str(kind))}"
                             + ("" if spec.secret else f", not {_describe(value)}"))
            return _copy_default(spec.default)
        if spec.choices is not None and value not in spec.choices:
            shown = "this value" if spec.secret else repr(value)
            hint = "" if spec.secret else did_you_mean(value, spec.choices)
            self.error(path, f"{shown} is not allowed{hint} ({one_of(spec.choices)})")
        if spec.min is not None and isinstance(value, (int, float)) and value < spec.min:
            self.error(path, f"must be at least {spec.min:g}"
                             + ("" if spec.secret else f", not {value}"))
        if isinstance(value, dict) and spec.schema is not None:
            value = self.validate_mapping(value, spec.schema, path)
        elif isinstance(value, dict) and spec.values is not None:
            value = {k: self.validate(v, spec.values, path + (k,)) for k, v in value.items()}
        if isinstance(value, list) and spec.items is not None:
            value = [self.validate(v, spec.items, path + (i,)) for i, v in enumerate(value)]
        if spec.check is not None:
            problem = spec.check(value)
            if problem:
                self.error(path, problem)
        return value

    def validate_mapping(self, value: dict[str, Any], schema: dict[str, Field],
                         path: PathT) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in value:
            if key not in schema:
                self.error(path + (key,), f"unknown key {key!r}{did_you_mean(key, list(schema))}"
                                          f" ({one_of(schema)})")
        for key, spec in schema.items():
            out[key] = self.validate(value.get(key), spec, path + (key,))
        return out


def _copy_default(default: Any) -> Any:
    if isinstance(default, (dict, list)):
        import copy
        return copy.deepcopy(default)
    return default


def _from_text(text: str, kind: Any) -> Any:
    """A number or boolean written as text (as ``${VAR}`` expands), or None."""
    text = text.strip()
    if kind is bool:
        return {"true": True, "yes": True, "on": True,
                "false": False, "no": False, "off": False}.get(text.lower())
    try:
        return kind(text)
    except ValueError:
        return None


def _is_kind(value: Any, kind: Any) -> bool:
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, kind)


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (dict, list)):
        return _KIND_NAMES.get(type(value), type(value).__name__)
    return repr(value)


# --- the document -----------------------------------------------------------------------

QUEUE_SCHEMA: dict[str, Field] = {
    "type": Field(str, required=True),
    "queue_size": Field(int, default=100_000, min=1, help="events held in memory per sink"),
    "overflow": Field(str, default="drop_oldest", choices=("block", "drop_oldest", "drop_newest"),
                      help="what happens when the queue is full"),
    "batch_size": Field(int, default=500, min=1),
}
"""Options every sink accepts, handled by the bus."""


def top_schema() -> dict[str, Field]:
    return {
        "boltodds": Field(dict, default={}),       # validated against the feed types
        "simulator": Field(dict, default={}, schema={
            "seed": Field(int, default=7),
            "games": Field(int, default=30, min=1),
            "updates_per_second": Field(float, default=200.0, min=0),
            "host": Field(str, default="127.0.0.1"),
            "port": Field(int, default=0, min=0),
            "enabled": Field(str, default="auto", choices=("auto", "always", "never")),
            "speed": Field(float, default=30.0, min=0,
                           help="simulated seconds per real second (games last minutes)"),
            "clear_every": Field("duration", default=180.0, min=0,
                                 help="time between random sport/book clears; 0 = never"),
            "ping_interval": Field("duration", default=15.0, min=0.1),
            "rest_rate_limit": Field(bool, default=True,
                                     help="enforce upstream's 12 REST requests a minute"),
        }),
        "plugins_dir": Field(str),
        "state_dir": Field(str, default=".", help="where outboxes and discovery state live"),
        "sinks": Field(dict, default={}),
        "rules": Field(dict, default={}),
        "routes": Field(list, default=[]),
        "http": Field(dict, default={"enabled": False}, schema={
            "enabled": Field(bool, default=False),
            "host": Field(str, default="127.0.0.1"),
            "port": Field(int, default=8765, min=0),
            "token": Field(str, secret=True),
        }),
        "summary": Field(dict, default={}, schema={
            "enabled": Field(str, default="auto", choices=("auto", "always", "never")),
            "every": Field("duration", default=1.0),
        }),
        "shutdown_grace": Field("duration", default=10.0),
        "log": Field(dict, default={}, schema={
            "level": Field(str, default="info",
                           choices=("debug", "info", "warning", "error")),
            "format": Field(str, default="text", choices=("text", "json")),
        }),
    }


@dataclass
class Config:
    path: str
    raw: dict[str, Any]
    data: dict[str, Any]
    lines: _Lines
    sinks: dict[str, tuple[type, dict[str, Any]]] = field(default_factory=dict)
    rules: dict[str, tuple[type, dict[str, Any]]] = field(default_factory=dict)
    feeds: dict[str, tuple[type, dict[str, Any]]] = field(default_factory=dict)
    routes: list[Any] = field(default_factory=list)
    unset_env: list[str] = field(default_factory=list)
    pm: Any = None
    """The plugin manager the sink, rule and feed types came from (App reuses it)."""

    @property
    def api_key(self) -> str:
        return self.data["boltodds"].get("api_key") or ""

    @property
    def use_simulator(self) -> bool:
        mode = self.data["simulator"]["enabled"]
        return mode == "always" or (mode == "auto" and not self.api_key)

    def summary(self) -> str:
        feeds = ", ".join(self.feeds) or "none"
        return (f"feeds: {feeds}; sinks: {len(self.sinks)} ({', '.join(self.sinks) or '-'}); "
                f"rules: {len(self.rules)}; routes: {len(self.routes)}"
                + ("; no API key: the built-in simulator will be used"
                   if self.use_simulator and self.feeds else ""))


def load_config(path: str | Path, pm: Any = None, environ: dict[str, str] | None = None,
                text: str | None = None) -> Config:
    """Read, expand and validate a config file; raises ConfigErrors with every problem."""
    from .plugins import PluginError, collect_registrations, make_manager

    filename = str(path)
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigErrors([ConfigError(filename, None, "",
                                            f"cannot read the config file: {exc.strerror}")]) from None
    raw, lines = load_yaml(text, filename)
    if not isinstance(raw, dict):
        raise ConfigErrors([ConfigError(filename, lines.get(()), "",
                                        "the config must be a mapping of sections "
                                        "(boltodds, sinks, rules, routes, ...)")])
    unset: list[str] = []
    expanded = expand_env(raw, dict(os.environ if environ is None else environ), unset)
    v = Validator(filename, lines)
    for dup_path, line, first in lines.duplicates:
        v.errors.append(ConfigError(filename, line, format_path(dup_path),
                                    f"is given twice (first on line {first}); YAML would keep "
                                    "only this one: merge them or remove one"))
    data = v.validate_mapping(expanded, top_schema(), ())

    if pm is None:
        plugins_dir = data.get("plugins_dir")
        if plugins_dir and not Path(plugins_dir).is_absolute():
            plugins_dir = str(Path(filename).resolve().parent / plugins_dir)
        try:
            pm = make_manager(plugins_dir)
        except PluginError as exc:
            v.error(("plugins_dir",), str(exc))
            pm = make_manager(None)
    sink_types = collect_registrations(pm, "register_sink_types")
    rule_types = collect_registrations(pm, "register_rule_types")
    feed_types = collect_registrations(pm, "register_feed_types")
    broken = "".join(f"; note: {p}" for p in getattr(pm, "problems", []))
    cfg = Config(filename, raw, data, lines, unset_env=unset, pm=pm)

    # boltodds: api_key plus one section per feed type
    bo = data["boltodds"] or {}
    # `odds: false` turns off a feed that runs by default
    disabled = {k for k, section in bo.items() if section is False and k in feed_types}
    bo = {k: section for k, section in bo.items() if k not in disabled}
    bo_schema: dict[str, Field] = {"api_key": Field(str, default="", secret=True)}
    for fname, cls in feed_types.items():
        bo_schema[fname] = Field(dict, schema=getattr(cls, "options_schema", None))
    bo = v.validate_mapping(bo, bo_schema, ("boltodds",))
    data["boltodds"] = bo
    for fname, cls in feed_types.items():
        section = bo.get(fname)
        if fname in disabled:
            bo[fname] = None
            continue
        if section is None and getattr(cls, "enabled_by_default", False):
            section = v.validate_mapping({}, getattr(cls, "options_schema", None) or {},
                                         ("boltodds", fname))
            bo[fname] = section
        if section is not None:
            cfg.feeds[fname] = (cls, section)

    for kind, registry, target, base in (("sink", sink_types, cfg.sinks, QUEUE_SCHEMA),
                                         ("rule", rule_types, cfg.rules,
                                          {"type": Field(str, required=True)})):
        section = "sinks" if kind == "sink" else "rules"
        for name, opts in (data[section] or {}).items():
            path = (section, name)
            if not isinstance(opts, dict):
                v.error(path, f"must be a mapping with at least 'type' ({one_of(registry)})")
                continue
            tname = opts.get("type")
            if tname not in registry:
                v.error(path + ("type",),
                        (f"unknown {kind} type {tname!r}{did_you_mean(tname, list(registry))} "
                         if tname is not None else f"a {kind} needs a 'type' ")
                        + f"({one_of(registry)})" + (broken if tname is not None else ""))
                continue
            cls = registry[tname]
            schema = dict(base)
            schema.update(getattr(cls, "options_schema", {}) or {})
            options = v.validate_mapping(opts, schema, path)
            extra = getattr(cls, "validate_options", None)
            if extra is not None:
                for sub, msg in extra(options) or []:
                    v.error(path + tuple(sub), msg)
            target[name] = (cls, options)

    from .routes import compile_routes
    # a sink with its own errors is still a name routes may use: report it once
    cfg.routes = compile_routes(data["routes"] or [], set(data["sinks"] or {}), v,
                                set(data["rules"] or {}))
    if v.errors:
        raise ConfigErrors(sorted(v.errors, key=lambda e: e.line or 0))
    return cfg
