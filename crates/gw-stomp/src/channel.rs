//! The STOMP protocol as a channel of the framework's stream driver: the opening
//! handshake ([`StompOpening`]: version, heart-beats, identity) and the connected state
//! machine ([`StompChannel`]: SEND, SUBSCRIBE, transactions, receipts, deliveries,
//! heart-beats). No I/O: the driver reads, writes, and hands in the time.

use crate::{frame, StompSettings};
use bytes::BytesMut;
use bytestring::ByteString;
use junction_broker::hooks::Action;
use junction_broker::{KickReason, Will};
use junction_codec_stomp::{encode, encode_heartbeat, Command, Decoder, Frame, Item, Version};
use junction_gateway::driver::stream::{Opening, Output, Peer, StreamChannel};
use junction_gateway::metrics;
use junction_gateway::{
    CallError, ClientCall, ClientInfo, CloseReason, ConnectRequest, GatewayCtx, Session,
    SubscriptionInfo,
};
use junction_session::{Delivery, Outbound, SubOptions};
use junction_types::{now_ms, MessageProperties, QoS};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

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

type Flow<T = ()> = Result<T, CloseReason>;

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
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

/// A STOMP connection before CONNECTED: waits for CONNECT (or STOMP), negotiates the
/// version and heart-beats and renders the client's identity.
pub struct StompOpening {
    ctx: Arc<GatewayCtx>,
    settings: Arc<StompSettings>,
    decoder: Decoder,
    out: Output,
    version: Version,
    /// The client's heart-beat offer `cx,cy`, ms.
    heartbeat: (u64, u64),
}

impl StompOpening {
    /// A new connection of a listener with `settings`.
    pub fn new(ctx: Arc<GatewayCtx>, settings: Arc<StompSettings>) -> StompOpening {
        let decoder = Decoder::new(Version::V1_2, settings.limits);
        StompOpening {
            ctx,
            settings,
            decoder,
            out: Output::default(),
            version: Version::V1_0,
            heartbeat: (0, 0),
        }
    }

    /// An ERROR answering CONNECT (no headers, STOMP 1.0 framing), as EMQX sends it.
    fn login_failed(&mut self, reason: &str) {
        let f = Frame::new(Command::Error).with_body(format!("Login Failed: {reason}"));
        encode(&f, Version::V1_0, &mut self.out.bytes);
        self.ctx.metrics.sent(frame::ERROR);
    }

    /// The ConnectRequest of a CONNECT frame, or `None` (ERROR written) for a version this
    /// server does not speak.
    fn request(&mut self, connect: &Frame, peer: &Peer) -> Option<ConnectRequest> {
        let Some(version) = negotiate(connect.header("accept-version")) else {
            self.login_failed("Supported protocol versions < 1.2");
            return None;
        };
        self.version = version;
        let (cx, cy) = parse_heartbeat(connect.header("heart-beat"));
        self.heartbeat = (cx, cy);
        // `clientinfo_override` templates (reference §1.6); EMQX's defaults are a random
        // client id, `${Packet.headers.login}` and `${Packet.headers.passcode}`.
        let common = self.ctx.settings();
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
        let info = ClientInfo {
            clientid,
            username,
            protocol: self.ctx.protocol,
            proto_ver: version.as_str().to_string(),
            peername: peer.addr,
            sockport: peer.sockport,
            listener: peer.listener.clone(),
            mountpoint: String::new(),
            keepalive: cx.div_ceil(1000).min(u32::MAX as u64) as u32,
            clean_start: true,
            expiry_interval: 0,
            connected_at: now_ms(),
            is_superuser: false,
            extras,
        };
        Some(ConnectRequest {
            info,
            password: password.map(bytes::Bytes::from),
            listener_mountpoint: self.settings.listener_mountpoint.clone(),
            limits: common.session,
            resume: false,
        })
    }
}

impl Opening for StompOpening {
    type Channel = StompChannel;

    fn output(&mut self) -> &mut Output {
        &mut self.out
    }

