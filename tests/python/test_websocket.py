"""MQTT over WebSocket (the ws listener, path /mqtt, subprotocol mqtt) with paho-mqtt."""

from __future__ import annotations

import base64
import os
import socket

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.client import WebsocketConnectionError

from junction_harness import HOST, TIMEOUT, unique

PROTOCOLS = [pytest.param(mqtt.MQTTv311, id="v311"), pytest.param(mqtt.MQTTv5, id="v5")]


@pytest.mark.parametrize("qos", [0, 1, 2])
@pytest.mark.parametrize("direction", ["ws-to-tcp", "tcp-to-ws", "ws-to-ws"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_cross_transport(broker, clients, protocol, direction, qos):
    ws_port = broker.port("ws:default")

    def make(kind: str):
        if kind == "ws":
            return clients(ws_port, protocol=protocol, transport="websockets").connect()
        return clients(broker.tcp, protocol=protocol).connect()

    src, dst = direction.split("-to-")
    topic = unique(f"ws/{direction}/q{qos}")
    sub = make(dst)
    sub.subscribe(topic, qos)
    pub = make(src)
    # Includes a payload larger than one small WebSocket frame and an empty one.
    payloads = [b"over websocket", b"", os.urandom(100_000)]
    for p in payloads:
        pub.publish(topic, p, qos=qos)
    got = sub.expect(len(payloads))
    assert [m.payload for m in got] == payloads
    assert [m.qos for m in got] == [qos] * len(payloads)


def test_ws_will_and_retained(broker, clients):
    """Retained messages and wills work the same over WebSocket."""
    ws_port = broker.port("ws:default")
    topic = unique("ws/retained")
    pub = clients(ws_port, transport="websockets").connect()
    pub.publish(topic, b"kept", qos=1, retain=True)
    sub = clients(broker.tcp).connect()
    sub.subscribe(topic, 1)
    [m] = sub.expect(1)
    assert (m.payload, m.retain) == (b"kept", True)
    pub.publish(topic, b"", qos=1, retain=True)  # clear it


def test_wrong_path_is_refused(broker, clients):
    c = clients(broker.port("ws:default"), transport="websockets", ws_path="/not-mqtt")
    with pytest.raises(WebsocketConnectionError):
        c.connect()


def _upgrade(port: int, path: str, subprotocol: str | None) -> tuple[int, dict[str, str]]:
    """Send a WebSocket upgrade request; return the HTTP status and headers."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {HOST}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if subprotocol is not None:
        lines.append(f"Sec-WebSocket-Protocol: {subprotocol}")
    with socket.create_connection((HOST, port), timeout=TIMEOUT) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    head = buf.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    if not head:
        return 0, {}  # closed without an HTTP answer
    status_line, *header_lines = head.split("\r\n")
    status = int(status_line.split()[1])
    headers = {}
    for h in header_lines:
        k, _, v = h.partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers


def test_upgrade_handshake(broker):
    port = broker.port("ws:default")
    status, headers = _upgrade(port, "/mqtt", "mqtt")
    assert status == 101
    assert headers.get("sec-websocket-protocol") == "mqtt"
    # Clients that offer several subprotocols get one of them back.
    status, headers = _upgrade(port, "/mqtt", "foo, mqtt")
    assert status == 101
    assert headers.get("sec-websocket-protocol") == "mqtt"


@pytest.mark.parametrize(
    "path,subprotocol",
    [("/wrong", "mqtt"), ("/", "mqtt"), ("/mqtt/extra", "mqtt"), ("/mqtt", None), ("/mqtt", "foo")],
    ids=["wrong-path", "root-path", "sub-path", "no-subprotocol", "unknown-subprotocol"],
)
def test_upgrade_refused(broker, path, subprotocol):
    status, _ = _upgrade(broker.port("ws:default"), path, subprotocol)
    assert status != 101, f"upgrade to {path} with subprotocol {subprotocol} was accepted"
