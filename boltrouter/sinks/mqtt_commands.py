"""Requests over MQTT in the Zigbee2MQTT style.

A client publishes ``<base>/bridge/request/<command>`` with a JSON payload and
gets ``{"status": "ok"|"error", "data": ..., "transaction": ...}`` on
``<base>/bridge/response/<command>``; ``transaction`` is echoed when given.

Commands: ``track`` and ``untrack`` (``{"team": "Buffalo Bills"}`` or the bare
team name) and ``resubscribe`` (no payload).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

COMMANDS = ("track", "untrack", "resubscribe")


class RequestError(Exception):
    """A request that cannot be carried out; the message says why."""

    def __init__(self, message: str, transaction: Any = None) -> None:
        super().__init__(message)
        self.transaction = transaction


@dataclass(slots=True)
class Request:
    command: str
    team: str | None = None
    transaction: Any = None


def request_topic_filter(base: str) -> str:
    return f"{base}/bridge/request/#"


def response_topic(base: str, command: str) -> str:
    return f"{base}/bridge/response/{command}"


def command_of(base: str, topic: str) -> str:
    return topic[len(f"{base}/bridge/request/"):]


def parse_request(command: str, payload: bytes) -> Request:
    """Read one request; raises RequestError (with the transaction, when readable)."""
    body: Any = None
    text = payload.decode("utf-8", "replace").strip()
    if text:
        try:
            body = orjson.loads(text)
        except orjson.JSONDecodeError:
            body = text
    transaction = body.get("transaction") if isinstance(body, dict) else None
    if command not in COMMANDS:
        raise RequestError(f"unknown command {command!r}; valid: {', '.join(COMMANDS)}",
                           transaction)
    if command == "resubscribe":
        return Request(command, None, transaction)
    team = body.get("team") if isinstance(body, dict) else body
    if not isinstance(team, str) or not team.strip():
        raise RequestError(f'{command} needs a team: {{"team": "Buffalo Bills"}}', transaction)
    return Request(command, team.strip(), transaction)


def response(status: str, data: Any = None, transaction: Any = None,
             error: str | None = None) -> bytes:
    doc: dict[str, Any] = {"status": status, "data": data if data is not None else {}}
    if error is not None:
        doc["error"] = error
    if transaction is not None:
        doc["transaction"] = transaction
    return orjson.dumps(doc)
