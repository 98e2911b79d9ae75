"""The LwM2M gateway: a scripted device (lwm2m_device.py, CoAP by aiocoap) for every
command type and edge case, the device client of the npm package lwm2m-node-lib run by
Node, and paho-mqtt on the application side."""

from __future__ import annotations

import json
import queue
import threading
import time

import requests

from junction_harness import HOST, TIMEOUT, ClientFactory, start_broker, unique
from lwm2m_device import (ACK, CON, LINK, NON, OMA_JSON, SENML_JSON, TEXT, TLV, Code, Device,
                          tlv, tlv_int, tlv_str)
from test_api import ADMIN


def lwm2m_broker(tmp_path, extra: str = "", env: dict | None = None):
    keys = tmp_path / "api_keys.txt"
    keys.write_text(f"{ADMIN[0]}:{ADMIN[1]}\n")
    b = start_broker(tmp_path / "b", config=f'api_key.bootstrap_file = "{keys}"\n' + extra, env=env, ws=False)
    b.lwm2m = b.port("lwm2m:udp:default")
    b.api = f"http://{HOST}:{b.port('dashboard:http')}/api/v5"
    return b


def eventually(what: str, check, timeout: float = TIMEOUT):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        time.sleep(0.05)


def js(msg) -> dict:
    return json.loads(msg.payload)


class App:
    """The application: an MQTT client that commands devices and reads their events."""

    def __init__(self, clients, port: int, ep: str):
        self.ep = ep
        self.m = clients(port).connect()
        self.m.subscribe(f"lwm2m/{ep}/up/#", qos=1)
        self.m.subscribe(f"lwm2m/{ep}/v1/up/dm", qos=1)

    def command(self, msg_type: str, data: dict, **extra) -> None:
        body = {"reqID": extra.pop("reqID", 1), "msgType": msg_type, "data": data, **extra}
        self.m.publish(f"lwm2m/{self.ep}/dn/cmd", json.dumps(body), qos=1)

    def next(self, msg_type: str | None = None) -> tuple[str, dict]:
        def match(m):
            return msg_type is None or js(m).get("msgType") == msg_type
        m = self.m.drain_until_match(match, what=f"a {msg_type} message")[-1]
        return m.topic, js(m)


def test_lwm2m_register_update_deregister(tmp_path):
    b = lwm2m_broker(tmp_path, 'gateway.lwm2m.update_msg_publish_condition = always\n')
    clients = ClientFactory()
    ep = unique("dev")
    d = Device(b.lwm2m, ep)
    try:
        app = App(clients, b.tcp, ep)
        r = d.register(lt=345, query=["b=U", "apn=psmA.eDRX0.ctnb", "custom=x"])
        assert r.code == Code.CREATED, r
        assert list(r.opt.location_path) == ["rd", ep]
        topic, event = app.next("register")
        assert topic == f"lwm2m/{ep}/up/resp"
        data = event["data"]
        assert data["ep"] == ep and data["lt"] == 345 and data["lwm2m"] == "1.1"
        assert data["alternatePath"] == "/" and data["objectList"] == ["/1/0", "/3/0", "/5/0"]
        assert data["custom"] == "x" and data["apn"] == "psmA.eDRX0.ctnb"

        # The command topic is subscribed under the mountpoint.
        r = requests.get(f"{b.api}/gateways/lwm2m/clients/{ep}/subscriptions", auth=ADMIN, timeout=TIMEOUT)
        assert r.status_code == 200, r.text
        assert [s["topic"] for s in r.json()] == [f"lwm2m/{ep}/dn/#"]

        r = d.update(query=["lt=789"])
        assert r.code == Code.CHANGED
        _, event = app.next("update")
        assert event["data"]["lt"] == 789 and event["data"]["objectList"] == ["/1/0", "/3/0", "/5/0"]
        r = d.update(objects=b"</3/0>,</4/0>")
        assert r.code == Code.CHANGED
        _, event = app.next("update")
        assert event["data"]["objectList"] == ["/3/0", "/4/0"]

        # A re-registration keeps the client and publishes a register event again.
        r = d.register(lt=100)
        assert r.code == Code.CREATED
        _, event = app.next("register")
        assert event["data"]["lt"] == 100

        # A wrong location is 4.04.
        r = d.request(Code.POST, ["rd", "other"])
        assert r.code == Code.NOT_FOUND
        r = d.deregister()
        assert r.code == Code.DELETED

        def gone():
            r = requests.get(f"{b.api}/gateways/lwm2m/clients/{ep}", auth=ADMIN, timeout=TIMEOUT)
            return r.status_code == 404
        eventually("the client is gone", gone)
        # Nothing is registered at this address now.
        assert d.update().code == Code.NOT_FOUND
    finally:
        d.close()
        clients.close_all()
        b.stop()


