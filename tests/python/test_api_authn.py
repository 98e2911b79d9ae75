"""Authenticators and built-in users through the API (reference §2.3 and §2.4): a
gateway's, a gateway listener's and MQTT's, with stomp.py and paho-mqtt clients logging
in with the users made; users and authenticators are kept across a restart."""

from __future__ import annotations

import pytest
import requests

from junction_harness import HOST, TIMEOUT, ClientFactory, free_port, start_broker, unique
from test_api import ADMIN, VIEWER
from test_stomp import StompFactory
from test_stomp_auth_tls import refused

BUILTIN = {
    "mechanism": "password_based",
    "backend": "built_in_database",
    "user_id_type": "username",
    "password_hash_algorithm": {"name": "sha256", "salt_position": "suffix"},
}


def start(tmp_path, workdir=None, extra: str = ""):
    keys = tmp_path / "api_keys.txt"
    keys.write_text(f"{ADMIN[0]}:{ADMIN[1]}\n{VIEWER[0]}:{VIEWER[1]}:viewer\n")
    config = f'api_key.bootstrap_file = "{keys}"\n' + extra
    port = getattr(start, "stomp_port", None) or free_port()
    start.stomp_port = port
    env = {"JUNCTION_GATEWAY__STOMP__LISTENERS__TCP__DEFAULT__BIND": f"{HOST}:{port}"}
    b = start_broker(workdir or tmp_path / "b", config=config, env=env, ws=False)
    b.api = f"http://{HOST}:{b.port('dashboard:http')}/api/v5"
    return b


def call(method, url, auth=ADMIN, **kw):
    return requests.request(method, url, auth=auth, timeout=TIMEOUT, **kw)


def logs_in(b, username=None, passcode=None) -> bool:
    f = StompFactory(b.port("stomp:tcp:default"))
    try:
        conn, rec = f(connect=False)
        kwargs = {} if username is None else {"username": username, "passcode": passcode}
        conn.connect(wait=False, **kwargs)
        deadline_ok = rec.connected.wait(TIMEOUT)
        return bool(deadline_ok and rec.connected_frame is not None)
    finally:
        f.close_all()


