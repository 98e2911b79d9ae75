//! The stream driver: one task per TCP, TLS or WebSocket connection, around a protocol's
//! [`Opening`] (the handshake) and [`StreamChannel`] (the connected state machine).

use super::{CloseReason, ConnectRequest, Session};
use crate::call::{CallBox, ClientCall};
use crate::ctx::{Admission, GatewayCtx};
use bytes::BytesMut;
use junction_broker::{KickWait, Will};
use junction_transport::{Accepted, SendError, Stream};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Used when a gateway's `idle_timeout` is 0.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// What a channel has to send, and what the driver must do before sending it.
#[derive(Debug, Default)]
pub struct Output {
    /// Encoded frames, written in one batch.
    pub bytes: BytesMut,
    /// `bytes` holds an acknowledgement: the broker's ack barrier
    /// (`durable_sessions.commit_before_ack`) is awaited before it is written.
    pub ack: bool,
    /// A connection this one published to is behind (`junction_broker::Routed`): the
    /// channel stopped reading input; the driver yields, then hands it the rest.
    pub congested: bool,
}

/// Where a connection comes from, for the opening frame's [`ConnectRequest`].
#[derive(Debug, Clone)]
pub struct Peer {
    /// The peer's address.
    pub addr: SocketAddr,
    /// The listener id, `<gateway>:<type>:<name>`.
    pub listener: Arc<str>,
    /// The local port.
    pub sockport: u16,
}

/// A protocol's handshake: reads the opening frame into a [`ConnectRequest`], answers a
/// refusal, and becomes the connected [`StreamChannel`].
pub trait Opening: Send + 'static {
    /// The connected state machine.
    type Channel: StreamChannel;

    /// What to send.
    fn output(&mut self) -> &mut Output;

    /// Read the opening frame from `input` (consuming what it reads). `Ok(None)`: more
    /// bytes are needed. `Err(())`: close the connection after sending the output (a
    /// frame that is not an opening one, a version the gateway does not speak).
    #[allow(clippy::result_unit_err)]
    fn open(&mut self, input: &mut BytesMut, peer: &Peer) -> Result<Option<ConnectRequest>, ()>;

    /// The connect pipeline refused the client: write the protocol's refusal.
    fn refused(&mut self, reason: &str);

    /// The client is admitted: the connected channel, which writes its acceptance
    /// (CONNECTED, CONNACK) into its output.
    fn admitted(self, session: Session, now: Instant) -> Self::Channel;
}

/// A connected client's protocol state machine. No I/O: the driver reads, writes, and
/// says what time it is.
pub trait StreamChannel: Send + 'static {
    /// The client's session.
    fn session(&self) -> &Session;

    /// What to send.
    fn output(&mut self) -> &mut Output;

    /// Handle the whole frames in `input`, leaving an incomplete one. Stops early when it
    /// sets [`Output::congested`]; the driver yields and calls again.
    fn on_input(&mut self, input: &mut BytesMut, now: Instant) -> Result<(), CloseReason>;

    /// The session has deliveries for the client (take them from its outbox).
    fn on_deliveries(&mut self, now: Instant) -> Result<(), CloseReason>;

    /// A framework call (management API subscriptions).
    fn on_call(&mut self, call: ClientCall);

    /// The time [`StreamChannel::next_timer`] asked for has come.
    fn on_timer(&mut self, now: Instant) -> Result<(), CloseReason>;

    /// When the channel next wants [`StreamChannel::on_timer`] (heart-beats, keepalive,
    /// retries, expiries).
    fn next_timer(&self) -> Option<Instant>;

    /// When the peer's silence ends the connection, and the reason the protocol gives
    /// (keepalive, heart-beat): checked also while a write to it is blocked.
    fn silent_until(&self) -> Option<(Instant, CloseReason)>;

    /// Write what the protocol says when the connection ends for `reason` (an ERROR or a
    /// DISCONNECT), if anything.
    fn goodbye(&mut self, reason: CloseReason);

    /// The will to publish (unless another connection took over) and the session expiry
    /// interval in force, as the connection ends for `reason`.
    fn on_close(&mut self, reason: CloseReason) -> (Option<Will>, u32);

    /// Release memory a quiet connection does not need.
    fn shrink(&mut self) {}
}

/// Serve one accepted connection with the protocol whose handshake is `opening`, until
/// it ends.
pub async fn serve<O: Opening>(ctx: Arc<GatewayCtx>, accepted: Accepted, opening: O) {
    let Accepted {
        stream,
        peer,
        listener,
        sockport,
        permit,
        send_timeout,
    } = accepted;
    let peer = Peer {
        addr: peer,
        listener,
        sockport,
    };
    // The handshake and the goodbye run in boxed futures of their own: they are
    // short-lived, and keeping their state out of the long-lived task keeps idle
    // connections small.
    let Some((mut driver, calls)) =
        Box::pin(handshake(ctx, stream, peer, opening, send_timeout)).await
    else {
        return;
    };
    let reason = driver.run(calls).await;
    Box::pin(driver.finish(reason)).await;
    drop(permit);
}