def test_lwm2m_registration_is_refused_without_endpoint_or_with_a_wrong_version(tmp_path):
    b = lwm2m_broker(tmp_path)
    d = Device(b.lwm2m, unique("dev"))
    try:
        r = d.request(Code.POST, ["rd"], ["lt=60"], b"</3/0>")
        assert r.code == Code.BAD_REQUEST
        r = d.register(version="8.3")
        assert r.code == Code.BAD_REQUEST and b"version" in r.payload
        r = d.request(Code.POST, ["rd"], [f"ep={d.ep}"], b"</3/0>")
        assert r.code == Code.BAD_REQUEST
        # Registered with a version of LwM2M 1.2.
        assert d.register(version="1.2").code == Code.CREATED
    finally:
        d.close()
        b.stop()


def test_lwm2m_commands_with_tlv_text_json_and_senml(tmp_path):
    b = lwm2m_broker(tmp_path)
    clients = ClientFactory()
    ep = unique("dev")
    d = Device(b.lwm2m, ep)
    try:
        app = App(clients, b.tcp, ep)
        assert d.register().code == Code.CREATED
        app.next("register")

        # read of an object instance, answered in TLV: typed by the Device object.
        app.command("read", {"path": "/3/0"}, reqID=7, custom="kept")
        req = d.next_request()
        assert req.code == Code.GET and list(req.opt.uri_path) == ["3", "0"]
        d.answer(req, Code.CONTENT, tlv_str(0, "Junction") + tlv_int(9, 95) + tlv(3, 16, b"U"), TLV)
        topic, resp = app.next("read")
        assert topic == f"lwm2m/{ep}/up/resp"
        assert resp["reqID"] == 7 and resp["custom"] == "kept"
        assert resp["data"]["code"] == "2.05" and resp["data"]["codeMsg"] == "content"
        assert resp["data"]["reqPath"] == "/3/0"
        assert resp["data"]["content"] == [
            {"path": "/3/0/0", "value": "Junction"},
            {"path": "/3/0/9", "value": 95},
            {"path": "/3/0/16", "value": "U"},
        ]

        # read of a resource as plain text.
        app.command("read", {"path": "/3/0/9"})
        req = d.next_request()
        d.answer(req, Code.CONTENT, b"42", TEXT)
        _, resp = app.next("read")
        assert resp["data"]["content"] == [{"path": "/3/0/9", "value": 42}]

        # read answered in SenML JSON and in OMA JSON.
        app.command("read", {"path": "/3/0", "contentFormat": "senml+json"})
        req = d.next_request()
        assert req.opt.accept == SENML_JSON
        d.answer(req, Code.CONTENT, b'[{"bn":"/3/0/","n":"0","vs":"J"},{"n":"9","v":80}]', SENML_JSON)
        _, resp = app.next("read")
        assert resp["data"]["content"] == [{"path": "/3/0/0", "value": "J"}, {"path": "/3/0/9", "value": 80}]
        app.command("read", {"path": "/3/0"})
        req = d.next_request()
        d.answer(req, Code.CONTENT, b'{"bn":"/3/0/","e":[{"n":"9","v":81}]}', OMA_JSON)
        _, resp = app.next("read")
        assert resp["data"]["content"] == [{"path": "/3/0/9", "value": 81}]

        # read-composite: a FETCH with the paths in SenML.
        app.command("read-composite", {"paths": ["/3/0/9", "/1/0/1"]})
        req = d.next_request()
        assert req.code == Code.FETCH and req.opt.content_format == SENML_JSON
        assert json.loads(req.payload) == [{"n": "/3/0/9"}, {"n": "/1/0/1"}]
        d.answer(req, Code.CONTENT, b'[{"n":"/3/0/9","v":70},{"n":"/1/0/1","v":300}]', SENML_JSON)
        _, resp = app.next("read-composite")
        assert resp["data"]["content"] == [{"path": "/3/0/9", "value": 70}, {"path": "/1/0/1", "value": 300}]

        # write of one resource: PUT with TLV.
        app.command("write", {"path": "/3/0/13", "type": "Time", "value": 1700000000})
        req = d.next_request()
        assert req.code == Code.PUT and list(req.opt.uri_path) == ["3", "0", "13"]
        assert req.opt.content_format == TLV
        assert req.payload == tlv(3, 13, (1700000000).to_bytes(4, "big"))
        d.answer(req, Code.CHANGED)
        _, resp = app.next("write")
        assert resp["data"] == {"reqPath": "/3/0/13", "code": "2.04", "codeMsg": "changed"}

        # batch write on an instance: POST; in SenML JSON when asked.
        app.command("write", {"basePath": "/3/0", "content": [
            {"path": "14", "type": "String", "value": "+02"},
            {"path": "15", "type": "String", "value": "Europe/Paris"}]})
        req = d.next_request()
        assert req.code == Code.POST and list(req.opt.uri_path) == ["3", "0"]
        assert req.payload == tlv_str(14, "+02") + tlv_str(15, "Europe/Paris")
        d.answer(req, Code.CHANGED)
        app.next("write")
        app.command("write", {"path": "/3/0/14", "type": "String", "value": "+01", "contentFormat": "senml+json"})
        req = d.next_request()
        assert req.opt.content_format == SENML_JSON
        assert json.loads(req.payload) == [{"n": "/3/0/14", "vs": "+01"}]
        d.answer(req, Code.BAD_REQUEST)
        _, resp = app.next("write")
        assert resp["data"]["code"] == "4.00" and resp["data"]["codeMsg"] == "bad_request"

        # execute with arguments, create, delete, discover, write-attr.
        app.command("execute", {"path": "/3/0/4", "args": "2,7"})
        req = d.next_request()
        assert req.code == Code.POST and req.payload == b"2,7" and req.opt.content_format == TEXT
        d.answer(req, Code.CHANGED)
        assert app.next("execute")[1]["data"]["code"] == "2.04"
        app.command("create", {"basePath": "/5", "content": [{"path": "0/1", "type": "String", "value": "coap://fw"}]})
        req = d.next_request()
        assert req.code == Code.POST and list(req.opt.uri_path) == ["5"]
        assert req.payload == tlv(0, 0, tlv_str(1, "coap://fw"))
        d.answer(req, Code.CREATED)
        assert app.next("create")[1]["data"]["codeMsg"] == "created"
        app.command("delete", {"path": "/5/0"})
        req = d.next_request()
        assert req.code == Code.DELETE and list(req.opt.uri_path) == ["5", "0"]
        d.answer(req, Code.DELETED)
        assert app.next("delete")[1]["data"]["code"] == "2.02"
        app.command("discover", {"path": "/3/0"})
        req = d.next_request()
        assert req.opt.accept == LINK
        d.answer(req, Code.CONTENT, b"</3/0>,</3/0/1>,</3/0/9>;pmin=10", LINK)
        _, resp = app.next("discover")
        assert resp["data"]["content"] == ["</3/0>", "</3/0/1>", "</3/0/9>;pmin=10"]
        app.command("write-attr", {"path": "/3/0/9", "pmin": "1", "pmax": "5", "gt": "50"})
        req = d.next_request()
        assert req.code == Code.PUT and list(req.opt.uri_query) == ["pmin=1", "pmax=5", "gt=50"]
        d.answer(req, Code.CHANGED)
        assert app.next("write-attr")[1]["data"]["code"] == "2.04"

        # A command that cannot be sent is answered 4.00 with why; a value the device
        # sends that does not decode is a 4.00 result too.
        app.command("write", {"path": "/3/0/13", "type": "Nonsense", "value": 1}, reqID=99)
        _, resp = app.next("write")
        assert resp["reqID"] == 99 and resp["data"]["code"] == "4.00" and resp["data"]["error"]
        app.command("read", {"path": "/3/0"})
        req = d.next_request()
        d.answer(req, Code.CONTENT, b"\xc8\x00\xff", TLV)
        _, resp = app.next("read")
        assert resp["data"]["code"] == "4.00"
        app.command("read", {"path": "/3/0"})
        req = d.next_request()
        d.answer(req, Code.CONTENT, b'[{"n":', SENML_JSON)
        assert app.next("read")[1]["data"]["code"] == "4.00"
    finally:
        d.close()
        clients.close_all()
        b.stop()


