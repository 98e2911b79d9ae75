"""Interop with paho-mqtt 2.x (CallbackAPIVersion.VERSION2) over plain TCP."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from junction_harness import TIMEOUT, PacketTypes, junction_bin, props, unique

PROTOCOLS = [pytest.param(mqtt.MQTTv311, id="v311"), pytest.param(mqtt.MQTTv5, id="v5")]


@pytest.mark.parametrize("qos", [0, 1, 2])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_pub_sub(broker, clients, protocol, qos):
    topic = unique(f"paho/{protocol}/q{qos}")
    sub = clients(broker.tcp, protocol=protocol).connect()
    sub.subscribe(topic, qos)
    pub = clients(broker.tcp, protocol=protocol).connect()
    payloads = [b"first", b"", bytes(range(256)), os.urandom(64 * 1024)]
    for p in payloads:
        pub.publish(topic, p, qos=qos)
    got = sub.expect(len(payloads))
    assert [m.payload for m in got] == payloads
    assert [m.topic for m in got] == [topic] * len(payloads)
    assert [m.qos for m in got] == [qos] * len(payloads)
    assert not any(m.retain for m in got)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_wildcards(broker, clients, protocol):
    base = unique("paho/wild")
    sub = clients(broker.tcp, protocol=protocol).connect()
    sub.subscribe(f"{base}/+/temp", 1)
    sub.subscribe(f"{base}/b/#", 1)
    pub = clients(broker.tcp, protocol=protocol).connect()
    pub.publish(f"{base}/a/temp", b"1", qos=1)
    pub.publish(f"{base}/a/hum", b"2", qos=1)  # matches nothing
    pub.publish(f"{base}/b/x/y", b"3", qos=1)
    pub.publish(f"{base}/b", b"4", qos=1)  # '#' also matches the parent level
    sub.subscribe(f"{base}/end", 1)
    pub.publish(f"{base}/end", b"marker", qos=1)
    got = sub.drain_until(f"{base}/end")
    assert sorted((m.topic, m.payload) for m in got[:-1]) == sorted(
        [(f"{base}/a/temp", b"1"), (f"{base}/b/x/y", b"3"), (f"{base}/b", b"4")]
    )


def test_v5_publish_properties_pass_through(broker, clients):
    topic = unique("paho/v5/props")
    sub = clients(broker.tcp, protocol=mqtt.MQTTv5).connect()
    sub.subscribe(topic, 1)
    pub = clients(broker.tcp, protocol=mqtt.MQTTv5).connect()
    user = [("k1", "v1"), ("k2", "v2"), ("k1", "again")]  # order and duplicates kept
    p = props(
        PacketTypes.PUBLISH,
        UserProperty=user,
        ContentType="application/json",
        ResponseTopic="reply/to/me",
        CorrelationData=b"\x00\x01corr\xff",
        PayloadFormatIndicator=1,
    )
    pub.publish(topic, b'{"a": 1}', qos=1, properties=p)
    [m] = sub.expect(1)
    assert m.payload == b'{"a": 1}'
    got = m.properties
    assert got is not None, "no properties on the delivered PUBLISH"
    assert getattr(got, "UserProperty", None) == user
    assert getattr(got, "ContentType", None) == "application/json"
    assert getattr(got, "ResponseTopic", None) == "reply/to/me"
    assert getattr(got, "CorrelationData", None) == b"\x00\x01corr\xff"
    assert getattr(got, "PayloadFormatIndicator", None) == 1


def test_v5_request_response(broker, clients):
    """A responder answers on the request's ResponseTopic with its CorrelationData."""
    req_topic = unique("paho/v5/req")
    resp_topic = unique("paho/v5/resp")
    responder = clients(broker.tcp, protocol=mqtt.MQTTv5).connect()
    responder.subscribe(req_topic, 1)
    requester = clients(broker.tcp, protocol=mqtt.MQTTv5).connect()
    requester.subscribe(resp_topic, 1)
    requester.publish(
        req_topic, b"ping", qos=1,
        properties=props(PacketTypes.PUBLISH, ResponseTopic=resp_topic, CorrelationData=b"id-42"),
    )
    [req] = responder.expect(1)
    responder.publish(
        req.properties.ResponseTopic, b"pong", qos=1,
        properties=props(PacketTypes.PUBLISH, CorrelationData=req.properties.CorrelationData),
    )
    [resp] = requester.expect(1)
    assert (resp.topic, resp.payload, resp.properties.CorrelationData) == (resp_topic, b"pong", b"id-42")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_persistent_session_gets_offline_messages(broker, clients, protocol):
    topic = unique(f"paho/{protocol}/offline")
    cid = unique("persistent")
    v5 = protocol == mqtt.MQTTv5
    expiry = props(PacketTypes.CONNECT, SessionExpiryInterval=300) if v5 else None

    first = clients(broker.tcp, protocol=protocol, client_id=cid, clean_session=False)
    first.connect(clean_start=True, properties=expiry)
    first.subscribe(topic, 1)
    first.disconnect()

    pub = clients(broker.tcp, protocol=protocol).connect()
    payloads = [f"offline {i}".encode() for i in range(5)]
    for p in payloads:
        pub.publish(topic, p, qos=1)  # PUBACK: the broker has taken the message

    again = clients(broker.tcp, protocol=protocol, client_id=cid, clean_session=False)
    again.connect(clean_start=False, properties=expiry)
    assert again.session_present, "CONNACK session present flag not set on resume"
    got = again.expect(len(payloads))
    assert [m.payload for m in got] == payloads
    assert all(m.qos == 1 for m in got)

    # The subscription is still in place for live messages too.
    pub.publish(topic, b"live", qos=1)
    [m] = again.expect(1)
    assert m.payload == b"live"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_clean_session_discards_state(broker, clients, protocol):
    topic = unique(f"paho/{protocol}/clean")
    cid = unique("clean")
    v5 = protocol == mqtt.MQTTv5
    expiry = props(PacketTypes.CONNECT, SessionExpiryInterval=300) if v5 else None
    first = clients(broker.tcp, protocol=protocol, client_id=cid, clean_session=False)
    first.connect(clean_start=True, properties=expiry)
    first.subscribe(topic, 1)
    first.disconnect()

    again = clients(broker.tcp, protocol=protocol, client_id=cid, clean_session=True)
    again.connect(clean_start=True)
    assert not again.session_present
    # The old subscription is gone: a publish is not delivered, a marker is.
    again.subscribe(topic + "/marker", 1)
    pub = clients(broker.tcp, protocol=protocol).connect()
    pub.publish(topic, b"should not arrive", qos=1)
    pub.publish(topic + "/marker", b"m", qos=1)
    got = again.drain_until(topic + "/marker")
    assert [m.topic for m in got] == [topic + "/marker"]


