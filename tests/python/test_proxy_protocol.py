"""PROXY protocol v1 and v2 on every TCP listener type (tcp, ssl, ws, wss, and the STOMP
gateway's tcp and ssl), with the headers written by HAProxy from Debian in front of the
broker. Clients connect to HAProxy from their own loopback addresses (127.0.0.7, …), so
the address the broker reports can only have come from the header."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import stomp

from junction_harness import HOST, TIMEOUT, Broker, Client, MqttError, free_port, start_broker, unique
from test_tls import Pki, make_pki

CLIENT_IP = "127.0.0.7"
DENIED_IP = "127.0.0.9"

# (frontend name, junction listener id, transport, header version, tls)
# (frontend name, junction listener id, transport, header version, tls): every listener
# type behind both header versions.
MQTT_ROUTES = [
    (f"{kind}_v{v}", f"{kind}:proxied", transport, v, tls)
    for kind, transport, tls in [
        ("tcp", "tcp", False),
        ("ssl", "tcp", True),
        ("ws", "websockets", False),
        ("wss", "websockets", True),
    ]
    for v in (1, 2)
]
STOMP_ROUTES = [
    (f"stomp_{kind}_v{v}", f"stomp:{kind}:proxied", v, kind == "ssl")
    for kind in ("tcp", "ssl")
    for v in (1, 2)
]
# The access-rule check through one header version per listener type.
DENY_ROUTES = [r for r in MQTT_ROUTES if r[3] == (1 if r[0].startswith(("tcp", "ws_")) else 2)]


def haproxy_bin() -> str:
    path = shutil.which("haproxy") or "/usr/sbin/haproxy"
    assert Path(path).exists(), "haproxy is not installed (scripts/test.sh installs it)"
    return path


class Proxied:
    def __init__(self, broker: Broker, frontends: dict[str, int], pki: Pki):
        self.broker = broker
        self.frontends = frontends
        self.pki = pki


@pytest.fixture(scope="module")
def proxied(tmp_path_factory):
    pki = make_pki(tmp_path_factory.mktemp("pki-proxy"))
    ports = {name: free_port() for name in ("tcp", "ssl", "ws", "wss", "plain", "stcp", "sssl")}
    rules = 'access_rules = ["deny 127.0.0.9", "allow all"]'
    tls = f'ssl_options {{ certfile = "{pki.server_cert}", keyfile = "{pki.server_key}" }}'
    proxy = "proxy_protocol = true, proxy_protocol_timeout = 3s"
    config = f"""
