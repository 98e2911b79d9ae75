//! Junction's routing core.
//!
//! The [`Broker`] owns the session registry (client id → [`SessionCell`]), the [`Router`]
//! (filter trie with plain and shared subscribers), the retained-message table, the
//! broker-wide [`Metrics`] and the `$SYS` publisher. Protocol front ends (the MQTT listener
//! and, later, the gateways) open sessions, publish and subscribe through it.
//!
//! Lock order (see docs/ARCHITECTURE.md): registry → cell → router / retained. The router
//! lock is never held while a cell is locked by the publish path: targets are collected
//! under the router's read lock, which is released before any cell is locked.

pub mod access;
pub mod cell;
pub mod hooks;
pub mod metrics;
pub mod retained;
pub mod router;
pub mod subscribers;
pub mod sys;

#[cfg(test)]
mod hostile_tests;

pub use cell::{
    CellGuard, CellState, ConnLink, Delivered, DirtySessions, KickReason, KickWait, PendingWill,
    SessionCell,
};
pub use hooks::{Flow, Hooks};
pub use metrics::Metrics;
pub use retained::Retained;
pub use router::{Router, SharedStrategy, Subscriber};

use ahash::AHashMap;
use bytestring::ByteString;
use hooks::{DroppedArgs, PublishArgs};
use junction_session::{Delivery, DropReason, Dropped, Session, SessionLimits, SubOptions};
use junction_topic::{parse_filter, TopicError};
use junction_types::{now_ms, ClientInfo, Message, QoS, SharedMessage};
use parking_lot::{Mutex, RwLock};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// What [`Broker::publish_routed`] did with a message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Routed {
    /// Sessions it was handed to.
    pub targets: usize,
    /// A connection it was handed to has half its outbox or more waiting
    /// ([`Delivered::congested`]): the publisher should let that connection's task write
    /// before it routes more, or one round of many publishers can overflow the outbox.
    pub congested: bool,
}

/// Receives retained-table changes (see [`Broker::set_retained_sink`]).
pub type RetainedSink = dyn Fn(&SharedMessage) + Send + Sync;

#[derive(Default)]
struct SinkSlot(std::sync::OnceLock<Box<RetainedSink>>);

/// Makes the broker's state changes durable before an acknowledgement is sent
/// (`durable_sessions.commit_before_ack`): resolves once everything changed so far is on
/// disk, or with the reason it could not be.
pub type AckBarrier = dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>
    + Send
    + Sync;

#[derive(Default)]
struct BarrierSlot(std::sync::OnceLock<Box<AckBarrier>>);

impl std::fmt::Debug for BarrierSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "BarrierSlot(set)"
        } else {
            "BarrierSlot(unset)"
        })
    }
}

impl std::fmt::Debug for SinkSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "SinkSlot(set)"
        } else {
            "SinkSlot(unset)"
        })
    }
}

/// Broker-wide settings ( `mqtt.*`, `sys_topics.*` and `node.*`).
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerSettings {
    /// Node name, used in `$SYS/brokers/<node>/…`.
    pub node_name: String,
    /// `mqtt.shared_subscription_strategy`.
    pub shared_strategy: SharedStrategy,
    /// `mqtt.upgrade_qos`: deliver at the subscription's QoS rather than the lower one.
    pub upgrade_qos: bool,
    /// `mqtt.ignore_loop_deliver`: never deliver a client's own messages back to it.
    pub ignore_loop_deliver: bool,
    /// `sys_topics.sys_msg_interval`; `None` disables the periodic `$SYS` messages.
    pub sys_msg_interval: Option<Duration>,
    /// `sys_topics.sys_heartbeat_interval`; `None` disables uptime/datetime heartbeats.
    pub sys_heartbeat_interval: Option<Duration>,
    /// `sys_topics.sys_event_messages.client_connected`.
    pub sys_event_client_connected: bool,
    /// `sys_topics.sys_event_messages.client_disconnected`.
    pub sys_event_client_disconnected: bool,
    /// `sys_topics.sys_event_messages.client_subscribed`.
    pub sys_event_client_subscribed: bool,
    /// `sys_topics.sys_event_messages.client_unsubscribed`.
    pub sys_event_client_unsubscribed: bool,
    /// Upper bound of QoS 0 messages buffered for one connected client.
    pub max_outbox_qos0: usize,
    /// The same in payload bytes (`mqtt.max_outbox_bytes`).
    pub max_outbox_bytes: usize,
    /// `mqtt.max_topic_levels`, which every protocol applies to the topics it takes in.
    pub topic_limits: junction_topic::TopicLimits,
}

impl Default for BrokerSettings {
    fn default() -> Self {
        BrokerSettings {
            node_name: "junction@127.0.0.1".into(),
            shared_strategy: SharedStrategy::RoundRobin,
            upgrade_qos: false,
            ignore_loop_deliver: false,
            sys_msg_interval: Some(Duration::from_secs(60)),
            sys_heartbeat_interval: Some(Duration::from_secs(30)),
            sys_event_client_connected: true,
            sys_event_client_disconnected: true,
            sys_event_client_subscribed: false,
            sys_event_client_unsubscribed: false,
            max_outbox_qos0: 10_000,
            max_outbox_bytes: 16 << 20,
            topic_limits: junction_topic::TopicLimits::default(),
        }
    }
}

