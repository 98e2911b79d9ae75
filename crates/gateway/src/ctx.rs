//! The gateway context: the only door from a gateway to the broker.
//!
//! Every gateway connection goes through its [`GatewayCtx`] to open a session, publish,
//! subscribe and report its lifecycle, so mountpoints, client-id namespacing, counters and
//! `$SYS` events work the same for every protocol.

use crate::call::{CallBox, CallError, ClientCall, SubscriptionInfo};
use crate::client::{ClientInfo, ClientRegistry, ConnStats};
use crate::driver::{CloseReason, ConnectRequest, Session};
use crate::metrics::GatewayMetrics;
use crate::mountpoint::{render, Mountpoint, Placeholders, UnsafePlaceholder};
use bytes::Bytes;
use bytestring::ByteString;
use junction_auth::{AuthnChains, AuthnResult};
use junction_broker::hooks::{
    Action, ConnackArgs, ConnectArgs, MessageArgs, ReasonArgs, SessionSubArgs, SubscribeArgs,
    UnsubscribeArgs,
};
use junction_broker::{
    system_message, Broker, Close, KickReason, KickWait, OpenSession, Opened, Routed, SessionCell,
    Will,
};
use junction_session::{SessionLimits, SubOptions};
use junction_topic::{ParsedFilter, TopicError};
use junction_types::{now_ms, Message, MessageProperties, QoS, SharedMessage};
use std::sync::Arc;
use tokio::sync::oneshot;

/// Wait for a connection's answer: 5 s, as EMQX's channel calls.
async fn answer<T>(rx: oneshot::Receiver<T>) -> Result<T, CallError> {
    match tokio::time::timeout(std::time::Duration::from_secs(5), rx).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(_)) => Err(CallError::ClientNotFound),
        Err(_) => Err(CallError::Timeout),
    }
}

/// Whose conventions a context follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// A protocol gateway: its own counters, `$SYS/brokers/<node>/gateway/<protocol>/…`
    /// events, and no will or `session.terminated` for a session another connection took.
    Gateway,
    /// The MQTT listeners: the broker-wide counters (`Broker::metrics`), MQTT's
    /// `$SYS/brokers/<node>/clients/…` events, and MQTT's rules on close (the broker
    /// decides about the will of a session taken over [MQTT-3.1.4-3]; a session with
    /// expiry 0 terminates with its connection).
    Mqtt,
}

/// Count a hook-named counter both counter sets have: the gateway's own, or the broker's
/// for MQTT.
macro_rules! tally {
    ($ctx:expr, $field:ident) => {
        match $ctx.flavour {
            Flavour::Gateway => $ctx.metrics.$field.inc(),
            Flavour::Mqtt => $ctx.broker.metrics.$field.inc(),
        }
    };
}

/// Count a session counter in the gateway's own set; for MQTT the broker counts its
/// sessions itself.
macro_rules! tally_gateway {
    ($ctx:expr, $field:ident) => {
        if $ctx.flavour == Flavour::Gateway {
            $ctx.metrics.$field.inc();
        }
    };
}

/// The broker's table sizes, [`GatewayCtx::broker_stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerStats {
    /// Sessions, online and offline, of every protocol.
    pub sessions: usize,
    /// Distinct subscribed filters.
    pub topics: usize,
    /// Subscriptions of every protocol.
    pub subscriptions: usize,
    /// Retained messages.
    pub retained: usize,
}

/// Gateway-level settings every gateway has (reference §1.5, common keys).
#[derive(Debug, Clone)]
pub struct CommonSettings {
    /// `mountpoint` template.
    pub mountpoint: String,
    /// `idle_timeout`: time allowed from accept to the first frame.
    pub idle_timeout: std::time::Duration,
    /// `enable_stats`.
    pub enable_stats: bool,
    /// `clientinfo_override.clientid` template.
    pub override_clientid: Option<String>,
    /// `clientinfo_override.username` template.
    pub override_username: Option<String>,
    /// `clientinfo_override.password` template.
    pub override_password: Option<String>,
    /// Session limits of the zone (`mqtt.max_mqueue_len`, `retry_interval`,
    /// `await_rel_timeout`, …), which gateway sessions share with MQTT ones.
    pub session: SessionLimits,
    /// The node's TLS-PSK identities (`psk_authentication`), for DTLS listeners; `None`
    /// when PSK is off.
    pub psk: Option<Arc<crate::driver::dtls::PskTable>>,
}

impl Default for CommonSettings {
    /// EMQX's defaults: no mountpoint, 30 s idle timeout, statistics on, no overrides.
    fn default() -> Self {
        CommonSettings {
            mountpoint: String::new(),
            idle_timeout: std::time::Duration::from_secs(30),
            enable_stats: true,
            override_clientid: None,
            override_username: None,
            override_password: None,
            session: SessionLimits::default(),
            psk: None,
        }
    }
}

/// What the connect pipeline gives a driver: the session, and what can end it (the
/// broker's kick, the registry's, and framework calls into the connection).
#[derive(Debug)]
pub struct Admission {
    /// The admitted client.
    pub session: Session,
    /// The kick (takeover, discard, the API, shutdown).
    pub kick: KickWait,
    /// Framework calls (management API subscriptions), signalled through the session.
    pub calls: Arc<CallBox>,
}

/// The connect pipeline refused a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// EMQX's reason (`not_authorized`, `client_identifier_not_valid`, a hook's reason).
    pub reason: String,
}