listeners.tcp.proxied {{ bind = "{HOST}:{ports['tcp']}", {proxy}, {rules} }}
listeners.tcp.plain {{ bind = "{HOST}:{ports['plain']}" }}
listeners.ssl.proxied {{ bind = "{HOST}:{ports['ssl']}", {proxy}, {rules}, {tls} }}
listeners.ws.proxied {{ bind = "{HOST}:{ports['ws']}", {proxy}, {rules} }}
listeners.wss.proxied {{ bind = "{HOST}:{ports['wss']}", {proxy}, {rules}, {tls} }}
gateway.stomp.listeners.tcp.proxied {{ bind = "{HOST}:{ports['stcp']}", {proxy}, {rules} }}
gateway.stomp.listeners.ssl.proxied {{ bind = "{HOST}:{ports['sssl']}", {proxy}, {rules}, {tls} }}
"""
    workdir = tmp_path_factory.mktemp("junction-proxy")
    broker = start_broker(workdir, config=config)
    backend = {
        "tcp:proxied": ports["tcp"],
        "ssl:proxied": ports["ssl"],
        "ws:proxied": ports["ws"],
        "wss:proxied": ports["wss"],
        "stomp:tcp:proxied": ports["stcp"],
        "stomp:ssl:proxied": ports["sssl"],
    }
    routes = [(n, l, v) for n, l, _, v, _ in MQTT_ROUTES] + [(n, l, v) for n, l, v, _ in STOMP_ROUTES]
    frontends = {name: free_port() for name, _, _ in routes}
    cfg = [
        "global",
        "  maxconn 200",
        "defaults",
        "  mode tcp",
        "  timeout connect 5s",
        "  timeout client 60s",
        "  timeout server 60s",
    ]
    for name, listener, version in routes:
        send = "send-proxy" if version == 1 else "send-proxy-v2"
        cfg += [
            f"frontend fe_{name}",
            f"  bind {HOST}:{frontends[name]}",
            f"  default_backend be_{name}",
            f"backend be_{name}",
            f"  server junction {HOST}:{backend[listener]} {send}",
        ]
    cfg_path = workdir / "haproxy.cfg"
    cfg_path.write_text("\n".join(cfg) + "\n")
    hap = subprocess.Popen(
        [haproxy_bin(), "-f", str(cfg_path), "-db"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + TIMEOUT * 2
        for port in frontends.values():
            while True:
                try:
                    socket.create_connection((HOST, port), timeout=1).close()
                    break
                except OSError:
                    if hap.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"haproxy did not start: {hap.stderr.read()}")
                    time.sleep(0.05)
        yield Proxied(broker, frontends, pki)
    finally:
        hap.terminate()
        hap.wait(timeout=TIMEOUT)
        alive = broker.proc.poll() is None
        broker.stop()
        assert alive, f"broker died during the tests:\n{broker.stderr_tail()}"


def watcher(proxied: Proxied, topic: str) -> Client:
    w = Client(proxied.broker.port("tcp:plain"), client_id=unique("watch"))
    w.connect()
    w.subscribe(topic)
    return w


def event_of(w: Client, client_id: str) -> dict:
    msg = w.drain_until_match(lambda m: f"/clients/{client_id}/connected" in m.topic)[-1]
    return json.loads(msg.payload)


class BoundClient(Client):
    """A paho client whose socket leaves from a chosen loopback address."""

    def __init__(self, port: int, source: str, **kwargs):
        super().__init__(port, **kwargs)
        self.source = source

    def connect(self, **kwargs):
        self.c.connect_async(self.host, self.port, keepalive=30, bind_address=self.source)
        self._connected.clear()
        self.c.loop_start()
        self._loop = True
        if not self._connected.wait(TIMEOUT) or self.connack is None:
            raise MqttError(f"{self.client_id}: no CONNACK (reason {self.disconnect_reason})")
        if self.connack[0].is_failure:
            raise MqttError(f"{self.client_id}: refused {self.connack[0]}")
        return self


def mqtt_client(proxied: Proxied, name: str, transport: str, tls: bool, source: str) -> BoundClient:
    kwargs = {"transport": transport, "client_id": unique(name)}
    if tls:
        kwargs["tls"] = {"ca_certs": str(proxied.pki.ca)}
    return BoundClient(proxied.frontends[name], source, **kwargs)


@pytest.mark.parametrize("name,listener,transport,version,tls", MQTT_ROUTES, ids=[r[0] for r in MQTT_ROUTES])
def test_mqtt_listeners_report_the_address_in_the_proxy_header(proxied, name, listener, transport, version, tls):
    w = watcher(proxied, "$SYS/brokers/+/clients/+/connected")
    c = mqtt_client(proxied, name, transport, tls, CLIENT_IP)
    try:
        c.connect()
        ev = event_of(w, c.client_id)
        assert ev["ipaddress"] == CLIENT_IP, ev
        # The connection works end to end through the proxy.
        c.subscribe("proxied/echo")
        w.publish("proxied/echo", b"through")
        assert c.expect(1)[0].payload == b"through"
    finally:
        c.close()
        w.disconnect()


@pytest.mark.parametrize("name,listener,transport,version,tls", DENY_ROUTES, ids=[r[0] for r in DENY_ROUTES])
def test_access_rules_judge_the_address_in_the_proxy_header(proxied, name, listener, transport, version, tls):
    c = mqtt_client(proxied, name, transport, tls, DENIED_IP)
    try:
        with pytest.raises((MqttError, OSError, ssl.SSLError)):
            c.connect()
    finally:
        c.close()


# What each listener's client would send first, where the header should be.
FIRST_BYTES = {
    "tcp:proxied": bytes.fromhex("101000044d5154540402003c0004616263ff"),  # MQTT CONNECT
    "ssl:proxied": bytes.fromhex("16030100"),  # a TLS record header
    "ws:proxied": b"GET /mqtt HTTP/1.1\r\nHost: x\r\n\r\n",
    "wss:proxied": bytes.fromhex("16030100"),
    "stomp:tcp:proxied": b"CONNECT\naccept-version:1.2\n\n\x00",
    "stomp:ssl:proxied": bytes.fromhex("16030100"),
}


@pytest.mark.parametrize("listener", list(FIRST_BYTES))
def test_a_connection_without_a_proxy_header_is_refused(proxied, listener):
    port = proxied.broker.port(listener)
    with socket.create_connection((HOST, port), timeout=TIMEOUT) as s:
        s.sendall(FIRST_BYTES[listener])
        s.settimeout(TIMEOUT)
        try:
            data = s.recv(100)
        except ConnectionResetError:
            data = b""
        assert data == b"", f"{listener} answered {data!r}"


def stomp_connect(proxied: Proxied, name: str, tls: bool, source: str) -> stomp.Connection:
    conn = stomp.Connection12(
        [(HOST, proxied.frontends[name])],
        bind_host_port=(source, 0),
        heartbeats=(0, 0),
        auto_content_length=True,
    )
    if tls:
        conn.set_ssl(for_hosts=[(HOST, proxied.frontends[name])], ca_certs=str(proxied.pki.ca))
    conn.connect(wait=True, headers={"client-id": unique("st")})
    return conn


@pytest.mark.parametrize("name,listener,version,tls", STOMP_ROUTES, ids=[r[0] for r in STOMP_ROUTES])
def test_stomp_listeners_report_the_address_in_the_proxy_header(proxied, name, listener, version, tls):
    w = watcher(proxied, "$SYS/brokers/+/gateway/stomp/clients/+/connected")
    conn = stomp_connect(proxied, name, tls, CLIENT_IP)
    try:
        msg = w.drain_until_match(lambda m: m.topic.endswith("/connected"))[-1]
        ev = json.loads(msg.payload)
        assert ev["ipaddress"] == CLIENT_IP, ev
    finally:
        conn.disconnect()
        w.disconnect()
    with pytest.raises(Exception):
        stomp_connect(proxied, name, tls, DENIED_IP)