    /// The first frame must be CONNECT or STOMP; anything else (or a frame error) closes
    /// the connection without an ERROR frame.
    fn open(&mut self, input: &mut BytesMut, peer: &Peer) -> Result<Option<ConnectRequest>, ()> {
        loop {
            match self.decoder.decode(input) {
                Ok(Some(Item::HeartBeat)) => {}
                Ok(Some(Item::Frame(f)))
                    if matches!(f.command, Command::Connect | Command::Stomp) =>
                {
                    self.ctx.metrics.received(frame::CONNECT);
                    return self.request(&f, peer).map(Some).ok_or(());
                }
                Ok(Some(Item::Frame(f))) => {
                    tracing::debug!(command = %f.command, "first frame is not CONNECT");
                    return Err(());
                }
                Ok(None) => return Ok(None),
                Err(e) => {
                    tracing::debug!(error = %e, "bad first frame");
                    return Err(());
                }
            }
        }
    }

    fn refused(&mut self, reason: &str) {
        self.login_failed(reason);
    }

    fn admitted(self, session: Session, now: Instant) -> StompChannel {
        let StompOpening {
            ctx,
            settings,
            mut decoder,
            out,
            version,
            heartbeat: (cx, cy),
        } = self;
        session.stats.subscriptions_max.store(
            settings.bounds.max_subscriptions as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        decoder.version = version;
        inc(&session.stats.recv_pkt);
        let send_every = (cy > 0).then(|| Duration::from_millis(cy));
        drop(ctx);
        let mut channel = StompChannel {
            session,
            out,
            decoder,
            subs: Vec::new(),
            next_sub_index: 1,
            last_message_id: 0,
            txs: Vec::new(),
            send_every,
            next_send: send_every.map(|d| now + d),
            recv_within: (cx > 0).then(|| Duration::from_millis(cx.saturating_mul(2))),
            last_recv: now,
            now,
            scratch: Vec::new(),
            bounds: settings.bounds,
        };
        let connected = Frame::new(Command::Connected)
            .with_header("version", version.as_str())
            .with_header("heart-beat", format!("{cy},{cx}"))
            .with_header(
                "server",
                concat!("junction-stomp/", env!("CARGO_PKG_VERSION")),
            );
        channel.write_frame(&connected, frame::CONNECTED);
        channel
    }
}

/// A connected STOMP client.
pub struct StompChannel {
    session: Session,
    out: Output,
    decoder: Decoder,
    subs: Vec<Sub>,
    next_sub_index: u32,
    last_message_id: u64,
    txs: Vec<Tx>,
    /// Server → client heart-beat period (the client's `cy`).
    send_every: Option<Duration>,
    /// When the next server heart-beat is due.
    next_send: Option<Instant>,
    /// Close when nothing arrived for this long (twice the client's `cx`).
    recv_within: Option<Duration>,
    last_recv: Instant,
    /// The time the driver last handed in.
    now: Instant,
    scratch: Vec<Outbound>,
    /// What this connection may hold.
    bounds: crate::ConnBounds,
}

impl StreamChannel for StompChannel {
    fn session(&self) -> &Session {
        &self.session
    }

    fn output(&mut self) -> &mut Output {
        &mut self.out
    }

    fn on_input(&mut self, input: &mut BytesMut, now: Instant) -> Flow {
        self.now = now;
        self.last_recv = now;
        self.process_input(input)
    }

    fn on_deliveries(&mut self, now: Instant) -> Flow {
        self.now = now;
        self.drain_outbox();
        Ok(())
    }

    fn on_call(&mut self, call: ClientCall) {
        self.answer_call(call);
    }

    fn on_timer(&mut self, now: Instant) -> Flow {
        self.now = now;
        if self.recv_within.is_some_and(|w| now >= self.last_recv + w) {
            return Err(CloseReason::HeartbeatTimeout);
        }
        self.expire_transactions(now);
        if let (Some(at), Some(every)) = (self.next_send, self.send_every) {
            if now >= at {
                encode_heartbeat(&mut self.out.bytes);
                self.session.ctx.metrics.sent(frame::HEARTBEAT);
                inc(&self.session.stats.send_pkt);
                // Keep the cadence, but do not burst after a stall.
                self.next_send = Some((at + every).max(now + every / 2));
            }
        }
        Ok(())
    }

