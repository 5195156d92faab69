"""The plugin manager: built-in plugins, entry points and ``plugins_dir``.

Built-in sinks, rules and feeds are registered with the very same
``pm.register()`` as third-party plugins; the core never imports them by name.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import inspect
import logging
import sys
from pathlib import Path
from typing import Any

import pluggy

from . import hookspecs

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


class PluginError(Exception):
    """A plugin could not be loaded."""


def make_manager(plugins_dir: str | Path | None = None, *, entry_points: bool = True,
                 builtins: bool = True) -> pluggy.PluginManager:
    pm = pluggy.PluginManager("boltrouter")
    pm.add_hookspecs(hookspecs)
    if builtins:
        for name in DEFAULT_PLUGINS:
            try:
                module = importlib.import_module(name)
            except ModuleNotFoundError as exc:
                if exc.name == name:  # a built-in that is not part of this build
                    continue
                raise
            pm.register(module, name=name)
    if entry_points:
        for ep in importlib.metadata.entry_points(group="boltrouter"):
            try:
                pm.register(ep.load(), name=ep.name)
            except Exception as exc:  # a broken third-party plugin must not stop the daemon
                log.error("plugin %r from entry point could not be loaded: %s", ep.name, exc)
    if plugins_dir:
        load_plugins_dir(pm, Path(plugins_dir))
    return pm


def load_plugins_dir(pm: pluggy.PluginManager, directory: Path) -> list[str]:
    """Register every ``*.py`` file in ``directory`` as a plugin; returns their names."""
    if not directory.is_dir():
        raise PluginError(f"plugins_dir {str(directory)!r} is not a directory")
    loaded = []
    for path in sorted(directory.glob("*.py")):
        if path.name.startswith("_"):
            continue
        name = f"boltrouter_plugin_{path.stem}"
        if pm.has_plugin(path.stem):
            continue
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(name, None)
            raise PluginError(f"plugin {path} failed to import: {exc}") from exc
        pm.register(module, name=path.stem)
        loaded.append(path.stem)
    return loaded


async def await_me_maybe(value: Any) -> Any:
    """Let a hook be sync or async: await the result when it is awaitable."""
    if inspect.isawaitable(value):
        return await value
    return value


def collect_registrations(pm: pluggy.PluginManager, hook: str) -> dict[str, Any]:
    """Call a ``register_*`` hook and return ``{name: thing}``; later plugins win."""
    found: dict[str, Any] = {}

    def register(name: str, thing: Any) -> None:
        found[name] = thing

    for result in getattr(pm.hook, hook)(register=register):
        if inspect.isawaitable(result):  # async register hooks are not supported: be clear
            result.close()
            raise PluginError(f"{hook} must be a plain function, not async def")
    return found


def plugin_info(pm: pluggy.PluginManager) -> list[dict[str, Any]]:
    """What ``boltrouter plugins`` shows: name, version, hooks, per plugin."""
    dists = {}
    for dist, plugin in pm.list_plugin_distinfo():
        dists[id(plugin)] = dist
    rows = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        dist = dists.get(id(plugin))
        if dist is not None:
            version = dist.version
        elif name in DEFAULT_PLUGINS:
            from . import __version__
            version = __version__
        else:
            version = getattr(plugin, "__version__", None)
        rows.append({"name": name, "version": version, "hooks": hooks,
                     "builtin": name in DEFAULT_PLUGINS})
    return rows
