"""Gateways and listeners managed through the API (`/api/v5/gateways…`, reference §2.2 and
§2.4), driven with `requests` against paho-mqtt, stomp.py and mqtt-sn-12 clients: changes
take effect at once and survive a restart; a fresh data directory starts from the file."""

from __future__ import annotations

import socket

import pytest
import requests

from junction_harness import HOST, TIMEOUT, ClientFactory, free_port, start_broker, unique
from test_api import ADMIN, VIEWER, eventually
from test_mqttsn import SnFactory
from test_stomp import StompFactory


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def refused(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=TIMEOUT).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.fixture
def api_broker(tmp_path):
    keys = tmp_path / "api_keys.txt"
    keys.write_text(f"{ADMIN[0]}:{ADMIN[1]}\n{VIEWER[0]}:{VIEWER[1]}:viewer\n")
    config = f'api_key.bootstrap_file = "{keys}"\n'
    # A fixed STOMP port, so that it can be seen to close and open again.
    env = {"JUNCTION_GATEWAY__STOMP__LISTENERS__TCP__DEFAULT__BIND": f"{HOST}:{free_port()}"}
    b = start_broker(tmp_path / "b", config=config, env=env, ws=False)
    b.api = f"http://{HOST}:{b.port('dashboard:http')}/api/v5"
    b.config_text = config
    yield b
    b.stop()


def call(method: str, url: str, auth=ADMIN, **kwargs) -> requests.Response:
    return requests.request(method, url, auth=auth, timeout=TIMEOUT, **kwargs)


def test_the_briefs_example_enables_mqttsn_on_a_new_listener(api_broker):
    b = api_broker
    port = free_udp_port()
    # The brief's body, with a free port.
    body = {
        "name": "mqttsn",
        "enable": True,
        "gateway_id": 1,
        "mountpoint": "mqttsn/",
        "listeners": [
            {
                "type": "udp",
                "bind": f"{HOST}:{port}",
                "name": "default",
                "max_conn_rate": 1000,
                "max_connections": 1024000,
            }
        ],
    }
    mqtt = ClientFactory()
    sns = SnFactory(port)
    try:
        r = call("POST", f"{b.api}/gateways", json=body)
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "running"
        assert r.json()["mountpoint"] == "mqttsn/"
        # EMQX 5 takes the same body on PUT /gateways/mqttsn.
        r = call("PUT", f"{b.api}/gateways/mqttsn", json=body)
        assert r.status_code == 204, r.text

        # An MQTT-SN client connects on the new listener; what it publishes reaches MQTT
        # under the new mountpoint.
        sub = mqtt(b.tcp).connect()
        topic = unique("brief") + "/t"
        sub.subscribe("mqttsn/" + topic, qos=1)
        c = sns(client_id=unique("brief-sn"))
        c.send_publish(topic, b"hello from the brief", 1)
        [msg] = sub.expect(1)
        assert msg.topic == "mqttsn/" + topic and msg.payload == b"hello from the brief"

        g = call("GET", f"{b.api}/gateways/mqttsn", auth=VIEWER).json()
        assert g["gateway_id"] == 1 and g["status"] == "running"
        [listener] = g["listeners"]
        assert listener["id"] == "mqttsn:udp:default"
        assert listener["bind"] == f"{HOST}:{port}"
        assert listener["max_connections"] == 1024000
        assert listener["running"] is True
        assert g["current_connections"] == 1
        b.assert_alive()
    finally:
        sns.close_all()
        mqtt.close_all()


