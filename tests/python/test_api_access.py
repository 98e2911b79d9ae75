"""Who may use the API: dashboard users with `POST /login` tokens (no known default
password, failed logins rate-limited, tokens that expire) and API keys managed through
`/api/v5/api_key`, every change kept across a restart. Driven with `requests`."""

from __future__ import annotations

import re

import requests

from junction_harness import HOST, TIMEOUT, start_broker
from test_api import ADMIN, eventually


def api_of(b) -> str:
    return f"http://{HOST}:{b.port('dashboard:http')}/api/v5"


def login(api: str, username: str, password: str) -> requests.Response:
    return requests.post(f"{api}/login", json={"username": username, "password": password}, timeout=TIMEOUT)


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def generated_password(b) -> str | None:
    for line in b.stderr_lines:
        m = re.search(r"created dashboard user (\S+) with password (\S+)", line)
        if m:
            return m.group(2)
    return None


def test_no_password_works_until_the_generated_one_is_read(tmp_path):
    b = start_broker(tmp_path / "b", ws=False)
    try:
        api = api_of(b)
        password = generated_password(b)
        assert password and len(password) >= 16
        # EMQX's well-known default does not work, nor an empty one.
        for wrong in ("public", ""):
            r = login(api, "admin", wrong)
            assert r.status_code == 401 and r.json()["code"] == "BAD_USERNAME_OR_PWD", r.text
        r = login(api, "admin", password)
        assert r.status_code == 200, r.text
        assert r.json()["role"] == "administrator"
        token = r.json()["token"]
        r = requests.get(f"{api}/clients", headers=bearer(token), timeout=TIMEOUT)
        assert r.status_code == 200, r.text
        # A made-up token: EMQX's code.
        r = requests.get(f"{api}/clients", headers=bearer("0" * 64), timeout=TIMEOUT)
        assert r.status_code == 401 and r.json()["code"] == "BAD_TOKEN"
        # Log out: the token ends.
        r = requests.post(f"{api}/logout", json={"username": "admin"}, headers=bearer(token), timeout=TIMEOUT)
        assert r.status_code == 204, r.text
        r = requests.get(f"{api}/clients", headers=bearer(token), timeout=TIMEOUT)
        assert r.status_code == 401
    finally:
        b.stop()
    # Restarted: nothing new is generated or shown; the password still works.
    again = start_broker(b.workdir, ws=False)
    try:
        assert generated_password(again) is None
        assert login(api_of(again), "admin", password).status_code == 200
    finally:
        again.stop()


def test_a_configured_default_password_logs_in_and_can_be_changed(tmp_path):
    config = 'dashboard { default_username = "root", default_password = "first-password" }\n'
    b = start_broker(tmp_path / "b", config=config, ws=False)
    try:
        api = api_of(b)
        assert generated_password(b) is None
        token = login(api, "root", "first-password").json()["token"]
        users = requests.get(f"{api}/users", headers=bearer(token), timeout=TIMEOUT).json()
        assert [u["username"] for u in users] == ["root"]
        url = f"{api}/users/root/change_pwd"
        r = requests.post(url, json={"old_pwd": "nope-nope", "new_pwd": "second-password"}, headers=bearer(token), timeout=TIMEOUT)
        assert r.status_code == 400 and "old_pwd" in r.json()["message"]
        r = requests.post(url, json={"old_pwd": "first-password", "new_pwd": "short"}, headers=bearer(token), timeout=TIMEOUT)
        assert r.status_code == 400 and "new_pwd" in r.json()["message"]
        r = requests.post(url, json={"old_pwd": "first-password", "new_pwd": "second-password"}, headers=bearer(token), timeout=TIMEOUT)
        assert r.status_code == 204, r.text
        # The change ends the user's tokens; the old password is gone.
        assert requests.get(f"{api}/clients", headers=bearer(token), timeout=TIMEOUT).status_code == 401
        assert login(api, "root", "first-password").status_code == 401
        assert login(api, "root", "second-password").status_code == 200
    finally:
        b.stop()
    # Kept: the configured password is only the first one.
    again = start_broker(b.workdir, config=config, ws=False)
    try:
        assert login(api_of(again), "root", "second-password").status_code == 200
        assert login(api_of(again), "root", "first-password").status_code == 401
    finally:
        again.stop()


def test_failed_logins_lock_the_name_for_a_while(tmp_path):
    config = 'dashboard.default_password = "the-right-one"\n'
    b = start_broker(tmp_path / "b", config=config, ws=False)
    try:
        api = api_of(b)
        for _ in range(5):
            assert login(api, "admin", "guess").json()["message"] == "Auth failed"
        r = login(api, "admin", "the-right-one")
        assert r.status_code == 401 and "try again in" in r.json()["message"], r.text
        b.assert_alive()
    finally:
        b.stop()


