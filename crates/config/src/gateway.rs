//! Protocol gateways, `gateway.<name> { … }` (EMQX keys, reference §1.5, §5.1, §5.2).
//!
//! STOMP and MQTT-SN are typed. The other EMQX gateways (CoAP, LwM2M, ExProto, JT/T 808,
//! GB/T 32960, OCPP, NATS) are accepted as they are written, so an EMQX configuration
//! loads, and are not started until Junction implements them.

use crate::authn::AuthnConfig;
use crate::listener::{AccessRule, SslOptions, TcpOptions};
use crate::units::{infinity_or, rate_or_infinity, Bind, ByteSize, Duration};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// All gateways, `gateway { … }`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Gateways {
    /// STOMP gateway. Default: enabled on tcp 61613.
    pub stomp: StompGateway,
    /// MQTT-SN gateway. Default: enabled on udp 1884.
    pub mqttsn: MqttSnGateway,
    /// CoAP (not implemented yet; accepted and ignored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coap: Option<serde_json::Value>,
    /// LwM2M (not implemented yet; accepted and ignored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lwm2m: Option<serde_json::Value>,
    /// ExProto (not implemented yet; accepted and ignored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exproto: Option<serde_json::Value>,
    /// JT/T 808 (not implemented yet; accepted and ignored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jt808: Option<serde_json::Value>,
    /// GB/T 32960 (not implemented yet; accepted and ignored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gbt32960: Option<serde_json::Value>,
    /// OCPP (not implemented yet; accepted and ignored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ocpp: Option<serde_json::Value>,
    /// NATS (not implemented yet; accepted and ignored).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats: Option<serde_json::Value>,
}

/// `clientinfo_override { … }`: templates that replace the client's identity before
/// authentication (`${Packet.headers.login}`, `${ConnInfo.clientid}`, …).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientInfoOverride {
    /// Client id template. Default unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clientid: Option<String>,
    /// User name template. Default unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// Password template. Default unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

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
pub struct StompGateway {
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
    /// The gateway's global authenticator (chain `<protocol>:global`). Default none:
    /// clients are let in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentication: Option<AuthnConfig>,
    /// Listeners (`tcp`, `ssl`). Default: `tcp.default` on 61613.
    pub listeners: GatewayListeners,
}

impl Default for StompGateway {
    fn default() -> Self {
        StompGateway {
            enable: true,
            enable_stats: true,
            idle_timeout: Duration::from_secs(30),
            mountpoint: String::new(),
            clientinfo_override: ClientInfoOverride::default(),
            frame: StompFrame::default(),
            transaction: StompTransaction::default(),
            max_subscriptions: 1024,
            authentication: None,
            listeners: GatewayListeners::one("tcp", 61613),
        }
    }
}

/// One predefined MQTT-SN topic, `predefined = [{id = 1, topic = "a/b"}]`.
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
pub struct MqttSnGateway {
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
    /// The gateway's global authenticator (chain `<protocol>:global`). Default none:
    /// clients are let in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentication: Option<AuthnConfig>,
    /// Listeners (`udp`, `dtls`). Default: `udp.default` on 1884.
    pub listeners: GatewayListeners,
}

impl Default for MqttSnGateway {
    fn default() -> Self {
        MqttSnGateway {
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
            listeners: GatewayListeners::one("udp", 1884),
        }
    }
}

/// A gateway's listeners by type and name, `listeners.<type>.<name> { … }`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayListeners {
    /// TCP listeners.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tcp: BTreeMap<String, GatewayListener>,
    /// TLS listeners.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub ssl: BTreeMap<String, GatewayListener>,
    /// UDP listeners.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub udp: BTreeMap<String, GatewayListener>,
    /// DTLS listeners.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub dtls: BTreeMap<String, GatewayListener>,
}

