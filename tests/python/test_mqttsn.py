"""Interop tests for the MQTT-SN 1.2 gateway with the third-party client mqtt-sn-12 (1.0.9,
module `mqttsn12`), against paho-mqtt subscribers and publishers on the MQTT side.

One `junction start` per module with `gateway.mqttsn.mountpoint = "snmp/"`, gateway id 7
and two predefined topics: MQTT-SN clients see unmounted names, MQTT clients see them under
`snmp/`, QoS -1 publishes without a connection included (EMQX 5.x publishes those with no
mountpoint, reference §5.2; Junction lets no publish around the mountpoint). The `clientinfo_override` test starts a second broker with
override templates.

mqtt-sn-12 is a synchronous client: it has no receiver thread, `polling()` reads at most
one datagram without blocking. The tests poll it in a loop bounded by a deadline, waiting
on the socket with `select` between polls. Two things of the library are worked around
(test-side only, the wire behaviour stays the library's):

* `receive_packet(True)` calls `settimeout()` then `setblocking(True)`, which clears the
  timeout, so a lost reply would block forever: `SnClient` re-implements that one method
  with a bounded receive.
* `polling()` compares the decoded QoS (0..3) with the flag value `FLAG_QOS_1` (0x20), so
  it never PUBACKs a QoS 1 delivery: deliveries to the library are tested at QoS 0, and the
  QoS 1 downlink (with its PUBACKs) is exercised by the raw-datagram sleeping-client test.
"""

from __future__ import annotations

import json
import select
import socket
import struct
import time

import pytest
from mqttsn12.client.MqttSnClient import MqttSnClient, MqttSnListener, MqttSnMessage
from mqttsn12.client.MqttSnClientException import MqttSnClientException
from mqttsn12.MqttSnConstants import MqttSnConstants
from mqttsn12.packets import GatewayInfoPacket, PublishPacket, SearchGatewayPacket

from junction_harness import HOST, TIMEOUT, Broker, MqttError, start_broker, unique

MOUNTPOINT = "snmp/"
SN_LISTENER = "mqttsn:udp:default"
PREDEFINED = {1: "pre/one", 2: "pre/two"}
GATEWAY_ID = 7

CONFIG = (
    "gateway.mqttsn {\n"
    f'  mountpoint = "{MOUNTPOINT}"\n'
    f"  gateway_id = {GATEWAY_ID}\n"
    "  predefined = [\n"
    + "".join(f'    {{ id = {i}, topic = "{t}" }}\n' for i, t in PREDEFINED.items())
    + "  ]\n"
    "}\n"
)


# ---------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def broker(tmp_path_factory) -> Broker:
    """Named `broker` so that conftest attaches the broker's stderr to failures."""
    b = start_broker(tmp_path_factory.mktemp("junction-mqttsn"), config=CONFIG, ws=False)
    yield b
    alive = b.proc.poll() is None
    b.stop()
    assert alive, f"broker died during the tests (rc={b.proc.returncode}):\n{b.stderr_tail()}"


@pytest.fixture
def sn_port(broker) -> int:
    assert SN_LISTENER in broker.listeners, (
        f"no {SN_LISTENER} listener announced; listeners: {broker.listeners}\n"
        f"{broker.stderr_tail()}"
    )
    return broker.port(SN_LISTENER)


# ---------------------------------------------------------------------------------------
# mqtt-sn-12 helpers


class SnClient(MqttSnClient):
    """mqtt-sn-12's client with a bounded blocking receive (see the module docstring)."""

    def receive_packet(self, blocking):
        sock = self.datagram_socket
        sock.settimeout(self.timeout if blocking else 0.0)
        try:
            data, _addr = sock.recvfrom(MqttSnConstants.MAX_PACKET_LENGTH_EXTENDED)
        except BlockingIOError:
            return None
        except OSError as e:  # socket.timeout included
            raise MqttSnClientException(
                f"no datagram from the gateway within {self.timeout}s: {e!r}"
            ) from None
        self.last_receive = int(time.time())
        return data