def test_a_gateway_authenticator_and_its_users_through_the_api(tmp_path):
    start.stomp_port = None
    b = start(tmp_path)
    try:
        url = f"{b.api}/gateways/stomp/authentication"
        assert call("GET", url).status_code == 204
        r = call("POST", url, json={"mechanism": "jwt"})
        assert r.status_code == 400 and "authentication" in r.json()["message"], r.text
        assert call("POST", url, json=BUILTIN, auth=VIEWER).status_code == 403
        r = call("POST", url, json=BUILTIN)
        assert r.status_code == 201, r.text
        assert r.json()["id"] == "password_based:built_in_database"
        r = call("POST", url, json=BUILTIN)
        assert r.status_code == 400 and r.json()["message"] == "The authentication already exist on stomp"
        got = call("GET", url, auth=VIEWER).json()
        assert got["backend"] == "built_in_database" and got["enable"] is True

        # A chain with no users lets nobody in.
        assert not logs_in(b)
        users = f"{url}/users"
        r = call("POST", users, json={"user_id": "alice", "password": "pw1"})
        assert r.status_code == 201 and r.json() == {"user_id": "alice", "is_superuser": False}, r.text
        r = call("POST", users, json={"user_id": "alice", "password": "again"})
        assert r.status_code == 409 and r.json()["code"] == "ALREADY_EXISTS"
        assert logs_in(b, "alice", "pw1")
        f = StompFactory(b.port("stomp:tcp:default"))
        conn, rec = f(connect=False)
        assert refused(conn, rec, username="alice", passcode="wrong") == "Login Failed: bad_username_or_password"
        f.close_all()

        # Change the password; list, filter, look up.
        r = call("PUT", f"{users}/alice", json={"password": "pw2", "is_superuser": True})
        assert r.status_code == 200 and r.json()["is_superuser"] is True
        assert not logs_in(b, "alice", "pw1") and logs_in(b, "alice", "pw2")
        listed = call("GET", users, auth=VIEWER).json()
        assert listed["data"] == [{"user_id": "alice", "is_superuser": True}]
        assert listed["meta"]["count"] == 1
        assert call("GET", users, params={"like_user_id": "zz"}).json()["data"] == []
        assert call("GET", f"{users}/alice").json()["user_id"] == "alice"
        assert call("GET", f"{users}/nobody").status_code == 404
        assert call("PUT", f"{users}/nobody", json={"password": "x"}).status_code == 404

        # Import EMQX's CSV: one new user, one replaced.
        csv = "user_id,password,is_superuser\nbob,b1,false\nalice,a3,false\n"
        r = call("POST", f"{url}/import_users", files={"filename": ("users.csv", csv, "text/csv")})
        assert r.status_code == 200, r.text
        assert r.json() == {"total": 2, "success": 1, "override": 1, "skipped": 0, "failed": 0}
        assert logs_in(b, "bob", "b1") and logs_in(b, "alice", "a3")
        r = call("POST", f"{url}/import_users", files={"other": ("x.csv", csv, "text/csv")})
        assert r.status_code == 400
    finally:
        b.stop()

    # Kept: the authenticator and its users.
    again = start(tmp_path, workdir=b.workdir)
    try:
        url = f"{again.api}/gateways/stomp/authentication"
        assert logs_in(again, "bob", "b1") and not logs_in(again)
        assert call("DELETE", f"{url}/users/bob").status_code == 204
        assert call("DELETE", f"{url}/users/bob").status_code == 404
        assert not logs_in(again, "bob", "b1")
        # Disabled: everyone is let in again; removed: nothing to show.
        r = call("PUT", url, json={**BUILTIN, "enable": False})
        assert r.status_code == 200 and r.json()["enable"] is False, r.text
        assert logs_in(again)
        assert call("DELETE", url).status_code == 204
        assert call("GET", url).status_code == 204
        r = call("PUT", url, json=BUILTIN)
        assert r.status_code == 400 and r.json()["message"] == "The authentication not found on stomp"
        # Deleted with its users: one made again starts empty (alice is gone).
        assert call("POST", url, json=BUILTIN).status_code == 201
        assert call("GET", f"{url}/users").json()["data"] == []
        assert not logs_in(again, "alice", "a3")
        again.assert_alive()
    finally:
        again.stop()


def test_a_listener_authenticator_guards_that_listener(tmp_path):
    start.stomp_port = None
    b = start(tmp_path)
    try:
        lid = "stomp:tcp:default"
        url = f"{b.api}/gateways/stomp/listeners/{lid}/authentication"
        assert call("GET", url).status_code == 204
        r = call("POST", url, json=BUILTIN)
        assert r.status_code == 201 and r.json()["chain_name"] == lid, r.text
        assert call("POST", f"{url}/users", json={"user_id": "carol", "password": "c1"}).status_code == 201
        assert not logs_in(b) and logs_in(b, "carol", "c1")
        assert call("GET", f"{url}/users").json()["data"] == [{"user_id": "carol", "is_superuser": False}]
        r = call("GET", f"{b.api}/gateways/stomp/listeners/stomp:tcp:nosuch/authentication")
        assert r.status_code == 404
        # The gateway's own chain is untouched.
        assert call("GET", f"{b.api}/gateways/stomp/authentication").status_code == 204
        # The listener's users: look up, change, import, delete.
        assert call("GET", f"{url}/users/carol").json() == {"user_id": "carol", "is_superuser": False}
        assert call("PUT", f"{url}/users/carol", json={"password": "c2"}).status_code == 200
        assert not logs_in(b, "carol", "c1") and logs_in(b, "carol", "c2")
        users_json = '[{"user_id": "erin", "password": "e1", "is_superuser": true}]'
        r = call("POST", f"{url}/import_users", files={"filename": ("users.json", users_json, "application/json")})
        assert r.status_code == 200 and r.json()["success"] == 1, r.text
        assert logs_in(b, "erin", "e1")
        assert call("DELETE", f"{url}/users/erin").status_code == 204
        assert not logs_in(b, "erin", "e1")
        # Replaced (disabled), then removed: the listener lets everyone in again.
        r = call("PUT", url, json={**BUILTIN, "enable": False})
        assert r.status_code == 200 and r.json()["enable"] is False, r.text
        assert logs_in(b)
        assert call("DELETE", url).status_code == 204
        assert call("GET", url).status_code == 204
    finally:
        b.stop()


