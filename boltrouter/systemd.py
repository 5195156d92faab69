"""systemd integration: sd_notify (READY, STATUS, RELOADING, WATCHDOG) without a dependency."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time

log = logging.getLogger("boltrouter.systemd")


def notify(message: str) -> bool:
    """Send one sd_notify datagram; False when not run under systemd."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    if path.startswith("@"):
        path = "\0" + path[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(path)
            sock.sendall(message.encode())
        return True
    except OSError as exc:
        log.debug("sd_notify failed: %s", exc)
        return False


def watchdog_interval() -> float | None:
    """Half the watchdog timeout systemd asked for, or None when there is none."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2_000_000
    except ValueError:
        return None


async def watchdog(app: object, interval: float) -> None:
    """Pet the watchdog while the event loop is healthy.

    The ping comes from the loop itself, so a stuck loop stops the pings and
    systemd restarts the service. A loop that lags by more than the interval is
    reported in STATUS and skips the ping.
    """
    expected = time.monotonic() + interval
    while True:
        await asyncio.sleep(interval)
        now = time.monotonic()
        lag = now - expected
        expected = now + interval
        if lag > interval:
            log.warning("event loop lagged %.1fs; skipping a watchdog ping", lag)
            continue
        notify("WATCHDOG=1")
        summary = getattr(app, "summary_line", None)
        if summary is not None:
            notify("STATUS=" + summary()[:200])
