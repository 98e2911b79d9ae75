//! Junction's MQTT-SN 1.2 gateway: a UDP listener whose datagrams are demultiplexed by peer
//! address to one task per client; each task runs the MQTT-SN state machine (connect with
//! the will dialogue, topic registration, publish/subscribe at QoS 0/1/2, sleeping clients)
//! against the broker through the gateway framework's [`junction_gateway::GatewayCtx`].
//!
//! Behaviour follows EMQX's MQTT-SN gateway (reference §5.2) with these deliberate choices
//! where EMQX's behaviour is a bug (reference §7.2): no will on a client DISCONNECT (spec),
//! and a CONNECT on a connected client is answered with CONNACK 0 (a client that lost its
//! CONNACK retries CONNECT over UDP) instead of killing the connection.

mod conn;
mod listener;

pub use listener::{start_udp, UdpListenerHandle};

/// `gateway.mqttsn` settings beyond the common ones.
#[derive(Debug, Clone)]
pub struct MqttSnSettings {
    /// Value returned in GWINFO.
    pub gateway_id: u8,
    /// Accept QoS −1 publishes.
    pub enable_qos3: bool,
    /// After a resumed session, REGISTER every non-wildcard subscribed topic before replay.
    pub subs_resume: bool,
    /// Predefined topic ids (global, 1..=1024).
    pub predefined: Vec<(u16, String)>,
    /// The listener's own `mountpoint`, overriding the gateway's.
    pub listener_mountpoint: Option<String>,
}

impl Default for MqttSnSettings {
    fn default() -> Self {
        MqttSnSettings {
            gateway_id: 1,
            enable_qos3: true,
            subs_resume: false,
            predefined: Vec::new(),
            listener_mountpoint: None,
        }
    }
}
