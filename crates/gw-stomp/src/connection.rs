//! One STOMP connection: CONNECT handshake, then the frame loop.
//!
//! The task reads frames, acts on them through the gateway context, and writes everything
//! it has to send (receipts, errors, deliveries drained from the session's outbox,
//! heart-beats) in one write per wake-up.

use crate::StompSettings;
use bytes::BytesMut;
use bytestring::ByteString;
use junction_broker::hooks::Action;
use junction_broker::{Close, KickReason, KickWait, SessionCell};
use junction_codec_stomp::{encode, encode_heartbeat, Command, Decoder, Frame, Item, Version};
use junction_gateway::{
    CallError, ClientCall, ClientInfo, ConnStats, GatewayCtx, Mountpoint, SubscriptionInfo,
};
use junction_session::{Delivery, Outbound, SubOptions};
use junction_transport::{Accepted, SendError, Stream};
use junction_types::{now_ms, MessageProperties, QoS};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Time allowed for the first frame when the gateway sets no `idle_timeout`.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest heart-beat period honoured, ms.
const MAX_HEARTBEAT_MS: u64 = 86_400_000;
/// Headers of a MESSAGE the server sets itself; a carried header of that name is skipped.
const RESERVED_OUT: [&str; 6] = [
    "subscription",
    "message-id",
    "destination",
    "content-type",
    "ack",
    "content-length",
];

/// How a connection ended.
#[derive(Debug)]
enum Exit {
    /// The peer closed the stream (or it failed).
    Closed,
    /// DISCONNECT received.
    Disconnected,
    /// An ERROR frame (already in the write buffer, or none when `EMQX` closes silently)
    /// ends the connection; the text is the disconnect reason.
    Error(&'static str),
    /// No inbound traffic for two heart-beat periods.
    HeartbeatTimeout,
    /// The broker or the registry told us to go.
    Kicked(KickReason),
}

type Flow<T = ()> = Result<T, Exit>;

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Serve one accepted connection until it ends.
pub async fn serve(ctx: Arc<GatewayCtx>, settings: Arc<StompSettings>, accepted: Accepted) {
    let Accepted {
        mut stream,
        peer,
        listener,
        sockport,
        permit,
        send_timeout,
    } = accepted;
    let stats = Arc::new(ConnStats::default());
    let mut rbuf = BytesMut::new();
    let mut decoder = Decoder::new(Version::V1_2, settings.limits);
    // The handshake and the goodbye run in boxed futures of their own: they are short-lived,
    // and keeping their state out of the long-lived task keeps idle connections small.
    let connect = match Box::pin(read_connect(
        &ctx,
        &stats,
        &mut decoder,
        &mut stream,
        &mut rbuf,
    ))
    .await
    {
        Some(f) => f,
        None => {
            stream.shutdown().await;
            return;
        }
    };
    let accepted = Box::pin(Conn::accept(Handshake {
        ctx,
        settings,
        stream,
        peer,
        listener,
        sockport,
        rbuf,
        decoder,
        stats,
        connect,
        send_timeout,
    }))
    .await;
    let Some((mut conn, calls_rx)) = accepted else {
        return;
    };
    tracing::debug!(clientid = %conn.info.clientid, %peer, "stomp client connected");
    let exit = conn.run(calls_rx).await;
    Box::pin(conn.finish(exit)).await;
    drop(permit);
}

/// Wait for the first frame, which must be CONNECT or STOMP, within `idle_timeout`.
/// Anything else (or a frame error) closes the connection without an ERROR frame.
async fn read_connect(
    ctx: &GatewayCtx,
    stats: &ConnStats,
    decoder: &mut Decoder,
    stream: &mut Stream,
    rbuf: &mut BytesMut,
) -> Option<Frame> {
    let idle = ctx.settings().idle_timeout;
    let idle = if idle.is_zero() {
        DEFAULT_IDLE_TIMEOUT
    } else {
        idle
    };
    let deadline = Instant::now() + idle;
    loop {
        loop {
            match decoder.decode(rbuf) {
                Ok(Some(Item::HeartBeat)) => {}
                Ok(Some(Item::Frame(f)))
                    if matches!(f.command, Command::Connect | Command::Stomp) =>
                {
                    inc(&stats.recv_pkt);
                    ctx.metrics.inc("packets.connect.received");
                    return Some(f);
                }
                Ok(Some(Item::Frame(f))) => {
                    tracing::debug!(command = %f.command, "first frame is not CONNECT");
                    return None;
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "bad first frame");
                    return None;
                }
            }
        }
        match tokio::time::timeout_at(deadline, stream.read_buf(rbuf)).await {
            Ok(Ok(n)) if n > 0 => {
                ctx.metrics.add("bytes.received", n as u64);
                stats.recv_oct.fetch_add(n as u64, Ordering::Relaxed);
            }
            Ok(Ok(_)) => {
                tracing::debug!("closed before CONNECT");
                return None;
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "read failed before CONNECT");
                return None;
            }
            Err(_) => {
                tracing::debug!("no CONNECT within idle_timeout");
                return None;
            }
        }
    }
}

