"""The management API over TLS, `dashboard.listeners.https` with EMQX's `ssl_options`:
driven with `requests` (urllib3 on Python's ssl) and raw `ssl` sockets, and checked with
`openssl s_client`."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess

import pytest
import requests

from junction_harness import HOST, TIMEOUT, start_broker
from test_api import ADMIN, eventually
from test_tls import make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def https_broker(tmp_path, pki, ssl_options: str = "", extra: str = ""):
    keys = tmp_path / "api_keys.txt"
    keys.write_text(f"{ADMIN[0]}:{ADMIN[1]}\n")
    config = (
        f'api_key.bootstrap_file = "{keys}"\n'
        "dashboard.listeners.https {\n"
        "  enable = true\n"
        f'  bind = "{HOST}:0"\n'
        f"{extra}"
        f'  ssl_options {{ certfile = "{pki.server_cert}", keyfile = "{pki.server_key}"\n{ssl_options} }}\n'
        "}\n"
    )
    return start_broker(tmp_path / "b", config=config, ws=False)


def url(b, path: str = "/clients") -> str:
    return f"https://localhost:{b.port('dashboard:https')}/api/v5{path}"


def test_the_api_is_served_over_https_with_the_configured_certificate(tmp_path, pki):
    b = https_broker(tmp_path, pki)
    try:
        # Verified against the test CA, for the name on the certificate.
        r = requests.get(url(b), auth=ADMIN, verify=str(pki.ca), timeout=TIMEOUT)
        assert r.status_code == 200, r.text
        assert r.json()["meta"]["page"] == 1
        # Errors keep EMQX's shape over TLS too.
        r = requests.get(url(b, "/clients/nobody"), auth=ADMIN, verify=str(pki.ca), timeout=TIMEOUT)
        assert r.status_code == 404 and r.json()["code"] == "CLIENTID_NOT_FOUND", r.text
        # The plain listener still serves beside it.
        plain = f"http://{HOST}:{b.port('dashboard:http')}/api/v5/clients"
        assert requests.get(plain, auth=ADMIN, timeout=TIMEOUT).status_code == 200
        # Plain HTTP on the TLS port is not served.
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(url(b).replace("https:", "http:"), auth=ADMIN, timeout=TIMEOUT)
        # openssl sees the configured certificate.
        if shutil.which("openssl"):
            out = subprocess.run(
                ["openssl", "s_client", "-connect", f"{HOST}:{b.port('dashboard:https')}",
                 "-CAfile", str(pki.ca), "-verify_return_error", "-brief"],
                input="", capture_output=True, text=True, timeout=TIMEOUT,
            )
            assert "Verification: OK" in out.stderr, out.stderr
            assert "CN=localhost" in out.stderr or "CN = localhost" in out.stderr, out.stderr
        b.assert_alive()
    finally:
        b.stop()


def test_the_https_api_can_require_client_certificates(tmp_path, pki):
    options = f'cacertfile = "{pki.ca}", verify = verify_peer, fail_if_no_peer_cert = true\n'
    b = https_broker(tmp_path, pki, ssl_options=options)
    try:
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(url(b), auth=ADMIN, verify=str(pki.ca), timeout=TIMEOUT)
        with pytest.raises((requests.exceptions.SSLError, requests.exceptions.ConnectionError)):
            requests.get(url(b), auth=ADMIN, verify=str(pki.ca), timeout=TIMEOUT,
                         cert=(str(pki.rogue_cert), str(pki.rogue_key)))
        r = requests.get(url(b), auth=ADMIN, verify=str(pki.ca), timeout=TIMEOUT,
                         cert=(str(pki.client_cert), str(pki.client_key)))
        assert r.status_code == 200, r.text
        b.assert_alive()
    finally:
        b.stop()


def test_the_https_api_offers_only_the_configured_versions(tmp_path, pki):
    options = 'versions = ["tlsv1.3"], ciphers = ["TLS_AES_256_GCM_SHA384"]\n'
    b = https_broker(tmp_path, pki, ssl_options=options)
    port = b.port("dashboard:https")
    try:
        old = ssl.create_default_context(cafile=str(pki.ca))
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        with socket.create_connection((HOST, port), timeout=TIMEOUT) as raw:
            with pytest.raises(ssl.SSLError):
                old.wrap_socket(raw, server_hostname="localhost")
        new = ssl.create_default_context(cafile=str(pki.ca))
        with socket.create_connection((HOST, port), timeout=TIMEOUT) as raw:
            with new.wrap_socket(raw, server_hostname="localhost") as tls:
                assert tls.version() == "TLSv1.3"
                assert tls.cipher()[0] == "TLS_AES_256_GCM_SHA384"
        b.assert_alive()
    finally:
        b.stop()


def test_a_silent_https_api_connection_is_closed_after_the_handshake_timeout(tmp_path, pki):
    b = https_broker(tmp_path, pki, ssl_options='handshake_timeout = "1s"\n')
    try:
        with socket.create_connection((HOST, b.port("dashboard:https")), timeout=TIMEOUT) as raw:
            # No ClientHello: the server gives up on the handshake and closes, well before
            # the 30 s an idle plain connection is given.
            try:
                assert raw.recv(1) == b""
            except ConnectionResetError:
                pass
        assert requests.get(url(b), auth=ADMIN, verify=str(pki.ca), timeout=TIMEOUT).status_code == 200
    finally:
        b.stop()


def _times_out(target: str, ca) -> bool:
    try:
        requests.get(target, auth=ADMIN, verify=str(ca), timeout=0.5)
    except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectTimeout):
        return True
    except requests.exceptions.SSLError as e:
        # The handshake read timed out inside ssl.
        return "timed out" in str(e)
    return False


def test_https_api_connections_past_max_connections_wait(tmp_path, pki):
    b = https_broker(tmp_path, pki, extra="  max_connections = 1\n")
    port = b.port("dashboard:https")
    try:
        assert requests.get(url(b), auth=ADMIN, verify=str(pki.ca), timeout=TIMEOUT).status_code == 200
        # A finished handshake holds the one slot: the next request is not served...
        ctx = ssl.create_default_context(cafile=str(pki.ca))
        held = ctx.wrap_socket(socket.create_connection((HOST, port), timeout=TIMEOUT),
                               server_hostname="localhost")
        eventually("the open connection holds the slot", lambda: _times_out(url(b), pki.ca))
        # ...until it goes.
        held.close()
        assert requests.get(url(b), auth=ADMIN, verify=str(pki.ca), timeout=TIMEOUT).status_code == 200
        b.assert_alive()
    finally:
        b.stop()
