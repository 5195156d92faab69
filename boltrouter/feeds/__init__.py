"""The upstream feeds: the odds websocket, live scores, play-by-play and the REST pollers.

``ws.WebsocketFeed`` is the connection manager shared by every websocket feed.
"""
