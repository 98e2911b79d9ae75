//! The broker against input an attacker chooses: filters deeper than any limit, reaching
//! the router through the broker's own API (no protocol front end in between), and wills
//! that their publisher may not publish.

use super::*;
use crate::hooks::{Action, AuthzResult};
use junction_types::ClientInfo;
use proptest::prelude::*;

fn open(b: &Arc<Broker>, id: &str) -> (Opened, oneshot::Receiver<KickReason>) {
    let (tx, rx) = oneshot::channel();
    let opened = b.open_session(OpenSession {
        namespace: ByteString::new(),
        client_id: id.into(),
        clean_start: true,
        expiry_interval_secs: 0,
        limits: SessionLimits::default(),
        conn_id: b.next_conn_id(),
        kick: tx,
    });
    (opened, rx)
}

fn msg(topic: &str, from: &str) -> Message {
    Message {
        from: from.into(),
        ..system_message(topic.to_string(), "p", false)
    }
}

fn conn_id(cell: &SessionCell) -> u64 {
    cell.lock().conn.as_ref().map(|c| c.conn_id).unwrap_or(0)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8))]

    /// `mqtt.max_topic_levels` (128) is a front end's check; the router itself must survive
    /// whatever depth reaches it: subscribe, route, unsubscribe and the discard of a session
    /// holding the filter, on a test thread's 2 MiB stack.
    #[test]
    fn filters_far_deeper_than_the_limit_subscribe_route_and_leave(
        // A topic holds at most 65,535 bytes: 32,768 one-character levels, or 65,536
        // empty ones.
        depth in 129usize..32_767,
        level in prop_oneof![Just(""), Just("x"), Just("+")],
        hash in any::<bool>(),
    ) {
        let depth = if level.is_empty() { depth * 2 } else { depth };
        runtime().block_on(async {
            let b = Broker::new(BrokerSettings::default());
            let (a, _ka) = open(&b, "deep");
            let mut filter = vec![level; depth].join("/");
            if hash {
                filter.push_str("/#");
            }
            let named = if level.is_empty() { "" } else { "x" };
            let topic = vec![named; depth].join("/");
            b.subscribe(&a.cell, &filter, SubOptions::default()).unwrap();
            assert_eq!(b.subscription_counts(), (1, 1));
            assert_eq!(b.publish(msg(&topic, "p")), 1);
            assert!(b.unsubscribe(&a.cell, &filter));
            assert_eq!(b.subscription_counts(), (0, 0));
            // Again, and this time the filter leaves with the session.
            b.subscribe(&a.cell, &filter, SubOptions::default()).unwrap();
            b.close_session(
                &a.cell,
                conn_id(&a.cell),
                Close { expiry_interval_secs: 0, will: None },
            );
            assert_eq!(b.subscription_counts(), (0, 0));
            assert_eq!(b.publish(msg(&topic, "p")), 0);
        });
    }
}

fn publisher(id: &str, superuser: bool) -> Arc<ClientInfo> {
    let mut info = ClientInfo::restored(id.into());
    info.is_superuser = superuser;
    Arc::new(info)
}

#[tokio::test]
async fn a_will_on_sys_is_dropped_and_counted_unless_its_publisher_is_a_superuser() {
    let b = Broker::new(BrokerSettings::default());
    let (watcher, _kw) = open(&b, "watcher");
    b.subscribe(
        &watcher.cell,
        "$SYS/brokers/+/version",
        SubOptions::default(),
    )
    .unwrap();
    let dropped = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let seen = dropped.clone();
    b.hooks.message_dropped.add(
        0,
        Arc::new(move |args: &mut DroppedArgs| {
            seen.lock()
                .push((args.message.topic.to_string(), args.reason));
            Flow::Continue
        }),
    );
    for (id, superuser) in [("mallory", false), ("root", true)] {
        let (c, _k) = open(&b, id);
        let will = Will {
            message: Message {
                retain: true,
                ..msg("$SYS/brokers/n/version", id)
            },
            delay_secs: 0,
            publisher: publisher(id, superuser),
        };
        b.close_session(
            &c.cell,
            conn_id(&c.cell),
            Close {
                expiry_interval_secs: 0,
                will: Some(will),
            },
        );
    }
    // Only the superuser's will went out (and was retained).
    let out = watcher.cell.lock().outbox.len();
    assert_eq!(out, 1);
    assert_eq!(
        b.retained
            .read()
            .get("$SYS/brokers/n/version")
            .map(|m| m.from.to_string()),
        Some("root".to_string())
    );
    assert_eq!(
        *dropped.lock(),
        vec![("$SYS/brokers/n/version".to_string(), "not_authorized")]
    );
    assert_eq!(b.metrics.messages_dropped_not_authorized.get(), 1);
    assert_eq!(b.metrics.messages_dropped.get(), 1);
}

