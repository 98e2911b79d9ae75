"""The management API (`/api/v5`, EMQX's paths, JSON and error codes) driven with
`requests`, a client nobody here wrote, against clients of every protocol: paho-mqtt,
stomp.py and mqtt-sn-12."""

from __future__ import annotations

import time

import paho.mqtt.client as paho
import requests

from junction_harness import HOST, TIMEOUT, ClientFactory, start_broker, unique
from test_mqttsn import SnFactory
from test_stomp import StompFactory

ADMIN = ("admin-key", "s3cret-admin")
VIEWER = ("viewer-key", "s3cret-viewer")


def eventually(what: str, check, timeout: float = TIMEOUT):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        time.sleep(0.05)


def test_api_lists_and_kicks_clients_of_every_protocol(tmp_path):
    keys = tmp_path / "api_keys.txt"
    keys.write_text(f"# bootstrap keys\n{ADMIN[0]}:{ADMIN[1]}\n{VIEWER[0]}:{VIEWER[1]}:viewer\n")
    config = f'api_key.bootstrap_file = "{keys}"\nmqtt.max_subscriptions = 7\n'
    b = start_broker(tmp_path / "b", config=config, ws=False)
    mqtt = ClientFactory()
    stomps = StompFactory(b.port("stomp:tcp:default"))
    sns = SnFactory(b.port("mqttsn:udp:default"))
    try:
        api = f"http://{HOST}:{b.port('dashboard:http')}/api/v5"

        # No key, a wrong secret, an unknown key: 401 with EMQX's code and a challenge.
        for auth in (None, (ADMIN[0], "wrong"), ("nobody", ADMIN[1])):
            r = requests.get(f"{api}/clients", auth=auth, timeout=TIMEOUT)
            assert r.status_code == 401, r.text
            assert r.json()["code"] == "BAD_API_KEY_OR_SECRET"
            assert r.headers["WWW-Authenticate"].startswith("Basic")

        # One client per protocol.
        mqtt_id = unique("api-mqtt")
        m = mqtt(b.tcp, client_id=mqtt_id, protocol=paho.MQTTv5)
        m.connect()
        m.subscribe("api/+", qos=1)
        conn, _rec = stomps()
        sn_id = unique("api-sn")
        sns(client_id=sn_id)

        # MQTT clients: listed with EMQX's client object, by page.
        r = requests.get(f"{api}/clients", auth=VIEWER, timeout=TIMEOUT)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["meta"] == {"page": 1, "limit": 100, "hasnext": False, "count": 1}
        [c] = body["data"]
        assert c["clientid"] == mqtt_id
        assert c["proto_name"] == "MQTT" and c["proto_ver"] == "5"
        assert c["ip_address"] == HOST and c["connected"] is True
        assert c["connected_at"].endswith("+00:00") and "T" in c["connected_at"]
        assert c["recv_pkt"] >= 2  # CONNECT and SUBSCRIBE
        # Each protocol's own bound: mqtt.max_subscriptions, STOMP's 1024, none for MQTT-SN.
        assert c["subscriptions_cnt"] == 1 and c["subscriptions_max"] == 7
        subs = requests.get(f"{api}/clients/{mqtt_id}/subscriptions", auth=VIEWER, timeout=TIMEOUT)
        assert subs.status_code == 200
        assert [(s["topic"], s["qos"]) for s in subs.json()] == [("api/+", 1)]

        # Gateway clients: one of each, with their protocol's name.
        stomp_list = requests.get(f"{api}/gateways/stomp/clients", auth=VIEWER, timeout=TIMEOUT)
        assert stomp_list.status_code == 200, stomp_list.text
        [s] = stomp_list.json()["data"]
        assert s["proto_name"] == "STOMP" and s["subscriptions_max"] == 1024
        sn_client = requests.get(f"{api}/gateways/mqttsn/clients/{sn_id}", auth=VIEWER, timeout=TIMEOUT)
        assert sn_client.status_code == 200, sn_client.text
        assert sn_client.json()["proto_name"] == "MQTT-SN"
        assert sn_client.json()["subscriptions_max"] == "infinity"

        # Filters and paging: a filter leaves `count` out; bad paging is EMQX's 400.
        r = requests.get(
            f"{api}/gateways/mqttsn/clients",
            params={"like_clientid": "api-sn", "limit": 1},
            auth=VIEWER,
            timeout=TIMEOUT,
        )
        assert r.json()["meta"] == {"page": 1, "limit": 1, "hasnext": False}
        assert [c["clientid"] for c in r.json()["data"]] == [sn_id]
        r = requests.get(f"{api}/clients", params={"limit": 0}, auth=VIEWER, timeout=TIMEOUT)
        assert r.status_code == 400 and r.json()["code"] == "INVALID_PARAMETER"
        r = requests.get(f"{api}/clients", params={"no_such_filter": 1}, auth=VIEWER, timeout=TIMEOUT)
        assert r.status_code == 400

        # Time bounds, as ms since the epoch or RFC 3339; the session's creation time too.
        def listed(**params):
            r = requests.get(f"{api}/clients", params=params, auth=VIEWER, timeout=TIMEOUT)
            assert r.status_code == 200, r.text
            return [c["clientid"] for c in r.json()["data"]]

        later = int(time.time() * 1000) + 3_600_000
        assert listed(gte_connected_at=later) == []
        assert listed(lte_connected_at=later) == [mqtt_id]
        assert listed(lte_created_at="2100-01-01T00:00:00Z") == [mqtt_id]
        assert listed(gte_created_at="2100-01-01T00:00:00+08:00") == []
        r = requests.get(f"{api}/clients", params={"gte_created_at": "yesterday"}, auth=VIEWER, timeout=TIMEOUT)
        assert r.status_code == 400 and "gte_created_at" in r.json()["message"]

        # Unknown gateway 400, unknown client 404, unknown path 404: EMQX's error shape.
        r = requests.get(f"{api}/gateways/carrier_pigeon/clients", auth=VIEWER, timeout=TIMEOUT)
        assert r.status_code == 400 and r.json()["code"] == "BAD_REQUEST"
        r = requests.get(f"{api}/gateways/stomp/clients/nobody", auth=VIEWER, timeout=TIMEOUT)
        assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND"
        r = requests.get(f"{api}/no/such/path", auth=VIEWER, timeout=TIMEOUT)
        assert r.status_code == 404

        # A viewer may not kick; an administrator may, and the client is gone.
        r = requests.delete(f"{api}/gateways/stomp/clients/{s['clientid']}", auth=VIEWER, timeout=TIMEOUT)
        assert r.status_code == 403 and r.json()["code"] == "UNAUTHORIZED_ROLE"
        r = requests.delete(f"{api}/gateways/stomp/clients/{s['clientid']}", auth=ADMIN, timeout=TIMEOUT)
        assert r.status_code == 204, r.text
        eventually("the STOMP client is disconnected", lambda: not conn.is_connected())
        eventually(
            "the STOMP client is no longer listed",
            lambda: requests.get(f"{api}/gateways/stomp/clients", auth=VIEWER, timeout=TIMEOUT).json()["data"] == [],
        )
        r = requests.delete(f"{api}/gateways/stomp/clients/{s['clientid']}", auth=ADMIN, timeout=TIMEOUT)
        assert r.status_code == 404

        # Kicking an MQTT client.
        r = requests.delete(f"{api}/clients/{mqtt_id}", auth=ADMIN, timeout=TIMEOUT)
        assert r.status_code == 204
        eventually(
            "the MQTT client is no longer listed",
            lambda: requests.get(f"{api}/clients", auth=VIEWER, timeout=TIMEOUT).json()["data"] == [],
        )
        b.assert_alive()
    finally:
        mqtt.close_all()
        stomps.close_all()
        sns.close_all()
        b.stop()