/// A will message waiting for its connection to end.
#[derive(Debug, Clone)]
pub struct Will {
    /// The message to publish (its `id` is assigned when it is published).
    pub message: Message,
    /// Will delay interval in seconds (MQTT 5.0; 0 for 3.x).
    pub delay_secs: u32,
    /// Who set it: the will is authorized as this client when it is published
    /// ([`Broker::publish_will`]).
    pub publisher: Arc<ClientInfo>,
}

/// What a connection asks for when it opens a session.
#[derive(Debug)]
pub struct OpenSession {
    /// Client-id namespace: empty for MQTT, the gateway name for gateway clients.
    pub namespace: ByteString,
    /// Client id (already assigned if the client sent none).
    pub client_id: ByteString,
    /// Clean start / clean session.
    pub clean_start: bool,
    /// Session expiry interval in seconds (`u32::MAX` never expires).
    pub expiry_interval_secs: u32,
    /// Limits for the session.
    pub limits: SessionLimits,
    /// The connection's id.
    pub conn_id: u64,
    /// Where to tell the connection to go away.
    pub kick: oneshot::Sender<KickReason>,
}

/// The session a connection got.
#[derive(Debug)]
pub struct Opened {
    /// The session.
    pub cell: Arc<SessionCell>,
    /// True if an existing session was resumed (CONNACK session present).
    pub session_present: bool,
}

/// What a connection leaves behind when it closes.
#[derive(Debug, Default)]
pub struct Close {
    /// Session expiry interval in force at close (may be changed by DISCONNECT).
    pub expiry_interval_secs: u32,
    /// The will, unless the client disconnected normally.
    pub will: Option<Will>,
}

/// The routing core. Cheap to share: wrap it in an `Arc`.
#[derive(Debug)]
pub struct Broker {
    /// Settings in force.
    pub settings: BrokerSettings,
    router: RwLock<Router>,
    sessions: Mutex<AHashMap<SessionKey, Arc<SessionCell>>>,
    retained: RwLock<Retained>,
    /// Broker-wide metrics.
    pub metrics: Metrics,
    /// Hook points, shared by every protocol.
    pub hooks: Hooks,
    /// Told of every change to the retained table (persistence), if set.
    retained_sink: SinkSlot,
    next_message_id: AtomicU64,
    next_session_id: AtomicU64,
    next_conn_id: AtomicU64,
    started: Instant,
    /// Where persistent sessions report their changes, once persistence is on.
    dirty: std::sync::OnceLock<Arc<DirtySessions>>,
    /// Awaited before acknowledging a PUBLISH, when set.
    ack_barrier: BarrierSlot,
}

impl Broker {
    /// A new broker with no sessions.
    pub fn new(settings: BrokerSettings) -> Arc<Self> {
        Arc::new(Broker {
            settings,
            router: RwLock::new(Router::default()),
            sessions: Mutex::new(AHashMap::new()),
            retained: RwLock::new(Retained::default()),
            metrics: Metrics::default(),
            hooks: Hooks::default(),
            retained_sink: SinkSlot::default(),
            next_message_id: AtomicU64::new(1),
            next_session_id: AtomicU64::new(1),
            next_conn_id: AtomicU64::new(1),
            started: Instant::now(),
            dirty: std::sync::OnceLock::new(),
            ack_barrier: BarrierSlot::default(),
        })
    }

    /// Commit before acknowledging: connections await `barrier` before they send a
    /// PUBACK or PUBREC. Set once.
    pub fn set_ack_barrier(&self, barrier: Box<AckBarrier>) -> bool {
        self.ack_barrier.0.set(barrier).is_ok()
    }

    /// The barrier to await before acknowledging a PUBLISH, if one is set.
    pub fn ack_barrier(&self) -> Option<&AckBarrier> {
        self.ack_barrier.0.get().map(|b| &**b)
    }

    /// Track the changes of persistent sessions (those with an expiry interval) from now
    /// on: every change puts the session on the returned list, once until it is taken.
    /// Call before the first session opens.
    pub fn track_sessions(&self) -> Arc<DirtySessions> {
        self.dirty.get_or_init(Default::default).clone()
    }

    fn new_cell(&self, namespace: ByteString, session: Session) -> Arc<SessionCell> {
        SessionCell::new(
            self.next_session_id.fetch_add(1, Ordering::Relaxed),
            namespace,
            session,
            self.settings.max_outbox_qos0,
            self.settings.max_outbox_bytes,
            self.dirty.get().cloned(),
        )
    }

