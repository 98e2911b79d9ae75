"""TLS listeners (ssl, wss) with certificates made at test time by `cryptography`."""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from junction_harness import HOST, TIMEOUT, Broker, Client, MqttError, free_port, start_broker, unique

PROTOCOLS = [pytest.param(mqtt.MQTTv311, id="v311"), pytest.param(mqtt.MQTTv5, id="v5")]


# ---------------------------------------------------------------------------------------
# certificates


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_cert: Path  # a client certificate signed by a CA the broker does not trust
    rogue_key: Path


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Junction tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(key, path: Path) -> None:
    path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))


def _write_cert(cert: x509.Certificate, path: Path) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _make_ca(cn: str):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _make_leaf(ca_key, ca_cert, cn: str, *, server: bool):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    if server:
        b = b.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    else:
        b = b.add_extension(x509.SubjectAlternativeName([x509.DNSName(cn)]), critical=False)
    return key, b.sign(ca_key, hashes.SHA256())


def make_pki(d: Path) -> Pki:
    d.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = _make_ca("Junction Test CA")
    s_key, s_cert = _make_leaf(ca_key, ca_cert, "localhost", server=True)
    c_key, c_cert = _make_leaf(ca_key, ca_cert, "test-client", server=False)
    rogue_ca_key, rogue_ca = _make_ca("Rogue CA")
    r_key, r_cert = _make_leaf(rogue_ca_key, rogue_ca, "rogue-client", server=False)
    pki = Pki(
        ca=d / "ca.pem",
        server_cert=d / "server.pem",
        server_key=d / "server.key",
        client_cert=d / "client.pem",
        client_key=d / "client.key",
        rogue_cert=d / "rogue.pem",
        rogue_key=d / "rogue.key",
    )
    _write_cert(ca_cert, pki.ca)
    _write_cert(s_cert, pki.server_cert)
    _write_key(s_key, pki.server_key)
    _write_cert(c_cert, pki.client_cert)
    _write_key(c_key, pki.client_key)
    _write_cert(r_cert, pki.rogue_cert)
    _write_key(r_key, pki.rogue_key)
    return pki


# ---------------------------------------------------------------------------------------
# broker with ssl, ssl+verify_peer and wss listeners


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory, pki) -> Broker:
    ssl_port, mtls_port, wss_port = free_port(), free_port(), free_port()
    config = f"""
listeners.ssl.default {{
  bind = "{HOST}:{ssl_port}"
  ssl_options {{
    certfile = "{pki.server_cert}"
    keyfile = "{pki.server_key}"
  }}
}}
listeners.ssl.mtls {{
  bind = "{HOST}:{mtls_port}"
  ssl_options {{
    certfile = "{pki.server_cert}"
    keyfile = "{pki.server_key}"
    cacertfile = "{pki.ca}"
    verify = verify_peer
    fail_if_no_peer_cert = true
  }}
}}
listeners.wss.default {{
  bind = "{HOST}:{wss_port}"
  ssl_options {{
    certfile = "{pki.server_cert}"
    keyfile = "{pki.server_key}"
  }}
}}
"""
    b = start_broker(tmp_path_factory.mktemp("junction-tls"), config=config)
    assert b.port("ssl:default") == ssl_port, b.listeners
    assert b.port("ssl:mtls") == mtls_port, b.listeners
    assert b.port("wss:default") == wss_port, b.listeners
    yield b
    alive = b.proc.poll() is None
    b.stop()
    assert alive, f"broker died during the tests (rc={b.proc.returncode}):\n{b.stderr_tail()}"


def _exchange(sender: Client, receiver: Client, qos: int = 1) -> None:
    topic = unique("tls/x")
    receiver.subscribe(topic, qos)
    payloads = [b"over tls", bytes(range(256)) * 64]
    for p in payloads:
        sender.publish(topic, p, qos=qos)
    got = receiver.expect(len(payloads))
    assert [m.payload for m in got] == payloads


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_ssl_listener(tls_broker, pki, clients, protocol, host):
    port = tls_broker.port("ssl:default")
    tls = {"ca_certs": str(pki.ca)}
    a = clients(port, protocol=protocol, tls=tls, host=host).connect()
    b = clients(port, protocol=protocol, tls=tls, host=host).connect()
    _exchange(a, b, qos=1)
    # TLS and plain TCP clients share one broker.
    plain = clients(tls_broker.tcp, protocol=protocol).connect()
    _exchange(plain, a, qos=2)


