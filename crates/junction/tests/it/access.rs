//! Access control and hooks on the MQTT listener: the same authentication chains,
//! authorization and hook points as the gateways (reference §1.7, §1.8, §1.10).

use crate::common::*;
use junction_broker::hooks::{
    Action, AuthorizeArgs, AuthzResult, ConnackArgs, ConnectArgs, MessageArgs, PublishArgs,
    ReasonArgs, SessionSubArgs, SubscribeArgs, UnsubscribeArgs,
};
use junction_broker::Flow;
use junction_types::ClientInfo;
use parking_lot::Mutex;
use rumqttc::{ConnectReturnCode, ConnectionError};
use std::sync::Arc;

/// Write a bootstrap CSV of `user,password,is_superuser` rows; returns its path.
fn users_file(tag: &str, rows: &[(&str, &str, bool)]) -> String {
    let dir = std::env::temp_dir().join("junction-it-users");
    std::fs::create_dir_all(&dir).unwrap();
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!("{tag}-{}-{n}.csv", std::process::id()));
    let mut text = String::from("user_id,password,is_superuser\n");
    for (u, p, s) in rows {
        text.push_str(&format!("{u},{p},{s}\n"));
    }
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// The CONNACK code a 3.1.1 client gets.
async fn v4_connect_code(
    addr: std::net::SocketAddr,
    user: Option<(&str, &str)>,
) -> ConnectReturnCode {
    let mut o = v4::options(addr, "authn-probe");
    if let Some((u, p)) = user {
        o.set_credentials(u, p);
    }
    let (_client, mut el) = rumqttc::AsyncClient::new(o, 10);
    let r = tokio::time::timeout(WAIT, async {
        loop {
            match el.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(a))) => return a.code,
                Ok(_) => continue,
                Err(ConnectionError::ConnectionRefused(code)) => return code,
                Err(e) => panic!("unexpected {e:?}"),
            }
        }
    })
    .await;
    r.expect("CONNACK")
}

#[tokio::test]
async fn mqtt_clients_authenticate_against_the_built_in_database() {
    let file = users_file("mqtt", &[("bob", "pw", false)]);
    let s = TestServer::start_with(&format!(
        "authentication = [{{ mechanism = password_based, backend = built_in_database, \
         bootstrap_file = \"{file}\" }}]\n\
         listeners.tcp.open {{ bind = \"127.0.0.1:0\", enable_authn = false }}"
    ))
    .await;
    assert_eq!(
        v4_connect_code(s.tcp, Some(("bob", "pw"))).await,
        ConnectReturnCode::Success
    );
    assert_eq!(
        v4_connect_code(s.tcp, Some(("bob", "wrong"))).await,
        ConnectReturnCode::BadUserNamePassword
    );
    assert_eq!(
        v4_connect_code(s.tcp, Some(("eve", "pw"))).await,
        ConnectReturnCode::NotAuthorized
    );
    assert_eq!(
        v4_connect_code(s.tcp, None).await,
        ConnectReturnCode::NotAuthorized
    );
    let open = s
        .server
        .as_ref()
        .unwrap()
        .local_addr("tcp:open")
        .expect("tcp:open listener");
    assert_eq!(
        v4_connect_code(open, Some(("eve", "pw"))).await,
        ConnectReturnCode::Success
    );
}

#[tokio::test]
async fn a_bad_bootstrap_file_stops_the_start_naming_the_key() {
    let config = test_config(
        &fresh_data_dir(),
        "authentication = [{ mechanism = password_based, backend = built_in_database, \
         bootstrap_file = \"/nonexistent/users.csv\" }]",
    );
    let err = junction::Server::start(&config).await.unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("authentication.1") && msg.contains("/nonexistent/users.csv"),
        "{msg}"
    );

    let unsupported = junction_config::Config::from_str_with_env(
        "authentication = [{ mechanism = password_based, backend = http, url = \"http://x\" }]",
        std::iter::empty::<(String, String)>(),
    );
    let e = unsupported.unwrap_err().to_string();
    assert!(e.contains("authentication"), "{e}");
}

#[tokio::test]
async fn stomp_gateway_and_listener_chains_come_from_the_config() {
    let global = users_file("stomp", &[("bob", "pw", false)]);
    let special = users_file("stomp-l", &[("ann", "pw2", false)]);
    let s = TestServer::start_with(&format!(
        "gateway.stomp.authentication {{ mechanism = password_based, backend = built_in_database, \
         bootstrap_file = \"{global}\" }}\n\
         gateway.stomp.listeners.tcp.special {{ bind = \"127.0.0.1:0\", \
         authentication {{ mechanism = password_based, backend = built_in_database, \
         bootstrap_file = \"{special}\" }} }}"
    ))
    .await;
    let server = s.server.as_ref().unwrap();
    let default = server.local_addr("stomp:tcp:default").unwrap();
    let special = server.local_addr("stomp:tcp:special").unwrap();
    assert_eq!(stomp_login(default, "bob", "pw").await, "CONNECTED");
    assert_eq!(
        stomp_login(default, "bob", "nope").await,
        "ERROR Login Failed: bad_username_or_password"
    );
    assert_eq!(
        stomp_login(special, "bob", "pw").await,
        "ERROR Login Failed: not_authorized"
    );
    assert_eq!(stomp_login(special, "ann", "pw2").await, "CONNECTED");
    // The MQTT listener has no chain: everyone is let in.
    assert_eq!(
        v4_connect_code(s.tcp, None).await,
        ConnectReturnCode::Success
    );
}

