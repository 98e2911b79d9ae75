"""The LwM2M gateway: a scripted device (lwm2m_device.py, CoAP by aiocoap) for every
command type and edge case, the device client of the npm package lwm2m-node-lib run by
Node, and paho-mqtt on the application side."""

from __future__ import annotations

import json
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


def registered(b, ep: str, clients) -> App:
    app = App(clients, b.tcp, ep)
    return app


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
