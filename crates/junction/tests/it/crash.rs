//! The `junction` binary killed with SIGKILL (commit-before-ack mode) or stopped with
//! SIGTERM (batched mode) while a persistent session has 10,000 QoS 1 and 10,000 QoS 2
//! messages queued, some deliveries in flight and publishes still arriving: after the
//! restart, every acknowledged QoS 1 message arrives at least once and every QoS 2
//! message exactly once.

use crate::common::*;
use junction_codec_mqtt::{ProtocolVersion, QoS as RawQoS};
use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const PER_QOS: usize = 10_000;
/// Deliveries the subscriber takes and never acknowledges before it goes away.
const UNACKED: usize = 20;

/// A `junction start` process on a config of its own.
struct Proc {
    child: Child,
    tcp: SocketAddr,
}

impl Proc {
    fn start(dir: &Path, extra: &str) -> Proc {
        std::fs::create_dir_all(dir).unwrap();
        let conf = dir.join("junction.conf");
        std::fs::write(
            &conf,
            format!(
                "node.data_dir = \"{}\"\n\
                 listeners.tcp.default.bind = \"127.0.0.1:0\"\n\
                 listeners.ws.default.enable = false\n\
                 gateway.stomp.enable = false\n\
                 gateway.mqttsn.enable = false\n\
                 dashboard.listeners.http.bind = \"127.0.0.1:0\"\n\
                 mqtt.max_mqueue_len = 50000\n\
                 {extra}\n",
                dir.join("data").display()
            ),
        )
        .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_junction"))
            .args(["start", "--config"])
            .arg(&conf)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("junction starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let mut tcp = None;
        for line in lines.by_ref() {
            let line = line.unwrap();
            if let Some(addr) = line.strip_prefix("junction: listener tcp:default on ") {
                tcp = Some(addr.trim().parse().unwrap());
            }
            if line.starts_with("junction: started") {
                break;
            }
        }
        // Keep draining stderr so the broker never blocks on a full pipe; what it says
        // shows with a failing test.
        std::thread::spawn(move || {
            for l in lines.map_while(Result::ok) {
                eprintln!("broker: {l}");
            }
        });
        Proc {
            child,
            tcp: tcp.expect("the broker printed its tcp listener"),
        }
    }

    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn terminate(mut self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "a clean stop exits 0: {status:?}");
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn session_options(addr: SocketAddr, clean_start: bool) -> v5::MqttOptions {
    let mut o = v5::options(addr, "crash-sub");
    o.set_clean_start(clean_start);
    o.set_session_expiry_interval(Some(3600));
    o
}

/// Subscribe the persistent session, take `UNACKED` deliveries without acknowledging
/// them, drop the connection, then publish 10,000 QoS 1 and 10,000 QoS 2 messages and
/// wait for every acknowledgement.
async fn fill(proc: &Proc) -> v5::Client {
    let v5 = ProtocolVersion::V5;
    let mut sub = Raw::connect(proc.tcp, v5).await;
    let mut connect = pk::connect(v5, "crash-sub", true, 60);
    connect.properties.session_expiry_interval = Some(3600);
    connect.properties.receive_maximum = Some(UNACKED as u16);
    sub.handshake(connect).await;
    assert_eq!(
        sub.subscribe(pk::subscribe(1, "crash/q1", RawQoS::AtLeastOnce))
            .await,
        vec![1]
    );
    assert_eq!(
        sub.subscribe(pk::subscribe(2, "crash/q2", RawQoS::ExactlyOnce))
            .await,
        vec![2]
    );

    let o = v5::options(proc.tcp, "crash-pub");
    let (client, mut el) = v5::AsyncClient::new(o, 1000);
    let (acks_tx, mut acks) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(v5::Event::Incoming(p)) => {
                    let _ = acks_tx.send(p);
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
    let pump = {
        let client = client.clone();
        tokio::spawn(async move {
            for i in 0..PER_QOS {
                client
                    .publish("crash/q1", v5::QoS::AtLeastOnce, false, format!("q1-{i}"))
                    .await
                    .unwrap();
                client
                    .publish("crash/q2", v5::QoS::ExactlyOnce, false, format!("q2-{i}"))
                    .await
                    .unwrap();
            }
        })
    };
    // The first deliveries fill the subscriber's window; it never acknowledges them.
    for _ in 0..UNACKED {
        let p = sub.next_publish().await.expect("a delivery");
        assert!(p.packet_id.is_some());
    }
    drop(sub);
    let (mut q1, mut q2) = (0, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    while q1 < PER_QOS || q2 < PER_QOS {
        match tokio::time::timeout_at(deadline, acks.recv()).await {
            Ok(Some(v5::Packet::PubAck(_))) => q1 += 1,
            Ok(Some(v5::Packet::PubComp(_))) => q2 += 1,
            Ok(Some(_)) => {}
            other => panic!("acknowledgements stopped at {q1} PUBACK, {q2} PUBCOMP: {other:?}"),
        }
    }
    pump.await.unwrap();
    task.abort();
    // Returned so that the caller can keep publishing while the broker goes down.
    v5::connect(v5::options(proc.tcp, "crash-late")).await
}

/// Reconnect the session and check what arrives: every `q1-i` at least once, every
/// `q2-i` exactly once, and no QoS 2 message twice (also among the late ones).
async fn check(proc: &Proc) {
    let mut sub = v5::connect(session_options(proc.tcp, false)).await;
    assert!(sub.connack.session_present, "the session survived");
    let mut q1: HashSet<String> = HashSet::new();
    let mut q2: HashMap<String, usize> = HashMap::new();
    let want1: HashSet<String> = (0..PER_QOS).map(|i| format!("q1-{i}")).collect();
    let want2: HashSet<String> = (0..PER_QOS).map(|i| format!("q2-{i}")).collect();
    let (mut have1, mut have2) = (0, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while have1 < PER_QOS || have2 < PER_QOS {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(p) = sub.maybe_publish(left).await else {
            panic!(
                "missing {} QoS 1 and {} QoS 2 messages",
                PER_QOS - have1,
                PER_QOS - have2
            );
        };
        let body = String::from_utf8_lossy(&p.payload).into_owned();
        match p.topic.as_ref() {
            b"crash/q1" => {
                if want1.contains(&body) && q1.insert(body) {
                    have1 += 1;
                }
            }
            b"crash/q2" => {
                let n = q2.entry(body.clone()).or_default();
                *n += 1;
                if *n == 1 && want2.contains(&body) {
                    have2 += 1;
                }
            }
            other => panic!("unexpected topic {other:?}"),
        }
    }
    // Whatever else was queued (publishes in flight at the kill) arrives too; none twice.
    while let Some(p) = sub.maybe_publish(Duration::from_millis(500)).await {
        if p.topic.as_ref() == b"crash/q2" {
            *q2.entry(String::from_utf8_lossy(&p.payload).into_owned())
                .or_default() += 1;
        }
    }
    let twice: Vec<_> = q2.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        twice.is_empty(),
        "QoS 2 messages delivered more than once: {twice:?}"
    );
}

/// Publish more while the broker goes down: these are in flight when it dies.
fn keep_publishing(late: &v5::Client) -> tokio::task::JoinHandle<()> {
    let client = late.client.clone();
    tokio::spawn(async move {
        for i in 0.. {
            let qos = if i % 2 == 0 {
                v5::QoS::AtLeastOnce
            } else {
                v5::QoS::ExactlyOnce
            };
            let topic = if i % 2 == 0 { "crash/q1" } else { "crash/q2" };
            if client
                .publish(topic, qos, false, format!("late-{i}"))
                .await
                .is_err()
            {
                return;
            }
        }
    })
}

/// Fill the session, keep publishing, stop the broker with `stop` 50 ms later, restart it
/// on the same data and check what the session gets.
async fn stop_and_check(config: &str, stop: fn(Proc)) {
    let dir = fresh_data_dir();
    let proc = Proc::start(&dir, config);
    let late = fill(&proc).await;
    let pump = keep_publishing(&late);
    tokio::time::sleep(Duration::from_millis(50)).await;
    tokio::task::spawn_blocking(move || stop(proc))
        .await
        .unwrap();
    pump.abort();
    drop(late);
    let proc = Proc::start(&dir, config);
    check(&proc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_acknowledged_message_with_commit_before_ack() {
    // No periodic commit to help: only the commits made before acknowledging count.
    let durable = "durable_sessions { commit_before_ack = true, commit_interval = \"1h\" }";
    stop_and_check(durable, Proc::kill9).await;
}

/// One worker thread runs tokio's single-threaded scheduler: the commit barrier, the
/// committer and the final flush work on it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_no_acknowledged_message_on_one_worker_thread() {
    let durable = "node.worker_threads = 1\n\
                   durable_sessions { commit_before_ack = true, commit_interval = \"1h\" }";
    stop_and_check(durable, Proc::kill9).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_stop_loses_nothing_with_batched_commits() {
    stop_and_check("", Proc::terminate).await;
}
