//! Behaviour of the redb store through the public `Store` API, and of the data file on
//! disk (reopen, corruption, format version, growth).

use bytes::Bytes;
use junction_store::{
    kv, AwaitingRel, Committer, Durability, InflightStage, RedbStore, Store, StoreError,
    StoredDelivery, StoredInflight, StoredSession, StoredSubscription, StoredWill, FORMAT_VERSION,
};
use junction_types::{Message, MessageProperties, QoS};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn message(id: u64, topic: &str, expires_at_ms: Option<u64>) -> Message {
    Message {
        id,
        topic: topic.into(),
        payload: Bytes::from(format!("payload of {id}")),
        qos: QoS::ExactlyOnce,
        retain: false,
        properties: MessageProperties {
            payload_format_indicator: Some(1),
            content_type: Some("text/plain".into()),
            response_topic: Some("reply/here".into()),
            correlation_data: Some(Bytes::from_static(b"\x00\x01")),
            user_properties: vec![("k".into(), "v".into())],
        },
        expires_at_ms,
        received_at_ms: 1_700_000_000_000,
        from: "publisher".into(),
        namespace: "stomp".into(),
    }
}

fn delivery(message_id: u64) -> StoredDelivery {
    StoredDelivery {
        message_id,
        qos: QoS::AtLeastOnce,
        retain: false,
        subscription_ids: vec![7],
    }
}

fn session_waiting_for(client_id: &str, ids: &[u64]) -> StoredSession {
    let mut s = StoredSession::new("", client_id);
    s.queued = ids.iter().copied().map(delivery).collect();
    s
}

fn data_file() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("junction.db");
    (dir, path)
}

fn open_error(path: &Path) -> StoreError {
    match RedbStore::open(path) {
        Ok(_) => panic!("{} opened", path.display()),
        Err(e) => e,
    }
}

#[test]
fn every_table_round_trips() {
    let (_dir, path) = data_file();
    let store = RedbStore::open(&path).unwrap();

    let inflight = message(1, "a/b", None);
    let queued = message(2, "a/c", Some(u64::MAX));
    let will = message(3, "will/x", None);
    let retained = message(4, "status/x", Some(5_000));
    for m in [&inflight, &queued, &will] {
        store.put_message(m).unwrap();
    }
    let session = StoredSession {
        namespace: "mqttsn".into(),
        client_id: "sensor-1".into(),
        expiry_interval_secs: 7200,
        expiry_deadline_ms: Some(9_000),
        created_at_ms: 10,
        subscriptions: vec![StoredSubscription {
            filter: "$share/g/a/#".into(),
            qos: QoS::ExactlyOnce,
            no_local: true,
            retain_as_published: true,
            retain_handling: 2,
            subscription_id: Some(42),
        }],
        inflight: vec![StoredInflight {
            packet_id: 65535,
            stage: InflightStage::WaitComp,
            sent_at_ms: 11,
            delivery: delivery(1),
        }],
        queued: vec![delivery(2)],
        awaiting_rel: vec![AwaitingRel {
            packet_id: 12,
            received_at_ms: 13,
        }],
        will: Some(StoredWill {
            message_id: 3,
            publish_at_ms: Some(14),
            delay_secs: 0,
        }),
    };
    store.put_session(&session).unwrap();
    store.put_retained(&retained).unwrap();
    let namespaces = [
        kv::USERS,
        kv::AUTHZ_RULES,
        kv::BANNED,
        kv::API_KEYS,
        kv::CONFIG_CHANGES,
    ];
    for ns in namespaces {
        store.put_kv(ns, "b", format!("{ns}-b").as_bytes()).unwrap();
        store.put_kv(ns, "a", format!("{ns}-a").as_bytes()).unwrap();
    }
    assert_eq!(store.pending(), 3 + 1 + 2 + 2 * namespaces.len());
    store.commit().unwrap();
    assert_eq!(store.pending(), 0);

    for m in [&inflight, &queued, &will, &retained] {
        assert_eq!(store.get_message(m.id).unwrap().as_ref(), Some(m));
    }
    assert_eq!(store.message_count().unwrap(), 4);
    assert_eq!(store.message_id_high_water().unwrap(), 4);
    assert_eq!(
        store.get_session("mqttsn", "sensor-1").unwrap(),
        Some(session.clone())
    );
    assert_eq!(store.get_session("", "sensor-1").unwrap(), None);
    assert_eq!(store.list_sessions().unwrap(), vec![session]);
    assert_eq!(
        store.get_retained("status/x").unwrap(),
        Some(retained.clone())
    );
    assert_eq!(store.list_retained().unwrap(), vec![retained]);
    for ns in namespaces {
        assert_eq!(
            store.get_kv(ns, "a").unwrap(),
            Some(format!("{ns}-a").into_bytes())
        );
        // Listed by key, and only this namespace's keys.
        assert_eq!(
            store.list_kv(ns).unwrap(),
            vec![
                ("a".to_string(), format!("{ns}-a").into_bytes()),
                ("b".to_string(), format!("{ns}-b").into_bytes()),
            ]
        );
    }
    store.delete_kv(kv::BANNED, "a").unwrap();
    store.commit().unwrap();
    assert_eq!(store.get_kv(kv::BANNED, "a").unwrap(), None);
    assert_eq!(store.list_kv(kv::BANNED).unwrap().len(), 1);
    assert_eq!(store.list_kv("no such namespace").unwrap(), vec![]);
}

