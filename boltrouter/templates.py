"""Sandboxed Jinja2 templates for route conditions (`if`), payloads and topics.

One ``ImmutableSandboxedEnvironment`` is shared by routes and sinks. A template
sees the event's envelope fields (``game``, ``sportsbook``, ...), ``data`` and
``event`` (the whole envelope as a dict). A missing value renders as an empty
string, as in Home Assistant. Templates that reach for Python internals
(``''.__class__``, ``cycler.__init__.__globals__``) are refused when they are
compiled, and anything that slips past that check raises ``SecurityError`` when
it is rendered.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NoReturn

import orjson
from jinja2 import ChainableUndefined, Template, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError
from jinja2.parser import Parser
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .events import ENVELOPE_FIELDS, Event, parse_time

__all__ = [
    "ENV", "SecurityError", "TemplateConfigError", "compile_expression", "compile_template",
    "event_context",
]

_FORBIDDEN_NAMES = frozenset({
    "mro", "func_globals", "func_code", "gi_frame", "gi_code", "cr_frame", "cr_code",
    "ag_frame", "ag_code", "f_globals", "f_locals", "f_builtins", "tb_frame", "co_code",
})


class TemplateConfigError(ValueError):
    """A template that does not compile or is refused; the message is for the user."""


class _Environment(ImmutableSandboxedEnvironment):
    def unsafe_undefined(self, obj: Any, attribute: str) -> NoReturn:
        raise SecurityError(f"access to {attribute!r} is not allowed in templates")


# --- filters and functions ---------------------------------------------------------------

def _tojson(value: Any, indent: int | None = None) -> str:
    option = orjson.OPT_INDENT_2 if indent else 0
    return orjson.dumps(value, default=str, option=option).decode()


def _as_timestamp(value: Any, default: Any = None) -> Any:
    """Seconds since the epoch of an ISO 8601 string or a datetime."""
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    dt = parse_time(value) if isinstance(value, str) else None
    return dt.timestamp() if dt is not None else default


def _as_datetime(value: Any, default: Any = None) -> Any:
    if isinstance(value, datetime):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    dt = parse_time(value) if isinstance(value, str) else None
    return dt if dt is not None else default


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, (int, float)):
        return value == value
    try:
        float(str(value))
    except ValueError:
        return False
    return True


def _multiply(value: Any, factor: float, default: Any = None) -> Any:
    try:
        return float(value) * factor
    except (TypeError, ValueError):
        return default


def _american(value: Any) -> float | None:
    try:
        odds = float(str(value).strip())
    except ValueError:
        return None
    return odds if abs(odds) >= 100 else None


def _decimal_odds(value: Any, default: Any = None) -> Any:
    """American odds (``"+150"``, ``-120``) -> decimal odds (2.5, 1.833...)."""
    odds = _american(value)
    if odds is None:
        return default
    return 1 + (odds / 100 if odds > 0 else 100 / -odds)


def _implied_prob(value: Any, default: Any = None) -> Any:
    """American odds -> implied probability (0..1)."""
    dec = _decimal_odds(value)
    return default if dec is None else 1 / dec


def _regex_match(value: Any, pattern: str, ignorecase: bool = False) -> bool:
    return re.match(pattern, str(value), re.IGNORECASE if ignorecase else 0) is not None


def _regex_search(value: Any, pattern: str, ignorecase: bool = False) -> bool:
    return re.search(pattern, str(value), re.IGNORECASE if ignorecase else 0) is not None


def _regex_replace(value: Any, find: str = "", replace: str = "",
                   ignorecase: bool = False) -> str:
    return re.sub(find, replace, str(value), flags=re.IGNORECASE if ignorecase else 0)


def _now() -> datetime:
    return datetime.now(UTC)


def _make_env() -> _Environment:
    env = _Environment(
        autoescape=False,
        undefined=ChainableUndefined,
        finalize=lambda value: "" if value is None else value,
        keep_trailing_newline=True,
    )
    env.filters.update({
        "tojson": _tojson,
        "as_timestamp": _as_timestamp,
        "as_datetime": _as_datetime,
        "is_number": _is_number,
        "multiply": _multiply,
        "decimal_odds": _decimal_odds,
        "implied_prob": _implied_prob,
        "regex_match": _regex_match,
        "regex_search": _regex_search,
        "regex_replace": _regex_replace,
    })
    env.tests.update({"is_number": _is_number, "match": _regex_match, "search": _regex_search})
    for name in ("lipsum", "cycler", "joiner"):
        env.globals.pop(name, None)
    env.globals.update({
        "now": _now, "as_timestamp": _as_timestamp, "as_datetime": _as_datetime,
        "is_number": _is_number, "decimal_odds": _decimal_odds, "implied_prob": _implied_prob,
        "float": float, "int": int, "str": str, "abs": abs, "min": min, "max": max,
        "round": round, "bool": bool, "len": len,
    })
    return env


ENV = _make_env()
"""The sandboxed environment every route and sink template is compiled in."""


# --- compiling -------------------------------------------------------------------------

def _refused(name: str) -> bool:
    return name.startswith("_") or name in _FORBIDDEN_NAMES


def _check_ast(tree: nodes.Node) -> None:
    """Refuse, before anything runs, the attribute accesses the sandbox would block."""
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter, nodes.Name)):
        name: Any = None
        if isinstance(node, nodes.Getattr):
            name = node.attr
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            name = node.arg.value
        elif isinstance(node, nodes.Filter) and node.name == "attr" and node.args \
                and isinstance(node.args[0], nodes.Const):
            name = node.args[0].value
        elif isinstance(node, nodes.Name) and node.name.startswith("__"):
            name = node.name
        if isinstance(name, str) and _refused(name):
            raise TemplateConfigError(
                f"refused: templates cannot use {name!r} (Python internals are off limits); "
                "use the event's fields, e.g. {{ data.new_odds }}")


def _syntax_message(exc: TemplateSyntaxError) -> str:
    return f"template does not compile: {exc.message} (template line {exc.lineno})"


def _parse(source: str) -> None:
    try:
        tree = ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateConfigError(_syntax_message(exc)) from None
    _check_ast(tree)


def event_context(event: Event) -> dict[str, Any]:
    """What a template sees: envelope fields, ``data``, and ``event`` (the whole envelope)."""
    ctx = {name: getattr(event, name) for name in ENVELOPE_FIELDS}
    ctx["data"] = event.data
    ctx["event"] = dict(ctx)
    return ctx


_GLOBALS = dict(ENV.globals)


def _context(template: Template, event: Event) -> Context:
    """A render context built from a plain dict (much cheaper than merging globals per call)."""
    variables = _GLOBALS.copy()
    variables.update(event_context(event))
    return template.new_context(variables, shared=True)


def compile_template(source: str) -> Callable[[Event], str]:
    """Compile a payload/topic template once; the result renders one event to a string.

    Raises ``TemplateConfigError`` for syntax errors and refused constructs; the
    returned function raises ``TemplateError`` (``SecurityError`` included) when
    rendering fails.
    """
    if not isinstance(source, str):
        raise TemplateConfigError(f"a template must be a string, not {type(source).__name__}")
    if "{" not in source:
        return lambda event: source
    _parse(source)
    template = ENV.from_string(source)
    root, concat = template.root_render_func, ENV.concat

    def run(event: Event) -> str:
        return concat(root(_context(template, event)))

    return run


# --- the fast path of `if` expressions ----------------------------------------------------

class _Undecided(Exception):
    """The fast path met something only the sandbox can judge (a missing value, an error)."""


_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq, "ne": operator.ne, "gt": operator.gt, "gteq": operator.ge,
    "lt": operator.lt, "lteq": operator.le,
    "in": lambda a, b: a in b, "notin": lambda a, b: a not in b,
}
_BINARY: dict[type[nodes.Expr], Callable[[Any, Any], Any]] = {
    nodes.Add: operator.add, nodes.Sub: operator.sub, nodes.Mul: operator.mul,
    nodes.Div: operator.truediv,
}
_EVENT_NAMES = frozenset(ENVELOPE_FIELDS)
Fast = Callable[[Event], Any]


def _fast_key(node: Fast, key: Any) -> Fast:
    def get(event: Event) -> Any:
        obj = node(event)
        if type(obj) is not dict or key not in obj:
            raise _Undecided
        return obj[key]
    return get


def _fast_compare(first: Fast, ops: list[tuple[Callable[[Any, Any], Any], Fast]]) -> Fast:
    if len(ops) == 1:
        op, right = ops[0]
        return lambda event: op(first(event), right(event))

    def chain(event: Event) -> bool:
        left = first(event)
        for op, right_of in ops:
            right = right_of(event)
            if not op(left, right):
                return False
            left = right
        return True
    return chain


def _fast(node: nodes.Node) -> Fast | None:
    """A plain Python function computing ``node`` exactly as the sandbox would, for the
    common shapes (event fields, ``data.x``, constants, comparisons, arithmetic, ``and``,
    ``or``, ``not``, ``| abs``); None for anything else. The function raises
    ``_Undecided`` where the sandbox's answer could differ (e.g. a missing value)."""
    if isinstance(node, nodes.Const):
        value = node.value
        return lambda event: value
    if isinstance(node, nodes.Name):
        if node.name == "data":
            return lambda event: event.data
        if node.name in _EVENT_NAMES:
            return operator.attrgetter(node.name)
        return None
    if isinstance(node, nodes.Getattr):
        inner = _fast(node.node)
        if inner is None or hasattr(dict, node.attr):
            return None   # a dict's own attribute (data.items) is not a key lookup
        return _fast_key(inner, node.attr)
    if isinstance(node, nodes.Getitem):
        inner = _fast(node.node)
        if inner is None or not isinstance(node.arg, nodes.Const):
            return None
        return _fast_key(inner, node.arg.value)
    if isinstance(node, (nodes.List, nodes.Tuple)):
        items = [_fast(item) for item in node.items]
        if any(item is None for item in items):
            return None
        parts = tuple(item for item in items if item is not None)
        if isinstance(node, nodes.Tuple):
            return lambda event: tuple(part(event) for part in parts)
        return lambda event: [part(event) for part in parts]
    if isinstance(node, nodes.Compare):
        first = _fast(node.expr)
        ops = [(_COMPARE.get(o.op), _fast(o.expr)) for o in node.ops]
        if first is None or any(op is None or right is None for op, right in ops):
            return None
        return _fast_compare(first, ops)  # type: ignore[arg-type]
    if type(node) in _BINARY:
        binop = _BINARY[type(node)]
        left, right = _fast(node.left), _fast(node.right)  # type: ignore[attr-defined]
        if left is None or right is None:
            return None
        return lambda event: binop(left(event), right(event))
    if isinstance(node, (nodes.And, nodes.Or)):
        left, right = _fast(node.left), _fast(node.right)
        if left is None or right is None:
            return None
        if isinstance(node, nodes.And):
            return lambda event: left(event) and right(event)
        return lambda event: left(event) or right(event)
    if isinstance(node, (nodes.Not, nodes.Neg)):
        operand = _fast(node.node)
        if operand is None:
            return None
        if isinstance(node, nodes.Not):
            return lambda event: not operand(event)
        return lambda event: -operand(event)
    if isinstance(node, nodes.Filter) and node.name == "abs" and ENV.filters["abs"] is abs \
            and node.node is not None and not (node.args or node.kwargs or node.dyn_args
                                               or node.dyn_kwargs):
        value = _fast(node.node)
        if value is None:
            return None
        return lambda event: abs(value(event))
    return None