class Recorder(MqttSnListener):
    """Collects what `polling()` hands to the listener."""

    def __init__(self) -> None:
        self.messages: list[MqttSnMessage] = []

    def message_arrived(self, msg: MqttSnMessage) -> None:
        self.messages.append(msg)


class SnFactory:
    """Makes mqtt-sn-12 clients and disconnects/closes every one at the end of a test."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._clients: list[tuple[SnClient, bool]] = []

    def __call__(
        self,
        *,
        client_id: str | None = None,
        keep_alive: int = 30,
        clean: bool = True,
        will: tuple[str, str, int, bool] | None = None,
        connect: bool = True,
    ) -> SnClient:
        c = SnClient()
        c.set_timeout(int(TIMEOUT))
        c.set_client_id(client_id or unique("sn"))
        c.set_keep_alive(keep_alive)
        c.set_clean_session(clean)
        if will is not None:
            c.set_will(*will)
        c.open(HOST, self.port)
        self._clients.append((c, connect))
        if connect:
            c.send_connect()  # raises unless a CONNACK with return code 0 arrives
        return c

    def close_all(self) -> None:
        for c, connected in self._clients:
            try:
                if connected and c.datagram_socket is not None:
                    c.send_disconnect()
            except Exception:  # noqa: BLE001 - best effort cleanup
                pass
            finally:
                c.close()


@pytest.fixture
def sns(sn_port):
    f = SnFactory(sn_port)
    yield f
    f.close_all()


def poll_until(
    client: SnClient, rec: Recorder, n: int = 1, timeout: float = TIMEOUT
) -> list[MqttSnMessage]:
    """Poll the client until `rec` holds `n` messages, failing at the deadline."""
    deadline = time.monotonic() + timeout
    while len(rec.messages) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(
                f"{client.client_id}: got {len(rec.messages)} of {n} messages within "
                f"{timeout}s: {[str(m) for m in rec.messages]}"
            )
        readable, _, _ = select.select([client.datagram_socket], [], [], min(left, 0.1))
        if readable:
            client.polling()
    return rec.messages[:n]


def short_id(name: str) -> int:
    b = name.encode()
    assert len(b) == 2
    return (b[0] << 8) | b[1]


# ---------------------------------------------------------------------------------------
# connect and ping


def test_client_connects_and_pingreq_is_answered(sns):
    c = sns()  # CONNECT → CONNACK(accepted), checked by send_connect
    assert c.last_receive > 0  # the CONNACK
    # send_ping_req reads datagrams until a PINGRESP; without one, SnClient's bounded
    # receive raises after TIMEOUT, so returning normally means a PINGRESP came back.
    c.send_ping_req()


def test_second_connect_with_the_same_client_id_is_accepted(sns):
    # A client whose CONNACK was lost retries CONNECT over UDP: answered CONNACK 0.
    cid = unique("sn-re")
    first = sns(client_id=cid)
    first.send_connect()
    first.send_ping_req()


def test_searchgw_is_answered_with_the_configured_gateway_id(sns):
    c = sns(connect=False)  # gateway discovery needs no connection
    search = SearchGatewayPacket()
    search.set_radius(1)
    c.send_packet(search.encode())
    buf = c.wait_for(True, MqttSnConstants.TYPE_GWINFO)
    assert buf is not None, "no GWINFO"
    info = GatewayInfoPacket()
    info.decode(buf)
    assert info.get_gateway_id() == GATEWAY_ID
    # A gateway's GWINFO carries no address: the client uses the datagram's source.
    assert len(buf) == 3


# ---------------------------------------------------------------------------------------
# MQTT-SN publish → MQTT subscriber


@pytest.mark.parametrize("qos", [0, 1, 2], ids=["qos0", "qos1", "qos2"])
def test_publish_on_registered_topic_reaches_mqtt_subscriber(broker, sns, clients, qos):
    topic = unique("sn/long") + "/reg"
    sub = clients(broker.tcp).connect()
    sub.subscribe(MOUNTPOINT + topic, qos=2)
    c = sns()
    # A long topic name: the library REGISTERs it first, then PUBLISHes with the id.
    topic_id = c.send_publish(topic, f"hello qos{qos}".encode(), qos)
    assert topic_id >= 1025, f"dynamic topic ids start at 1025, got {topic_id}"
    [msg] = sub.expect(1)
    assert msg.topic == MOUNTPOINT + topic
    assert msg.payload == f"hello qos{qos}".encode()
    assert msg.qos == qos
    assert not msg.retain


def test_register_returns_the_same_id_for_the_same_name(sns):
    topic = unique("sn/reg") + "/same"
    c = sns()
    first = c.send_register(topic)
    again = c.send_register(topic)
    other = c.send_register(topic + "/other")
    assert first >= 1025
    assert again == first
    assert other not in (0, first)


def test_publish_on_short_topic_reaches_mqtt_subscriber(broker, sns, clients):
    sub = clients(broker.tcp).connect()
    sub.subscribe(MOUNTPOINT + "s1", qos=1)
    c = sns()
    # A 2-character name: sent as a short topic id, no REGISTER.
    topic_id = c.send_publish("s1", b"short", 1)
    assert topic_id == short_id("s1")
    [msg] = sub.expect(1)
    assert (msg.topic, msg.payload, msg.qos) == (MOUNTPOINT + "s1", b"short", 1)


def test_publish_on_predefined_id_reaches_mqtt_subscriber(broker, sns, clients):
    sub = clients(broker.tcp).connect()
    sub.subscribe(MOUNTPOINT + PREDEFINED[1], qos=1)
    c = sns()
    c.send_publish_predefined(1, b"predefined", 1)
    [msg] = sub.expect(1)
    assert (msg.topic, msg.payload, msg.qos) == (MOUNTPOINT + PREDEFINED[1], b"predefined", 1)


def test_retained_publish_is_kept_for_later_mqtt_subscribers(broker, sns, clients):
    topic = unique("sn/retained") + "/t"
    c = sns()
    c.send_publish(topic, b"kept", 1, True)
    sub = clients(broker.tcp).connect()
    sub.subscribe(MOUNTPOINT + topic, qos=1)
    [msg] = sub.expect(1)
    assert (msg.payload, msg.retain) == (b"kept", True)
    # Clear it so that nothing lingers in the module's broker.
    c.send_publish(topic, b"", 1, True)


def test_qos_minus_one_publish_without_connect_reaches_mqtt_subscriber(
    broker, sns, clients
):
    sub = clients(broker.tcp).connect()
    # Unlike EMQX 5.x, a connectionless QoS -1 publish is mounted (and authorized) like any
    # client's: it does not get around the gateway's mountpoint.
    sub.subscribe(MOUNTPOINT + PREDEFINED[1], qos=1)
    sub.subscribe(MOUNTPOINT + "s2", qos=1)
    c = sns(connect=False)  # socket only: no CONNECT is ever sent
    c.send_publish_predefined(1, b"qos-1 predefined", MqttSnConstants.QOS_N1)
    c.send_publish("s2", b"qos-1 short", MqttSnConstants.QOS_N1)
    got = sub.expect(2)
    assert sorted((m.topic, m.payload, m.qos) for m in got) == [
        (MOUNTPOINT + PREDEFINED[1], b"qos-1 predefined", 0),
        (MOUNTPOINT + "s2", b"qos-1 short", 0),
    ]


def test_qos_minus_one_publish_while_connected_is_published_at_qos0(broker, sns, clients):
    sub = clients(broker.tcp).connect()
    sub.subscribe(MOUNTPOINT + PREDEFINED[2], qos=1)
    c = sns()
    c.send_publish_predefined(2, b"connected qos-1", MqttSnConstants.QOS_N1)
    [msg] = sub.expect(1)
    assert (msg.topic, msg.payload, msg.qos) == (
        MOUNTPOINT + PREDEFINED[2],
        b"connected qos-1",
        0,
    )
    # The connection is still in place afterwards.
    c.send_ping_req()


def test_publish_on_unknown_topic_id_is_refused(sns):
    c = sns()
    with pytest.raises(MqttSnClientException, match="invalid topic ID"):
        c.send_publish_with_id(4321, MqttSnConstants.TOPIC_TYPE_NORMAL, b"x", 1)
    with pytest.raises(MqttSnClientException, match="invalid topic ID"):
        c.send_publish_predefined(999, b"x", 1)


# ---------------------------------------------------------------------------------------
# MQTT publish → MQTT-SN subscriber


def test_subscribe_to_long_topic_receives_mqtt_publish(broker, sns, clients):
    topic = unique("sn/sub") + "/long"
    c = sns()
    rec = Recorder()
    c.send_subscribe(topic, 0, rec)
    topic_id = c.search_topic_id(topic)
    assert topic_id is not None and topic_id >= 1025, c.topic_map
    pub = clients(broker.tcp).connect()
    pub.publish(MOUNTPOINT + topic, b"one", qos=1)
    pub.publish(MOUNTPOINT + topic, b"two", qos=0)
    m1, m2 = poll_until(c, rec, 2)
    assert [m.payload for m in (m1, m2)] == [b"one", b"two"]
    assert {(m.topic_id, m.topic_name, m.qos) for m in (m1, m2)} == {(topic_id, topic, 0)}


def test_subscribe_to_wildcard_gets_register_before_first_delivery(broker, sns, clients):
    root = unique("sn/wild")
    c = sns()
    rec = Recorder()
    c.send_subscribe(f"{root}/+/t", 0, rec)
    assert c.topic_map == {}, "a wildcard SUBACK carries topic id 0: nothing registered"
    pub = clients(broker.tcp).connect()
    pub.publish(MOUNTPOINT + f"{root}/a/t", b"a")
    pub.publish(MOUNTPOINT + f"{root}/a/x", b"not matched")
    pub.publish(MOUNTPOINT + f"{root}/b/t", b"b")
    pub.publish(MOUNTPOINT + f"{root}/a/t", b"a again")
    got = poll_until(c, rec, 3)
    # The library answers the gateway's REGISTERs with REGACK and records each name.
    assert [(m.topic_name, m.payload) for m in got] == [
        (f"{root}/a/t", b"a"),
        (f"{root}/b/t", b"b"),
        (f"{root}/a/t", b"a again"),
    ]
    ids = {m.topic_name: m.topic_id for m in got}
    assert len(set(ids.values())) == 2 and all(i >= 1025 for i in ids.values()), ids
    assert c.topic_map == {v: k for k, v in ids.items()}
    assert got[0].topic_id == got[2].topic_id  # registered once, reused


def test_subscribe_to_short_and_predefined_topics_receives_mqtt_publish(
    broker, sns, clients
):
    c = sns()
    rec_short, rec_pre = Recorder(), Recorder()
    c.send_subscribe("s3", 0, rec_short)
    c.send_subscribe_predefined(2, 0, rec_pre)
    pub = clients(broker.tcp).connect()
    pub.publish(MOUNTPOINT + "s3", b"to short")
    pub.publish(MOUNTPOINT + PREDEFINED[2], b"to predefined")
    deadline = time.monotonic() + TIMEOUT
    while not (rec_short.messages and rec_pre.messages):
        left = deadline - time.monotonic()
        assert left > 0, (
            f"short: {[str(m) for m in rec_short.messages]}, "
            f"predefined: {[str(m) for m in rec_pre.messages]}"
        )
        if select.select([c.datagram_socket], [], [], min(left, 0.1))[0]:
            c.polling()
    [ms], [mp] = rec_short.messages, rec_pre.messages
    assert (ms.topic_id, ms.payload) == (short_id("s3"), b"to short")
    assert (mp.topic_id, mp.payload) == (2, b"to predefined")
    assert c.topic_map == {}, "short and predefined deliveries need no REGISTER"


def test_unsubscribe_stops_delivery(broker, sns, clients):
    root = unique("sn/unsub")
    c = sns()
    gone, kept = Recorder(), Recorder()
    c.send_subscribe(f"{root}/gone", 0, gone)
    c.send_subscribe(f"{root}/kept", 0, kept)
    c.send_unsubscribe(f"{root}/gone")
    pub = clients(broker.tcp).connect()
    pub.publish(MOUNTPOINT + f"{root}/gone", b"after unsubscribe")
    pub.publish(MOUNTPOINT + f"{root}/kept", b"marker")
    [m] = poll_until(c, kept, 1)
    assert m.payload == b"marker"
    assert gone.messages == []


def wait_publish(client: SnClient) -> PublishPacket:
    """The next PUBLISH to the library's client; `wait_for` answers REGISTERs on the way."""
    buf = client.wait_for(True, MqttSnConstants.TYPE_PUBLISH)
    assert buf is not None, f"{client.client_id}: no PUBLISH within {client.timeout}s"
    p = PublishPacket()
    p.decode(buf)
    return p


