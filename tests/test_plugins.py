"""Plugins: built-ins and third-party plugins share one path; sync and async hooks; isolation."""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import sys
from pathlib import Path

import orjson
import pytest
from helpers_sinks import PLUGINS, REPO, boltrouter, recording, start_app, wait_until, write_config

from boltrouter import hookspecs
from boltrouter.config import ConfigErrors, load_config
from boltrouter.events import Event
from boltrouter.plugins import DEFAULT_PLUGINS, collect_registrations, make_manager, plugin_info

EVERY_HOOK = '''
"""A plugin that implements every hook, half of them as async def."""
import boltrouter
from boltrouter.events import Event
from boltrouter.rule import Rule
from boltrouter.sink import Sink

__version__ = "2.3.4"
calls = []


class Memory(Sink):
    async def write(self, batch):
        calls.extend(("write", d.event.type) for d in batch)


class Echo(Rule):
    emits = {"rule.echo": "An echo of every score change."}
    consumes = ("score.changed",)

    def on_event(self, event):
        return [Event("rule.echo", {"of": event.id}, feed=self.name, game=event.game)]


@boltrouter.hookimpl
async def register_sink_types(register):
    register("memory", Memory)


@boltrouter.hookimpl
def register_rule_types(register):
    register("echo", Echo)


@boltrouter.hookimpl
async def register_event_types(register):
    register("rule.custom", "Something only this plugin knows.")


@boltrouter.hookimpl
def register_commands(cli):
    @cli.command()
    def hello():
        """Say hello."""
        print("hello from a plugin")


@boltrouter.hookimpl(specname="on_event")
def count_event(event):
    calls.append(("sync", event.type))


@boltrouter.hookimpl
async def on_event(event, app):
    calls.append(("async", event.type, app.events_in > 0))


@boltrouter.hookimpl
async def startup(app):
    calls.append(("startup", sorted(app.sinks)))


@boltrouter.hookimpl
def shutdown():
    calls.append(("shutdown",))
'''

RAISES = '''
import boltrouter

@boltrouter.hookimpl
def on_event(event):
    raise RuntimeError("sync observer broke on " + event.type)

@boltrouter.hookimpl
async def startup(app):
    raise ValueError("startup broke")
'''


def plugin_dir(tmp_path: Path, **files: str) -> Path:
    """A plugins_dir holding the example plugins and ``files`` (name -> source)."""
    folder = tmp_path / "myplugins"
    folder.mkdir(exist_ok=True)
    for example in PLUGINS.glob("*.py"):
        shutil.copy(example, folder)
    for name, text in files.items():
        (folder / f"{name}.py").write_text(text)
    return folder


def config_file(tmp_path: Path, folder: Path, body: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f"plugins_dir: {folder}\nsummary: {{enabled: never}}\n{body}")
    return path


def test_built_in_sinks_are_plugins_registered_like_any_other() -> None:
    pm = make_manager(None, entry_points=False)
    names = [name for name, _ in pm.list_name_plugin()]
    assert "boltrouter.sinks.sqlite" in names and "boltrouter.sinks.csv" in names
    assert all(pm.origins[n] == "built-in" for n in names)
    assert set(collect_registrations(pm, "register_sink_types")) >= {"sqlite", "csv"}
    # without the built-in plugins, the core knows no sink at all
    bare = make_manager(None, entry_points=False, builtins=False)
    assert collect_registrations(bare, "register_sink_types") == {}
    assert set(DEFAULT_PLUGINS) >= set(names)


def test_every_hook_is_documented_in_the_plugin_guide() -> None:
    readme = (REPO / "README.md").read_text()
    guide = readme[readme.index("## Writing a plugin"):]
    guide = guide[:guide.index("\n## ", 1)]
    hooks = [name for name in dir(hookspecs) if hasattr(getattr(hookspecs, name),
                                                          "boltrouter_spec")]
    assert len(hooks) >= 8
    missing = [h for h in hooks if f"`{h}" not in guide]
    assert not missing, f"hooks missing from the README plugin guide: {missing}"


