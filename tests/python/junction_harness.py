"""Shared helpers for the Python interop tests: start the real `junction` binary, and a
small synchronous wrapper around a paho-mqtt 2.x client.

Every wait here has a timeout; nothing sleeps blindly where an event can be awaited.
"""

from __future__ import annotations

import itertools
import os
import queue
import re
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

# How long any single wait (broker start, CONNACK, SUBACK, a message) may take.
TIMEOUT = 5.0
HOST = "127.0.0.1"

REPO = Path(__file__).resolve().parents[2]

_counter = itertools.count()


def unique(prefix: str) -> str:
    """A name unique within this test run (client ids, topics)."""
    return f"{prefix}-{os.getpid()}-{next(_counter)}"


def junction_bin() -> str:
    path = os.environ.get("JUNCTION_BIN") or str(REPO / "target" / "release" / "junction")
    if not os.access(path, os.X_OK):
        raise RuntimeError(
            f"junction binary not found at {path}: build it with "
            "`cargo build --release -p junction` or set JUNCTION_BIN"
        )
    return path


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (bind port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


_LISTENER_RE = re.compile(r"junction: listener (\S+) on (\S+):(\d+)\s*$")


@dataclass
class Broker:
    """A running `junction start` process."""

    proc: subprocess.Popen
    workdir: Path
    listeners: dict[str, int] = field(default_factory=dict)
    stderr_lines: list[str] = field(default_factory=list)
    _reader: threading.Thread | None = None

    def port(self, listener_id: str) -> int:
        """Port of a listener id such as `tcp:default`, `ws:default`, `ssl:default`."""
        return self.listeners[listener_id]

    @property
    def tcp(self) -> int:
        return self.port("tcp:default")

    def stderr_tail(self, n: int = 40) -> str:
        """The first lines (the error, before any backtrace) and the last `n`."""
        lines = self.stderr_lines
        if len(lines) > n + 10:
            lines = lines[:10] + ["..."] + lines[-n:]
        return "\n".join(lines)

    def assert_alive(self) -> None:
        rc = self.proc.poll()
        assert rc is None, f"broker exited with {rc}; stderr:\n{self.stderr_tail()}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=TIMEOUT)
        if self._reader is not None:
            self._reader.join(timeout=TIMEOUT)


def start_broker(
    workdir: Path,
    *,
    config: str = "",
    env: dict[str, str] | None = None,
    tcp: bool = True,
    ws: bool = True,
) -> Broker:
    """Start `junction start` in `workdir` with the given HOCON config text and
    `JUNCTION_*` overrides; the built-in tcp/ws listeners are moved to free ports on
    127.0.0.1 (or disabled). Returns once `junction: started` is printed."""
    workdir.mkdir(parents=True, exist_ok=True)
    conf = workdir / "junction.conf"
    conf.write_text(config)
    # The broker reads every JUNCTION_* variable as a config override and refuses unknown
    # keys, so variables meant for this harness (JUNCTION_BIN) must not reach it.
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("JUNCTION_")}
    full_env["JUNCTION_NODE__DATA_DIR"] = str(workdir / "data")
    for kind, on in (("TCP", tcp), ("WS", ws)):
        if on:
            full_env[f"JUNCTION_LISTENERS__{kind}__DEFAULT__BIND"] = f"{HOST}:{free_port()}"
        else:
            full_env[f"JUNCTION_LISTENERS__{kind}__DEFAULT__ENABLE"] = "false"
    # Gateways are on by default; keep them off the well-known ports in tests.
    full_env["JUNCTION_GATEWAY__STOMP__LISTENERS__TCP__DEFAULT__BIND"] = f"{HOST}:0"
    full_env["JUNCTION_GATEWAY__MQTTSN__LISTENERS__UDP__DEFAULT__BIND"] = f"{HOST}:0"
    full_env["JUNCTION_GATEWAY__COAP__LISTENERS__UDP__DEFAULT__BIND"] = f"{HOST}:0"
    full_env["JUNCTION_GATEWAY__LWM2M__LISTENERS__UDP__DEFAULT__BIND"] = f"{HOST}:0"
    # The management API likewise (listener id `dashboard:http`).
    full_env["JUNCTION_DASHBOARD__LISTENERS__HTTP__BIND"] = f"{HOST}:0"
    full_env.update(env or {})
    proc = subprocess.Popen(
        [junction_bin(), "start", "--config", str(conf)],
        cwd=workdir,
        env=full_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
    )
    broker = Broker(proc=proc, workdir=workdir)
    started = threading.Event()
    ready = []

    def read_stderr() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            line = line.rstrip("\n")
            broker.stderr_lines.append(line)
            m = _LISTENER_RE.search(line)
            if m:
                broker.listeners[m.group(1)] = int(m.group(3))
            if line.strip() == "junction: started":
                ready.append(True)
                started.set()
        started.set()  # EOF: the process is gone; the waiter checks.

    broker._reader = threading.Thread(target=read_stderr, daemon=True)
    broker._reader.start()
    if not started.wait(TIMEOUT * 2) or not ready:
        broker.stop()
        raise RuntimeError(
            f"junction did not start (rc={proc.returncode}); stderr:\n{broker.stderr_tail()}"
        )
    return broker


