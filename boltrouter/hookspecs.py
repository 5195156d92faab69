"""What plugins may extend. Every hook may be a plain or an ``async def`` function."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("boltrouter")


@hookspec
def register_sink_types(register: Callable[[str, type], None]) -> None:
    """Register sink classes: ``register("mqtt", MqttSink)``; see ``boltrouter.sink.Sink``."""


@hookspec
def register_rule_types(register: Callable[[str, type], None]) -> None:
    """Register rule classes: ``register("line_move", LineMove)``; see ``boltrouter.rule.Rule``."""


@hookspec
def register_feed_types(register: Callable[[str, type], None]) -> None:
    """Register feed classes (odds, scores, playbyplay, rest); see ``boltrouter.feed.Feed``."""


@hookspec
def register_event_types(register: Callable[[str, str], None]) -> None:
    """Register event types a plugin emits: ``register("rule.my_thing", "one-line description")``."""


@hookspec
def register_commands(cli: Any) -> None:
    """Add commands to the ``boltrouter`` click group: ``@cli.command()``."""


@hookspec
def on_event(event: Any, app: Any) -> None:
    """Observe every event that enters the router, after rules ran, before routing."""


@hookspec
def startup(app: Any) -> None:
    """Called once the app is configured, before feeds connect."""


@hookspec
def shutdown(app: Any) -> None:
    """Called after sinks drained, before the process exits."""
