//! The data file (`<node.data_dir>/junction.redb`): what the broker persists, when it
//! commits, and what it restores at start.
//!
//! Retained messages are written as they change (the broker's retained sink). Persistent
//! sessions (those with an expiry interval) put themselves on the broker's dirty list
//! whenever they change; the [`Persister`] snapshots each dirty session into one session
//! record (subscriptions, in-flight, queued, awaiting-release ids, will) and writes the
//! messages it refers to once. The snapshot and the commit run together:
//!
//! - batched (`durable_sessions.commit_interval`): a thread flushes every interval;
//! - `durable_sessions.commit_before_ack = true`: connections also flush before they send
//!   a PUBACK or PUBREC (the broker's ack barrier). Flushes are serialized, so concurrent
//!   connections share them: whoever flushes next commits everything changed so far.

use anyhow::Context;
use bytestring::ByteString;
use junction_broker::{Broker, CellState, DirtySessions, PendingWill, SessionCell};
use junction_session::{
    Delivery, Inflight, InflightState, RestoredParts, Session, SessionLimits, SubOptions,
};
use junction_store::{
    AwaitingRel, Committer, InflightStage, RedbStore, Store, StoreError, StoredDelivery,
    StoredInflight, StoredSession, StoredSubscription, StoredWill, DEFAULT_COMMIT_INTERVAL,
};
use junction_types::{now_ms, Message, SharedMessage};
use parking_lot::Mutex;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How often expired sessions and messages are swept out of the file.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// The data file and the thread that commits to it.
pub(crate) struct Durable {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) persister: Arc<Persister>,
    committer: Mutex<Option<Committer>>,
}

impl std::fmt::Debug for Durable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Durable").finish_non_exhaustive()
    }
}

/// What [`Durable::open`] needs from the configuration.
pub(crate) struct DurableOptions<'a> {
    pub data_dir: &'a Path,
    pub commit_interval: Duration,
    pub commit_before_ack: bool,
    /// Limits given to restored sessions until their client reconnects.
    pub limits: SessionLimits,
}

impl Durable {
    /// Open the data file (a corrupt, newer-format or locked file stops the start, naming
    /// the file), restore retained messages and sessions, and persist their changes from
    /// now on. Runs inside the tokio runtime (it starts the sweeper and session timers).
    pub(crate) fn open(opts: DurableOptions<'_>, broker: &Arc<Broker>) -> anyhow::Result<Durable> {
        std::fs::create_dir_all(opts.data_dir)
            .with_context(|| format!("node.data_dir {}", opts.data_dir.display()))?;
        let store: Arc<dyn Store> = Arc::new(RedbStore::open(opts.data_dir.join("junction.redb"))?);
        broker.reserve_message_ids(store.message_id_high_water()?);
        // Sessions that expired while the broker was down go first; their wills are due.
        let swept = store.sweep_expired(now_ms())?;
        store.commit()?;
        for will in swept.wills {
            let mut will = will;
            will.id = 0;
            will.received_at_ms = now_ms();
            broker.publish(will);
        }
        let restored = broker.restore_retained(store.list_retained()?);
        tracing::info!(restored, "retained messages restored");
        let persister = Arc::new(Persister::new(store.clone(), broker));
        let sessions = persister.restore(broker, opts.limits)?;
        tracing::info!(sessions, "sessions restored");
        set_retained_sink(broker, &store);
        spawn_sweeper(&store);
        if opts.commit_before_ack {
            let p = Arc::downgrade(&persister);
            broker.set_ack_barrier(Box::new(move || {
                let p = p.clone();
                Box::pin(async move {
                    let Some(p) = p.upgrade() else {
                        return Ok(());
                    };
                    match tokio::task::spawn_blocking(move || p.flush()).await {
                        Ok(r) => r.map_err(|e| e.to_string()),
                        Err(e) => Err(e.to_string()),
                    }
                })
            }));
        }
        let interval = if opts.commit_interval.is_zero() {
            DEFAULT_COMMIT_INTERVAL
        } else {
            opts.commit_interval
        };
        let p = persister.clone();
        let committer = Committer::spawn_with(
            move || p.flush(),
            interval,
            |e| tracing::error!(error = %e, "commit to the data file failed"),
        )?;
        Ok(Durable {
            store,
            persister,
            committer: Mutex::new(Some(committer)),
        })
    }