def test_lwm2m_separate_responses_observe_and_notify(tmp_path):
    b = lwm2m_broker(tmp_path)
    clients = ClientFactory()
    ep = unique("dev")
    d = Device(b.lwm2m, ep)
    try:
        app = App(clients, b.tcp, ep)
        assert d.register().code == Code.CREATED
        app.next("register")

        # An empty ACK, then the response separately: "ack" first, then the result.
        app.command("read", {"path": "/3/0/9"}, reqID=3)
        req = d.next_request()
        d.empty_ack(req)
        _, ack = app.next("ack")
        assert ack["reqID"] == 3 and ack["data"]["reqPath"] == "/3/0/9"
        sep = d.separate(req, Code.CONTENT, b"77", TEXT)
        assert d.recv().mtype == ACK  # the gateway acknowledges the separate response
        _, resp = app.next("read")
        assert resp["data"]["content"] == [{"path": "/3/0/9", "value": 77}]
        del sep

        # observe: the first answer on the response topic, notifications on notify.
        app.command("observe", {"path": "/3/0/9"}, reqID=5)
        req = d.next_request()
        assert req.opt.observe == 0
        d.answer(req, Code.CONTENT, b"10", TEXT, observe=1)
        topic, resp = app.next("observe")
        assert topic.endswith("/up/resp") and resp["data"]["content"][0]["value"] == 10
        d.separate(req, Code.CONTENT, b"11", TEXT, observe=2, mtype=NON)
        topic, n = app.next("notify")
        assert topic == f"lwm2m/{ep}/up/notify" and n["seqNum"] == 2 and n["reqID"] == 5
        assert n["data"]["content"] == [{"path": "/3/0/9", "value": 11}]
        d.separate(req, Code.CONTENT, b"12", TEXT, observe=3, mtype=CON)
        assert d.recv().mtype == ACK
        _, n = app.next("notify")
        assert n["seqNum"] == 3

        # Firmware update (object 5) notifications go to v1/up/dm.
        app.command("observe", {"path": "/5/0/3"})
        req5 = d.next_request()
        d.answer(req5, Code.CONTENT, b"1", TEXT, observe=1)
        app.next("observe")
        d.separate(req5, Code.CONTENT, b"2", TEXT, observe=2, mtype=NON)
        topic, n = app.next("notify")
        assert topic == f"lwm2m/{ep}/v1/up/dm"

        # cancel-observe: GET Observe 1 with the observation's token.
        app.command("cancel-observe", {"path": "/3/0/9"})
        cancel = d.next_request()
        assert cancel.opt.observe == 1 and cancel.token == req.token
        d.answer(cancel, Code.CONTENT, b"12", TEXT)
        app.next("cancel-observe")
        # A notification for it now is refused with a Reset.
        d.separate(req, Code.CONTENT, b"13", TEXT, observe=4, mtype=CON)
        from lwm2m_device import RST
        assert d.recv().mtype == RST

        # A Reset to a command publishes coap_reset.
        app.command("read", {"path": "/3/0/1"})
        req = d.next_request()
        from aiocoap import Message
        d.send(Message(mtype=RST, code=Code.EMPTY, mid=req.mid, token=b""))
        assert app.next("coap_reset")[1]["data"]["reqPath"] == "/3/0/1"
    finally:
        d.close()
        clients.close_all()
        b.stop()