    fn next_timer(&self) -> Option<Instant> {
        let check = self.recv_within.map(|w| self.last_recv + w);
        let tx_due = self.txs.iter().map(|t| t.expires).min();
        [self.next_send, check, tx_due].into_iter().flatten().min()
    }

    fn silent_until(&self) -> Option<(Instant, CloseReason)> {
        self.recv_within
            .map(|w| (self.last_recv + w, CloseReason::HeartbeatTimeout))
    }

    /// EMQX's ERROR frames for a kicked client.
    fn goodbye(&mut self, reason: CloseReason) {
        if let CloseReason::Kicked(k) = reason {
            let text = match k {
                KickReason::Administrative => "Kicked out",
                KickReason::TakenOver | KickReason::Discarded => "Discarded",
                KickReason::Shutdown => "Server shutdown",
            };
            self.error_frame(text.into(), None);
        }
    }

    /// STOMP sessions are clean and have no will.
    fn on_close(&mut self, _reason: CloseReason) -> (Option<Will>, u32) {
        (None, 0)
    }

    fn shrink(&mut self) {
        if self.scratch.capacity() > 0 && self.scratch.is_empty() {
            self.scratch = Vec::new();
        }
    }
}

impl StompChannel {
    fn write_frame(&mut self, f: &Frame, kind: metrics::Frame) {
        encode(f, self.decoder.version, &mut self.out.bytes);
        self.session.ctx.metrics.sent(kind);
        inc(&self.session.stats.send_pkt);
    }

    /// Queue an ERROR frame (`content-type:text/plain`, `receipt-id` if given).
    fn error_frame(&mut self, text: String, receipt: Option<&str>) {
        let mut f = Frame::new(Command::Error).with_header("content-type", "text/plain");
        if let Some(r) = receipt {
            f = f.with_header("receipt-id", r);
        }
        f.body = text.into();
        self.write_frame(&f, frame::ERROR);
    }

    /// Queue an ERROR frame and end the connection.
    fn fail<T>(&mut self, text: String, receipt: Option<&str>, why: &'static str) -> Flow<T> {
        self.error_frame(text, receipt);
        Err(CloseReason::Protocol(why))
    }

    /// Queue a RECEIPT if the frame asked for one.
    fn receipt(&mut self, f: &Frame) {
        if let Some(r) = f.header("receipt") {
            let r = ByteString::from(r);
            let receipt = Frame::new(Command::Receipt).with_header("receipt-id", r);
            self.write_frame(&receipt, frame::RECEIPT);
        }
    }

    /// Abort the transactions whose time is up (`transaction.timeout`).
    fn expire_transactions(&mut self, now: Instant) {
        let before = self.txs.len();
        self.txs.retain(|t| t.expires > now);
        let expired = before - self.txs.len();
        if expired > 0 {
            tracing::debug!(clientid = %self.session.info.clientid, expired, "stomp transactions timed out");
            self.session
                .ctx
                .metrics
                .transactions_expired
                .add(expired as u64);
        }
    }

