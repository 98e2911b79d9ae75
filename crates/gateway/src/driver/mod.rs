//! Connection drivers: what every connection of every gateway does around its protocol.
//!
//! A gateway writes a *channel*, the protocol's state machine: frames in, deliveries and
//! timers in, bytes out, and a typed [`CloseReason`] when it is done. It does no I/O and
//! reads the clock only as the driver hands it (`now`), so it is tested with scripted
//! frames and a fake clock. A *driver* owns the rest, once for every protocol: the
//! socket, read and write buffers, the opening-frame deadline, the one connect pipeline
//! ([`crate::GatewayCtx::connect`]), kicks and framework calls, timers, the broker's ack
//! barrier before acknowledgements, the yield when a subscriber is behind, buffer
//! shrinking, counters and the one close path ([`crate::GatewayCtx::close`]).
//!
//! [`stream`] drives TCP, TLS and WebSocket connections; [`datagram`] drives UDP peers,
//! in the clear or inside DTLS sessions ([`dtls`]).

pub mod datagram;
pub mod dtls;
mod peer_queue;
mod served;
pub mod stream;

use crate::client::ConnStats;
use crate::mountpoint::Mountpoint;
use junction_broker::{KickReason, SessionCell};
use junction_session::SessionLimits;
use junction_types::ClientInfo;
use std::sync::Arc;

/// Why a connection ended, with EMQX's reason names (`client.disconnected`, `$SYS`
/// events, `session.terminated`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The peer closed the connection, or it failed.
    SockClosed,
    /// The client said goodbye (DISCONNECT).
    Normal,
    /// The broker or the gateway's registry told the connection to go.
    Kicked(KickReason),
    /// Nothing arrived within two heart-beat periods (STOMP).
    HeartbeatTimeout,
    /// Nothing arrived within 1.5 keepalive periods (EMQX's gateway name).
    KeepaliveTimeout,
    /// A sleeping client did not wake within its sleep duration (MQTT-SN).
    AsleepTimeout,
    /// A write made no progress for `tcp_options.send_timeout`.
    SendTimeout,
    /// A frame the codec refused.
    FrameError,
    /// The gateway gave up retrying (MQTT-SN REGISTER).
    RetriesExhausted,
    /// The client broke a protocol rule; the name is EMQX's reason for it
    /// (`unexpected_frame`, `not_authorized`, `too_many_subscriptions`, …).
    Protocol(&'static str),
}

impl CloseReason {
    /// The reason as EMQX names it.
    pub fn as_str(&self) -> &'static str {
        match self {
            CloseReason::SockClosed => "sock_closed",
            CloseReason::Normal => "normal",
            CloseReason::Kicked(KickReason::Administrative) => "kicked",
            CloseReason::Kicked(KickReason::TakenOver) => "takenover",
            CloseReason::Kicked(KickReason::Discarded) => "discarded",
            CloseReason::Kicked(KickReason::Shutdown) => "shutdown",
            CloseReason::HeartbeatTimeout => "heartbeat_timeout",
            CloseReason::KeepaliveTimeout => "rejected_keepalive_timeout",
            CloseReason::AsleepTimeout => "asleep_timeout",
            CloseReason::SendTimeout => "send_timeout",
            CloseReason::FrameError => "frame_error",
            CloseReason::RetriesExhausted => "reached_max_retry_times",
            CloseReason::Protocol(why) => why,
        }
    }

    /// True if another connection took the session (its will is not published and its
    /// session not terminated).
    pub fn taken_over(&self) -> bool {
        matches!(
            self,
            CloseReason::Kicked(KickReason::TakenOver | KickReason::Discarded)
        )
    }
}

/// What a client asks for in its opening frame(s), for the connect pipeline.
#[derive(Debug)]
pub struct ConnectRequest {
    /// The client as the protocol describes it: client id (after `clientinfo_override`),
    /// user name, protocol version, keepalive, `clean_start`, `expiry_interval`, extras.
    /// The driver fills in the peer, the port and the listener.
    pub info: ClientInfo,
    /// The password to authenticate with, if any (octets: MQTT's is binary data).
    pub password: Option<bytes::Bytes>,
    /// The listener's own mountpoint template, overriding the gateway's.
    pub listener_mountpoint: Option<String>,
    /// The session's limits (the zone's, adjusted by the protocol).
    pub limits: SessionLimits,
    /// The protocol has already established who this is, and no authentication runs
    /// (`info.is_superuser` is kept): an MQTT-SN PINGREQ naming a client, from the address
    /// that client's CONNECT authenticated from, waking its session.
    pub resume: bool,
}

/// An admitted client: its session and identity, as the connect pipeline left them.
#[derive(Debug)]
pub struct Session {
    /// The gateway the client is connected to.
    pub ctx: Arc<crate::GatewayCtx>,
    /// The client (mountpoint rendered, `is_superuser` from authentication).
    pub info: Arc<ClientInfo>,
    /// Its broker session.
    pub cell: Arc<SessionCell>,
    /// Its mountpoint.
    pub mountpoint: Mountpoint,
    /// The connection's id in the broker.
    pub conn_id: u64,
    /// A session was resumed.
    pub session_present: bool,
    /// The connection's counters (shared with the registry).
    pub stats: Arc<ConnStats>,
}

impl Session {
    /// The client acknowledged delivery `packet_id` (a PUBACK, a CoAP ACK of a
    /// confirmable notification, a command the gateway took over): its in-flight slot is
    /// freed, `message.acked` runs, and the next queued message moves into the outbox.
    /// True if a slot was freed (the caller then sends what the outbox holds).
    pub fn ack_delivery(&self, packet_id: u16) -> bool {
        let r = self.cell.lock().session.puback(packet_id);
        let junction_session::AckResult::Completed(d) = r else {
            return false;
        };
        self.ctx.acked(&self.info, Some(&d.message));
        let mut dropped = Vec::new();
        {
            let mut guard = self.cell.lock();
            let st = &mut *guard;
            st.session
                .dequeue(junction_types::now_ms(), &mut st.outbox, &mut dropped);
        }
        self.ctx.count_dropped(dropped);
        true
    }
}
