"""Built-in rule plugins: each derives ``rule.*`` events from the odds stream.

Every module here is a plugin registered exactly like a third-party one (see
``boltrouter.plugins.DEFAULT_PLUGINS``); ``market`` holds what they share.
"""
