"""Fixtures shared by several test files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers_mqtt import MISSING, Broker, mosquitto_binary


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A private Mosquitto on a free loopback port for one test; skips when none is installed."""
    if mosquitto_binary() is None:
        pytest.skip(MISSING)
    b = Broker(tmp_path / "broker")
    b.start()
    yield b
    b.stop()
