"""Central authorization (issue 13): the default acl.conf, and a `file` source checked
for every protocol with each protocol's deny: an MQTT 5 SUBACK 0x87 (paho-mqtt), a STOMP
ERROR "Insufficient permissions for <dest>" (stomp.py), an MQTT-SN PUBACK 0x80
(mqtt-sn-12)."""

from __future__ import annotations

import paho.mqtt.client as mqtt
import pytest
from junction_harness import ClientFactory, start_broker, unique
from mqttsn12.client.MqttSnClientException import MqttSnClientException
from mqttsn12.MqttSnConstants import MqttSnConstants
from test_mqttsn import SnFactory
from test_stomp import StompFactory

NOT_AUTHORIZED = 0x87


def codes(c, topic: str) -> list[int]:
    return [int(code.value) for code in c.subscribe_codes(topic)]


def test_a_default_install_refuses_sys_and_the_bare_hash_to_remote_clients(tmp_path):
    b = start_broker(tmp_path, ws=False)
    clients = ClientFactory()
    try:
        # 127.0.0.2 is another host to the rules (the default allows 127.0.0.1 and ::1).
        remote = clients(b.tcp, protocol=mqtt.MQTTv5, bind_address="127.0.0.2").connect()
        assert codes(remote, "$SYS/#") == [NOT_AUTHORIZED]
        assert codes(remote, "#") == [NOT_AUTHORIZED]
        assert codes(remote, "$SYS/brokers/+/version") == [NOT_AUTHORIZED]
        assert codes(remote, "a/#") == [0]
        local = clients(b.tcp, protocol=mqtt.MQTTv5).connect()
        assert codes(local, "$SYS/#") == [0]
        assert codes(local, "#") == [0]
        # A remote MQTT 3.1.1 client gets the failure code 0x80.
        old = clients(b.tcp, bind_address="127.0.0.2").connect()
        assert [int(c.value) for c in old.subscribe_codes("$SYS/#")] == [0x80]
        b.assert_alive()
    finally:
        clients.close_all()
        b.stop()


ACL = """
%% STOMP clients may not publish to cmd/#; MQTT-SN clients (protocol "mqtt-sn") may not
%% publish to ro/#.
{deny, {protocol, "stomp"}, publish, ["cmd/#"]}.
{deny, {protocol, "mqtt-sn"}, publish, ["ro/#"]}.
%% Nobody subscribes to private/#, except the client whose id it names.
{allow, all, subscribe, ["private/${clientid}/#"]}.
{deny, all, subscribe, ["private/#"]}.
{allow, all}.
"""

CONFIG = """
authorization {
  no_match = deny
  sources = [{type = file, enable = true, path = "acl.conf"}]
}
gateway.stomp.mountpoint = ""
gateway.mqttsn.mountpoint = ""
"""


def test_a_file_source_is_checked_for_every_protocol_with_each_protocols_deny(tmp_path):
    tmp_path.mkdir(exist_ok=True)
    (tmp_path / "acl.conf").write_text(ACL)
    b = start_broker(tmp_path, config=CONFIG, ws=False)
    clients = ClientFactory()
    stomps = StompFactory(b.port("stomp:tcp:default"))
    sns = SnFactory(b.port("mqttsn:udp:default"))
    try:
        watcher = clients(b.tcp, protocol=mqtt.MQTTv5).connect()
        watcher.subscribe("cmd/#")
        watcher.subscribe("ro/#")
        watcher.subscribe("ok/#")

        # MQTT 5: a denied subscribe is 0x87; the file's placeholder lets one client in.
        me = unique("me")
        c = clients(b.tcp, protocol=mqtt.MQTTv5, client_id=me).connect()
        assert codes(c, "private/other/x") == [NOT_AUTHORIZED]
        assert codes(c, f"private/{me}/x") == [0]

        # STOMP: a denied SEND gets EMQX's ERROR and reaches nobody.
        conn, rec = stomps()
        conn.send("cmd/reboot", "from stomp", receipt="r1")
        err = rec.expect_error()
        body = err.body if isinstance(err.body, str) else err.body.decode()
        assert body == "Insufficient permissions for cmd/reboot"
        # MQTT may publish there: the rule names STOMP only.
        clients(b.tcp).connect().publish("cmd/reboot", b"from mqtt", qos=1)
        got = watcher.drain_until("cmd/reboot")
        assert [m.payload for m in got if m.topic == "cmd/reboot"] == [b"from mqtt"]

        # MQTT-SN: a denied PUBLISH gets PUBACK 0x80 and reaches nobody.
        sn = sns()
        normal = MqttSnConstants.TOPIC_TYPE_NORMAL
        topic_id = sn.send_register("ro/x")
        with pytest.raises(MqttSnClientException):
            sn.send_publish_with_id(topic_id, normal, b"from sn", 1)
        ok_id = sn.send_register("ok/x")
        sn.send_publish_with_id(ok_id, normal, b"allowed", 1)
        got = watcher.drain_until("ok/x")
        assert all(m.topic != "ro/x" for m in got), [(m.topic, m.payload) for m in got]

        b.assert_alive()
    finally:
        sns.close_all()
        stomps.close_all()
        clients.close_all()
        b.stop()


def test_no_match_decides_what_no_rule_names(tmp_path):
    (tmp_path / "acl.conf").write_text('{allow, all, subscribe, ["open/#"]}.\n')
    b = start_broker(tmp_path, config="""
authorization {
  no_match = deny
  sources = [{type = file, path = "acl.conf"}]
}
""", ws=False)
    clients = ClientFactory()
    try:
        c = clients(b.tcp, protocol=mqtt.MQTTv5).connect()
        assert codes(c, "open/x") == [0]
        assert codes(c, "closed/x") == [NOT_AUTHORIZED]
        b.assert_alive()
    finally:
        clients.close_all()
        b.stop()
