"""The plugin manager: built-in plugins, entry points and ``plugins_dir``.

Built-in sinks, rules and feeds are registered with the very same
``pm.register()`` as third-party plugins; the core never imports them by name.
A third-party plugin that fails to import or raises in a hook is reported and
counted; the other plugins and the daemon go on.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import inspect
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pluggy

from . import __version__, hookspecs
from .secrets import redact

log = logging.getLogger("boltrouter.plugins")

DEFAULT_PLUGINS: tuple[str, ...] = (
    "boltrouter.sinks.sqlite",
    "boltrouter.sinks.csv",
    "boltrouter.sinks.mqtt",
    "boltrouter.sinks.webhook",
    "boltrouter.feeds.odds",
    "boltrouter.feeds.scores",
    "boltrouter.feeds.playbyplay",
    "boltrouter.feeds.rest",
    "boltrouter.rules.line_move",
    "boltrouter.rules.best_line",
    "boltrouter.rules.steam",
    "boltrouter.rules.arbitrage",
    "boltrouter.rules.fair_odds",
)

ENTRY_POINT_GROUP = "boltrouter"


class PluginError(Exception):
    """A plugin could not be loaded or could not register what it provides."""


@dataclass
class PluginProblem:
    """A plugin that failed: which one, where it came from, and what went wrong."""

    plugin: str
    origin: str
    message: str

    def __str__(self) -> str:
        return f"plugin {self.plugin!r} ({self.origin}): {self.message}"


class PluginManager(pluggy.PluginManager):
    """pluggy's manager plus where each plugin came from and what failed to load."""

    def __init__(self) -> None:
        super().__init__("boltrouter")
        self.add_hookspecs(hookspecs)
        self.origins: dict[str, str] = {}
        self.versions: dict[str, str | None] = {}
        self.problems: list[PluginProblem] = []

    def add(self, plugin: Any, name: str, origin: str, version: str | None) -> None:
        self.register(plugin, name=name)
        self.origins[name] = origin
        self.versions[name] = version

    def failed(self, plugin: str, origin: str, exc: BaseException | str) -> None:
        message = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
        problem = PluginProblem(plugin, origin, redact(message))
        if problem in self.problems:  # the same hook failing again at a reload
            return
        self.problems.append(problem)
        log.error("%s; the other plugins are loaded", problem)


def make_manager(plugins_dir: str | Path | None = None, *, entry_points: bool = True,
                 builtins: bool = True) -> PluginManager:
    """Built-ins, then the ``boltrouter`` entry points, then the files of ``plugins_dir``.

    Raises ``PluginError`` only when ``plugins_dir`` is not a folder; a plugin that
    fails to import is recorded in ``pm.problems`` and skipped.
    """
    pm = PluginManager()
    if builtins:
        for name in DEFAULT_PLUGINS:
            try:
                module = importlib.import_module(name)
            except ModuleNotFoundError as exc:
                if exc.name == name:  # a built-in that is not part of this build
                    continue
                raise
            pm.add(module, name, "built-in", __version__)
    if entry_points:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            if pm.has_plugin(ep.name):
                continue
            origin = f"entry point {ep.value}"
            try:
                plugin = ep.load()
            except Exception as exc:  # a broken third-party plugin must not stop the daemon
                pm.failed(ep.name, origin, exc)
                continue
            dist = getattr(ep, "dist", None)
            pm.add(plugin, ep.name, origin,
                   dist.version if dist is not None else getattr(plugin, "__version__", None))
    if plugins_dir:
        load_plugins_dir(pm, Path(plugins_dir))
    return pm


def load_plugins_dir(pm: PluginManager, directory: Path) -> list[str]:
    """Register every ``*.py`` file in ``directory`` (not ``_*.py``) as a plugin named
    after the file; returns the names registered."""
    if not directory.is_dir():
        raise PluginError(f"plugins_dir {str(directory)!r} is not a folder; create it or "
                          "remove plugins_dir from the config")
    loaded = []
    for path in sorted(directory.glob("*.py")):
        if path.name.startswith("_"):
            continue
        if pm.has_plugin(path.stem):
            pm.failed(path.stem, str(path), f"a plugin named {path.stem!r} is already loaded "
                      f"({pm.origins.get(path.stem, 'plugin')}); rename the file")
            continue
        module_name = f"boltrouter_plugin_{path.stem}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(module_name, None)
            pm.failed(path.stem, str(path), f"failed to import: {type(exc).__name__}: {exc}")
            continue
        pm.add(module, path.stem, str(path), getattr(module, "__version__", None))
        loaded.append(path.stem)
    return loaded


def run_now(value: Any) -> Any:
    """The result of a hook that must finish at once: a plain value, or a coroutine that
    completes without waiting on anything (an ``async def`` that only registers)."""
    if not inspect.iscoroutine(value):
        return value
    try:
        value.send(None)
    except StopIteration as done:
        return done.value
    value.close()
    raise PluginError("an async implementation of a register hook must not wait on "
                      "anything; register directly")


def call_each(pm: PluginManager, hook: str, **kwargs: Any) -> None:
    """Call every implementation of ``hook`` on its own: one that raises is recorded in
    ``pm.problems`` and the others still run."""
    for impl in getattr(pm.hook, hook).get_hookimpls():
        try:
            run_now(impl.function(**hook_kwargs(impl, **kwargs)))
        except Exception as exc:
            pm.failed(impl.plugin_name, pm.origins.get(impl.plugin_name, "plugin"),
                      f"{hook} raised {type(exc).__name__}: {exc}")


def collect_registrations(pm: PluginManager, hook: str) -> dict[str, Any]:
    """Call a ``register_*`` hook and return ``{name: thing}``; later plugins win."""
    found: dict[str, Any] = {}

    def register(name: str, thing: Any) -> None:
        found[name] = thing

    call_each(pm, hook, register=register)
    return found


def hook_kwargs(impl: Any, **available: Any) -> dict[str, Any]:
    """The arguments a hook implementation asked for (pluggy lets it take fewer)."""
    return {k: v for k, v in available.items() if k in impl.argnames}


def plugin_info(pm: PluginManager) -> list[dict[str, Any]]:
    """What ``boltrouter plugins`` shows: name, version, origin, hooks, per plugin."""
    rows = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        origin = pm.origins.get(name, "plugin")
        rows.append({"name": name, "version": pm.versions.get(name), "hooks": hooks,
                     "builtin": origin == "built-in", "origin": origin})
    return rows