/// The negotiated version: `accept-version` absent means 1.0, else the highest listed
/// version this server speaks.
fn negotiate(accept_version: Option<&str>) -> Option<Version> {
    let Some(list) = accept_version else {
        return Some(Version::V1_0);
    };
    list.split(',')
        .filter_map(|v| match v.trim() {
            "1.0" => Some(Version::V1_0),
            "1.1" => Some(Version::V1_1),
            "1.2" => Some(Version::V1_2),
            _ => None,
        })
        .max()
}

/// `heart-beat:<cx>,<cy>` (default and on anything unparsable: `0,0`). Periods are capped
/// at a day so that timer arithmetic cannot overflow.
fn parse_heartbeat(h: Option<&str>) -> (u64, u64) {
    let Some((cx, cy)) = h.and_then(|h| h.split_once(',')) else {
        return (0, 0);
    };
    match (cx.trim().parse::<u64>(), cy.trim().parse::<u64>()) {
        (Ok(cx), Ok(cy)) => (cx.min(MAX_HEARTBEAT_MS), cy.min(MAX_HEARTBEAT_MS)),
        _ => (0, 0),
    }
}

/// The options of a STOMP SUBSCRIBE: QoS 0, retained messages on a new subscription; the
/// broker's subscription id is the index that finds the STOMP subscription on delivery.
fn stomp_sub_options(index: u32) -> SubOptions {
    SubOptions {
        qos: QoS::AtMostOnce,
        no_local: false,
        retain_as_published: false,
        retain_handling: 1,
        subscription_id: Some(index),
    }
}

