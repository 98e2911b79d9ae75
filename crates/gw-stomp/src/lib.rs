//! Junction's STOMP gateway: STOMP 1.0 / 1.1 / 1.2 as a channel ([`StompChannel`]) of the
//! framework's stream driver, reaching the broker through
//! [`junction_gateway::GatewayCtx`] (mountpoints, client registry, counters).
//!
//! Behaviour follows EMQX's STOMP gateway (reference §5.1), except where EMQX has a bug:
//! wildcard and shared subscriptions really deliver here (deliveries are matched to their
//! STOMP subscription by subscription identifier, not by topic).

mod channel;
pub mod config;
mod gateway;

pub use channel::{StompChannel, StompOpening};
pub use config::StompConfig;
pub use gateway::Stomp;

junction_gateway::frame_types! {
    /// STOMP frame types as EMQX counts them (`packets.<type>.received|sent`).
    pub mod frame {
        CONNECT => "connect",
        SEND => "send",
        SUBSCRIBE => "subscribe",
        UNSUBSCRIBE => "unsubscribe",
        BEGIN => "begin",
        COMMIT => "commit",
        ABORT => "abort",
        ACK => "ack",
        NACK => "nack",
        DISCONNECT => "disconnect",
        HEARTBEAT => "heartbeat",
        CONNECTED => "connected",
        MESSAGE => "message",
        RECEIPT => "receipt",
        ERROR => "error",
    }
}

/// The frame type names, for [`GatewayCtx::new`].
pub const FRAMES: &[&str] = frame::NAMES;

use junction_gateway::GatewayCtx;
use junction_transport::Accepted;
use std::sync::Arc;

/// Serve one accepted connection with the framework's stream driver until it ends.
pub async fn serve(ctx: Arc<GatewayCtx>, settings: Arc<StompSettings>, accepted: Accepted) {
    let opening = StompOpening::new(ctx.clone(), settings);
    junction_gateway::driver::stream::serve(ctx, accepted, opening).await
}

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
