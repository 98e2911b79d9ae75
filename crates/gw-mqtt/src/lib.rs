//! Junction's MQTT front end: the MQTT 3.1 / 3.1.1 / 5.0 protocol as a channel
//! ([`MqttOpening`], [`MqttChannel`]) of the framework's stream driver, reaching the broker
//! through the MQTT listeners' [`GatewayCtx`] (made with [`GatewayCtx::mqtt`]).

mod channel;
mod opening;

pub use channel::MqttChannel;
pub use opening::MqttOpening;

use junction_gateway::GatewayCtx;
use junction_session::SessionLimits;
use junction_transport::Accepted;
use junction_types::QoS;
use std::sync::Arc;
use std::time::Duration;

/// MQTT protocol settings (`mqtt.*` in the config).
#[derive(Debug, Clone, PartialEq)]
pub struct MqttSettings {
    /// `mqtt.max_packet_size`: largest packet accepted, bytes.
    pub max_packet_size: u32,
    /// `mqtt.max_clientid_len`.
    pub max_clientid_len: usize,
    /// `mqtt.max_topic_levels` (0: unlimited).
    pub max_topic_levels: usize,
    /// `mqtt.max_qos_allowed`.
    pub max_qos_allowed: QoS,
    /// `mqtt.max_topic_alias` (0 disables topic aliases from clients).
    pub max_topic_alias: u16,
    /// `mqtt.retain_available`.
    pub retain_available: bool,
    /// `mqtt.wildcard_subscription`.
    pub wildcard_subscription: bool,
    /// `mqtt.shared_subscription`.
    pub shared_subscription: bool,
    /// `mqtt.idle_timeout`: time allowed between TCP accept and CONNECT.
    pub idle_timeout: Duration,
    /// `mqtt.keepalive_multiplier`: a client is dropped after keepalive × this of silence.
    pub keepalive_multiplier: f64,
    /// `mqtt.server_keepalive`: keepalive imposed on MQTT 5.0 clients.
    pub server_keepalive: Option<u16>,
    /// `mqtt.session_expiry_interval`: expiry of MQTT 3.x sessions with clean session 0, s.
    pub session_expiry_interval_v3: u32,
    /// `mqtt.max_subscriptions` (`None`: unlimited).
    pub max_subscriptions: Option<usize>,
    /// `mqtt.max_inflight`, `max_mqueue_len`, `mqueue_store_qos0`, `retry_interval`,
    /// `max_awaiting_rel`, `await_rel_timeout`.
    pub session: SessionLimits,
    /// `mqtt.response_information`, sent when a 5.0 client requests it (empty: none).
    pub response_information: String,
    /// `mqtt.message_expiry_interval`: expiry applied to messages that set none, seconds.
    pub message_expiry_interval: Option<u32>,
    /// The listener's `mountpoint` template (`${clientid}`, `${username}`, `${zone}`);
    /// empty: none.
    pub mountpoint: String,
    /// `mqtt.use_username_as_clientid`: an authenticated client with a user name takes
    /// it as its client id.
    pub use_username_as_clientid: bool,
}

impl Default for MqttSettings {
    fn default() -> Self {
        MqttSettings {
            max_packet_size: 1024 * 1024,
            max_clientid_len: 65535,
            max_topic_levels: 128,
            max_qos_allowed: QoS::ExactlyOnce,
            max_topic_alias: 65535,
            retain_available: true,
            wildcard_subscription: true,
            shared_subscription: true,
            idle_timeout: Duration::from_secs(15),
            keepalive_multiplier: 1.5,
            server_keepalive: None,
            session_expiry_interval_v3: 2 * 3600,
            max_subscriptions: None,
            session: SessionLimits::default(),
            response_information: String::new(),
            message_expiry_interval: None,
            mountpoint: String::new(),
            use_username_as_clientid: false,
        }
    }
}

/// Serve one accepted connection until it ends.
pub async fn serve(ctx: Arc<GatewayCtx>, settings: Arc<MqttSettings>, accepted: Accepted) {
    ctx.broker_metrics().connections_count.inc();
    let opening = MqttOpening::new(ctx.clone(), settings);
    junction_gateway::driver::stream::serve(ctx.clone(), accepted, opening).await;
    ctx.broker_metrics().connections_count.dec();
}

#[cfg(test)]
mod tests {
    use super::*;
    use junction_broker::Broker;
    use junction_gateway::CommonSettings;
    use junction_transport::Stream;

    #[tokio::test]
    async fn connection_task_state_stays_small() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (server, peer) = listener.accept().await.unwrap();
        let accepted = Accepted::standalone(Stream::Tcp(server), peer, "tcp:test");
        let ctx = GatewayCtx::mqtt(
            Broker::new(Default::default()),
            CommonSettings::default(),
            Arc::default(),
        );
        let fut = serve(ctx, Arc::new(MqttSettings::default()), accepted);
        let size = std::mem::size_of_val(&fut);
        eprintln!(
            "connection future: {size} bytes; channel: {}",
            std::mem::size_of::<MqttChannel>(),
        );
        drop(client);
        assert!(size < 2048, "connection future is {size} bytes");
    }
}