def test_puback_invalid_topic_id_makes_the_gateway_register_again_and_redeliver(
    broker, sns, clients
):
    # QoS 1 downlink driven through the library's own packet handling (its polling()
    # cannot PUBACK, see the module docstring).
    topic = unique("sn/lost") + "/t"
    c = sns()
    c.send_subscribe(topic, 1, Recorder())
    topic_id = c.search_topic_id(topic)
    assert topic_id is not None and topic_id >= 1025, c.topic_map
    pub = clients(broker.tcp).connect()
    pub.publish(MOUNTPOINT + topic, b"refused once", qos=1)
    first = wait_publish(c)
    assert (first.get_topic_id(), first.get_qos(), first.get_data()) == (
        topic_id,
        1,
        b"refused once",
    )
    # The device lost its topic table (a reboot, say) and refuses the topic id.
    c.topic_map.clear()
    c.send_puback(first, MqttSnConstants.REJECTED_INVALID)
    # The gateway REGISTERs the topic again (same id; wait_for REGACKs it and records the
    # name) and sends the refused message again.
    again = wait_publish(c)
    assert c.topic_map == {topic_id: topic}
    assert (again.get_topic_id(), again.get_message_id(), again.get_data()) == (
        topic_id,
        first.get_message_id(),
        b"refused once",
    )
    c.send_puback(again, MqttSnConstants.ACCEPTED)
    # Acknowledged: the window of one is free and the next message flows.
    pub.publish(MOUNTPOINT + topic, b"next", qos=1)
    nxt = wait_publish(c)
    assert (nxt.get_topic_id(), nxt.get_data()) == (topic_id, b"next")
    c.send_puback(nxt, MqttSnConstants.ACCEPTED)


