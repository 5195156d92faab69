"""systemd integration: sd_notify (READY, STATUS, RELOADING, WATCHDOG) without a dependency."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from typing import Any

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


def reloading_message() -> str:
    """``RELOADING=1`` with the monotonic timestamp systemd 253+ expects alongside it."""
    return f"RELOADING=1\nMONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"


async def notify_ready(app: Any, timeout: float = 30.0) -> None:
    """Send ``READY=1`` once feeds are connected and sinks healthy.

    An upstream that stays unreachable must not fail the start (systemd would
    restart us in a loop): after ``timeout`` seconds the daemon reports ready
    anyway, says why in STATUS, and keeps reconnecting.
    """
    from .http import readiness

    if not os.environ.get("NOTIFY_SOCKET"):
        return
    deadline = time.monotonic() + timeout
    ready, reasons = readiness(app)
    while not ready and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        ready, reasons = readiness(app)
    if ready:
        status = app.config.summary()
    else:
        status = "running, not ready yet: " + "; ".join(reasons)
        log.warning("reporting started to systemd although %s", "; ".join(reasons))
    notify("READY=1\nSTATUS=" + status[:200])


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
