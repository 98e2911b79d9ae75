"""`POST /api/v5/configs/reload` (and `junction ctl reload`): the file read again and
applied to the running node. MQTT listeners are added, changed and removed while the
clients of unchanged listeners stay connected; `mqtt.*` applies to the next connection;
MQTT's authenticator chain follows the file unless the API replaced it; anything else is
reported as needing a restart. Clients are paho-mqtt."""

from __future__ import annotations

import socket

import pytest
import requests

from junction_harness import HOST, TIMEOUT, ClientFactory, MqttError, free_port, start_broker, unique
from test_api import ADMIN


def reload(b) -> dict:
    r = requests.post(f"http://{HOST}:{b.port('dashboard:http')}/api/v5/configs/reload", auth=ADMIN, timeout=TIMEOUT * 4)
    assert r.status_code == 200, r.text
    return r.json()


def listeners(b) -> dict:
    r = requests.get(f"http://{HOST}:{b.port('dashboard:http')}/api/v5/listeners", auth=ADMIN, timeout=TIMEOUT)
    assert r.status_code == 200, r.text
    return {l["id"]: l for l in r.json()}


def refused(port: int) -> bool:
    try:
        socket.create_connection((HOST, port), timeout=TIMEOUT).close()
    except ConnectionRefusedError:
        return True
    return False


def test_reload_adds_changes_and_removes_mqtt_listeners_and_keeps_live_clients(tmp_path):
    keys = tmp_path / "api_keys.txt"
    keys.write_text(f"{ADMIN[0]}:{ADMIN[1]}\n")
    base = f'api_key.bootstrap_file = "{keys}"\n'
    b = start_broker(tmp_path / "b", config=base, ws=False)
    clients = ClientFactory()
    conf = b.workdir / "junction.conf"
    try:
        watcher = clients(b.tcp, client_id=unique("watch")).connect()
        watcher.subscribe("reload/#", qos=1)

        # A new listener and a smaller packet size.
        extra = free_port()
        conf.write_text(base + f'listeners.tcp.extra {{ bind = "{HOST}:{extra}" }}\nmqtt.max_packet_size = "2KB"\n')
        answer = reload(b)
        assert sorted(answer["applied"]) == ["listeners", "mqtt"] and answer["restart_needed"] == [], answer
        assert "tcp:extra" in listeners(b)
        newcomer = clients(extra, client_id=unique("new")).connect()
        newcomer.publish("reload/new", b"through the new listener", qos=1)
        assert watcher.expect()[0].payload == b"through the new listener"
        # The new limit applies to connections made after the reload...
        newcomer.c.publish("reload/big", b"x" * 4096, qos=0)
        assert newcomer._disconnected.wait(TIMEOUT), "a 4 KB packet on a new connection was accepted"
        # ...and not to those already open: the watcher's connection kept its settings.
        watcher.publish("reload/big", b"y" * 4096, qos=1)
        assert watcher.expect()[0].payload == b"y" * 4096

        # The new listener changed (a connection bound): reopened on the same port.
        conf.write_text(base + f'listeners.tcp.extra {{ bind = "{HOST}:{extra}", max_connections = 5 }}\nmqtt.max_packet_size = "2KB"\n')
        assert reload(b)["applied"] == ["listeners"]
        assert listeners(b)["tcp:extra"]["max_connections"] == 5
        again = clients(extra, client_id=unique("again")).connect()
        again.publish("reload/again", b"reopened", qos=1)
        assert watcher.expect()[0].payload == b"reopened"

        # Removed: the port closes; clients of the default listener are untouched.
        conf.write_text(base + 'mqtt.max_packet_size = "2KB"\n')
        assert reload(b)["applied"] == ["listeners"]
        assert refused(extra)
        assert "tcp:extra" not in listeners(b)
        watcher.publish("reload/still", b"still here", qos=1)
        assert watcher.expect()[0].payload == b"still here"

        # A change the broker already holds waits for a restart, and is said to.
        conf.write_text(base + 'mqtt.max_packet_size = "2KB"\nmqtt.upgrade_qos = true\nnode.worker_threads = 1\n')
        answer = reload(b)
        assert answer["applied"] == [] and sorted(answer["restart_needed"]) == ["mqtt", "node"], answer

        # A listener that cannot reopen (its new port taken) is refused by name, and it
        # is back on its old port.
        port = free_port()
        conf.write_text(base + f'listeners.tcp.moving {{ bind = "{HOST}:{port}" }}\nmqtt.max_packet_size = "2KB"\n')
        assert reload(b)["applied"] == ["listeners"]
        with socket.socket() as taken:
            taken.bind((HOST, 0))
            taken.listen()
            busy = taken.getsockname()[1]
            conf.write_text(base + f'listeners.tcp.moving {{ bind = "{HOST}:{busy}" }}\nmqtt.max_packet_size = "2KB"\n')
            r = requests.post(f"http://{HOST}:{b.port('dashboard:http')}/api/v5/configs/reload", auth=ADMIN, timeout=TIMEOUT * 4)
            assert r.status_code == 400 and "listeners" in r.json()["message"], r.text
        assert listeners(b)["tcp:moving"]["bind"] == f"{HOST}:{port}"
        late = clients(port, client_id=unique("late")).connect()
        late.publish("reload/late", b"old listener back", qos=1)
        assert watcher.expect()[0].payload == b"old listener back"
        b.assert_alive()
    finally:
        clients.close_all()
        b.stop()


def test_reload_follows_the_files_authentication_unless_the_api_replaced_it(tmp_path):
    keys = tmp_path / "api_keys.txt"
    keys.write_text(f"{ADMIN[0]}:{ADMIN[1]}\n")
    base = f'api_key.bootstrap_file = "{keys}"\n'
    b = start_broker(tmp_path / "b", config=base, ws=False)
    clients = ClientFactory()
    conf = b.workdir / "junction.conf"
    try:
        clients(b.tcp, client_id=unique("anon")).connect()
        chain = 'authentication = [{ mechanism = password_based, backend = built_in_database, user_id_type = username }]\n'
        conf.write_text(base + chain)
        assert reload(b)["applied"] == ["authentication"]
        # The built-in database is empty: nobody gets in now.
        with pytest.raises(MqttError):
            clients(b.tcp, client_id=unique("anon")).connect()
        # The API replaces the chain: from then on the file's changes do not apply.
        api = f"http://{HOST}:{b.port('dashboard:http')}/api/v5"
        r = requests.delete(f"{api}/authentication/password_based:built_in_database", auth=ADMIN, timeout=TIMEOUT)
        assert r.status_code == 204, r.text
        clients(b.tcp, client_id=unique("open")).connect()
        conf.write_text(base + chain.replace("username", "clientid"))
        assert reload(b)["applied"] == []
        clients(b.tcp, client_id=unique("still-open")).connect()
        b.assert_alive()
    finally:
        clients.close_all()
        b.stop()