    /// Put a persisted session back (at start-up), offline: its subscriptions go into
    /// the router, its expiry runs from `disconnected_at_ms`, and a will still to come is
    /// scheduled. A session whose expiry has already passed is not restored (`None`).
    /// A will that is due now (its session ended, or its delay passed) is returned, not
    /// published: the caller publishes it once every session is back to receive it
    /// ([`Broker::publish_will`]).
    pub fn restore_session(
        self: &Arc<Self>,
        namespace: ByteString,
        session: Session,
        disconnected_at_ms: u64,
        will: Option<PendingWill>,
    ) -> (Option<Arc<SessionCell>>, Option<Message>) {
        let now = now_ms();
        let expiry = session.expiry_interval_secs;
        let deadline = disconnected_at_ms.saturating_add(expiry as u64 * 1000);
        if expiry == 0 || (expiry != u32::MAX && deadline <= now) {
            return (None, will.map(|w| w.message));
        }
        let key = SessionKey(namespace.clone(), session.client_id.clone());
        let filters: Vec<(String, SubOptions)> = session
            .subscriptions
            .iter()
            .map(|(f, o)| (f.clone(), *o))
            .collect();
        let cell = self.new_cell(namespace, session);
        cell.set_persistent();
        let generation;
        {
            let mut st = cell.lock();
            st.disconnected_at_ms = Some(disconnected_at_ms);
            generation = st.generation;
            let mut router = self.router.write();
            for (filter, opts) in filters {
                if let Ok(p) = parse_filter(&filter) {
                    router.add(
                        p.filter,
                        p.group,
                        Subscriber {
                            cell: cell.clone(),
                            opts,
                        },
                    );
                }
            }
        }
        let old = self.sessions.lock().insert(key, cell.clone());
        if let Some(old) = old {
            // Restoring twice: the newer record wins, the older leaves the router.
            let mut st = old.lock();
            self.discard_locked(&old, &mut st);
        }
        let mut due_now = None;
        if let Some(mut w) = will {
            // A will whose connection the stop ended counts its delay from now.
            let due = w
                .publish_at_ms
                .unwrap_or_else(|| now.saturating_add(w.delay_secs as u64 * 1000));
            if due <= now {
                due_now = Some(w.message);
            } else {
                w.publish_at_ms = Some(due);
                cell.lock().will = Some(Box::new(w));
                self.schedule_will(&cell, generation, due - now);
            }
        }
        if expiry != u32::MAX {
            self.schedule_expiry(&cell, generation, deadline.saturating_sub(now));
        }
        (Some(cell), due_now)
    }

    /// Be told of every retained-table change: a message with the retain flag sets its
    /// topic's retained message, or clears it when the payload is empty. Set once.
    pub fn set_retained_sink(&self, sink: Box<RetainedSink>) -> bool {
        self.retained_sink.0.set(sink).is_ok()
    }

    /// Put retained messages back (from durable storage) without routing them. Expired
    /// ones are skipped. Returns how many were restored.
    pub fn restore_retained(&self, messages: Vec<Message>) -> usize {
        let now = now_ms();
        let mut table = self.retained.write();
        let mut n = 0;
        for m in messages {
            if m.is_expired(now) || m.payload.is_empty() {
                continue;
            }
            self.next_message_id.fetch_max(m.id + 1, Ordering::Relaxed);
            table.put(Arc::new(m));
            n += 1;
        }
        n
    }

    /// Make every new message id larger than `id` (ids found in durable storage).
    pub fn reserve_message_ids(&self, id: u64) {
        self.next_message_id.fetch_max(id + 1, Ordering::Relaxed);
    }

    /// Time since the broker started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    /// A fresh message id.
    pub fn next_message_id(&self) -> u64 {
        self.next_message_id.fetch_add(1, Ordering::Relaxed)
    }

