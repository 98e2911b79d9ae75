//! DTLS 1.2 on the MQTT-SN gateway, against `openssl s_client` (Debian's OpenSSL, a
//! client nobody here wrote): PSK sessions carry MQTT-SN to MQTT subscribers, a wrong key
//! or an unknown identity gets no session, and a ClientHello without the cookie gets a
//! HelloVerifyRequest no larger than itself and nothing else.

use crate::common::*;
use bytes::{BufMut, BytesMut};
use junction_codec_mqttsn::{encode, Flags, Message, QoS as SnQoS, Topic, TopicIdType};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

const KEY: &str = "0123456789abcdef";

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// A server with `psk_authentication` from a file and the MQTT-SN DTLS listener.
async fn dtls_server() -> (TestServer, std::net::SocketAddr) {
    let dir = fresh_data_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let psk = dir.join("psk.txt");
    std::fs::write(&psk, format!("# devices\ndev1:{KEY}\n")).unwrap();
    let s = TestServer::start_with(&format!(
        "psk_authentication {{ enable = true, init_file = \"{}\" }}\n\
         gateway.mqttsn.listeners.dtls.default.bind = \"127.0.0.1:0\"",
        psk.display()
    ))
    .await;
    let addr = s
        .server
        .as_ref()
        .unwrap()
        .local_addr("mqttsn:dtls:default")
        .expect("the dtls listener");
    (s, addr)
}

