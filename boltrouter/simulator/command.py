"""``boltrouter simulate``: run the simulator alone, for other clients or a second daemon."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Any

import click

from .server import DEFAULTS, SimulatorServer


async def serve_until_stopped(options: dict[str, Any], duration: float | None) -> None:
    sim = await SimulatorServer(options).start()
    click.echo(f"simulator: odds {sim.url_for('odds')}", err=True)
    click.echo(f"simulator: live scores {sim.url_for('scores')}", err=True)
    click.echo(f"simulator: play-by-play {sim.url_for('playbyplay')}", err=True)
    click.echo(f"simulator: REST {sim.url_for('rest')}", err=True)
    click.echo(f"simulator: {len(sim.world.games)} games, seed {sim.options['seed']}; "
               "any key is accepted except "
               f"{sim.options['reject_key']!r}. Ctrl-C stops.", err=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        if duration is None:
            await stop.wait()
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), duration)
    finally:
        await sim.stop()
        click.echo(f"simulator stopped after {sim.connects} connection(s)", err=True)


@click.command("simulate")
@click.option("--host", default=DEFAULTS["host"], show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8780, show_default=True,
              help="Websocket port (odds on /api, live scores on /api/livescores, "
                   "play-by-play on /api/playbyplay); 0 picks a free port.")
@click.option("--rest-port", type=int, default=0, show_default=True,
              help="HTTP port of the REST endpoints; 0 picks a free port.")
@click.option("--seed", type=int, default=DEFAULTS["seed"], show_default=True,
              help="The same seed gives the same games and odds.")
@click.option("--games", type=int, default=DEFAULTS["games"], show_default=True,
              help="Games open for betting at any time.")
@click.option("--updates-per-second", type=float, default=DEFAULTS["updates_per_second"],
              show_default=True, help="Odds changes per second across all games.")
@click.option("--speed", type=float, default=DEFAULTS["speed"], show_default=True,
              help="Simulated seconds per real second (games last minutes).")
@click.option("--no-rest-limit", is_flag=True,
              help="Do not enforce upstream's 12 REST requests a minute.")
@click.option("--for", "duration", metavar="DURATION", help="Stop after this long (30s, 10m).")
def simulate_command(host: str, port: int, rest_port: int, seed: int, games: int,
                     updates_per_second: float, speed: float, no_rest_limit: bool,
                     duration: str | None) -> None:
    """Run the built-in BoltOdds simulator alone (no API key needed)."""
    from ..cli import run_async
    from ..config import parse_duration

    seconds = None
    if duration is not None:
        try:
            seconds = parse_duration(duration)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--for") from None
    if games < 1:
        raise click.BadParameter("must be at least 1", param_hint="--games")
    options = {"host": host, "port": port, "rest_port": rest_port, "seed": seed,
               "games": games, "updates_per_second": updates_per_second, "speed": speed,
               "rest_rate_limit": not no_rest_limit}
    try:
        run_async(serve_until_stopped(options, seconds))
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: "
                                   f"{exc.strerror or exc}") from None