    /// Stop the commit thread after a last flush (clean shutdown: nothing is lost).
    pub(crate) fn stop(&self) {
        if let Some(c) = self.committer.lock().take() {
            if let Err(e) = c.stop() {
                tracing::error!(error = %e, "final commit of the data file failed");
            }
        }
    }
}

/// Retained-table changes go to the file (`$SYS` topics are republished at start).
fn set_retained_sink(broker: &Arc<Broker>, store: &Arc<dyn Store>) {
    // The broker holds the store weakly: the file closes when the server is shut down,
    // even while connection tasks still hold the broker.
    let sink = Arc::downgrade(store);
    broker.set_retained_sink(Box::new(move |m| {
        let Some(sink) = sink.upgrade() else {
            return;
        };
        if m.topic.starts_with("$SYS/") {
            return;
        }
        let r = if m.payload.is_empty() {
            sink.delete_retained(&m.topic)
        } else {
            sink.put_retained(m)
        };
        if let Err(e) = r {
            tracing::warn!(topic = %m.topic, error = %e, "retained message not persisted");
        }
    }));
}

/// Expired sessions, expired messages and unreferenced messages leave the file.
fn spawn_sweeper(store: &Arc<dyn Store>) {
    let sweeper = Arc::downgrade(store);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(SWEEP_EVERY);
        every.tick().await;
        loop {
            every.tick().await;
            let Some(store) = sweeper.upgrade() else {
                return;
            };
            let swept = tokio::task::spawn_blocking(move || store.sweep_expired(now_ms())).await;
            if let Ok(Err(e)) = swept {
                tracing::warn!(error = %e, "sweeping the data file failed");
            }
        }
    });
}

type Key = (ByteString, ByteString);

/// Writes dirty sessions to the store and commits.
pub(crate) struct Persister {
    store: Arc<dyn Store>,
    dirty: Arc<DirtySessions>,
    broker: std::sync::Weak<Broker>,
    /// Held for a whole flush: flushes never interleave, so a flush that returns has
    /// committed every change made before it started.
    state: Mutex<Written>,
}

/// What the file holds, as far as the persister needs to know.
#[derive(Default)]
struct Written {
    /// Message ids each session record refers to.
    sessions: HashMap<Key, BTreeSet<u64>>,
    /// How many session records refer to each message written: a message already in
    /// the file is not written again.
    messages: HashMap<u64, u32>,
}

impl Persister {
    fn new(store: Arc<dyn Store>, broker: &Arc<Broker>) -> Persister {
        Persister {
            store,
            dirty: broker.track_sessions(),
            broker: Arc::downgrade(broker),
            state: Mutex::new(Written::default()),
        }
    }

    /// Put every stored session back into the broker; returns how many.
    fn restore(&self, broker: &Arc<Broker>, limits: SessionLimits) -> anyhow::Result<usize> {
        let now = now_ms();
        let mut written = self.state.lock();
        let mut n = 0;
        for rec in self.store.list_sessions()? {
            let mut messages: HashMap<u64, SharedMessage> = HashMap::new();
            for id in rec.message_ids() {
                if let Some(m) = self.store.get_message(id)? {
                    messages.insert(id, Arc::new(m));
                }
            }
            let key: Key = (rec.namespace.as_str().into(), rec.client_id.as_str().into());
            let (session, disconnected_at, will) = from_record(&rec, &messages, limits, now);
            if broker
                .restore_session(key.0.clone(), session, disconnected_at, will)
                .is_some()
            {
                n += 1;
                let ids: BTreeSet<u64> = messages.keys().copied().collect();
                for id in &ids {
                    *written.messages.entry(*id).or_default() += 1;
                }
                written.sessions.insert(key, ids);
            } else {
                self.store.delete_session(&rec.namespace, &rec.client_id)?;
            }
        }
        drop(written);
        self.store.commit()?;
        Ok(n)
    }