# ---------------------------------------------------------------------------------------
# paho-mqtt wrapper


class MqttError(AssertionError):
    pass


class Client:
    """A paho-mqtt 2.x client (CallbackAPIVersion.VERSION2) run by its own network
    thread, with blocking, time-limited helpers."""

    def __init__(
        self,
        port: int,
        *,
        protocol: int = mqtt.MQTTv311,
        client_id: str | None = None,
        transport: str = "tcp",
        ws_path: str = "/mqtt",
        clean_session: bool = True,
        tls: dict | None = None,
        host: str = HOST,
        bind_address: str = "",
    ) -> None:
        self.host = host
        # A local address to connect from (127.0.0.2 is another host to the broker's
        # rules, on the same loopback).
        self.bind_address = bind_address
        self.port = port
        self.protocol = protocol
        self.client_id = client_id or unique("py")
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connack: tuple | None = None  # (reason_code, flags, properties)
        self._connected = threading.Event()
        self._disconnected = threading.Event()
        self.disconnect_reason = None
        self._cv = threading.Condition()
        self._subacks: dict[int, list] = {}
        self._unsubacks: set[int] = set()
        self.c = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=protocol,
            transport=transport,
            clean_session=None if protocol == mqtt.MQTTv5 else clean_session,
            reconnect_on_failure=False,
        )
        if transport == "websockets":
            self.c.ws_set_options(path=ws_path)
        if tls is not None:
            self.c.tls_set(**tls)
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        self.c.on_unsubscribe = self._on_unsubscribe
        self._loop = False

    # callbacks (network thread)
    def _on_connect(self, client, userdata, flags, reason_code, properties):
        self.connack = (reason_code, flags, properties)
        self._connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties):
        self.disconnect_reason = reason_code
        self._disconnected.set()
        self._connected.set()  # wake a connect() waiting for a CONNACK that never came

    def _on_message(self, client, userdata, msg):
        self.messages.put(msg)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties):
        with self._cv:
            self._subacks[mid] = list(reason_codes)
            self._cv.notify_all()

    def _on_unsubscribe(self, client, userdata, mid, reason_codes, properties):
        with self._cv:
            self._unsubacks.add(mid)
            self._cv.notify_all()

    # blocking helpers (test thread)
    def will_set(self, topic, payload=None, qos=0, retain=False, properties=None):
        self.c.will_set(topic, payload, qos, retain, properties)
        return self

    def connect(
        self,
        *,
        clean_start: bool = True,
        properties: Properties | None = None,
        keepalive: int = 30,
    ) -> "Client":
        """Connect and wait for a successful CONNACK."""
        kwargs = {}
        if self.protocol == mqtt.MQTTv5:
            kwargs["clean_start"] = clean_start
            kwargs["properties"] = properties
        self._connected.clear()
        self._disconnected.clear()
        self.connack = None
        self.c.connect(self.host, self.port, keepalive=keepalive,
                       bind_address=self.bind_address, **kwargs)
        self.c.loop_start()
        self._loop = True
        if not self._connected.wait(TIMEOUT):
            raise MqttError(f"{self.client_id}: no CONNACK within {TIMEOUT}s")
        if self.connack is None:
            raise MqttError(
                f"{self.client_id}: connection closed before CONNACK "
                f"(reason {self.disconnect_reason})"
            )
        rc = self.connack[0]
        if rc.is_failure:
            raise MqttError(f"{self.client_id}: CONNACK refused: {rc}")
        return self

    @property
    def session_present(self) -> bool:
        assert self.connack is not None
        return bool(self.connack[1].session_present)

    def subscribe(self, topic: str, qos: int = 0, **kwargs) -> list:
        """Subscribe and wait for the SUBACK; fail on a refusal code."""
        codes = self.subscribe_codes(topic, qos, **kwargs)
        for code in codes:
            if code.is_failure:
                raise MqttError(f"{self.client_id}: SUBACK refused {topic}: {code}")
        return codes

    def subscribe_codes(self, topic: str, qos: int = 0, **kwargs) -> list:
        """Subscribe and return the SUBACK's reason codes, refusals included."""
        if self.protocol == mqtt.MQTTv5:
            from paho.mqtt.subscribeoptions import SubscribeOptions

            rc, mid = self.c.subscribe(topic, options=SubscribeOptions(qos=qos, **kwargs))
        else:
            rc, mid = self.c.subscribe(topic, qos)
        assert rc == mqtt.MQTT_ERR_SUCCESS, f"subscribe({topic}) not sent: {rc}"
        with self._cv:
            if not self._cv.wait_for(lambda: mid in self._subacks, TIMEOUT):
                raise MqttError(f"{self.client_id}: no SUBACK for {topic}")
            return self._subacks.pop(mid)

    def publish(self, topic, payload=None, qos=0, retain=False, properties=None):
        """Publish and wait until the flow completes (sent for QoS 0, PUBACK for QoS 1,
        PUBCOMP for QoS 2)."""
        info = self.c.publish(topic, payload, qos, retain, properties)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS, f"publish({topic}) not queued: {info.rc}"
        info.wait_for_publish(TIMEOUT)
        if not info.is_published():
            raise MqttError(f"{self.client_id}: publish to {topic} at QoS {qos} not completed")
        return info

    def expect(self, n: int = 1, timeout: float = TIMEOUT) -> list[mqtt.MQTTMessage]:
        """The next `n` messages, failing if they do not all arrive in time."""
        deadline = time.monotonic() + timeout
        got = []
        while len(got) < n:
            left = deadline - time.monotonic()
            try:
                got.append(self.messages.get(timeout=max(left, 0.001)))
            except queue.Empty:
                raise MqttError(
                    f"{self.client_id}: got {len(got)} of {n} messages within {timeout}s: "
                    f"{[(m.topic, m.payload) for m in got]}"
                ) from None
        return got

    def drain_until(self, topic: str, timeout: float = TIMEOUT) -> list[mqtt.MQTTMessage]:
        """Every message up to and including the first on `topic` (a marker)."""
        return self.drain_until_match(lambda m: m.topic == topic, timeout, what=topic)

    def drain_until_match(self, pred, timeout: float = TIMEOUT, what: str = "a matching message"):
        """Every message up to and including the first for which `pred` is true."""
        deadline = time.monotonic() + timeout
        got = []
        while True:
            left = deadline - time.monotonic()
            try:
                m = self.messages.get(timeout=max(left, 0.001))
            except queue.Empty:
                raise MqttError(
                    f"{self.client_id}: no message on {what} within {timeout}s; got "
                    f"{[(m.topic, m.payload) for m in got]}"
                ) from None
            got.append(m)
            if pred(m):
                return got

    def disconnect(self) -> None:
        """Send DISCONNECT, wait for the socket to close and stop the network thread."""
        if self.c.is_connected():
            self.c.disconnect()
            self._disconnected.wait(TIMEOUT)
        self.close()

    def close(self) -> None:
        if self._loop:
            self.c.loop_stop()
            self._loop = False
        sock = self.c.socket()
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass


class ClientFactory:
    """Makes clients and closes every one of them at the end of a test."""

    def __init__(self) -> None:
        self._clients: list[Client] = []

    def __call__(self, port: int, **kwargs) -> Client:
        c = Client(port, **kwargs)
        self._clients.append(c)
        return c

    def close_all(self) -> None:
        for c in self._clients:
            try:
                c.disconnect()
            except Exception:  # noqa: BLE001 - best effort cleanup
                c.close()


def props(packet_type: int, **values) -> Properties:
    p = Properties(packet_type)
    for k, v in values.items():
        setattr(p, k, v)
    return p


__all__ = [
    "Broker",
    "Client",
    "ClientFactory",
    "MqttError",
    "PacketTypes",
    "Properties",
    "TIMEOUT",
    "HOST",
    "free_port",
    "junction_bin",
    "props",
    "start_broker",
    "unique",
]
