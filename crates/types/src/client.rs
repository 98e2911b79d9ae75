//! Client identity shared by every protocol: what hooks, authentication and authorization
//! see of a connected client (reference §1.4).

use bytestring::ByteString;
use serde::Serialize;
use std::net::SocketAddr;
use std::sync::Arc;

/// What the framework knows about a gateway client: the common fields every gateway fills,
/// plus protocol extras (`heartbeat` for STOMP, `endpoint_name` for LwM2M, …).
#[derive(Debug, Clone, Serialize)]
pub struct ClientInfo {
    /// Client id (unique within the gateway).
    pub clientid: ByteString,
    /// User name, if any.
    pub username: Option<ByteString>,
    /// Protocol name as EMQX reports it: `stomp`, `mqtt-sn`, `coap`, …
    pub protocol: &'static str,
    /// Protocol version, e.g. `1.2`.
    pub proto_ver: String,
    /// Peer address.
    pub peername: SocketAddr,
    /// Local port the client connected to.
    pub sockport: u16,
    /// Listener id `<gateway>:<type>:<name>`.
    pub listener: Arc<str>,
    /// Rendered mountpoint (empty: none).
    pub mountpoint: String,
    /// Keepalive / heart-beat interval in seconds (0: none).
    pub keepalive: u32,
    /// Clean start.
    pub clean_start: bool,
    /// Session expiry interval, seconds.
    pub expiry_interval: u32,
    /// Connection time, ms since the epoch.
    pub connected_at: u64,
    /// Set by the authenticator: superusers bypass authorization.
    pub is_superuser: bool,
    /// Protocol-specific fields.
    pub extras: serde_json::Map<String, serde_json::Value>,
}