_WRAPPED = re.compile(r"^\s*\{\{(.*)\}\}\s*$", re.DOTALL)
_TRUE = frozenset({"true", "yes", "on", "1"})


def compile_expression(source: Any) -> Callable[[Event], bool]:
    """Compile an ``if`` condition: ``"{{ expr }}"``, a bare ``expr``, or a template.

    A bare or wrapped expression is true when its value is truthy; a longer
    template (with ``{% %}`` blocks) is true when it renders to true/yes/on/1.
    """
    if isinstance(source, bool):
        return lambda event: source
    if not isinstance(source, str) or not source.strip():
        raise TemplateConfigError("'if' must be a Jinja2 expression such as "
                                  "\"{{ data.new_prob > 0.5 }}\"")
    wrapped = _WRAPPED.match(source)
    inner = wrapped.group(1) if wrapped and "{{" not in wrapped.group(1) else None
    if inner is None and ("{{" in source or "{%" in source):
        render = compile_template(source)
        return lambda event: render(event).strip().lower() in _TRUE
    expr_src = source if inner is None else inner
    _parse("{{ " + expr_src + " }}")
    try:
        parser = Parser(ENV, expr_src, state="variable")
        expr = parser.parse_expression()
        if not parser.stream.eos:
            raise TemplateSyntaxError(f"unexpected {parser.stream.current.value!r} after "
                                      "the expression", parser.stream.current.lineno)
    except TemplateSyntaxError as exc:
        raise TemplateConfigError(_syntax_message(exc)) from None
    template = ENV.from_string(
        nodes.Template([nodes.Assign(nodes.Name("result", "store"), expr, lineno=1)], lineno=1))
    root = template.root_render_func

    def run(event: Event) -> bool:
        ctx = _context(template, event)
        for _ in root(ctx):
            pass
        return bool(ctx.vars["result"])

    fast = _fast(expr)
    if fast is None:
        return run

    def run_fast(event: Event) -> bool:
        try:
            return bool(fast(event))
        except Exception:
            return run(event)   # the sandbox decides, and reports any error as it would

    return run_fast


def check_template(source: Any) -> str | None:
    """For ``Field(check=...)``: a message when ``source`` is not a valid template."""
    try:
        compile_template(source)
    except TemplateConfigError as exc:
        return str(exc)
    return None