def test_ssl_client_rejects_untrusted_server(tls_broker, pki, clients, tmp_path):
    """Sanity check of the test PKI: a client trusting another CA refuses the server."""
    other_ca = make_pki(tmp_path / "other").ca
    c = clients(tls_broker.port("ssl:default"), tls={"ca_certs": str(other_ca)})
    with pytest.raises(ssl.SSLCertVerificationError):
        c.connect()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_verify_peer_accepts_ca_signed_client_cert(tls_broker, pki, clients, protocol):
    port = tls_broker.port("ssl:mtls")
    tls = {"ca_certs": str(pki.ca), "certfile": str(pki.client_cert), "keyfile": str(pki.client_key)}
    a = clients(port, protocol=protocol, tls=tls).connect()
    b = clients(port, protocol=protocol, tls=tls).connect()
    _exchange(a, b, qos=1)


def _refused(client: Client) -> str:
    """Connect and return how the connection was refused; fail if it was accepted.

    With TLS 1.3 the client finishes its side of the handshake before the server has
    checked (or missed) the client certificate, so the refusal may surface as an alert
    or EOF on the first read after CONNECT rather than in connect() itself."""
    try:
        client.connect()
    except (ssl.SSLError, ConnectionError, OSError) as e:
        return f"handshake: {e!r}"
    except MqttError as e:
        return f"after handshake: {e}"
    raise AssertionError(f"connection accepted, CONNACK {client.connack}")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_verify_peer_refuses_client_without_cert(tls_broker, pki, clients, protocol):
    port = tls_broker.port("ssl:mtls")
    how = _refused(clients(port, protocol=protocol, tls={"ca_certs": str(pki.ca)}))
    print("refused:", how)


def test_verify_peer_refuses_cert_from_unknown_ca(tls_broker, pki, clients):
    port = tls_broker.port("ssl:mtls")
    tls = {"ca_certs": str(pki.ca), "certfile": str(pki.rogue_cert), "keyfile": str(pki.rogue_key)}
    how = _refused(clients(port, tls=tls))
    print("refused:", how)


def test_verify_peer_refusal_at_tls_level(tls_broker, pki):
    """A raw TLS socket without a certificate never gets a CONNACK: the server ends the
    TLS session (certificate_required alert or EOF) instead."""
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    # MQTT 3.1.1 CONNECT, clean session, keepalive 30, client id "raw-no-cert".
    cid = b"raw-no-cert"
    var = b"\x00\x04MQTT\x04\x02\x00\x1e" + len(cid).to_bytes(2, "big") + cid
    connect = bytes([0x10, len(var)]) + var
    with socket.create_connection((HOST, tls_broker.port("ssl:mtls")), timeout=TIMEOUT) as raw:
        with pytest.raises((ssl.SSLError, ConnectionError)) as err:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(connect)
                data = s.recv(4)
                # A clean close (b"") is a refusal too, but an SSL alert is what rustls sends.
                assert not data.startswith(b"\x20"), f"CONNACK without a client cert: {data!r}"
                raise ConnectionError(f"closed without alert: {data!r}")
    # TLS 1.3: the alert arrives on the first read after the client's handshake finished.
    assert "CERTIFICATE_REQUIRED" in str(err.value) or "closed without alert" in str(err.value), err.value


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_wss_listener(tls_broker, pki, clients, protocol):
    port = tls_broker.port("wss:default")
    tls = {"ca_certs": str(pki.ca)}
    ws = clients(port, protocol=protocol, transport="websockets", tls=tls).connect()
    tcp = clients(tls_broker.tcp, protocol=protocol).connect()
    _exchange(ws, tcp, qos=1)
    _exchange(tcp, ws, qos=2)