async def test_sync_and_async_hooks_register_types_observe_and_see_the_lifespan(
        tmp_path: Path) -> None:
    folder = plugin_dir(tmp_path, everything=EVERY_HOOK)
    cfg = config_file(tmp_path, folder, """
sinks:
  mem: {type: memory}
rules:
  echo: {type: echo}
routes:
  - {name: echoes, when: {type: rule.echo}, to: mem}
  - {name: scores, when: {type: score.changed}, to: mem}
""")
    app = await start_app(cfg)
    calls = sys.modules["boltrouter_plugin_everything"].calls
    assert calls == [("startup", ["mem"])]
    assert app.event_types["rule.custom"] == "Something only this plugin knows."
    assert app.event_types["rule.echo"] == "An echo of every score change."
    events = [e for e in recording(changes=20) if e.type == "score.changed"]
    await app.publish_many(events)
    await app.stop()
    n = len(events)
    assert n == 2
    assert calls.count(("sync", "score.changed")) == n
    assert calls.count(("async", "score.changed", True)) == n
    assert calls.count(("sync", "rule.echo")) == n  # derived events are observed too
    assert calls.count(("write", "score.changed")) == n
    assert calls.count(("write", "rule.echo")) == n
    assert calls[-1] == ("shutdown",)


def test_a_plugin_adds_a_command_from_plugins_dir(tmp_path: Path) -> None:
    folder = plugin_dir(tmp_path, everything=EVERY_HOOK)
    result = boltrouter("--plugins-dir", str(folder), "hello")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "hello from a plugin"
    assert "hello" in boltrouter("--help", env={"BOLTROUTER_PLUGINS_DIR": str(folder)}).stdout