    /// A fresh connection id.
    pub fn next_conn_id(&self) -> u64 {
        self.next_conn_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Number of sessions (online and offline).
    pub fn session_count(&self) -> usize {
        self.sessions.lock().len()
    }

    /// Number of distinct subscribed filters and of subscriptions.
    pub fn subscription_counts(&self) -> (usize, usize) {
        let r = self.router.read();
        (r.filter_count(), r.subscription_count())
    }

    /// Number of retained messages.
    pub fn retained_count(&self) -> usize {
        self.retained.read().len()
    }

    /// The session of an MQTT client id, if any.
    pub fn lookup(&self, client_id: &str) -> Option<Arc<SessionCell>> {
        self.lookup_in("", client_id)
    }

    /// The session of a client id in a namespace (`""` for MQTT, a gateway name otherwise).
    pub fn lookup_in(&self, namespace: &str, client_id: &str) -> Option<Arc<SessionCell>> {
        let key = SessionKey(namespace.into(), client_id.into());
        self.sessions.lock().get(&key).cloned()
    }

    /// Route a message to every matching subscription; returns how many deliveries were made.
    /// A message with the retain flag also replaces (or, with an empty payload, clears) the
    /// retained message of its topic.
    pub fn publish(&self, msg: Message) -> usize {
        self.publish_routed(msg).targets
    }

    /// [`Broker::publish`], telling also whether a connection it delivered to is behind.
    pub fn publish_routed(&self, mut msg: Message) -> Routed {
        if msg.id == 0 {
            msg.id = self.next_message_id();
        }
        if !self.hooks.message_publish.is_empty() {
            let mut args = PublishArgs {
                message: msg,
                allow: true,
            };
            self.hooks.message_publish.run(&mut args);
            if !args.allow {
                return Routed::default();
            }
            msg = args.message;
        }
        let msg: SharedMessage = Arc::new(msg);
        self.metrics.messages_publish.inc();
        if msg.retain {
            let changed = self.retained.write().put(msg.clone());
            if changed && !msg.payload.is_empty() {
                self.metrics.messages_retained.inc();
            }
            if let Some(sink) = self.retained_sink.0.get() {
                sink(&msg);
            }
        }
        let mut targets: Vec<(Arc<SessionCell>, SubOptions, bool)> = Vec::new();
        self.router.read().route(
            &msg.topic,
            &msg.from,
            self.settings.shared_strategy,
            |sub, shared| targets.push((sub.cell.clone(), sub.opts, shared)),
        );
        let now = now_ms();
        let mut delivered = 0;
        let mut congested = false;
        for (cell, opts, shared) in targets {
            let own = !msg.from.is_empty()
                && cell.client_id == msg.from
                && cell.namespace == msg.namespace;
            if own && !shared && (opts.no_local || self.settings.ignore_loop_deliver) {
                continue;
            }
            let qos = if self.settings.upgrade_qos {
                opts.qos
            } else {
                msg.qos.min(opts.qos)
            };
            let delivery = Delivery {
                message: msg.clone(),
                qos,
                // Retain As Published: keep the flag, else clear it on normal delivery
                // [MQTT-3.3.1-12], [MQTT-3.3.1-13].
                retain: msg.retain && opts.retain_as_published,
                subscription_ids: opts.subscription_id.into_iter().collect(),
            };
            let outcome = cell.deliver(delivery, now);
            if !outcome.dropped.is_empty() {
                self.count_dropped(outcome.dropped);
            }
            congested |= outcome.congested;
            delivered += 1;
        }
        if delivered == 0 {
            self.metrics.messages_dropped_no_subscribers.inc();
            self.hooks.message_dropped.run(&mut DroppedArgs {
                message: msg,
                reason: "no_subscribers",
            });
        }
        Routed {
            targets: delivered,
            congested,
        }
    }

    /// Count dropped deliveries in the `messages.dropped` family and run `message.dropped`.
    /// Call it with no lock held: hook handlers may call back into the broker.
    pub fn count_dropped(&self, dropped: Vec<Dropped>) {
        let metrics = &self.metrics;
        for d in dropped {
            metrics.messages_dropped.inc();
            let (c, reason) = match d.reason {
                DropReason::QueueFull => (&metrics.messages_dropped_queue_full, "queue_full"),
                DropReason::Expired => (&metrics.messages_dropped_expired, "expired"),
                DropReason::Qos0Offline => (&metrics.messages_dropped_qos0_offline, "qos0_msg"),
            };
            c.inc();
            self.hooks.message_dropped.run(&mut DroppedArgs {
                message: d.delivery.message,
                reason,
            });
        }
    }

    /// Subscribe a session to `raw_filter` (which may be `$share/<group>/…` or `$queue/…`).
    /// Returns whether the subscription already existed. Retained messages are delivered
    /// per Retain Handling (never for shared subscriptions [MQTT-3.8.4-?/4.8.2]).
    pub fn subscribe(
        &self,
        cell: &Arc<SessionCell>,
        raw_filter: &str,
        opts: SubOptions,
    ) -> Result<bool, TopicError> {
        let parsed = parse_filter(raw_filter)?;
        let existed;
        {
            let mut st = cell.lock();
            st.session
                .subscriptions
                .insert(raw_filter.to_string(), opts);
            existed = self.router.write().add(
                parsed.filter,
                parsed.group,
                Subscriber {
                    cell: cell.clone(),
                    opts,
                },
            );
        }
        let send_retained = parsed.group.is_none()
            && match opts.retain_handling {
                0 => true,
                1 => !existed,
                _ => false,
            };
        if send_retained {
            let now = now_ms();
            let msgs = self.retained.read().matching(parsed.filter, now);
            for m in msgs {
                let qos = m.qos.min(opts.qos);
                let outcome = cell.deliver(
                    Delivery {
                        message: m,
                        qos,
                        // Retained messages sent on subscribe keep RETAIN=1 [MQTT-3.3.1-8].
                        retain: true,
                        subscription_ids: opts.subscription_id.into_iter().collect(),
                    },
                    now,
                );
                self.count_dropped(outcome.dropped);
            }
        }
        Ok(existed)
    }

    /// Remove a subscription; returns whether it existed.
    pub fn unsubscribe(&self, cell: &Arc<SessionCell>, raw_filter: &str) -> bool {
        let Ok(parsed) = parse_filter(raw_filter) else {
            return false;
        };
        let mut st = cell.lock();
        let had = st.session.subscriptions.remove(raw_filter).is_some();
        let removed = self
            .router
            .write()
            .remove(parsed.filter, parsed.group, cell.id);
        had || removed
    }

    /// Open (or resume, or take over) the session of a connecting client.
    pub fn open_session(self: &Arc<Self>, req: OpenSession) -> Opened {
        let now = now_ms();
        let mut registry = self.sessions.lock();
        let key = SessionKey(req.namespace.clone(), req.client_id.clone());
        if let Some(old) = registry.get(&key).cloned() {
            let mut st = old.lock();
            if let Some(mut link) = st.conn.take() {
                // EMQX: a clean start discards the old session, otherwise it is taken over.
                // (`session.discarded` is counted where the session state is dropped.)
                let why = if req.clean_start {
                    KickReason::Discarded
                } else {
                    self.metrics.session_takenover.inc();
                    KickReason::TakenOver
                };
                if let Some(kick) = link.kick.take() {
                    let _ = kick.send(why);
                }
            }
            st.generation += 1;
            if !req.clean_start && !st.discarded {
                st.session.limits = req.limits;
                st.session.expiry_interval_secs = req.expiry_interval_secs;
                st.disconnected_at_ms = None;
                // A will whose delay was running is cancelled by the reconnect.
                st.will = None;
                if req.expiry_interval_secs > 0 {
                    old.set_persistent();
                }
                st.conn = Some(ConnLink {
                    conn_id: req.conn_id,
                    kick: Some(req.kick),
                });
                old.set_online(true);
                let mut dropped = Vec::new();
                {
                    let st = &mut *st;
                    st.clear_outbox();
                    st.session.resume(now, &mut st.outbox, &mut dropped);
                }
                self.metrics.session_resumed.inc();
                old.wake();
                drop(st);
                drop(registry);
                self.count_dropped(dropped);
                return Opened {
                    cell: old.clone(),
                    session_present: true,
                };
            }
            self.discard_locked(&old, &mut st);
            registry.remove(&key);
        }
        let mut session = Session::new(req.client_id.clone(), req.limits, now);
        session.expiry_interval_secs = req.expiry_interval_secs;
        let cell = self.new_cell(req.namespace.clone(), session);
        cell.lock().conn = Some(ConnLink {
            conn_id: req.conn_id,
            kick: Some(req.kick),
        });
        cell.set_online(true);
        registry.insert(key, cell.clone());
        self.metrics.session_created.inc();
        Opened {
            cell,
            session_present: false,
        }
    }

    /// End a session: remove its subscriptions. The caller holds the cell's lock.
    fn discard_locked(&self, cell: &SessionCell, st: &mut CellState) {
        if st.discarded {
            return;
        }
        st.discarded = true;
        st.generation += 1;
        st.will = None;
        let mut router = self.router.write();
        for filter in st.session.subscriptions.keys() {
            if let Ok(p) = parse_filter(filter) {
                router.remove(p.filter, p.group, cell.id);
            }
        }
        drop(router);
        st.session.subscriptions.clear();
        let lost = st.session.drain_all();
        if !lost.is_empty() {
            self.metrics.messages_dropped.add(lost.len() as u64);
        }
        st.clear_outbox();
        self.metrics.session_discarded.inc();
    }

    /// Remove a session from the registry if it is still the registered one for its id.
    fn unregister(&self, cell: &Arc<SessionCell>) {
        let mut registry = self.sessions.lock();
        let key = SessionKey(cell.namespace.clone(), cell.client_id.clone());
        if registry.get(&key).is_some_and(|c| Arc::ptr_eq(c, cell)) {
            registry.remove(&key);
        }
    }

    /// Publish a will message now (a fresh id and receive time), if its publisher may
    /// publish it (EMQX authorizes a will when it publishes it, not when it is set). A
    /// denied will is dropped: `messages.dropped` and `message.dropped` with reason
    /// `not_authorized`. `publisher` is `None` for a will restored from the data file,
    /// which keeps no identity: it is authorized as a client with its client id and no
    /// user name or superuser right.
    pub fn publish_will(&self, mut will: Message, publisher: Option<&ClientInfo>) {
        let action = hooks::Action::Publish {
            qos: will.qos,
            retain: will.retain,
        };
        // Rules see the topic as the client wrote it, without its mountpoint.
        let visible = publisher
            .and_then(|p| will.topic.strip_prefix(p.mountpoint.as_str()))
            .unwrap_or(&will.topic);
        let restored;
        let client = match publisher {
            Some(p) => p,
            None => {
                restored = ClientInfo::restored(will.from.clone());
                &restored
            }
        };
        let allowed = access::authorize(&self.hooks, client, action, visible);
        if !allowed {
            self.metrics.messages_dropped.inc();
            self.metrics.messages_dropped_not_authorized.inc();
            tracing::info!(client = %will.from, topic = %will.topic, "will not authorized: dropped");
            self.hooks.message_dropped.run(&mut DroppedArgs {
                message: Arc::new(will),
                reason: "not_authorized",
            });
            return;
        }
        will.id = 0;
        will.received_at_ms = now_ms();
        self.publish(will);
    }

    /// Keep the will of the connection `conn_id` with its session (persisted with it),
    /// or forget it (`None`). The connection still hands it to [`Broker::close_session`].
    pub fn set_will(&self, cell: &SessionCell, conn_id: u64, will: Option<&Will>) {
        let mut st = cell.lock();
        if st.conn.as_ref().is_some_and(|c| c.conn_id == conn_id) {
            st.will = will.map(|w| {
                Box::new(PendingWill {
                    message: w.message.clone(),
                    delay_secs: w.delay_secs,
                    publish_at_ms: None,
                    publisher: Some(w.publisher.clone()),
                })
            });
        }
    }

    /// A connection ended. Keeps the session for its expiry interval or ends it, and
    /// publishes or schedules the will.
    pub fn close_session(self: &Arc<Self>, cell: &Arc<SessionCell>, conn_id: u64, close: Close) {
        let mut st = cell.lock();
        let owner = st.conn.as_ref().is_some_and(|c| c.conn_id == conn_id);
        if !owner {
            // Taken over or kicked: the session now belongs to someone else (or is gone).
            let ended = st.discarded;
            drop(st);
            if let Some(will) = close.will {
                if ended || will.delay_secs == 0 {
                    self.publish_will(will.message, Some(&will.publisher));
                }
            }
            return;
        }
        st.conn = None;
        cell.set_online(false);
        st.generation += 1;
        let generation = st.generation;
        st.session.expiry_interval_secs = close.expiry_interval_secs;
        st.will = None;
        // Anything not yet written goes back through the session on resume.
        st.clear_outbox();
        if close.expiry_interval_secs == 0 {
            self.discard_locked(cell, &mut st);
            drop(st);
            self.unregister(cell);
            self.metrics.session_terminated.inc();
            if let Some(will) = close.will {
                self.publish_will(will.message, Some(&will.publisher));
            }
            return;
        }
        let now = now_ms();
        st.disconnected_at_ms = Some(now);
        cell.set_persistent();
        let mut publish_now = None;
        let mut delayed_ms = None;
        if let Some(will) = close.will {
            let delay = will.delay_secs.min(close.expiry_interval_secs);
            if delay == 0 {
                publish_now = Some(will);
            } else {
                let after = delay as u64 * 1000;
                st.will = Some(Box::new(PendingWill {
                    message: will.message,
                    delay_secs: will.delay_secs,
                    publish_at_ms: Some(now.saturating_add(after)),
                    publisher: Some(will.publisher),
                }));
                delayed_ms = Some(after);
            }
        }
        drop(st);
        if let Some(will) = publish_now {
            self.publish_will(will.message, Some(&will.publisher));
        }
        if let Some(after) = delayed_ms {
            self.schedule_will(cell, generation, after);
        }
        if close.expiry_interval_secs != u32::MAX {
            self.schedule_expiry(cell, generation, close.expiry_interval_secs as u64 * 1000);
        }
    }

    /// Publish the session's pending will after `after_ms`, unless a connection attached
    /// in between (a reconnect cancels it [MQTT-3.1.3-9]).
    fn schedule_will(self: &Arc<Self>, cell: &Arc<SessionCell>, generation: u64, after_ms: u64) {
        let broker = self.clone();
        let cell = cell.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(after_ms)).await;
            let will = {
                let mut st = cell.lock();
                if st.generation != generation {
                    return;
                }
                st.will.take()
            };
            if let Some(w) = will {
                broker.publish_will(w.message, w.publisher.as_deref());
            }
        });
    }

    /// End the session after `after_ms` unless a connection attached in between.
    fn schedule_expiry(self: &Arc<Self>, cell: &Arc<SessionCell>, generation: u64, after_ms: u64) {
        let broker = self.clone();
        let cell = cell.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(after_ms)).await;
            broker.expire(&cell, generation);
        });
    }

    /// Session expiry timer fired.
    fn expire(&self, cell: &Arc<SessionCell>, generation: u64) {
        let mut st = cell.lock();
        if st.generation != generation || st.conn.is_some() {
            return;
        }
        let will = st.will.take();
        self.discard_locked(cell, &mut st);
        drop(st);
        self.unregister(cell);
        self.metrics.session_terminated.inc();
        // The session ended before the will delay did: the will goes now [MQTT-3.1.3-9].
        if let Some(w) = will {
            self.publish_will(w.message, w.publisher.as_deref());
        }
    }

    /// Kick a client off (administrative action). Returns true if it was connected.
    pub fn kick(&self, namespace: &str, client_id: &str, reason: KickReason) -> bool {
        let Some(cell) = self.lookup_in(namespace, client_id) else {
            return false;
        };
        let mut st = cell.lock();
        match st.conn.as_mut().and_then(|l| l.kick.take()) {
            Some(k) => k.send(reason).is_ok(),
            None => false,
        }
    }

    /// Kick every connected client (shutdown).
    pub fn kick_all(&self, reason: KickReason) {
        let cells: Vec<Arc<SessionCell>> = self.sessions.lock().values().cloned().collect();
        for cell in cells {
            let mut st = cell.lock();
            if let Some(k) = st.conn.as_mut().and_then(|l| l.kick.take()) {
                let _ = k.send(reason);
            }
        }
    }

    /// Clear expired retained messages.
    pub fn sweep_retained(&self) -> usize {
        self.retained.write().sweep_expired(now_ms())
    }

    /// A snapshot of the retained messages.
    pub fn retained_messages(&self) -> Vec<SharedMessage> {
        self.retained.read().all().cloned().collect()
    }

    /// The retained message of topic `topic`, if any (expired ones included until swept).
    pub fn retained_message(&self, topic: &str) -> Option<SharedMessage> {
        self.retained.read().get(topic).cloned()
    }

    /// Clear the retained message of `topic` without publishing anything; the retained
    /// sink is told, as for an empty retained publish. False if there was none.
    pub fn delete_retained(&self, topic: &str) -> bool {
        let Some(old) = self.retained.read().get(topic).cloned() else {
            return false;
        };
        let clear: SharedMessage = Arc::new(Message {
            payload: bytes::Bytes::new(),
            ..old.detached()
        });
        let removed = self.retained.write().put(clear.clone());
        if removed {
            if let Some(sink) = self.retained_sink.0.get() {
                sink(&clear);
            }
        }
        removed
    }

    /// Every subscription, by filter: `(namespace, client id, filter as subscribed with
    /// `$share/<group>/` for a shared one, options)`.
    pub fn subscriptions(&self) -> Vec<SubscriptionRow> {
        let mut rows = Vec::new();
        self.router.read().for_each_filter(|filter, entry| {
            for sub in entry.subscribers.values() {
                rows.push(SubscriptionRow {
                    namespace: sub.cell.namespace.clone(),
                    client_id: sub.cell.client_id.clone(),
                    filter: filter.to_string(),
                    opts: sub.opts,
                });
            }
            for (group, members) in &entry.groups {
                for sub in &members.members {
                    rows.push(SubscriptionRow {
                        namespace: sub.cell.namespace.clone(),
                        client_id: sub.cell.client_id.clone(),
                        filter: format!("$share/{group}/{filter}"),
                        opts: sub.opts,
                    });
                }
            }
        });
        rows
    }

    /// Every subscribed filter (share groups' filters without their prefix).
    pub fn topics(&self) -> Vec<String> {
        let mut all = Vec::new();
        self.router
            .read()
            .for_each_filter(|filter, _| all.push(filter.to_string()));
        all
    }
}