    /// Decode and handle every whole frame in the read buffer.
    fn process_input(&mut self, input: &mut BytesMut) -> Flow {
        loop {
            match self.decoder.decode(input) {
                Ok(Some(Item::HeartBeat)) => {
                    self.session.ctx.metrics.received(frame::HEARTBEAT);
                    inc(&self.session.stats.recv_pkt);
                }
                Ok(Some(Item::Frame(f))) => {
                    inc(&self.session.stats.recv_pkt);
                    self.handle(f)?;
                    if self.out.congested {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(clientid = %self.session.info.clientid, error = %e, "frame error");
                    input.clear();
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
        let m = &self.session.ctx.metrics;
        match f.command {
            Command::Send => {
                m.received(frame::SEND);
                self.on_send(f)
            }
            Command::Subscribe => {
                m.received(frame::SUBSCRIBE);
                self.on_subscribe(&f)
            }
            Command::Unsubscribe => {
                m.received(frame::UNSUBSCRIBE);
                self.on_unsubscribe(&f);
                Ok(())
            }
            Command::Ack | Command::Nack => {
                m.received(if f.command == Command::Ack {
                    frame::ACK
                } else {
                    frame::NACK
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
                m.received(frame::BEGIN);
                self.on_begin(&f)
            }
            Command::Commit => {
                m.received(frame::COMMIT);
                self.on_commit(&f)
            }
            Command::Abort => {
                m.received(frame::ABORT);
                self.on_abort(&f);
                Ok(())
            }
            Command::Disconnect => {
                m.received(frame::DISCONNECT);
                self.receipt(&f);
                Err(CloseReason::Normal)
            }
            Command::Connect | Command::Stomp => {
                // A second CONNECT terminates the connection (EMQX: unhandled).
                m.received(frame::CONNECT);
                Err(CloseReason::Protocol("unexpected_connect"))
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
        if self.session.ctx.check_topic_name(dest).is_err() {
            let text = format!("Invalid destination {dest}");
            return self.fail(text, receipt, "invalid_destination");
        }
        if !self.session.ctx.authorize_publish(&self.session.info, dest) {
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
        inc(&self.session.stats.recv_msg);
        let routed = self.session.ctx.publish(
            &self.session.info,
            &self.session.mountpoint,
            dest,
            f.body.clone(),
            QoS::AtMostOnce,
            false,
            props,
        );
        self.out.congested |= routed.congested;
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
        let now = self.now;
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
        if self.session.ctx.check_filter(dest).is_err() {
            let text = format!("Invalid destination {dest}");
            return self.fail(text, receipt, "invalid_destination");
        }
        let index = self.next_sub_index;
        self.next_sub_index = self.next_sub_index.checked_add(1).unwrap_or(1);
        let opts = stomp_sub_options(index);
        // `client.subscribe` may rewrite or refuse the filter (reference §1.10).
        let requested = vec![(dest.to_string(), opts)];
        let Some((filter, opts)) = self
            .session
            .ctx
            .client_subscribe(&self.session.info, requested)
            .pop()
        else {
            let text = format!("The client.subscribe hook blocked the {dest} subscription request");
            return self.fail(text, receipt, "hook_blocked");
        };
        let dest = filter.as_str();
        if !self.session.ctx.authorize(
            &self.session.info,
            Action::Subscribe { qos: opts.qos },
            dest,
        ) {
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
            .session
            .ctx
            .subscribe(
                &self.session.info,
                &self.session.cell,
                &self.session.mountpoint,
                dest,
                opts,
            )
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
            if !self
                .session
                .ctx
                .client_unsubscribe(&self.session.info, asked)
                .is_empty()
            {
                let sub = self.subs.remove(i);
                self.session.ctx.unsubscribe(
                    &self.session.info,
                    &self.session.cell,
                    &self.session.mountpoint,
                    &sub.destination,
                );
            }
        }
        self.receipt(f);
    }

    /// Answer a framework call (management API subscriptions).
    fn answer_call(&mut self, call: ClientCall) {
        match call {
            ClientCall::Subscriptions(reply) => {
                let list = self
                    .subs
                    .iter()
                    .map(|s| {
                        SubscriptionInfo::new(
                            self.session.mountpoint.mount_filter(&s.destination),
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
            ClientCall::Request { reply, .. } => {
                let _ = reply.send(Err(CallError::Unsupported));
            }
            ClientCall::Unsubscribe { topic, reply } => {
                let result = match self.subs.iter().position(|s| s.destination == topic) {
                    Some(i) => {
                        let sub = self.subs.remove(i);
                        self.session.ctx.unsubscribe(
                            &self.session.info,
                            &self.session.cell,
                            &self.session.mountpoint,
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
            .session
            .ctx
            .subscribe(
                &self.session.info,
                &self.session.cell,
                &self.session.mountpoint,
                topic,
                opts,
            )
            .is_err()
        {
            self.subs.pop();
            return Err(CallError::Refused(format!("Invalid destination {topic}")));
        }
        Ok(SubscriptionInfo::new(
            self.session.mountpoint.mount_filter(topic),
            &opts,
            Some(id),
        ))
    }

    /// Take what the session has for the client and encode it into the write buffer.
    fn drain_outbox(&mut self) {
        let mut out = std::mem::take(&mut self.scratch);
        self.session
            .cell
            .take_outbox(self.session.conn_id, &mut out);
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
            self.session.ctx.metrics.delivery_dropped.inc();
            self.session.ctx.metrics.delivery_dropped_no_subid.inc();
            return;
        };
        let (sub_id, ack) = (sub.id.clone(), sub.ack);
        self.last_message_id += 1;
        let message_id = ByteString::from(self.last_message_id.to_string());
        let m = &d.message;
        let topic = if self.session.mountpoint.is_empty() {
            m.topic.clone()
        } else {
            ByteString::from(self.session.mountpoint.unmount(&m.topic))
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
        self.write_frame(&f, frame::MESSAGE);
        self.session.ctx.delivered(&self.session.info, &d.message);
        inc(&self.session.stats.send_msg);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use junction_broker::Broker;
    use junction_gateway::CommonSettings;

    /// A STOMP channel driven by hand: scripted bytes in, frames out, a clock that moves
    /// only when the test says. No socket.
    struct Script {
        broker: Arc<Broker>,
        ctx: Arc<GatewayCtx>,
        channel: StompChannel,
        decoder: Decoder,
        t0: Instant,
    }

    fn bytes_of(frames: &[Frame]) -> BytesMut {
        let mut b = BytesMut::new();
        for f in frames {
            encode(f, Version::V1_2, &mut b);
        }
        b
    }

    impl Script {
        async fn connect(headers: &[(&str, &str)], settings: StompSettings) -> (Script, Frame) {
            let broker = Broker::new(Default::default());
            let ctx = GatewayCtx::new(
                "stomp",
                "stomp",
                crate::frame::NAMES,
                broker.clone(),
                CommonSettings::default(),
            );
            let mut opening = StompOpening::new(ctx.clone(), Arc::new(settings));
            let mut connect = Frame::new(Command::Connect);
            for (k, v) in headers {
                connect = connect.with_header(*k, *v);
            }
            let peer = Peer {
                addr: "127.0.0.1:4000".parse().unwrap(),
                listener: "stomp:tcp:default".into(),
                sockport: 61613,
            };
            let mut input = bytes_of(&[connect]);
            // Half a frame is not enough.
            let mut half = input.split_to(input.len() / 2);
            assert!(opening.open(&mut half, &peer).unwrap().is_none());
            half.unsplit(input);
            let request = opening.open(&mut half, &peer).unwrap().expect("a request");
            let admission = ctx.connect(request).await.expect("admitted");
            let t0 = Instant::now();
            let channel = opening.admitted(admission.session, t0);
            let mut script = Script {
                broker,
                ctx,
                channel,
                decoder: Decoder::new(Version::V1_2, Default::default()),
                t0,
            };
            let connected = script.output().pop().expect("CONNECTED");
            (script, connected)
        }

        fn at(&self, ms: u64) -> Instant {
            self.t0 + Duration::from_millis(ms)
        }

        /// Frames written since the last call (heart-beats as HEARTBEAT frames).
        fn output(&mut self) -> Vec<Frame> {
            let mut out = std::mem::take(&mut self.channel.output().bytes);
            let mut frames = Vec::new();
            while let Some(item) = self.decoder.decode(&mut out).unwrap() {
                frames.push(match item {
                    Item::Frame(f) => f,
                    Item::HeartBeat => Frame::new(Command::Receipt).with_header("heart-beat", "1"),
                });
            }
            frames
        }

        fn send(&mut self, frames: &[Frame], ms: u64) -> Flow {
            let mut input = bytes_of(frames);
            let result = self.channel.on_input(&mut input, self.at(ms));
            assert!(input.is_empty() || result.is_err());
            result
        }
    }

    #[tokio::test]
    async fn heart_beats_are_sent_on_time_and_silence_ends_the_connection() {
        let (mut s, connected) = Script::connect(
            &[("accept-version", "1.2"), ("heart-beat", "1000,500")],
            Default::default(),
        )
        .await;
        // The server sends every 500 ms (the client's cy) and expects something every
        // 2 × 1000 ms (twice the client's cx).
        assert_eq!(connected.header("heart-beat"), Some("500,1000"));
        assert_eq!(s.channel.next_timer(), Some(s.at(500)));
        s.channel.on_timer(s.at(500)).unwrap();
        let out = s.output();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].header("heart-beat"), Some("1"));
        assert_eq!(s.channel.next_timer(), Some(s.at(1000)));
        // The client's heart-beat (an EOL) resets its silence clock.
        let mut eol = BytesMut::from(&b"\n"[..]);
        s.channel.on_input(&mut eol, s.at(1500)).unwrap();
        assert_eq!(
            s.channel.silent_until(),
            Some((s.at(3500), CloseReason::HeartbeatTimeout))
        );
        s.channel.on_timer(s.at(3000)).unwrap();
        assert_eq!(
            s.channel.on_timer(s.at(3500)),
            Err(CloseReason::HeartbeatTimeout)
        );
    }

    #[tokio::test]
    async fn a_transaction_defers_sends_until_commit_and_expires_on_the_clock() {
        let settings = StompSettings {
            bounds: crate::ConnBounds {
                tx_timeout: Duration::from_secs(60),
                ..Default::default()
            },
            ..Default::default()
        };
        let (mut s, _) = Script::connect(&[("accept-version", "1.2")], settings).await;
        let published = |s: &Script| {
            s.broker
                .metrics
                .snapshot()
                .into_iter()
                .find(|(n, _)| *n == "messages.publish")
                .map_or(0, |(_, v)| v)
        };
        let before = published(&s);
        let begin = |tx: &str| {
            Frame::new(Command::Begin)
                .with_header("transaction", tx)
                .with_header("receipt", format!("b-{tx}"))
        };
        let send = |tx: &str| {
            Frame::new(Command::Send)
                .with_header("destination", "t/x")
                .with_header("transaction", tx)
                .with_body(&b"deferred"[..])
        };
        s.send(&[begin("a"), send("a")], 0).unwrap();
        let out = s.output();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].header("receipt-id"), Some("b-a"));
        assert_eq!(s.ctx.metrics.get("transactions.expired"), 0);
        // Nothing was published yet.
        assert_eq!(published(&s), before);
        assert_eq!(s.channel.next_timer(), Some(s.at(60_000)));
        s.channel.on_timer(s.at(60_000)).unwrap();
        assert_eq!(s.ctx.metrics.get("transactions.expired"), 1);
        // A COMMIT of the expired transaction is an ERROR; a new one commits its SEND.
        s.send(
            &[Frame::new(Command::Commit).with_header("transaction", "a")],
            60_001,
        )
        .unwrap();
        let out = s.output();
        assert_eq!(out[0].command, Command::Error);
        s.send(
            &[
                begin("b"),
                send("b"),
                Frame::new(Command::Commit).with_header("transaction", "b"),
            ],
            60_002,
        )
        .unwrap();
        assert_eq!(published(&s), before + 1);
    }

    #[tokio::test]
    async fn a_frame_error_is_an_error_frame_and_the_end() {
        let (mut s, _) = Script::connect(&[("accept-version", "1.2")], Default::default()).await;
        let mut input = BytesMut::from(&b"BOGUS\n\n\0"[..]);
        assert_eq!(
            s.channel.on_input(&mut input, s.at(1)),
            Err(CloseReason::Protocol("frame_error"))
        );
        let out = s.output();
        assert_eq!(out[0].command, Command::Error);
        // A kick is answered as EMQX does, then the connection ends.
        s.channel
            .goodbye(CloseReason::Kicked(KickReason::Administrative));
        assert_eq!(&s.output()[0].body[..], b"Kicked out");
    }

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
        use junction_transport::{Accepted, Stream};
        let accepted = Accepted::standalone(Stream::Tcp(server), peer, "stomp:tcp:test");
        let ctx = GatewayCtx::new(
            "stomp",
            "stomp",
            crate::frame::NAMES,
            Broker::new(Default::default()),
            CommonSettings::default(),
        );
        let fut = crate::serve(ctx, Arc::new(StompSettings::default()), accepted);
        let size = std::mem::size_of_val(&fut);
        eprintln!(
            "connection future: {size} bytes; channel: {}, opening: {}, session: {}",
            std::mem::size_of::<StompChannel>(),
            std::mem::size_of::<StompOpening>(),
            std::mem::size_of::<Session>(),
        );
        drop(client);
        assert!(size < 2048, "connection future is {size} bytes");
    }
}