/// A gateway's own resources, which the management API lists, shows, adds and removes
/// by id (LwM2M's object definitions, `/gateways/{name}/objects`).
pub trait GatewayResources: Send + Sync + std::fmt::Debug {
    /// Every resource.
    fn list(&self) -> serde_json::Value;
    /// The resource `id`.
    fn get(&self, id: &str) -> Option<serde_json::Value>;
    /// Add or replace what `body` describes; the resources added, or why not.
    fn put(&self, body: &serde_json::Value) -> Result<serde_json::Value, String>;
    /// Remove the resource `id`; false if there was none.
    fn delete(&self, id: &str) -> bool;
    /// Itself, for the gateway that made it to find its own type again.
    fn as_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync>;
}

/// Everything a gateway's connections share.
#[derive(Debug)]
pub struct GatewayCtx {
    /// Gateway name (`stomp`, `mqttsn`, …): the config key and the client-id namespace.
    pub name: &'static str,
    /// Protocol name in ClientInfo and `$SYS` topics (`stomp`, `mqtt-sn`, …).
    pub protocol: &'static str,
    /// Client-id namespace of its sessions (the gateway name; `""` for MQTT).
    pub namespace: ByteString,
    /// The broker: reached by gateways only through this context's methods.
    pub(crate) broker: Arc<Broker>,
    /// The node's authentication chains.
    pub authn: Arc<AuthnChains>,
    /// Name of this protocol's global chain (`stomp:global`, `mqtt-sn:global`, …).
    pub global_chain: String,
    /// Gateway counters.
    pub metrics: GatewayMetrics,
    /// Connected clients.
    pub clients: ClientRegistry,
    /// Whose conventions it follows.
    pub flavour: Flavour,
    /// The gateway's own resources, set by the gateway when it starts.
    pub resources: std::sync::OnceLock<Arc<dyn GatewayResources>>,
    settings: parking_lot::RwLock<Arc<CommonSettings>>,
}

