"""Every operation of the served OpenAPI document, driven for EMQX's refusals: no
credentials (401 `BAD_API_KEY_OR_SECRET`), a viewer changing something (403
`UNAUTHORIZED_ROLE`), an unknown field in a body (400 naming the field), and unknown
resources (404 `NOT_FOUND`, `CLIENTID_NOT_FOUND` for MQTT clients). The successes of each operation are in the other API tests."""

from __future__ import annotations

import requests

from junction_harness import HOST, TIMEOUT, start_broker
from test_api import ADMIN, VIEWER

# Path parameters that name nothing that exists (a gateway that does).
MISSING = {
    "name": "stomp",
    "id": "stomp:tcp:nosuch",
    "clientid": "no-such-client",
    "uid": "no-such-user",
    "topic": "no%2Fsuch",
    "node": "nobody@nowhere",
    "username": "no-such-user",
    "enable": "true",
}

# Operations on a resource that does not exist, with a body they would accept: 404.
NOT_FOUND = {
    ("GET", "/api_key/{name}"): None,
    ("PUT", "/api_key/{name}"): {"desc": "x"},
    ("DELETE", "/api_key/{name}"): None,
    ("GET", "/clients/{clientid}"): None,
    ("DELETE", "/clients/{clientid}"): None,
    ("GET", "/clients/{clientid}/subscriptions"): None,
    ("POST", "/clients/{clientid}/subscribe"): {"topic": "t"},
    ("POST", "/clients/{clientid}/unsubscribe"): {"topic": "t"},
    ("GET", "/nodes/{node}"): None,
    ("GET", "/mqtt/retainer/message/{topic}"): None,
    ("DELETE", "/mqtt/retainer/message/{topic}"): None,
    ("GET", "/authentication/{id}/users"): None,
    ("POST", "/users/{username}/change_pwd"): {"old_pwd": "x" * 8, "new_pwd": "y" * 8},
    ("GET", "/gateways/{name}/listeners/{id}"): None,
    ("DELETE", "/gateways/{name}/listeners/{id}"): None,
    ("GET", "/gateways/{name}/listeners/{id}/authentication"): None,
    ("GET", "/gateways/{name}/clients/{clientid}"): None,
    ("DELETE", "/gateways/{name}/clients/{clientid}"): None,
    ("GET", "/gateways/{name}/clients/{clientid}/subscriptions"): None,
    ("POST", "/gateways/{name}/clients/{clientid}/subscriptions"): {"topic": "t", "sub_props": {"subid": "1"}},
    ("DELETE", "/gateways/{name}/clients/{clientid}/subscriptions/{topic}"): None,
    ("GET", "/gateways/{name}/authentication/users"): None,
}


def concrete(path: str, existing: bool = False) -> str:
    values = {**MISSING, "id": "stomp:tcp:default"} if existing else MISSING
    for k, v in values.items():
        path = path.replace("{" + k + "}", v)
    return path


def test_every_operation_refuses_as_emqx_does(tmp_path):
    keys = tmp_path / "api_keys.txt"
    keys.write_text(f"{ADMIN[0]}:{ADMIN[1]}\n{VIEWER[0]}:{VIEWER[1]}:viewer\n")
    b = start_broker(tmp_path / "b", config=f'api_key.bootstrap_file = "{keys}"\n', ws=False)
    try:
        base = f"http://{HOST}:{b.port('dashboard:http')}"
        doc = requests.get(f"{base}/api-docs/openapi.json", timeout=TIMEOUT).json()
        api = f"{base}/api/v5"
        seen = 0
        for path, item in doc["paths"].items():
            for method, op in item.items():
                seen += 1
                url = api + concrete(path)
                what = f"{method.upper()} {path}"
                is_open = op.get("security") == []
                json_body = "application/json" in op.get("requestBody", {}).get("content", {})
                # No credentials.
                r = requests.request(method, url, json={} if json_body else None, timeout=TIMEOUT)
                if is_open:
                    assert r.status_code != 401, what
                else:
                    assert r.status_code == 401, f"{what}: {r.status_code} {r.text}"
                    assert r.json()["code"] == "BAD_API_KEY_OR_SECRET", what
                # A viewer may read, not change.
                if method != "get" and not is_open:
                    r = requests.request(method, url, auth=VIEWER, json={} if json_body else None, timeout=TIMEOUT)
                    assert r.status_code == 403, f"{what}: {r.status_code} {r.text}"
                    assert r.json()["code"] == "UNAUTHORIZED_ROLE", what
                # A field nobody knows: 400 naming it (only where the body is an object).
                if json_body and path not in ("/publish/bulk",):
                    r = requests.request(method, api + concrete(path, existing=True), auth=ADMIN,
                                         json={"no_such_field": 1}, timeout=TIMEOUT)
                    assert r.status_code in (400, 404), f"{what}: {r.status_code} {r.text}"
                    if r.status_code == 400:
                        assert r.json()["code"] == "BAD_REQUEST", what
                        msg = r.json()["message"]
                        assert "no_such_field" in msg or "missing field" in msg or "required" in msg, f"{what}: {msg}"
        assert seen == sum(len(i) for i in doc["paths"].values()) and seen >= 70

        # Unknown resources: 404 with EMQX's code.
        for (method, path), body in NOT_FOUND.items():
            assert path in doc["paths"] and method.lower() in doc["paths"][path], (method, path)
            r = requests.request(method, api + concrete(path), auth=ADMIN, json=body, timeout=TIMEOUT)
            assert r.status_code == 404, f"{method} {path}: {r.status_code} {r.text}"
            # EMQX's MQTT client endpoints say which resource is missing.
            code = "CLIENTID_NOT_FOUND" if path.startswith("/clients/") else "NOT_FOUND"
            assert r.json()["code"] == code, f"{method} {path}: {r.text}"
        b.assert_alive()
    finally:
        b.stop()