def test_lwm2m_clients_api_shows_endpoint_and_lifetime(tmp_path):
    b = lwm2m_broker(tmp_path, 'gateway.lwm2m { idle_timeout = "5s", enable_stats = true }\n')
    clients = ClientFactory()
    ep = unique("dev")
    d = Device(b.lwm2m, ep)
    try:
        app = App(clients, b.tcp, ep)
        assert d.register(lt=345, query=["device_id=dev-id-1", "imei=imei-1"]).code == Code.CREATED
        app.next("register")
        r = requests.get(f"{b.api}/gateways/lwm2m/clients", params={"endpoint_name": ep}, auth=ADMIN, timeout=TIMEOUT)
        assert r.status_code == 200, r.text
        [c] = r.json()["data"]
        # device_id is the client id, imei the user name (EMQX's identity rules).
        assert c["clientid"] == "dev-id-1" and c["username"] == "imei-1"
        assert c["endpoint_name"] == ep and c["lifetime"] == 345 and c["keepalive"] == 345
        assert c["proto_name"] == "LwM2M" and c["proto_ver"] == "1.1"
        assert c["mountpoint"] == f"lwm2m/{ep}/"
        for q in ({"like_endpoint_name": ep[:-2]}, {"gte_lifetime": 345, "lte_lifetime": 345}):
            got = requests.get(f"{b.api}/gateways/lwm2m/clients", params=q, auth=ADMIN, timeout=TIMEOUT).json()
            assert [x["clientid"] for x in got["data"]] == ["dev-id-1"], q
        got = requests.get(f"{b.api}/gateways/lwm2m/clients", params={"gte_lifetime": 346}, auth=ADMIN, timeout=TIMEOUT)
        assert got.json()["data"] == []

        # §2.6: read, write and observe through the API are commands to the device;
        # lookup answers with the latest result.
        api = f"{b.api}/gateways/lwm2m/clients/dev-id-1"
        r = requests.get(f"{api}/lookup", params={"path": "/3/0/9", "action": "read"}, auth=ADMIN, timeout=TIMEOUT)
        assert r.status_code == 200 and r.json()["code"] == "6.01" and r.json()["codeMsg"] == "reply_not_received"
        r = requests.post(f"{api}/read", params={"path": "/3/0/9"}, auth=ADMIN, timeout=TIMEOUT)
        assert r.status_code == 204, r.text
        req = d.next_request()
        assert req.code == Code.GET and list(req.opt.uri_path) == ["3", "0", "9"]
        d.answer(req, Code.CONTENT, b"64", TEXT)
        app.next("read")
        r = requests.get(f"{api}/lookup", params={"path": "/3/0/9", "action": "read"}, auth=ADMIN, timeout=TIMEOUT)
        assert r.json() == {"clientid": "dev-id-1", "path": "/3/0/9", "action": "read", "code": "2.05",
                            "codeMsg": "content", "content": [{"path": "/3/0/9", "value": 64}]}
        r = requests.post(f"{api}/write", params={"path": "/3/0/14", "type": "String", "value": "+02"},
                          auth=ADMIN, timeout=TIMEOUT)
        assert r.status_code == 204
        req = d.next_request()
        assert req.code == Code.PUT and req.payload == tlv_str(14, "+02")
        d.answer(req, Code.CHANGED)
        app.next("write")
        r = requests.post(f"{api}/observe", params={"path": "/3/0/9", "enable": "true"}, auth=ADMIN, timeout=TIMEOUT)
        assert r.status_code == 204
        req = d.next_request()
        assert req.opt.observe == 0
        d.answer(req, Code.CONTENT, b"65", TEXT, observe=1)
        app.next("observe")
        # discover through MQTT; lookup enriches its links with the object definitions.
        app.command("discover", {"path": "/3/0"})
        req = d.next_request()
        d.answer(req, Code.CONTENT, b"</3/0>,</3/0/9>", LINK)
        app.next("discover")
        r = requests.get(f"{api}/lookup", params={"path": "/3/0", "action": "discover"}, auth=ADMIN, timeout=TIMEOUT)
        content = r.json()["content"]
        assert {"path": "/3/0/9", "name": "Battery Level", "operations": "R", "dataType": "Integer"} in content

        r = requests.post(f"{b.api}/gateways/lwm2m/clients/nobody/read", params={"path": "/3/0"}, auth=ADMIN, timeout=TIMEOUT)
        assert r.status_code == 404 and r.json()["code"] == "CLIENT_NOT_FOUND"

        # Kicked through the API.
        # An UPDATE with a new lifetime shows in the API.
        assert d.update(query=["lt=600"]).code == Code.CHANGED
        c = requests.get(api, auth=ADMIN, timeout=TIMEOUT).json()
        assert c["lifetime"] == 600 and c["keepalive"] == 600

        r = requests.delete(api, auth=ADMIN, timeout=TIMEOUT)
        assert r.status_code == 204
        eventually("kicked", lambda: requests.get(api, auth=ADMIN, timeout=TIMEOUT).status_code == 404)
        b.assert_alive()
    finally:
        d.close()
        clients.close_all()
        b.stop()


