//! Junction's STOMP gateway: one task per connection runs STOMP 1.0 / 1.1 / 1.2 between a
//! [`junction_transport::Stream`] and the broker, through the gateway framework's
//! [`junction_gateway::GatewayCtx`] (mountpoints, client registry, counters).
//!
//! Behaviour follows EMQX's STOMP gateway (reference §5.1), except where EMQX has a bug:
//! wildcard and shared subscriptions really deliver here (deliveries are matched to their
//! STOMP subscription by subscription identifier, not by topic).

pub mod config;
mod connection;
mod gateway;

pub use config::StompConfig;
pub use connection::serve;
pub use gateway::Stomp;

/// `gateway.stomp` settings beyond the common ones.
#[derive(Debug, Clone, Default)]
pub struct StompSettings {
    /// `frame.max_headers`, `frame.max_headers_length`, `frame.max_body_length`.
    pub limits: junction_codec_stomp::Limits,
    /// The listener's own `mountpoint`, overriding the gateway's.
    pub listener_mountpoint: Option<String>,
    /// What one connection may hold.
    pub bounds: ConnBounds,
}

/// What one STOMP connection may hold (`gateway.stomp.transaction`, `max_subscriptions`).
#[derive(Debug, Clone, Copy)]
pub struct ConnBounds {
    /// `transaction.max_open`.
    pub max_transactions: usize,
    /// `transaction.max_frames`.
    pub max_tx_frames: usize,
    /// `transaction.max_bytes`: body bytes.
    pub max_tx_bytes: usize,
    /// `transaction.timeout`.
    pub tx_timeout: std::time::Duration,
    /// `max_subscriptions`.
    pub max_subscriptions: usize,
}

impl Default for ConnBounds {
    fn default() -> Self {
        ConnBounds {
            max_transactions: 16,
            max_tx_frames: 1000,
            max_tx_bytes: 1 << 20,
            tx_timeout: std::time::Duration::from_secs(60),
            max_subscriptions: 1024,
        }
    }
}
