"""The node and its MQTT space through the API, EMQX's paths: status, stats, metrics,
nodes, listeners, subscriptions, topics, publish (and bulk) and the retained messages.
Driven with `requests` against paho-mqtt clients."""

from __future__ import annotations

import base64

import pytest
import requests

from junction_harness import HOST, TIMEOUT, ClientFactory, start_broker, unique
from test_api import ADMIN, VIEWER


@pytest.fixture
def node(tmp_path):
    keys = tmp_path / "api_keys.txt"
    keys.write_text(f"{ADMIN[0]}:{ADMIN[1]}\n{VIEWER[0]}:{VIEWER[1]}:viewer\n")
    config = f'api_key.bootstrap_file = "{keys}"\n'
    b = start_broker(tmp_path / "b", config=config, ws=False)
    b.api = f"http://{HOST}:{b.port('dashboard:http')}/api/v5"
    b.config_text = config
    clients = ClientFactory()
    b.clients = clients
    yield b
    clients.close_all()
    b.stop()


def get(url, auth=VIEWER, **kw):
    return requests.get(url, auth=auth, timeout=TIMEOUT, **kw)


def post(url, body, auth=ADMIN):
    return requests.post(url, json=body, auth=auth, timeout=TIMEOUT)


def test_status_stats_metrics_nodes_and_listeners(node):
    b = node
    c = b.clients(b.tcp, client_id=unique("st")).connect()
    c.subscribe("st/a", qos=1)
    # Status needs no key, as in EMQX.
    r = requests.get(f"{b.api}/status", timeout=TIMEOUT)
    assert r.status_code == 200 and "is started" in r.text and "is running" in r.text
    [per_node] = get(f"{b.api}/stats").json()
    assert per_node["connections.count"] == 1 and per_node["subscriptions.count"] == 1
    assert "node" in per_node
    agg = get(f"{b.api}/stats?aggregate=true").json()
    assert agg["topics.count"] == 1 and "node" not in agg
    assert get(f"{b.api}/stats?aggregate=maybe").status_code == 400
    [metrics] = get(f"{b.api}/metrics").json()
    assert metrics["packets.subscribe.received"] == 1 and metrics["client.connected"] == 1
    [n] = get(f"{b.api}/nodes").json()
    assert n["node_status"] == "running" and n["connections"] == 1
    assert get(f"{b.api}/nodes/{n['node']}").json()["node"] == n["node"]
    assert get(f"{b.api}/nodes/nobody@nowhere").status_code == 404
    [tcp] = get(f"{b.api}/listeners").json()
    assert tcp["id"] == "tcp:default" and tcp["current_connections"] == 1
    assert tcp["bind"].endswith(f":{b.tcp}") and tcp["running"] is True


def test_subscriptions_and_topics_are_listed_with_filters_and_pages(node):
    b = node
    root = unique("subs")
    a = b.clients(b.tcp, client_id=f"{root}-a").connect()
    a.subscribe(f"{root}/+/x", qos=1)
    a.subscribe(f"{root}/b", qos=0)
    z = b.clients(b.tcp, client_id=f"{root}-z").connect()
    z.subscribe(f"$share/g1/{root}/b", qos=2)
    body = get(f"{b.api}/subscriptions").json()
    assert body["meta"]["count"] == 3
    rows = [(s["clientid"], s["topic"], s["qos"]) for s in body["data"]]
    assert rows == [
        (f"{root}-a", f"{root}/+/x", 1),
        (f"{root}-a", f"{root}/b", 0),
        (f"{root}-z", f"$share/g1/{root}/b", 2),
    ]
    # Filters: by client, QoS, share group, and the subscriptions a topic matches.
    assert len(get(f"{b.api}/subscriptions", params={"clientid": f"{root}-a"}).json()["data"]) == 2
    assert [s["qos"] for s in get(f"{b.api}/subscriptions", params={"qos": 2}).json()["data"]] == [2]
    assert [s["clientid"] for s in get(f"{b.api}/subscriptions", params={"share_group": "g1"}).json()["data"]] == [f"{root}-z"]
    matched = get(f"{b.api}/subscriptions", params={"match_topic": f"{root}/q/x"}).json()
    assert [s["topic"] for s in matched["data"]] == [f"{root}/+/x"] and "count" not in matched["meta"]
    # Pages.
    page2 = get(f"{b.api}/subscriptions", params={"limit": 2, "page": 2}).json()
    assert page2["meta"] == {"page": 2, "limit": 2, "hasnext": False, "count": 3}
    assert len(page2["data"]) == 1
    assert get(f"{b.api}/subscriptions", params={"page": 0}).json()["code"] == "INVALID_PARAMETER"
    # Topics: the distinct filters.
    topics = get(f"{b.api}/topics").json()
    assert sorted(t["topic"] for t in topics["data"]) == sorted([f"{root}/+/x", f"{root}/b"])
    assert get(f"{b.api}/topics", params={"topic": f"{root}/b"}).json()["data"][0]["topic"] == f"{root}/b"