#[test]
fn message_is_stored_once_for_two_sessions_and_deleted_after_both_drop_it() {
    let (_dir, path) = data_file();
    let store = RedbStore::open(&path).unwrap();
    store.put_message(&message(10, "t", None)).unwrap();
    store.put_session(&session_waiting_for("a", &[10])).unwrap();
    store.put_session(&session_waiting_for("b", &[10])).unwrap();
    store.commit().unwrap();
    assert_eq!(store.message_count().unwrap(), 1);

    // Putting the same message again (the broker fanning out) stores nothing new.
    store.put_message(&message(10, "t", None)).unwrap();
    store.commit().unwrap();
    assert_eq!(store.message_count().unwrap(), 1);

    store.put_session(&session_waiting_for("a", &[])).unwrap();
    store.commit().unwrap();
    assert!(store.get_message(10).unwrap().is_some(), "b still waits");

    store.delete_session("", "b").unwrap();
    store.commit().unwrap();
    // Unreferenced messages wait one full sweep interval: gone at the second sweep.
    assert_eq!(store.sweep_expired(0).unwrap().messages, 0);
    assert_eq!(store.sweep_expired(0).unwrap().messages, 1);
    assert_eq!(store.get_message(10).unwrap(), None);
    assert_eq!(store.message_count().unwrap(), 0);
}

#[test]
fn sweep_removes_expired_sessions_and_messages() {
    let (_dir, path) = data_file();
    let store = RedbStore::open(&path).unwrap();
    store.put_message(&message(1, "t", None)).unwrap();
    store.put_message(&message(2, "t", Some(500))).unwrap();
    store.put_message(&message(3, "t", None)).unwrap();
    let mut expiring = session_waiting_for("expiring", &[1, 2]);
    expiring.expiry_deadline_ms = Some(1_000);
    let mut staying = session_waiting_for("staying", &[2, 3]);
    staying.expiry_deadline_ms = Some(5_000);
    store.put_session(&expiring).unwrap();
    store.put_session(&staying).unwrap();
    store
        .put_retained(&message(4, "r/expiring", Some(800)))
        .unwrap();
    store.put_retained(&message(5, "r/staying", None)).unwrap();
    store.commit().unwrap();

    let report = store.sweep_expired(499).unwrap();
    assert_eq!(
        (report.sessions, report.messages, report.retained),
        (0, 0, 0)
    );

    // Message 2 expired; it goes even though both sessions still name it.
    let report = store.sweep_expired(500).unwrap();
    assert_eq!(
        (report.sessions, report.messages, report.retained),
        (0, 1, 0)
    );
    assert_eq!(store.get_message(2).unwrap(), None);

    // The retained message 4 expires with its retained entry; session "expiring" goes,
    // and message 1, which only it referred to, goes at the next sweep.
    let report = store.sweep_expired(1_000).unwrap();
    assert_eq!(
        (report.sessions, report.messages, report.retained),
        (1, 1, 1)
    );
    assert_eq!(store.get_session("", "expiring").unwrap(), None);
    let report = store.sweep_expired(1_000).unwrap();
    assert_eq!(
        (report.sessions, report.messages, report.retained),
        (0, 1, 0)
    );
    assert_eq!(store.get_message(1).unwrap(), None);
    assert_eq!(store.get_retained("r/expiring").unwrap(), None);
    assert!(store.get_session("", "staying").unwrap().is_some());
    assert!(store.get_message(3).unwrap().is_some());
    assert!(store.get_retained("r/staying").unwrap().is_some());

    // A session put back without a deadline (client reconnected) is not swept.
    let mut reconnected = staying.clone();
    reconnected.expiry_deadline_ms = None;
    store.put_session(&reconnected).unwrap();
    let report = store.sweep_expired(10_000).unwrap();
    assert_eq!(report.sessions, 0);
    assert_eq!(store.list_sessions().unwrap(), vec![reconnected]);
}

