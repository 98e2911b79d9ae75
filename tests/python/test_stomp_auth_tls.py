"""STOMP gateway authentication and the ssl listener, with stomp.py (8.2.0).

One `junction start` per module with the STOMP gateway's global authenticator (the
built-in database, users from a bootstrap CSV) and a second STOMP listener over TLS with a
server certificate from a CA generated at test time.
"""

from __future__ import annotations

import ssl

import pytest
import stomp

from junction_harness import HOST, Broker, free_port, start_broker, unique
from test_stomp import Recorder, StompFactory, send_confirmed, subscribe
from test_tls import make_pki

USERS = "user_id,password,is_superuser\nalice,wonderland,false\nroot,toor,true\n"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("stomp-pki"))


@pytest.fixture(scope="module")
def broker(tmp_path_factory, pki) -> Broker:
    work = tmp_path_factory.mktemp("junction-stomp-auth")
    users = work / "users.csv"
    users.write_text(USERS)
    ssl_port = free_port()
    config = f"""
gateway.stomp {{
  authentication {{
    mechanism = password_based
    backend = built_in_database
    bootstrap_file = "{users}"
  }}
  listeners.ssl.default {{
    bind = "{HOST}:{ssl_port}"
    ssl_options {{
      certfile = "{pki.server_cert}"
      keyfile = "{pki.server_key}"
    }}
  }}
}}
"""
    b = start_broker(work, config=config, ws=False)
    assert b.port("stomp:ssl:default") == ssl_port, b.listeners
    yield b
    alive = b.proc.poll() is None
    b.stop()
    assert alive, f"broker died during the tests (rc={b.proc.returncode}):\n{b.stderr_tail()}"


@pytest.fixture
def tcp(broker):
    f = StompFactory(broker.port("stomp:tcp:default"))
    yield f
    f.close_all()


@pytest.fixture
def tls(broker, pki):
    f = TlsStompFactory(broker.port("stomp:ssl:default"), str(pki.ca))
    yield f
    f.close_all()


class TlsStompFactory(StompFactory):
    """stomp.py connections over TLS, trusting the test CA."""

    def __init__(self, port: int, ca: str) -> None:
        super().__init__(port)
        self.ca = ca

    def __call__(self, cls=stomp.Connection12, *, connect: bool = True, **kwargs):
        conn, rec = super().__call__(cls, connect=False, **kwargs)
        conn.set_ssl(for_hosts=[(HOST, self.port)], ca_certs=self.ca,
                     ssl_version=ssl.PROTOCOL_TLS_CLIENT)
        if connect:
            self.connect(conn, rec)
        return conn, rec


def refused(conn, rec: Recorder, **kwargs) -> str:
    """CONNECT with these credentials, expect an ERROR frame; return its body."""
    conn.connect(wait=False, **kwargs)
    err = rec.expect_error()
    assert rec.connected_frame is None
    assert rec.disconnected.wait(10), "the server must close after the ERROR"
    return err.body if isinstance(err.body, str) else err.body.decode()


def test_stomp_py_with_a_wrong_passcode_gets_login_failed(tcp):
    conn, rec = tcp(connect=False)
    body = refused(conn, rec, username="alice", passcode="looking-glass")
    assert body == "Login Failed: bad_username_or_password"


def test_stomp_py_with_an_unknown_user_is_not_authorized(tcp):
    conn, rec = tcp(connect=False)
    assert refused(conn, rec, username="mallory", passcode="x") == "Login Failed: not_authorized"


def test_stomp_py_without_credentials_is_refused_when_a_chain_exists(tcp):
    conn, rec = tcp(connect=False)
    assert refused(conn, rec) == "Login Failed: not_authorized"


def test_stomp_py_logs_in_and_exchanges_messages(tcp):
    conn, rec = tcp(connect=False)
    tcp.connect(conn, rec, username="alice", passcode="wonderland")
    dest = unique("auth/ok")
    subscribe(conn, rec, dest, "1")
    send_confirmed(conn, rec, dest, "hello")
    [m] = rec.expect(1)
    assert m.body == "hello"


def test_stomp_py_over_tls_logs_in_and_exchanges_messages(tls):
    conn, rec = tls(connect=False)
    tls.connect(conn, rec, username="alice", passcode="wonderland")
    dest = unique("tls/ok")
    subscribe(conn, rec, dest, "1")
    send_confirmed(conn, rec, dest, "over tls")
    [m] = rec.expect(1)
    assert m.body == "over tls"


def test_stomp_py_over_tls_with_a_wrong_passcode_gets_login_failed(tls):
    conn, rec = tls(connect=False)
    body = refused(conn, rec, username="alice", passcode="nope")
    assert body == "Login Failed: bad_username_or_password"


def test_only_the_superuser_may_send_to_sys_topics(tcp):
    conn, rec = tcp(connect=False)
    tcp.connect(conn, rec, username="root", passcode="toor")
    dest = "$SYS/custom/" + unique("su")
    subscribe(conn, rec, dest, "1")
    send_confirmed(conn, rec, dest, "from root")
    [m] = rec.expect(1)
    assert m.body == "from root"

    conn2, rec2 = tcp(connect=False)
    tcp.connect(conn2, rec2, username="alice", passcode="wonderland")
    conn2.send(dest, "from alice")
    err = rec2.expect_error()
    body = err.body if isinstance(err.body, str) else err.body.decode()
    assert body == f"Insufficient permissions for {dest}"
