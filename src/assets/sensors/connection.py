"""Broker URLs (``mqtt://user:pass@host:port``, ``mqtts://...?ca=FILE``) and paho client setup.

Shared by the ingester and the replay publisher so both speak MQTT 3.1.1 with the same TLS and
credential handling (amqtt, the demo broker, only speaks 3.1.1).
"""

from __future__ import annotations

import functools
import logging
import struct
import threading
import time
from dataclasses import dataclass, replace
from typing import Callable
from urllib.parse import parse_qs, unquote, urlsplit

import paho.mqtt
import paho.mqtt.client as mqtt

from assets.errors import BrokerError, InputError

log = logging.getLogger(__name__)

# The paho release FastClient was written and tested against (pyproject pins it exactly). Another
# version makes `fast_reader_problem` fall back to stock paho rather than trust private internals.
PAHO_TESTED = "2.2.0"
# paho internals FastClient uses: methods on the class, attributes set by Client.__init__.
_PAHO_METHODS = ("_create_socket", "_packet_read", "_packet_queue", "loop_read", "ack")
_PAHO_ATTRIBUTES = ("_sock", "_in_packet", "_protocol", "_msgtime_mutex", "_last_bytes_received")

# (topic, payload, message id, QoS) of one PUBLISH, as it came off the wire.
RawPublish = tuple[bytes, bytes, int, int]


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
    def parse(cls, url: str) -> BrokerURL:
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

    def with_credentials(self, username: str | None, password: str | None) -> BrokerURL:
        return replace(self, username=username, password=password)

    def redacted(self) -> str:
        """The URL without the password, for logs and the drains table."""
        user = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{self.host}:{self.port}"


class _BufferedSocket:
    """Serve paho's byte-sized reads from 64 KiB socket reads.

    paho reads every packet with three or more ``recv`` calls (command byte, each length byte,
    body) and one ``select`` per packet; at tens of thousands of small messages a second those
    system calls, not the Python code, are the limit. ``pending()`` is the hook paho already
    uses for TLS sockets: while it is non-zero paho keeps reading without waiting in select.
    Everything else is delegated to the real (plain or TLS) socket.
    """

    __slots__ = ("_sock", "_buf", "_pos")

    def __init__(self, sock: object) -> None:
        self._sock = sock
        self._buf = b""
        self._pos = 0

    def recv(self, bufsize: int) -> bytes:
        pos = self._pos
        buf = self._buf
        if pos >= len(buf):
            buf = self._sock.recv(65536)  # type: ignore[attr-defined]  # BlockingIOError passes through
            if not buf:
                return buf
            self._buf = buf
            pos = 0
        end = min(pos + bufsize, len(buf))
        self._pos = end
        return buf[pos:end]

    def buffered(self) -> int:
        return len(self._buf) - self._pos

    def pending(self) -> int:
        inner = getattr(self._sock, "pending", None)
        return self.buffered() + (inner() if inner is not None else 0)

    def __getattr__(self, name: str) -> object:
        return getattr(self._sock, name)


class FastClient(mqtt.Client):
    """paho's client with buffered reads, batched PUBLISH delivery and batched PUBACKs.

    paho spends about 20 us of Python per received message (three reads, a message object,
    topic matching, logging), which caps one process near 50,000 msg/s on this machine. With
    ``on_message_batch`` set, every complete MQTT 3.1.1 PUBLISH (QoS 0/1) already in the read
    buffer is cut out in one loop and handed over as a list of `RawPublish` (one call per
    socket read). Anything else - CONNACK, SUBACK, PINGRESP, QoS 2, a packet split across
    reads, MQTT 5 - goes through paho's own code, and ``on_message`` still works as usual when
    ``on_message_batch`` is None.

    Relies on paho internals (``_create_socket``, ``_packet_read``, ``_in_packet``,
    ``_msgtime_mutex``, ``_last_bytes_received``, ``_packet_queue``): paho is pinned exactly
    (`PAHO_TESTED`), `make_client` checks them at start-up (`fast_reader_problem`) and falls back
    to stock paho with a logged reason, and tests/test_sensors_wire.py, tests/test_mqtt_reader.py
    and the MQTT suite must pass before moving the pin. ``_last_bytes_received`` is what paho
    2.2's ``_check_keepalive`` reads: batches cut here must refresh it, or an ingester busy on
    the fast path would look silent to its own keepalive.
    """

    on_message_batch: Callable[[list[RawPublish]], None] | None = None

    def _create_socket(self):
        return _BufferedSocket(super()._create_socket())

    def _packet_read(self) -> mqtt.MQTTErrorCode:
        handler = self.on_message_batch
        sock = getattr(self, "_sock", None)
        in_packet = getattr(self, "_in_packet", None)
        if (
            handler is None
            or type(sock) is not _BufferedSocket
            or getattr(self, "_protocol", None) != mqtt.MQTTv311
            or not isinstance(in_packet, dict)
            or in_packet.get("command") != 0  # paho is part-way through a packet
        ):
            return super()._packet_read()
        batch, pos = _split_publishes(sock._buf, sock._pos)
        if not batch:
            return super()._packet_read()
        sock._pos = pos
        with self._msgtime_mutex:  # what paho's keepalive check reads
            self._last_bytes_received = time.monotonic()
        handler(batch)
        return mqtt.MQTTErrorCode.MQTT_ERR_SUCCESS

    def loop_read(self, max_packets: int = 1) -> mqtt.MQTTErrorCode:
        rc = super().loop_read(max_packets)
        sock = self._sock
        while rc == mqtt.MQTT_ERR_SUCCESS and isinstance(sock, _BufferedSocket) and sock is self._sock and sock.buffered():
            rc = super().loop_read(max_packets)
        return rc

    def ack_many(self, mids: list[int]) -> None:
        """Acknowledge QoS 1 messages (in the order received) with one queued write."""
        if not mids:
            return
        queue_packet = getattr(self, "_packet_queue", None)
        if queue_packet is None:  # pragma: no cover - other paho versions
            for mid in mids:
                self.ack(mid, 1)
            return
        packet = b"".join([struct.pack("!BBH", 0x40, 2, mid) for mid in mids])
        queue_packet(mqtt.PUBACK, packet, 0, 0)