TEMPERATURE_XML = """<?xml version="1.0" encoding="utf-8"?>
<LWM2M xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <Object ObjectType="MODefinition">
    <Name>Temperature</Name><ObjectID>3303</ObjectID><ObjectURN>urn:oma:lwm2m:ext:3303</ObjectURN>
    <MultipleInstances>Multiple</MultipleInstances><Mandatory>Optional</Mandatory>
    <Resources>
      <Item ID="5700"><Name>Sensor Value</Name><Operations>R</Operations>
        <MultipleInstances>Single</MultipleInstances><Mandatory>Mandatory</Mandatory><Type>Float</Type></Item>
      <Item ID="5701"><Name>Sensor Units</Name><Operations>R</Operations>
        <MultipleInstances>Single</MultipleInstances><Mandatory>Optional</Mandatory><Type>String</Type></Item>
    </Resources>
  </Object>
</LWM2M>
"""


def test_lwm2m_objects_from_xml_dir_and_the_api(tmp_path):
    import struct

    xml_dir = tmp_path / "xml"
    xml_dir.mkdir()
    (xml_dir / "3303.xml").write_text(TEMPERATURE_XML)
    (xml_dir / "broken.xml").write_text("<LWM2M><Object>")
    b = lwm2m_broker(tmp_path, f'gateway.lwm2m.xml_dir = "{xml_dir}"\n')
    clients = ClientFactory()
    ep = unique("dev")
    d = Device(b.lwm2m, ep)
    try:
        objects = f"{b.api}/gateways/lwm2m/objects"
        listed = requests.get(objects, auth=ADMIN, timeout=TIMEOUT).json()
        assert {o["id"] for o in listed} >= {0, 1, 2, 3, 4, 5, 6, 7, 3303}
        app = App(clients, b.tcp, ep)
        assert d.register(objects=b"</3/0>,</3303/0>").code == Code.CREATED
        app.next("register")
        # The file's definition types a TLV float.
        app.command("read", {"path": "/3303/0"})
        req = d.next_request()
        d.answer(req, Code.CONTENT, tlv(3, 5700, struct.pack(">f", 21.5)) + tlv_str(5701, "Cel"), TLV)
        _, resp = app.next("read")
        assert resp["data"]["content"] == [{"path": "/3303/0/5700", "value": 21.5},
                                           {"path": "/3303/0/5701", "value": "Cel"}]
        # An object nobody defined: EMQX's 4.00.
        app.command("read", {"path": "/3304/0/5700"})
        req = d.next_request()
        d.answer(req, Code.CONTENT, b"40", TEXT)
        assert app.next("read")[1]["data"]["code"] == "4.00"

        # Added at run time through the API, without a restart.
        humidity = TEMPERATURE_XML.replace("3303", "3304").replace("Temperature", "Humidity")
        r = requests.post(objects, json={"xml": humidity}, auth=ADMIN, timeout=TIMEOUT)
        assert r.status_code == 201, r.text
        assert r.json()[0]["id"] == 3304
        got = requests.get(f"{objects}/3304", auth=ADMIN, timeout=TIMEOUT).json()
        assert got["name"] == "Humidity" and got["resources"][0]["type"] == "Float"
        app.command("read", {"path": "/3304/0/5700"})
        req = d.next_request()
        d.answer(req, Code.CONTENT, b"40.5", TEXT)
        assert app.next("read")[1]["data"]["content"] == [{"path": "/3304/0/5700", "value": 40.5}]
        assert requests.delete(f"{objects}/3304", auth=ADMIN, timeout=TIMEOUT).status_code == 204
        assert requests.get(f"{objects}/3304", auth=ADMIN, timeout=TIMEOUT).status_code == 404
        r = requests.post(objects, json={"xml": "<!DOCTYPE x [<!ENTITY a 'b'>]><LWM2M/>"}, auth=ADMIN, timeout=TIMEOUT)
        assert r.status_code == 400
        # Other gateways have no object definitions.
        assert requests.get(f"{b.api}/gateways/coap/objects", auth=ADMIN, timeout=TIMEOUT).status_code == 404
        b.assert_alive()
    finally:
        d.close()
        clients.close_all()
        b.stop()