impl GatewayListeners {
    fn one(kind: &str, port: u16) -> Self {
        let mut l = GatewayListeners::default();
        let listener = GatewayListener {
            bind: Some(Bind::any(port)),
            ..GatewayListener::default()
        };
        match kind {
            "tcp" => l.tcp.insert("default".into(), listener),
            _ => l.udp.insert("default".into(), listener),
        };
        l
    }

    /// Every listener as (type, name, listener).
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str, &GatewayListener)> + '_ {
        [
            ("tcp", &self.tcp),
            ("ssl", &self.ssl),
            ("udp", &self.udp),
            ("dtls", &self.dtls),
        ]
        .into_iter()
        .flat_map(|(kind, map)| map.iter().map(move |(name, l)| (kind, name.as_str(), l)))
    }
}

/// UDP socket options, `udp_options { … }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UdpOptions {
    /// Datagrams handled per wake-up. Default `100`.
    pub active_n: u32,
    /// Kernel receive buffer. Default unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recbuf: Option<ByteSize>,
    /// Kernel send buffer. Default unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sndbuf: Option<ByteSize>,
    /// User-space buffer. Default unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buffer: Option<ByteSize>,
    /// SO_REUSEADDR. Default `true`.
    pub reuseaddr: bool,
}

impl Default for UdpOptions {
    fn default() -> Self {
        UdpOptions {
            active_n: 100,
            recbuf: None,
            sndbuf: None,
            buffer: None,
            reuseaddr: true,
        }
    }
}

/// A load-balancer probe answered by a UDP listener, `health_check { request, reply }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheck {
    /// The datagram that asks.
    pub request: String,
    /// The answer.
    pub reply: String,
}

/// One gateway listener (EMQX's gateway listener keys; defaults differ from MQTT's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayListener {
    /// Start the listener. Default `true`.
    pub enable: bool,
    /// Address: a port or `"ip:port"`. Required.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind: Option<Bind>,
    /// Most concurrent connections; `None` is `"infinity"`. Default `1024`.
    #[serde(with = "infinity_or")]
    pub max_connections: Option<u64>,
    /// New connections per second; `None` is `"infinity"`. Default `1000`.
    #[serde(with = "rate_or_infinity")]
    pub max_conn_rate: Option<u64>,
    /// Acceptor tasks (accepted for compatibility; one accept loop is used). Default `16`.
    pub acceptors: u32,
    /// Peer address rules, first match wins. Default `[]` (all allowed).
    pub access_rules: Vec<AccessRule>,
    /// Overrides the gateway's mountpoint. Default unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mountpoint: Option<String>,
    /// Authenticate this listener's clients. Default `true`.
    pub enable_authn: bool,
    /// The listener's own authenticator (chain `<gateway>:<type>:<name>`), used instead
    /// of the gateway's. Default none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authentication: Option<AuthnConfig>,
    /// PROXY protocol header expected (tcp, ssl). Default `false`.
    pub proxy_protocol: bool,
    /// Wait for the PROXY header. Default `"3s"`.
    pub proxy_protocol_timeout: Duration,
    /// TCP options (tcp, ssl).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_options: Option<TcpOptions>,
    /// TLS options (ssl).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssl_options: Option<SslOptions>,
    /// UDP options (udp, dtls).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub udp_options: Option<UdpOptions>,
    /// DTLS options (dtls), kept as written until DTLS lands.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dtls_options: Option<serde_json::Value>,
    /// Load-balancer probe (udp, dtls). Default none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
}

impl Default for GatewayListener {
    fn default() -> Self {
        GatewayListener {
            enable: true,
            bind: None,
            max_connections: Some(1024),
            max_conn_rate: Some(1000),
            acceptors: 16,
            access_rules: Vec::new(),
            mountpoint: None,
            enable_authn: true,
            authentication: None,
            proxy_protocol: false,
            proxy_protocol_timeout: Duration::from_secs(3),
            tcp_options: None,
            ssl_options: None,
            udp_options: None,
            dtls_options: None,
            health_check: None,
        }
    }
}