/// Everything the handshake needs.
struct Handshake {
    ctx: Arc<GatewayCtx>,
    settings: Arc<StompSettings>,
    stream: Stream,
    peer: SocketAddr,
    listener: Arc<str>,
    sockport: u16,
    rbuf: BytesMut,
    decoder: Decoder,
    stats: Arc<ConnStats>,
    connect: Frame,
    send_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AckMode {
    Auto,
    Client,
    ClientIndividual,
}

/// A STOMP subscription.
#[derive(Debug)]
struct Sub {
    /// The client's `id`.
    id: ByteString,
    /// The client's `destination` (unmounted filter).
    destination: ByteString,
    ack: AckMode,
    /// The subscription identifier given to the broker: deliveries carry it back.
    index: u32,
}

/// An open transaction: deferred SEND / ACK / NACK frames.
#[derive(Debug)]
struct Tx {
    id: ByteString,
    /// Aborted at this time (`transaction.timeout` after BEGIN).
    expires: Instant,
    actions: Vec<Frame>,
    /// Body bytes of `actions`.
    bytes: usize,
}

/// A connected STOMP client.
struct Conn {
    ctx: Arc<GatewayCtx>,
    stream: Stream,
    rbuf: BytesMut,
    wbuf: BytesMut,
    decoder: Decoder,
    conn_id: u64,
    info: Box<ClientInfo>,
    stats: Arc<ConnStats>,
    cell: Arc<SessionCell>,
    mountpoint: Mountpoint,
    subs: Vec<Sub>,
    next_sub_index: u32,
    last_message_id: u64,
    txs: Vec<Tx>,
    /// Server → client heart-beat period (the client's `cy`).
    send_every: Option<Duration>,
    /// Close when nothing arrived for this long (twice the client's `cx`).
    recv_within: Option<Duration>,
    last_recv: Instant,
    scratch: Vec<Outbound>,
    /// A connection this one sent to is behind (`junction_broker::Routed::congested`):
    /// stop decoding and let it write before handling the rest of the read buffer.
    congested: bool,
    /// The broker's kick (takeover, shutdown).
    kick: KickWait,
    /// The gateway registry's kick (a second connection with this client id, the API).
    evict: KickWait,
    /// `tcp_options.send_timeout`: how long a write may make no progress.
    send_timeout: Duration,
    /// A write was abandoned half done: nothing more may be written.
    write_cut: bool,
    /// What this connection may hold.
    bounds: crate::ConnBounds,
}

type Accept = (Conn, mpsc::Receiver<ClientCall>);

impl Conn {
    /// Negotiate, authenticate, open the session and answer CONNECTED. `None`: refused and
    /// closed.
    async fn accept(h: Handshake) -> Option<Accept> {
        let Handshake {
            ctx,
            settings,
            mut stream,
            peer,
            listener,
            sockport,
            rbuf,
            mut decoder,
            stats,
            connect,
            send_timeout,
        } = h;
        let refuse = |reason: &str| {
            let mut out = BytesMut::new();
            let f = Frame::new(Command::Error).with_body(format!("Login Failed: {reason}"));
            encode(&f, Version::V1_0, &mut out);
            out
        };
        let Some(version) = negotiate(connect.header("accept-version")) else {
            let out = refuse("Supported protocol versions < 1.2");
            let _ = stream.write_all(&out).await;
            ctx.metrics.inc("packets.error.sent");
            ctx.metrics.add("bytes.sent", out.len() as u64);
            stream.shutdown().await;
            return None;
        };
        let (cx, cy) = parse_heartbeat(connect.header("heart-beat"));
        // `clientinfo_override` templates (reference §1.6); EMQX's defaults are a random
        // client id, `${Packet.headers.login}` and `${Packet.headers.passcode}`.
        let common = ctx.settings();
        let lookup = |path: &str| {
            path.strip_prefix("Packet.headers.")
                .and_then(|h| connect.header(h))
                .map(str::to_string)
        };
        let rendered = |template: &Option<String>| {
            template
                .as_deref()
                .map(|t| junction_gateway::mountpoint::render_override(t, lookup))
        };
        let clientid = rendered(&common.override_clientid)
            .filter(|id| !id.is_empty())
            .map(ByteString::from)
            .unwrap_or_else(|| ByteString::from(format!("{:016x}", rand::random::<u64>())));
        let username = match rendered(&common.override_username) {
            Some(u) => Some(u).filter(|u| !u.is_empty()).map(ByteString::from),
            None => connect.header("login").map(ByteString::from),
        };
        let password = match rendered(&common.override_password) {
            Some(p) => Some(p),
            None => connect.header("passcode").map(str::to_string),
        };
        let mut extras = serde_json::Map::new();
        extras.insert(
            "heartbeat".into(),
            serde_json::json!({ "incoming": cx, "outgoing": cy }),
        );
        let mut info = ClientInfo {
            clientid: clientid.clone(),
            username,
            protocol: ctx.protocol,
            proto_ver: version.as_str().to_string(),
            peername: peer,
            sockport,
            listener,
            mountpoint: String::new(),
            keepalive: cx.div_ceil(1000).min(u32::MAX as u64) as u32,
            clean_start: true,
            expiry_interval: 0,
            connected_at: now_ms(),
            is_superuser: false,
            extras,
        };
        let admitted = match ctx.client_connect(&info) {
            Ok(()) => ctx
                .authenticate(&mut info, password.as_deref().map(str::as_bytes))
                .await
                .map(|_expire_at| ()),
            Err(reason) => Err(reason),
        };
        // A client id or user name that would widen or move the mountpoint is refused.
        let admitted = admitted.and_then(|()| {
            ctx.mountpoint_for(
                settings.listener_mountpoint.as_deref(),
                &clientid,
                info.username.as_deref(),
            )
            .map_err(|_| "client_identifier_not_valid".to_string())
        });
        let mountpoint = match admitted {
            Ok(mountpoint) => mountpoint,
            Err(reason) => {
                ctx.connack(&info, &reason);
                let out = refuse(&reason);
                let _ = stream.write_all(&out).await;
                ctx.metrics.inc("packets.error.sent");
                ctx.metrics.add("bytes.sent", out.len() as u64);
                stream.shutdown().await;
                return None;
            }
        };
        decoder.version = version;
        info.mountpoint = mountpoint.as_str().to_string();
        let conn_id = ctx.broker.next_conn_id();
        let (kick_tx, kick_rx) = oneshot::channel();
        let opened = ctx.open_session(&clientid, true, 0, common.session, conn_id, kick_tx);
        ctx.session_opened(&info, opened.session_present);
        let (registry_rx, calls_rx) = ctx.admit(&info, stats.clone(), conn_id);
        let mut conn = Conn {
            ctx,
            stream,
            rbuf,
            wbuf: BytesMut::new(),
            decoder,
            conn_id,
            info: Box::new(info),
            stats,
            cell: opened.cell,
            mountpoint,
            subs: Vec::new(),
            next_sub_index: 1,
            last_message_id: 0,
            txs: Vec::new(),
            congested: false,
            send_every: (cy > 0).then(|| Duration::from_millis(cy)),
            recv_within: (cx > 0).then(|| Duration::from_millis(cx.saturating_mul(2))),
            last_recv: Instant::now(),
            scratch: Vec::new(),
            kick: KickWait::new(kick_rx),
            evict: KickWait::new(registry_rx),
            send_timeout,
            write_cut: false,
            bounds: settings.bounds,
        };
        let connected = Frame::new(Command::Connected)
            .with_header("version", version.as_str())
            .with_header("heart-beat", format!("{cy},{cx}"))
            .with_header(
                "server",
                concat!("junction-stomp/", env!("CARGO_PKG_VERSION")),
            );
        conn.write_frame(&connected, "packets.connected.sent");
        Some((conn, calls_rx))
    }

    fn write_frame(&mut self, f: &Frame, counter: &'static str) {
        encode(f, self.decoder.version, &mut self.wbuf);
        self.ctx.metrics.inc(counter);
        inc(&self.stats.send_pkt);
    }

    /// Queue an ERROR frame (`content-type:text/plain`, `receipt-id` if given).
    fn error_frame(&mut self, text: String, receipt: Option<&str>) {
        let mut f = Frame::new(Command::Error).with_header("content-type", "text/plain");
        if let Some(r) = receipt {
            f = f.with_header("receipt-id", r);
        }
        f.body = text.into();
        self.write_frame(&f, "packets.error.sent");
    }