impl GatewayCtx {
    /// A context for gateway `name`, whose frame types (for `packets.<type>.*`) are `frames`,
    /// with no authentication chain of its own.
    pub fn new(
        name: &'static str,
        protocol: &'static str,
        frames: &'static [&'static str],
        broker: Arc<Broker>,
        settings: CommonSettings,
    ) -> Arc<Self> {
        Self::with_authn(name, protocol, frames, broker, settings, Arc::default())
    }

    /// A context for gateway `name` that authenticates through `authn`.
    pub fn with_authn(
        name: &'static str,
        protocol: &'static str,
        frames: &'static [&'static str],
        broker: Arc<Broker>,
        settings: CommonSettings,
        authn: Arc<AuthnChains>,
    ) -> Arc<Self> {
        let namespace = if name == "mqtt" {
            ByteString::new()
        } else {
            ByteString::from_static(name)
        };
        Arc::new(GatewayCtx {
            name,
            protocol,
            namespace,
            broker,
            authn,
            global_chain: format!("{protocol}:global"),
            metrics: GatewayMetrics::new(frames),
            clients: ClientRegistry::default(),
            flavour: Flavour::Gateway,
            resources: std::sync::OnceLock::new(),
            settings: parking_lot::RwLock::new(Arc::new(settings)),
        })
    }

    /// The context of the MQTT listeners: client ids in the MQTT namespace, the broker's
    /// counters and `$SYS` events, `mqtt:global` and the listeners' chains in `authn`.
    pub fn mqtt(
        broker: Arc<Broker>,
        settings: CommonSettings,
        authn: Arc<AuthnChains>,
    ) -> Arc<Self> {
        Arc::new(GatewayCtx {
            name: "mqtt",
            protocol: "mqtt",
            namespace: ByteString::new(),
            broker,
            authn,
            global_chain: "mqtt:global".to_string(),
            metrics: GatewayMetrics::default(),
            clients: ClientRegistry::default(),
            flavour: Flavour::Mqtt,
            resources: std::sync::OnceLock::new(),
            settings: parking_lot::RwLock::new(Arc::new(settings)),
        })
    }

    /// The broker-wide counters (MQTT's packet and message counters).
    pub fn broker_metrics(&self) -> &junction_broker::Metrics {
        &self.broker.metrics
    }

    /// Every subscription of every protocol ([`junction_broker::Broker::subscriptions`]).
    pub fn broker_subscriptions(&self) -> Vec<junction_broker::SubscriptionRow> {
        self.broker.subscriptions()
    }

    /// Every subscribed filter.
    pub fn broker_topics(&self) -> Vec<String> {
        self.broker.topics()
    }

    /// The retained messages.
    pub fn retained_messages(&self) -> Vec<junction_types::SharedMessage> {
        self.broker.retained_messages()
    }

    /// The retained message of `topic`.
    pub fn retained_message(&self, topic: &str) -> Option<junction_types::SharedMessage> {
        self.broker.retained_message(topic)
    }

    /// Clear the retained message of `topic` (false if there was none).
    pub fn delete_retained(&self, topic: &str) -> bool {
        self.broker.delete_retained(topic)
    }

    /// A fresh message id (what the broker gives a message published with id 0).
    pub fn next_message_id(&self) -> u64 {
        self.broker.next_message_id()
    }

    /// Time since the broker started.
    pub fn uptime(&self) -> std::time::Duration {
        self.broker.uptime()
    }

    /// The broker's table sizes: sessions, distinct filters, subscriptions, retained
    /// messages (EMQX's `stats`).
    pub fn broker_stats(&self) -> BrokerStats {
        let (topics, subscriptions) = self.broker.subscription_counts();
        BrokerStats {
            sessions: self.broker.session_count(),
            topics,
            subscriptions,
            retained: self.broker.retained_count(),
        }
    }

    /// Count bytes read from a client.
    #[inline]
    pub fn count_received(&self, n: usize) {
        match self.flavour {
            Flavour::Gateway => self.metrics.bytes_received.add(n as u64),
            Flavour::Mqtt => self.broker.metrics.bytes_received.add(n as u64),
        }
    }

    /// Count bytes written to a client.
    #[inline]
    pub fn count_sent(&self, n: usize) {
        match self.flavour {
            Flavour::Gateway => self.metrics.bytes_sent.add(n as u64),
            Flavour::Mqtt => self.broker.metrics.bytes_sent.add(n as u64),
        }
    }

    /// Count a write that made no progress for `send_timeout`.
    pub fn count_send_timeout(&self) {
        tally!(self, send_timeout);
    }

    /// The broker's ack barrier (`durable_sessions.commit_before_ack`), if any: awaited
    /// before an acknowledgement is sent.
    pub fn ack_barrier(&self) -> Option<&junction_broker::AckBarrier> {
        self.broker.ack_barrier()
    }

    /// Route a message a client published, built by its protocol (MQTT's properties,
    /// expiry, retain), in this context's namespace; the topic is already mounted.
    pub fn publish_message(&self, mut msg: Message) -> Routed {
        msg.namespace = self.namespace.clone();
        self.broker.publish_routed(msg)
    }

    /// The settings in force (a gateway update swaps them; live connections keep theirs).
    pub fn settings(&self) -> Arc<CommonSettings> {
        self.settings.read().clone()
    }

    /// Replace the settings (gateway update).
    pub fn set_settings(&self, settings: CommonSettings) {
        *self.settings.write() = Arc::new(settings);
    }

    /// The mountpoint of a client: the listener's if it has one, else the gateway's, with
    /// placeholders rendered. `Err` when the client id or user name the template uses would
    /// widen or move it: the gateway refuses the client ("client identifier not valid").
    /// (`${endpoint_name}` is LwM2M's, rendered by its gateway into the template it
    /// passes as the listener's mountpoint.)
    pub fn mountpoint_for(
        &self,
        listener_mountpoint: Option<&str>,
        clientid: &str,
        username: Option<&str>,
    ) -> Result<Mountpoint, UnsafePlaceholder> {
        let settings = self.settings();
        let template = listener_mountpoint.unwrap_or(&settings.mountpoint);
        render(
            template,
            &Placeholders {
                clientid: Some(clientid),
                username,
                zone: Some("default"),
                endpoint_name: None,
            },
        )
        .map(Mountpoint::new)
    }

    /// Open a session for a client in this gateway's namespace.
    pub fn open_session(
        &self,
        clientid: &ByteString,
        clean_start: bool,
        expiry_interval_secs: u32,
        limits: SessionLimits,
        conn_id: u64,
        kick: oneshot::Sender<KickReason>,
    ) -> Opened {
        let opened = self.broker.open_session(OpenSession {
            namespace: self.namespace.clone(),
            client_id: clientid.clone(),
            clean_start,
            expiry_interval_secs,
            limits,
            conn_id,
            kick,
        });
        if !opened.session_present {
            tally_gateway!(self, session_created);
        }
        opened
    }

    /// Check a topic name a client sent (to publish to, to register, as its will) against
    /// the broker's topic rules and `mqtt.max_topic_levels`; the caller answers with its
    /// protocol's error.
    pub fn check_topic_name(&self, name: &str) -> Result<(), TopicError> {
        self.broker.settings.topic_limits.check_name(name)
    }

    /// Check a subscription filter a client sent, as [`GatewayCtx::check_topic_name`].
    pub fn check_filter<'a>(&self, raw: &'a str) -> Result<ParsedFilter<'a>, TopicError> {
        self.broker.settings.topic_limits.check_filter(raw)
    }

    /// Run `client.connect`: a handler may refuse the client (`Err(reason)`).
    pub fn client_connect(&self, info: &ClientInfo) -> Result<(), String> {
        tally!(self, client_connect);
        let mut args = ConnectArgs::default();
        self.broker.hooks.client_connect.run(info, &mut args);
        match args.refuse {
            Some(reason) => Err(reason),
            None => Ok(()),
        }
    }

    /// Authenticate a client with its listener's chain, else this protocol's global chain
    /// (reference §1.7), then `client.authenticate`. On success `info.is_superuser` is set
    /// and the time the authentication expires (ms since the epoch) is returned, if any;
    /// `Err(reason)` refuses the client (`not_authorized`, `bad_username_or_password`).
    pub async fn authenticate(
        &self,
        info: &mut ClientInfo,
        password: Option<&[u8]>,
    ) -> Result<Option<u64>, String> {
        tally!(self, client_authenticate);
        let result = junction_auth::access::authenticate(
            &self.broker.hooks,
            &self.authn,
            info,
            &self.global_chain,
            password,
        )
        .await;
        match result {
            AuthnResult::Ignore => {
                tally!(self, authentication_success_anonymous);
                Ok(None)
            }
            AuthnResult::Allow {
                is_superuser,
                expire_at,
            } => {
                tally!(self, authentication_success);
                info.is_superuser = is_superuser;
                Ok(expire_at)
            }
            AuthnResult::Deny(reason) => {
                tally!(self, authentication_failure);
                Err(reason)
            }
        }
    }

    /// True if clients of `listener` must authenticate ([`AuthnChains::required`]).
    pub fn authn_required(&self, listener: &str) -> bool {
        self.authn.required(listener, &self.global_chain)
    }

    /// Run `client.connack` with the outcome (`success`, `not_authorized`, …).
    pub fn connack(&self, info: &ClientInfo, result: &str) {
        tally!(self, client_connack);
        self.broker.hooks.client_connack.run(
            info,
            &mut ConnackArgs {
                result: result.to_string(),
            },
        );
    }

    /// Run `session.created` or `session.resumed` for the session just opened.
    pub fn session_opened(&self, info: &ClientInfo, session_present: bool) {
        if session_present {
            self.broker.hooks.session_resumed.run(info, &mut ());
        } else {
            self.broker.hooks.session_created.run(info, &mut ());
        }
    }

    /// May this client do `action` on `topic` (as the client sees it)? Superusers may do
    /// anything; the built-in rule keeps `$SYS/` for the broker's own publishes; then
    /// `client.authorize` has the last word.
    pub fn authorize(&self, info: &ClientInfo, action: Action, topic: &str) -> bool {
        tally!(self, client_authorize);
        let allowed = junction_auth::access::authorize(&self.broker.hooks, info, action, topic);
        if allowed {
            tally!(self, authorization_allow);
        } else {
            tally!(self, authorization_deny);
        }
        allowed
    }

    /// May this client publish to `topic` at QoS 0 (as the client sees it)?
    pub fn authorize_publish(&self, info: &ClientInfo, topic: &str) -> bool {
        self.authorize(
            info,
            Action::Publish {
                qos: QoS::AtMostOnce,
                retain: false,
            },
            topic,
        )
    }

    /// May this client subscribe to `filter` at QoS 0 (as the client sees it)?
    pub fn authorize_subscribe(&self, info: &ClientInfo, filter: &str) -> bool {
        self.authorize(
            info,
            Action::Subscribe {
                qos: QoS::AtMostOnce,
            },
            filter,
        )
    }

    /// Run `client.subscribe` over the filters a client asks for; returns those left (an
    /// empty list means the hook refused the request).
    pub fn client_subscribe(
        &self,
        info: &ClientInfo,
        filters: Vec<(String, SubOptions)>,
    ) -> Vec<(String, SubOptions)> {
        tally!(self, client_subscribe);
        let mut args = SubscribeArgs { filters };
        self.broker.hooks.client_subscribe.run(info, &mut args);
        args.filters
    }

    /// Run `client.unsubscribe` over the filters a client drops; returns those left.
    pub fn client_unsubscribe(&self, info: &ClientInfo, filters: Vec<String>) -> Vec<String> {
        tally!(self, client_unsubscribe);
        let mut args = UnsubscribeArgs { filters };
        self.broker.hooks.client_unsubscribe.run(info, &mut args);
        args.filters
    }

    /// A message was sent to a client: `messages.delivered` and `message.delivered`.
    pub fn delivered(&self, info: &ClientInfo, message: &SharedMessage) {
        tally!(self, messages_delivered);
        let hooks = &self.broker.hooks;
        if !hooks.message_delivered.is_empty() {
            hooks.message_delivered.run(
                info,
                &mut MessageArgs {
                    message: message.clone(),
                },
            );
        }
    }

    /// A client acknowledged a QoS 1/2 delivery: `messages.acked` and `message.acked`.
    pub fn acked(&self, info: &ClientInfo, message: Option<&SharedMessage>) {
        tally!(self, messages_acked);
        let hooks = &self.broker.hooks;
        if let Some(message) = message.filter(|_| !hooks.message_acked.is_empty()) {
            hooks.message_acked.run(
                info,
                &mut MessageArgs {
                    message: message.clone(),
                },
            );
        }
    }

    /// Another connection took the session (`session.takenover`) or discarded it
    /// (`session.discarded`): run by the connection that had it.
    pub fn session_kicked(&self, info: &ClientInfo, why: KickReason) {
        let hooks = &self.broker.hooks;
        match why {
            KickReason::TakenOver => {
                tally_gateway!(self, session_takenover);
                hooks.session_takenover.run(info, &mut ());
            }
            KickReason::Discarded => {
                tally_gateway!(self, session_discarded);
                hooks.session_discarded.run(info, &mut ());
            }
            KickReason::Administrative | KickReason::Shutdown => {}
        }
    }

    /// The client's session ends with its connection: `session.terminated`.
    pub fn session_terminated(&self, info: &ClientInfo, reason: &str) {
        tally_gateway!(self, session_terminated);
        self.broker.hooks.session_terminated.run(
            info,
            &mut ReasonArgs {
                reason: reason.to_string(),
            },
        );
    }

    /// Publish on behalf of a client: the topic is mounted, the message carries the
    /// gateway's namespace. Returns the number of deliveries and whether a connection
    /// delivered to is behind: the caller yields before handling more input, as MQTT does
    /// ([`junction_broker::Routed`]).
    #[allow(clippy::too_many_arguments)]
    pub fn publish(
        &self,
        info: &ClientInfo,
        mountpoint: &Mountpoint,
        topic: &str,
        payload: Bytes,
        qos: QoS,
        retain: bool,
        properties: MessageProperties,
    ) -> Routed {
        self.publish_message_of(
            info, mountpoint, topic, payload, qos, retain, properties, None,
        )
    }

    /// [`GatewayCtx::publish`] of a message that expires `expiry` seconds from now (a
    /// CoAP publish's `expiry` query).
    #[allow(clippy::too_many_arguments)]
    pub fn publish_expiring(
        &self,
        info: &ClientInfo,
        mountpoint: &Mountpoint,
        topic: &str,
        payload: Bytes,
        qos: QoS,
        retain: bool,
        expiry: Option<u32>,
    ) -> Routed {
        self.publish_message_of(
            info,
            mountpoint,
            topic,
            payload,
            qos,
            retain,
            MessageProperties::default(),
            expiry,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn publish_message_of(
        &self,
        info: &ClientInfo,
        mountpoint: &Mountpoint,
        topic: &str,
        payload: Bytes,
        qos: QoS,
        retain: bool,
        properties: MessageProperties,
        expiry: Option<u32>,
    ) -> Routed {
        tally_gateway!(self, messages_received);
        let now = now_ms();
        let msg = Message {
            id: 0,
            topic: mountpoint.mount(topic).into(),
            payload,
            qos,
            retain,
            properties,
            expires_at_ms: expiry.map(|secs| now.saturating_add(u64::from(secs) * 1000)),
            received_at_ms: now,
            from: info.clientid.clone(),
            namespace: self.namespace.clone(),
        };
        self.broker.publish_routed(msg)
    }

    /// Subscribe a client's session to a (client-visible) filter, mounted; runs
    /// `session.subscribed`.
    pub fn subscribe(
        &self,
        info: &ClientInfo,
        cell: &Arc<SessionCell>,
        mountpoint: &Mountpoint,
        filter: &str,
        opts: SubOptions,
    ) -> Result<bool, TopicError> {
        // Every path in (the protocol, the management API) meets the same limits here.
        self.check_filter(filter)?;
        let mounted = mountpoint.mount_filter(filter);
        let existed = self.broker.subscribe(cell, &mounted, opts)?;
        tally_gateway!(self, session_subscribed);
        self.sys_subscription(info, &mounted, Some(&opts));
        self.broker.hooks.session_subscribed.run(
            info,
            &mut SessionSubArgs {
                filter: mounted,
                opts,
            },
        );
        Ok(existed)
    }

    /// Remove a subscription (client-visible filter); runs `session.unsubscribed`.
    pub fn unsubscribe(
        &self,
        info: &ClientInfo,
        cell: &Arc<SessionCell>,
        mountpoint: &Mountpoint,
        filter: &str,
    ) -> bool {
        let mounted = mountpoint.mount_filter(filter);
        let removed = self.broker.unsubscribe(cell, &mounted);
        if removed {
            tally_gateway!(self, session_unsubscribed);
            self.sys_subscription(info, &mounted, None);
            self.broker.hooks.session_unsubscribed.run(
                info,
                &mut SessionSubArgs {
                    filter: mounted,
                    opts: SubOptions::default(),
                },
            );
        }
        removed
    }

    /// A client is connected: register it, count it and publish its `$SYS` event.
    pub fn connected(
        &self,
        info: Arc<ClientInfo>,
        stats: Arc<ConnStats>,
        conn_id: u64,
        cell: Arc<SessionCell>,
    ) {
        self.connected_with_calls(info, stats, conn_id, cell, None);
    }

    /// As [`GatewayCtx::connected`], for a connection that answers framework calls
    /// ([`ClientCall`]) on `calls`.
    pub fn connected_with_calls(
        &self,
        info: Arc<ClientInfo>,
        stats: Arc<ConnStats>,
        conn_id: u64,
        cell: Arc<SessionCell>,
        calls: Option<Arc<CallBox>>,
    ) {
        tally!(self, client_connected);
        self.broker.hooks.client_connected.run(&info, &mut ());
        if self.flavour == Flavour::Mqtt {
            self.broker.sys_client_connected(&mqtt_event(&info, None));
        } else if self.broker.settings.sys_event_client_connected {
            let body = serde_json::json!({
                "clientid": info.clientid,
                "username": info.username,
                "ipaddress": info.peername.ip().to_string(),
                "sockport": info.sockport,
                "protocol": info.protocol,
                "proto_name": info.protocol.to_uppercase(),
                "proto_ver": info.proto_ver,
                "keepalive": info.keepalive,
                "clean_start": info.clean_start,
                "expiry_interval": info.expiry_interval,
                "connected_at": info.connected_at,
                "ts": now_ms(),
            });
            self.sys_event(&info.clientid, "connected", body);
        }
        let clientid = info.clientid.clone();
        self.clients.insert(info, stats, conn_id, cell, calls);
        if !self.settings().enable_stats {
            self.clients.freeze_stats(&clientid, conn_id);
        }
    }

    /// Admit a client whose connection answers framework calls: register it (its session
    /// for kicks, the call channel), announce it and run `client.connack` with `success`.
    /// Returns where the connection task finds its calls.
    pub fn admit(
        &self,
        info: &Arc<ClientInfo>,
        stats: Arc<ConnStats>,
        conn_id: u64,
        cell: Arc<SessionCell>,
    ) -> Arc<CallBox> {
        let calls = Arc::new(CallBox::default());
        self.connected_with_calls(info.clone(), stats, conn_id, cell, Some(calls.clone()));
        self.connack(info, "success");
        calls
    }

    /// Have a connected client's gateway send it a request (`body` in the protocol's API
    /// terms) and wait up to `timeout` for the device's answer.
    pub async fn request(
        &self,
        clientid: &str,
        body: serde_json::Value,
        timeout: std::time::Duration,
    ) -> Result<serde_json::Value, CallError> {
        let (tx, rx) = oneshot::channel();
        self.clients
            .call(clientid, ClientCall::Request { body, reply: tx })?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(CallError::ClientNotFound),
            Err(_) => Err(CallError::Timeout),
        }
    }

    /// A client's subscriptions (mounted topics), asked of its connection.
    pub async fn subscriptions(&self, clientid: &str) -> Result<Vec<SubscriptionInfo>, CallError> {
        let (tx, rx) = oneshot::channel();
        self.clients.call(clientid, ClientCall::Subscriptions(tx))?;
        answer(rx).await
    }

    /// Subscribe a connected client to a client-visible `topic`, as the management API does
    /// (no authorization). Returns the subscription with its mounted topic.
    pub async fn add_subscription(
        &self,
        clientid: &str,
        topic: &str,
        opts: SubOptions,
        subid: Option<String>,
    ) -> Result<SubscriptionInfo, CallError> {
        let (tx, rx) = oneshot::channel();
        self.clients.call(
            clientid,
            ClientCall::Subscribe {
                topic: topic.to_string(),
                opts,
                subid,
                reply: tx,
            },
        )?;
        answer(rx).await?
    }

    /// Remove a connected client's subscription to a client-visible `topic`.
    pub async fn remove_subscription(&self, clientid: &str, topic: &str) -> Result<(), CallError> {
        let (tx, rx) = oneshot::channel();
        self.clients.call(
            clientid,
            ClientCall::Unsubscribe {
                topic: topic.to_string(),
                reply: tx,
            },
        )?;
        answer(rx).await?
    }

    /// The one connect pipeline, for every protocol: `client.connect`, authentication with
    /// the listener's chain or the gateway's, the mountpoint (a client id or user name
    /// that would widen or move it is refused as `client_identifier_not_valid`), the
    /// session opened or taken over, `session.created`/`resumed`, the registry and
    /// `client.connected`, and `client.connack`. A refusal has run `client.connack` with
    /// its reason; the caller answers with its protocol's error.
    pub async fn connect(self: &Arc<Self>, request: ConnectRequest) -> Result<Admission, Refusal> {
        let ConnectRequest {
            mut info,
            password,
            listener_mountpoint,
            limits,
            resume,
        } = request;
        let admitted = if resume {
            Ok(())
        } else {
            match self.client_connect(&info) {
                Ok(()) => self
                    .authenticate(&mut info, password.as_deref())
                    .await
                    .map(|_expire_at| ()),
                Err(reason) => Err(reason),
            }
        };
        let mountpoint = admitted.and_then(|()| {
            self.mountpoint_for(
                listener_mountpoint.as_deref(),
                &info.clientid,
                info.username.as_deref(),
            )
            .map_err(|_| "client_identifier_not_valid".to_string())
        });
        let mountpoint = match mountpoint {
            Ok(mountpoint) => mountpoint,
            Err(reason) => {
                tracing::debug!(clientid = %info.clientid, peer = %info.peername, %reason, "client refused");
                self.connack(&info, &reason);
                return Err(Refusal { reason });
            }
        };
        info.mountpoint = mountpoint.as_str().to_string();
        let conn_id = self.broker.next_conn_id();
        let (kick_tx, kick_rx) = oneshot::channel();
        let opened = self.open_session(
            &info.clientid,
            info.clean_start,
            info.expiry_interval,
            limits,
            conn_id,
            kick_tx,
        );
        self.session_opened(&info, opened.session_present);
        let stats = Arc::new(ConnStats::default());
        // One copy of the client's info, shared by the connection and the registry.
        let info = Arc::new(info);
        let calls = self.admit(&info, stats.clone(), conn_id, opened.cell.clone());
        Ok(Admission {
            session: Session {
                ctx: self.clone(),
                info,
                cell: opened.cell,
                mountpoint,
                conn_id,
                session_present: opened.session_present,
                stats,
            },
            kick: KickWait::new(kick_rx),
            calls,
        })
    }

    /// Keep `will` as the one the broker publishes for `session` if its connection dies
    /// (a persistent session keeps it across a restart).
    pub fn set_will(&self, session: &Session, will: Option<&Will>) {
        self.broker.set_will(&session.cell, session.conn_id, will);
    }

    /// Count deliveries a session dropped (queue full, expired) and run `message.dropped`.
    pub fn count_dropped(&self, dropped: Vec<junction_session::Dropped>) {
        self.broker.count_dropped(dropped);
    }

    /// True if this gateway's namespace holds a session for `clientid`.
    pub fn session_exists(&self, clientid: &str) -> bool {
        self.broker.lookup_in(self.name, clientid).is_some()
    }

    /// The one close path: `session.takenover`/`discarded` for a kicked session, the
    /// session handed back to the broker (kept for `expiry_interval_secs`, the will
    /// published or scheduled unless another connection took over), `session.terminated`
    /// when it ends with the connection, and the client unregistered with
    /// `client.disconnected` and its `$SYS` event.
    pub fn close(
        &self,
        session: &Session,
        reason: CloseReason,
        will: Option<Will>,
        expiry_interval_secs: u32,
    ) {
        let info = &session.info;
        if let CloseReason::Kicked(k) = reason {
            self.session_kicked(info, k);
        }
        // MQTT leaves the will of a session taken over to the broker (published unless
        // the new connection resumed it within the will delay) and terminates a session
        // with expiry 0 whoever ends it; a gateway session taken over is the new
        // connection's, will and all.
        let taken_over = reason.taken_over() && self.flavour == Flavour::Gateway;
        tracing::debug!(clientid = %info.clientid, reason = reason.as_str(), "client disconnected");
        self.broker.close_session(
            &session.cell,
            session.conn_id,
            Close {
                expiry_interval_secs,
                will: if taken_over { None } else { will },
            },
        );
        if expiry_interval_secs == 0 && !taken_over {
            self.session_terminated(info, reason.as_str());
        }
        self.disconnected(info, session.conn_id, reason.as_str());
    }

    /// A client is gone.
    pub fn disconnected(&self, info: &ClientInfo, conn_id: u64, reason: &str) {
        self.clients.remove(&info.clientid, conn_id);
        tally!(self, client_disconnected);
        self.broker.hooks.client_disconnected.run(
            info,
            &mut ReasonArgs {
                reason: reason.to_string(),
            },
        );
        if self.flavour == Flavour::Mqtt {
            self.broker
                .sys_client_disconnected(&mqtt_event(info, Some(reason.to_string())));
        } else if self.broker.settings.sys_event_client_disconnected {
            let body = serde_json::json!({
                "clientid": info.clientid,
                "username": info.username,
                "protocol": info.protocol,
                "reason": reason,
                "disconnected_at": now_ms(),
                "ts": now_ms(),
            });
            self.sys_event(&info.clientid, "disconnected", body);
        }
    }

    /// `$SYS/brokers/<node>/gateway/<protocol>/clients/<clientid>/<event>` (reference §1.11).
    /// `$SYS/brokers/<node>/gateway/<protocol>/clients/<id>/subscribed` or `…/unsubscribed`,
    /// when `sys_event_messages` asks for it.
    fn sys_subscription(&self, info: &ClientInfo, topic: &str, opts: Option<&SubOptions>) {
        if self.flavour == Flavour::Mqtt {
            self.broker.sys_client_subscription(
                &info.clientid,
                info.username.as_deref(),
                topic,
                opts,
            );
            return;
        }
        let settings = &self.broker.settings;
        let (wanted, event) = match opts {
            Some(_) => (settings.sys_event_client_subscribed, "subscribed"),
            None => (settings.sys_event_client_unsubscribed, "unsubscribed"),
        };
        if wanted {
            let body = Broker::sys_subscription_body(
                &info.clientid,
                info.username.as_deref(),
                info.protocol,
                topic,
                opts,
            );
            self.sys_event(&info.clientid, event, body);
        }
    }

    fn sys_event(&self, clientid: &str, event: &str, body: serde_json::Value) {
        let topic = format!(
            "$SYS/brokers/{}/gateway/{}/clients/{clientid}/{event}",
            self.broker.settings.node_name, self.protocol
        );
        self.broker
            .publish(system_message(topic, body.to_string(), false));
    }
}