def test_publish_through_the_api_reaches_subscribers(node):
    b = node
    topic = unique("pub") + "/t"
    sub = b.clients(b.tcp).connect()
    sub.subscribe(topic, qos=1)
    r = post(f"{b.api}/publish", {"topic": topic, "payload": "hello", "qos": 1})
    assert r.status_code == 200 and "id" in r.json(), r.text
    [m] = sub.expect(1)
    assert m.payload == b"hello" and m.qos == 1
    # Base64, and a user property.
    r = post(f"{b.api}/publish", {"topic": topic, "payload": base64.b64encode(b"\x00\x01").decode(), "payload_encoding": "base64"})
    assert r.status_code == 200
    assert sub.expect(1)[0].payload == b"\x00\x01"
    # Nobody subscribed: 202 with EMQX's reason code.
    r = post(f"{b.api}/publish", {"topic": topic + "/nobody", "payload": "x"})
    assert r.status_code == 202 and r.json()["reason_code"] == 16
    # Refusals: a wildcard topic, a bad QoS, an unknown key; a viewer may not publish.
    for body in ({"topic": "a/+", "payload": "x"}, {"topic": "a", "payload": "x", "qos": 3}, {"topic": "a", "nope": 1}):
        r = post(f"{b.api}/publish", body)
        assert r.status_code == 400 and r.json()["code"] == "BAD_REQUEST", r.text
    assert post(f"{b.api}/publish", {"topic": topic, "payload": "x"}, auth=VIEWER).status_code == 403
    # Bulk: every message checked first.
    r = post(f"{b.api}/publish/bulk", [{"topic": topic, "payload": "b1"}, {"topic": topic, "payload": "b2"}])
    assert r.status_code == 200 and len(r.json()) == 2
    assert [m.payload for m in sub.expect(2)] == [b"b1", b"b2"]
    assert post(f"{b.api}/publish/bulk", {"topic": topic}).status_code == 400


def test_retained_messages_are_listed_read_and_deleted_for_good(node):
    b = node
    root = unique("ret")
    pub = b.clients(b.tcp).connect()
    pub.publish(f"{root}/one", b"first", qos=1, retain=True)
    pub.publish(f"{root}/two", b"second", qos=1, retain=True)
    listed = get(f"{b.api}/mqtt/retainer/messages", params={"topic": f"{root}/#"}).json()
    assert [m["topic"] for m in listed["data"]] == [f"{root}/one", f"{root}/two"]
    enc = requests.utils.quote(f"{root}/one", safe="")
    one = get(f"{b.api}/mqtt/retainer/message/{enc}").json()
    assert base64.b64decode(one["payload"]) == b"first" and one["qos"] == 1
    assert requests.delete(f"{b.api}/mqtt/retainer/message/{enc}", auth=ADMIN, timeout=TIMEOUT).status_code == 204
    assert get(f"{b.api}/mqtt/retainer/message/{enc}").status_code == 404
    assert requests.delete(f"{b.api}/mqtt/retainer/message/{enc}", auth=ADMIN, timeout=TIMEOUT).status_code == 404
    # A new subscriber gets only the one left, and after a restart too.
    sub = b.clients(b.tcp).connect()
    sub.subscribe(f"{root}/#", qos=1)
    [m] = sub.expect(1)
    assert m.topic == f"{root}/two"
    b.clients.close_all()
    b.stop()
    again = start_broker(b.workdir, config=b.config_text, ws=False)
    try:
        api = f"http://{HOST}:{again.port('dashboard:http')}/api/v5"
        listed = get(f"{api}/mqtt/retainer/messages", params={"topic": f"{root}/#"}).json()
        assert [m["topic"] for m in listed["data"]] == [f"{root}/two"]
    finally:
        again.stop()