def test_a_token_expires_after_token_expired_time(tmp_path):
    config = 'dashboard { default_password = "pw-for-expiry", token_expired_time = "1s" }\n'
    b = start_broker(tmp_path / "b", config=config, ws=False)
    try:
        api = api_of(b)
        token = login(api, "admin", "pw-for-expiry").json()["token"]
        assert requests.get(f"{api}/clients", headers=bearer(token), timeout=TIMEOUT).status_code == 200

        def expired():
            r = requests.get(f"{api}/clients", headers=bearer(token), timeout=TIMEOUT)
            return r.status_code == 401 and r.json()["code"] == "TOKEN_TIME_OUT"

        eventually("the token expires", expired)
    finally:
        b.stop()


def test_api_keys_are_created_used_changed_deleted_and_kept(tmp_path):
    keys = tmp_path / "api_keys.txt"
    keys.write_text(f"{ADMIN[0]}:{ADMIN[1]}\n")
    config = f'api_key.bootstrap_file = "{keys}"\n'
    b = start_broker(tmp_path / "b", config=config, ws=False)
    try:
        api = api_of(b)
        r = requests.post(f"{api}/api_key", json={"name": "ci", "role": "viewer", "desc": "for CI"}, auth=ADMIN, timeout=TIMEOUT)
        assert r.status_code == 200, r.text
        created = r.json()
        viewer = (created["api_key"], created["api_secret"])
        assert created["role"] == "viewer" and created["enable"] is True
        assert created["expired_at"] == "infinity"
        # The new key reads, and may not change anything.
        assert requests.get(f"{api}/clients", auth=viewer, timeout=TIMEOUT).status_code == 200
        r = requests.post(f"{api}/api_key", json={"name": "x"}, auth=viewer, timeout=TIMEOUT)
        assert r.status_code == 403 and r.json()["code"] == "UNAUTHORIZED_ROLE"
        # The secret is never shown again.
        listed = requests.get(f"{api}/api_key", auth=ADMIN, timeout=TIMEOUT).json()
        assert {k["name"] for k in listed} == {ADMIN[0], "ci"}
        assert all("api_secret" not in k for k in listed)
        # Refusals: a taken name, a bad role, a bad time, an unknown key.
        for body, what in (
            ({"name": "ci"}, "Name already exists"),
            ({"name": "other", "role": "root"}, "role"),
            ({"name": "other", "expired_at": "tomorrow"}, "expired_at"),
            ({"name": "bad name!"}, "name"),
        ):
            r = requests.post(f"{api}/api_key", json=body, auth=ADMIN, timeout=TIMEOUT)
            assert r.status_code == 400 and what in r.json()["message"], r.text
        assert requests.get(f"{api}/api_key/nosuch", auth=ADMIN, timeout=TIMEOUT).status_code == 404
        # Disabled: refused.
        r = requests.put(f"{api}/api_key/ci", json={"enable": False}, auth=ADMIN, timeout=TIMEOUT)
        assert r.status_code == 200 and r.json()["enable"] is False
        assert requests.get(f"{api}/clients", auth=viewer, timeout=TIMEOUT).status_code == 401
        # A bootstrap key is the file's to change.
        r = requests.delete(f"{api}/api_key/{ADMIN[0]}", auth=ADMIN, timeout=TIMEOUT)
        assert r.status_code == 400
    finally:
        b.stop()
    again = start_broker(b.workdir, config=config, ws=False)
    try:
        api = api_of(again)
        # Kept disabled; enabled again, the same secret works.
        assert requests.get(f"{api}/clients", auth=viewer, timeout=TIMEOUT).status_code == 401
        r = requests.put(f"{api}/api_key/ci", json={"enable": True}, auth=ADMIN, timeout=TIMEOUT)
        assert r.status_code == 200
        assert requests.get(f"{api}/clients", auth=viewer, timeout=TIMEOUT).status_code == 200
        # An expiry in the past ends it.
        r = requests.put(f"{api}/api_key/ci", json={"expired_at": "2020-01-01T00:00:00Z"}, auth=ADMIN, timeout=TIMEOUT)
        assert r.json()["expired"] is True
        assert requests.get(f"{api}/clients", auth=viewer, timeout=TIMEOUT).status_code == 401
        assert requests.delete(f"{api}/api_key/ci", auth=ADMIN, timeout=TIMEOUT).status_code == 204
        assert requests.get(f"{api}/api_key/ci", auth=ADMIN, timeout=TIMEOUT).status_code == 404
    finally:
        again.stop()