#[test]
fn reopen_keeps_committed_writes_and_loses_uncommitted_ones() {
    let (_dir, path) = data_file();
    {
        let store = RedbStore::open(&path).unwrap();
        store.put_message(&message(1, "t", None)).unwrap();
        store
            .put_session(&session_waiting_for("kept", &[1]))
            .unwrap();
        store.put_kv(kv::USERS, "alice", b"hash").unwrap();
        store.commit().unwrap();
        store.put_message(&message(2, "t", None)).unwrap();
        store
            .put_session(&session_waiting_for("lost", &[2]))
            .unwrap();
        store.put_kv(kv::USERS, "bob", b"hash").unwrap();
        assert_eq!(store.pending(), 3);
    }
    let store = RedbStore::open(&path).unwrap();
    assert_eq!(store.pending(), 0);
    assert!(store.get_session("", "kept").unwrap().is_some());
    assert!(store.get_message(1).unwrap().is_some());
    assert_eq!(
        store.get_kv(kv::USERS, "alice").unwrap(),
        Some(b"hash".to_vec())
    );
    assert_eq!(store.get_session("", "lost").unwrap(), None);
    assert_eq!(store.get_message(2).unwrap(), None);
    assert_eq!(store.get_kv(kv::USERS, "bob").unwrap(), None);
    assert_eq!(store.message_id_high_water().unwrap(), 1);
}

#[test]
fn truncated_file_is_corrupt_and_named() {
    let (_dir, path) = data_file();
    {
        let store = RedbStore::open(&path).unwrap();
        for id in 1..=200 {
            store.put_message(&message(id, "t", None)).unwrap();
        }
        let ids: Vec<u64> = (1..=200).collect();
        store.put_session(&session_waiting_for("c", &ids)).unwrap();
        store.commit().unwrap();
    }
    let len = std::fs::metadata(&path).unwrap().len();
    let bytes = std::fs::read(&path).unwrap();
    for cut in [len / 2, 4096 + 17, 100] {
        std::fs::write(&path, &bytes[..cut as usize]).unwrap();
        let err = open_error(&path);
        eprintln!("cut at {cut}: {err}");
        assert!(
            matches!(err, StoreError::Corrupt { .. }),
            "cut at {cut}: {err:?}"
        );
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }
}