    /// Queue an ERROR frame and end the connection.
    fn fail<T>(&mut self, text: String, receipt: Option<&str>, why: &'static str) -> Flow<T> {
        self.error_frame(text, receipt);
        Err(Exit::Error(why))
    }

    /// Queue a RECEIPT if the frame asked for one.
    fn receipt(&mut self, f: &Frame) {
        if let Some(r) = f.header("receipt") {
            let r = ByteString::from(r);
            let receipt = Frame::new(Command::Receipt).with_header("receipt-id", r);
            self.write_frame(&receipt, "packets.receipt.sent");
        }
    }

    async fn flush(&mut self) -> Flow {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        if self.write_cut {
            self.wbuf.clear();
            return Err(Exit::Closed);
        }
        let n = self.wbuf.len();
        // A client that stopped reading blocks the write: kicks and the heart-beat check
        // still end the connection, and a write that makes no progress for `send_timeout`
        // does.
        let silent_until = self.recv_within.map(|w| self.last_recv + w);
        let (kick, evict) = (&mut self.kick, &mut self.evict);
        let res = self
            .stream
            .send(&self.wbuf, self.send_timeout, || async move {
                let far = Instant::now() + Duration::from_secs(86400 * 365);
                tokio::select! {
                    kicked = kick.wait() => Exit::Kicked(kicked),
                    kicked = evict.wait() => Exit::Kicked(kicked),
                    _ = tokio::time::sleep_until(silent_until.unwrap_or(far)) => Exit::HeartbeatTimeout,
                }
            })
            .await;
        self.wbuf.clear();
        let exit = match res {
            Ok(()) => {
                self.ctx.metrics.add("bytes.sent", n as u64);
                self.stats.send_oct.fetch_add(n as u64, Ordering::Relaxed);
                return Ok(());
            }
            Err(SendError::Stalled) => {
                self.ctx.metrics.inc("send.timeout");
                Exit::Error("send_timeout")
            }
            Err(SendError::Closed) => Exit::Closed,
            Err(SendError::Interrupted(exit)) => exit,
        };
        // Part of the buffer may have gone: the stream is not at a frame boundary.
        self.write_cut = true;
        Err(exit)
    }

    /// When the heart-beat timer must next fire.
    fn next_timer(&self, next_send: Option<Instant>) -> Instant {
        let far = Instant::now() + Duration::from_secs(86400 * 365);
        let check = self.recv_within.map(|w| self.last_recv + w);
        let tx_due = self.txs.iter().map(|t| t.expires).min();
        [next_send, check, tx_due]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(far)
    }

    /// Abort the transactions whose time is up (`transaction.timeout`).
    fn expire_transactions(&mut self, now: Instant) {
        let before = self.txs.len();
        self.txs.retain(|t| t.expires > now);
        let expired = before - self.txs.len();
        if expired > 0 {
            tracing::debug!(clientid = %self.info.clientid, expired, "stomp transactions timed out");
            self.ctx.metrics.add("transactions.expired", expired as u64);
        }
    }

    /// The frame loop.
    async fn run(&mut self, mut calls_rx: mpsc::Receiver<ClientCall>) -> Exit {
        // CONNECTED, and frames that arrived together with CONNECT.
        if let Err(e) = self.process_input() {
            return e;
        }
        if let Err(e) = self.flush_and_finish_input().await {
            return e;
        }
        // Most devices go quiet after connecting: hold no buffers until they speak.
        self.shrink_idle_buffers();
        let mut next_send = self.send_every.map(|d| Instant::now() + d);
        let timer = tokio::time::sleep_until(self.next_timer(next_send));
        tokio::pin!(timer);
        loop {
            let step: Flow = tokio::select! {
                biased;
                kicked = self.kick.wait() => Err(Exit::Kicked(kicked)),
                kicked = self.evict.wait() => Err(Exit::Kicked(kicked)),
                read = self.stream.read_buf(&mut self.rbuf) => match read {
                    Ok(0) | Err(_) => Err(Exit::Closed),
                    Ok(n) => {
                        self.ctx.metrics.add("bytes.received", n as u64);
                        self.stats.recv_oct.fetch_add(n as u64, Ordering::Relaxed);
                        self.last_recv = Instant::now();
                        self.process_input()
                    }
                },
                _ = self.cell.notified() => {
                    self.drain_outbox();
                    Ok(())
                }
                Some(call) = calls_rx.recv() => {
                    self.on_call(call);
                    Ok(())
                }
                _ = &mut timer => {
                    let now = Instant::now();
                    if self.recv_within.is_some_and(|w| now >= self.last_recv + w) {
                        return Exit::HeartbeatTimeout;
                    }
                    self.expire_transactions(now);
                    if let (Some(at), Some(every)) = (next_send, self.send_every) {
                        if now >= at {
                            encode_heartbeat(&mut self.wbuf);
                            self.ctx.metrics.inc("packets.heartbeat.sent");
                            inc(&self.stats.send_pkt);
                            // Keep the cadence, but do not burst after a stall.
                            next_send = Some((at + every).max(now + every / 2));
                        }
                    }
                    timer.as_mut().reset(self.next_timer(next_send));
                    self.shrink_idle_buffers();
                    Ok(())
                }
            };
            if let Err(e) = step {
                return e;
            }
            if let Err(e) = self.flush_and_finish_input().await {
                return e;
            }
            // A BEGIN may have brought a transaction's timeout nearer.
            if let Some(expires) = self.txs.iter().map(|t| t.expires).min() {
                if expires < timer.deadline() {
                    timer.as_mut().reset(expires);
                }
            }
        }
    }