def test_the_api_can_be_turned_off(tmp_path):
    b = start_broker(
        tmp_path / "b",
        env={"JUNCTION_DASHBOARD__LISTENERS__HTTP__ENABLE": "false"},
        ws=False,
    )
    try:
        assert "dashboard:http" not in b.listeners
    finally:
        b.stop()


def test_the_api_serves_at_most_max_connections_at_once(tmp_path):
    import socket

    keys = tmp_path / "api_keys.txt"
    keys.write_text(f"{ADMIN[0]}:{ADMIN[1]}\n")
    b = start_broker(
        tmp_path / "b",
        config=(
            f'api_key.bootstrap_file = "{keys}"\n'
            "dashboard.listeners.http.max_connections = 1\n"
        ),
        ws=False,
    )
    try:
        port = b.port("dashboard:http")
        api = f"http://{HOST}:{port}/api/v5/clients"
        assert requests.get(api, auth=ADMIN, timeout=TIMEOUT).status_code == 200
        # An idle connection takes the one slot: the next request is not served...
        idle = socket.create_connection((HOST, port), timeout=TIMEOUT)
        eventually("the idle connection holds the slot", lambda: _times_out(api))
        # ...until the idle one goes.
        idle.close()
        assert requests.get(api, auth=ADMIN, timeout=TIMEOUT).status_code == 200
        b.assert_alive()
    finally:
        b.stop()