    /// Snapshot every session changed since the last flush, then commit.
    pub(crate) fn flush(&self) -> Result<(), StoreError> {
        let mut written = self.state.lock();
        for cell in self.dirty.take() {
            self.snapshot(&cell, &mut written)?;
        }
        self.store.commit()
    }

    fn snapshot(&self, cell: &SessionCell, written: &mut Written) -> Result<(), StoreError> {
        let key: Key = (cell.namespace.clone(), cell.client_id.clone());
        let mut st = cell.lock_for_snapshot();
        if st.discarded || st.session.expiry_interval_secs == 0 {
            drop(st);
            if let Some(ids) = written.sessions.remove(&key) {
                written.release(&ids);
            }
            return self.store.delete_session(&cell.namespace, &cell.client_id);
        }
        if let Some(w) = st.will.as_mut() {
            if w.message.id == 0 {
                if let Some(b) = self.broker.upgrade() {
                    w.message.id = b.next_message_id();
                }
            }
        }
        let (record, messages) = to_record(cell, &st);
        drop(st);
        let ids = record.message_ids();
        for m in &messages {
            if !written.messages.contains_key(&m.id) {
                self.store.put_message(m)?;
            }
        }
        for id in &ids {
            *written.messages.entry(*id).or_default() += 1;
        }
        if let Some(old) = written.sessions.insert(key, ids) {
            written.release(&old);
        }
        self.store.put_session(&record)
    }
}

impl Written {
    /// A record that referred to `ids` is gone or replaced.
    fn release(&mut self, ids: &BTreeSet<u64>) {
        for id in ids {
            if let Some(n) = self.messages.get_mut(id) {
                *n -= 1;
                if *n == 0 {
                    self.messages.remove(id);
                }
            }
        }
    }
}

fn stored_delivery(d: &Delivery) -> StoredDelivery {
    StoredDelivery {
        message_id: d.message.id,
        qos: d.qos,
        retain: d.retain,
        subscription_ids: d.subscription_ids.clone(),
    }
}

/// The record of a session, and the messages it refers to.
fn to_record(cell: &SessionCell, st: &CellState) -> (StoredSession, Vec<Message>) {
    let s = &st.session;
    let mut messages: Vec<Message> = Vec::new();
    let mut seen: BTreeSet<u64> = BTreeSet::new();
    let mut keep = |m: &SharedMessage| {
        if seen.insert(m.id) {
            messages.push(Message::clone(m));
        }
    };
    let mut rec = StoredSession::new(&*cell.namespace, &*cell.client_id);
    rec.expiry_interval_secs = s.expiry_interval_secs;
    rec.created_at_ms = s.created_at_ms;
    rec.expiry_deadline_ms = match (st.conn.is_some(), st.disconnected_at_ms) {
        (false, Some(at)) if s.expiry_interval_secs != u32::MAX => {
            Some(at.saturating_add(s.expiry_interval_secs as u64 * 1000))
        }
        _ => None,
    };
    let mut subs: Vec<StoredSubscription> = s
        .subscriptions
        .iter()
        .map(|(filter, o)| StoredSubscription {
            filter: filter.clone(),
            qos: o.qos,
            no_local: o.no_local,
            retain_as_published: o.retain_as_published,
            retain_handling: o.retain_handling,
            subscription_id: o.subscription_id,
        })
        .collect();
    subs.sort_by(|a, b| a.filter.cmp(&b.filter));
    rec.subscriptions = subs;
    for (packet_id, e) in s.inflight() {
        keep(&e.delivery.message);
        rec.inflight.push(StoredInflight {
            packet_id,
            stage: match e.state {
                InflightState::WaitAck => InflightStage::WaitAck,
                InflightState::WaitComp => InflightStage::WaitComp,
            },
            sent_at_ms: e.sent_at_ms,
            delivery: stored_delivery(&e.delivery),
        });
    }
    for d in s.queued() {
        keep(&d.message);
        rec.queued.push(stored_delivery(d));
    }
    rec.awaiting_rel = s
        .awaiting_rel()
        .map(|(packet_id, received_at_ms)| AwaitingRel {
            packet_id,
            received_at_ms,
        })
        .collect();
    if let Some(w) = &st.will {
        if w.message.id != 0 {
            if seen.insert(w.message.id) {
                messages.push(w.message.clone());
            }
            rec.will = Some(StoredWill {
                message_id: w.message.id,
                publish_at_ms: w.publish_at_ms,
            });
        }
    }
    (rec, messages)
}