/// One subscription, [`Broker::subscriptions`].
#[derive(Debug, Clone)]
pub struct SubscriptionRow {
    /// Client-id namespace: `""` for MQTT, the gateway's name otherwise.
    pub namespace: ByteString,
    /// Client id.
    pub client_id: ByteString,
    /// The filter as subscribed (mounted).
    pub filter: String,
    /// Its options.
    pub opts: SubOptions,
}

/// Build a broker-originated message (e.g. `$SYS`).
pub fn system_message(topic: String, payload: impl Into<bytes::Bytes>, retain: bool) -> Message {
    Message {
        id: 0,
        topic: topic.into(),
        payload: payload.into(),
        qos: QoS::AtMostOnce,
        retain,
        properties: Default::default(),
        expires_at_ms: None,
        received_at_ms: now_ms(),
        from: ByteString::new(),
        namespace: ByteString::new(),
    }
}

/// Registry key: (namespace, client id). Client ids are unique per namespace, so an MQTT
/// client and a STOMP client may share one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SessionKey(ByteString, ByteString);

#[cfg(test)]
mod tests {
    use super::*;
    use junction_session::Outbound;

    fn open(b: &Arc<Broker>, id: &str, clean: bool) -> (Opened, oneshot::Receiver<KickReason>) {
        let (tx, rx) = oneshot::channel();
        let opened = b.open_session(OpenSession {
            namespace: ByteString::new(),
            client_id: id.into(),
            clean_start: clean,
            expiry_interval_secs: 60,
            limits: SessionLimits::default(),
            conn_id: b.next_conn_id(),
            kick: tx,
        });
        (opened, rx)
    }

