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

impl ClientInfo {
    /// What is known of a client whose session was restored from the data file and who has
    /// not connected since: its client id, nothing else (no user name, not a superuser, an
    /// unspecified address; `extras.restored` is true). Authorization of what such a
    /// session still publishes (a will) sees this.
    pub fn restored(clientid: ByteString) -> ClientInfo {
        let mut extras = serde_json::Map::new();
        extras.insert("restored".into(), serde_json::Value::Bool(true));
        ClientInfo {
            clientid,
            username: None,
            protocol: "",
            proto_ver: String::new(),
            peername: SocketAddr::from(([0, 0, 0, 0], 0)),
            sockport: 0,
            listener: Arc::from(""),
            mountpoint: String::new(),
            keepalive: 0,
            clean_start: false,
            expiry_interval: 0,
            connected_at: 0,
            is_superuser: false,
            extras,
        }
    }
}
