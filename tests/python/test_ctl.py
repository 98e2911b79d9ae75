"""`junction ctl`: every command against a running node, through its HTTP API, with
EMQX's `emqx ctl` texts for the gateway commands (reference §3). Clients are paho-mqtt,
stomp.py and mqtt-sn-12."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess

from junction_harness import HOST, TIMEOUT, ClientFactory, junction_bin, start_broker, unique
from test_api import ADMIN
from test_mqttsn import SnFactory
from test_stomp import StompFactory


def ctl_env() -> dict[str, str]:
    # JUNCTION_* variables other than the ctl's own are the broker's business.
    return {k: v for k, v in os.environ.items() if not k.startswith("JUNCTION_")}


def ctl(b, *args: str, key=ADMIN, ok: bool = True) -> str:
    cmd = [junction_bin(), "ctl", "--url", f"http://{HOST}:{b.port('dashboard:http')}"]
    if key is not None:
        cmd += ["--key", key[0], "--secret", key[1]]
    r = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=TIMEOUT * 4, env=ctl_env())
    if ok:
        assert r.returncode == 0, f"{args}: rc {r.returncode}\n{r.stdout}\n{r.stderr}"
        return r.stdout
    assert r.returncode != 0, f"{args} should fail: {r.stdout}"
    return r.stderr


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def test_every_ctl_command_against_a_running_node(tmp_path):
    keys = tmp_path / "api_keys.txt"
    keys.write_text(f"{ADMIN[0]}:{ADMIN[1]}\n")
    config = f'api_key.bootstrap_file = "{keys}"\n'
    b = start_broker(tmp_path / "b", config=config, ws=False)
    mqtt = ClientFactory()
    stomps = StompFactory(b.port("stomp:tcp:default"))
    sns = None
    try:
        mqtt_id = unique("ctl-mqtt")
        m = mqtt(b.tcp, client_id=mqtt_id).connect()
        m.subscribe("ctl/+/t", qos=1)
        conn, rec = stomps()
        conn.subscribe("ctl/stomp", id="7", receipt="subscribed")
        rec.wait_receipt("subscribed")
        # A STOMP client's id is the gateway's choice: read it from the client list.
        stomp_id = re.match(r"Client\(([0-9a-f]+),", ctl(b, "gateway-clients", "list", "stomp")).group(1)

        # status, clients, subscriptions, listeners.
        assert "is started" in ctl(b, "status")
        out = ctl(b, "clients", "list")
        assert out.splitlines()[0].split() == ["CLIENTID", "USERNAME", "PEER", "PROTOCOL", "CONNECTED_AT"]
        assert mqtt_id in out
        show = ctl(b, "clients", "show", mqtt_id)
        assert f"clientid: {mqtt_id}" in show and "subscriptions_cnt: 1" in show
        assert json.loads(ctl(b, "--json", "clients", "list"))[0]["clientid"] == mqtt_id
        subs = ctl(b, "subscriptions", "list")
        assert re.search(rf"{mqtt_id}\s+ctl/\+/t\s+1", subs), subs
        assert re.search(rf"{stomp_id}\s+ctl/stomp\s+0", subs), subs
        assert re.search(rf"tcp:default\s+\S+:{b.tcp}\s+true\s+1/", ctl(b, "listeners"))

        # gateway list / lookup.
        listed = ctl(b, "gateway", "list").splitlines()
        assert any(re.fullmatch(r"Gateway\(name=stomp, status=running, clients=1, started_at=\S+\)", l) for l in listed), listed
        assert any(l.startswith("Gateway(name=mqttsn, status=running, clients=0, started_at=") for l in listed), listed
        lookup = ctl(b, "gateway", "lookup", "stomp").splitlines()
        assert lookup[0] == "name: stomp" and lookup[1] == "status: running"
        assert lookup[2].startswith("created_at: ") and lookup[3].startswith("started_at: ")
        assert lookup[4].startswith("config: {")
        assert ctl(b, "gateway", "lookup", "carrier_pigeon") == "undefined\n"

        # stop / start, idempotent.
        assert ctl(b, "gateway", "stop", "mqttsn") == "ok\n"
        assert ctl(b, "gateway", "stop", "mqttsn") == "ok\n"
        assert any(re.fullmatch(r"Gateway\(name=mqttsn, status=stopped, stopped_at=\S+\)", l) for l in ctl(b, "gateway", "list").splitlines())
        assert ctl(b, "gateway", "start", "mqttsn") == "ok\n"

        # unload / load: the loaded gateway takes clients on its new listener.
        assert ctl(b, "gateway", "unload", "mqttsn") == "ok\n"
        assert "Gateway(name=mqttsn, status=unloaded)" in ctl(b, "gateway", "list")
        assert ctl(b, "gateway", "lookup", "mqttsn") == "name: mqttsn\nstatus: unloaded\n"
        assert ctl(b, "gateway", "unload", "mqttsn").startswith("Error: ")
        port = free_udp_port()
        conf = json.dumps({"listeners": [{"type": "udp", "name": "default", "bind": f"{HOST}:{port}"}]})
        assert ctl(b, "gateway", "load", "mqttsn", conf) == "ok\n"
        assert ctl(b, "gateway", "load", "mqttsn", conf) == "Error: The mqttsn gateway already loaded\n"
        sns = SnFactory(port)
        sns(client_id=unique("ctl-sn"))

        # gateway-registry.
        reg = ctl(b, "gateway-registry", "list").splitlines()
        assert any(re.fullmatch(r"Registered Name: stomp, Callback Module: junction_gw_stomp::\S+", l) for l in reg), reg
        assert any(l.startswith("Registered Name: mqttsn, Callback Module: junction_gw_mqttsn::") for l in reg), reg

        # gateway-clients.
        line = ctl(b, "gateway-clients", "list", "stomp").strip()
        assert re.fullmatch(
            rf"Client\({stomp_id}, username=undefined, peername=127\.0\.0\.1:\d+, clean_start=true, keepalive=\d+, "
            r"subscriptions=1, delivered_msgs=0, connected=true, created_at=\d+, connected_at=\d+\)",
            line,
        ), line
        assert ctl(b, "gateway-clients", "lookup", "stomp", stomp_id).strip() == line
        assert ctl(b, "gateway-clients", "lookup", "stomp", "nobody") == "Not Found.\n"
        assert ctl(b, "gateway-clients", "list", "carrier_pigeon") == "Bad Gateway Name.\n"

        # gateway-metrics: sorted, names padded to 30.
        metrics = ctl(b, "gateway-metrics", "stomp").splitlines()
        names = [l.split(":")[0].rstrip() for l in metrics]
        assert names == sorted(names) and "bytes.received" in names
        assert re.fullmatch(r"packets\.connect\.received {6}: 1", next(l for l in metrics if l.startswith("packets.connect.")))
        assert ctl(b, "gateway-metrics", "carrier_pigeon") == "Bad Gateway Name.\n"

        # Kicks.
        assert ctl(b, "gateway-clients", "kick", "stomp", stomp_id) == "ok\n"
        assert ctl(b, "gateway-clients", "kick", "stomp", stomp_id) == "Not Found.\n"
        assert ctl(b, "clients", "kick", mqtt_id) == "ok\n"
        assert ctl(b, "clients", "kick", mqtt_id) == "Not Found.\n"

        # reload: a gateway change in the file applies at once; others wait for a restart.
        (b.workdir / "junction.conf").write_text(config + 'gateway.stomp.mountpoint = "reloaded/"\nmqtt.upgrade_qos = true\n')
        out = ctl(b, "reload")
        assert out.splitlines() == ["ok", "changed, applied: gateway", "changed, applied at the next restart: mqtt"], out
        assert "reloaded/" in ctl(b, "gateway", "lookup", "stomp")

        # Credentials: none, or wrong, fail the command.
        assert "refused" in ctl(b, "gateway", "list", key=None, ok=False)
        assert "refused" in ctl(b, "gateway", "list", key=(ADMIN[0], "wrong"), ok=False)
        b.assert_alive()
    finally:
        mqtt.close_all()
        stomps.close_all()
        if sns is not None:
            sns.close_all()
        b.stop()
