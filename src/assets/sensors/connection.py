"""Broker URLs (``mqtt://user:pass@host:port``, ``mqtts://...?ca=FILE``) and paho client setup.

Shared by the ingester and the replay publisher so both speak MQTT 3.1.1 with the same TLS and
credential handling (amqtt, the demo broker, only speaks 3.1.1).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from urllib.parse import parse_qs, unquote, urlsplit

import paho.mqtt.client as mqtt

from assets.errors import AssetsError, InputError


class BrokerError(AssetsError, ConnectionError):
    """The MQTT broker cannot be reached or refused our credentials."""


@dataclass(frozen=True)
class BrokerURL:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None
    insecure: bool = False  # skip hostname verification (self-signed test certificates)

    @classmethod
    def parse(cls, url: str) -> "BrokerURL":
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise InputError(
                f"broker URL {url!r} must start with mqtt:// or mqtts:// (e.g. mqtt://127.0.0.1:1883)"
            )
        if not parts.hostname:
            raise InputError(f"broker URL {url!r} has no host")
        tls = parts.scheme in ("mqtts", "ssl")
        query = parse_qs(parts.query)
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError as exc:
            raise InputError(f"broker URL {url!r} has a bad port: {exc}") from exc
        return cls(
            host=parts.hostname,
            port=port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=tls,
            ca_file=query.get("ca", [None])[0],
            insecure=query.get("insecure", ["0"])[0] in ("1", "true", "yes"),
        )

    def with_credentials(self, username: str | None, password: str | None) -> "BrokerURL":
        return replace(self, username=username, password=password)

    def redacted(self) -> str:
        """The URL without the password, for logs and the drains table."""
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


def make_client(url: BrokerURL, client_id: str, *, persistent: bool, manual_ack: bool = False) -> mqtt.Client:
    """A paho 2.x client (callback API v2, MQTT 3.1.1); ``persistent`` keeps the broker session."""
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=not persistent,
        protocol=mqtt.MQTTv311,
        manual_ack=manual_ack,
    )
    if url.username is not None:
        client.username_pw_set(url.username, url.password)
    if url.tls:
        client.tls_set(ca_certs=url.ca_file)
        if url.insecure:
            client.tls_insecure_set(True)
    client.reconnect_delay_set(min_delay=0.05, max_delay=2)
    return client


def connect_and_wait(client: mqtt.Client, url: BrokerURL, *, timeout_s: float = 10.0) -> None:
    """Connect, start the network thread, and wait for CONNACK; raise `BrokerError` if refused.

    The caller's own ``on_connect`` (if any) still runs; install it before calling.
    """
    done = threading.Event()
    outcome: dict[str, object] = {}
    user_on_connect = client.on_connect

    def on_connect(c, userdata, flags, reason_code, properties):  # type: ignore[no-untyped-def]
        if not done.is_set():
            outcome["rc"] = reason_code
            done.set()
        if user_on_connect is not None:
            user_on_connect(c, userdata, flags, reason_code, properties)

    client.on_connect = on_connect
    try:
        client.connect(url.host, url.port, keepalive=30)
    except OSError as exc:
        raise BrokerError(
            f"cannot reach the MQTT broker at {url.redacted()}: {exc}; is it running and is the URL right?"
        ) from exc
    client.loop_start()
    if not done.wait(timeout_s):
        client.loop_stop()
        raise BrokerError(f"no answer from the MQTT broker at {url.redacted()} within {timeout_s:g} s")
    client.on_connect = user_on_connect
    rc = outcome["rc"]
    if getattr(rc, "is_failure", False):
        client.loop_stop()
        client.disconnect()
        raise BrokerError(
            f"the MQTT broker at {url.redacted()} refused the connection: {rc}; check the username "
            "and password (devices log in with their device id and secret)"
        )