/// Read the opening frame, run the connect pipeline, and answer: the connected driver, or
/// `None` when the connection was refused and closed.
async fn handshake<O: Opening>(
    ctx: Arc<GatewayCtx>,
    mut stream: Stream,
    peer: Peer,
    mut opening: O,
    send_timeout: Duration,
) -> Option<(Driver<O::Channel>, Arc<CallBox>)> {
    let mut rbuf = BytesMut::new();
    let mut opening_bytes = 0;
    let request = read_opening(
        &ctx,
        &mut stream,
        &mut rbuf,
        &mut opening,
        &peer,
        &mut opening_bytes,
    )
    .await;
    let admission = match request {
        Some(mut request) => {
            request.info.peername = peer.addr;
            request.info.sockport = peer.sockport;
            request.info.listener = peer.listener.clone();
            match ctx.connect(request).await {
                Ok(admission) => Some(admission),
                Err(refusal) => {
                    opening.refused(&refusal.reason);
                    None
                }
            }
        }
        None => None,
    };
    let Some(Admission {
        session,
        kick,
        calls,
    }) = admission
    else {
        let out = std::mem::take(&mut opening.output().bytes);
        say_goodbye(&ctx, &mut stream, &out).await;
        stream.shutdown().await;
        return None;
    };
    session
        .stats
        .recv_oct
        .fetch_add(opening_bytes, Ordering::Relaxed);
    tracing::debug!(clientid = %session.info.clientid, peer = %peer.addr, protocol = ctx.protocol, "client connected");
    let channel = opening.admitted(session, Instant::now());
    let driver = Driver {
        stream,
        rbuf,
        channel,
        kick,
        send_timeout,
        write_cut: false,
    };
    Some((driver, calls))
}

/// Write `out` as the connection's last words, counting it.
async fn say_goodbye(ctx: &GatewayCtx, stream: &mut Stream, out: &[u8]) {
    if !out.is_empty() && stream.write_goodbye(out).await {
        ctx.count_sent(out.len());
    }
}

/// Wait for the opening frame within `idle_timeout`.
async fn read_opening<O: Opening>(
    ctx: &GatewayCtx,
    stream: &mut Stream,
    rbuf: &mut BytesMut,
    opening: &mut O,
    peer: &Peer,
    bytes_read: &mut u64,
) -> Option<ConnectRequest> {
    let idle = ctx.settings().idle_timeout;
    let idle = if idle.is_zero() {
        DEFAULT_IDLE_TIMEOUT
    } else {
        idle
    };
    let deadline = Instant::now() + idle;
    loop {
        match opening.open(rbuf, peer) {
            Ok(Some(request)) => return Some(request),
            Ok(None) => {}
            Err(()) => return None,
        }
        match tokio::time::timeout_at(deadline, stream.read_buf(rbuf)).await {
            Ok(Ok(n)) if n > 0 => {
                ctx.count_received(n);
                *bytes_read += n as u64;
            }
            Ok(Ok(_)) => {
                tracing::debug!(peer = %peer.addr, "closed before the opening frame");
                return None;
            }
            Ok(Err(e)) => {
                tracing::debug!(peer = %peer.addr, error = %e, "read failed before the opening frame");
                return None;
            }
            Err(_) => {
                tracing::debug!(peer = %peer.addr, "no opening frame within idle_timeout");
                return None;
            }
        }
    }
}

/// A connected client's task.
struct Driver<C: StreamChannel> {
    stream: Stream,
    rbuf: BytesMut,
    channel: C,
    /// The kick (takeover, discard, the API, shutdown).
    kick: KickWait,
    /// `tcp_options.send_timeout`: how long a write may make no progress.
    send_timeout: Duration,
    /// A write was abandoned half done: nothing more may be written.
    write_cut: bool,
}

impl<C: StreamChannel> Driver<C> {
    /// The connection's loop, until something ends it.
    async fn run(&mut self, calls: Arc<CallBox>) -> CloseReason {
        // The acceptance, and frames that arrived together with the opening one.
        let now = Instant::now();
        if let Err(reason) = self.channel.on_input(&mut self.rbuf, now) {
            return reason;
        }
        if let Err(reason) = self.flush_and_finish_input().await {
            return reason;
        }
        // Most devices go quiet after connecting: hold no buffers until they speak.
        self.shrink();
        let far = || Instant::now() + Duration::from_secs(86400 * 365);
        let timer = tokio::time::sleep_until(self.channel.next_timer().unwrap_or_else(far));
        tokio::pin!(timer);
        let mut fired = false;
        loop {
            let step = tokio::select! {
                biased;
                kicked = self.kick.wait() => Err(CloseReason::Kicked(kicked)),
                read = self.stream.read_buf(&mut self.rbuf) => match read {
                    Ok(0) | Err(_) => Err(CloseReason::SockClosed),
                    Ok(n) => {
                        self.count_in(n);
                        self.channel.on_input(&mut self.rbuf, Instant::now())
                    }
                },
                _ = self.channel.session().cell.notified() => {
                    for call in calls.take() {
                        self.channel.on_call(call);
                    }
                    self.channel.on_deliveries(Instant::now())
                }
                _ = &mut timer => {
                    fired = true;
                    let result = self.channel.on_timer(Instant::now());
                    self.shrink();
                    result
                }
            };
            if let Err(reason) = step {
                return reason;
            }
            if let Err(reason) = self.flush_and_finish_input().await {
                return reason;
            }
            // A deadline that moved later (a heart-beat check pushed back by every frame)
            // is not re-armed: the timer fires at the earlier one, the channel finds
            // nothing due and names the later one. One early wake-up per period is cheaper
            // than re-arming on every read.
            let next = self.channel.next_timer().unwrap_or_else(far);
            if std::mem::take(&mut fired) || next < timer.deadline() {
                timer.as_mut().reset(next);
            }
        }
    }