def _spawn_will_client(port: int, protocol: int, topic: str, payload: str) -> subprocess.Popen:
    script = Path(__file__).with_name("_will_client.py")
    proc = subprocess.Popen(
        [sys.executable, str(script), str(port), str(protocol), unique("will"), topic, payload],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    line: list[str] = []
    t = threading.Thread(target=lambda: line.append(proc.stdout.readline()), daemon=True)
    t.start()
    t.join(TIMEOUT * 2)  # a fresh interpreter importing paho, then CONNECT/CONNACK
    if not line or line[0].strip() != "CONNECTED":
        proc.kill()
        proc.wait(TIMEOUT)
        rest = proc.stdout.read() if proc.stdout else ""
        raise AssertionError(f"will client did not connect: {line!r} {rest}")
    return proc


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_will_published_when_socket_closes_without_disconnect(broker, clients, protocol):
    topic = unique(f"paho/{protocol}/will")
    watcher = clients(broker.tcp, protocol=protocol).connect()
    watcher.subscribe(topic, 1)
    proc = _spawn_will_client(broker.tcp, protocol, topic, "client died")
    try:
        # SIGKILL: the kernel closes the socket (FIN); no DISCONNECT is ever sent.
        proc.kill()
        proc.wait(TIMEOUT)
        [m] = watcher.expect(1)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(TIMEOUT)
    assert (m.topic, m.payload, m.qos) == (topic, b"client died", 1)
    if protocol == mqtt.MQTTv5:
        assert getattr(m.properties, "UserProperty", None) == [("origin", "will")]
        assert getattr(m.properties, "ContentType", None) == "text/plain"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_no_will_after_clean_disconnect(broker, clients, protocol):
    topic = unique(f"paho/{protocol}/nowill")
    watcher = clients(broker.tcp, protocol=protocol).connect()
    watcher.subscribe(topic, 1)
    watcher.subscribe(topic + "/marker", 1)
    leaver = clients(broker.tcp, protocol=protocol)
    leaver.will_set(topic, b"should not be sent", qos=1)
    leaver.connect()
    leaver.disconnect()  # a normal DISCONNECT: the will is discarded
    marker = clients(broker.tcp, protocol=protocol).connect()
    marker.publish(topic + "/marker", b"m", qos=1)
    got = watcher.drain_until(topic + "/marker")
    assert [m.topic for m in got] == [topic + "/marker"]


def _junction_version() -> str:
    out = subprocess.run(
        [junction_bin(), "--version"], capture_output=True, text=True, timeout=TIMEOUT, check=True
    ).stdout
    return out.split()[-1]


def test_sys_version_is_readable(broker, clients):
    c = clients(broker.tcp).connect()
    c.subscribe("$SYS/brokers/+/version", 0)
    [m] = c.expect(1)
    assert re.fullmatch(r"\$SYS/brokers/[^/+#]+/version", m.topic), m.topic
    assert m.retain, "the version topic is retained"
    assert m.payload.decode() == _junction_version()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_wildcards_do_not_match_sys_topics(broker, clients, protocol):
    everything = clients(broker.tcp, protocol=protocol).connect()
    everything.subscribe("#", 0)
    everything.subscribe("+/brokers/#", 0)
    sys_watcher = clients(broker.tcp, protocol=protocol).connect()
    sys_watcher.subscribe("$SYS/#", 0)
    # Connecting a client makes the broker publish a $SYS connected event.
    newcomer_id = unique("sys-newcomer")
    newcomer = clients(broker.tcp, protocol=protocol, client_id=newcomer_id).connect()
    connected = sys_watcher.drain_until_match(
        lambda m: m.topic.endswith(f"/clients/{newcomer_id}/connected"), what="connected event"
    )
    assert any(m.topic.startswith("$SYS/") for m in connected)
    marker = unique("paho/sys-marker")
    newcomer.publish(marker, b"m", qos=0)
    got = everything.drain_until(marker)
    leaked = [m.topic for m in got if m.topic.startswith("$")]
    assert leaked == [], f"'#' / '+/…' matched $SYS topics: {leaked}"