def test_lwm2m_registration_authenticates_with_the_gateway_chain(tmp_path):
    users = tmp_path / "users.csv"
    users.write_text("user_id,password,is_superuser\nimei-77,s3cret,false\n")
    extra = (
        "gateway.lwm2m.authentication { mechanism = password_based, backend = built_in_database,"
        f' user_id_type = username, bootstrap_file = "{users}", bootstrap_type = plain }}\n'
    )
    b = lwm2m_broker(tmp_path, extra)
    d = Device(b.lwm2m, unique("dev"))
    try:
        r = d.register(query=["imei=imei-77", "password=wrong"])
        assert r.code == Code.BAD_REQUEST and r.payload.startswith(b"Login Failed:"), r
        r = d.register(query=["imei=imei-77"])
        assert r.code == Code.BAD_REQUEST
        r = d.register(query=["imei=imei-77", "password=s3cret"])
        assert r.code == Code.CREATED, r
        b.assert_alive()
    finally:
        d.close()
        b.stop()


def test_lwm2m_lifetime_expiry_ends_the_registration(tmp_path):
    b = lwm2m_broker(tmp_path, 'gateway.lwm2m.lifetime_min = "1s"\n')
    clients = ClientFactory()
    ep = unique("dev")
    d = Device(b.lwm2m, ep)
    try:
        m = clients(b.tcp).connect()
        m.subscribe(f"$SYS/brokers/+/gateway/lwm2m/clients/{ep}/disconnected", qos=0)
        assert d.register(lt=1).code == Code.CREATED
        got = m.expect(timeout=TIMEOUT)[0]
        assert json.loads(got.payload)["reason"] == "timeout", got.payload
        r = requests.get(f"{b.api}/gateways/lwm2m/clients/{ep}", auth=ADMIN, timeout=TIMEOUT)
        assert r.status_code == 404
    finally:
        d.close()
        clients.close_all()
        b.stop()


