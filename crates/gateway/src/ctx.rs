//! The gateway context: the only door from a gateway to the broker.
//!
//! Every gateway connection goes through its [`GatewayCtx`] to open a session, publish,
//! subscribe and report its lifecycle, so mountpoints, client-id namespacing, counters and
//! `$SYS` events work the same for every protocol.

use crate::client::{ClientInfo, ClientRegistry, ConnStats};
use crate::metrics::GatewayMetrics;
use crate::mountpoint::{render, Mountpoint, Placeholders};
use bytes::Bytes;
use bytestring::ByteString;
use junction_broker::{system_message, Broker, KickReason, OpenSession, Opened, SessionCell};
use junction_session::{SessionLimits, SubOptions};
use junction_topic::TopicError;
use junction_types::{now_ms, Message, MessageProperties, QoS};
use std::sync::Arc;
use tokio::sync::oneshot;

/// Gateway-level settings every gateway has (reference §1.5, common keys).
#[derive(Debug, Clone, Default)]
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
}

/// Everything a gateway's connections share.
#[derive(Debug)]
pub struct GatewayCtx {
    /// Gateway name (`stomp`, `mqttsn`, …): the config key and the client-id namespace.
    pub name: &'static str,
    /// Protocol name in ClientInfo and `$SYS` topics (`stomp`, `mqtt-sn`, …).
    pub protocol: &'static str,
    /// The broker.
    pub broker: Arc<Broker>,
    /// Gateway counters.
    pub metrics: GatewayMetrics,
    /// Connected clients.
    pub clients: ClientRegistry,
    settings: parking_lot::RwLock<Arc<CommonSettings>>,
}

impl GatewayCtx {
    /// A context for gateway `name`.
    pub fn new(
        name: &'static str,
        protocol: &'static str,
        broker: Arc<Broker>,
        settings: CommonSettings,
    ) -> Arc<Self> {
        Arc::new(GatewayCtx {
            name,
            protocol,
            broker,
            metrics: GatewayMetrics::default(),
            clients: ClientRegistry::default(),
            settings: parking_lot::RwLock::new(Arc::new(settings)),
        })
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
    /// placeholders rendered.
    pub fn mountpoint_for(
        &self,
        listener_mountpoint: Option<&str>,
        clientid: &str,
        username: Option<&str>,
    ) -> Mountpoint {
        let settings = self.settings();
        let template = listener_mountpoint.unwrap_or(&settings.mountpoint);
        Mountpoint::new(render(
            template,
            &Placeholders {
                clientid: Some(clientid),
                username,
                zone: Some("default"),
                endpoint_name: None,
            },
        ))
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
            namespace: ByteString::from_static(self.name),
            client_id: clientid.clone(),
            clean_start,
            expiry_interval_secs,
            limits,
            conn_id,
            kick,
        });
        if !opened.session_present {
            self.metrics.inc("session.created");
        }
        opened
    }

    /// May this client publish to `topic` (as the client sees it)?
    ///
    /// Central authorization comes with a later issue; until then the one rule is the one
    /// the MQTT listener applies too: `$SYS/` is the broker's.
    pub fn authorize_publish(&self, _info: &ClientInfo, topic: &str) -> bool {
        !topic.starts_with("$SYS/")
    }

    /// May this client subscribe to `filter` (as the client sees it)?
    pub fn authorize_subscribe(&self, _info: &ClientInfo, _filter: &str) -> bool {
        true
    }

    /// Publish on behalf of a client: the topic is mounted, the message carries the
    /// gateway's namespace. Returns the number of deliveries.
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
    ) -> usize {
        let now = now_ms();
        let msg = Message {
            id: 0,
            topic: mountpoint.mount(topic).into(),
            payload,
            qos,
            retain,
            properties,
            expires_at_ms: None,
            received_at_ms: now,
            from: info.clientid.clone(),
            namespace: ByteString::from_static(self.name),
        };
        self.broker.publish(msg)
    }

    /// Subscribe a client's session to a (client-visible) filter, mounted.
    pub fn subscribe(
        &self,
        cell: &Arc<SessionCell>,
        mountpoint: &Mountpoint,
        filter: &str,
        opts: SubOptions,
    ) -> Result<bool, TopicError> {
        let existed = self
            .broker
            .subscribe(cell, &mountpoint.mount_filter(filter), opts)?;
        self.metrics.inc("session.subscribed");
        Ok(existed)
    }

    /// Remove a subscription (client-visible filter).
    pub fn unsubscribe(
        &self,
        cell: &Arc<SessionCell>,
        mountpoint: &Mountpoint,
        filter: &str,
    ) -> bool {
        let removed = self
            .broker
            .unsubscribe(cell, &mountpoint.mount_filter(filter));
        if removed {
            self.metrics.inc("session.unsubscribed");
        }
        removed
    }

    /// A client is connected: register it, count it and publish its `$SYS` event.
    pub fn connected(
        &self,
        info: ClientInfo,
        stats: Arc<ConnStats>,
        conn_id: u64,
        kick: oneshot::Sender<KickReason>,
    ) {
        self.metrics.inc("client.connected");
        if self.broker.settings.sys_event_client_connected {
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
        self.clients.insert(info, stats, conn_id, kick);
    }

    /// A client is gone.
    pub fn disconnected(&self, info: &ClientInfo, conn_id: u64, reason: &str) {
        self.clients.remove(&info.clientid, conn_id);
        self.metrics.inc("client.disconnected");
        if self.broker.settings.sys_event_client_disconnected {
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
    fn sys_event(&self, clientid: &str, event: &str, body: serde_json::Value) {
        let topic = format!(
            "$SYS/brokers/{}/gateway/{}/clients/{clientid}/{event}",
            self.broker.settings.node_name, self.protocol
        );
        self.broker
            .publish(system_message(topic, body.to_string(), false));
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
        assert_eq!(c.mountpoint_for(None, "c1", None).as_str(), "stomp/c1/");
        assert_eq!(
            c.mountpoint_for(Some("l/${username}/"), "c1", Some("bob"))
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
        let mp = c.mountpoint_for(None, "s1", None);
        let n = c.publish(
            &info("s1"),
            &mp,
            "a/b",
            Bytes::from_static(b"x"),
            QoS::AtMostOnce,
            false,
            MessageProperties::default(),
        );
        assert_eq!(n, 1);
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
        let mp = c.mountpoint_for(None, "same", None);
        c.subscribe(&opened.cell, &mp, "t/+", SubOptions::default())
            .unwrap();
        c.broker.publish(system_message("t/1".into(), "p", false));
        assert_eq!(delivered_topics(&opened.cell, 7), vec!["t/1"]);
        assert!(c.unsubscribe(&opened.cell, &mp, "t/+"));
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
        c.connected(info("g1"), Arc::new(ConnStats::default()), 9, tx);
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
    async fn a_second_connection_with_the_same_id_discards_the_first() {
        let c = ctx("");
        let (tx1, rx1) = oneshot::channel();
        c.connected(info("dup"), Arc::new(ConnStats::default()), 1, tx1);
        let (tx2, _rx2) = oneshot::channel();
        c.connected(info("dup"), Arc::new(ConnStats::default()), 2, tx2);
        assert_eq!(rx1.await, Ok(KickReason::TakenOver));
        // The first connection's goodbye must not unregister the second.
        assert!(!c.clients.remove("dup", 1));
        assert_eq!(c.clients.len(), 1);
    }
}
