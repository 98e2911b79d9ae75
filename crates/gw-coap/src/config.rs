//! `gateway.coap { … }`: the CoAP gateway's section (EMQX keys, reference §5.3).

use junction_config::authn::AuthnConfig;
use junction_config::KeyStatus::{Honoured as H, Misplaced as M};
use junction_config::{ConfigError, Duration, GatewayListeners, KeyTable, ListenerType};
use serde::{Deserialize, Serialize};

/// How observe notifications are sent, `notify_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyType {
    /// Always non-confirmable.
    Non,
    /// Always confirmable (acknowledged, retransmitted).
    Con,
    /// By the delivery's QoS: 0 non-confirmable, 1 and 2 confirmable.
    Qos,
}

/// The QoS of a publish or subscription that names none, `publish_qos` and
/// `subscribe_qos`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DefaultQos {
    /// By the request: a non-confirmable one is QoS 0, a confirmable one QoS 1.
    Coap,
    /// QoS 0.
    Qos0,
    /// QoS 1.
    Qos1,
    /// QoS 2.
    Qos2,
}

/// `gateway.coap { … }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CoapConfig {
    /// Run the gateway. Default `true`.
    pub enable: bool,
    /// Refresh client statistics. Default `true`.
    pub enable_stats: bool,
    /// Time allowed from the first datagram to an admitted client. Default `"30s"`.
    pub idle_timeout: Duration,
    /// Topic prefix. Default `""`.
    pub mountpoint: String,
    /// A client is gone after 1.5 × this without a request. Default `"30s"`.
    pub heartbeat: Duration,
    /// `true`: clients open a connection (`POST /mqtt/connection`) and name it in every
    /// request; `false`: any request is served, as a client of its own address.
    /// Default `false`.
    pub connection_required: bool,
    /// How notifications are sent. Default `qos`.
    pub notify_type: NotifyType,
    /// QoS of an observation that names none. Default `coap`.
    pub subscribe_qos: DefaultQos,
    /// QoS of a publish that names none. Default `coap`.
    pub publish_qos: DefaultQos,
    /// The gateway's global authenticator (chain `coap:global`). Default none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentication: Option<AuthnConfig>,
    /// Listeners (`udp`, `dtls`). Default: `udp.default` on 5683 and `dtls.default` on
    /// 5684, which starts only with credentials (`psk_authentication` or a certificate).
    pub listeners: GatewayListeners,
}

impl Default for CoapConfig {
    fn default() -> Self {
        let mut listeners = GatewayListeners::one(ListenerType::Udp, 5683);
        listeners.dtls = GatewayListeners::one(ListenerType::Dtls, 5684).dtls;
        CoapConfig {
            enable: true,
            enable_stats: true,
            idle_timeout: Duration::from_secs(30),
            mountpoint: String::new(),
            heartbeat: Duration::from_secs(30),
            connection_required: false,
            notify_type: NotifyType::Qos,
            subscribe_qos: DefaultQos::Coap,
            publish_qos: DefaultQos::Coap,
            authentication: None,
            listeners,
        }
    }
}

impl CoapConfig {
    /// A heartbeat of at least one second.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.heartbeat.as_std() < std::time::Duration::from_secs(1) {
            return Err(ConfigError::invalid(
                "gateway.coap.heartbeat",
                "at least 1s".to_string(),
            ));
        }
        Ok(())
    }
}

/// What happens to each `gateway.coap` key.
pub const KEY_STATUS: KeyTable = &[
    ("gateway.coap.listeners.tcp.**", M("{}")),
    ("gateway.coap.listeners.ssl.**", M("{}")),
    (
        "gateway.coap.enable",
        H("test_coap_publish_reaches_mqtt_stomp_and_mqttsn_subscribers"),
    ),
    (
        "gateway.coap.enable_stats",
        H("test_coap_clients_are_listed_and_kicked_through_the_api"),
    ),
    (
        "gateway.coap.idle_timeout",
        H("test_coap_clients_are_listed_and_kicked_through_the_api"),
    ),
    (
        "gateway.coap.mountpoint",
        H("test_coap_mountpoint_prefixes_published_and_observed_topics"),
    ),
    (
        "gateway.coap.heartbeat",
        H("a_silent_client_is_gone_after_one_and_a_half_heartbeats"),
    ),
    (
        "gateway.coap.connection_required",
        H("test_coap_connection_mode_with_token_heartbeat_and_close"),
    ),
    (
        "gateway.coap.notify_type",
        H("confirmable_notifications_are_retransmitted_until_acknowledged"),
    ),
    (
        "gateway.coap.subscribe_qos",
        H("the_default_qos_follows_the_request_type_or_the_setting"),
    ),
    (
        "gateway.coap.publish_qos",
        H("the_default_qos_follows_the_request_type_or_the_setting"),
    ),
    (
        "gateway.coap.authentication.**",
        H("test_coap_connection_mode_authenticates_with_the_gateway_chain"),
    ),
];