def test_malformed_lwm2m_datagrams_and_payloads_never_stop_the_gateway(tmp_path):
    """Hostile datagrams at the LwM2M port (raw socket) and hostile answers from a
    registered device (bad TLV, bad SenML, a huge object list): a Reset, a 4.xx or
    nothing, and every device is served on."""
    import random
    import socket
    import struct

    b = lwm2m_broker(tmp_path)
    clients = ClientFactory()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(0.5)
    ep = unique("dev")
    d = Device(b.lwm2m, ep)
    try:
        def answer(datagram: bytes):
            sock.sendto(datagram, (HOST, b.lwm2m))
            try:
                return sock.recvfrom(2048)[0]
            except socket.timeout:
                return None

        con = lambda tkl, mid: bytes([0x40 | tkl, 0x02]) + struct.pack(">H", mid)  # noqa: E731
        rst = lambda mid: bytes([0x70, 0x00]) + struct.pack(">H", mid)  # noqa: E731
        for tkl in range(9, 16):
            assert answer(con(tkl, 100 + tkl) + b"\x00" * 15) == rst(100 + tkl)
        assert answer(con(0, 200) + b"\xf0") == rst(200)
        assert answer(con(0, 203) + b"\xb2rd\xff") == rst(203)
        assert answer(b"\x40\x02") is None
        # An update for a registration this address does not have: 4.04.
        reply = answer(con(0, 300) + b"\xb2rd\x03xyz")
        assert reply is not None and reply[1] == 0x84
        # A REGISTER with an object list that is not link format: 4.00.
        reply = answer(con(0, 301) + b"\xb2rd\x47ep=evil\x04lt=9\xff<<<<")
        assert reply is not None and reply[1] == 0x80
        rnd = random.Random(11)
        for _ in range(2000):
            sock.sendto(bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(0, 64))), (HOST, b.lwm2m))

        app = App(clients, b.tcp, ep)
        assert d.register().code == Code.CREATED
        app.next("register")
        for payload, fmt in ((b"\xe8\xff\xff\xff\xff", TLV), (b"\x08\x00\x10\xc1", TLV),
                             (b'[{"bn":"/3/0/","n":"9","v":"x"}]', SENML_JSON), (b"\xff" * 40, 112),
                             (b'{"e":[{"n":', OMA_JSON), (b"not a number", TEXT)):
            app.command("read", {"path": "/3/0/9"})
            req = d.next_request()
            d.answer(req, Code.CONTENT, payload, fmt)
            _, resp = app.next("read")
            assert resp["data"]["code"] == "4.00", (payload, resp)
        # Commands that are not JSON are dropped; deeply nested JSON too.
        app.m.publish(f"lwm2m/{ep}/dn/cmd", b"\x00\x01garbage", qos=0)
        app.m.publish(f"lwm2m/{ep}/dn/cmd", "[" * 100000, qos=0)
        app.command("read", {"path": "/3/0/1"})
        req = d.next_request()
        d.answer(req, Code.CONTENT, b"still here", TEXT)
        assert app.next("read")[1]["data"]["content"] == [{"path": "/3/0/1", "value": "still here"}]
        b.assert_alive()
    finally:
        sock.close()
        d.close()
        clients.close_all()
        b.stop()


def test_lwm2m_over_dtls_with_psk(tmp_path):
    """The scripted device over DTLS 1.2 with a pre-shared key (openssl s_client):
    register, a read command and its answer, deregister; a wrong key registers nothing."""
    psk = tmp_path / "psk.txt"
    psk.write_text("meter-9:0123456789abcdef\n")
    extra = (
        f'psk_authentication {{ enable = true, init_file = "{psk}" }}\n'
        f'gateway.lwm2m.listeners.dtls.default.bind = "{HOST}:0"\n'
    )
    b = lwm2m_broker(tmp_path, extra)
    clients = ClientFactory()
    ep = unique("sealed")
    port = b.port("lwm2m:dtls:default")
    d = Device(port, ep, dtls=("meter-9", "0123456789abcdef"))
    try:
        app = App(clients, b.tcp, ep)
        assert d.register().code == Code.CREATED
        app.next("register")
        app.command("read", {"path": "/3/0/9"})
        req = d.next_request()
        d.answer(req, Code.CONTENT, b"55", TEXT)
        assert app.next("read")[1]["data"]["content"] == [{"path": "/3/0/9", "value": 55}]
        c = requests.get(f"{b.api}/gateways/lwm2m/clients/{ep}", auth=ADMIN, timeout=TIMEOUT).json()
        assert c["listener"] == "lwm2m:dtls:default"
        assert d.deregister().code == Code.DELETED
        forged = Device(port, unique("forged"), dtls=("meter-9", "wrong-key-wrong!"))
        try:
            import pytest
            with pytest.raises(Exception):
                forged.register()
        finally:
            forged.close()
        b.assert_alive()
    finally:
        d.close()
        clients.close_all()
        b.stop()


NODE_DIR = __import__("pathlib").Path(__file__).resolve().parent.parent / "node"


