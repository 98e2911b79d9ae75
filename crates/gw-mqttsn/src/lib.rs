//! Junction's MQTT-SN 1.2 gateway: a protocol of the framework's datagram driver, which
//! demultiplexes a UDP listener's datagrams by peer address to one task per client; each
//! runs the MQTT-SN channel (connect with
//! the will dialogue and `clientinfo_override`, topic registration, publish/subscribe at
//! QoS 0/1/2 with resends after `retry_interval`, re-registration when a client refuses a
//! topic id, sleeping clients) against the broker through the gateway framework's
//! [`junction_gateway::GatewayCtx`]. With `broadcast` on, the listener also sends ADVERTISE.
//!
//! Behaviour follows EMQX's MQTT-SN gateway (reference §5.2) with these deliberate choices
//! where EMQX's behaviour is a bug (reference §7.2): no will on a client DISCONNECT (spec),
//! a CONNECT on a connected client is answered with CONNACK 0 (a client that lost its
//! CONNACK retries CONNECT over UDP) instead of killing the connection, and ADVERTISE
//! carries its period in seconds (EMQX truncates 900 000 ms to 16 bits, §7.2 #10) and goes
//! out from the listener's own socket and port (EMQX: an ephemeral socket, port 1884).

mod advertise;
mod channel;
pub mod config;
mod gateway;
mod identity;
mod protocol;

pub use config::MqttSnConfig;
pub use gateway::MqttSn;
pub use protocol::frame;

/// The message type names, for [`GatewayCtx::new`].
pub const FRAMES: &[&str] = frame::NAMES;
pub use junction_gateway::driver::datagram::{DatagramListener as UdpListenerHandle, UdpSettings};

use junction_gateway::GatewayCtx;
use std::sync::Arc;

/// Bind a UDP listener `id` on `bind` and serve MQTT-SN on it with the framework's
/// datagram driver, until the returned handle is stopped or dropped.
pub async fn start_udp(
    ctx: Arc<GatewayCtx>,
    settings: Arc<MqttSnSettings>,
    id: String,
    bind: SocketAddr,
) -> std::io::Result<UdpListenerHandle> {
    let udp = settings.udp.clone();
    let protocol = Arc::new(protocol::SnProtocol::new(ctx.clone(), settings));
    junction_gateway::driver::datagram::start(ctx, protocol, id, bind, udp, None).await
}

use junction_session::SessionLimits;
use std::net::SocketAddr;
use std::time::Duration;

/// EMQX's ADVERTISE period: 15 minutes (reference §5.2 "Broadcast").
pub const ADVERTISE_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// `gateway.mqttsn` settings beyond the common ones.
#[derive(Debug, Clone)]
pub struct MqttSnSettings {
    /// `gateway_id`: the GwId of GWINFO and ADVERTISE.
    pub gateway_id: u8,
    /// Accept QoS −1 publishes.
    pub enable_qos3: bool,
    /// After a resumed session, REGISTER every non-wildcard subscribed topic before replay.
    pub subs_resume: bool,
    /// Predefined topic ids (global, 1..=1024).
    pub predefined: Vec<(u16, String)>,
    /// The listener's own `mountpoint`, overriding the gateway's.
    pub listener_mountpoint: Option<String>,
    /// `broadcast`: send ADVERTISE(gateway_id, period) when the listener starts and every
    /// `advertise_interval` after.
    pub broadcast: bool,
    /// Period of ADVERTISE; default [`ADVERTISE_INTERVAL`] (15 min).
    pub advertise_interval: Duration,
    /// Where ADVERTISE goes. `None` (the default): the IPv4 broadcast address of every
    /// local interface, on the listener's port. Set, it replaces that list (tests point it
    /// at a loopback socket).
    pub advertise_to: Option<Vec<SocketAddr>>,
    /// Session limits from the zone's `mqtt.*` keys (EMQX runs MQTT-SN sessions with the
    /// zone's `retry_interval`, `await_rel_timeout`, `max_awaiting_rel`, `max_mqueue_len`,
    /// `mqueue_store_qos0`); the in-flight window is always 1 (reference §5.2).
    pub session: SessionLimits,
    /// The UDP socket and peer-table settings of the listener (with `access_rules`).
    pub udp: UdpSettings,
}

impl Default for MqttSnSettings {
    fn default() -> Self {
        MqttSnSettings {
            gateway_id: 1,
            enable_qos3: true,
            subs_resume: false,
            predefined: Vec::new(),
            listener_mountpoint: None,
            broadcast: false,
            advertise_interval: ADVERTISE_INTERVAL,
            advertise_to: None,
            session: SessionLimits::default(),
            udp: UdpSettings::default(),
        }
    }
}
