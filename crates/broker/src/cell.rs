//! A session and the connection attached to it, shared between the connection's task and
//! every publisher that delivers to it.

use bytestring::ByteString;
use futures_util::task::AtomicWaker;
use junction_session::{Delivery, DropReason, Dropped, Outbound, Session};
use junction_types::QoS;
use parking_lot::{Mutex, MutexGuard};
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use tokio::sync::oneshot;

/// Why a connection is told to go away by the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KickReason {
    /// Another connection with the same client id took the session (MQTT 5 reason 0x8E).
    TakenOver,
    /// Another connection with the same client id started clean: the session is discarded
    /// (MQTT 5 reason 0x8E too).
    Discarded,
    /// An administrator kicked the client (reason 0x98).
    Administrative,
    /// The broker is shutting down (reason 0x8B).
    Shutdown,
}

/// Where a connection task hears that it must go (from the broker, or the gateway's
/// registry): each fires at most once, and waiting on a fired or absent one waits forever,
/// so a connection can wait on it from its packet loop and from a blocked write alike.
#[derive(Debug, Default)]
pub struct KickWait(Option<tokio::sync::oneshot::Receiver<KickReason>>);

impl KickWait {
    /// Wait on `rx`.
    pub fn new(rx: tokio::sync::oneshot::Receiver<KickReason>) -> KickWait {
        KickWait(Some(rx))
    }

    /// The reason, once (a dropped sender counts as an administrative kick).
    pub async fn wait(&mut self) -> KickReason {
        std::future::poll_fn(|cx| self.poll_kicked(cx)).await
    }

    /// [`KickWait::wait`] for a caller that polls by hand (a driver that serves many
    /// connections from one task, with a waker per connection).
    pub fn poll_kicked(&mut self, cx: &mut Context<'_>) -> Poll<KickReason> {
        let Some(rx) = self.0.as_mut() else {
            return Poll::Pending;
        };
        let kicked = std::task::ready!(std::pin::Pin::new(rx).poll(cx));
        self.0 = None;
        Poll::Ready(kicked.unwrap_or(KickReason::Administrative))
    }
}

/// The attachment of a live connection to a session.
#[derive(Debug)]
pub struct ConnLink {
    /// Unique id of the connection.
    pub conn_id: u64,
    /// Tells the connection's task to close.
    pub kick: Option<oneshot::Sender<KickReason>>,
}

/// Mutable part of a [`SessionCell`].
#[derive(Debug)]
pub struct CellState {
    /// The session proper.
    pub session: Session,
    /// The attached connection, if the client is online.
    pub conn: Option<ConnLink>,
    /// Packets waiting for the connection's task to send.
    pub outbox: Vec<Outbound>,
    /// Payload bytes of the QoS 0 messages in the outbox (the part a slow reader can
    /// grow; QoS 1/2 are bounded by the in-flight window). Reset when the outbox empties.
    pub outbox_qos0_bytes: usize,
    /// Bumped on every attach and on discard: a timer armed at generation N does nothing
    /// if the generation has moved on.
    pub generation: u64,
    /// True once the session has ended (clean start, expiry, kick of a clean session).
    pub discarded: bool,
    /// When the last connection detached (ms), while the client is offline: the session
    /// expires `expiry_interval_secs` after it.
    pub disconnected_at_ms: Option<u64>,
    /// The will of the attached connection, or of the last one while its delay runs,
    /// kept here so that it is persisted with the session.
    pub will: Option<Box<PendingWill>>,
}

impl CellState {
    /// Forget what waits for the connection (it left; the session resends what matters).
    pub fn clear_outbox(&mut self) {
        self.outbox.clear();
        self.outbox_qos0_bytes = 0;
    }
}

/// A will kept with its session.
#[derive(Debug, Clone)]
pub struct PendingWill {
    /// The will message.
    pub message: junction_types::Message,
    /// Will delay interval in seconds.
    pub delay_secs: u32,
    /// When it is due (ms): `None` while the connection is up.
    pub publish_at_ms: Option<u64>,
    /// Who set it, to authorize it when it is published; `None` once restored from the
    /// data file, which does not keep it.
    pub publisher: Option<std::sync::Arc<junction_types::ClientInfo>>,
}

/// Sessions changed since the persister last looked (see [`SessionCell::lock`]).
#[derive(Debug, Default)]
pub struct DirtySessions {
    list: Mutex<Vec<Arc<SessionCell>>>,
}

impl DirtySessions {
    /// Take the sessions changed since the last call, each once.
    pub fn take(&self) -> Vec<Arc<SessionCell>> {
        std::mem::take(&mut *self.list.lock())
    }

    /// Number of sessions waiting to be persisted.
    pub fn len(&self) -> usize {
        self.list.lock().len()
    }

    /// True if no session waits to be persisted.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The locked state of a [`SessionCell`]. Dropping it marks a persistent session dirty,
/// before the lock is released, so a persister that snapshots after taking the lock sees
/// every change that marked it.
pub struct CellGuard<'a> {
    cell: &'a SessionCell,
    guard: MutexGuard<'a, CellState>,
}

