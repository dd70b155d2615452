"""MQTT brokers for the demo, the tests and the benchmark.

`EmbeddedBroker` runs amqtt in a background thread so the demo needs no server installed.
`start_mosquitto` runs a real Mosquitto from the repo's deploy/mosquitto/ files (password file,
ACL, persistence) on a free loopback port; only the listener, file paths and user are rewritten.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from assets.config import settings
from assets.errors import AssetsError
from assets.sensors.connection import BrokerError

INGESTER_USER = "ingester"
_REWRITTEN = ("listener", "password_file", "acl_file", "persistence_location", "user", "log_dest", "pid_file")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout_s: float, alive: Callable[[], bool]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive():
            raise BrokerError(f"the broker exited before listening on port {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise BrokerError(f"the broker did not listen on port {port} within {timeout_s:g} s")


class EmbeddedBroker:
    """amqtt in its own thread and event loop (anonymous, loopback only): the demo's default."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._broker: Any = None  # amqtt's Broker, made in the broker thread
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def _run(self) -> None:
        from amqtt.broker import Broker

        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }
        try:
            self._broker = Broker(config, loop=loop)
            loop.run_until_complete(self._broker.start())
        except BaseException as exc:  # noqa: BLE001 - surfaced by start()
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        loop.run_forever()
        loop.close()

    def start(self) -> EmbeddedBroker:
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        self._thread = threading.Thread(target=self._run, name="amqtt-broker", daemon=True)
        self._thread.start()
        self._ready.wait(15)
        if self._error is not None or not self._ready.is_set():
            raise BrokerError(f"the embedded MQTT broker did not start on port {self.port}: {self._error}")
        _wait_port(self.port, 5, lambda: self._thread is not None and self._thread.is_alive())
        return self

    def stop(self) -> None:
        if self._loop is None or self._broker is None or self._thread is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop)
        try:
            fut.result(timeout=10)
        except Exception:  # logged: a broker that fails to shut down cleanly is still stopped below
            logging.getLogger(__name__).warning("the in-process MQTT broker did not shut down cleanly", exc_info=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def write_password_file(path: str | Path, users: Mapping[str, str]) -> Path:
    """Write a Mosquitto password file (hashed by ``mosquitto_passwd -U``) for ``users``."""
    binary = shutil.which("mosquitto_passwd")
    if binary is None:
        raise AssetsError("mosquitto_passwd not found; install the mosquitto package (apt-get install mosquitto)")
    path = Path(path)
    lines = []
    for user, password in users.items():
        if ":" in user or "\n" in user or "\n" in password or not password:
            raise AssetsError(f"user {user!r}: needs a non-empty one-line password and no ':' in the name")
        lines.append(f"{user}:{password}\n")
    path.write_text("".join(lines), encoding="utf-8")
    path.chmod(0o600)
    done = subprocess.run([binary, "-U", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        raise AssetsError(f"mosquitto_passwd failed on {path}: {done.stderr.strip() or done.stdout.strip()}")
    return path


def render_config(
    port: int, workdir: Path, *, password_file: Path, acl_file: Path, tls: TlsFiles | None = None
) -> str:
    """The shipped mosquitto.conf (Settings.mosquitto_dir) with this instance's listener, files and user."""
    source = (settings().mosquitto_dir / "mosquitto.conf").read_text(encoding="utf-8")
    kept = [
        line
        for line in source.splitlines()
        if not line.strip() or line.lstrip().startswith("#") or line.split()[0] not in _REWRITTEN
    ]
    kept += [
        f"listener {port} 127.0.0.1",
        f"password_file {password_file}",
        f"acl_file {acl_file}",
        f"persistence_location {workdir}/",
        f"log_dest file {workdir / 'mosquitto.log'}",
        f"user {getpass.getuser()}",
    ]
    if tls is not None:
        kept += [
            f"listener {tls.port} 127.0.0.1",
            f"cafile {tls.ca_file}",
            f"certfile {tls.cert_file}",
            f"keyfile {tls.key_file}",
            "tls_version tlsv1.2",
        ]
    return "\n".join(kept) + "\n"


@dataclass(frozen=True)
class TlsFiles:
    port: int
    ca_file: Path
    cert_file: Path
    key_file: Path


@dataclass
class MosquittoBroker:
    """A private Mosquitto process; `restart` keeps its persistence (sessions, queued messages)."""

    workdir: Path
    port: int
    config_file: Path
    process: subprocess.Popen | None = None
    tls: TlsFiles | None = None
    users: dict[str, str] = field(default_factory=dict)

    def url(self, username: str | None = None, password: str | None = None, *, tls: bool = False) -> str:
        if username is not None and password is None:
            password = self.users.get(username)
        auth = f"{username}:{password}@" if username is not None else ""
        if tls:
            if self.tls is None:
                raise AssetsError("this broker was started without TLS")
            return f"mqtts://{auth}localhost:{self.tls.port}?ca={self.tls.ca_file}"
        return f"mqtt://{auth}127.0.0.1:{self.port}"

    def start(self) -> MosquittoBroker:
        binary = shutil.which("mosquitto")
        if binary is None:
            raise AssetsError("mosquitto not found; install it (apt-get install mosquitto)")
        log = open(self.workdir / "mosquitto.stderr", "ab")
        self.process = subprocess.Popen([binary, "-c", str(self.config_file)], stdout=log, stderr=log)
        log.close()
        process = self.process
        _wait_port(self.port, 10, lambda: process.poll() is None)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """SIGTERM saves the persistence file; SIGKILL loses what was not yet autosaved."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        path = self.workdir / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def __enter__(self) -> MosquittoBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_mosquitto(
    workdir: str | Path,
    users: Mapping[str, str],
    *,
    port: int | None = None,
    tls: TlsFiles | None = None,
    acl_file: str | Path | None = None,
    password_file: str | Path | None = None,
) -> MosquittoBroker:
    """Start Mosquitto with the repo config, a password file for ``users`` (or the given
    ``password_file``, e.g. from deploy/mosquitto/make-passwd.sh) and the repo ACL."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    passwd = Path(password_file) if password_file else write_password_file(workdir / "passwd", users)
    acl = Path(acl_file) if acl_file else workdir / "acl"
    if acl_file is None:
        shutil.copyfile(settings().mosquitto_dir / "acl", acl)
    config = workdir / "mosquitto.conf"
    config.write_text(render_config(port, workdir, password_file=passwd, acl_file=acl, tls=tls), encoding="utf-8")
    os.chmod(config, 0o600)
    broker = MosquittoBroker(workdir=workdir, port=port, config_file=config, tls=tls, users=dict(users))
    return broker.start()