/// The session a record describes, when it was left (ms), and its will. Deliveries of
/// messages no longer in the file (expired and swept) are skipped.
fn from_record(
    rec: &StoredSession,
    messages: &HashMap<u64, SharedMessage>,
    limits: SessionLimits,
    now: u64,
) -> (Session, u64, Option<PendingWill>) {
    let delivery = |d: &StoredDelivery| {
        messages.get(&d.message_id).map(|m| Delivery {
            message: m.clone(),
            qos: d.qos,
            retain: d.retain,
            subscription_ids: d.subscription_ids.clone(),
        })
    };
    let parts = RestoredParts {
        created_at_ms: rec.created_at_ms,
        expiry_interval_secs: rec.expiry_interval_secs,
        subscriptions: rec
            .subscriptions
            .iter()
            .map(|s| {
                (
                    s.filter.clone(),
                    SubOptions {
                        qos: s.qos,
                        no_local: s.no_local,
                        retain_as_published: s.retain_as_published,
                        retain_handling: s.retain_handling,
                        subscription_id: s.subscription_id,
                    },
                )
            })
            .collect(),
        inflight: rec
            .inflight
            .iter()
            .filter_map(|i| {
                // A PUBREL in flight needs no message; a PUBLISH does.
                let d = match (delivery(&i.delivery), i.stage) {
                    (Some(d), _) => d,
                    (None, InflightStage::WaitComp) => Delivery {
                        message: Arc::new(placeholder(i.delivery.message_id)),
                        qos: i.delivery.qos,
                        retain: false,
                        subscription_ids: Vec::new(),
                    },
                    (None, InflightStage::WaitAck) => return None,
                };
                Some((
                    i.packet_id,
                    Inflight {
                        delivery: d,
                        state: match i.stage {
                            InflightStage::WaitAck => InflightState::WaitAck,
                            InflightStage::WaitComp => InflightState::WaitComp,
                        },
                        sent_at_ms: i.sent_at_ms,
                    },
                ))
            })
            .collect(),
        queued: rec.queued.iter().filter_map(delivery).collect(),
        awaiting_rel: rec
            .awaiting_rel
            .iter()
            .map(|a| (a.packet_id, a.received_at_ms))
            .collect(),
    };
    // Left while connected (the broker stopped under it): the session's offline time
    // starts now.
    let disconnected_at = match rec.expiry_deadline_ms {
        Some(deadline) => deadline.saturating_sub(rec.expiry_interval_secs as u64 * 1000),
        None => now,
    };
    let will = rec.will.and_then(|w| {
        messages.get(&w.message_id).map(|m| PendingWill {
            message: Message::clone(m),
            delay_secs: 0,
            publish_at_ms: w.publish_at_ms,
        })
    });
    let session = Session::restore(rec.client_id.as_str().into(), limits, parts);
    (session, disconnected_at, will)
}

/// Stands in for a QoS 2 message whose PUBCOMP is all that is left to wait for (the
/// message itself may have expired from the file): only its id is ever used.
fn placeholder(id: u64) -> Message {
    Message {
        id,
        topic: ByteString::new(),
        payload: bytes::Bytes::new(),
        qos: junction_types::QoS::ExactlyOnce,
        retain: false,
        properties: Default::default(),
        expires_at_ms: None,
        received_at_ms: 0,
        from: ByteString::new(),
        namespace: ByteString::new(),
    }
}