#[test]
fn garbage_file_is_corrupt_and_named() {
    let (_dir, path) = data_file();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let garbage: Vec<u8> = (0..65_536)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    std::fs::write(&path, garbage).unwrap();
    let err = open_error(&path);
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn garbage_behind_a_valid_header_is_corrupt() {
    let (_dir, path) = data_file();
    {
        let store = RedbStore::open(&path).unwrap();
        store.put_kv(kv::USERS, "alice", &[1; 2000]).unwrap();
        store.commit().unwrap();
    }
    let mut bytes = std::fs::read(&path).unwrap();
    for b in bytes.iter_mut().skip(4096) {
        *b = !*b;
    }
    std::fs::write(&path, bytes).unwrap();
    let err = open_error(&path);
    eprintln!("{err}");
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn newer_format_version_is_refused_and_named() {
    let (_dir, path) = data_file();
    drop(RedbStore::open(&path).unwrap());
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let meta: redb::TableDefinition<'_, &str, u64> = redb::TableDefinition::new("meta");
            let mut meta = txn.open_table(meta).unwrap();
            meta.insert("format_version", FORMAT_VERSION + 1).unwrap();
        }
        txn.commit().unwrap();
    }
    let err = open_error(&path);
    match &err {
        StoreError::Format {
            path: p,
            found,
            supported,
        } => {
            assert_eq!(p, &path);
            assert_eq!(*found, Some(FORMAT_VERSION + 1));
            assert_eq!(*supported, FORMAT_VERSION);
        }
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
}

#[test]
fn redb_file_without_format_version_is_refused() {
    let (_dir, path) = data_file();
    {
        let db = redb::Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let other: redb::TableDefinition<'_, u64, u64> = redb::TableDefinition::new("other");
            txn.open_table(other).unwrap().insert(1, 2).unwrap();
        }
        txn.commit().unwrap();
    }
    let err = open_error(&path);
    assert!(
        matches!(err, StoreError::Format { found: None, .. }),
        "{err:?}"
    );
    // Nothing was reset: the foreign table is still there.
    let db = redb::Database::create(&path).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    assert!(txn
        .list_tables()
        .unwrap()
        .any(|t| redb::TableHandle::name(&t) == "other"));
}

#[test]
fn second_open_of_the_same_file_is_refused() {
    let (_dir, path) = data_file();
    let _first = RedbStore::open(&path).unwrap();
    let err = open_error(&path);
    assert!(matches!(err, StoreError::Locked { .. }), "{err:?}");
}

#[test]
fn file_stops_growing_under_insert_expire_sweep() {
    let (_dir, path) = data_file();
    let store = RedbStore::open(&path).unwrap();
    let payload = Bytes::from(vec![0x5a; 1024]);
    let started = Instant::now();
    let mut next_id = 1;
    let mut size_after_warm_up = None;
    let rounds = 200;
    let mut round = 0;
    while round < rounds && started.elapsed() < Duration::from_secs(3) {
        let now = round * 10;
        for client in 0..20 {
            let mut ids = Vec::new();
            for _ in 0..5 {
                let mut m = message(next_id, "load/t", Some(now + 10));
                m.payload = payload.clone();
                store.put_message(&m).unwrap();
                ids.push(next_id);
                next_id += 1;
            }
            let mut s = session_waiting_for(&format!("client-{round}-{client}"), &ids);
            s.expiry_deadline_ms = Some(now + 10);
            store.put_session(&s).unwrap();
        }
        store
            .put_retained(&message(next_id, "load/retained", Some(now + 10)))
            .unwrap();
        next_id += 1;
        store.commit().unwrap();
        let report = store.sweep_expired(now).unwrap();
        if round > 0 {
            assert_eq!(report.sessions, 20, "round {round}");
        }
        round += 1;
        if round == 30 {
            size_after_warm_up = Some(std::fs::metadata(&path).unwrap().len());
        }
    }
    assert!(round > 60, "only {round} rounds ran");
    let warm = size_after_warm_up.unwrap();
    let end = std::fs::metadata(&path).unwrap().len();
    eprintln!(
        "{round} rounds in {:?}: {warm} bytes after 30, {end} at the end",
        started.elapsed()
    );
    // Live data stays at two rounds' worth (~200 KiB); freed pages are reused.
    assert!(
        end <= warm + warm / 2,
        "file grew from {warm} to {end} bytes over {round} rounds"
    );
    let report = store.sweep_expired(u64::MAX).unwrap();
    assert_eq!(report.sessions, 20);
    store.sweep_expired(u64::MAX).unwrap();
    assert_eq!(store.message_count().unwrap(), 0);
    assert_eq!(store.list_sessions().unwrap(), vec![]);
}