class NodeDevice:
    """The device client of the npm package lwm2m-node-lib, run by Node."""

    def __init__(self, port: int, ep: str):
        import subprocess

        assert (NODE_DIR / "node_modules" / "lwm2m-node-lib").is_dir(), \
            "scripts/test.sh installs tests/node (npm ci)"
        self.proc = subprocess.Popen(["node", str(NODE_DIR / "lwm2m_client.js"), HOST, str(port), ep],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, bufsize=1)
        # Lines are read by a thread: a select() on the pipe cannot see lines that one
        # read already buffered (two lines written at once), which made `event` miss one.
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def event(self, name: str) -> dict:
        deadline = time.monotonic() + TIMEOUT
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no {name} event from the node device"
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            assert line is not None, f"the node device exited: {self.proc.stderr.read()}"
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if "event" not in e:
                continue  # the library's own log lines (logops writes JSON to stdout)
            assert e["event"] != "error", e
            if e["event"] == name:
                return e

    def tell(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def test_lwm2m_with_the_lwm2m_node_lib_client(tmp_path):
    """lwm2m-node-lib's client (npm; chosen because it is a complete LwM2M 1.0 device
    stack any project can install from the npm registry and run on Debian's Node):
    register, read, write in plain text, execute, observe with its notifications, then
    update and de-register, which it sends from new UDP ports (each of its requests
    opens its own socket), so the registration moves with them."""
    xml_dir = tmp_path / "xml"
    xml_dir.mkdir()
    (xml_dir / "3303.xml").write_text(TEMPERATURE_XML)
    b = lwm2m_broker(tmp_path, f'gateway.lwm2m.xml_dir = "{xml_dir}"\n')
    clients = ClientFactory()
    ep = unique("node")
    dev = NodeDevice(b.lwm2m, ep)
    try:
        app = App(clients, b.tcp, ep)
        assert dev.event("registered")["location"] == f"rd/{ep}"
        _, reg = app.next("register")
        assert set(reg["data"]["objectList"]) == {"/3/0", "/3303/0"}

        app.command("read", {"path": "/3/0/0"}, reqID="r1")
        _, resp = app.next("read")
        assert resp["reqID"] == "r1" and resp["data"]["code"] == "2.05"
        assert resp["data"]["content"] == [{"path": "/3/0/0", "value": "Telefonica"}]
        app.command("read", {"path": "/3303/0/5700"})
        _, resp = app.next("read")
        assert resp["data"]["content"] == [{"path": "/3303/0/5700", "value": 21.5}]

        app.command("write", {"path": "/3/0/14", "type": "String", "value": "+05", "contentFormat": "text"})
        assert dev.event("write") == {"event": "write", "path": "/3/0/14", "value": "+05"}
        assert app.next("write")[1]["data"]["code"] == "2.04"
        app.command("execute", {"path": "/3/0/4", "args": "5"})
        assert dev.event("execute")["path"] == "/3/0/4"
        assert app.next("execute")[1]["data"]["code"] == "2.04"

        app.command("observe", {"path": "/3/0/9"}, reqID="o1")
        _, first = app.next("observe")
        assert first["data"]["content"] == [{"path": "/3/0/9", "value": 87}]
        dev.tell("set /3/0 9 42")
        def notified_42(m):
            e = js(m)
            return e.get("msgType") == "notify" and e["data"].get("content") == [{"path": "/3/0/9", "value": 42}]
        got = app.m.drain_until_match(notified_42, what="a notification of 42")[-1]
        assert got.topic == f"lwm2m/{ep}/up/notify" and js(got)["reqID"] == "o1"

        api = f"{b.api}/gateways/lwm2m/clients/{ep}"
        port_before = requests.get(api, auth=ADMIN, timeout=TIMEOUT).json()["port"]
        dev.tell("update")
        dev.event("updated")
        eventually("the registration moved to the update's port",
                   lambda: requests.get(api, auth=ADMIN, timeout=TIMEOUT).json().get("port") != port_before)
        # Commands follow it.
        app.command("read", {"path": "/3/0/0"}, reqID="r2")
        assert app.next("read")[1]["data"]["content"] == [{"path": "/3/0/0", "value": "Telefonica"}]
        dev.close()

        # De-register (a second device: after an update this client sends its
        # De-register to its location written twice, `rd/x/rd/x`, a bug of its own).
        ep2 = unique("node")
        dev = NodeDevice(b.lwm2m, ep2)
        dev.event("registered")
        dev.tell("deregister")
        dev.event("deregistered")
        eventually("deregistered",
                   lambda: requests.get(f"{b.api}/gateways/lwm2m/clients/{ep2}", auth=ADMIN,
                                        timeout=TIMEOUT).status_code == 404)
        b.assert_alive()
    finally:
        dev.close()
        clients.close_all()
        b.stop()


def test_an_update_from_a_new_address_does_not_move_an_authenticated_registration(tmp_path):
    """Where the listener authenticates, an UPDATE carries no credentials: from a new
    address it gets 4.04 and the registration stays where it is."""
    users = tmp_path / "users.csv"
    users.write_text("user_id,password,is_superuser\nmover,s3cret,false\n")
    extra = (
        "gateway.lwm2m.authentication { mechanism = password_based, backend = built_in_database,"
        f' user_id_type = username, bootstrap_file = "{users}", bootstrap_type = plain }}\n'
    )
    b = lwm2m_broker(tmp_path, extra)
    ep = unique("dev")
    d = Device(b.lwm2m, ep)
    thief = Device(b.lwm2m, ep)
    try:
        assert d.register(query=["imei=mover", "password=s3cret"]).code == Code.CREATED
        assert thief.update().code == Code.NOT_FOUND
        assert thief.deregister().code == Code.NOT_FOUND
        assert d.update().code == Code.CHANGED
    finally:
        d.close()
        thief.close()
        b.stop()
