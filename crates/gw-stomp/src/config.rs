//! `gateway.stomp { … }`: the STOMP gateway's section (EMQX keys, reference §5.1, plus
//! Junction's `transaction` and `max_subscriptions`).

use junction_config::authn::AuthnConfig;
use junction_config::KeyStatus::{Honoured as H, Misplaced as M};
use junction_config::{
    ByteSize, ClientInfoOverride, Duration, GatewayListeners, KeyTable, ListenerType,
};
use serde::{Deserialize, Serialize};

/// `gateway.stomp.frame { … }`: frame limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StompFrame {
    /// Most headers in one frame. Default `10`.
    pub max_headers: u32,
    /// Longest header, name plus value, in bytes. Default `1024`.
    pub max_headers_length: u32,
    /// Largest body in bytes. Default `65536`.
    pub max_body_length: u32,
}

impl Default for StompFrame {
    fn default() -> Self {
        StompFrame {
            max_headers: 10,
            max_headers_length: 1024,
            max_body_length: 65536,
        }
    }
}

/// `gateway.stomp.transaction { … }` (Junction keys; EMQX has none): what one client may
/// hold in open transactions, which defer SEND, ACK and NACK until COMMIT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StompTransaction {
    /// Most transactions open at once on one connection. Default `16`.
    pub max_open: u32,
    /// Most frames one transaction defers. Default `1000`.
    pub max_frames: u32,
    /// Most body bytes one transaction defers. Default `"1MB"`.
    pub max_bytes: ByteSize,
    /// An open transaction is aborted this long after its BEGIN. Default `"60s"`.
    pub timeout: Duration,
}

impl Default for StompTransaction {
    fn default() -> Self {
        StompTransaction {
            max_open: 16,
            max_frames: 1000,
            max_bytes: ByteSize::from_mb(1),
            timeout: Duration::from_secs(60),
        }
    }
}

/// `gateway.stomp { … }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StompConfig {
    /// Run the gateway. Default `true`.
    pub enable: bool,
    /// Refresh client statistics periodically. Default `true`.
    pub enable_stats: bool,
    /// Time from accept to the first frame. Default `"30s"`.
    pub idle_timeout: Duration,
    /// Topic prefix (placeholders `${clientid}`, `${username}`). Default `""`.
    pub mountpoint: String,
    /// Identity templates. Default none.
    pub clientinfo_override: ClientInfoOverride,
    /// Frame limits.
    pub frame: StompFrame,
    /// Transaction limits (Junction keys).
    pub transaction: StompTransaction,
    /// Junction key: most subscriptions one connection may hold (an ERROR past it).
    /// Default `1024`.
    pub max_subscriptions: u32,
    /// The gateway's global authenticator (chain `stomp:global`). Default none: clients
    /// are let in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentication: Option<AuthnConfig>,
    /// Listeners (`tcp`, `ssl`). Default: `tcp.default` on 61613.
    pub listeners: GatewayListeners,
}

impl Default for StompConfig {
    fn default() -> Self {
        StompConfig {
            enable: true,
            enable_stats: true,
            idle_timeout: Duration::from_secs(30),
            mountpoint: String::new(),
            clientinfo_override: ClientInfoOverride::default(),
            frame: StompFrame::default(),
            transaction: StompTransaction::default(),
            max_subscriptions: 1024,
            authentication: None,
            listeners: GatewayListeners::one(ListenerType::Tcp, 61613),
        }
    }
}

/// What happens to each `gateway.stomp` key.
pub const KEY_STATUS: KeyTable = &[
    ("gateway.stomp.listeners.udp.**", M("{}")),
    ("gateway.stomp.listeners.dtls.**", M("{}")),
    (
        "gateway.stomp.enable",
        H("listener_added_at_run_time_accepts_and_unload_closes_the_ports"),
    ),
    (
        "gateway.stomp.enable_stats",
        H("enable_stats_false_shows_the_counters_as_they_were_at_connect"),
    ),
    (
        "gateway.stomp.idle_timeout",
        H("frames_before_connect_close_the_connection_without_error"),
    ),
    (
        "gateway.stomp.mountpoint",
        H("stomp_send_reaches_mqtt_subscriber_under_the_mountpoint"),
    ),
    (
        "gateway.stomp.clientinfo_override.*",
        H("test_clientinfo_override_sets_client_id_and_username"),
    ),
    (
        "gateway.stomp.frame.max_headers",
        H("too_many_headers_is_a_frame_error"),
    ),
    (
        "gateway.stomp.frame.max_headers_length",
        H("a_header_over_max_headers_length_is_a_frame_error"),
    ),
    (
        "gateway.stomp.frame.max_body_length",
        H("a_body_over_max_body_length_is_a_frame_error_with_or_without_content_length"),
    ),
    (
        "gateway.stomp.transaction.*",
        H("a_stomp_transaction_over_its_limits_gets_an_error_and_an_idle_one_expires"),
    ),
    (
        "gateway.stomp.max_subscriptions",
        H("a_stomp_transaction_over_its_limits_gets_an_error_and_an_idle_one_expires"),
    ),
    (
        "gateway.stomp.authentication.**",
        H("stomp_gateway_and_listener_chains_come_from_the_config"),
    ),
];
