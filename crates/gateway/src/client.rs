//! ClientInfo (reference §1.4) and the per-gateway registry of connected clients.

use crate::call::{CallBox, CallError, ClientCall};
use bytestring::ByteString;
use junction_broker::{KickReason, SessionCell};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use junction_types::ClientInfo;

/// Per-connection counters (reference §4.2): octets and packets in and out.
#[derive(Debug, Default)]
pub struct ConnStats {
    /// Octets received.
    pub recv_oct: AtomicU64,
    /// Octets sent.
    pub send_oct: AtomicU64,
    /// Packets (frames) received.
    pub recv_pkt: AtomicU64,
    /// Packets (frames) sent.
    pub send_pkt: AtomicU64,
    /// Messages received (publishes).
    pub recv_msg: AtomicU64,
    /// Messages sent (deliveries).
    pub send_msg: AtomicU64,
    /// The most subscriptions the connection's protocol lets it hold (0: no bound), set
    /// by its channel when it is admitted. A setting, not a counter.
    pub subscriptions_max: AtomicU64,
}

impl ConnStats {
    /// The counters by their EMQX names.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            ("recv_oct", r(&self.recv_oct)),
            ("send_oct", r(&self.send_oct)),
            ("recv_pkt", r(&self.recv_pkt)),
            ("send_pkt", r(&self.send_pkt)),
            ("recv_msg", r(&self.recv_msg)),
            ("send_msg", r(&self.send_msg)),
        ]
    }
}

/// A client's session figures (reference §4.2), read from its session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionFigures {
    /// Subscriptions.
    pub subscriptions: usize,
    /// Outbound messages in flight.
    pub inflight: usize,
    /// The in-flight window.
    pub inflight_max: usize,
    /// Queued messages.
    pub mqueue_len: usize,
    /// The queue's bound (0: none).
    pub mqueue_max: usize,
    /// Deliveries the full queue dropped.
    pub mqueue_dropped: u64,
    /// Inbound QoS 2 messages awaiting PUBREL.
    pub awaiting_rel: usize,
    /// Their bound (0: none).
    pub awaiting_rel_max: usize,
    /// When the session was created (ms).
    pub created_at_ms: u64,
    /// Packets waiting for the connection to write them (EMQX's `mailbox_len`).
    pub outbox: usize,
}

/// A connected client as the registry keeps it.
#[derive(Debug)]
pub struct ClientEntry {
    /// Its info, shared with the connection.
    pub info: Arc<ClientInfo>,
    /// Its counters, shared with the connection task.
    pub stats: Arc<ConnStats>,
    /// Its session: a kick goes to the connection attached to it (the broker's kick, so
    /// a connection waits on one kick only).
    cell: Arc<SessionCell>,
    /// Framework calls into the connection, if the gateway answers them.
    calls: Option<Arc<CallBox>>,
    /// With `enable_stats = false`, the counters as they were at connect (EMQX writes the
    /// stats once then); live counters otherwise.
    frozen: Option<Vec<(&'static str, u64)>>,
    /// Connection id, so a replaced connection does not unregister its successor.
    conn_id: u64,
}

/// The clients connected to one gateway, by client id.
#[derive(Debug, Default)]
pub struct ClientRegistry {
    /// By client id, in order: a page of the API's list is a range, not a sort.
    clients: Mutex<BTreeMap<ByteString, ClientEntry>>,
}

/// One client of a page ([`ClientRegistry::page`]).
#[derive(Debug, Clone)]
pub struct ClientView {
    /// Its info.
    pub info: ClientInfo,
    /// Its counters by EMQX name.
    pub stats: Vec<(&'static str, u64)>,
    /// Its session's figures.
    pub figures: SessionFigures,
    /// Its bound on subscriptions (0: none).
    pub subscriptions_max: u64,
}

impl ClientRegistry {
    /// Register a connected client. A previous connection with the same client id is told
    /// to go (`discarded`), as EMQX's channel manager does for clean sessions.
    pub fn insert(
        &self,
        info: Arc<ClientInfo>,
        stats: Arc<ConnStats>,
        conn_id: u64,
        cell: Arc<SessionCell>,
        calls: Option<Arc<CallBox>>,
    ) {
        let key = info.clientid.clone();
        let old = self.clients.lock().insert(
            key,
            ClientEntry {
                info,
                stats,
                cell,
                calls,
                frozen: None,
                conn_id,
            },
        );
        // Opening the new session has already told the old connection to go; this is
        // for a connection still attached to its own session.
        if let Some(old) = old {
            old.cell.kick(old.conn_id, KickReason::TakenOver);
        }
    }

    /// Remove a client if `conn_id` is still the registered connection.
    pub fn remove(&self, clientid: &str, conn_id: u64) -> bool {
        let mut map = self.clients.lock();
        if map.get(clientid).is_some_and(|e| e.conn_id == conn_id) {
            map.remove(clientid);
            true
        } else {
            false
        }
    }