@pytest.mark.skipif(shutil.which("mosquitto_pub") is None, reason="mosquitto-clients not installed")
def test_mosquitto_clients_with_client_cert(tls_broker, pki):
    """mosquitto_sub/pub (libmosquitto + OpenSSL) on the verify_peer listener."""
    port = str(tls_broker.port("ssl:mtls"))
    topic = unique("tls/mosq")
    common = ["-h", "localhost", "-p", port, "--cafile", str(pki.ca),
              "--cert", str(pki.client_cert), "--key", str(pki.client_key), "-q", "1"]
    r = subprocess.run(
        ["mosquitto_pub", *common, "-t", topic, "-r", "-m", "tls-retained"],
        capture_output=True, text=True, timeout=TIMEOUT,
    )
    assert r.returncode == 0, r.stderr
    r = subprocess.run(
        ["mosquitto_sub", *common, "-t", topic, "-C", "1", "-W", str(int(TIMEOUT))],
        capture_output=True, text=True, timeout=TIMEOUT + 2,
    )
    assert (r.returncode, r.stdout.strip()) == (0, "tls-retained"), r.stderr
    # Without a client certificate mosquitto_pub fails.
    r = subprocess.run(
        ["mosquitto_pub", "-h", "localhost", "-p", port, "--cafile", str(pki.ca),
         "-q", "1", "-t", topic, "-m", "no-cert"],
        capture_output=True, text=True, timeout=TIMEOUT,
    )
    assert r.returncode != 0, "mosquitto_pub without a client certificate was accepted"


# ---------------------------------------------------------------------------------------
# ssl_options.versions, ssl_options.ciphers, and PEM text instead of file paths


@pytest.fixture(scope="module")
def tuned_tls_broker(tmp_path_factory, pki) -> Broker:
    v12_port, inline_port, quick_port = free_port(), free_port(), free_port()
    cert_text = pki.server_cert.read_text()
    key_text = pki.server_key.read_text()
    config = f"""
listeners.ssl.v12 {{
  bind = "{HOST}:{v12_port}"
  ssl_options {{
    certfile = "{pki.server_cert}"
    keyfile = "{pki.server_key}"
    versions = ["tlsv1.2"]
    ciphers = ["DHE-RSA-AES256-SHA", "ECDHE-ECDSA-AES128-GCM-SHA256"]
  }}
}}
listeners.ssl.quick {{
  bind = "{HOST}:{quick_port}"
  ssl_options {{
    certfile = "{pki.server_cert}"
    keyfile = "{pki.server_key}"
    handshake_timeout = 300ms
  }}
}}
listeners.ssl.inline {{
  bind = "{HOST}:{inline_port}"
  ssl_options {{
    certfile = \"\"\"{cert_text}\"\"\"
    keyfile = \"\"\"{key_text}\"\"\"
  }}
}}
"""
    b = start_broker(tmp_path_factory.mktemp("junction-tls-tuned"), config=config)
    yield b
    alive = b.proc.poll() is None
    b.stop()
    assert alive, f"broker died during the tests (rc={b.proc.returncode}):\n{b.stderr_tail()}"


def _handshake(port: int, pki: Pki, *, version=None, ciphers=None) -> tuple[str, str]:
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    if version is not None:
        ctx.minimum_version = version
        ctx.maximum_version = version
    if ciphers is not None:
        ctx.set_ciphers(ciphers)
    with socket.create_connection((HOST, port), timeout=TIMEOUT) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            return s.version(), s.cipher()[0]


def test_ssl_versions_and_ciphers_are_what_the_listener_offers(tuned_tls_broker, pki):
    port = tuned_tls_broker.port("ssl:v12")
    # Only TLS 1.2, and of the listed ciphers only the one the library has.
    assert _handshake(port, pki) == ("TLSv1.2", "ECDHE-ECDSA-AES128-GCM-SHA256")
    with pytest.raises(ssl.SSLError):
        _handshake(port, pki, version=ssl.TLSVersion.TLSv1_3)
    with pytest.raises(ssl.SSLError):
        _handshake(port, pki, version=ssl.TLSVersion.TLSv1_2, ciphers="ECDHE-ECDSA-AES256-GCM-SHA384")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_ssl_options_take_pem_text_as_well_as_paths(tuned_tls_broker, pki, clients, protocol):
    port = tuned_tls_broker.port("ssl:inline")
    tls = {"ca_certs": str(pki.ca)}
    a = clients(port, protocol=protocol, tls=tls).connect()
    b = clients(port, protocol=protocol, tls=tls).connect()
    _exchange(a, b, qos=1)


def test_ssl_handshake_timeout_closes_a_client_that_never_says_hello(tuned_tls_broker):
    port = tuned_tls_broker.port("ssl:quick")
    with socket.create_connection((HOST, port), timeout=TIMEOUT) as s:
        started = time.monotonic()
        s.settimeout(TIMEOUT)
        try:
            data = s.recv(16)
        except ConnectionResetError:
            data = b""
        assert data == b""
        # Closed by the 300 ms handshake timeout, not by anything slower.
        assert time.monotonic() - started < 3.0