async def test_a_raising_observer_is_logged_counted_and_the_events_still_flow(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = plugin_dir(tmp_path, raises=RAISES)
    cfg = config_file(tmp_path, folder, """
sinks:
  good: {type: flaky, mode: ok}
  bad: {type: flaky, mode: fail}
routes:
  - {name: all, when: {type: "*"}, to: [bad, good]}
""")
    events = recording(changes=10)
    with caplog.at_level(logging.ERROR):
        app = await start_app(cfg)
        await app.publish_many(events)
        await app.stop()
    assert app.sinks["good"].seen == [e.id for e in events]  # type: ignore[attr-defined]
    assert app.metrics.total("plugin_errors", plugin="raises") == len(events) + 1
    assert app.metrics.total("sink_failed", sink="bad") == len(events)
    assert "plugin raises raised RuntimeError: sync observer broke on odds.game_added" \
        in caplog.text
    assert "plugin raises raised ValueError: startup broke" in caplog.text


async def test_an_async_observer_that_raises_is_counted(tmp_path: Path) -> None:
    folder = plugin_dir(tmp_path, async_raises='''
import boltrouter

@boltrouter.hookimpl
async def on_event(event, app):
    raise KeyError(event.id)
''')
    cfg = config_file(tmp_path, folder, "")
    app = await start_app(cfg)
    events = recording(changes=5)
    await app.publish_many(events)
    await wait_until(lambda: app.metrics.total("plugin_errors", plugin="async_raises")
                     == len(events),
                     what="the async observer's errors")
    await app.stop()


def test_a_plugin_that_fails_to_import_is_reported_and_the_others_load(tmp_path: Path) -> None:
    folder = plugin_dir(tmp_path, broken="import boltrouter\nraise ImportError('no such luck')\n",
                        everything=EVERY_HOOK)
    cfg = config_file(tmp_path, folder, """
sinks:
  mem: {type: memory}
""")
    config = load_config(cfg)
    assert "memory" in collect_registrations(config.pm, "register_sink_types")
    [problem] = config.pm.problems
    assert problem.plugin == "broken" and "ImportError: no such luck" in problem.message
    check = boltrouter("check", "--config", str(cfg))
    assert check.returncode == 0, check.stderr
    assert "warning: plugin 'broken'" in check.stderr and "no such luck" in check.stderr
    listing = boltrouter("plugins", "--config", str(cfg))
    assert listing.returncode == 0
    assert "everything 2.3.4" in listing.stdout
    assert "not loaded: plugin 'broken'" in listing.stderr


def test_a_sink_type_of_a_broken_plugin_names_the_plugin_problem(tmp_path: Path) -> None:
    folder = plugin_dir(tmp_path, broken="raise RuntimeError('boom at import')\n")
    cfg = config_file(tmp_path, folder, """
sinks:
  mem: {type: memory}
""")
    with pytest.raises(ConfigErrors) as err:
        load_config(cfg)
    text = str(err.value)
    assert "sinks.mem.type: unknown sink type 'memory'" in text
    assert "plugin 'broken'" in text and "boom at import" in text


def test_a_register_hook_that_raises_does_not_hide_the_other_plugins(tmp_path: Path) -> None:
    folder = plugin_dir(tmp_path, badreg='''
import boltrouter

@boltrouter.hookimpl
def register_sink_types(register):
    raise RuntimeError("cannot register")
''')
    cfg = config_file(tmp_path, folder, """
sinks:
  screen: {type: console}
""")
    config = load_config(cfg)
    assert "screen" in config.sinks
    assert any("register_sink_types raised RuntimeError: cannot register" in p.message
               for p in config.pm.problems)


def test_the_example_plugins_load_through_plugins_dir_and_are_listed(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, "sinks:\n  screen: {type: console}\n")
    result = boltrouter("plugins", "--config", str(cfg), "--json")
    assert result.returncode == 0, result.stderr
    rows = {r["name"]: r for r in orjson.loads(result.stdout)["plugins"]}
    assert rows["console_sink"]["version"] == "1.0.0"
    assert rows["console_sink"]["hooks"] == ["register_sink_types"]
    assert rows["console_sink"]["origin"] == str(PLUGINS / "console_sink.py")
    assert rows["flaky_sink"]["version"] == "0.1.0"
    assert rows["boltrouter.sinks.sqlite"]["builtin"] is True
    text = boltrouter("plugins", "--config", str(cfg)).stdout
    assert re.search(r"^console_sink 1\.0\.0 \(.*console_sink\.py\)\n    hooks: "
                     r"register_sink_types$", text, re.M)


async def test_the_console_example_sink_prints_each_routed_event(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path, """
sinks:
  screen: {type: console, prefix: ">> "}
routes:
  - {name: scores, when: {type: score.changed}, to: screen}
""")
    events = recording(changes=20)
    app = await start_app(cfg)
    await app.publish_many(events)
    await app.stop()
    lines = capsys.readouterr().out.splitlines()
    scores = [e for e in events if e.type == "score.changed"]
    assert len(lines) == len(scores) == 2
    assert lines[0].startswith(f">> {scores[0].time} score.changed {scores[0].game} ")


def test_entry_point_plugins_are_loaded_with_their_distribution_version(tmp_path: Path) -> None:
    site = tmp_path / "site"
    dist = site / "boltrouter_hello-4.5.6.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: boltrouter-hello\n"
                                   "Version: 4.5.6\n")
    (dist / "entry_points.txt").write_text("[boltrouter]\nhello = boltrouter_hello\n")
    (site / "boltrouter_hello.py").write_text(EVERY_HOOK)
    env = {"PYTHONPATH": str(site)}
    listing = boltrouter("plugins", "--json", env=env)
    assert listing.returncode == 0, listing.stderr
    rows = {r["name"]: r for r in orjson.loads(listing.stdout)["plugins"]}
    assert rows["hello"]["version"] == "4.5.6"
    assert rows["hello"]["origin"] == "entry point boltrouter_hello"
    assert "on_event" in rows["hello"]["hooks"] and "register_commands" in rows["hello"]["hooks"]
    assert boltrouter("hello", env=env).stdout.strip() == "hello from a plugin"