    fn msg(topic: &str, qos: QoS, from: &str) -> Message {
        Message {
            qos,
            from: from.into(),
            ..system_message(topic.to_string(), "p", false)
        }
    }

    fn outbox_len(cell: &SessionCell) -> usize {
        cell.lock().outbox.len()
    }

    #[tokio::test]
    async fn a_publisher_is_told_when_a_subscribers_outbox_is_half_full() {
        let b = Broker::new(BrokerSettings {
            max_outbox_qos0: 10,
            ..BrokerSettings::default()
        });
        let (a, _ka) = open(&b, "a", true);
        let (c, _kc) = open(&b, "c", true);
        b.subscribe(&a.cell, "t", SubOptions::default()).unwrap();
        b.subscribe(&c.cell, "other", SubOptions::default())
            .unwrap();
        let congested: Vec<bool> = (0..12)
            .map(|_| b.publish_routed(msg("t", QoS::AtMostOnce, "p")).congested)
            .collect();
        // Four waiting: not yet; five and on: half of 10; past 10 the message is dropped.
        assert_eq!(congested, [vec![false; 4], vec![true; 8]].concat());
        assert_eq!(outbox_len(&a.cell), 10);
        // Another subscriber's connection is not behind.
        let r = b.publish_routed(msg("other", QoS::AtMostOnce, "p"));
        assert_eq!((r.targets, r.congested), (1, false));
        // Once the connection has taken its outbox, publishers go on undisturbed.
        let conn_id = a.cell.lock().conn.as_ref().unwrap().conn_id;
        a.cell.take_outbox(conn_id, &mut Vec::new());
        assert!(!b.publish_routed(msg("t", QoS::AtMostOnce, "p")).congested);
    }