#[test]
fn committer_commits_on_its_interval_and_on_stop() {
    let (_dir, path) = data_file();
    let store: Arc<dyn Store> = Arc::new(RedbStore::open(&path).unwrap());
    let interval = Durability::default().interval().unwrap();
    let committer = Committer::spawn(store.clone(), interval, |e| panic!("{e}")).unwrap();

    store.put_kv(kv::API_KEYS, "k1", b"v1").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while store.get_kv(kv::API_KEYS, "k1").unwrap().is_none() {
        assert!(Instant::now() < deadline, "no periodic commit within 5 s");
        std::thread::sleep(Duration::from_millis(1));
    }

    // A long interval: only the stop can commit this one.
    committer.stop().unwrap();
    let committer =
        Committer::spawn(store.clone(), Duration::from_secs(3600), |e| panic!("{e}")).unwrap();
    store.put_kv(kv::API_KEYS, "k2", b"v2").unwrap();
    committer.stop().unwrap();
    assert_eq!(store.pending(), 0);
    assert_eq!(
        store.get_kv(kv::API_KEYS, "k2").unwrap(),
        Some(b"v2".to_vec())
    );
}

#[test]
fn every_ack_commit_makes_each_callers_write_visible() {
    let (_dir, path) = data_file();
    let store: Arc<dyn Store> = Arc::new(RedbStore::open(&path).unwrap());
    assert!(Durability::EveryAck.commit_before_ack());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..25 {
                    let key = format!("{t}-{i}");
                    store.put_kv(kv::CONFIG_CHANGES, &key, b"x").unwrap();
                    store.commit().unwrap();
                    // What would be acknowledged now must be committed.
                    assert!(store.get_kv(kv::CONFIG_CHANGES, &key).unwrap().is_some());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(store.list_kv(kv::CONFIG_CHANGES).unwrap().len(), 100);
}

/// Writes `version` as the file's data format version.
fn set_format_version(path: &Path, version: u64) {
    let db = redb::Database::create(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let meta: redb::TableDefinition<'_, &str, u64> = redb::TableDefinition::new("meta");
        let mut meta = txn.open_table(meta).unwrap();
        meta.insert("format_version", version).unwrap();
    }
    txn.commit().unwrap();
}

#[test]
fn a_version_1_file_without_sessions_is_upgraded_and_keeps_its_retained_messages() {
    let (_dir, path) = data_file();
    {
        let store = RedbStore::open(&path).unwrap();
        store.put_retained(&message(5, "kept/topic", None)).unwrap();
        store.commit().unwrap();
    }
    set_format_version(&path, 1);
    let store = RedbStore::open(&path).unwrap();
    assert_eq!(store.list_retained().unwrap().len(), 1);
    store.queue_put("", "c", 1, &delivery(5)).unwrap();
    store.put_session(&StoredSession::new("", "c")).unwrap();
    store.commit().unwrap();
    drop(store);
    // Now a version 2 file: a build that reads version 1 only would refuse it.
    let store = RedbStore::open(&path).unwrap();
    assert_eq!(store.get_session("", "c").unwrap().unwrap().queued.len(), 1);
}

#[test]
fn a_version_1_file_with_session_records_is_refused() {
    let (_dir, path) = data_file();
    {
        let store = RedbStore::open(&path).unwrap();
        store.put_session(&StoredSession::new("", "old")).unwrap();
        store.commit().unwrap();
    }
    set_format_version(&path, 1);
    match open_error(&path) {
        StoreError::Format { found, .. } => assert_eq!(found, Some(1)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn sweeping_messages_only_leaves_sessions_past_their_deadline() {
    let (_dir, path) = data_file();
    let store = RedbStore::open(&path).unwrap();
    store.put_message(&message(1, "t", None)).unwrap();
    let mut s = session_waiting_for("held", &[1]);
    s.expiry_deadline_ms = Some(10);
    store.put_session(&s).unwrap();
    store.commit().unwrap();
    let report = store.sweep_messages(100).unwrap();
    assert_eq!(report.sessions, 0);
    assert!(store.get_session("", "held").unwrap().is_some());
    store.sweep_messages(100).unwrap();
    assert!(store.get_message(1).unwrap().is_some(), "still referred to");
    assert_eq!(store.sweep_expired(100).unwrap().sessions, 1);
}
