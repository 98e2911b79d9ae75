"""Interop tests for the STOMP gateway with the third-party client stomp.py (8.2.0).

One `junction start` per module with `gateway.stomp.mountpoint = "stomp/"`: STOMP clients
see unmounted destinations, MQTT clients see them under `stomp/`. Every wait is bounded;
stomp.py's listener callbacks (its receiver thread) feed `threading.Event`s and queues
that the test thread waits on.
"""

from __future__ import annotations

import queue
import threading
import time

import pytest
import stomp
from stomp.exception import ConnectFailedException

from junction_harness import HOST, TIMEOUT, Broker, ClientFactory, start_broker, unique

MOUNTPOINT = "stomp/"
STOMP_LISTENER = "stomp:tcp:default"


# ---------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def broker(tmp_path_factory) -> Broker:
    """Named `broker` so that conftest attaches the broker's stderr to failures."""
    b = start_broker(
        tmp_path_factory.mktemp("junction-stomp"),
        config=f'gateway.stomp.mountpoint = "{MOUNTPOINT}"\n',
        ws=False,
    )
    yield b
    alive = b.proc.poll() is None
    b.stop()
    assert alive, f"broker died during the tests (rc={b.proc.returncode}):\n{b.stderr_tail()}"


@pytest.fixture
def stomp_port(broker) -> int:
    assert STOMP_LISTENER in broker.listeners, (
        f"no {STOMP_LISTENER} listener announced; listeners: {broker.listeners}\n"
        f"{broker.stderr_tail()}"
    )
    return broker.port(STOMP_LISTENER)


@pytest.fixture
def clients():
    f = ClientFactory()
    yield f
    f.close_all()


# ---------------------------------------------------------------------------------------
# stomp.py helpers


class Recorder(stomp.ConnectionListener):
    """Records what stomp.py's receiver thread reports."""

    def __init__(self) -> None:
        self.connected = threading.Event()
        self.connected_frame = None
        self.disconnected = threading.Event()
        self.messages: queue.Queue = queue.Queue()
        self.errors: queue.Queue = queue.Queue()
        self._cv = threading.Condition()
        self.receipts: list[str] = []
        self.heartbeats = 0

    def on_connected(self, frame):
        self.connected_frame = frame
        self.connected.set()

    def on_disconnected(self):
        self.disconnected.set()
        self.connected.set()  # wake a connect() waiting for a CONNECTED that never came

    def on_message(self, frame):
        self.messages.put(frame)

    def on_error(self, frame):
        self.errors.put(frame)

    def on_receipt(self, frame):
        with self._cv:
            self.receipts.append(frame.headers.get("receipt-id"))
            self._cv.notify_all()

    def on_heartbeat(self):
        with self._cv:
            self.heartbeats += 1

    # waits (test thread)
    def wait_receipt(self, receipt_id: str, timeout: float = TIMEOUT) -> None:
        with self._cv:
            if not self._cv.wait_for(lambda: receipt_id in self.receipts, timeout):
                errors = list(self.errors.queue)
                raise AssertionError(
                    f"no RECEIPT {receipt_id!r} within {timeout}s; receipts {self.receipts}, "
                    f"errors {[(e.headers, e.body) for e in errors]}"
                )

    def expect(self, n: int = 1, timeout: float = TIMEOUT) -> list:
        deadline = time.monotonic() + timeout
        got = []
        while len(got) < n:
            try:
                got.append(self.messages.get(timeout=max(deadline - time.monotonic(), 0.001)))
            except queue.Empty:
                raise AssertionError(
                    f"got {len(got)} of {n} MESSAGE frames within {timeout}s: "
                    f"{[(m.headers, m.body) for m in got]}; errors "
                    f"{[(e.headers, e.body) for e in list(self.errors.queue)]}"
                ) from None
        return got

    def expect_error(self, timeout: float = TIMEOUT):
        try:
            return self.errors.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no ERROR frame within {timeout}s") from None

    def assert_no_messages(self) -> None:
        left = list(self.messages.queue)
        assert not left, f"unexpected MESSAGE frames: {[(m.headers, m.body) for m in left]}"