    #[tokio::test]
    async fn publish_reaches_online_subscribers_and_queues_for_offline_ones() {
        let b = Broker::new(BrokerSettings::default());
        let (a, _ka) = open(&b, "a", true);
        let (c, _kc) = open(&b, "c", false);
        let sub = SubOptions {
            qos: QoS::AtLeastOnce,
            ..SubOptions::default()
        };
        b.subscribe(&a.cell, "t/+", sub).unwrap();
        b.subscribe(&c.cell, "t/#", sub).unwrap();
        let conn_id = c.cell.lock().conn.as_ref().unwrap().conn_id;
        b.close_session(
            &c.cell,
            conn_id,
            Close {
                expiry_interval_secs: 60,
                will: None,
            },
        );
        assert_eq!(b.publish(msg("t/x", QoS::AtLeastOnce, "p")), 2);
        assert_eq!(outbox_len(&a.cell), 1);
        assert_eq!(outbox_len(&c.cell), 0);
        assert_eq!(c.cell.lock().session.mqueue_len(), 1);
    }

    #[tokio::test]
    async fn changes_to_persistent_sessions_put_them_on_the_dirty_list_once() {
        let b = Broker::new(BrokerSettings::default());
        let dirty = b.track_sessions();
        let (kept, _k1) = open(&b, "kept", true);
        let (tx, _k2) = oneshot::channel();
        let gone = b.open_session(OpenSession {
            namespace: ByteString::new(),
            client_id: "clean".into(),
            clean_start: true,
            expiry_interval_secs: 0,
            limits: SessionLimits::default(),
            conn_id: b.next_conn_id(),
            kick: tx,
        });
        let sub = SubOptions {
            qos: QoS::AtLeastOnce,
            ..SubOptions::default()
        };
        b.subscribe(&kept.cell, "d/#", sub).unwrap();
        b.subscribe(&gone.cell, "d/#", sub).unwrap();
        let ids = |v: Vec<Arc<SessionCell>>| -> Vec<String> {
            v.iter().map(|c| c.client_id.to_string()).collect()
        };
        // Only the session with an expiry interval is tracked, and once.
        assert_eq!(ids(dirty.take()), vec!["kept"]);
        assert!(dirty.is_empty());
        // A publisher's delivery marks it (the path that does not go through `lock`).
        let conn_id = kept.cell.lock().conn.as_ref().unwrap().conn_id;
        b.close_session(
            &kept.cell,
            conn_id,
            Close {
                expiry_interval_secs: 60,
                will: None,
            },
        );
        drop(kept.cell.lock_for_snapshot());
        dirty.take();
        b.publish(msg("d/x", QoS::AtLeastOnce, "p"));
        assert_eq!(ids(dirty.take()), vec!["kept"]);
        // A snapshot clears the mark; the next change sets it again.
        drop(kept.cell.lock_for_snapshot());
        b.publish(msg("d/y", QoS::AtMostOnce, "p"));
        assert_eq!(
            ids(dirty.take()),
            vec!["kept"],
            "QoS 0 queued while offline"
        );
    }