def test_mqtt_built_in_users_through_the_api(tmp_path):
    start.stomp_port = None
    extra = 'authentication = [{mechanism = password_based, backend = built_in_database}]\n'
    b = start(tmp_path, extra=extra)
    clients = ClientFactory()
    try:
        [a] = call("GET", f"{b.api}/authentication", auth=VIEWER).json()
        assert a["id"] == "password_based:built_in_database"
        users = f"{b.api}/authentication/{a['id']}/users"
        assert call("POST", users, json={"user_id": "dave", "password": "d1"}).status_code == 201
        c = clients(b.tcp, client_id=unique("authn"))
        c.c.username_pw_set("dave", "d1")
        c.connect()
        bad = clients(b.tcp, client_id=unique("authn-bad"))
        bad.c.username_pw_set("dave", "nope")
        with pytest.raises(Exception):
            bad.connect()
        assert call("GET", f"{b.api}/authentication/jwt/users").status_code == 404
        # Look up, change, import, list, delete.
        assert call("GET", f"{users}/dave").json() == {"user_id": "dave", "is_superuser": False}
        assert call("PUT", f"{users}/dave", json={"is_superuser": True}).json()["is_superuser"] is True
        csv = "user_id,password,is_superuser\nfrank,f1,false\n"
        r = call("POST", f"{b.api}/authentication/{a['id']}/import_users", files={"filename": ("u.csv", csv, "text/csv")})
        assert r.status_code == 200 and r.json()["success"] == 1, r.text
        assert [u["user_id"] for u in call("GET", users).json()["data"]] == ["dave", "frank"]
        assert call("DELETE", f"{users}/frank").status_code == 204
        assert [u["user_id"] for u in call("GET", users).json()["data"]] == ["dave"]
    finally:
        clients.close_all()
        b.stop()


def test_mqtt_authenticators_are_added_changed_removed_and_kept(tmp_path):
    start.stomp_port = None
    b = start(tmp_path)
    clients = ClientFactory()

    def mqtt_logs_in(broker, user=None, password=None) -> bool:
        c = clients(broker.tcp, client_id=unique("chain"))
        if user is not None:
            c.c.username_pw_set(user, password)
        try:
            c.connect()
            return True
        except Exception:  # noqa: BLE001 - a refused CONNACK
            return False

    try:
        url = f"{b.api}/authentication"
        assert call("GET", url).json() == []
        assert mqtt_logs_in(b)
        r = call("POST", url, json=BUILTIN)
        assert r.status_code == 200 and r.json()["id"] == "password_based:built_in_database", r.text
        assert call("POST", url, json=BUILTIN).status_code == 409
        assert call("POST", url, json={"mechanism": "jwt"}).status_code == 400
        # A chain with no users lets nobody in; a user added through the API does.
        assert not mqtt_logs_in(b)
        one = f"{url}/password_based:built_in_database"
        assert call("POST", f"{one}/users", json={"user_id": "gina", "password": "g1"}).status_code == 201
        assert mqtt_logs_in(b, "gina", "g1")
        # Disabled: everyone is let in.
        r = call("PUT", one, json={**BUILTIN, "enable": False})
        assert r.status_code == 200 and r.json()["enable"] is False
        assert mqtt_logs_in(b)
        assert call("GET", f"{url}/jwt").status_code == 404
    finally:
        clients.close_all()
        b.stop()
    # Kept: the changed chain and its user.
    again = start(tmp_path, workdir=b.workdir)
    clients = ClientFactory()
    try:
        url = f"{again.api}/authentication"
        [a] = call("GET", url).json()
        assert a["enable"] is False
        one = f"{url}/password_based:built_in_database"
        assert call("PUT", one, json=BUILTIN).status_code == 200
        assert not mqtt_logs_in(again) and mqtt_logs_in(again, "gina", "g1")
        assert call("DELETE", one).status_code == 204
        assert call("GET", one).status_code == 404
        assert call("GET", url).json() == []
        assert mqtt_logs_in(again)
        # Deleted with its users: one made again starts empty.
        assert call("POST", url, json=BUILTIN).status_code == 200
        assert call("GET", f"{one}/users").json()["data"] == []
        assert not mqtt_logs_in(again, "gina", "g1")
    finally:
        clients.close_all()
        again.stop()