    /// Flush; then, while a subscriber this connection sends to is behind, yield to the scheduler
    /// before each further frame of the read buffer, so its task gets to write (as the
    /// MQTT connection does).
    async fn flush_and_finish_input(&mut self) -> Flow {
        self.flush().await?;
        while std::mem::take(&mut self.congested) {
            tokio::task::yield_now().await;
            self.process_input()?;
            self.flush().await?;
        }
        Ok(())
    }

    /// Release buffer memory of a connection that has gone quiet.
    fn shrink_idle_buffers(&mut self) {
        if self.rbuf.is_empty() && self.rbuf.capacity() > 0 {
            self.rbuf = BytesMut::new();
        }
        if self.wbuf.is_empty() && self.wbuf.capacity() > 0 {
            self.wbuf = BytesMut::new();
        }
    }

    /// Decode and handle every whole frame in the read buffer.
    fn process_input(&mut self) -> Flow {
        loop {
            match self.decoder.decode(&mut self.rbuf) {
                Ok(Some(Item::HeartBeat)) => {
                    self.ctx.metrics.inc("packets.heartbeat.received");
                    inc(&self.stats.recv_pkt);
                }
                Ok(Some(Item::Frame(f))) => {
                    inc(&self.stats.recv_pkt);
                    self.handle(f)?;
                    if self.congested {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(clientid = %self.info.clientid, error = %e, "frame error");
                    self.rbuf.clear();
                    return self.fail(
                        format!("Frame error: {}", e.emqx_reason()),
                        None,
                        "frame_error",
                    );
                }
            }
        }
        self.drain_outbox();
        Ok(())
    }

    fn handle(&mut self, f: Frame) -> Flow {
        let m = &self.ctx.metrics;
        match f.command {
            Command::Send => {
                m.inc("packets.send.received");
                self.on_send(f)
            }
            Command::Subscribe => {
                m.inc("packets.subscribe.received");
                self.on_subscribe(&f)
            }
            Command::Unsubscribe => {
                m.inc("packets.unsubscribe.received");
                self.on_unsubscribe(&f);
                Ok(())
            }
            Command::Ack | Command::Nack => {
                m.inc(if f.command == Command::Ack {
                    "packets.ack.received"
                } else {
                    "packets.nack.received"
                });
                // Accepted without effect: QoS 0 deliveries are never redelivered.
                match f.header("transaction").map(ByteString::from) {
                    Some(tx) => self.defer(tx, f),
                    None => {
                        self.receipt(&f);
                        Ok(())
                    }
                }
            }
            Command::Begin => {
                m.inc("packets.begin.received");
                self.on_begin(&f)
            }
            Command::Commit => {
                m.inc("packets.commit.received");
                self.on_commit(&f)
            }
            Command::Abort => {
                m.inc("packets.abort.received");
                self.on_abort(&f);
                Ok(())
            }
            Command::Disconnect => {
                m.inc("packets.disconnect.received");
                self.receipt(&f);
                Err(Exit::Disconnected)
            }
            Command::Connect | Command::Stomp => {
                // A second CONNECT terminates the connection (EMQX: unhandled).
                m.inc("packets.connect.received");
                Err(Exit::Error("unexpected_connect"))
            }
            Command::Connected | Command::Message | Command::Receipt | Command::Error => {
                let text = format!("Unexpected frame {}", f.command);
                self.fail(text, f.header("receipt"), "unexpected_frame")
            }
        }
    }

    fn on_send(&mut self, f: Frame) -> Flow {
        match f.header("transaction").map(ByteString::from) {
            Some(tx) => self.defer(tx, f),
            None => {
                self.publish(&f)?;
                self.receipt(&f);
                Ok(())
            }
        }
    }

    /// Publish a SEND frame.
    fn publish(&mut self, f: &Frame) -> Flow {
        let receipt = f.header("receipt");
        let Some(dest) = f.header("destination") else {
            return self.fail(
                "Frame error: missing destination header".into(),
                receipt,
                "missing_destination",
            );
        };
        if self.ctx.check_topic_name(dest).is_err() {
            let text = format!("Invalid destination {dest}");
            return self.fail(text, receipt, "invalid_destination");
        }
        if !self.ctx.authorize_publish(&self.info, dest) {
            let text = format!("Insufficient permissions for {dest}");
            return self.fail(text, receipt, "not_authorized");
        }
        let mut props = MessageProperties::default();
        for (name, value) in &f.headers {
            match &**name {
                "destination" | "content-length" | "transaction" | "receipt" => {}
                "content-type" => {
                    if props.content_type.is_none() {
                        props.content_type = Some(value.clone());
                    }
                }
                // Duplicate headers: the first one wins.
                _ if props.user_properties.iter().any(|(n, _)| n == name) => {}
                _ => props.user_properties.push((name.clone(), value.clone())),
            }
        }
        inc(&self.stats.recv_msg);
        let routed = self.ctx.publish(
            &self.info,
            &self.mountpoint,
            dest,
            f.body.clone(),
            QoS::AtMostOnce,
            false,
            props,
        );
        self.congested |= routed.congested;
        Ok(())
    }

    /// Add a SEND / ACK / NACK to a transaction, within `transaction.max_frames` and
    /// `max_bytes` (past them: ERROR and close).
    fn defer(&mut self, tx: ByteString, f: Frame) -> Flow {
        match self.txs.iter().position(|t| t.id == tx) {
            Some(i) => {
                let t = &self.txs[i];
                if t.actions.len() >= self.bounds.max_tx_frames
                    || t.bytes + f.body.len() > self.bounds.max_tx_bytes
                {
                    let text = format!(
                        "Transaction {tx} is over its limit ({} frames, {} bytes)",
                        self.bounds.max_tx_frames, self.bounds.max_tx_bytes
                    );
                    return self.fail(text, f.header("receipt"), "transaction_too_large");
                }
                self.receipt(&f);
                let t = &mut self.txs[i];
                t.bytes += f.body.len();
                t.actions.push(f);
            }
            None => {
                self.error_frame(format!("Transaction {tx} not found"), f.header("receipt"));
            }
        }
        Ok(())
    }

    fn on_begin(&mut self, f: &Frame) -> Flow {
        let Some(tx) = f.header("transaction") else {
            self.error_frame(
                "Frame error: missing transaction header".into(),
                f.header("receipt"),
            );
            return Ok(());
        };
        let now = Instant::now();
        self.expire_transactions(now);
        if self.txs.iter().any(|t| t.id == tx) {
            self.error_frame(
                format!("Transaction {tx} already started"),
                f.header("receipt"),
            );
            return Ok(());
        }
        if self.txs.len() >= self.bounds.max_transactions {
            let text = format!(
                "Too many transactions: at most {} open",
                self.bounds.max_transactions
            );
            return self.fail(text, f.header("receipt"), "too_many_transactions");
        }
        self.txs.push(Tx {
            id: ByteString::from(tx),
            expires: now + self.bounds.tx_timeout,
            actions: Vec::new(),
            bytes: 0,
        });
        self.receipt(f);
        Ok(())
    }

    fn take_tx(&mut self, f: &Frame) -> Option<Tx> {
        let tx = f.header("transaction").unwrap_or("");
        match self.txs.iter().position(|t| t.id == tx) {
            Some(i) => Some(self.txs.remove(i)),
            None => {
                self.error_frame(format!("Transaction {tx} not found"), f.header("receipt"));
                None
            }
        }
    }

    fn on_commit(&mut self, f: &Frame) -> Flow {
        let Some(tx) = self.take_tx(f) else {
            return Ok(());
        };
        for action in &tx.actions {
            if action.command == Command::Send {
                self.publish(action)?;
            }
        }
        self.receipt(f);
        Ok(())
    }

    fn on_abort(&mut self, f: &Frame) {
        if self.take_tx(f).is_some() {
            self.receipt(f);
        }
    }

    fn on_subscribe(&mut self, f: &Frame) -> Flow {
        let receipt = f.header("receipt");
        let Some(dest) = f.header("destination") else {
            return self.fail(
                "Frame error: missing destination header".into(),
                receipt,
                "missing_destination",
            );
        };
        // STOMP 1.0 makes `id` optional: the destination stands in for it.
        let id = f.header("id").unwrap_or(dest);
        let ack = match f.header("ack") {
            None | Some("auto") => AckMode::Auto,
            Some("client") => AckMode::Client,
            Some("client-individual") => AckMode::ClientIndividual,
            Some(other) => {
                let text = format!("Frame error: invalid ack mode {other}");
                return self.fail(text, receipt, "invalid_ack_mode");
            }
        };
        if self.subs.len() >= self.bounds.max_subscriptions {
            let text = format!(
                "Too many subscriptions: at most {}",
                self.bounds.max_subscriptions
            );
            return self.fail(text, receipt, "too_many_subscriptions");
        }
        if self.subs.iter().any(|s| s.id == id) {
            let text = format!("Subscription id {id} is in used");
            return self.fail(text, receipt, "subscription_id_inused");
        }
        if self.subs.iter().any(|s| s.destination == dest) {
            let text = format!("Topic {dest} already in subscribed");
            return self.fail(text, receipt, "topic_already_subscribed");
        }
        if self.ctx.check_filter(dest).is_err() {
            let text = format!("Invalid destination {dest}");
            return self.fail(text, receipt, "invalid_destination");
        }
        let index = self.next_sub_index;
        self.next_sub_index = self.next_sub_index.checked_add(1).unwrap_or(1);
        let opts = stomp_sub_options(index);
        // `client.subscribe` may rewrite or refuse the filter (reference §1.10).
        let requested = vec![(dest.to_string(), opts)];
        let Some((filter, opts)) = self.ctx.client_subscribe(&self.info, requested).pop() else {
            let text = format!("The client.subscribe hook blocked the {dest} subscription request");
            return self.fail(text, receipt, "hook_blocked");
        };
        let dest = filter.as_str();
        if !self
            .ctx
            .authorize(&self.info, Action::Subscribe { qos: opts.qos }, dest)
        {
            let text = format!("Insufficient permissions for {dest}");
            return self.fail(text, receipt, "not_authorized");
        }
        // The subscription is known before the broker can deliver to it (retained
        // messages are queued during `subscribe`).
        self.subs.push(Sub {
            id: ByteString::from(id),
            destination: ByteString::from(dest),
            ack,
            index,
        });
        if self
            .ctx
            .subscribe(&self.info, &self.cell, &self.mountpoint, dest, opts)
            .is_err()
        {
            self.subs.pop();
            let text = format!("Invalid destination {dest}");
            return self.fail(text, receipt, "invalid_destination");
        }
        self.receipt(f);
        Ok(())
    }

    fn on_unsubscribe(&mut self, f: &Frame) {
        // STOMP 1.0 may unsubscribe by destination.
        let pos = match (f.header("id"), f.header("destination")) {
            (Some(id), _) => self.subs.iter().position(|s| s.id == id),
            (None, Some(dest)) => self.subs.iter().position(|s| s.destination == dest),
            (None, None) => None,
        };
        if let Some(i) = pos {
            let asked = vec![self.subs[i].destination.to_string()];
            if !self.ctx.client_unsubscribe(&self.info, asked).is_empty() {
                let sub = self.subs.remove(i);
                self.ctx
                    .unsubscribe(&self.info, &self.cell, &self.mountpoint, &sub.destination);
            }
        }
        self.receipt(f);
    }

    /// Answer a framework call (management API subscriptions).
    fn on_call(&mut self, call: ClientCall) {
        match call {
            ClientCall::Subscriptions(reply) => {
                let list = self
                    .subs
                    .iter()
                    .map(|s| {
                        SubscriptionInfo::new(
                            self.mountpoint.mount_filter(&s.destination),
                            &stomp_sub_options(s.index),
                            Some(s.id.to_string()),
                        )
                    })
                    .collect();
                let _ = reply.send(list);
            }
            ClientCall::Subscribe {
                topic,
                opts,
                subid,
                reply,
            } => {
                let _ = reply.send(self.api_subscribe(&topic, opts, subid));
            }
            ClientCall::Unsubscribe { topic, reply } => {
                let result = match self.subs.iter().position(|s| s.destination == topic) {
                    Some(i) => {
                        let sub = self.subs.remove(i);
                        self.ctx.unsubscribe(
                            &self.info,
                            &self.cell,
                            &self.mountpoint,
                            &sub.destination,
                        );
                        Ok(())
                    }
                    None => Err(CallError::NoSuchSubscription),
                };
                let _ = reply.send(result);
            }
        }
    }

    /// A subscription made through the management API: STOMP needs the subscription id
    /// (`sub_props.subid`) for its MESSAGE frames; duplicates get the SUBSCRIBE texts.
    fn api_subscribe(
        &mut self,
        topic: &str,
        opts: SubOptions,
        subid: Option<String>,
    ) -> Result<SubscriptionInfo, CallError> {
        let Some(id) = subid else {
            return Err(CallError::Refused("sub_props.subid is required".into()));
        };
        if self.subs.iter().any(|s| s.id == id.as_str()) {
            return Err(CallError::Refused(format!(
                "Subscription id {id} is in used"
            )));
        }
        if self.subs.iter().any(|s| s.destination == topic) {
            return Err(CallError::Refused(format!(
                "Topic {topic} already in subscribed"
            )));
        }
        let index = self.next_sub_index;
        self.next_sub_index = self.next_sub_index.checked_add(1).unwrap_or(1);
        let opts = SubOptions {
            subscription_id: Some(index),
            ..opts
        };
        self.subs.push(Sub {
            id: ByteString::from(id.as_str()),
            destination: ByteString::from(topic),
            ack: AckMode::Auto,
            index,
        });
        if self
            .ctx
            .subscribe(&self.info, &self.cell, &self.mountpoint, topic, opts)
            .is_err()
        {
            self.subs.pop();
            return Err(CallError::Refused(format!("Invalid destination {topic}")));
        }
        Ok(SubscriptionInfo::new(
            self.mountpoint.mount_filter(topic),
            &opts,
            Some(id),
        ))
    }

    /// Take what the session has for the client and encode it into the write buffer.
    fn drain_outbox(&mut self) {
        let mut out = std::mem::take(&mut self.scratch);
        self.cell.take_outbox(self.conn_id, &mut out);
        for o in out.drain(..) {
            if let Outbound::Publish { delivery, .. } = o {
                self.deliver(&delivery);
            }
        }
        self.scratch = out;
    }

    fn deliver(&mut self, d: &Delivery) {
        let sub = d
            .subscription_ids
            .iter()
            .find_map(|i| self.subs.iter().find(|s| s.index == *i));
        let Some(sub) = sub else {
            self.ctx.metrics.inc("delivery.dropped");
            self.ctx.metrics.inc("delivery.dropped.no_subid");
            return;
        };
        let (sub_id, ack) = (sub.id.clone(), sub.ack);
        self.last_message_id += 1;
        let message_id = ByteString::from(self.last_message_id.to_string());
        let m = &d.message;
        let topic = if self.mountpoint.is_empty() {
            m.topic.clone()
        } else {
            ByteString::from(self.mountpoint.unmount(&m.topic))
        };
        let content_type = m
            .properties
            .content_type
            .clone()
            .unwrap_or_else(|| ByteString::from_static("text/plain"));
        let mut f = Frame::new(Command::Message)
            .with_header("subscription", sub_id)
            .with_header("message-id", message_id.clone())
            .with_header("destination", topic)
            .with_header("content-type", content_type);
        if ack != AckMode::Auto {
            f = f.with_header("ack", message_id);
        }
        for (name, value) in &m.properties.user_properties {
            if RESERVED_OUT.contains(&&**name) || f.headers.iter().any(|(n, _)| n == name) {
                continue;
            }
            f.headers.push((name.clone(), value.clone()));
        }
        f.body = m.payload.clone();
        self.write_frame(&f, "packets.message.sent");
        self.ctx.delivered(&self.info, &d.message);
        inc(&self.stats.send_msg);
    }

    /// Say goodbye where EMQX does, hand the session back to the broker, and close.
    async fn finish(mut self, exit: Exit) {
        let reason = match &exit {
            Exit::Closed => "sock_closed",
            Exit::Disconnected => "normal",
            Exit::Error(why) => why,
            Exit::HeartbeatTimeout => "heartbeat_timeout",
            Exit::Kicked(k) => {
                self.ctx.session_kicked(&self.info, *k);
                let (text, why) = match k {
                    KickReason::Administrative => ("Kicked out", "kicked"),
                    KickReason::TakenOver | KickReason::Discarded => ("Discarded", "discarded"),
                    KickReason::Shutdown => ("Server shutdown", "shutdown"),
                };
                self.error_frame(text.into(), None);
                why
            }
        };
        if !matches!(exit, Exit::Closed) && !self.write_cut {
            let goodbye = std::mem::take(&mut self.wbuf);
            if self.stream.write_goodbye(&goodbye).await {
                self.ctx.metrics.add("bytes.sent", goodbye.len() as u64);
            }
        }
        tracing::debug!(clientid = %self.info.clientid, %reason, "stomp client disconnected");
        self.ctx.broker.close_session(
            &self.cell,
            self.conn_id,
            Close {
                expiry_interval_secs: 0,
                will: None,
            },
        );
        self.ctx.session_terminated(&self.info, reason);
        self.ctx.disconnected(&self.info, self.conn_id, reason);
        let _ = tokio::time::timeout(Duration::from_secs(1), self.stream.shutdown()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_negotiation_picks_the_highest_supported() {
        assert_eq!(negotiate(None), Some(Version::V1_0));
        assert_eq!(negotiate(Some("1.0,1.1,1.2")), Some(Version::V1_2));
        assert_eq!(negotiate(Some("1.1, 1.0")), Some(Version::V1_1));
        assert_eq!(negotiate(Some("1.3,2.0")), None);
        assert_eq!(negotiate(Some("")), None);
    }

    #[test]
    fn heart_beat_header_parses_with_a_zero_default() {
        assert_eq!(parse_heartbeat(None), (0, 0));
        assert_eq!(parse_heartbeat(Some("500,800")), (500, 800));
        assert_eq!(parse_heartbeat(Some("x,1")), (0, 0));
        assert_eq!(parse_heartbeat(Some("7")), (0, 0));
        assert_eq!(
            parse_heartbeat(Some("18446744073709551615,99999999999")),
            (MAX_HEARTBEAT_MS, MAX_HEARTBEAT_MS)
        );
    }

    #[tokio::test]
    async fn connection_task_state_stays_small() {
        use junction_broker::Broker;
        use junction_gateway::CommonSettings;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (server, peer) = listener.accept().await.unwrap();
        let accepted = Accepted::standalone(Stream::Tcp(server), peer, "stomp:tcp:test");
        let ctx = GatewayCtx::new(
            "stomp",
            "stomp",
            Broker::new(Default::default()),
            CommonSettings::default(),
        );
        let fut = serve(ctx, Arc::new(StompSettings::default()), accepted);
        let size = std::mem::size_of_val(&fut);
        eprintln!(
            "connection future: {size} bytes; Conn: {}",
            std::mem::size_of::<Conn>()
        );
        drop(client);
        assert!(size < 2048, "connection future is {size} bytes");
    }
}