# ---------------------------------------------------------------------------------------
# will


def test_will_is_published_when_client_stops_talking(broker, sns, clients):
    will_topic = unique("sn/will") + "/lost"
    sub = clients(broker.tcp).connect()
    sub.subscribe(MOUNTPOINT + will_topic, qos=1)
    # Keepalive 1 s: the gateway gives up after 1.5 s without a datagram.
    c = sns(keep_alive=1, will=(will_topic, "client lost", 1, False))
    connected_at = time.monotonic()
    try:
        [msg] = sub.expect(1, timeout=1.5 + TIMEOUT)
    finally:
        c.close()  # the gateway already dropped it: no DISCONNECT at teardown
    elapsed = time.monotonic() - connected_at
    assert (msg.topic, msg.payload, msg.qos) == (MOUNTPOINT + will_topic, b"client lost", 1)
    assert elapsed >= 1.0, f"will published after {elapsed:.2f}s, before the keepalive ran out"


def test_will_is_not_published_after_disconnect(broker, sns, clients):
    will_topic = unique("sn/will") + "/bye"
    sub = clients(broker.tcp).connect()
    sub.subscribe(MOUNTPOINT + will_topic, qos=1)
    c = sns(keep_alive=1, will=(will_topic, "must not appear", 0, False))
    c.send_disconnect()  # waits for the gateway's DISCONNECT
    # Past the keepalive timeout (1.5 s) of the closed connection, a marker on the same
    # topic: it must be the only message.
    with pytest.raises(MqttError):
        sub.expect(1, timeout=1.6)
    pub = clients(broker.tcp).connect()
    pub.publish(MOUNTPOINT + will_topic, b"marker", qos=1)
    got = sub.drain_until_match(lambda m: m.payload == b"marker")
    assert [m.payload for m in got] == [b"marker"]


