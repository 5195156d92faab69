"""A real Mosquitto broker on a free loopback port, and a recording MQTT subscriber.

    broker = Broker(tmp_path)              # anonymous clients allowed
    broker = Broker(tmp_path, users={"ha": "pw"})   # password file, anonymous refused
    broker.start(); broker.kill(); broker.start()    # kill -9, then again on the same port
    broker.save()                          # write the persistence file (SIGUSR1)
    broker = Broker(tmp_path, certs=make_certs(tmp_path / "certs"))   # plus a TLS listener
    broker = Broker(tmp_path, extra=["max_inflight_messages 3"])     # more config lines

    with Subscriber(broker.port, ["boltrouter/#"]) as sub:
        await wait_until(lambda: sub.last("boltrouter/bridge/state") == b"online")

Tests that need a broker use the ``broker`` fixture of ``test_mqtt.py``, which skips
with a clear reason when no ``mosquitto`` binary is installed.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt

MISSING = ("mosquitto is not installed: `apt-get install mosquitto` "
           "(`make test` installs it when run as root)")


def mosquitto_binary() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def password_line(user: str, password: str) -> str:
    """One line of a Mosquitto password file (salted SHA-512, the ``$6$`` format)."""
    salt = os.urandom(12)
    digest = hashlib.sha512(password.encode() + salt).digest()
    return f"{user}:$6${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def make_certs(folder: Path) -> dict[str, Path] | None:
    """A CA, a server certificate for 127.0.0.1 and a client certificate (needs openssl)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=folder, check=True, capture_output=True)

    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=boltrouter test CA")
    (folder / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for who in ("server", "client"):
        run("req", *ec, "-keyout", f"{who}.key", "-out", f"{who}.csr", "-subj", f"/CN={who}")
        run("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{who}.crt", "-days", "2", "-extfile", "san.ext")
    return {"ca": folder / "ca.crt", "server_cert": folder / "server.crt",
            "server_key": folder / "server.key", "client_cert": folder / "client.crt",
            "client_key": folder / "client.key"}


class Broker:
    """One Mosquitto process with a generated config in ``folder``."""

    def __init__(self, folder: Path, users: dict[str, str] | None = None,
                 certs: dict[str, Path] | None = None, extra: Iterable[str] = ()) -> None:
        binary = mosquitto_binary()
        if binary is None:
            raise RuntimeError(MISSING)
        self.binary = binary
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.users = users
        self.certs = certs
        self.extra = list(extra)
        self.tls_port = free_port() if certs else None
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = folder / "mosquitto.log"
        self.db = folder / "mosquitto.db"
        self.conf = folder / "mosquitto.conf"
        self._write_config()

    def _write_config(self) -> None:
        lines = [f"listener {self.port} 127.0.0.1",
                 f"allow_anonymous {'false' if self.users else 'true'}",
                 "persistence true", f"persistence_location {self.folder}/",
                 "autosave_interval 0", "max_queued_messages 10000",
                 f"log_dest file {self.log}", "log_type error", "log_type warning",
                 "log_type notice", "log_type information", *self.extra]
        if os.geteuid() == 0:
            lines.append("user root")
        if self.certs:
            lines += [f"listener {self.tls_port} 127.0.0.1", f"cafile {self.certs['ca']}",
                      f"certfile {self.certs['server_cert']}",
                      f"keyfile {self.certs['server_key']}", "require_certificate true"]
        if self.users:
            pw = self.folder / "passwords"
            pw.write_text("".join(password_line(u, p) + "\n" for u, p in self.users.items()))
            pw.chmod(0o600)
            lines.append(f"password_file {pw}")
        self.conf.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 10.0) -> None:
        """Start (or start again, on the same port) and wait until it accepts connections."""
        self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: {err}"
                                   f"{self.log.read_text() if self.log.exists() else ''}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.kill()
                    raise RuntimeError(f"mosquitto did not listen on port {self.port}") from None
                time.sleep(0.02)

    def save(self, timeout: float = 10.0) -> None:
        """Have the broker write its persistence file now (sessions, subscriptions, retained)."""
        assert self.proc is not None
        if self.db.exists():
            self.db.unlink()
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while not self.db.exists():
            if time.monotonic() > deadline:
                raise RuntimeError("mosquitto did not write its persistence file")
            time.sleep(0.01)

    def kill(self) -> None:
        """kill -9: no clean shutdown, no persistence written, no will withheld."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@dataclass(slots=True)
class Message:
    topic: str
    payload: bytes
    retain: bool
    qos: int

    def json(self) -> Any:
        return orjson.loads(self.payload)


class Subscriber:
    """A paho client on its own thread that records every message it receives."""

    def __init__(self, port: int, topics: Iterable[str], client_id: str = "",
                 persistent: bool = False, username: str | None = None,
                 password: str | None = None) -> None:
        self.topics = list(topics)
        self.messages: list[Message] = []
        self.lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                                  clean_session=not persistent)
        if username:
            self.client.username_pw_set(username, password)
        self.client.reconnect_delay_set(0.05, 0.5)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.port = port

    def __enter__(self) -> Subscriber:
        self.client.connect("127.0.0.1", self.port, keepalive=30)
        self.client.loop_start()
        if not self.subscribed.wait(10):
            raise RuntimeError("the test subscriber could not subscribe")
        return self

    def __exit__(self, *exc: Any) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if not reason.is_failure:
            client.subscribe([(t, 1) for t in self.topics])

    def _on_subscribe(self, *args: Any) -> None:
        self.subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append(Message(msg.topic, bytes(msg.payload), bool(msg.retain),
                                         msg.qos))

    def publish(self, topic: str, payload: bytes | str, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def on(self, topic: str) -> list[Message]:
        with self.lock:
            return [m for m in self.messages if m.topic == topic]

    def under(self, prefix: str) -> list[Message]:
        with self.lock:
            return [m for m in self.messages if m.topic.startswith(prefix)]

    def last(self, topic: str) -> bytes | None:
        got = self.on(topic)
        return got[-1].payload if got else None

    def last_json(self, topic: str) -> Any:
        raw = self.last(topic)
        return orjson.loads(raw) if raw else None

    def retained(self) -> dict[str, bytes]:
        """The broker's view as seen by this client: the last payload of every topic."""
        out: dict[str, bytes] = {}
        with self.lock:
            for m in self.messages:
                out[m.topic] = m.payload
        return {t: p for t, p in out.items() if p}