def test_gateways_are_listed_looked_up_stopped_and_started(api_broker):
    b = api_broker
    stomps = StompFactory(b.port("stomp:tcp:default"))
    try:
        stomps()
        r = call("GET", f"{b.api}/gateways", auth=VIEWER)
        assert r.status_code == 200, r.text
        by_name = {g["name"]: g for g in r.json()}
        assert set(by_name) == {"stomp", "mqttsn", "coap", "lwm2m"}
        stomp = by_name["stomp"]
        assert stomp["status"] == "running" and "started_at" in stomp
        assert stomp["created_at"].endswith("+00:00")
        assert stomp["current_connections"] == 1
        assert stomp["listeners"] == [
            {"id": "stomp:tcp:default", "type": "tcp", "name": "default", "running": True}
        ]
        assert stomp["node_status"][0]["current_connections"] == 1

        # The status filter; any other value (uppercase included) is a 400.
        assert [g["name"] for g in call("GET", f"{b.api}/gateways?status=stopped").json()] == []
        r = call("GET", f"{b.api}/gateways?status=RUNNING")
        assert r.status_code == 400 and r.json()["code"] == "BAD_REQUEST"

        # One gateway, every default filled in.
        g = call("GET", f"{b.api}/gateways/stomp", auth=VIEWER).json()
        assert g["frame"] == {"max_headers": 10, "max_headers_length": 1024, "max_body_length": 65536}
        assert g["idle_timeout"] == "30s" and g["enable"] is True
        assert g["listeners"][0]["id"] == "stomp:tcp:default"

        # Stop: the listener closes; start: it listens again.
        port = b.port("stomp:tcp:default")
        assert call("PUT", f"{b.api}/gateways/stomp/enable/false", auth=VIEWER).status_code == 403
        r = call("PUT", f"{b.api}/gateways/stomp/enable/false")
        assert r.status_code == 204, r.text
        g = call("GET", f"{b.api}/gateways/stomp").json()
        assert g["status"] == "stopped" and "stopped_at" in g and "started_at" not in g
        assert refused(port)
        assert [g["name"] for g in call("GET", f"{b.api}/gateways?status=stopped").json()] == ["stomp"]
        assert call("PUT", f"{b.api}/gateways/stomp/enable/true").status_code == 204
        assert call("GET", f"{b.api}/gateways/stomp").json()["status"] == "running"
        eventually("STOMP listens again", lambda: not refused(port))
        stomps()

        # Updates: a key the gateway takes applies; a bad value is a 400 naming the key,
        # and changes nothing.
        r = call("PUT", f"{b.api}/gateways/stomp", json={"mountpoint": "st/"})
        assert r.status_code == 204, r.text
        assert call("GET", f"{b.api}/gateways/stomp").json()["mountpoint"] == "st/"
        r = call("PUT", f"{b.api}/gateways/stomp", json={"frame": {"max_headers": "many"}})
        assert r.status_code == 400 and "gateway.stomp.frame.max_headers" in r.json()["message"], r.text
        r = call("PUT", f"{b.api}/gateways/stomp", json={"no_such_key": 1})
        assert r.status_code == 400 and "no_such_key" in r.json()["message"], r.text
        assert call("GET", f"{b.api}/gateways/stomp").json()["frame"]["max_headers"] == 10

        # Errors: an unknown gateway, a bad enable value, a body that is not JSON.
        assert call("GET", f"{b.api}/gateways/carrier_pigeon").status_code == 400
        assert call("PUT", f"{b.api}/gateways/stomp/enable/maybe").status_code == 400
        r = call("PUT", f"{b.api}/gateways/stomp", data=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["code"] == "BAD_REQUEST"
        b.assert_alive()
    finally:
        stomps.close_all()


def test_listeners_are_added_changed_and_removed_live(api_broker):
    b = api_broker
    url = f"{b.api}/gateways/stomp/listeners"
    first, second = free_port(), free_port()
    stomps = StompFactory(first)
    try:
        r = call("POST", url, json={"type": "tcp", "name": "extra", "bind": f"{HOST}:{first}"})
        assert r.status_code == 201, r.text
        assert r.json()["id"] == "stomp:tcp:extra" and r.json()["running"] is True
        conn, _ = stomps()  # accepted at once

        # EMQX's refusals.
        r = call("POST", url, json={"type": "tcp", "name": "extra", "bind": f"{HOST}:{second}"})
        assert r.status_code == 400 and r.json()["message"] == "Listener name has occupied"
        r = call("POST", url, json={"type": "tcp", "name": "nobind"})
        assert r.status_code == 400 and r.json()["message"] == "`bind` is required"
        r = call("POST", url, json={"type": "udp", "name": "u", "bind": 1})
        assert r.status_code == 400 and "gateway.stomp.listeners.udp" in r.json()["message"], r.text

        listed = call("GET", url, auth=VIEWER).json()
        assert [l["id"] for l in listed] == ["stomp:tcp:default", "stomp:tcp:extra"]
        extra = listed[1]
        assert extra["status"]["running"] is True
        assert extra["status"]["current_connections"] == 1
        assert extra["node_status"][0]["status"]["current_connections"] == 1

        # A new address: the listener moves.
        r = call("PUT", f"{url}/stomp:tcp:extra", json={"bind": f"{HOST}:{second}", "max_connections": 10})
        assert r.status_code == 200, r.text
        assert r.json()["bind"] == f"{HOST}:{second}" and r.json()["max_connections"] == 10
        assert refused(first)
        StompFactory(second)()[0].disconnect()
        # The same address with other settings: restarted in place, at once.
        r = call("PUT", f"{url}/stomp:tcp:extra", json={"bind": f"{HOST}:{second}", "max_connections": 20})
        assert r.status_code == 200, r.text
        StompFactory(second)()[0].disconnect()
        r = call("PUT", f"{url}/stomp:tcp:nosuch", json={"bind": 1})
        assert r.status_code == 400 and r.json()["message"] == "Listener stomp:tcp:nosuch not found"

        # Removed: closed, and not found after.
        assert call("DELETE", f"{url}/stomp:tcp:extra").status_code == 204
        assert refused(second)
        r = call("GET", f"{url}/stomp:tcp:extra")
        assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND"
        assert call("GET", f"{url}/not-an-id").status_code == 404
        assert call("DELETE", f"{url}/stomp:tcp:extra").status_code == 404
        # The default listener is untouched.
        assert not refused(b.port("stomp:tcp:default"))
        b.assert_alive()
    finally:
        stomps.close_all()


def test_api_changes_survive_a_restart_and_a_fresh_data_dir_starts_clean(api_broker, tmp_path):
    b = api_broker
    port = free_port()
    assert call("PUT", f"{b.api}/gateways/mqttsn/enable/false").status_code == 204
    r = call("POST", f"{b.api}/gateways/stomp/listeners", json={"type": "tcp", "name": "kept", "bind": f"{HOST}:{port}"})
    assert r.status_code == 201, r.text
    assert call("PUT", f"{b.api}/gateways/stomp", json={"mountpoint": "kept/"}).status_code == 204
    b.stop()

    # The same data directory: every change is back.
    again = start_broker(b.workdir, config=b.config_text, ws=False)
    try:
        api = f"http://{HOST}:{again.port('dashboard:http')}/api/v5"
        by_name = {g["name"]: g for g in call("GET", f"{api}/gateways").json()}
        assert by_name["mqttsn"]["status"] == "stopped"
        assert "mqttsn:udp:default" not in again.listeners
        assert "stomp:tcp:kept" in again.listeners
        assert call("GET", f"{api}/gateways/stomp").json()["mountpoint"] == "kept/"
        StompFactory(port)()[0].disconnect()
    finally:
        again.stop()

    # The same file, a fresh data directory: as the file says.
    fresh = start_broker(tmp_path / "fresh", config=b.config_text, ws=False)
    try:
        api = f"http://{HOST}:{fresh.port('dashboard:http')}/api/v5"
        by_name = {g["name"]: g for g in call("GET", f"{api}/gateways").json()}
        assert by_name["mqttsn"]["status"] == "running"
        assert "stomp:tcp:kept" not in fresh.listeners
        assert call("GET", f"{api}/gateways/stomp").json()["mountpoint"] == ""
    finally:
        fresh.stop()
