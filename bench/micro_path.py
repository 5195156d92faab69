"""The event-loop thread's cost of the full path, without a socket: odds frames handed
to the odds feed, the odds board, the 20 routes of the throughput benchmark and the
SQLite and CSV sinks.

    python -m bench.micro_path [--lines N] [--rounds R] [--match]

Prints, per round, the main thread's CPU time per line update (frames parsed, board
applied, events routed and queued) and the process CPU time per update until every
sink wrote (which adds the sinks' worker threads). With ``--match``: the CPU time of
``RouteTable.match`` alone per event, over the events the same frames produce.
Not part of the ``make bench``
table: a tool to compare a change before and after on a shared machine (run both
interleaved and compare the best rounds).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import tempfile
import time
from pathlib import Path

from boltrouter.events import Event
from boltrouter.simulator.session import frames_of

from . import _support as s
from .bench_throughput import BOOKS, GAMES, OUTCOMES, app_config


async def one_round(snapshot: list[bytes], frames: list[bytes], updates: int,
                    games: list[str]) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="bench-path-") as tmp:
        app, feed = await s.app_with_feed(Path(tmp), app_config(Path(tmp), games, None))
        try:
            for frame in snapshot:
                with app.bus.grouped():
                    await feed.handle_frame(frame)
            await s.wait_for(lambda: s.sinks_settled(app), 300, "the snapshot to be written")
            gc.collect()
            cpu0, thread0 = time.process_time(), time.thread_time()
            for frame in frames:
                with app.bus.grouped():
                    await feed.handle_frame(frame)
                await asyncio.sleep(0)
            thread = time.thread_time() - thread0
            await s.wait_for(lambda: s.sinks_settled(app), 600, "the sinks to write", step=0.002)
            cpu = time.process_time() - cpu0
        finally:
            await app.stop()
    return thread / updates * 1e6, cpu / updates * 1e6


async def match_only(snapshot: list[bytes], frames: list[bytes], games: list[str],
                     rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-path-") as tmp:
        app, feed = await s.app_with_feed(Path(tmp), app_config(Path(tmp), games, None))
        try:
            for frame in snapshot:
                await feed.handle_frame(frame)
            events: list[Event] = []

            async def keep(event: Event) -> None:
                events.append(event)

            app.publish = keep
            for frame in frames:
                await feed.handle_frame(frame)
            gc.collect()
            best = float("inf")
            for r in range(rounds):
                for route in app.routes.routes:
                    route.state = route.new_state()
                t0 = time.thread_time()
                for event in events:
                    app.routes.match(event)
                took = (time.thread_time() - t0) / len(events) * 1e6
                best = min(best, took)
                print(f"round {r}: RouteTable.match {took:.3f} us/event")
            print(f"best: RouteTable.match {best:.3f} us/event over {len(events)} events")
        finally:
            await app.stop()


async def main(lines: int, rounds: int, match: bool = False) -> None:
    market = s.make_market(GAMES // 4, BOOKS, OUTCOMES)
    games = sorted({bg.game for bg in market})
    snapshot = s.pack(list(s.snapshot_messages(market)), BOOKS)
    ups = s.updates(market, lines)
    frames = frames_of([u.raw for u in ups], random.Random(3), 40)
    total = sum(u.lines for u in ups)
    if match:
        await match_only(snapshot, frames, games, rounds)
        return
    best_thread = best_cpu = float("inf")
    for r in range(rounds):
        thread, cpu = await one_round(snapshot, frames, total, games)
        best_thread, best_cpu = min(best_thread, thread), min(best_cpu, cpu)
        print(f"round {r}: main thread {thread:.2f} us/update, process {cpu:.2f} us/update")
    print(f"best: main thread {best_thread:.2f} us/update, process {best_cpu:.2f} us/update")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(prog="python -m bench.micro_path")
    ap.add_argument("--lines", type=int, default=40_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--match", action="store_true", help="time RouteTable.match alone")
    args = ap.parse_args()
    asyncio.run(main(args.lines, args.rounds, args.match))
