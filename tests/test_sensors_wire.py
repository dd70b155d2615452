"""The ingester's fast MQTT 3.1.1 PUBLISH reader (`connection._split_publishes`)."""

from __future__ import annotations

import struct

from assets.sensors.connection import _split_publishes


def publish_packet(topic: bytes, payload: bytes, *, qos: int = 1, mid: int = 7, dup: bool = False) -> bytes:
    body = struct.pack("!H", len(topic)) + topic + (struct.pack("!H", mid) if qos else b"") + payload
    length, encoded = len(body), bytearray()
    while True:
        byte, length = length & 127, length >> 7
        encoded.append(byte | (128 if length else 0))
        if not length:
            break
    return bytes([0x30 | (qos << 1) | (0x08 if dup else 0)]) + bytes(encoded) + body


def test_cuts_every_complete_publish_with_one_to_three_length_bytes() -> None:
    packets = [
        publish_packet(b"sensors/a/readings", b'{"x":1}', mid=1),
        publish_packet(b"sensors/b/readings", b"y" * 300, mid=65535, dup=True),  # 2 length bytes
        publish_packet(b"sensors/c/readings", b"z" * 20_000, qos=0),  # 3 length bytes, no message id
    ]
    out, pos = _split_publishes(b"".join(packets), 0)
    assert out == [
        (b"sensors/a/readings", b'{"x":1}', 1, 1),
        (b"sensors/b/readings", b"y" * 300, 65535, 1),
        (b"sensors/c/readings", b"z" * 20_000, 0, 0),
    ]
    assert pos == sum(map(len, packets))


def test_stops_at_a_split_packet_and_leaves_it_for_paho() -> None:
    whole = publish_packet(b"t/1", b"first")
    cut = publish_packet(b"t/2", b"second" * 50)
    for keep in (1, 2, 3, len(cut) - 1):  # command byte only, part of the length, part of the body
        out, pos = _split_publishes(whole + cut[:keep], 0)
        assert out == [(b"t/1", b"first", 7, 1)]
        assert pos == len(whole)


def test_stops_at_other_packets_and_qos2_and_starts_at_the_offset() -> None:
    pingresp, suback = b"\xd0\x00", b"\x90\x03\x00\x01\x01"
    qos2 = publish_packet(b"t/q2", b"exactly once", qos=2)
    a, b = publish_packet(b"t/a", b"A", mid=3), publish_packet(b"t/b", b"B", mid=4)
    assert _split_publishes(pingresp + a, 0) == ([], 0)
    assert _split_publishes(a + suback + b, 0) == ([(b"t/a", b"A", 3, 1)], len(a))
    assert _split_publishes(qos2 + a, 0) == ([], 0)
    assert _split_publishes(suback + b, len(suback)) == ([(b"t/b", b"B", 4, 1)], len(suback + b))


def test_malformed_lengths_are_left_to_paho() -> None:
    five_length_bytes = b"\x32\xff\xff\xff\xff\x01" + b"\x00" * 10
    topic_longer_than_packet = b"\x32\x04\x00\x09ab"
    assert _split_publishes(five_length_bytes, 0) == ([], 0)
    assert _split_publishes(topic_longer_than_packet, 0) == ([], 0)
