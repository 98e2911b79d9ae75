//! The data file (`<node.data_dir>/junction.redb`): what the broker persists, when it
//! commits, and what it restores at start.
//!
//! Retained messages are written as they change (the broker's retained sink). Persistent
//! sessions (those with an expiry interval) put themselves on the broker's dirty list
//! whenever they change; the [`Persister`] snapshots each dirty session: its record
//! (subscriptions, in-flight, awaiting-release ids, will, expiry) whole, its queue by
//! the entries that left the front and joined the back, and each message it refers to
//! once. The snapshot and the commit run together:
//!
//! - batched (`durable_sessions.commit_interval`): a thread flushes every interval;
//! - `durable_sessions.commit_before_ack = true`: connections also flush before they send
//!   a PUBACK, PUBREC or PUBCOMP (the broker's ack barrier). Flushes are serialized, so
//!   concurrent connections share them: whoever flushes next commits everything changed
//!   so far.

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
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How often expired and unreferenced messages are swept out of the file.
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
        // Sessions that expired while the broker was down go first.
        let swept = store.sweep_expired(now_ms())?;
        store.commit()?;
        let restored = broker.restore_retained(store.list_retained()?);
        tracing::info!(restored, "retained messages restored");
        // From here on, retained changes (a retained will included) reach the file.
        set_retained_sink(broker, &store);
        let persister = Arc::new(Persister::new(store.clone(), broker));
        let (sessions, due) = persister.restore(broker, opts.limits)?;
        tracing::info!(sessions, "sessions restored");
        // The wills that are due, once every restored session can receive them.
        for will in swept.wills.into_iter().chain(due) {
            broker.publish_will(will, None);
        }
        spawn_sweeper(&persister);
        if opts.commit_before_ack {
            let p = Arc::downgrade(&persister);
            broker.set_ack_barrier(Box::new(move || {
                let p = p.clone();
                Box::pin(async move {
                    let Some(p) = p.upgrade() else {
                        return Ok(());
                    };
                    if p.all_committed() {
                        return Ok(());
                    }
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
fn spawn_sweeper(persister: &Arc<Persister>) {
    let sweeper = Arc::downgrade(persister);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(SWEEP_EVERY);
        every.tick().await;
        loop {
            every.tick().await;
            let Some(p) = sweeper.upgrade() else {
                return;
            };
            let swept = tokio::task::spawn_blocking(move || p.sweep(now_ms())).await;
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
    state: Mutex<HashMap<Key, Mark>>,
}

/// What the file holds of one session, as far as the persister needs to know to write
/// only what changed.
struct Mark {
    /// The cell the record was written from: a session that ended (discarded, expired)
    /// deletes the record only while it is still its own, not a newer session's.
    cell_id: u64,
    /// Message ids the record (in-flight, will) refers to.
    record_ids: BTreeSet<u64>,
    /// The queue entries written, unless the queue must be written whole next time.
    queue: Option<QueueMark>,
}

struct QueueMark {
    epoch: u64,
    /// Sequence number of the first entry written.
    head: u64,
    /// Message ids of the entries written, from `head` on.
    ids: VecDeque<u64>,
}

/// One session's writes, gathered under its lock and written after it is released.
struct Snapshot {
    record: StoredSession,
    /// Messages the record refers to.
    record_messages: Vec<SharedMessage>,
    /// Remove the queue entries below this sequence number first.
    trim_below: Option<u64>,
    /// New queue entries.
    queue_puts: Vec<(u64, StoredDelivery, SharedMessage)>,
    /// Message ids that left the queue (most into the in-flight window: already stored).
    left_queue: HashSet<u64>,
}

impl Mark {
    fn new(cell_id: u64) -> Mark {
        Mark {
            cell_id,
            record_ids: BTreeSet::new(),
            queue: None,
        }
    }
}

impl Persister {
    fn new(store: Arc<dyn Store>, broker: &Arc<Broker>) -> Persister {
        Persister {
            store,
            dirty: broker.track_sessions(),
            broker: Arc::downgrade(broker),
            state: Mutex::new(HashMap::new()),
        }
    }

    /// Put every stored session back into the broker; returns how many, and the wills
    /// that are due now.
    fn restore(
        &self,
        broker: &Arc<Broker>,
        limits: SessionLimits,
    ) -> anyhow::Result<(usize, Vec<Message>)> {
        let now = now_ms();
        let mut marks = self.state.lock();
        let mut n = 0;
        let mut due = Vec::new();
        for rec in self.store.list_sessions()? {
            let mut messages: HashMap<u64, SharedMessage> = HashMap::new();
            for id in rec.message_ids() {
                if let Some(m) = self.store.get_message(id)? {
                    messages.insert(id, Arc::new(m));
                }
            }
            let key: Key = (rec.namespace.as_str().into(), rec.client_id.as_str().into());
            let (session, disconnected_at, will) = from_record(&rec, &messages, limits, now);
            let (cell, will_now) =
                broker.restore_session(key.0.clone(), session, disconnected_at, will);
            due.extend(will_now);
            if let Some(cell) = cell {
                n += 1;
                // The restored queue is numbered afresh: the first flush rewrites it.
                let record_ids = rec
                    .inflight
                    .iter()
                    .map(|i| i.delivery.message_id)
                    .chain(rec.will.iter().map(|w| w.message_id))
                    .collect();
                marks.insert(
                    key,
                    Mark {
                        cell_id: cell.id,
                        record_ids,
                        queue: None,
                    },
                );
            } else {
                self.store.delete_session(&rec.namespace, &rec.client_id)?;
            }
        }
        drop(marks);
        self.store.commit()?;
        Ok((n, due))
    }

    /// Sweep expired and unreferenced messages out of the file (it commits what is
    /// pending): between flushes, so that a session's writes are never committed half.
    /// Sessions are left to the broker, whose expiry deletes their records.
    pub(crate) fn sweep(&self, now: u64) -> Result<junction_store::SweepReport, StoreError> {
        let _between_flushes = self.state.lock();
        self.store.sweep_messages(now)
    }

    /// True when everything changed so far is on disk: no flush running (a flush holds
    /// the lock until its commit is done), no session marked dirty, nothing pending. Lets
    /// the ack barrier skip the blocking flush for traffic that changed nothing persistent.
    fn all_committed(&self) -> bool {
        let Some(_idle) = self.state.try_lock() else {
            return false;
        };
        self.dirty.is_empty() && self.store.pending() == 0
    }

    /// Snapshot every session changed since the last flush, then commit.
    pub(crate) fn flush(&self) -> Result<(), StoreError> {
        let mut marks = self.state.lock();
        let mut put: HashSet<u64> = HashSet::new();
        let mut failed = None;
        for cell in self.dirty.take() {
            if let Err(e) = self.write_session(&cell, &mut marks, &mut put) {
                // Tried again, whole, at the next flush; the others still go now.
                let key: Key = (cell.namespace.clone(), cell.client_id.clone());
                if marks.get(&key).is_some_and(|m| m.cell_id == cell.id) {
                    marks.remove(&key);
                }
                cell.mark_dirty();
                failed.get_or_insert(e);
            }
        }
        let committed = self.store.commit();
        match failed {
            Some(e) => Err(e),
            None => committed,
        }
    }

    fn write_session(
        &self,
        cell: &SessionCell,
        marks: &mut HashMap<Key, Mark>,
        put: &mut HashSet<u64>,
    ) -> Result<(), StoreError> {
        let key: Key = (cell.namespace.clone(), cell.client_id.clone());
        let mut st = cell.lock_for_snapshot();
        if st.discarded || st.session.expiry_interval_secs == 0 {
            drop(st);
            cell.clear_persistent();
            // The record under this client id may already be a newer session's.
            if marks.get(&key).is_some_and(|m| m.cell_id != cell.id) {
                return Ok(());
            }
            marks.remove(&key);
            return self.store.delete_session(&cell.namespace, &cell.client_id);
        }
        if let Some(w) = st.will.as_mut() {
            if w.message.id == 0 {
                if let Some(b) = self.broker.upgrade() {
                    w.message.id = b.next_message_id();
                }
            }
        }
        let mark = marks.entry(key).or_insert_with(|| Mark::new(cell.id));
        if mark.cell_id != cell.id {
            // A new session under a known client id: its record is written whole.
            *mark = Mark::new(cell.id);
        }
        let snap = snapshot(cell, &st, mark);
        drop(st);
        let (ns, id) = (&*cell.namespace, &*cell.client_id);
        // Messages first, each once: a queue entry's message is new by construction; the
        // record's are new unless it referred to them before or they just left the queue.
        for (_, _, m) in &snap.queue_puts {
            if put.insert(m.id) {
                self.store.put_message(m)?;
            }
        }
        let mut record_ids = BTreeSet::new();
        for m in &snap.record_messages {
            record_ids.insert(m.id);
            if !mark.record_ids.contains(&m.id)
                && !snap.left_queue.contains(&m.id)
                && put.insert(m.id)
            {
                self.store.put_message(m)?;
            }
        }
        mark.record_ids = record_ids;
        if let Some(below) = snap.trim_below {
            self.store.queue_trim(ns, id, below)?;
        }
        for (seq, d, _) in &snap.queue_puts {
            self.store.queue_put(ns, id, *seq, d)?;
        }
        self.store.put_session(&snap.record)
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

/// What to write for a session: its record (without the queue) and the queue entries
/// that changed since `mark`, which it brings up to date.
fn snapshot(cell: &SessionCell, st: &CellState, mark: &mut Mark) -> Snapshot {
    let s = &st.session;
    let mut record_messages: Vec<SharedMessage> = Vec::new();
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
        record_messages.push(e.delivery.message.clone());
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
    rec.awaiting_rel = s
        .awaiting_rel()
        .map(|(packet_id, received_at_ms)| AwaitingRel {
            packet_id,
            received_at_ms,
        })
        .collect();
    if let Some(w) = &st.will {
        if w.message.id != 0 {
            record_messages.push(Arc::new(w.message.clone()));
            rec.will = Some(StoredWill {
                message_id: w.message.id,
                publish_at_ms: w.publish_at_ms,
                delay_secs: w.delay_secs,
            });
        }
    }
    // The queue: what left its front is trimmed, what joined its back is put.
    let w = s.queue_window();
    let tail = w.head + w.len as u64;
    let mut trim_below = None;
    let mut left_queue = HashSet::new();
    let from = match mark.queue.as_mut() {
        Some(q)
            if q.epoch == w.epoch && w.head >= q.head && tail >= q.head + q.ids.len() as u64 =>
        {
            let old_tail = q.head + q.ids.len() as u64;
            if w.head > q.head {
                trim_below = Some(w.head);
                let gone = ((w.head - q.head) as usize).min(q.ids.len());
                left_queue.extend(q.ids.drain(..gone));
                q.head = w.head;
            }
            old_tail.max(w.head)
        }
        _ => {
            // First write, or renumbered: the queue is written whole.
            trim_below = Some(u64::MAX);
            mark.queue = Some(QueueMark {
                epoch: w.epoch,
                head: w.head,
                ids: VecDeque::new(),
            });
            w.head
        }
    };
    let mut queue_puts = Vec::new();
    if let Some(q) = mark.queue.as_mut() {
        for (seq, d) in s.queued_from(from) {
            q.ids.push_back(d.message.id);
            queue_puts.push((seq, stored_delivery(d), d.message.clone()));
        }
    }
    Snapshot {
        record: rec,
        record_messages,
        trim_below,
        queue_puts,
        left_queue,
    }
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
            delay_secs: w.delay_secs,
            publish_at_ms: w.publish_at_ms,
            publisher: None,
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