    /// Kick a client. Returns true if it was connected.
    pub fn kick(&self, clientid: &str, reason: KickReason) -> bool {
        let entry = self
            .clients
            .lock()
            .get(clientid)
            .map(|e| (e.cell.clone(), e.conn_id));
        entry.is_some_and(|(cell, conn_id)| cell.kick(conn_id, reason))
    }

    /// A client's info changed (an LwM2M UPDATE with a new lifetime, shown as its
    /// keepalive): lookups show the new one.
    pub fn set_info(&self, conn_id: u64, info: Arc<ClientInfo>) {
        if let Some(e) = self.clients.lock().get_mut(&*info.clientid) {
            if e.conn_id == conn_id {
                e.info = info;
            }
        }
    }

    /// Stop refreshing a client's statistics: lookups show them as they are now
    /// (`enable_stats = false`).
    pub fn freeze_stats(&self, clientid: &str, conn_id: u64) {
        if let Some(e) = self.clients.lock().get_mut(clientid) {
            if e.conn_id == conn_id {
                e.frozen = Some(e.stats.snapshot());
            }
        }
    }

    /// Send a call to a connected client's task.
    pub fn call(&self, clientid: &str, call: ClientCall) -> Result<(), CallError> {
        let map = self.clients.lock();
        let entry = map.get(clientid).ok_or(CallError::ClientNotFound)?;
        let calls = entry.calls.as_ref().ok_or(CallError::Unsupported)?;
        calls.push(call)?;
        entry.cell.wake();
        Ok(())
    }

    /// Number of connected clients (`current_connections`).
    pub fn len(&self) -> usize {
        self.clients.lock().len()
    }

    /// True when no client is connected.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A client's info and counters.
    pub fn lookup(&self, clientid: &str) -> Option<(ClientInfo, Vec<(&'static str, u64)>)> {
        self.clients
            .lock()
            .get(clientid)
            .map(|e| ((*e.info).clone(), e.stats_now()))
    }

    /// The session figures of a connected client.
    pub fn session_figures(&self, clientid: &str) -> Option<SessionFigures> {
        let cell = self.clients.lock().get(clientid).map(|e| e.cell.clone())?;
        Some(figures_of(&cell))
    }

    /// One client with its counters and session figures.
    pub fn view(&self, clientid: &str) -> Option<ClientView> {
        let (info, stats, cell, max) = {
            let map = self.clients.lock();
            let e = map.get(clientid)?;
            ((*e.info).clone(), e.stats_now(), e.cell.clone(), max_of(e))
        };
        Some(ClientView {
            info,
            stats,
            figures: figures_of(&cell),
            subscriptions_max: max,
        })
    }

    /// The clients that `matches`, in client id order: the `take` of them after the first
    /// `skip`, and how many match in all. One pass under the lock that clones only the
    /// page; session figures are read after it is released. `matches` is handed a way
    /// to read the session's creation time (its cell's lock, taken only if it asks).
    pub fn page(
        &self,
        matches: impl Fn(&ClientInfo, &dyn Fn() -> u64) -> bool,
        skip: usize,
        take: usize,
    ) -> (Vec<ClientView>, usize) {
        let mut picked = Vec::new();
        let mut total = 0usize;
        {
            let map = self.clients.lock();
            for e in map.values() {
                let created_at = || e.cell.read(|st| st.session.created_at_ms);
                if !matches(&e.info, &created_at) {
                    continue;
                }
                if total >= skip && picked.len() < take {
                    picked.push(((*e.info).clone(), e.stats_now(), e.cell.clone(), max_of(e)));
                }
                total += 1;
            }
        }
        let page = picked
            .into_iter()
            .map(|(info, stats, cell, max)| ClientView {
                info,
                stats,
                figures: figures_of(&cell),
                subscriptions_max: max,
            })
            .collect();
        (page, total)
    }

    /// Every connected client's info, sorted by client id.
    pub fn list(&self) -> Vec<ClientInfo> {
        self.clients
            .lock()
            .values()
            .map(|e| (*e.info).clone())
            .collect()
    }
}

impl ClientEntry {
    /// The counters, live or as frozen (`enable_stats = false`).
    fn stats_now(&self) -> Vec<(&'static str, u64)> {
        self.frozen.clone().unwrap_or_else(|| self.stats.snapshot())
    }
}

fn max_of(e: &ClientEntry) -> u64 {
    e.stats.subscriptions_max.load(Ordering::Relaxed)
}

fn figures_of(cell: &SessionCell) -> SessionFigures {
    cell.read(|st| {
        let s = &st.session;
        SessionFigures {
            subscriptions: s.subscriptions.len(),
            inflight: s.inflight_len(),
            inflight_max: usize::from(s.limits.max_inflight),
            mqueue_len: s.mqueue_len(),
            mqueue_max: s.limits.max_mqueue_len,
            mqueue_dropped: s.mqueue_dropped(),
            awaiting_rel: s.awaiting_rel_len(),
            awaiting_rel_max: s.limits.max_awaiting_rel,
            created_at_ms: s.created_at_ms,
            outbox: st.outbox.len(),
        }
    })
}
