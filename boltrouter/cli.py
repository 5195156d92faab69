"""The ``boltrouter`` command line."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click
import orjson
from click.core import ParameterSource

from . import __version__
from .config import Config, ConfigErrors, load_config, parse_duration
from .logs import setup_logging
from .plugins import PluginError, call_each, make_manager, plugin_info
from .secrets import redact


def run_async(coro: Any) -> Any:
    try:
        import uvloop  # type: ignore[import-not-found]
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def load_or_exit(path: str) -> Config:
    try:
        return load_config(path)
    except ConfigErrors as exc:
        for err in exc.errors:
            click.echo(redact(str(err)), err=True)
        n = len(exc.errors)
        click.echo(f"{n} error{'s' if n != 1 else ''} in {path}", err=True)
        sys.exit(2)


def _duration(ctx: Any, param: Any, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


class PluginGroup(click.Group):
    """The command group; plugins (built-in, entry points, and ``--plugins-dir``) add
    their commands the first time a command is looked up."""

    _loaded = False

    def _load_plugin_commands(self, ctx: click.Context) -> None:
        if self._loaded:
            return
        self._loaded = True
        # --help is handled before the other options are read: fall back to the environment
        plugins_dir = ctx.params.get("plugins_dir") or os.environ.get("BOLTROUTER_PLUGINS_DIR")
        try:
            pm = make_manager(plugins_dir)
        except PluginError as exc:  # never let a broken plugin break the CLI itself
            click.echo(f"warning: {redact(exc)}", err=True)
            pm = make_manager(None)
        before = len(pm.problems)
        call_each(pm, "register_commands", cli=self)
        for problem in pm.problems[before:]:
            click.echo(f"warning: {redact(problem)}; its commands are not available", err=True)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            self._load_plugin_commands(ctx)
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugin_commands(ctx)
        return super().list_commands(ctx)


@click.group(cls=PluginGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="boltrouter")
@click.option("--plugins-dir", envvar="BOLTROUTER_PLUGINS_DIR", type=click.Path(file_okay=False),
              help="Also load the commands of the plugins in this folder.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--log-format", default="text", show_default=True, type=click.Choice(["text", "json"]))
@click.pass_context
def cli(ctx: click.Context, plugins_dir: str | None, log_level: str, log_format: str) -> None:
    """Route BoltOdds odds, scores and plays to Home Assistant, webhooks, CSV and SQLite."""
    ctx.ensure_object(dict)
    ctx.obj["log_level"] = log_level
    ctx.obj["log_format"] = log_format
    setup_logging(log_level, log_format)


@cli.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="YAML config file.")
@click.option("--for", "duration", callback=_duration, metavar="DURATION",
              help="Stop after this long (30s, 10m), then drain and exit.")
@click.option("--summary/--no-summary", default=None, help="Live one-line summary on stderr.")
@click.pass_context
def run(ctx: click.Context, config_path: str, duration: float | None,
        summary: bool | None) -> None:
    """Connect to the feeds and route events until SIGINT/SIGTERM (or --for)."""
    from .app import App

    config = load_or_exit(config_path)
    root = ctx.find_root()
    given = {name: root.get_parameter_source(name) is not ParameterSource.DEFAULT
             for name in ("log_level", "log_format")}
    if not all(given.values()):   # the config's `log:` section fills what the command line did not
        setup_logging(ctx.obj["log_level"] if given["log_level"] else config.data["log"]["level"],
                      ctx.obj["log_format"] if given["log_format"]
                      else config.data["log"]["format"])
    logging.getLogger("boltrouter").info("boltrouter %s: %s", __version__, config.summary())
    app = App(config)
    run_async(app.run(duration, summary))


@cli.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False))
def check(config_path: str) -> None:
    """Validate a config without connecting. Exit 2 on errors."""
    config = load_or_exit(config_path)
    for name in sorted(set(config.unset_env)):
        click.echo(f"note: environment variable {name} is not set (expanded to empty)", err=True)
    for problem in config.pm.problems:
        click.echo(f"warning: {redact(problem)}; the daemon runs without it", err=True)
    click.echo(f"{config_path}: OK. {config.summary()}")


@cli.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Also load the config's plugins_dir.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def plugins(config_path: str | None, as_json: bool) -> None:
    """List loaded plugins with their versions and hooks."""
    pm = load_or_exit(config_path).pm if config_path else make_manager(None)
    rows = plugin_info(pm)
    if as_json:
        click.echo(orjson.dumps({"plugins": rows,
                                 "problems": [vars(p) for p in pm.problems]}).decode())
        return
    for row in rows:
        click.echo(f"{row['name']} {row['version'] or '-'} ({row['origin']})")
        click.echo(f"    hooks: {', '.join(row['hooks'])}")
    for problem in pm.problems:
        click.echo(f"not loaded: {redact(problem)}", err=True)


@cli.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False))
@click.option("--speed", type=float, default=0.0, show_default=True,
              help="Replay speed relative to the recorded times (0 = as fast as possible).")
@click.argument("recording", type=click.Path(exists=True, dir_okay=False))
def replay(config_path: str, speed: float, recording: str) -> None:
    """Feed a JSONL file (event envelopes, or raw frames from `record`) through the routes."""
    from .replay import replay_file

    config = load_or_exit(config_path)
    stats = run_async(replay_file(config, Path(recording), speed))
    click.echo(f"replayed {stats['lines']} line(s): {stats['events']} event(s), "
               f"{stats['errors']} bad line(s); {stats['summary']}", err=True)
    if stats["errors"] and not stats["events"]:
        sys.exit(1)


@cli.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False),
              help="Config of the running daemon (finds its control socket).")
@click.option("--url", help="HTTP endpoint of the daemon instead, e.g. http://127.0.0.1:8765")
@click.option("--token", envvar="BOLTROUTER_HTTP_TOKEN", help="Bearer token for --url.")
@click.option("--type", "etype", help="Event type glob, e.g. 'score.*'.")
@click.option("--game", help="Game glob, e.g. '*Knicks*'.")
@click.option("--route", help="Only events this route fired for (glob).")
@click.option("--limit", type=int, default=0, help="Stop after this many events.")
def tap(config_path: str | None, url: str | None, token: str | None, etype: str | None,
        game: str | None, route: str | None, limit: int) -> None:
    """Attach to a running daemon and print matching events live."""
    from .tap import tap_events

    if not config_path and not url:
        raise click.UsageError("give --config FILE (the daemon's config) or --url")
    state_dir = None
    if config_path:
        from .app import App
        config = load_or_exit(config_path)
        state_dir = App.state_dir_of(config)
    try:
        run_async(tap_events(state_dir, url, token, {"type": etype, "game": game, "route": route},
                             limit))
    except KeyboardInterrupt:
        pass


def main() -> None:
    cli(obj={})


if __name__ == "__main__":
    main()
