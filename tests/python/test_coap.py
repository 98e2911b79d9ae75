"""The CoAP gateway with clients nobody here wrote: aiocoap (PyPI) and libcoap's
coap-client (Debian libcoap3-bin), over UDP and DTLS-PSK, against paho-mqtt, stomp.py and
mqtt-sn-12 on the other side of the broker; and the management API on CoAP clients."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time

import pytest
import requests
from aiocoap import DELETE, GET, POST, PUT, Context, Message
from aiocoap.numbers.codes import Code

from junction_harness import HOST, TIMEOUT, ClientFactory, start_broker, unique
from test_api import ADMIN
from test_mqttsn import Recorder as SnRecorder
from test_mqttsn import SnFactory, wait_publish
from test_stomp import StompFactory

COAP_CLIENT = shutil.which("coap-client-openssl") or shutil.which("coap-client")


def coap_broker(tmp_path, extra: str = "", env: dict | None = None):
    keys = tmp_path / "api_keys.txt"
    keys.write_text(f"{ADMIN[0]}:{ADMIN[1]}\n")
    b = start_broker(tmp_path / "b", config=f'api_key.bootstrap_file = "{keys}"\n' + extra, env=env, ws=False)
    b.coap = b.port("coap:udp:default")
    b.api = f"http://{HOST}:{b.port('dashboard:http')}/api/v5"
    return b


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, TIMEOUT * 3))


async def request(port: int, code, path: str, payload: bytes = b"", **kw):
    ctx = await Context.create_client_context()
    try:
        msg = Message(code=code, uri=f"coap://{HOST}:{port}{path}", payload=payload, **kw)
        return await asyncio.wait_for(ctx.request(msg).response, TIMEOUT)
    finally:
        await ctx.shutdown()


def coap_client(*args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    assert COAP_CLIENT, "coap-client is installed by scripts/test.sh (libcoap3-bin)"
    return subprocess.run([COAP_CLIENT, *args], capture_output=True, text=True, timeout=timeout)


def subscribed(b, topic: str) -> bool:
    r = requests.get(f"{b.api}/subscriptions", params={"topic": topic}, auth=ADMIN, timeout=TIMEOUT)
    return r.status_code == 200 and len(r.json()["data"]) > 0


def eventually(what: str, check, timeout: float = TIMEOUT):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        time.sleep(0.05)


def test_coap_publish_reaches_mqtt_stomp_and_mqttsn_subscribers(tmp_path):
    b = coap_broker(tmp_path)
    clients = ClientFactory()
    stomps = StompFactory(b.port("stomp:tcp:default"))
    sns = SnFactory(b.port("mqttsn:udp:default"))
    try:
        topic = unique("coap/up")
        m = clients(b.tcp).connect()
        m.subscribe(topic, qos=1)
        conn, rec = stomps()
        conn.subscribe(topic, id="1", receipt="sub")
        rec.wait_receipt("sub")
        sn = sns()
        sn.send_subscribe(topic, 0, SnRecorder())

        # aiocoap: a confirmable POST, answered 2.04 Changed.
        resp = run(request(b.coap, POST, f"/ps/{topic}", b"from aiocoap"))
        assert resp.code == Code.CHANGED, resp
        assert m.expect()[0].payload == b"from aiocoap"
        assert rec.expect()[0].body == "from aiocoap"
        assert wait_publish(sn).get_data() == b"from aiocoap"

        # coap-client, with retain and qos queries.
        out = coap_client("-m", "post", "-e", "from libcoap", f"coap://{HOST}:{b.coap}/ps/{topic}?retain=true&qos=1")
        assert out.returncode == 0, out.stderr
        got = m.expect()[0]
        assert got.payload == b"from libcoap"
        late = clients(b.tcp).connect()
        late.subscribe(topic, qos=1)
        kept = late.expect()[0]
        assert kept.payload == b"from libcoap" and kept.retain

        # Refusals: no topic, wrong method, unknown resource.
        assert run(request(b.coap, POST, "/ps", b"x")).code == Code.BAD_REQUEST
        assert run(request(b.coap, PUT, f"/ps/{topic}", b"x")).code == Code.METHOD_NOT_ALLOWED
        assert run(request(b.coap, GET, "/nowhere")).code == Code.NOT_FOUND
        b.assert_alive()
    finally:
        clients.close_all()
        stomps.close_all()
        sns.close_all()
        b.stop()


def test_coap_observe_with_wildcards_gets_mqtt_publishes(tmp_path):
    b = coap_broker(tmp_path)
    clients = ClientFactory()
    try:
        root = unique("coap/down")
        pub = clients(b.tcp).connect()

        async def observe():
            ctx = await Context.create_client_context()
            try:
                req = Message(code=GET, uri=f"coap://{HOST}:{b.coap}/ps/{root}/+", observe=0)
                pr = ctx.request(req)
                first = await asyncio.wait_for(pr.response, TIMEOUT)
                assert first.code == Code.CONTENT and first.opt.observe == 0, first
                await asyncio.to_thread(eventually, "observed", lambda: subscribed(b, f"{root}/+"))
                got = []
                notifications = pr.observation.__aiter__()
                for i, qos in enumerate((0, 1, 1)):
                    await asyncio.to_thread(pub.publish, f"{root}/s{i}", f"n{i}".encode(), qos)
                    n = await asyncio.wait_for(notifications.__anext__(), TIMEOUT)
                    got.append((n.payload, n.opt.observe))
                pr.observation.cancel()
                return got
            finally:
                await ctx.shutdown()

        got = run(observe())
        assert [p for p, _ in got] == [b"n0", b"n1", b"n2"]
        seqs = [s for _, s in got]
        assert seqs == sorted(seqs) and seqs[0] >= 1, seqs

        # libcoap observes for a bounded time and prints what it is notified.
        assert COAP_CLIENT
        topic = unique("coap/libobs")
        proc = subprocess.Popen(
            [COAP_CLIENT, "-m", "get", "-s", "3", f"coap://{HOST}:{b.coap}/ps/{topic}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            eventually("libcoap observing", lambda: subscribed(b, topic))
            pub.publish(topic, b"to libcoap", qos=1)
            out, err = proc.communicate(timeout=TIMEOUT * 2)
        finally:
            proc.kill()
        assert "to libcoap" in out, (out, err)
        b.assert_alive()
    finally:
        clients.close_all()
        b.stop()


def test_coap_connection_mode_with_token_heartbeat_and_close(tmp_path):
    b = coap_broker(tmp_path, "gateway.coap.connection_required = true\n")
    clients = ClientFactory()
    try:
        port = b.coap
        topic = unique("coap/conn")
        m = clients(b.tcp).connect()
        m.subscribe(topic, qos=0)

        async def session():
            ctx = await Context.create_client_context()
            base = f"coap://{HOST}:{port}"

            async def call(code, path, payload=b""):
                msg = Message(code=code, uri=base + path, payload=payload)
                return await asyncio.wait_for(ctx.request(msg).response, TIMEOUT)

            try:
                # Missing client id: EMQX's code and text.
                r = await call(POST, "/mqtt/connection")
                assert r.code == Code.BAD_REQUEST and b"clientid is required" in r.payload, r
                r = await call(POST, "/mqtt/connection?clientid=dev-conn")
                assert r.code == Code.CREATED, r
                token = r.payload.decode()
                assert token.isdigit()
                # Requests must name the connection.
                r = await call(POST, f"/ps/{topic}", b"nameless")
                assert r.code == Code.BAD_REQUEST and b"Missing token or clientid" in r.payload
                r = await call(POST, f"/ps/{topic}?clientid=dev-conn&token=0{token}", b"bad token")
                assert r.code == Code.UNAUTHORIZED
                r = await call(POST, f"/ps/{topic}?c=dev-conn&t={token}", b"with token")
                assert r.code == Code.CHANGED, r
                r = await call(PUT, f"/mqtt/connection?clientid=dev-conn&token={token}")
                assert r.code == Code.CHANGED
                listed = requests.get(f"{b.api}/gateways/coap/clients/dev-conn", auth=ADMIN, timeout=TIMEOUT)
                assert listed.status_code == 200, listed.text
                assert listed.json()["proto_name"] == "CoAP"
                r = await call(DELETE, f"/mqtt/connection?clientid=dev-conn&token={token}")
                assert r.code == Code.DELETED
            finally:
                await ctx.shutdown()

        run(session())
        assert m.expect()[0].payload == b"with token"
        eventually(
            "the client gone after DELETE",
            lambda: requests.get(f"{b.api}/gateways/coap/clients/dev-conn", auth=ADMIN, timeout=TIMEOUT).status_code == 404,
        )
        # Without a connection, a request is refused statelessly.
        r = run(request(port, POST, f"/ps/{topic}?clientid=dev-conn&token=1", b"late"))
        assert r.code == Code.UNAUTHORIZED
        b.assert_alive()
    finally:
        clients.close_all()
        b.stop()


def test_coap_connection_mode_authenticates_with_the_gateway_chain(tmp_path):
    users = tmp_path / "users.csv"
    users.write_text("user_id,password,is_superuser\nmeter,s3cret,false\n")
    extra = (
        "gateway.coap.connection_required = true\n"
        "gateway.coap.authentication { mechanism = password_based, backend = built_in_database,"
        f' user_id_type = username, bootstrap_file = "{users}", bootstrap_type = plain }}\n'
    )
    b = coap_broker(tmp_path, extra)
    try:
        r = run(request(b.coap, POST, "/mqtt/connection?clientid=m1&username=meter&password=wrong"))
        assert r.code == Code.BAD_REQUEST and r.payload.startswith(b"Login Failed:"), r
        assert requests.get(f"{b.api}/gateways/coap/clients/m1", auth=ADMIN, timeout=TIMEOUT).status_code == 404
        r = run(request(b.coap, POST, "/mqtt/connection?c=m1&u=meter&p=s3cret"))
        assert r.code == Code.CREATED, r
        b.assert_alive()
    finally:
        b.stop()
    # Connectionless requests cannot authenticate: where the gateway has a chain they are
    # refused (EMQX serves them unauthenticated, reference §7.2 #6).
    (tmp_path / "cl").mkdir()
    b = coap_broker(tmp_path / "cl", extra.replace("connection_required = true", "connection_required = false"))
    try:
        r = run(request(b.coap, POST, "/ps/open/door", b"x"))
        assert r.code == Code.UNAUTHORIZED, r
    finally:
        b.stop()


def test_coap_clients_are_listed_and_kicked_through_the_api(tmp_path):
    b = coap_broker(tmp_path, 'gateway.coap { connection_required = true, idle_timeout = "5s" }\n')
    try:
        # One device, one address: its context keeps its UDP port.
        async def device():
            ctx = await Context.create_client_context()
            base = f"coap://{HOST}:{b.coap}"
            try:
                r = await ctx.request(Message(code=POST, uri=f"{base}/mqtt/connection?clientid=listed-1")).response
                assert r.code == Code.CREATED
                token = r.payload.decode()
                uri = f"{base}/ps/api/t?clientid=listed-1&token={token}"
                r = await ctx.request(Message(code=GET, uri=uri, observe=0)).response
                assert r.code == Code.CONTENT, r
            finally:
                await ctx.shutdown()

        run(device())
        data = requests.get(f"{b.api}/gateways/coap/clients", auth=ADMIN, timeout=TIMEOUT).json()["data"]
        assert [c["clientid"] for c in data] == ["listed-1"]
        assert data[0]["keepalive"] == 15
        subs = requests.get(f"{b.api}/gateways/coap/clients/listed-1/subscriptions", auth=ADMIN, timeout=TIMEOUT).json()
        assert [s["topic"] for s in subs] == ["api/t"]
        r = requests.delete(f"{b.api}/gateways/coap/clients/listed-1", auth=ADMIN, timeout=TIMEOUT)
        assert r.status_code == 204
        eventually(
            "kicked",
            lambda: requests.get(f"{b.api}/gateways/coap/clients", auth=ADMIN, timeout=TIMEOUT).json()["data"] == [],
        )
        b.assert_alive()
    finally:
        b.stop()


def test_coap_mountpoint_prefixes_published_and_observed_topics(tmp_path):
    b = coap_broker(tmp_path, 'gateway.coap.mountpoint = "coap/"\n')
    clients = ClientFactory()
    try:
        m = clients(b.tcp).connect()
        m.subscribe("coap/#", qos=0)
        assert run(request(b.coap, POST, "/ps/mounted/t", b"m")).code == Code.CHANGED
        got = m.expect()[0]
        assert (got.topic, got.payload) == ("coap/mounted/t", b"m")
        b.assert_alive()
    finally:
        clients.close_all()
        b.stop()


def test_coap_over_dtls_with_psk(tmp_path):
    psk = tmp_path / "psk.txt"
    psk.write_text("meter-7:0123456789abcdef\n")
    extra = (
        f'psk_authentication {{ enable = true, init_file = "{psk}" }}\n'
        f'gateway.coap.listeners.dtls.default.bind = "{HOST}:0"\n'
    )
    b = coap_broker(tmp_path, extra)
    clients = ClientFactory()
    try:
        port = b.port("coap:dtls:default")
        topic = unique("coap/dtls")
        m = clients(b.tcp).connect()
        m.subscribe(topic, qos=1)
        out = coap_client("-u", "meter-7", "-k", "0123456789abcdef", "-m", "post", "-e", "over dtls",
                          f"coaps://{HOST}:{port}/ps/{topic}")
        assert out.returncode == 0, out.stderr
        assert m.expect()[0].payload == b"over dtls"
        # A wrong key gets nothing through.
        coap_client("-B", "3", "-u", "meter-7", "-k", "wrong-key-wrong!", "-m", "post", "-e", "forged",
                    f"coaps://{HOST}:{port}/ps/{topic}", timeout=TIMEOUT * 3)
        with pytest.raises(Exception):
            m.expect(timeout=0.5)
        b.assert_alive()
    finally:
        clients.close_all()
        b.stop()


def test_coap_connection_is_taken_over_from_a_new_address_with_its_token(tmp_path):
    """A device behind a NAT that rebinds: its connection, with its observation, moves to
    the new address that names it with its token (EMQX 5.10's takeover); a wrong token or
    a wrong client id gets 4.01."""
    import socket

    from aiocoap import CON
    from aiocoap import Message as CoapMessage

    b = coap_broker(tmp_path, "gateway.coap.connection_required = true\n")
    clients = ClientFactory()
    port = b.coap
    topic = unique("coap/nat")

    def exchange(sock, code, path, mid, payload=b"", observe=None):
        m = CoapMessage(code=code, mtype=CON, mid=mid, token=b"tk", payload=payload,
                        uri=f"coap://{HOST}:{port}{path}")
        if observe is not None:
            m.opt.observe = observe
        sock.sendto(m.encode(), (HOST, port))
        while True:
            data, _ = sock.recvfrom(2048)
            got = CoapMessage.decode(data)
            if got.mid == mid:
                return got

    old = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    new = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for s in (old, new):
            s.settimeout(TIMEOUT)
            s.bind((HOST, 0))
        r = exchange(old, POST, "/mqtt/connection?clientid=nat-1", 1)
        assert r.code == Code.CREATED
        token = r.payload.decode()
        r = exchange(old, GET, f"/ps/{topic}?clientid=nat-1&token={token}", 2, observe=0)
        assert r.code == Code.CONTENT
        # From the new address: a wrong token, a wrong client id, then the right pair.
        assert exchange(new, POST, f"/ps/{topic}?clientid=nat-1&token=1{token}", 3, b"x").code == Code.UNAUTHORIZED
        assert exchange(new, POST, f"/ps/{topic}?clientid=nat-2&token={token}", 4, b"x").code == Code.UNAUTHORIZED
        r = exchange(new, PUT, f"/mqtt/connection?clientid=nat-1&token={token}", 5)
        assert r.code == Code.CHANGED, r
        [c] = requests.get(f"{b.api}/gateways/coap/clients", auth=ADMIN, timeout=TIMEOUT).json()["data"]
        assert c["clientid"] == "nat-1" and c["port"] == new.getsockname()[1]
        # The observation moved with it: an MQTT publish is notified at the new address.
        clients(b.tcp).connect().publish(topic, b"after the move", qos=0)
        data, _ = new.recvfrom(2048)
        n = CoapMessage.decode(data)
        assert n.payload == b"after the move" and n.token == b"tk" and n.opt.observe >= 1
        b.assert_alive()
    finally:
        old.close()
        new.close()
        clients.close_all()
        b.stop()


def test_malformed_coap_datagrams_get_a_reset_or_nothing_and_the_gateway_serves_on(tmp_path):
    """Hostile datagrams (a raw socket, this is the one client written here): a CON with a
    format error gets a Reset with its message id (RFC 7252 §4.2); what cannot be read as
    a header, or is not confirmable, gets nothing; an unknown critical option gets 4.02;
    then aiocoap is still served."""
    import socket
    import struct

    b = coap_broker(tmp_path)
    clients = ClientFactory()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(0.5)
    try:
        def answer(datagram: bytes):
            sock.sendto(datagram, (HOST, b.coap))
            try:
                return sock.recvfrom(2048)[0]
            except socket.timeout:
                return None

        con = lambda tkl, mid: bytes([0x40 | tkl, 0x02]) + struct.pack(">H", mid)  # noqa: E731
        rst = lambda mid: bytes([0x70, 0x00]) + struct.pack(">H", mid)  # noqa: E731
        # Token length 9 to 15 is a format error.
        for tkl in range(9, 16):
            assert answer(con(tkl, 100 + tkl) + b"\x00" * 15) == rst(100 + tkl)
        # Option delta 15 and option length 15 are reserved.
        assert answer(con(0, 200) + b"\xf0") == rst(200)
        assert answer(con(0, 201) + b"\xbf") == rst(201)
        # An option running past the end; a payload marker with no payload.
        assert answer(con(0, 202) + b"\xb5ab") == rst(202)
        assert answer(con(0, 203) + b"\xb2ps\xff") == rst(203)
        # Shorter than a header, another version, a NON with a format error: nothing.
        assert answer(b"\x40\x02") is None
        assert answer(b"\x80\x02\x00\x01") is None
        assert answer(bytes([0x59, 0x02, 0x01, 0x2c]) + b"\x00" * 9) is None
        # An empty CON is a ping: Reset.
        assert answer(bytes([0x40, 0x00, 0x01, 0x2d])) == rst(301)
        # An unknown critical option (number 9): 4.02 Bad Option, piggy-backed.
        reply = answer(con(0, 400) + b"\x91x\x22ps\x01t")
        assert reply is not None and reply[0] == 0x60 and reply[1] == 0x82 and reply[2:4] == struct.pack(">H", 400)
        # Endless random datagrams: still served.
        import random

        rnd = random.Random(7)
        for _ in range(2000):
            sock.sendto(bytes(rnd.getrandbits(8) for _ in range(rnd.randrange(0, 64))), (HOST, b.coap))
        m = clients(b.tcp).connect()
        m.subscribe("coap/alive", qos=0)
        assert run(request(b.coap, POST, "/ps/coap/alive", b"still here")).code == Code.CHANGED
        assert m.expect()[0].payload == b"still here"
        b.assert_alive()
    finally:
        sock.close()
        clients.close_all()
        b.stop()


def test_coap_block_wise_in_both_directions(tmp_path):
    """RFC 7959 with clients nobody here wrote: aiocoap and coap-client upload bodies
    larger than a block (Block1); a notification larger than a block goes out block-wise
    and aiocoap fetches the rest (Block2)."""
    b = coap_broker(tmp_path)
    clients = ClientFactory()
    try:
        m = clients(b.tcp).connect()
        m.subscribe("coap/blocks/#", qos=1)
        body = bytes(range(256)) * 12  # 3,072 octets
        resp = run(request(b.coap, POST, "/ps/coap/blocks/aiocoap", body))
        assert resp.code == Code.CHANGED, resp
        got = m.expect()[0]
        assert (got.topic, got.payload) == ("coap/blocks/aiocoap", body)

        upload = tmp_path / "upload.bin"
        upload.write_bytes(b"libcoap " * 400)  # 3,200 octets, in 64-octet blocks
        out = coap_client("-m", "post", "-b", "64", "-f", str(upload),
                          f"coap://{HOST}:{b.coap}/ps/coap/blocks/libcoap")
        assert out.returncode == 0, out.stderr
        got = m.expect()[0]
        assert (got.topic, got.payload) == ("coap/blocks/libcoap", upload.read_bytes())

        pub = clients(b.tcp).connect()
        big = b"0123456789" * 300

        async def observe_big():
            ctx = await Context.create_client_context()
            try:
                req = Message(code=GET, uri=f"coap://{HOST}:{b.coap}/ps/coap/down/big", observe=0)
                pr = ctx.request(req)
                first = await asyncio.wait_for(pr.response, TIMEOUT)
                assert first.code == Code.CONTENT
                await asyncio.to_thread(eventually, "observed", lambda: subscribed(b, "coap/down/big"))
                notifications = pr.observation.__aiter__()
                await asyncio.to_thread(pub.publish, "coap/down/big", big, 0)
                n = await asyncio.wait_for(notifications.__anext__(), TIMEOUT)
                pr.observation.cancel()
                return n.payload
            finally:
                await ctx.shutdown()

        assert run(observe_big()) == big
        b.assert_alive()
    finally:
        clients.close_all()
        b.stop()


def test_the_api_sends_a_request_to_a_coap_device_and_returns_its_response(tmp_path):
    """`POST /api/v5/gateways/coap/clients/{id}/request` (reference §2.6): the gateway sends
    a confirmable request to the device, an aiocoap server context that also connected
    from the same socket, and answers with the device's response."""
    import aiocoap.resource as resource

    b = coap_broker(tmp_path, "gateway.coap.connection_required = true\n")

    class Temperature(resource.Resource):
        async def render_get(self, request):
            return Message(code=Code.CONTENT, payload=b"21.5")

        async def render_put(self, request):
            return Message(code=Code.CHANGED, payload=b"set " + request.payload)

    async def device():
        site = resource.Site()
        site.add_resource(["temp"], Temperature())
        ctx = await Context.create_server_context(site, bind=(HOST, 0))
        try:
            r = await ctx.request(Message(code=POST, uri=f"coap://{HOST}:{b.coap}/mqtt/connection?clientid=dev-req")).response
            assert r.code == Code.CREATED
            url = f"{b.api}/gateways/coap/clients/dev-req/request"

            def api(body):
                return requests.post(url, json=body, auth=ADMIN, timeout=TIMEOUT * 2)

            r = await asyncio.to_thread(api, {"method": "get", "uri": "/temp", "timeout": "5s"})
            assert r.status_code == 200, r.text
            assert r.json()["method"] == "{ok,content}" and r.json()["payload"] == "21.5", r.json()
            r = await asyncio.to_thread(api, {"method": "put", "uri": "/temp", "payload": "22",
                                              "content_type": "text/plain", "token": "t1"})
            assert r.json()["method"] == "{ok,changed}" and r.json()["payload"] == "set 22"
            assert r.json()["token"] == "t1"
            r = await asyncio.to_thread(api, {"method": "get", "uri": "/nothing-here"})
            assert r.json()["method"] == "{error,not_found}", r.json()
            r = await asyncio.to_thread(api, {"method": "fetch"})
            assert r.status_code == 400
        finally:
            await ctx.shutdown()

    try:
        run(device())
        r = requests.post(f"{b.api}/gateways/coap/clients/nobody/request", json={}, auth=ADMIN, timeout=TIMEOUT)
        assert r.status_code == 404 and r.json()["code"] == "CLIENT_NOT_FOUND"
        r = requests.post(f"{b.api}/gateways/stomp/clients/nobody/request", json={}, auth=ADMIN, timeout=TIMEOUT)
        assert r.status_code == 404
        b.assert_alive()
    finally:
        b.stop()
