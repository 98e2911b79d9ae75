//! A session and the connection attached to it, shared between the connection's task and
//! every publisher that delivers to it.

use bytestring::ByteString;
use junction_session::{Delivery, DropReason, Dropped, Outbound, Session};
use junction_types::QoS;
use parking_lot::{Mutex, MutexGuard};
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::{oneshot, Notify};

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
    /// Bumped on every attach and on discard: a timer armed at generation N does nothing
    /// if the generation has moved on.
    pub generation: u64,
    /// True once the session has ended (clean start, expiry, kick of a clean session).
    pub discarded: bool,
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
    notify: Notify,
    /// Upper bound of QoS 0 messages waiting in the outbox of a connected client; past it a
    /// slow client's QoS 0 messages are dropped rather than buffered without end.
    max_outbox_qos0: usize,
}

impl SessionCell {
    pub(crate) fn new(
        id: u64,
        namespace: ByteString,
        session: Session,
        max_outbox_qos0: usize,
    ) -> Self {
        SessionCell {
            id,
            client_id: session.client_id.clone(),
            namespace,
            online: AtomicBool::new(false),
            state: Mutex::new(CellState {
                session,
                conn: None,
                outbox: Vec::new(),
                generation: 0,
                discarded: false,
            }),
            notify: Notify::new(),
            max_outbox_qos0,
        }
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
    pub fn lock(&self) -> MutexGuard<'_, CellState> {
        self.state.lock()
    }

    /// Wait until the outbox has something (or was poked).
    pub async fn notified(&self) {
        self.notify.notified().await
    }

    /// Wake the connection's task.
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// Move everything waiting in the outbox into `into`, if connection `conn_id` still
    /// owns the session: a connection that has just been taken over must not drain what
    /// belongs to its successor.
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
    }

    /// Hand a delivery to the session: sent now if the client is online and the window has
    /// room, queued otherwise.
    /// Returns what was dropped, for the caller to count ([`crate::Broker::count_dropped`]).
    #[must_use]
    pub fn deliver(&self, delivery: Delivery, now_ms: u64) -> Vec<Dropped> {
        let mut dropped: Vec<Dropped> = Vec::new();
        let wake;
        {
            let mut guard = self.state.lock();
            let st = &mut *guard;
            let online = st.conn.is_some();
            if online && delivery.qos == QoS::AtMostOnce && st.outbox.len() >= self.max_outbox_qos0
            {
                dropped.push(Dropped {
                    delivery,
                    reason: DropReason::QueueFull,
                });
                wake = false;
            } else {
                let was_empty = st.outbox.is_empty();
                st.session
                    .deliver(delivery, online, now_ms, &mut st.outbox, &mut dropped);
                wake = online && was_empty && !st.outbox.is_empty();
            }
        }
        if wake {
            self.notify.notify_one();
        }
        dropped
    }
}