/// A client as MQTT's `$SYS` connected/disconnected events describe it.
fn mqtt_event(info: &ClientInfo, reason: Option<String>) -> junction_broker::sys::ClientEvent {
    junction_broker::sys::ClientEvent {
        client_id: info.clientid.to_string(),
        username: info.username.as_ref().map(|u| u.to_string()),
        peername: info.peername.to_string(),
        proto_name: "MQTT".into(),
        proto_ver: info.proto_ver.parse().unwrap_or(0),
        keepalive: info.keepalive.min(u16::MAX as u32) as u16,
        clean_start: info.clean_start,
        expiry_interval: info.expiry_interval,
        connected_at: info.connected_at,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use junction_broker::BrokerSettings;
    use junction_session::Outbound;

    fn info(id: &str) -> ClientInfo {
        ClientInfo {
            clientid: id.into(),
            username: Some("u".into()),
            protocol: "stomp",
            proto_ver: "1.2".into(),
            peername: "127.0.0.1:5000".parse().unwrap(),
            sockport: 61613,
            listener: "stomp:tcp:default".into(),
            mountpoint: String::new(),
            keepalive: 0,
            clean_start: true,
            expiry_interval: 0,
            connected_at: 0,
            is_superuser: false,
            extras: Default::default(),
        }
    }

    fn ctx(mountpoint: &str) -> Arc<GatewayCtx> {
        GatewayCtx::new(
            "stomp",
            "stomp",
            &[],
            Broker::new(BrokerSettings::default()),
            CommonSettings {
                mountpoint: mountpoint.into(),
                ..CommonSettings::default()
            },
        )
    }

    fn delivered_topics(cell: &SessionCell, conn_id: u64) -> Vec<String> {
        let mut out = Vec::new();
        cell.take_outbox(conn_id, &mut out);
        out.into_iter()
            .filter_map(|o| match o {
                Outbound::Publish { delivery, .. } => Some(delivery.message.topic.to_string()),
                Outbound::PubRel(_) => None,
            })
            .collect()
    }

    #[tokio::test]
    async fn listener_mountpoint_overrides_the_gateway_one_and_renders_placeholders() {
        let c = ctx("stomp/${clientid}/");
        assert_eq!(
            c.mountpoint_for(None, "c1", None).unwrap().as_str(),
            "stomp/c1/"
        );
        assert_eq!(
            c.mountpoint_for(Some("l/${username}/"), "c1", Some("bob"))
                .unwrap()
                .as_str(),
            "l/bob/"
        );
    }

    #[tokio::test]
    async fn publish_is_mounted_and_reaches_mqtt_subscribers() {
        let c = ctx("stomp/");
        let (tx, _rx) = oneshot::channel();
        let mqtt = c.broker.open_session(OpenSession {
            namespace: ByteString::new(),
            client_id: "mqtt-sub".into(),
            clean_start: true,
            expiry_interval_secs: 0,
            limits: SessionLimits::default(),
            conn_id: 1,
            kick: tx,
        });
        c.broker
            .subscribe(&mqtt.cell, "stomp/#", SubOptions::default())
            .unwrap();
        let mp = c.mountpoint_for(None, "s1", None).unwrap();
        let n = c.publish(
            &info("s1"),
            &mp,
            "a/b",
            Bytes::from_static(b"x"),
            QoS::AtMostOnce,
            false,
            MessageProperties::default(),
        );
        assert_eq!(n.targets, 1);
        assert_eq!(delivered_topics(&mqtt.cell, 1), vec!["stomp/a/b"]);
    }

    #[tokio::test]
    async fn gateway_sessions_live_in_the_gateway_namespace() {
        let c = ctx("");
        let (tx, _rx) = oneshot::channel();
        let opened = c.open_session(&"same".into(), true, 0, SessionLimits::default(), 7, tx);
        assert!(c.broker.lookup("same").is_none());
        assert!(c
            .broker
            .lookup_in("stomp", "same")
            .is_some_and(|cell| Arc::ptr_eq(&cell, &opened.cell)));
        assert_eq!(c.metrics.get("session.created"), 1);
        let mp = c.mountpoint_for(None, "same", None).unwrap();
        c.subscribe(
            &info("same"),
            &opened.cell,
            &mp,
            "t/+",
            SubOptions::default(),
        )
        .unwrap();
        c.broker.publish(system_message("t/1".into(), "p", false));
        assert_eq!(delivered_topics(&opened.cell, 7), vec!["t/1"]);
        assert!(c.unsubscribe(&info("same"), &opened.cell, &mp, "t/+"));
    }

    #[tokio::test]
    async fn connected_clients_are_registered_announced_and_kickable() {
        let c = ctx("");
        let (watch_tx, _w) = oneshot::channel();
        let watcher = c.broker.open_session(OpenSession {
            namespace: ByteString::new(),
            client_id: "watch".into(),
            clean_start: true,
            expiry_interval_secs: 0,
            limits: SessionLimits::default(),
            conn_id: 1,
            kick: watch_tx,
        });
        c.broker
            .subscribe(
                &watcher.cell,
                "$SYS/brokers/+/gateway/stomp/clients/#",
                SubOptions::default(),
            )
            .unwrap();
        let (tx, rx) = oneshot::channel();
        let opened = c.open_session(&"g1".into(), true, 0, SessionLimits::default(), 9, tx);
        c.connected(
            info("g1").into(),
            Arc::new(ConnStats::default()),
            9,
            opened.cell,
        );
        assert_eq!(c.clients.len(), 1);
        assert_eq!(c.clients.list()[0].clientid, "g1");
        assert!(c.clients.kick("g1", KickReason::Administrative));
        assert_eq!(rx.await, Ok(KickReason::Administrative));
        c.disconnected(&info("g1"), 9, "kicked");
        assert!(c.clients.is_empty());
        let topics = delivered_topics(&watcher.cell, 1);
        assert_eq!(topics.len(), 2);
        assert!(topics[0].ends_with("/gateway/stomp/clients/g1/connected"));
        assert!(topics[1].ends_with("/gateway/stomp/clients/g1/disconnected"));
        assert_eq!(c.metrics.get("client.connected"), 1);
    }

    #[tokio::test]
    async fn enable_stats_false_shows_the_counters_as_they_were_at_connect() {
        for enable_stats in [true, false] {
            let c = GatewayCtx::new(
                "stomp",
                "stomp",
                &[],
                Broker::new(BrokerSettings::default()),
                CommonSettings {
                    enable_stats,
                    ..CommonSettings::default()
                },
            );
            let stats = Arc::new(ConnStats::default());
            stats
                .recv_pkt
                .store(1, std::sync::atomic::Ordering::Relaxed);
            let (tx, _rx) = oneshot::channel();
            let opened = c.open_session(&"s1".into(), true, 0, SessionLimits::default(), 1, tx);
            c.connected(info("s1").into(), stats.clone(), 1, opened.cell);
            stats
                .recv_pkt
                .store(5, std::sync::atomic::Ordering::Relaxed);
            let (_, shown) = c.clients.lookup("s1").unwrap();
            let recv_pkt = shown.iter().find(|(n, _)| *n == "recv_pkt").unwrap().1;
            assert_eq!(recv_pkt, if enable_stats { 5 } else { 1 });
        }
    }

    #[tokio::test]
    async fn a_second_connection_with_the_same_id_discards_the_first() {
        let c = ctx("");
        let limits = SessionLimits::default();
        let (tx1, rx1) = oneshot::channel();
        let first = c.open_session(&"dup".into(), false, 60, limits, 1, tx1);
        c.connected(
            info("dup").into(),
            Arc::new(ConnStats::default()),
            1,
            first.cell,
        );
        let (tx2, _rx2) = oneshot::channel();
        let second = c.open_session(&"dup".into(), false, 60, limits, 2, tx2);
        c.connected(
            info("dup").into(),
            Arc::new(ConnStats::default()),
            2,
            second.cell,
        );
        assert_eq!(rx1.await, Ok(KickReason::TakenOver));
        // The first connection's goodbye must not unregister the second.
        assert!(!c.clients.remove("dup", 1));
        assert_eq!(c.clients.len(), 1);
    }
}