# ---------------------------------------------------------------------------------------
# sleeping client (raw datagrams)
#
# mqtt-sn-12 cannot wake itself from sleep: its PINGREQ carries no client id, and its
# send_ping_req() discards every PUBLISH that arrives before the PINGRESP (which is exactly
# what an awake gateway sends first). This test therefore speaks MQTT-SN 1.2 itself, with
# datagrams built by hand (1-byte length, type, fields; all lengths < 256).

CONNECT, CONNACK = 0x04, 0x05
PUBLISH, PUBACK = 0x0C, 0x0D
SUBSCRIBE, SUBACK = 0x12, 0x13
PINGREQ, PINGRESP = 0x16, 0x17
DISCONNECT = 0x18
FLAG_QOS1, FLAG_CLEAN = 0x20, 0x04


def frame(msg_type: int, body: bytes = b"") -> bytes:
    assert len(body) + 2 < 256
    return bytes([len(body) + 2, msg_type]) + body


class RawSn:
    def __init__(self, port: int) -> None:
        self.addr = (HOST, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(TIMEOUT)

    def send(self, msg_type: int, body: bytes = b"") -> None:
        self.sock.sendto(frame(msg_type, body), self.addr)

    def recv(self, timeout: float = TIMEOUT) -> tuple[int, bytes]:
        """The next datagram as (type, body), failing after `timeout`."""
        self.sock.settimeout(timeout)
        try:
            data, _ = self.sock.recvfrom(65536)
        except socket.timeout:
            raise AssertionError(f"no datagram from the gateway within {timeout}s") from None
        assert data[0] == len(data) and len(data) >= 2, f"bad frame {data.hex()}"
        return data[1], data[2:]

    def expect(self, msg_type: int) -> bytes:
        t, body = self.recv()
        assert t == msg_type, f"expected type {msg_type:#04x}, got {t:#04x} {body.hex()}"
        return body

    def assert_silent(self, window: float) -> None:
        """Nothing arrives for `window` seconds (a bounded negative check)."""
        readable, _, _ = select.select([self.sock], [], [], window)
        if readable:
            data, _ = self.sock.recvfrom(65536)
            raise AssertionError(f"unexpected datagram {data.hex()}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def raw(sn_port):
    r = RawSn(sn_port)
    yield r
    r.close()


def test_sleeping_client_gets_buffered_messages_when_it_wakes(broker, raw, clients):
    client_id = unique("sn-sleep").encode()
    topic = unique("sn/sleep") + "/t"
    # CONNECT: flags(clean), protocol id 1, duration 10 s, client id → CONNACK accepted.
    raw.send(CONNECT, bytes([FLAG_CLEAN, 0x01]) + struct.pack(">H", 10) + client_id)
    assert raw.expect(CONNACK) == b"\x00"
    # SUBSCRIBE QoS 1 to a normal topic name, msg id 1 → SUBACK with the registered id.
    raw.send(SUBSCRIBE, bytes([FLAG_QOS1]) + struct.pack(">H", 1) + topic.encode())
    flags, topic_id, msg_id, rc = struct.unpack(">BHHB", raw.expect(SUBACK))
    assert (flags & 0x60, msg_id, rc) == (FLAG_QOS1, 1, 0)
    assert topic_id >= 1025
    # DISCONNECT with a sleep duration of 10 s → DISCONNECT acknowledgement, asleep.
    raw.send(DISCONNECT, struct.pack(">H", 10))
    assert raw.expect(DISCONNECT) == b""
    # Published while asleep (QoS 1, the broker acknowledged them): buffered.
    pub = clients(broker.tcp).connect()
    pub.publish(MOUNTPOINT + topic, b"while asleep 1", qos=1)
    pub.publish(MOUNTPOINT + topic, b"while asleep 2", qos=1)
    raw.assert_silent(0.3)
    # PINGREQ with the client id: awake; the queue is delivered one at a time (QoS 1,
    # one in flight), each PUBACKed here, then PINGRESP and back to sleep.
    raw.send(PINGREQ, client_id)
    payloads = []
    for _ in range(2):
        body = raw.expect(PUBLISH)
        flags, tid, mid = struct.unpack(">BHH", body[:5])
        assert (flags & 0x60, flags & 0x03, tid) == (FLAG_QOS1, 0, topic_id), body.hex()
        assert mid != 0
        payloads.append(body[5:])
        raw.send(PUBACK, struct.pack(">HHB", tid, mid, 0))
    assert payloads == [b"while asleep 1", b"while asleep 2"]
    assert raw.expect(PINGRESP) == b""
    # Asleep again: a new message is buffered, not sent.
    pub.publish(MOUNTPOINT + topic, b"second nap", qos=1)
    raw.assert_silent(0.3)
    raw.send(PINGREQ, client_id)
    body = raw.expect(PUBLISH)
    assert body[5:] == b"second nap"
    raw.send(PUBACK, body[1:5] + b"\x00")
    assert raw.expect(PINGRESP) == b""
    # DISCONNECT without duration ends the session.
    raw.send(DISCONNECT)
    assert raw.expect(DISCONNECT) == b""


# ---------------------------------------------------------------------------------------
# clientinfo_override (a broker of its own)

OVERRIDE_CONFIG = (
    "gateway.mqttsn {\n"
    "  broadcast = true\n"
    "  clientinfo_override {\n"
    '    clientid = "sn-${ConnInfo.clientid}"\n'
    '    username = "dev-${ConnInfo.clientid}"\n'
    "  }\n"
    "}\n"
)


@pytest.fixture(scope="module")
def override_broker(tmp_path_factory) -> Broker:
    b = start_broker(
        tmp_path_factory.mktemp("junction-mqttsn-override"), config=OVERRIDE_CONFIG, ws=False
    )
    yield b
    alive = b.proc.poll() is None
    b.stop()
    assert alive, f"broker died during the tests (rc={b.proc.returncode}):\n{b.stderr_tail()}"


def test_clientinfo_override_sets_client_id_and_username(override_broker, clients):
    watcher = clients(override_broker.tcp).connect()
    watcher.subscribe("$SYS/brokers/+/gateway/mqtt-sn/clients/#")
    cid = unique("ovr")
    c = SnFactory(override_broker.port(SN_LISTENER))(client_id=cid)
    try:
        got = watcher.drain_until_match(lambda m: m.topic.endswith("/connected"))
        event = got[-1]
        assert event.topic.endswith(f"/gateway/mqtt-sn/clients/sn-{cid}/connected"), event.topic
        body = json.loads(event.payload)
        assert (body["clientid"], body["username"]) == (f"sn-{cid}", f"dev-{cid}")
        # The session answers under its rendered id like any other.
        c.send_ping_req()
    finally:
        c.send_disconnect()
        c.close()