def _times_out(url: str) -> bool:
    try:
        requests.get(url, auth=ADMIN, timeout=0.5)
    except requests.exceptions.ReadTimeout:
        return True
    return False


def test_subscriptions_are_added_and_removed_through_the_api(tmp_path):
    from test_mqttsn import wait_publish

    keys = tmp_path / "api_keys.txt"
    keys.write_text(f"{ADMIN[0]}:{ADMIN[1]}\n")
    b = start_broker(tmp_path / "b", config=f'api_key.bootstrap_file = "{keys}"\n', ws=False)
    mqtt = ClientFactory()
    stomps = StompFactory(b.port("stomp:tcp:default"))
    sns = SnFactory(b.port("mqttsn:udp:default"))
    try:
        api = f"http://{HOST}:{b.port('dashboard:http')}/api/v5"
        pub = mqtt(b.tcp).connect()
        root = unique("apisub")

        def post(path, body):
            return requests.post(f"{api}{path}", json=body, auth=ADMIN, timeout=TIMEOUT)

        # STOMP: the subscription needs an id; messages then arrive under it.
        conn, rec = stomps()
        [s] = requests.get(f"{api}/gateways/stomp/clients", auth=ADMIN, timeout=TIMEOUT).json()["data"]
        base = f"/gateways/stomp/clients/{s['clientid']}/subscriptions"
        r = post(base, {"topic": f"{root}/stomp"})
        assert r.status_code == 400, r.text
        r = post(base, {"topic": f"{root}/stomp", "qos": 1, "sub_props": {"subid": "s9"}})
        assert r.status_code == 201, r.text
        assert r.json()["topic"] == f"{root}/stomp" and r.json()["subid"] == "s9"
        assert post(base, {"sub_props": {"subid": "s10"}}).json()["message"] == "Miss topic property"
        pub.publish(f"{root}/stomp", b"to stomp", qos=1)
        [frame] = rec.expect(1)
        assert frame.headers["subscription"] == "s9" and frame.body == "to stomp"
        enc = requests.utils.quote(f"{root}/stomp", safe="")
        r = requests.delete(f"{api}{base}/{enc}", auth=ADMIN, timeout=TIMEOUT)
        assert r.status_code == 204, r.text
        r = requests.delete(f"{api}{base}/{enc}", auth=ADMIN, timeout=TIMEOUT)
        assert r.status_code == 404 and r.json()["message"] == "Resource not found"

        # MQTT-SN.
        sn_id = unique("apisub-sn")
        sn = sns(client_id=sn_id)
        r = post(f"/gateways/mqttsn/clients/{sn_id}/subscriptions", {"topic": f"{root}/sn", "qos": 0})
        assert r.status_code == 201, r.text
        pub.publish(f"{root}/sn", b"to sn", qos=0)
        assert wait_publish(sn).get_data() == b"to sn"

        # MQTT, EMQX's subscribe and unsubscribe.
        mqtt_id = unique("apisub-mqtt")
        m = mqtt(b.tcp, client_id=mqtt_id).connect()
        r = post(f"/clients/{mqtt_id}/subscribe", {"topic": f"{root}/mqtt", "qos": 1})
        assert r.status_code == 201, r.text
        pub.publish(f"{root}/mqtt", b"to mqtt", qos=1)
        assert m.expect(1)[0].payload == b"to mqtt"
        assert post(f"/clients/{mqtt_id}/unsubscribe", {"topic": f"{root}/mqtt"}).status_code == 204
        subs = requests.get(f"{api}/clients/{mqtt_id}/subscriptions", auth=ADMIN, timeout=TIMEOUT).json()
        assert subs == []

        # Unknown clients; bad filters.
        assert post("/clients/nobody/subscribe", {"topic": "x"}).status_code == 404
        assert post(f"/clients/{mqtt_id}/subscribe", {"topic": "a/#/b"}).status_code == 400
        b.assert_alive()
    finally:
        mqtt.close_all()
        stomps.close_all()
        sns.close_all()
        b.stop()
