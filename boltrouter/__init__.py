"""boltrouter: BoltOdds feeds normalized into typed events and routed to sinks."""

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("boltrouter")
"""Decorate plugin functions with this marker: ``@boltrouter.hookimpl``."""

__all__ = ["__version__", "hookimpl"]