#[tokio::test]
async fn a_delayed_will_is_authorized_when_it_is_published_by_the_hook_then_in_force() {
    let b = Broker::new(BrokerSettings::default());
    let (watcher, _kw) = open(&b, "watcher");
    b.subscribe(&watcher.cell, "w/#", SubOptions::default())
        .unwrap();
    let deny = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let denying = deny.clone();
    b.hooks.client_authorize.add(
        0,
        Arc::new(
            move |client: &ClientInfo, args: &mut crate::hooks::AuthorizeArgs| {
                if matches!(args.action, Action::Publish { .. })
                    && client.clientid == "late"
                    && denying.load(Ordering::Relaxed)
                {
                    args.result = AuthzResult::Deny;
                }
                Flow::Continue
            },
        ),
    );
    let (tx, _k) = oneshot::channel();
    let c = b.open_session(OpenSession {
        namespace: ByteString::new(),
        client_id: "late".into(),
        clean_start: true,
        expiry_interval_secs: 60,
        limits: SessionLimits::default(),
        conn_id: b.next_conn_id(),
        kick: tx,
    });
    let will = Will {
        message: msg("w/late", "late"),
        delay_secs: 1,
        publisher: publisher("late", false),
    };
    b.close_session(
        &c.cell,
        conn_id(&c.cell),
        Close {
            expiry_interval_secs: 60,
            will: Some(will),
        },
    );
    // Allowed when it was set; the rules change before it is due.
    deny.store(true, Ordering::Relaxed);
    let (judged_tx, judged) = oneshot::channel();
    let judged_tx = parking_lot::Mutex::new(Some(judged_tx));
    b.hooks.message_dropped.add(
        0,
        Arc::new(move |args: &mut DroppedArgs| {
            if let Some(tx) = judged_tx.lock().take() {
                let _ = tx.send(args.reason);
            }
            Flow::Continue
        }),
    );
    let reason = tokio::time::timeout(Duration::from_secs(10), judged)
        .await
        .expect("the will was judged when due")
        .unwrap();
    assert_eq!(reason, "not_authorized");
    assert_eq!(watcher.cell.lock().outbox.len(), 0);
}

#[tokio::test]
async fn what_waits_for_a_slow_reader_is_bounded_in_bytes_as_well_as_in_messages() {
    let b = Broker::new(BrokerSettings {
        max_outbox_qos0: 10_000,
        max_outbox_bytes: 64 * 1024,
        ..BrokerSettings::default()
    });
    let (slow, _k) = open(&b, "slow");
    b.subscribe(&slow.cell, "big", SubOptions::default())
        .unwrap();
    let big = |n: usize| Message {
        payload: bytes::Bytes::from(vec![b'x'; n]),
        ..msg("big", "p")
    };
    // 100 messages of 4 KiB: only 16 fit the 64 KiB; the rest are dropped and counted.
    for _ in 0..100 {
        b.publish(big(4096));
    }
    assert_eq!(slow.cell.lock().outbox.len(), 16);
    assert_eq!(b.metrics.messages_dropped_queue_full.get(), 84);
    // A message larger than the bound still goes to a reader that has caught up.
    let mut taken = Vec::new();
    slow.cell.take_outbox(conn_id(&slow.cell), &mut taken);
    assert_eq!(taken.len(), 16);
    b.publish(big(100 * 1024));
    assert_eq!(slow.cell.lock().outbox.len(), 1);
}
