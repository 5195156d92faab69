"""Stopping never hangs, whatever moment the stop comes at."""

from __future__ import annotations

import asyncio

from helpers_odds import feed_config
from helpers_ws import ScriptServer

from boltrouter.app import App


async def test_a_stop_that_comes_just_as_socket_connected_arrives_ends_the_feed(tmp_path):
    # The feed waits for socket_connected with a timeout; a stop landing in the few loop
    # turns between the frame's arrival and the feed resuming must still end the feed
    # (a lost cancellation left the daemon connected and its stop waiting forever).
    server = await ScriptServer.start()
    server.greeting = None
    try:
        for turns in range(12):
            app = App(feed_config(tmp_path, server.url))
            await app.start()
            feed_task = app._tasks[0]
            conn = await server.next_connection(timeout=30)
            await conn.send({"action": "socket_connected"})
            for _ in range(turns):
                await asyncio.sleep(0)
            try:
                async with asyncio.timeout(20):
                    await app.stop()
            except TimeoutError:
                feed_task.cancel()
                raise AssertionError(f"stop {turns} loop turns after socket_connected was sent "
                                     "did not end the feed") from None
            assert feed_task.done() and not app.feeds["odds"].connected
    finally:
        await server.stop()