    #[tokio::test]
    async fn takeover_kicks_the_old_connection_and_keeps_the_session() {
        let b = Broker::new(BrokerSettings::default());
        let (first, kick) = open(&b, "x", false);
        b.subscribe(&first.cell, "a", SubOptions::default())
            .unwrap();
        let (second, _k2) = open(&b, "x", false);
        assert_eq!(kick.await, Ok(KickReason::TakenOver));
        assert!(second.session_present);
        assert!(Arc::ptr_eq(&first.cell, &second.cell));
        assert_eq!(b.publish(msg("a", QoS::AtMostOnce, "p")), 1);
        assert_eq!(b.metrics.session_takenover.get(), 1);
    }

    #[tokio::test]
    async fn clean_start_takeover_discards_the_old_subscriptions() {
        let b = Broker::new(BrokerSettings::default());
        let (first, _k) = open(&b, "y", false);
        b.subscribe(&first.cell, "a", SubOptions::default())
            .unwrap();
        let (second, _k2) = open(&b, "y", true);
        assert!(!second.session_present);
        assert!(!Arc::ptr_eq(&first.cell, &second.cell));
        assert_eq!(b.publish(msg("a", QoS::AtMostOnce, "p")), 0);
        assert_eq!(b.subscription_counts(), (0, 0));
    }

    #[tokio::test]
    async fn taken_over_connection_cannot_drain_the_new_outbox() {
        let b = Broker::new(BrokerSettings::default());
        let (first, _k) = open(&b, "z", false);
        let old_conn = first.cell.lock().conn.as_ref().unwrap().conn_id;
        b.subscribe(&first.cell, "a", SubOptions::default())
            .unwrap();
        let (_second, _k2) = open(&b, "z", false);
        b.publish(msg("a", QoS::AtMostOnce, "p"));
        let mut out: Vec<Outbound> = Vec::new();
        first.cell.take_outbox(old_conn, &mut out);
        assert!(out.is_empty());
        assert_eq!(outbox_len(&first.cell), 1);
    }

    #[tokio::test]
    async fn shared_group_prefers_connected_members() {
        let b = Broker::new(BrokerSettings::default());
        let (on, _k1) = open(&b, "on", true);
        let (off, _k2) = open(&b, "off", false);
        for cell in [&on.cell, &off.cell] {
            b.subscribe(cell, "$share/g/s", SubOptions::default())
                .unwrap();
        }
        let off_conn = off.cell.lock().conn.as_ref().unwrap().conn_id;
        b.close_session(
            &off.cell,
            off_conn,
            Close {
                expiry_interval_secs: 60,
                will: None,
            },
        );
        for _ in 0..10 {
            b.publish(msg("s", QoS::AtMostOnce, "p"));
        }
        assert_eq!(outbox_len(&on.cell), 10);
        assert_eq!(off.cell.lock().session.mqueue_len(), 0);
    }

    #[tokio::test]
    async fn client_ids_are_unique_per_namespace() {
        let b = Broker::new(BrokerSettings::default());
        let (mqtt, kick_mqtt) = open(&b, "same", true);
        let (tx, _rx) = oneshot::channel();
        let stomp = b.open_session(OpenSession {
            namespace: "stomp".into(),
            client_id: "same".into(),
            clean_start: true,
            expiry_interval_secs: 0,
            limits: SessionLimits::default(),
            conn_id: b.next_conn_id(),
            kick: tx,
        });
        assert!(!Arc::ptr_eq(&mqtt.cell, &stomp.cell));
        assert!(b
            .lookup("same")
            .is_some_and(|c| Arc::ptr_eq(&c, &mqtt.cell)));
        assert!(b
            .lookup_in("stomp", "same")
            .is_some_and(|c| Arc::ptr_eq(&c, &stomp.cell)));
        drop(kick_mqtt);
        assert_eq!(b.session_count(), 2);
        // No Local compares the namespace too: a STOMP client "same" is not the MQTT "same".
        let opts = SubOptions {
            no_local: true,
            ..SubOptions::default()
        };
        b.subscribe(&mqtt.cell, "ns", opts).unwrap();
        let from_stomp = Message {
            namespace: "stomp".into(),
            ..msg("ns", QoS::AtMostOnce, "same")
        };
        assert_eq!(b.publish(from_stomp), 1);
        assert_eq!(b.publish(msg("ns", QoS::AtMostOnce, "same")), 0);
    }

    #[tokio::test]
    async fn no_local_skips_the_publisher_itself() {
        let b = Broker::new(BrokerSettings::default());
        let (me, _k) = open(&b, "me", true);
        let opts = SubOptions {
            no_local: true,
            ..SubOptions::default()
        };
        b.subscribe(&me.cell, "loop", opts).unwrap();
        assert_eq!(b.publish(msg("loop", QoS::AtMostOnce, "me")), 0);
        assert_eq!(b.publish(msg("loop", QoS::AtMostOnce, "other")), 1);
    }
}
