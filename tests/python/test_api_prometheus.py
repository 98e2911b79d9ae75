"""`GET /api/v5/prometheus/stats`: after a load of known size, the counters equal what the
clients of each protocol sent and received (paho-mqtt, stomp.py, mqtt-sn-12), and the text
parses with the Prometheus client library's own parser."""

from __future__ import annotations

import requests
from prometheus_client.parser import text_string_to_metric_families

from junction_harness import HOST, TIMEOUT, ClientFactory, start_broker, unique
from test_api import ADMIN
from test_mqttsn import SnFactory
from test_stomp import StompFactory

N_MQTT, N_STOMP, N_SN = 20, 7, 5


def scrape(port: int, auth=None) -> requests.Response:
    return requests.get(f"http://{HOST}:{port}/api/v5/prometheus/stats", auth=auth, timeout=TIMEOUT)


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """Every sample by (family, sorted labels); the parser refuses malformed text. (It
    names a counter's samples `<family>_total`; the text has them as the family.)"""
    out = {}
    types = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for s in family.samples:
            key = (family.name, tuple(sorted(s.labels.items())))
            assert key not in out, f"sample {key} given twice"
            out[key] = s.value
    assert types["emqx_messages_received"] == "counter"
    assert types["emqx_connections_count"] == "gauge"
    return out


def test_counters_equal_what_each_protocols_clients_sent_and_received(tmp_path):
    b = start_broker(tmp_path / "b", ws=False)
    mqtt = ClientFactory()
    stomps = StompFactory(b.port("stomp:tcp:default"))
    sns = SnFactory(b.port("mqttsn:udp:default"))
    try:
        root = unique("prom")
        # An MQTT subscriber takes every protocol's messages; a STOMP one takes MQTT's.
        sub = mqtt(b.tcp).connect()
        sub.subscribe(f"{root}/#", qos=1)
        stomp_sub, stomp_rec = stomps()
        stomp_sub.subscribe(f"{root}/mqtt", id="1", ack="auto")
        # Wait for the STOMP subscription to be in place (its receipt).
        stomp_sub.send(f"{root}/sync", "", receipt="sync")
        stomp_rec.wait_receipt("sync")
        sub.expect(1)  # the sync message

        pub = mqtt(b.tcp).connect()
        for i in range(N_MQTT):
            pub.publish(f"{root}/mqtt", f"m{i}".encode(), qos=1)
        for i in range(N_STOMP):
            stomp_sub.send(f"{root}/stomp", f"s{i}")
        sn = sns(client_id=unique("prom-sn"))
        for i in range(N_SN):
            sn.send_publish(f"{root}/sn", f"n{i}".encode(), 1)
        sub.expect(N_MQTT + N_STOMP + N_SN)
        stomp_rec.expect(N_MQTT)

        # No key needed by default, as in EMQX.
        r = scrape(b.port("dashboard:http"))
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
        m = samples(r.text)

        def v(name, **labels):
            return m[(name, tuple(sorted(labels.items())))]

        # MQTT: two connections; the publisher's messages in, every protocol's out.
        assert v("emqx_connections_count") == 2
        assert v("emqx_messages_received") == N_MQTT
        assert v("emqx_packets_publish_received") == N_MQTT
        assert v("emqx_messages_sent") == 1 + N_MQTT + N_STOMP + N_SN
        assert v("emqx_authentication_success_anonymous") == 2
        assert v("emqx_subscriptions_count") == 2
        # STOMP: one client; its SENDs in (the sync one too), MQTT's messages out.
        assert v("junction_gateway_connections_count", gateway="stomp") == 1
        assert v("junction_gateway_messages_received", gateway="stomp") == N_STOMP + 1
        assert v("junction_gateway_packets_received", gateway="stomp", type="send") == N_STOMP + 1
        assert v("junction_gateway_packets_received", gateway="stomp", type="connect") == 1
        assert v("junction_gateway_messages_delivered", gateway="stomp") == N_MQTT
        assert v("junction_gateway_packets_sent", gateway="stomp", type="message") == N_MQTT
        assert v("junction_gateway_authentication_success_anonymous", gateway="stomp") == 1
        # MQTT-SN: one client, its publishes in.
        assert v("junction_gateway_connections_count", gateway="mqttsn") == 1
        assert v("junction_gateway_messages_received", gateway="mqttsn") == N_SN
        assert v("junction_gateway_packets_received", gateway="mqttsn", type="publish") == N_SN
        assert v("junction_gateway_packets_sent", gateway="mqttsn", type="puback") == N_SN
        assert v("junction_gateway_bytes_received", gateway="mqttsn") > 0
        b.assert_alive()
    finally:
        mqtt.close_all()
        stomps.close_all()
        sns.close_all()
        b.stop()


def test_prometheus_basic_auth_can_be_required(tmp_path):
    keys = tmp_path / "api_keys.txt"
    keys.write_text(f"{ADMIN[0]}:{ADMIN[1]}\n")
    b = start_broker(
        tmp_path / "b",
        config=f'api_key.bootstrap_file = "{keys}"\nprometheus.enable_basic_auth = true\n',
        ws=False,
    )
    try:
        port = b.port("dashboard:http")
        r = scrape(port)
        assert r.status_code == 401 and r.json()["code"] == "BAD_API_KEY_OR_SECRET"
        assert scrape(port, auth=ADMIN).status_code == 200
    finally:
        b.stop()