def _split_publishes(buf: bytes, pos: int) -> tuple[list[RawPublish], int]:
    """The complete QoS 0/1 PUBLISH packets at the start of ``buf[pos:]``, and where they end.

    Stops at the first packet that is not such a PUBLISH or is not complete in the buffer."""
    out: list[RawPublish] = []
    n = len(buf)
    while pos + 1 < n:
        cmd = buf[pos]
        qos = (cmd >> 1) & 3
        if cmd >> 4 != 3 or qos > 1:
            break
        # Remaining length: 1-4 bytes, 7 bits each, least significant first.
        i = pos + 1
        length = 0
        shift = 0
        while i < n and i - pos <= 4:
            byte = buf[i]
            length |= (byte & 127) << shift
            shift += 7
            i += 1
            if byte < 128:
                break
        else:
            break  # incomplete or malformed length: paho's own reader decides
        end = i + length
        if end > n or length < 2:
            break
        topic_end = i + 2 + ((buf[i] << 8) | buf[i + 1])
        if qos:
            if topic_end + 2 > end:
                break
            mid = (buf[topic_end] << 8) | buf[topic_end + 1]
            body = topic_end + 2
        else:
            if topic_end > end:
                break
            mid = 0
            body = topic_end
        out.append((buf[i + 2:topic_end], buf[body:end], mid, qos))
        pos = end
    return out, pos


@functools.cache
def fast_reader_problem() -> str | None:
    """Why `FastClient` cannot be trusted with the installed paho (None: it can).

    Checked once per process: the paho version, the private methods and attributes FastClient
    touches, and one PUBLISH cut by `_split_publishes` (the wire format it assumes)."""
    version = getattr(paho.mqtt, "__version__", "unknown")
    if version != PAHO_TESTED:
        return f"paho-mqtt {version} is installed, FastClient is tested with {PAHO_TESTED}"
    missing = [m for m in _PAHO_METHODS if not callable(getattr(mqtt.Client, m, None))]
    if missing or not hasattr(mqtt, "PUBACK") or not hasattr(mqtt.MQTTErrorCode, "MQTT_ERR_SUCCESS"):
        return f"paho-mqtt {version} lacks {', '.join(missing) or 'PUBACK/MQTTErrorCode'}"
    try:
        probe = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="assets-self-check", protocol=mqtt.MQTTv311)
    except Exception as exc:  # noqa: BLE001 - any failure here means: do not use the fast path
        return f"paho-mqtt {version} client could not be built for the check: {exc}"
    missing = [a for a in _PAHO_ATTRIBUTES if not hasattr(probe, a)]
    in_packet = getattr(probe, "_in_packet", None)
    if missing or not isinstance(in_packet, dict) or "command" not in in_packet:
        return f"paho-mqtt {version} client lacks {', '.join(missing) or '_in_packet[command]'}"
    wire = b"\x32\x0b\x00\x03a/b\x00\x07ping"  # PUBLISH QoS 1, topic a/b, mid 7, payload "ping"
    if _split_publishes(wire, 0) != ([(b"a/b", b"ping", 7, 1)], len(wire)):
        return "the MQTT 3.1.1 PUBLISH cutter failed its self-check"
    return None


def make_client(url: BrokerURL, client_id: str, *, persistent: bool, manual_ack: bool = False,
                fast: bool = True) -> mqtt.Client:
    """A paho 2.x client (callback API v2, MQTT 3.1.1); ``persistent`` keeps the broker session.

    `FastClient` when ``fast`` and the start-up self-check passes; otherwise stock paho (half the
    receive rate here, same behaviour), with the reason logged once."""
    problem = fast_reader_problem() if fast else "not asked for"
    if problem is not None and fast:
        _warn_fallback(problem)
    client = (FastClient if problem is None else mqtt.Client)(
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
    client.reconnect_delay_set(min_delay=0.05, max_delay=2)  # type: ignore[arg-type]  # paho takes float seconds
    return client


@functools.cache
def _warn_fallback(problem: str) -> None:
    log.warning("fast MQTT reader off, using stock paho: %s", problem)


def connect_and_wait(client: mqtt.Client, url: BrokerURL, *, timeout_s: float = 10.0) -> None:
    """Connect, start the network thread, and wait for CONNACK; raise `BrokerError` if refused.

    The caller's own ``on_connect`` (if any) still runs; install it before calling.
    """
    done = threading.Event()
    outcome: dict[str, object] = {}
    user_on_connect = client.on_connect

    def on_connect(c, userdata, flags, reason_code, properties):
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
