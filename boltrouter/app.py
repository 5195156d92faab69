"""The daemon's lifespan: configure, start, publish, reload, drain, stop."""

from __future__ import annotations

import asyncio
import collections
import gc
import logging
import signal
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .bus import Bus, SinkRunner
from .config import Config, ConfigErrors, load_config
from .events import EVENT_TYPES, Event
from .metrics import Metrics
from .plugins import collect_registrations, hook_kwargs, make_manager
from .routes import RouteTable
from .rule import Rule
from .secrets import redact
from .sink import Delivery, Sink

log = logging.getLogger("boltrouter")

GC_THRESHOLDS = (20_000, 20, 50)
"""The cyclic garbage collector's thresholds while the daemon runs (Python's default is
700, 10, 10). Every event allocates a few container objects that live until a sink
wrote them; at the default they are walked again and again, and a full collection,
which walks every object of the odds board, ran every ten thousand events or so: in
all about a sixth of the event loop's time per line update."""


class App:
    """Holds everything that runs: feeds, state, rules, routes, sinks."""

    def __init__(self, config: Config, pm: Any = None) -> None:
        self.config = config
        self.pm = pm or config.pm or make_manager(self.plugins_dir(config))
        self.metrics = Metrics()
        self._events_in = self.metrics.counters["events_in"]
        self.bus = Bus(self.metrics)
        self.sinks: dict[str, Sink] = {}
        self.rules: dict[str, Rule] = {}
        self.feeds: dict[str, Any] = {}
        self.routes = RouteTable([], self.metrics)
        self.event_types = dict(EVENT_TYPES)
        self.simulator: Any = None
        self.started = time.monotonic()
        self.events_in = 0
        self.recent: collections.deque[Event] = collections.deque(maxlen=50)
        self.taps: list[Callable[[Event, list[str]], None]] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._stop = asyncio.Event()
        self._observers: list[Any] = []
        self._pending: set[asyncio.Future[Any]] = set()
        self._sink_observers: list[Sink] = []
        self._reload_lock = asyncio.Lock()
        self._rule_list: list[Rule] = []
        self.ready = False
        self.http: Any = None
        from .board import OddsBoard
        from .catalogue import Catalogue
        from .scoreboard import Scoreboard
        self.catalogue = Catalogue()
        self.board = OddsBoard(self.catalogue)
        self.scoreboard = Scoreboard(self.catalogue)

    @staticmethod
    def plugins_dir(config: Config) -> str | None:
        d = config.data.get("plugins_dir")
        if d and not Path(d).is_absolute():
            d = str(Path(config.path).resolve().parent / d)
        return d

    @staticmethod
    def state_dir_of(config: Config) -> Path:
        d = Path(config.data.get("state_dir") or ".")
        if not d.is_absolute():
            d = Path(config.path).resolve().parent / d
        return d

    @property
    def state_dir(self) -> Path:
        d = self.state_dir_of(self.config)
        d.mkdir(parents=True, exist_ok=True)
        return d

    def resolve_path(self, p: str) -> Path:
        """A path from the config, relative to the config file's folder."""
        path = Path(p)
        return path if path.is_absolute() else Path(self.config.path).resolve().parent / path

    # -- lifespan ----------------------------------------------------------------------

    async def start(self, *, feeds: bool = True) -> None:
        gc.set_threshold(*(max(now, ours) for now, ours in zip(gc.get_threshold(),
                                                               GC_THRESHOLDS, strict=True)))
        for problem in getattr(self.pm, "problems", []):
            self.metrics.inc("plugin_errors", plugin=problem.plugin)
        for name, desc in collect_registrations(self.pm, "register_event_types").items():
            self.event_types[name] = desc
        self._observers = [impl for impl in self.pm.hook.on_event.get_hookimpls()]
        for name, (cls, options) in self.config.sinks.items():
            await self._start_sink(name, cls, options)
        self._build_rules(self.config)
        self.routes = RouteTable(self.config.routes, self.metrics)
        await self._call_hook("startup")
        if feeds:
            await self._start_feeds()
        self.ready = True

    async def _start_sink(self, name: str, cls: type, options: dict[str, Any]) -> None:
        try:
            sink = cls(name, options, self)
        except Exception as exc:  # a plugin's sink must not keep the others from starting
            log.error("sink %r could not be created: %s: %s; events routed to it are dropped",
                      name, type(exc).__name__, redact(exc))
            self.metrics.inc("plugin_errors", plugin=f"sink:{name}")
            self.metrics.inc("sink_start_failed", sink=name)
            return
        await self._open_sink(sink)
        self.sinks[name] = sink
        self.bus.add(name, sink, options)
        if type(sink).observe is not Sink.observe:
            self._sink_observers.append(sink)

    async def _open_sink(self, sink: Sink) -> None:
        try:
            await sink.start()
        except Exception as exc:
            log.error("sink %r could not start: %s", sink.name, redact(exc))
            self.metrics.inc("sink_start_failed", sink=sink.name)

    def _build_rules(self, config: Config) -> None:
        self.rules = {}
        for name, (cls, options) in config.rules.items():
            try:
                self.rules[name] = cls(name, options, self)
            except Exception as exc:  # nor a plugin's rule keep the others from running
                log.error("rule %r could not be created: %s: %s; it is left out", name,
                          type(exc).__name__, redact(exc))
                self.metrics.inc("plugin_errors", plugin=f"rule:{name}")
                continue
            for etype, desc in getattr(cls, "emits", {}).items():
                self.event_types.setdefault(etype, desc)
        self._rule_list = list(self.rules.values())

    async def _start_feeds(self) -> None:
        if not self.config.feeds:
            return
        if self.config.use_simulator:
            from .simulator import start_simulator
            self.simulator = await start_simulator(self.config.data["simulator"])
            log.info("no API key configured: using the built-in simulator at %s",
                     self.simulator.base_url)
        for name, (cls, options) in self.config.feeds.items():
            self._launch_feed(name, cls, options)

    def _feed_options(self, name: str, options: dict[str, Any]) -> dict[str, Any]:
        opts = dict(options)
        if self.simulator is not None:
            opts["url"] = self.simulator.url_for(name)
        else:
            beside = self._url_beside_odds(name, opts.get("url"))
            if beside is not None:
                log.info("%s feed: no url set while the odds socket is %s; using %s",
                         name, redact(self.config.feeds["odds"][1].get("url")), redact(beside))
                opts["url"] = beside
        return opts

    def _url_beside_odds(self, name: str, url: Any) -> str | None:
        """The endpoint of feed ``name`` on the server of the odds socket, when the odds
        URL was changed (a proxy, a test server) and this feed's URL was left at its
        default: upstream serves every socket and the REST API side by side."""
        entry, odds = self.config.feeds.get(name), self.config.feeds.get("odds")
        if name == "odds" or entry is None or odds is None:
            return None
        default = getattr(entry[0].options_schema.get("url"), "default", None)
        odds_url = str(odds[1].get("url") or "")
        odds_default = getattr(odds[0].options_schema.get("url"), "default", None)
        own_path = getattr(entry[0], "simulator_path", None)
        if url != default or not default or not odds_url or odds_url == odds_default \
                or own_path is None:
            return None
        parts = urlsplit(odds_url)
        root = parts.path.rstrip("/")
        odds_path = str(getattr(odds[0], "simulator_path", "/api"))
        if root.endswith(odds_path):
            root = root[:-len(odds_path)]
        scheme, query = parts.scheme, parts.query
        if str(default).startswith("http"):
            scheme = {"ws": "http", "wss": "https"}.get(scheme, scheme)
            query = ""
        return urlunsplit((scheme, parts.netloc, root + own_path, query, ""))

    def _launch_feed(self, name: str, cls: type, options: dict[str, Any]) -> None:
        feed = cls(name, self._feed_options(name, options), self)
        self.feeds[name] = feed
        self._tasks.append(asyncio.create_task(self._run_feed(feed), name=f"feed:{name}"))

    async def _run_feed(self, feed: Any) -> None:
        try:
            await feed.run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("feed %r stopped: %s", feed.name, redact(exc))
            self.metrics.inc("feed_fatal", feed=feed.name)

    def api_key(self) -> str:
        """The key feeds send (also to the simulator when one is forced with a key set)."""
        return self.config.api_key

    async def stop(self) -> None:
        self.ready = False
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        grace = self.config.data.get("shutdown_grace", 10.0)
        if self._pending:
            await asyncio.wait(self._pending, timeout=grace)
        await self.bus.drain(grace)
        for name, sink in self.sinks.items():
            try:
                await sink.stop()
            except Exception as exc:
                log.error("sink %r did not close cleanly: %s", name, redact(exc))
        await self._call_hook("shutdown")
        if self.simulator is not None:
            await self.simulator.stop()
            self.simulator = None

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self, duration: float | None = None, summary: bool | None = None) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self.request_stop)
            except (NotImplementedError, RuntimeError):
                pass
        try:
            loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        except (NotImplementedError, RuntimeError, AttributeError):
            pass
        await self.start()
        from . import systemd
        from .http import HttpServer, socket_path
        http_opts = self.config.data["http"]
        self.http = HttpServer(self, host=http_opts["host"], port=http_opts["port"],
                               token=http_opts.get("token"), tcp=http_opts["enabled"],
                               unix_path=socket_path(self.state_dir))
        await self.http.start()
        self._tasks.append(asyncio.create_task(systemd.notify_ready(self)))
        interval = systemd.watchdog_interval()
        if interval:
            self._tasks.append(asyncio.create_task(systemd.watchdog(self, interval)))
        printer = None
        if summary is None:
            mode = self.config.data["summary"]["enabled"]
            summary = mode == "always" or (mode == "auto" and sys.stderr.isatty())
        if summary:
            printer = asyncio.create_task(self._print_summary())
        try:
            if duration is not None:
                try:
                    await asyncio.wait_for(self._stop.wait(), duration)
                except TimeoutError:
                    pass
            else:
                await self._stop.wait()
        finally:
            if printer is not None:
                printer.cancel()
                await asyncio.gather(printer, return_exceptions=True)
                sys.stderr.write("\n")
            log.info("stopping: draining sinks")
            systemd.notify("STOPPING=1")
            await self.http.stop()
            await self.stop()
            log.info("stopped: %s", self.summary_line())

    # -- events ------------------------------------------------------------------------

    async def publish(self, event: Event) -> None:
        """Send one event through rules, observers and routes to the sinks."""
        derived: list[Event] = []
        for rule in self._rule_list:
            if rule.consumes is not None and event.type not in rule.consumes:
                continue
            try:
                out = rule.on_event(event)
            except Exception as exc:
                self._plugin_failed(f"rule:{rule.name}", exc)
                continue
            if out:
                derived.extend(out)
        await self._route(event)
        for ev in derived:
            await self._route(ev)

    async def publish_many(self, events: Iterable[Event]) -> None:
        for event in events:
            await self.publish(event)

    def publish_soon(self, derive: Callable[[], Iterable[Event]], name: str = "rule") -> None:
        """Route what ``derive()`` returns once the events being published now are done.

        For rules that judge a whole upstream message at once; the events skip the
        rules, like any derived event. ``stop`` waits for them before draining sinks.
        """
        async def later() -> None:
            try:
                derived = list(derive())
            except Exception as exc:
                self._plugin_failed(name, exc)
                return
            for event in derived:
                await self._route(event)

        task = asyncio.ensure_future(later())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _route(self, event: Event) -> None:
        self.events_in += 1
        # the events_in counter by feed and type, its labels in the order Metrics sorts them
        self._events_in[(("feed", event.feed or ""), ("type", event.type))] += 1
        self.recent.append(event)
        for sink in self._sink_observers:
            try:
                sink.observe(event)
            except Exception as exc:
                self._plugin_failed(f"sink:{sink.name}", exc)
        for impl in self._observers:
            try:
                result = impl.function(**hook_kwargs(impl, event=event, app=self))
                if asyncio.iscoroutine(result):
                    task = asyncio.ensure_future(self._await_observer(impl.plugin_name, result))
                    self._pending.add(task)
                    task.add_done_callback(self._pending.discard)
            except Exception as exc:
                self._plugin_failed(impl.plugin_name, exc)
        deliveries = self.routes.match(event)
        if self.taps:
            routes = sorted({d.route for _, d in deliveries if d.route})
            for tap in list(self.taps):
                tap(event, routes)
        if deliveries:
            await self.bus.deliver(deliveries)

    async def _await_observer(self, name: str, coro: Any) -> None:
        try:
            await coro
        except Exception as exc:
            self._plugin_failed(name, exc)

    def _plugin_failed(self, name: str, exc: BaseException) -> None:
        self.metrics.inc("plugin_errors", plugin=name)
        log.error("plugin %s raised %s: %s (the event goes on to the other plugins)", name,
                  type(exc).__name__, redact(exc))

    async def _call_hook(self, hook: str) -> None:
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            try:
                result = impl.function(**hook_kwargs(impl, app=self))
                if asyncio.iscoroutine(result):
                    await result
            except Exception as exc:
                self._plugin_failed(impl.plugin_name, exc)

    async def deliver_direct(self, sink: str, delivery: Delivery) -> None:
        await self.bus.deliver([(sink, delivery)])

    # -- reload ------------------------------------------------------------------------

    def request_reload(self) -> None:
        """Reload in the background (SIGHUP, ``systemctl reload``)."""
        if not self.ready:
            log.warning("reload requested while starting: ignored; send it again once started")
            return
        task = asyncio.ensure_future(self.reload())
        self._tasks.append(task)

        def forget(done: asyncio.Task[Any]) -> None:
            if done in self._tasks:
                self._tasks.remove(done)

        task.add_done_callback(forget)

    async def reload(self, config: Config | None = None) -> list[str]:
        """Re-read the config and apply it in place; on errors keep the running one.

        Returns the error messages (empty when the new config was applied). Sinks,
        rules and routes that did not change keep running with their state (queues,
        throttle, cooldown and dedupe windows); feeds whose filters changed
        re-subscribe on their open connection.
        """
        from . import systemd
        async with self._reload_lock:
            systemd.notify(systemd.reloading_message())
            try:
                return await self._reload(config)
            finally:
                systemd.notify("READY=1\nSTATUS=" + self.config.summary()[:200])

    async def _reload(self, config: Config | None) -> list[str]:
        if config is None:
            try:
                config = load_config(self.config.path, self.pm)
            except ConfigErrors as exc:
                messages = [redact(e) for e in exc.errors]
                log.error("reload rejected: %d error(s) in %s; the running config stays",
                          len(messages), self.config.path)
                for message in messages:
                    log.error("reload rejected: %s", message)
                self.metrics.inc("reloads", result="rejected")
                return messages
        old = self.config
        grace = config.data.get("shutdown_grace", 10.0)
        retired: list[tuple[SinkRunner, Sink, SinkRunner | None]] = []
        for name, (cls, options) in config.sinks.items():
            current = self.sinks.get(name)
            if current is None:
                await self._start_sink(name, cls, options)
            elif type(current) is not cls or (options != old.sinks[name][1]
                                              and not await self._reconfigure_sink(current,
                                                                                   options)):
                retired.append(await self._replace_sink(name, cls, options))
        kept_rules = {n: r for n, r in self.rules.items()
                      if n in config.rules and config.rules[n] == old.rules.get(n)}
        self._build_rules(config)
        self.rules.update(kept_rules)
        self._rule_list = list(self.rules.values())
        self.routes = self.routes.updated(config.routes)
        self.config = config
        for name in [n for n in self.sinks if n not in config.sinks]:
            sink = self.sinks.pop(name)
            if sink in self._sink_observers:
                self._sink_observers.remove(sink)
            runner = self.bus.runners.pop(name, None)
            if runner is not None:
                retired.append((runner, sink, None))
        for runner, sink, successor in retired:
            await self._retire_sink(runner, sink, successor, grace)
        await self._reload_feeds(old, config)
        http_old, http_new = old.data["http"], config.data["http"]
        if self.http is not None:
            self.http.token = http_new.get("token") or None
        if any(http_old[k] != http_new[k] for k in ("enabled", "host", "port")):
            log.warning("the HTTP endpoint's new address applies from the next restart")
        self.metrics.inc("reloads", result="applied")
        log.info("config reloaded: %s", config.summary())
        return []

    async def _reconfigure_sink(self, sink: Sink, options: dict[str, Any]) -> bool:
        try:
            return await sink.reconfigure(options)
        except Exception as exc:
            log.error("sink %r could not apply the new options in place (%s); restarting it",
                      sink.name, redact(exc))
            return False

    async def _replace_sink(self, name: str, cls: type, options: dict[str, Any]
                            ) -> tuple[SinkRunner, Sink, SinkRunner]:
        """Swap in a new sink under ``name``; the old one is returned to be drained.

        From the swap on, deliveries queue on the new runner, whose worker starts
        once the old sink drained and stopped, so no event is lost and the two never
        write at the same time. A durable sink starts first: it persists what it
        accepts.
        """
        old_sink = self.sinks[name]
        old_runner = self.bus.runners[name]
        sink = cls(name, options, self)
        runner = SinkRunner(name, sink, options, self.metrics)
        if sink.durable:
            await self._open_sink(sink)
        self.sinks[name] = sink
        self.bus.runners[name] = runner
        if old_sink in self._sink_observers:
            self._sink_observers.remove(old_sink)
        if type(sink).observe is not Sink.observe:
            self._sink_observers.append(sink)
        if sink.durable:
            runner.start()
        return old_runner, old_sink, runner

    async def _retire_sink(self, runner: SinkRunner, sink: Sink, successor: SinkRunner | None,
                           grace: float) -> None:
        """Drain and stop a sink; then start the one that replaces it (if any)."""
        await runner.drain(grace)
        try:
            await sink.stop()
        except Exception as exc:
            log.error("sink %r did not close cleanly: %s", sink.name, redact(exc))
        if successor is None:
            return
        successor.delivered += runner.delivered
        successor.failed += runner.failed
        successor.dropped += runner.dropped
        if not successor.sink.durable:
            await self._open_sink(successor.sink)
            successor.start()

    async def _reload_feeds(self, old: Config, config: Config) -> None:
        if old.use_simulator != config.use_simulator:
            log.warning("switching between the simulator and BoltOdds takes a restart")
        elif old.api_key != config.api_key:
            log.info("the API key changed: feeds send the new one from their next connection")
        for name, (cls, options) in config.feeds.items():
            feed = self.feeds.get(name)
            if feed is not None and type(feed) is cls:
                if options != old.feeds[name][1]:
                    try:
                        await feed.reconfigure(self._feed_options(name, options))
                    except Exception as exc:
                        log.error("feed %r could not apply the new options: %s", name,
                                  redact(exc))
                continue
            if feed is not None:
                await self._stop_feed(name)
            if self.simulator is not None or not config.use_simulator:
                self._launch_feed(name, cls, options)
        for name in [n for n in self.feeds if n not in config.feeds]:
            await self._stop_feed(name)

    async def _stop_feed(self, name: str) -> None:
        self.feeds.pop(name, None)
        for task in [t for t in self._tasks if t.get_name() == f"feed:{name}"]:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            self._tasks.remove(task)

    # -- status ------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {
            "uptime": time.monotonic() - self.started,
            "events_in": self.events_in,
            "feeds": {n: f.status() for n, f in self.feeds.items()},
            "sinks": {n: r.status() for n, r in self.bus.runners.items()},
            "routes": self.routes.stats(),
        }

    def summary_line(self, rate: float | None = None) -> str:
        routes = sum(v["fired"] for v in self.routes.stats().values())
        parts = [f"events {self.events_in}"]
        if rate is not None:
            parts.append(f"{rate:,.0f}/s")
        parts.append(f"routes fired {routes:.0f}")
        for name, r in self.bus.runners.items():
            st = r.status()
            delivered = st.get("delivered_total", st["delivered"])
            parts.append(f"{name} {delivered:.0f} ok/{st['failed']:.0f} failed"
                         + (f"/{st['dropped']} dropped" if st["dropped"] else ""))
        feeds = [f"{n}:{'up' if f.connected else 'down'}" for n, f in self.feeds.items()]
        if feeds:
            parts.append(" ".join(feeds))
        return " | ".join(parts)

    async def _print_summary(self) -> None:
        every = self.config.data["summary"]["every"]
        last_n, last_t = self.events_in, time.monotonic()
        tty = sys.stderr.isatty()
        while True:
            await asyncio.sleep(every if tty else max(every, 10.0))
            now = time.monotonic()
            rate = (self.events_in - last_n) / max(now - last_t, 1e-9)
            last_n, last_t = self.events_in, now
            line = self.summary_line(rate)
            if tty:
                sys.stderr.write("\r\x1b[2K" + line[:200])
            else:
                sys.stderr.write(line + "\n")
            sys.stderr.flush()