    fn count_in(&self, n: usize) {
        self.channel.session().ctx.count_received(n);
        let stats = &self.channel.session().stats;
        stats.recv_oct.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Flush; then, while a subscriber this connection sent to is behind, yield to the
    /// scheduler before each further frame of the read buffer, so its task gets to write.
    async fn flush_and_finish_input(&mut self) -> Result<(), CloseReason> {
        self.flush().await?;
        while std::mem::take(&mut self.channel.output().congested) {
            tokio::task::yield_now().await;
            self.channel.on_input(&mut self.rbuf, Instant::now())?;
            self.flush().await?;
        }
        Ok(())
    }

    /// Write the output in one batch: after the ack barrier if it holds an
    /// acknowledgement, and within `send_timeout`, a kick and the peer's silence limit.
    async fn flush(&mut self) -> Result<(), CloseReason> {
        if std::mem::take(&mut self.channel.output().ack) {
            if let Some(barrier) = self.channel.session().ctx.ack_barrier() {
                if let Err(e) = barrier().await {
                    // Not on disk: no acknowledgement. The client resends after it
                    // reconnects.
                    tracing::error!(error = %e, "commit before acknowledging failed");
                    self.channel.output().bytes.clear();
                    return Err(CloseReason::Protocol("commit_failed"));
                }
            }
        }
        let (silent_until, silence) = match self.channel.silent_until() {
            Some((at, reason)) => (Some(at), reason),
            None => (None, CloseReason::KeepaliveTimeout),
        };
        let out = &mut self.channel.output().bytes;
        if out.is_empty() {
            return Ok(());
        }
        if self.write_cut {
            out.clear();
            return Err(CloseReason::SockClosed);
        }
        let n = out.len();
        let kick = &mut self.kick;
        let res = self
            .stream
            .send(out, self.send_timeout, || async move {
                let far = Instant::now() + Duration::from_secs(86400 * 365);
                tokio::select! {
                    kicked = kick.wait() => CloseReason::Kicked(kicked),
                    _ = tokio::time::sleep_until(silent_until.unwrap_or(far)) => silence,
                }
            })
            .await;
        out.clear();
        let reason = match res {
            Ok(()) => {
                self.channel.session().ctx.count_sent(n);
                let stats = &self.channel.session().stats;
                stats.send_oct.fetch_add(n as u64, Ordering::Relaxed);
                return Ok(());
            }
            Err(SendError::Stalled) => {
                self.channel.session().ctx.count_send_timeout();
                CloseReason::SendTimeout
            }
            Err(SendError::Closed) => CloseReason::SockClosed,
            Err(SendError::Interrupted(reason)) => reason,
        };
        // Part of the buffer may have gone: the stream is not at a frame boundary.
        self.write_cut = true;
        Err(reason)
    }

    /// Release buffer memory of a connection that has gone quiet.
    fn shrink(&mut self) {
        if self.rbuf.is_empty() && self.rbuf.capacity() > 0 {
            self.rbuf = BytesMut::new();
        }
        let out = &mut self.channel.output().bytes;
        if out.is_empty() && out.capacity() > 0 {
            *out = BytesMut::new();
        }
        self.channel.shrink();
    }

    /// Say goodbye where the protocol does, hand the session back, and close.
    async fn finish(mut self, reason: CloseReason) {
        // Unsent output (an ERROR the channel wrote before ending) goes out with the
        // goodbye.
        if reason != CloseReason::SockClosed && !self.write_cut {
            self.channel.goodbye(reason);
            let goodbye = std::mem::take(&mut self.channel.output().bytes);
            say_goodbye(&self.channel.session().ctx, &mut self.stream, &goodbye).await;
        }
        let (will, expiry) = self.channel.on_close(reason);
        self.channel
            .session()
            .ctx
            .close(self.channel.session(), reason, will, expiry);
        let _ = tokio::time::timeout(Duration::from_secs(1), self.stream.shutdown()).await;
    }
}
