//! `$SYS/brokers/<node>/…` topics: broker version, uptime, statistics, metrics and client
//! connected/disconnected events, published like EMQX does.

use crate::{system_message, Broker};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// The version string published at `$SYS/brokers/<node>/version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Facts about a client for its `$SYS` connected/disconnected events.
#[derive(Debug, Clone, Default)]
pub struct ClientEvent {
    /// Client id.
    pub client_id: String,
    /// User name, if any.
    pub username: Option<String>,
    /// Peer address `ip:port`.
    pub peername: String,
    /// Protocol name, e.g. "MQTT".
    pub proto_name: String,
    /// Protocol level (3, 4, 5).
    pub proto_ver: u8,
    /// Keep alive in seconds.
    pub keepalive: u16,
    /// Clean start flag.
    pub clean_start: bool,
    /// Session expiry interval in seconds.
    pub expiry_interval: u32,
    /// Connection time, ms since the epoch.
    pub connected_at: u64,
    /// Disconnection reason, for the disconnected event.
    pub reason: Option<String>,
}

impl Broker {
    fn sys_topic(&self, suffix: &str) -> String {
        format!("$SYS/brokers/{}/{}", self.settings.node_name, suffix)
    }

    /// Publish `$SYS/brokers/<node>/clients/<clientid>/connected`.
    pub fn sys_client_connected(&self, ev: &ClientEvent) {
        if !self.settings.sys_event_client_connected {
            return;
        }
        let body = json!({
            "clientid": ev.client_id,
            "username": ev.username,
            "ipaddress": ev.peername.rsplit_once(':').map(|(ip, _)| ip).unwrap_or(&ev.peername),
            "proto_name": ev.proto_name,
            "proto_ver": ev.proto_ver,
            "keepalive": ev.keepalive,
            "clean_start": ev.clean_start,
            "expiry_interval": ev.expiry_interval,
            "connected_at": ev.connected_at,
            "ts": junction_types::now_ms(),
        });
        let topic = self.sys_topic(&format!("clients/{}/connected", ev.client_id));
        self.publish(system_message(topic, body.to_string(), false));
    }

    /// Publish `$SYS/brokers/<node>/clients/<clientid>/disconnected`.
    pub fn sys_client_disconnected(&self, ev: &ClientEvent) {
        if !self.settings.sys_event_client_disconnected {
            return;
        }
        let body = json!({
            "clientid": ev.client_id,
            "username": ev.username,
            "reason": ev.reason.as_deref().unwrap_or("normal"),
            "proto_name": ev.proto_name,
            "proto_ver": ev.proto_ver,
            "ts": junction_types::now_ms(),
        });
        let topic = self.sys_topic(&format!("clients/{}/disconnected", ev.client_id));
        self.publish(system_message(topic, body.to_string(), false));
    }

    /// The body of a subscribed / unsubscribed event (EMQX's keys).
    pub fn sys_subscription_body(
        clientid: &str,
        username: Option<&str>,
        protocol: &str,
        topic: &str,
        opts: Option<&junction_session::SubOptions>,
    ) -> serde_json::Value {
        let mut body = json!({
            "clientid": clientid,
            "username": username,
            "protocol": protocol,
            "topic": topic,
            "ts": junction_types::now_ms(),
        });
        if let Some(o) = opts {
            body["subopts"] = json!({
                "qos": o.qos.as_u8(),
                "nl": u8::from(o.no_local),
                "rap": u8::from(o.retain_as_published),
                "rh": o.retain_handling,
            });
        }
        body
    }

    /// Publish `$SYS/brokers/<node>/clients/<clientid>/subscribed` or `…/unsubscribed`
    /// (an MQTT client's), when `sys_event_messages` asks for it. `opts`: the subscription
    /// options of a subscribe; `None` for an unsubscribe.
    pub fn sys_client_subscription(
        &self,
        clientid: &str,
        username: Option<&str>,
        topic: &str,
        opts: Option<&junction_session::SubOptions>,
    ) {
        let (wanted, event) = match opts {
            Some(_) => (self.settings.sys_event_client_subscribed, "subscribed"),
            None => (self.settings.sys_event_client_unsubscribed, "unsubscribed"),
        };
        if !wanted {
            return;
        }
        let body = Self::sys_subscription_body(clientid, username, "mqtt", topic, opts);
        let topic = self.sys_topic(&format!("clients/{clientid}/{event}"));
        self.publish(system_message(topic, body.to_string(), false));
    }

    /// Publish the static `$SYS` topics (retained) once.
    pub fn sys_publish_static(&self) {
        self.publish(system_message(self.sys_topic("version"), VERSION, true));
        self.publish(system_message(
            self.sys_topic("sysdescr"),
            "Junction IoT broker",
            true,
        ));
        self.publish(system_message(
            "$SYS/brokers".to_string(),
            self.settings.node_name.clone(),
            true,
        ));
    }

    /// Publish uptime and datetime.
    pub fn sys_publish_heartbeat(&self) {
        self.publish(system_message(
            self.sys_topic("uptime"),
            self.uptime().as_secs().to_string(),
            false,
        ));
        let now = junction_types::now_ms();
        self.publish(system_message(
            self.sys_topic("datetime"),
            now.to_string(),
            false,
        ));
    }

    /// Publish the statistics and metrics topics.
    pub fn sys_publish_stats(&self) {
        let (topics, subs) = self.subscription_counts();
        let connections = self.metrics.connections_count.get();
        let stats = [
            ("connections/count", connections as usize),
            ("sessions/count", self.session_count()),
            ("topics/count", topics),
            ("subscriptions/count", subs),
            ("retained/count", self.retained_count()),
        ];
        for (name, v) in stats {
            self.publish(system_message(
                self.sys_topic(&format!("stats/{name}")),
                v.to_string(),
                false,
            ));
        }
        for (name, v) in self.metrics.snapshot() {
            let topic = self.sys_topic(&format!("metrics/{}", name.replace('.', "/")));
            self.publish(system_message(topic, v.to_string(), false));
        }
    }

    /// Start the periodic `$SYS` publisher and retained-message sweeper.
    pub fn start_sys(self: &Arc<Self>) {
        self.sys_publish_static();
        if let Some(every) = self.settings.sys_heartbeat_interval {
            let b = self.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    b.sys_publish_heartbeat();
                }
            });
        }
        if let Some(every) = self.settings.sys_msg_interval {
            let b = self.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    b.sys_publish_stats();
                }
            });
        }
        let b = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            loop {
                tick.tick().await;
                b.sweep_retained();
            }
        });
    }
}