impl Deref for CellGuard<'_> {
    type Target = CellState;
    fn deref(&self) -> &CellState {
        &self.guard
    }
}

impl DerefMut for CellGuard<'_> {
    fn deref_mut(&mut self) -> &mut CellState {
        &mut self.guard
    }
}

impl Drop for CellGuard<'_> {
    fn drop(&mut self) {
        // Runs before the fields drop: the mark is made while the lock is still held.
        self.cell.touch();
    }
}

/// Wakes the task of the connection that owns a session: a pending flag and one waker
/// slot. `tokio::sync::Notify` keeps a waiter list behind a mutex, locked again whenever a
/// connection's `select!` drops an unfinished wait, which is once per message on a busy
/// publisher. Only the newest registered task is woken: a connection that is being taken
/// over no longer waits for its successor's deliveries.
#[derive(Debug, Default)]
struct Signal {
    pending: AtomicBool,
    waker: AtomicWaker,
}

impl Signal {
    fn notify(&self) {
        self.pending.store(true, Ordering::Release);
        self.waker.wake();
    }

    fn take(&self) -> bool {
        self.pending.load(Ordering::Relaxed) && self.pending.swap(false, Ordering::AcqRel)
    }

    fn poll(&self, cx: &mut Context<'_>) -> Poll<()> {
        if self.take() {
            return Poll::Ready(());
        }
        self.waker.register(cx.waker());
        // A notify between the first check and the registration woke no one: look again.
        if self.take() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// What [`SessionCell::deliver`] did beyond sending or queueing.
#[must_use]
#[derive(Debug)]
pub struct Delivered {
    /// Deliveries dropped (the queue or outbox was full, the message expired).
    pub dropped: Vec<Dropped>,
    /// The connection's outbox is half full or more: its task is behind the publishers
    /// feeding it. A publisher told so lets it run before routing more (see
    /// [`crate::Routed::congested`]), so that a burst from many publishers is written
    /// out instead of overflowing the outbox.
    pub congested: bool,
}

/// One session, shared by reference between the registry, the router and its connection.
#[derive(Debug)]
pub struct SessionCell {
    /// Node-unique session id.
    pub id: u64,
    /// The client id.
    pub client_id: ByteString,
    /// Client-id namespace: empty for MQTT, the gateway name for gateway clients.
    pub namespace: ByteString,
    online: AtomicBool,
    state: Mutex<CellState>,
    notify: Signal,
    /// Upper bound of QoS 0 messages waiting in the outbox of a connected client; past it a
    /// slow client's QoS 0 messages are dropped rather than buffered without end.
    max_outbox_qos0: usize,
    /// The same bound in payload bytes (`mqtt.max_outbox_bytes`).
    max_outbox_bytes: usize,
    /// This cell, for putting it on the dirty list.
    me: Weak<SessionCell>,
    /// Where changes are reported, when the broker persists sessions.
    tracker: Option<Arc<DirtySessions>>,
    /// True once the session has had an expiry interval: its changes are persisted (a
    /// session that stops being persistent is marked once more, for its record to go).
    persistent: AtomicBool,
    /// True while the cell is on the dirty list.
    dirty: AtomicBool,
}

impl SessionCell {
    pub(crate) fn new(
        id: u64,
        namespace: ByteString,
        session: Session,
        max_outbox_qos0: usize,
        max_outbox_bytes: usize,
        tracker: Option<Arc<DirtySessions>>,
    ) -> Arc<Self> {
        let persistent = session.expiry_interval_secs > 0;
        Arc::new_cyclic(|me| SessionCell {
            id,
            client_id: session.client_id.clone(),
            namespace,
            online: AtomicBool::new(false),
            state: Mutex::new(CellState {
                session,
                conn: None,
                outbox: Vec::new(),
                outbox_qos0_bytes: 0,
                generation: 0,
                discarded: false,
                disconnected_at_ms: None,
                will: None,
            }),
            notify: Signal::default(),
            max_outbox_qos0,
            max_outbox_bytes,
            me: me.clone(),
            tracker,
            persistent: AtomicBool::new(persistent),
            dirty: AtomicBool::new(false),
        })
    }

    /// Mark the session as one whose changes are persisted (it has an expiry interval).
    pub fn set_persistent(&self) {
        self.persistent.store(true, Ordering::Relaxed);
    }

    /// True if the session's changes are persisted.
    pub fn is_persistent(&self) -> bool {
        self.persistent.load(Ordering::Relaxed)
    }

    /// Stop persisting this session's changes (its record is gone: a discarded cell that a
    /// late timer or connection still locks must not be written again).
    pub fn clear_persistent(&self) {
        self.persistent.store(false, Ordering::Relaxed);
    }

    /// Put the session back on the dirty list (a persister that could not write it).
    pub fn mark_dirty(&self) {
        self.touch();
    }

    /// Put a persistent session on the dirty list (once until the persister takes it).
    fn touch(&self) {
        let Some(tracker) = &self.tracker else {
            return;
        };
        if !self.persistent.load(Ordering::Relaxed) || self.dirty.swap(true, Ordering::AcqRel) {
            return;
        }
        if let Some(me) = self.me.upgrade() {
            tracker.list.lock().push(me);
        }
    }

    /// Lock the state for a snapshot: clears the dirty mark first, so a change made after
    /// the snapshot marks the session again. Does not mark it itself.
    pub fn lock_for_snapshot(&self) -> MutexGuard<'_, CellState> {
        let guard = self.state.lock();
        self.dirty.store(false, Ordering::Release);
        guard
    }

    /// Read the state without changing it (marks nothing dirty). Same lock order as
    /// [`SessionCell::lock`].
    pub fn read<R>(&self, f: impl FnOnce(&CellState) -> R) -> R {
        f(&self.state.lock())
    }

    /// True while a connection is attached.
    pub fn is_online(&self) -> bool {
        self.online.load(Ordering::Relaxed)
    }

    pub(crate) fn set_online(&self, online: bool) {
        self.online.store(online, Ordering::Relaxed);
    }

    /// Lock the state. Lock order: registry, then a cell, then the router; never hold it
    /// across an `.await`.
    ///
    /// Releasing the lock marks a persistent session dirty (see [`DirtySessions`]).
    pub fn lock(&self) -> CellGuard<'_> {
        CellGuard {
            cell: self,
            guard: self.state.lock(),
        }
    }