def test_plugin_info_lists_hooks_per_plugin() -> None:
    rows = {r["name"]: r for r in plugin_info(make_manager(PLUGINS, entry_points=False))}
    assert rows["flaky_sink"]["hooks"] == ["register_sink_types"]
    assert "register_feed_types" in rows["boltrouter.feeds.odds"]["hooks"]


async def test_an_async_register_hook_that_waits_is_refused_clearly(tmp_path: Path) -> None:
    folder = plugin_dir(tmp_path, waits='''
import asyncio
import boltrouter

@boltrouter.hookimpl
async def register_sink_types(register):
    await asyncio.sleep(0.01)
''')
    pm = make_manager(folder, entry_points=False)
    await asyncio.sleep(0)
    collect_registrations(pm, "register_sink_types")
    assert any("must not wait on anything" in p.message for p in pm.problems)


def readme_section(start: str) -> str:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index(start):]
    return section[:section.index("\n### ", len(start))]


async def test_the_sink_plugin_of_the_readme_works_as_printed(tmp_path: Path) -> None:
    guide = readme_section("### A sink plugin")
    [code] = re.findall(r"```python\n(.*?)```", guide, re.S)
    [yaml_text] = re.findall(r"```yaml\n(.*?)```", guide, re.S)
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "jsonl_sink.py").write_text(code)
    cfg = tmp_path / "config.yaml"
    cfg.write_text("summary: {enabled: never}\n" + yaml_text)
    app = await start_app(cfg)
    events = recording(changes=40)
    await app.publish_many(events)
    await app.publish(Event("feed.disconnected", {"feed": "odds"}, feed="odds"))
    await app.stop()
    moves = [e for e in events if e.type == "odds.line_changed"
             and abs(e.data["new_prob"] - e.data["old_prob"]) >= 0.05]
    written = [orjson.loads(line) for line in (tmp_path / "moves.jsonl").read_bytes().splitlines()]
    assert moves and written == [{"game": e.game, "odds": e.data["new_odds"]} for e in moves]
    assert app.metrics.total("jsonl_example_disconnects") == 1
    assert {r["name"]: r["version"] for r in plugin_info(app.pm)}["jsonl_sink"] == "1.0.0"


async def test_a_sink_or_rule_that_cannot_be_created_leaves_the_others_running(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = plugin_dir(tmp_path, fragile='''
import boltrouter
from boltrouter.rule import Rule
from boltrouter.sink import Sink


class Fragile(Sink):
    def __init__(self, name, options, app):
        raise OSError("device not found")


class FragileRule(Rule):
    def __init__(self, name, options, app):
        raise KeyError("missing table")


@boltrouter.hookimpl
def register_sink_types(register):
    register("fragile", Fragile)


@boltrouter.hookimpl
def register_rule_types(register):
    register("fragile_rule", FragileRule)
''')
    cfg = config_file(tmp_path, folder, """
sinks:
  bad: {type: fragile}
  good: {type: flaky, mode: ok}
rules:
  broken: {type: fragile_rule}
routes:
  - {name: all, when: {type: "*"}, to: [bad, good]}
""")
    events = recording(changes=10)
    with caplog.at_level(logging.ERROR):
        app = await start_app(cfg)
        await app.publish_many(events)
        await app.stop()
    assert app.sinks["good"].seen == [e.id for e in events]  # type: ignore[attr-defined]
    assert "bad" not in app.sinks and "broken" not in app.rules
    assert "sink 'bad' could not be created: OSError: device not found" in caplog.text
    assert "rule 'broken' could not be created: KeyError" in caplog.text
    assert app.metrics.total("plugin_errors", plugin="sink:bad") == 1
    assert app.metrics.total("plugin_errors", plugin="rule:broken") == 1