fn s_client(addr: std::net::SocketAddr, identity: &str, key: &str) -> Child {
    Command::new("openssl")
        .args(["s_client", "-dtls1_2", "-quiet", "-connect"])
        .arg(addr.to_string())
        .args(["-psk_identity", identity, "-psk", &hex(key)])
        .args(["-cipher", "PSK-AES128-CCM8"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("openssl s_client (Debian package openssl)")
}

fn datagram(m: Message) -> Vec<u8> {
    let mut b = BytesMut::new();
    encode(&m, &mut b).unwrap();
    b.to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mqttsn_client_over_dtls_with_psk_reaches_an_mqtt_subscriber() {
    let (s, addr) = dtls_server().await;
    let mut sub = v4::simple(s.tcp, "dtls-watch").await;
    sub.subscribe("dt", v4::QoS::AtMostOnce).await;

    let mut client = s_client(addr, "dev1", KEY);
    let mut stdin = client.stdin.take().unwrap();
    let mut stdout = client.stdout.take().unwrap();
    stdin
        .write_all(&datagram(Message::Connect {
            flags: Flags {
                clean_session: true,
                ..Flags::default()
            },
            protocol_id: 1,
            duration: 60,
            client_id: "dtls-dev".into(),
        }))
        .await
        .unwrap();
    stdin.flush().await.unwrap();
    let mut connack = [0u8; 3];
    tokio::time::timeout(WAIT, stdout.read_exact(&mut connack))
        .await
        .expect("a CONNACK over DTLS")
        .unwrap();
    assert_eq!(connack, [3, 0x05, 0x00]);

    stdin
        .write_all(&datagram(Message::Publish {
            flags: Flags {
                qos: SnQoS::AtMostOnce,
                topic_id_type: TopicIdType::Short,
                ..Flags::default()
            },
            topic: Topic::Short(*b"dt"),
            msg_id: 0,
            data: bytes::Bytes::from_static(b"sealed"),
        }))
        .await
        .unwrap();
    stdin.flush().await.unwrap();
    let p = sub.publish_in().await;
    assert_eq!(&p.payload[..], b"sealed");
    let ctx = s.server.as_ref().unwrap().gateway("mqttsn").await.unwrap();
    let clients = ctx.clients.list();
    assert_eq!(clients.len(), 1);
    assert_eq!(&*clients[0].listener, "mqttsn:dtls:default");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_or_an_unknown_identity_gets_no_session() {
    let (s, addr) = dtls_server().await;
    let connect = datagram(Message::Connect {
        flags: Flags::default(),
        protocol_id: 1,
        duration: 60,
        client_id: "intruder".into(),
    });
    for (identity, key) in [("dev1", "not the key at all"), ("stranger", KEY)] {
        let mut client = s_client(addr, identity, key);
        let mut stdin = client.stdin.take().unwrap();
        let mut stdout = client.stdout.take().unwrap();
        let _ = stdin.write_all(&connect).await;
        let _ = stdin.flush().await;
        // No CONNACK ever comes back: the handshake cannot finish (a record under the wrong
        // key is discarded, RFC 6347 §4.1.2.7; an unknown identity is refused).
        let mut buf = [0u8; 16];
        match tokio::time::timeout(Duration::from_secs(2), stdout.read(&mut buf)).await {
            Err(_) | Ok(Ok(0)) | Ok(Err(_)) => {}
            Ok(Ok(n)) => panic!("{identity}: {n} octets came back: {:?}", &buf[..n]),
        }
        let _ = client.kill().await;
    }
    let ctx = s.server.as_ref().unwrap().gateway("mqttsn").await.unwrap();
    assert!(ctx.clients.is_empty());
    assert_eq!(ctx.metrics.get("client.connect"), 0);
}

/// A DTLS 1.2 ClientHello with no cookie, as one record.
fn client_hello() -> Vec<u8> {
    client_hello_with(0, 0, &[])
}

/// A DTLS 1.2 ClientHello offering the PSK suites, as one record.
fn client_hello_with(record_seq: u64, message_seq: u16, cookie: &[u8]) -> Vec<u8> {
    let mut body = BytesMut::new();
    body.put_slice(&[0xFE, 0xFD]);
    body.put_slice(&[0x42; 32]);
    body.put_u8(0); // session id
    body.put_u8(cookie.len() as u8);
    body.put_slice(cookie);
    body.put_slice(&[0, 4, 0xC0, 0xA8, 0x00, 0xA8]); // PSK-AES128-CCM8, PSK-AES128-GCM-SHA256
    body.put_slice(&[1, 0]);
    body.put_slice(&[0, 0]); // no extensions
    let mut hs = BytesMut::new();
    hs.put_u8(1);
    hs.put_uint(body.len() as u64, 3);
    hs.put_u16(message_seq);
    hs.put_uint(0, 3);
    hs.put_uint(body.len() as u64, 3);
    hs.put_slice(&body);
    let mut rec = BytesMut::new();
    rec.put_slice(&[22, 0xFE, 0xFF, 0, 0]);
    rec.put_uint(record_seq, 6);
    rec.put_u16(hs.len() as u16);
    rec.put_slice(&hs);
    rec.to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_hello_without_the_cookie_gets_only_a_smaller_hello_verify_request() {
    let (s, addr) = dtls_server().await;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let hello = client_hello();
    sock.send_to(&hello, addr).await.unwrap();
    let mut buf = [0u8; 2048];
    let (n, _) = tokio::time::timeout(WAIT, sock.recv_from(&mut buf))
        .await
        .expect("a HelloVerifyRequest")
        .unwrap();
    assert_eq!(buf[0], 22, "a handshake record");
    assert_eq!(buf[13], 3, "a HelloVerifyRequest");
    assert!(n <= hello.len(), "{n} octets answer {}", hello.len());
    // Nothing else, and no state: no peer, no client.
    assert!(tokio::time::timeout(QUIET, sock.recv_from(&mut buf))
        .await
        .is_err());
    let ctx = s.server.as_ref().unwrap().gateway("mqttsn").await.unwrap();
    assert!(ctx.clients.is_empty());
    assert_eq!(ctx.metrics.get("packets.dtls.hello_verify.sent"), 1);
}

/// Run `openssl` with `args` in `dir`, which must succeed.
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (Debian package openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, and a server and a client certificate it signed, in `dir`.
fn certificates(dir: &std::path::Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=test ca",
        ],
    );
    for name in ["server", "client"] {
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &format!("{name}.pem"),
                "-days",
                "2",
            ],
        );
    }
}

/// Send CONNECT through `client` and wait up to `within` for a CONNACK.
async fn connects(client: &mut Child, within: Duration) -> bool {
    let mut stdin = client.stdin.take().unwrap();
    let mut stdout = client.stdout.take().unwrap();
    let _ = stdin
        .write_all(&datagram(Message::Connect {
            flags: Flags {
                clean_session: true,
                ..Flags::default()
            },
            protocol_id: 1,
            duration: 60,
            client_id: "x509".into(),
        }))
        .await;
    let _ = stdin.flush().await;
    let mut connack = [0u8; 3];
    let got = matches!(
        tokio::time::timeout(within, stdout.read_exact(&mut connack)).await,
        Ok(Ok(_))
    ) && connack == [3, 0x05, 0x00];
    client.stdin = Some(stdin);
    client.stdout = Some(stdout);
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dtls_listener_with_a_certificate_verifies_client_certificates() {
    let dir = fresh_data_dir();
    std::fs::create_dir_all(&dir).unwrap();
    certificates(&dir);
    let d = dir.display();
    let s = TestServer::start_with(&format!(
        "gateway.mqttsn.listeners.dtls.default {{ bind = \"127.0.0.1:0\", dtls_options {{ \
           certfile = \"{d}/server.pem\", keyfile = \"{d}/server.key\", cacertfile = \"{d}/ca.pem\", \
           verify = verify_peer, fail_if_no_peer_cert = true, \
           ciphers = [\"ECDHE-RSA-AES128-GCM-SHA256\"] }} }}"
    ))
    .await;
    let addr = s
        .server
        .as_ref()
        .unwrap()
        .local_addr("mqttsn:dtls:default")
        .unwrap();
    let client = |extra: &[&str]| {
        Command::new("openssl")
            .args(["s_client", "-dtls1_2", "-quiet", "-connect"])
            .arg(addr.to_string())
            .args(["-CAfile", &format!("{d}/ca.pem"), "-verify_return_error"])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("openssl s_client")
    };
    // Without a client certificate: refused.
    let mut bare = client(&[]);
    assert!(
        !connects(&mut bare, Duration::from_secs(2)).await,
        "a client without a certificate got in"
    );
    let _ = bare.kill().await;
    // With one the CA signed: in, over the configured suite.
    let mut signed = client(&[
        "-cert",
        &format!("{d}/client.pem"),
        "-key",
        &format!("{d}/client.key"),
    ]);
    assert!(
        connects(&mut signed, WAIT).await,
        "the signed client was refused"
    );
    // A suite the listener does not offer: no session.
    let mut other = client(&[
        "-cert",
        &format!("{d}/client.pem"),
        "-key",
        &format!("{d}/client.key"),
        "-cipher",
        "ECDHE-RSA-AES256-GCM-SHA384",
    ]);
    assert!(
        !connects(&mut other, Duration::from_secs(2)).await,
        "a suite not in dtls_options.ciphers was agreed"
    );
    let _ = other.kill().await;
    let ctx = s.server.as_ref().unwrap().gateway("mqttsn").await.unwrap();
    assert_eq!(ctx.clients.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_left_unfinished_frees_its_place_after_handshake_timeout() {
    let dir = fresh_data_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let psk = dir.join("psk.txt");
    std::fs::write(&psk, format!("dev1:{KEY}\n")).unwrap();
    let s = TestServer::start_with(&format!(
        "psk_authentication {{ enable = true, init_file = \"{}\" }}\n\
         gateway.mqttsn.listeners.dtls.default {{ bind = \"127.0.0.1:0\", max_connections = 1, \
           dtls_options.handshake_timeout = 1s }}",
        psk.display()
    ))
    .await;
    let addr = s
        .server
        .as_ref()
        .unwrap()
        .local_addr("mqttsn:dtls:default")
        .unwrap();
    // A peer that proves its address with the cookie, then never finishes the handshake:
    // it holds the only place.
    let stall = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    stall.send_to(&client_hello(), addr).await.unwrap();
    let mut buf = [0u8; 2048];
    let (n, _) = tokio::time::timeout(WAIT, stall.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let cookie_len = buf[13 + 12 + 2] as usize;
    let cookie = buf[13 + 12 + 3..13 + 12 + 3 + cookie_len].to_vec();
    assert_eq!(n, 13 + 12 + 3 + cookie_len);
    stall
        .send_to(&client_hello_with(1, 1, &cookie), addr)
        .await
        .unwrap();
    let (_, _) = tokio::time::timeout(WAIT, stall.recv_from(&mut buf))
        .await
        .expect("the server's flight: the stalled peer has a session")
        .unwrap();
    // A real client gets no place now...
    let mut early = s_client(addr, "dev1", KEY);
    assert!(!connects(&mut early, Duration::from_millis(300)).await);
    let _ = early.kill().await;
    // ...and gets one once the stalled handshake has run out of time.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let mut c = s_client(addr, "dev1", KEY);
        if connects(&mut c, Duration::from_secs(3)).await {
            break;
        }
        let _ = c.kill().await;
        assert!(
            tokio::time::Instant::now() < deadline,
            "the stalled handshake kept its place"
        );
    }
}