/// CONNECT over a raw socket; returns `CONNECTED` or `ERROR <body>`.
async fn stomp_login(addr: std::net::SocketAddr, login: &str, passcode: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let frame =
        format!("CONNECT\naccept-version:1.2\nhost:h\nlogin:{login}\npasscode:{passcode}\n\n\0");
    sock.write_all(frame.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(WAIT, async {
        let mut chunk = [0u8; 1024];
        while !buf.contains(&0) {
            match sock.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    let text = String::from_utf8_lossy(&buf).to_string();
    let command = text.lines().next().unwrap_or("").to_string();
    if command == "ERROR" {
        let body = text
            .split("\n\n")
            .nth(1)
            .unwrap_or("")
            .trim_end_matches('\0');
        format!("ERROR {body}")
    } else {
        command
    }
}

#[tokio::test]
async fn mqtt_runs_the_same_hook_points_as_the_gateways() {
    let s = TestServer::start().await;
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let hooks = &s.broker().hooks;
    macro_rules! record {
        ($chain:ident, $name:literal, $arg:ty) => {{
            let s = seen.clone();
            hooks.$chain.add(
                0,
                Arc::new(move |c: &ClientInfo, _: &mut $arg| {
                    if c.clientid == "hooked" {
                        s.lock()
                            .push(format!("{} {} {}", $name, c.protocol, c.listener));
                    }
                    Flow::Continue
                }),
            );
        }};
    }
    record!(client_connect, "client.connect", ConnectArgs);
    record!(session_created, "session.created", ());
    record!(client_connected, "client.connected", ());
    record!(client_connack, "client.connack", ConnackArgs);
    record!(client_subscribe, "client.subscribe", SubscribeArgs);
    record!(session_subscribed, "session.subscribed", SessionSubArgs);
    record!(message_delivered, "message.delivered", MessageArgs);
    record!(message_acked, "message.acked", MessageArgs);
    record!(client_unsubscribe, "client.unsubscribe", UnsubscribeArgs);
    record!(session_unsubscribed, "session.unsubscribed", SessionSubArgs);
    record!(session_terminated, "session.terminated", ReasonArgs);
    record!(client_disconnected, "client.disconnected", ReasonArgs);
    let p = seen.clone();
    hooks.message_publish.add(
        0,
        Arc::new(move |a: &mut PublishArgs| {
            if a.message.topic == "hk/1" {
                p.lock().push("message.publish".into());
            }
            Flow::Continue
        }),
    );

    let mut c = v4::simple(s.tcp, "hooked").await;
    c.subscribe("hk/#", v4::QoS::AtLeastOnce).await;
    c.client
        .publish("hk/1", v4::QoS::AtLeastOnce, false, "x")
        .await
        .unwrap();
    let got = c.publish_in().await;
    assert_eq!(got.topic, "hk/1");
    // rumqttc acknowledges the delivery; wait for the broker to see it.
    eventually("message.acked", || {
        seen.lock().iter().any(|s| s.starts_with("message.acked"))
    })
    .await;
    c.client.unsubscribe("hk/#").await.unwrap();
    eventually("session.unsubscribed", || {
        seen.lock()
            .iter()
            .any(|s| s.starts_with("session.unsubscribed"))
    })
    .await;
    c.client.disconnect().await.unwrap();
    eventually("client.disconnected", || {
        seen.lock()
            .iter()
            .any(|s| s.starts_with("client.disconnected"))
    })
    .await;
    let seen = seen.lock().clone();
    let tag = " mqtt tcp:default";
    let want: Vec<String> = [
        "client.connect",
        "session.created",
        "client.connected",
        "client.connack",
        "client.subscribe",
        "session.subscribed",
        "message.publish",
        "message.delivered",
        "message.acked",
        "client.unsubscribe",
        "session.unsubscribed",
        "session.terminated",
        "client.disconnected",
    ]
    .iter()
    .map(|h| {
        if *h == "message.publish" {
            h.to_string()
        } else {
            format!("{h}{tag}")
        }
    })
    .collect();
    assert_eq!(seen, want);
}

#[tokio::test]
async fn an_authorize_hook_denies_mqtt_publish_and_subscribe_with_0x87() {
    let s = TestServer::start().await;
    s.broker().hooks.client_authorize.add(
        0,
        Arc::new(|_: &ClientInfo, a: &mut AuthorizeArgs| {
            let denied = match a.action {
                Action::Publish { .. } => a.topic == "no/pub",
                Action::Subscribe { .. } => a.topic == "no/sub",
            };
            if denied {
                a.result = AuthzResult::Deny;
            }
            Flow::Continue
        }),
    );
    let mut c = v5::simple(s.tcp, "authz").await;
    let codes = c.subscribe("no/sub", v5::QoS::AtLeastOnce).await;
    assert_eq!(codes, vec![0x87]);
    let codes = c.subscribe("yes/sub", v5::QoS::AtLeastOnce).await;
    assert_eq!(codes, vec![1]);
    c.client
        .publish("no/pub", v5::QoS::AtLeastOnce, false, "x")
        .await
        .unwrap();
    let ack = c
        .wait_for("PUBACK", |p| matches!(p, v5::Packet::PubAck(_)))
        .await;
    let v5::Packet::PubAck(ack) = ack else {
        unreachable!()
    };
    assert_eq!(
        ack.reason as u8,
        rumqttc::v5::mqttbytes::v5::PubAckReason::NotAuthorized as u8
    );
}

/// A TCP connection from a chosen loopback source address.
async fn connect_from(src: &str, to: std::net::SocketAddr) -> tokio::net::TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(format!("{src}:0").parse().unwrap()).unwrap();
    sock.connect(to).await.unwrap()
}

/// Whether the server closes the connection without answering `hello`.
async fn closed_without_answer(mut s: tokio::net::TcpStream, hello: &[u8]) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = s.write_all(hello).await;
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(WAIT, s.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

/// MQTT 3.1.1 CONNECT, client id "acl".
const MQTT_CONNECT: &[u8] = b"\x10\x0f\x00\x04MQTT\x04\x02\x00\x3c\x00\x03acl";

#[tokio::test]
async fn access_rules_first_match_wins_on_mqtt_and_gateway_listeners() {
    let rules = r#"["allow 127.0.0.2", "deny all"]"#;
    let s = TestServer::start_with(&format!(
        "listeners.tcp.default.access_rules = {rules}\n\
         gateway.stomp.listeners.tcp.default.access_rules = {rules}\n\
         gateway.mqttsn.listeners.udp.default.access_rules = {rules}"
    ))
    .await;
    // MQTT: 127.0.0.1 is denied at accept, 127.0.0.2 is served.
    assert!(closed_without_answer(connect_from("127.0.0.1", s.tcp).await, MQTT_CONNECT).await);
    assert!(!closed_without_answer(connect_from("127.0.0.2", s.tcp).await, MQTT_CONNECT).await);
    // STOMP likewise.
    let stomp = s
        .server
        .as_ref()
        .unwrap()
        .local_addr("stomp:tcp:default")
        .unwrap();
    let hello = b"CONNECT\naccept-version:1.2\n\n\0";
    assert!(closed_without_answer(connect_from("127.0.0.1", stomp).await, hello).await);
    assert!(!closed_without_answer(connect_from("127.0.0.2", stomp).await, hello).await);
    // MQTT-SN: SEARCHGW from a denied peer gets no GWINFO; from an allowed one it does.
    let sn = s
        .server
        .as_ref()
        .unwrap()
        .local_addr("mqttsn:udp:default")
        .unwrap();
    let searchgw = [0x03u8, 0x01, 0x00];
    for (src, answered) in [("127.0.0.1", false), ("127.0.0.2", true)] {
        let u = tokio::net::UdpSocket::bind(format!("{src}:0"))
            .await
            .unwrap();
        u.send_to(&searchgw, sn).await.unwrap();
        let mut buf = [0u8; 64];
        let got = tokio::time::timeout(QUIET, u.recv_from(&mut buf))
            .await
            .is_ok();
        assert_eq!(got, answered, "SEARCHGW from {src}");
    }
}

#[tokio::test]
async fn the_old_connection_runs_session_discarded_or_session_takenover() {
    let s = TestServer::start().await;
    let seen: Arc<Mutex<Vec<&'static str>>> = Arc::default();
    let hooks = &s.broker().hooks;
    let d = seen.clone();
    hooks.session_discarded.add(
        0,
        Arc::new(move |c: &ClientInfo, _: &mut ()| {
            if c.clientid == "twin" {
                d.lock().push("discarded");
            }
            Flow::Continue
        }),
    );
    let t = seen.clone();
    hooks.session_takenover.add(
        0,
        Arc::new(move |c: &ClientInfo, _: &mut ()| {
            if c.clientid == "twin" {
                t.lock().push("takenover");
            }
            Flow::Continue
        }),
    );
    let _first = v4::simple(s.tcp, "twin").await;
    // A clean start discards the session the first connection had.
    let _second = v4::simple(s.tcp, "twin").await;
    eventually("session.discarded", || seen.lock().len() == 1).await;
    // Clean session 0 takes it over.
    let mut o = v4::options(s.tcp, "twin");
    o.set_clean_session(false);
    let _third = v4::connect(o).await;
    eventually("session.takenover", || seen.lock().len() == 2).await;
    assert_eq!(*seen.lock(), vec!["discarded", "takenover"]);
    assert_eq!(s.metric("session.discarded"), 1);
    assert_eq!(s.metric("session.takenover"), 1);
}
