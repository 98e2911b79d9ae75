//! `gateway.mqttsn { … }`: the MQTT-SN gateway's section (EMQX keys, reference §5.2).

use junction_config::authn::AuthnConfig;
use junction_config::KeyStatus::{Honoured as H, Misplaced as M};
use junction_config::{
    ClientInfoOverride, ConfigError, Duration, GatewayListeners, KeyTable, ListenerType,
};
use serde::{Deserialize, Serialize};

/// One predefined topic, `predefined = [{id = 1, topic = "a/b"}]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredefinedTopic {
    /// Topic id, 1 to 1024.
    pub id: u16,
    /// Topic name.
    pub topic: String,
}

/// `gateway.mqttsn { … }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttSnConfig {
    /// Run the gateway. Default `true`.
    pub enable: bool,
    /// Refresh client statistics periodically. Default `true`.
    pub enable_stats: bool,
    /// Time from the first datagram to CONNECT. Default `"30s"`.
    pub idle_timeout: Duration,
    /// Topic prefix. Default `""`.
    pub mountpoint: String,
    /// Identity templates. Default none.
    pub clientinfo_override: ClientInfoOverride,
    /// Gateway id in GWINFO and ADVERTISE. Default `1`.
    pub gateway_id: u8,
    /// Broadcast ADVERTISE. Default `false`.
    pub broadcast: bool,
    /// Accept QoS −1 publishes from clients that did not connect. Default `true`.
    pub enable_qos3: bool,
    /// Re-REGISTER subscribed topics when a session resumes. Default `false`.
    pub subs_resume: bool,
    /// Predefined topic ids shared by all clients. Default `[]`.
    pub predefined: Vec<PredefinedTopic>,
    /// The gateway's global authenticator (chain `mqtt-sn:global`). Default none: clients
    /// are let in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentication: Option<AuthnConfig>,
    /// Listeners (`udp`, `dtls`). Default: `udp.default` on 1884 and `dtls.default` on
    /// 1885, which starts only with credentials (`psk_authentication` or a certificate).
    pub listeners: GatewayListeners,
}

impl Default for MqttSnConfig {
    fn default() -> Self {
        MqttSnConfig {
            enable: true,
            enable_stats: true,
            idle_timeout: Duration::from_secs(30),
            mountpoint: String::new(),
            clientinfo_override: ClientInfoOverride::default(),
            gateway_id: 1,
            broadcast: false,
            enable_qos3: true,
            subs_resume: false,
            predefined: Vec::new(),
            authentication: None,
            listeners: default_listeners(),
        }
    }
}

/// `udp.default` on 1884 and `dtls.default` on 1885 (EMQX's ports).
fn default_listeners() -> GatewayListeners {
    let mut l = GatewayListeners::one(ListenerType::Udp, 1884);
    l.dtls = GatewayListeners::one(ListenerType::Dtls, 1885).dtls;
    l
}

impl MqttSnConfig {
    /// Predefined topic ids are 1 to 1024.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for p in &self.predefined {
            if p.id == 0 || p.id > 1024 {
                return Err(ConfigError::invalid(
                    "gateway.mqttsn.predefined",
                    format!("topic id {} is out of range (1..1024)", p.id),
                ));
            }
        }
        Ok(())
    }
}

/// What happens to each `gateway.mqttsn` key.
pub const KEY_STATUS: KeyTable = &[
    ("gateway.mqttsn.listeners.tcp.**", M("{}")),
    ("gateway.mqttsn.listeners.ssl.**", M("{}")),
    (
        "gateway.mqttsn.enable",
        H("listener_added_at_run_time_accepts_and_unload_closes_the_ports"),
    ),
    (
        "gateway.mqttsn.enable_stats",
        H("enable_stats_false_shows_the_counters_as_they_were_at_connect"),
    ),
    (
        "gateway.mqttsn.idle_timeout",
        H("a_silent_connection_is_closed_after_idle_timeout"),
    ),
    (
        "gateway.mqttsn.mountpoint",
        H("an_mqttsn_client_id_that_would_widen_the_mountpoint_is_refused"),
    ),
    (
        "gateway.mqttsn.clientinfo_override.*",
        H("pingreq_from_a_new_address_finds_the_overridden_client"),
    ),
    (
        "gateway.mqttsn.gateway_id",
        H("searchgw_is_answered_with_gwinfo"),
    ),
    (
        "gateway.mqttsn.broadcast",
        H("broadcast_sends_advertise_at_start_and_every_period_from_the_listener"),
    ),
    (
        "gateway.mqttsn.enable_qos3",
        H("test_qos_minus_one_publish_without_connect_reaches_mqtt_subscriber"),
    ),
    (
        "gateway.mqttsn.subs_resume",
        H("persistent_session_resumes_with_registration_of_queued_topics"),
    ),
    (
        "gateway.mqttsn.predefined",
        H("test_publish_on_predefined_id_reaches_mqtt_subscriber"),
    ),
    (
        "gateway.mqttsn.predefined[].*",
        H("test_publish_on_predefined_id_reaches_mqtt_subscriber"),
    ),
    (
        "gateway.mqttsn.authentication.**",
        H("a_refused_authentication_is_connack_0x80_and_nothing_is_registered"),
    ),
];