class StompFactory:
    """Connects stomp.py clients and closes every one of them at the end of a test."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._conns: list[tuple[stomp.connect.BaseConnection, Recorder]] = []

    def __call__(self, cls=stomp.Connection12, *, connect: bool = True, **kwargs):
        conn = cls([(HOST, self.port)], reconnect_attempts_max=1, timeout=TIMEOUT, **kwargs)
        rec = Recorder()
        conn.set_listener("recorder", rec)
        self._conns.append((conn, rec))
        if connect:
            self.connect(conn, rec)
        return conn, rec

    @staticmethod
    def connect(conn, rec: Recorder, **kwargs) -> None:
        """CONNECT (stomp.py sends STOMP for 1.1/1.2) and wait for CONNECTED."""
        conn.connect(wait=False, **kwargs)
        if not rec.connected.wait(TIMEOUT) or rec.connected_frame is None:
            errors = [(e.headers, e.body) for e in list(rec.errors.queue)]
            raise ConnectFailedException(f"no CONNECTED within {TIMEOUT}s; errors {errors}")
        assert conn.is_connected()

    def close_all(self) -> None:
        for conn, rec in self._conns:
            try:
                if conn.is_connected():
                    # No receipt argument: stomp.py sends DISCONNECT with its own receipt
                    # and closes the socket when it arrives, without blocking here.
                    conn.disconnect()
                    rec.disconnected.wait(TIMEOUT)
            except Exception:  # noqa: BLE001 - best effort cleanup
                pass
            finally:
                if not rec.disconnected.is_set():
                    conn.transport.disconnect_socket()


@pytest.fixture
def stomps(stomp_port):
    f = StompFactory(stomp_port)
    yield f
    f.close_all()


def subscribe(conn, rec: Recorder, destination: str, sub_id: str, ack: str = "auto") -> None:
    """SUBSCRIBE with a receipt and wait for it, so the subscription is in place."""
    receipt = unique("sub-receipt")
    if isinstance(conn, stomp.Connection10):
        conn.subscribe(destination, id=sub_id, ack=ack, receipt=receipt)
    else:
        conn.subscribe(destination, sub_id, ack=ack, receipt=receipt)
    rec.wait_receipt(receipt)


def send_confirmed(conn, rec: Recorder, destination: str, body, **kwargs) -> None:
    """SEND with a receipt and wait for it."""
    receipt = unique("send-receipt")
    conn.send(destination, body, receipt=receipt, **kwargs)
    rec.wait_receipt(receipt)


def run_bounded(fn, timeout: float = TIMEOUT) -> None:
    """Run a call that may block (stomp.py's disconnect with a receipt waits for the
    receiver thread) in a daemon thread, failing if it does not return in time."""
    errors = []

    def target():
        try:
            fn()
        except BaseException as e:  # noqa: BLE001 - re-raised in the test thread
            errors.append(e)

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"call did not return within {timeout}s"
    if errors:
        raise errors[0]


# ---------------------------------------------------------------------------------------
# connect and version negotiation


@pytest.mark.parametrize(
    "cls, version",
    [(stomp.Connection12, "1.2"), (stomp.Connection11, "1.1"), (stomp.Connection10, "1.0")],
    ids=["stomp12", "stomp11", "stomp10"],
)
def test_stomp_py_connects_and_gets_connected_with_its_version(stomps, cls, version):
    conn, rec = stomps(cls)
    frame = rec.connected_frame
    assert frame.cmd == "CONNECTED"
    assert frame.headers.get("version") == version, frame.headers
    assert frame.headers.get("server"), frame.headers
    assert rec.errors.empty()
    # The negotiated version is usable: a message round-trips on the same connection.
    dest = unique(f"ver{version}")
    subscribe(conn, rec, dest, "s1")
    send_confirmed(conn, rec, dest, f"hello {version}")
    [msg] = rec.expect(1)
    assert msg.body == f"hello {version}"
    assert msg.headers["destination"] == dest
    assert msg.headers["subscription"] == "s1"


def test_connected_heart_beat_header_is_the_clients_swapped(stomps):
    # Long periods: neither side has to heart-beat during this short test.
    conn, rec = stomps(stomp.Connection12, heartbeats=(3000, 7000))
    assert rec.connected_frame.headers.get("heart-beat") == "7000,3000", (
        rec.connected_frame.headers
    )


# ---------------------------------------------------------------------------------------
# STOMP <-> MQTT


def test_send_reaches_mqtt_subscriber_under_the_mountpoint(broker, stomps, clients):
    dest = unique("orders") + "/new"
    sub = clients(broker.tcp).connect()
    sub.subscribe(MOUNTPOINT + dest, qos=1)
    conn, rec = stomps()
    send_confirmed(conn, rec, dest, '{"id": 7}', content_type="application/json")
    [msg] = sub.expect(1)
    assert msg.topic == MOUNTPOINT + dest
    assert msg.payload == b'{"id": 7}'
    assert msg.qos == 0  # SEND publishes at QoS 0
    assert not msg.retain


@pytest.mark.parametrize("pattern", ["+/temp", "#"], ids=["plus", "hash"])
def test_mqtt_publish_reaches_stomp_wildcard_subscriber_with_unmounted_destination(
    broker, stomps, clients, pattern
):
    root = unique("sensors")
    conn, rec = stomps()
    filt = f"{root}/{pattern}"
    subscribe(conn, rec, filt, "wild")
    pub = clients(broker.tcp).connect()
    if pattern == "+/temp":
        # Not matched by `<root>/+/temp`: must not be delivered.
        pub.publish(f"{MOUNTPOINT}{root}/kitchen/humidity", b"40")
    # Not under the mountpoint: never visible to the STOMP client.
    pub.publish(f"{root}/kitchen/temp", b"unmounted")
    pub.publish(f"{MOUNTPOINT}{root}/kitchen/temp", b"21.5")
    [msg] = rec.expect(1)
    assert msg.body == "21.5"
    assert msg.headers["destination"] == f"{root}/kitchen/temp"
    assert msg.headers["subscription"] == "wild"
    assert msg.headers.get("message-id")
    assert msg.headers.get("content-type") == "text/plain"
    assert "ack" not in msg.headers  # auto ack mode
    # A second message proves nothing else was queued ahead of it.
    pub.publish(f"{MOUNTPOINT}{root}/hall/temp", b"19")
    [msg2] = rec.expect(1)
    assert (msg2.headers["destination"], msg2.body) == (f"{root}/hall/temp", "19")
    assert msg2.headers["message-id"] != msg.headers["message-id"]
    rec.assert_no_messages()


# ---------------------------------------------------------------------------------------
# STOMP -> STOMP


def test_custom_headers_sent_by_one_client_arrive_at_another_subscriber(stomps):
    dest = unique("chat")
    receiver, rrec = stomps()
    subscribe(receiver, rrec, dest, "chat-sub")
    sender, srec = stomps()
    send_confirmed(
        sender,
        srec,
        dest,
        "hi there",
        content_type="application/x-chat",
        headers={"x-trace-id": "abc-123", "x-colon": "a:b", "priority": "7"},
    )
    [msg] = rrec.expect(1)
    h = msg.headers
    assert msg.body == "hi there"
    assert h["destination"] == dest
    assert h["subscription"] == "chat-sub"
    assert h["content-type"] == "application/x-chat"
    assert h.get("x-trace-id") == "abc-123", h
    assert h.get("x-colon") == "a:b", h  # escaped as `\c` on the wire both ways
    assert h.get("priority") == "7", h
    # Frame-control headers of the SEND are not carried over.
    assert "receipt" not in h and "transaction" not in h, h


def test_binary_body_with_nul_bytes_round_trips(stomps):
    dest = unique("blob")
    body = b"\x00\x01binary\x00\xff\xfe\x00" + bytes(range(256)) + b"\x00"
    receiver, rrec = stomps(auto_decode=False)
    subscribe(receiver, rrec, dest, "bin")
    sender, srec = stomps()
    send_confirmed(sender, srec, dest, body, content_type="application/octet-stream")
    [msg] = rrec.expect(1)
    assert msg.body == body
    assert int(msg.headers["content-length"]) == len(body)
    assert msg.headers["content-type"] == "application/octet-stream"


# ---------------------------------------------------------------------------------------
# receipts, transactions, acks


def test_receipts_for_send_subscribe_and_disconnect(stomps):
    dest = unique("rcpt")
    conn, rec = stomps()
    conn.subscribe(dest, "r1", receipt="sub-1")
    rec.wait_receipt("sub-1")
    conn.send(dest, "one", receipt="send-1")
    rec.wait_receipt("send-1")
    [msg] = rec.expect(1)
    assert msg.body == "one"
    conn.unsubscribe("r1", receipt="unsub-1")
    rec.wait_receipt("unsub-1")
    # stomp.py's disconnect(receipt=...) sends DISCONNECT and waits for its receiver
    # thread: the RECEIPT arrives, then the connection is closed.
    run_bounded(lambda: conn.disconnect(receipt="bye-1"))
    rec.wait_receipt("bye-1")
    assert rec.disconnected.wait(TIMEOUT), "socket not closed after DISCONNECT receipt"
    assert not conn.is_connected()
    assert rec.errors.empty(), [(e.headers, e.body) for e in list(rec.errors.queue)]


def test_transaction_commit_delivers_the_deferred_sends(stomps):
    dest = unique("tx-commit")
    receiver, rrec = stomps()
    subscribe(receiver, rrec, dest, "txs")
    conn, rec = stomps()
    tx = conn.begin(receipt="begin-1")
    rec.wait_receipt("begin-1")
    conn.send(dest, "in-tx-1", transaction=tx, receipt="tx-send-1")
    conn.send(dest, "in-tx-2", transaction=tx, receipt="tx-send-2")
    rec.wait_receipt("tx-send-2")
    # Outside the transaction: delivered right away, ahead of the deferred ones.
    send_confirmed(conn, rec, dest, "outside")
    [first] = rrec.expect(1)
    assert first.body == "outside"
    rrec.assert_no_messages()
    conn.commit(tx, receipt="commit-1")
    rec.wait_receipt("commit-1")
    got = rrec.expect(2)
    assert [m.body for m in got] == ["in-tx-1", "in-tx-2"]
    assert all("transaction" not in m.headers for m in got)
    assert rec.errors.empty(), [(e.headers, e.body) for e in list(rec.errors.queue)]


def test_transaction_abort_discards_the_deferred_sends(stomps):
    dest = unique("tx-abort")
    receiver, rrec = stomps()
    subscribe(receiver, rrec, dest, "txa")
    conn, rec = stomps()
    tx = conn.begin(receipt="begin-2")
    rec.wait_receipt("begin-2")
    conn.send(dest, "doomed", transaction=tx)
    conn.abort(tx, receipt="abort-2")
    rec.wait_receipt("abort-2")
    # A marker sent after the abort: the first (and only) message delivered.
    send_confirmed(conn, rec, dest, "marker")
    [msg] = rrec.expect(1)
    assert msg.body == "marker"
    rrec.assert_no_messages()
    assert rec.errors.empty(), [(e.headers, e.body) for e in list(rec.errors.queue)]
    assert conn.is_connected()


def test_client_individual_subscription_messages_carry_ack_and_ack_nack_work(stomps):
    dest = unique("acks")
    conn, rec = stomps()
    subscribe(conn, rec, dest, "ci", ack="client-individual")
    send_confirmed(conn, rec, dest, "m1")
    send_confirmed(conn, rec, dest, "m2")
    m1, m2 = rec.expect(2)
    assert [m1.body, m2.body] == ["m1", "m2"]
    for m in (m1, m2):
        assert m.headers.get("ack"), m.headers
        assert m.headers["subscription"] == "ci"
    assert m1.headers["ack"] != m2.headers["ack"]
    conn.ack(m1.headers["ack"], receipt="ack-1")
    rec.wait_receipt("ack-1")
    conn.nack(m2.headers["ack"], receipt="nack-2")
    rec.wait_receipt("nack-2")
    assert rec.errors.empty(), [(e.headers, e.body) for e in list(rec.errors.queue)]
    # Still usable afterwards.
    send_confirmed(conn, rec, dest, "m3")
    [m3] = rec.expect(1)
    assert m3.body == "m3" and m3.headers.get("ack")
    conn.ack(m3.headers["ack"])


# ---------------------------------------------------------------------------------------
# heart-beats


def test_heart_beats_keep_the_connection_alive_while_messages_flow(stomps):
    dest = unique("hb")
    # stomp.py allows 1.5 x 500 ms between server heart-beats by default; 2 x gives the
    # same slack the server allows the client, so a loaded CI host does not flake.
    conn, rec = stomps(stomp.Connection12, heartbeats=(500, 500), heart_beat_receive_scale=2.0)
    assert rec.connected_frame.headers.get("heart-beat") == "500,500"
    subscribe(conn, rec, dest, "hb")
    started = time.monotonic()
    # Silences longer than the server's 2 x 500 ms inbound check and stomp.py's 1 s
    # receive check: only heart-beats in both directions keep the connection up.
    for i, silence in enumerate((1.3, 0.8)):
        assert not rec.disconnected.wait(silence), (
            f"disconnected after {time.monotonic() - started:.2f}s "
            f"({rec.heartbeats} server heart-beats seen)"
        )
        assert conn.is_connected()
        send_confirmed(conn, rec, dest, f"beat {i}")
        [msg] = rec.expect(1)
        assert msg.body == f"beat {i}"
    assert time.monotonic() - started >= 2.0
    assert conn.is_connected() and not rec.disconnected.is_set()
    assert rec.heartbeats >= 2, f"only {rec.heartbeats} server heart-beats seen in ~2s"
    assert rec.errors.empty(), [(e.headers, e.body) for e in list(rec.errors.queue)]


def test_server_closes_a_client_that_promised_heart_beats_and_went_silent(stomps):
    conn, rec = stomps(stomp.Connection12, connect=False)
    # stomp.py's own heart-beating stays off ((0, 0)), so it never sends the promised
    # heart-beats; the server checks for inbound traffic every 2 x 400 ms.
    started = time.monotonic()
    StompFactory.connect(conn, rec, headers={"heart-beat": "400,0"})
    assert rec.connected_frame.headers.get("heart-beat") == "0,400"
    assert rec.disconnected.wait(TIMEOUT), "silent client not closed by the server"
    elapsed = time.monotonic() - started
    assert elapsed >= 0.5, f"closed after only {elapsed:.2f}s"


# ---------------------------------------------------------------------------------------
# errors


def test_send_to_sys_topic_gets_insufficient_permissions_error_and_close(broker, stomps, clients):
    watcher = clients(broker.tcp).connect()
    watcher.subscribe("$SYS/#")
    watcher.subscribe(MOUNTPOINT + "$SYS/#")
    conn, rec = stomps()
    conn.send("$SYS/x", "nope", receipt="sys-1")
    err = rec.expect_error()
    assert err.cmd == "ERROR"
    assert "Insufficient permissions for $SYS/x" in err.body, err.body
    assert err.headers.get("receipt-id") == "sys-1", err.headers
    assert err.headers.get("content-type") == "text/plain", err.headers
    assert rec.disconnected.wait(TIMEOUT), "connection not closed after the ERROR"
    # Nothing was published.
    with pytest.raises(AssertionError):
        watcher.drain_until_match(lambda m: m.topic.endswith("$SYS/x"), timeout=0.3)


def test_duplicate_subscription_id_gets_error_and_close(stomps):
    conn, rec = stomps()
    subscribe(conn, rec, unique("dup-a"), "same-id")
    conn.subscribe(unique("dup-b"), "same-id")
    err = rec.expect_error()
    assert "Subscription id same-id is in used" in err.body, err.body
    assert rec.disconnected.wait(TIMEOUT), "connection not closed after the ERROR"


def test_too_many_headers_gets_frame_error_and_close(stomps):
    conn, rec = stomps()
    # destination + content-length + 11 custom headers > frame.max_headers (10)
    conn.send(unique("many"), "x", headers={f"x-h{i}": str(i) for i in range(11)})
    err = rec.expect_error()
    assert "Frame error" in err.body and "too_many_headers" in err.body, err.body
    assert rec.disconnected.wait(TIMEOUT), "connection not closed after the ERROR"