    /// Wait until the outbox has something (or was poked).
    pub async fn notified(&self) {
        std::future::poll_fn(|cx| self.notify.poll(cx)).await
    }

    /// [`SessionCell::notified`] for a caller that polls by hand: ready if the outbox was
    /// poked since the last call, else `cx`'s waker is the one woken next.
    pub fn poll_notified(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.notify.poll(cx)
    }

    /// Wake the connection's task.
    pub fn wake(&self) {
        self.notify.notify();
    }

    /// Tell connection `conn_id` to go, if it is still the attached one and has not
    /// been told yet. True if it was told.
    pub fn kick(&self, conn_id: u64, reason: KickReason) -> bool {
        let mut st = self.lock();
        let link = st.conn.as_mut().filter(|l| l.conn_id == conn_id);
        match link.and_then(|l| l.kick.take()) {
            Some(k) => k.send(reason).is_ok(),
            None => false,
        }
    }

    /// Move everything waiting in the outbox into `into`, if connection `conn_id` still
    /// owns the session: a connection that has just been taken over must not drain what
    /// belongs to its successor. (The outbox is not persisted: this marks nothing dirty.)
    pub fn take_outbox(&self, conn_id: u64, into: &mut Vec<Outbound>) {
        let mut st = self.state.lock();
        if st.conn.as_ref().is_none_or(|c| c.conn_id != conn_id) {
            return;
        }
        if into.is_empty() {
            std::mem::swap(into, &mut st.outbox);
        } else {
            into.append(&mut st.outbox);
        }
        st.outbox_qos0_bytes = 0;
    }

    /// Hand a delivery to the session: sent now if the client is online and the window has
    /// room, queued otherwise.
    /// Returns what was dropped, for the caller to count ([`crate::Broker::count_dropped`]),
    /// and whether the connection is behind.
    pub fn deliver(&self, delivery: Delivery, now_ms: u64) -> Delivered {
        let mut dropped: Vec<Dropped> = Vec::new();
        let wake;
        let congested;
        {
            let mut guard = self.state.lock();
            let st = &mut *guard;
            let online = st.conn.is_some();
            let qos0_bytes = if online && delivery.qos == QoS::AtMostOnce {
                delivery.message.payload.len()
            } else {
                0
            };
            let full = st.outbox.len() >= self.max_outbox_qos0
                || (!st.outbox.is_empty()
                    && st.outbox_qos0_bytes + qos0_bytes > self.max_outbox_bytes);
            if online && delivery.qos == QoS::AtMostOnce && full {
                dropped.push(Dropped {
                    delivery,
                    reason: DropReason::QueueFull,
                });
                wake = false;
                congested = true;
            } else {
                let was_empty = st.outbox.is_empty();
                // A QoS 0 message for a connected client only passes through the outbox;
                // anything else changes what the session keeps.
                let keeps = !online || delivery.qos != QoS::AtMostOnce;
                st.session
                    .deliver(delivery, online, now_ms, &mut st.outbox, &mut dropped);
                st.outbox_qos0_bytes += qos0_bytes;
                wake = online && was_empty && !st.outbox.is_empty();
                congested = online
                    && (st.outbox.len() >= self.max_outbox_qos0 / 2
                        || st.outbox_qos0_bytes >= self.max_outbox_bytes / 2);
                if keeps {
                    self.touch();
                }
            }
        }
        if wake {
            self.notify.notify();
        }
        Delivered { dropped, congested }
    }
}
