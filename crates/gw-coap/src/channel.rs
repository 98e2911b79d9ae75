//! A CoAP client's state machine, with no I/O: requests in (publish, observe, the
//! connection's heartbeat and close), deliveries out as Observe notifications, and the
//! RFC 7252 message layer (duplicates answered from the cache, confirmable notifications
//! retransmitted with back-off) from `junction-codec-coap`'s `Endpoint`.
//!
//! An observation is a subscription whose MQTT subscription identifier names it, so a
//! delivery says which observations it is for; each gets a notification with the
//! observation's token and its own Observe sequence (1, 2, … wrapping to 1 after
//! 16 777 215, reference §5.3). Notifications of QoS 0 deliveries are non-confirmable and
//! those of QoS 1 and 2 confirmable under `notify_type = qos`; a confirmable one
//! completes its delivery when the client acknowledges it, and a Reset cancels the
//! observation (RFC 7641 §3.6). Observations are at most QoS 1: a CoAP acknowledgement
//! is one step.

use crate::config::NotifyType;
use crate::frame;
use crate::protocol::{CoapProtocol, CoapSettings};
use crate::request::{qos_of, Query, Request};
use bytes::Bytes;
use junction_broker::hooks::Action;
use junction_broker::Will;
use junction_codec_coap::{
    block2_slice, option, Block, Block1Assembler, Block1Progress, Code, Endpoint, Incoming,
    Message, MessageType, Params, TimeoutEvent, Token,
};
use junction_gateway::call::{CallError, ClientCall};
use junction_gateway::driver::datagram::{DatagramChannel, DatagramOutput};
use junction_gateway::driver::{CloseReason, Session};
use junction_session::{Outbound, SubOptions};
use junction_types::{now_ms, QoS};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Messages a client's endpoint remembers (duplicates) and keeps outstanding.
const ENDPOINT_CAPACITY: usize = 256;
/// Observations one client may hold.
const MAX_OBSERVATIONS: usize = 256;
/// The largest Observe sequence number (24 bits).
const MAX_SEQ: u32 = 0x00FF_FFFF;
/// Blocks of notifications larger than this (SZX 6, 1024 octets) go block-wise
/// (RFC 7959), unless the observation asked for smaller ones.
const BLOCK_SZX: u8 = 6;
/// The largest body a client may upload block-wise (Block1), and uploads in progress at
/// once: a client's reassembly buffers hold at most 512 KiB, whoever it claims to be.
const MAX_UPLOAD: usize = 256 << 10;
const MAX_UPLOADS: usize = 2;
/// Requests of the management API's waiting for one device's answer.
const MAX_REQUESTS: usize = 16;

pub(crate) struct Observation {
    filter: String,
    token: Token,
    /// The last Observe sequence sent (0: the registration's).
    seq: u32,
    /// The block size exponent of its notifications.
    szx: u8,
    /// The last notification sent block-wise, whose later blocks the client asks for,
    /// and the ETag all its blocks carry (RFC 7959 §2.4: a client that sees another
    /// ETag knows the representation changed between its blocks).
    last: Option<(Bytes, u32)>,
}

/// What a CoAP client is beyond its address: shared by the connection that holds it and,
/// in connection mode, the gateway's table of connections, so a request from a new
/// address naming the connection and its token takes it over, observations and all.
pub(crate) struct Conn {
    /// Connection mode: the token the connection was given.
    pub token: Option<String>,
    /// Who authenticated, for a takeover (which does not authenticate again).
    pub username: Option<bytestring::ByteString>,
    /// The same.
    pub is_superuser: bool,
    /// Observations by their subscription identifier.
    observations: HashMap<u32, Observation>,
    next_subid: u32,
}

impl Conn {
    fn new() -> Conn {
        Conn {
            token: None,
            username: None,
            is_superuser: false,
            observations: HashMap::new(),
            next_subid: 1,
        }
    }
}

/// A connected CoAP client.
pub(crate) struct CoapChannel {
    proto: Arc<CoapProtocol>,
    session: Session,
    dout: DatagramOutput,
    endpoint: Endpoint,
    /// The clock's origin for the endpoint's milliseconds.
    base: Instant,
    last_recv: Instant,
    /// The client's token and observations.
    pub(crate) conn: Arc<Mutex<Conn>>,
    /// Confirmable notifications in flight: message id → the session packet id they
    /// complete when acknowledged.
    confirmable: HashMap<u16, Option<u16>>,
    /// Set by a request that ends the connection (`DELETE /mqtt/connection`).
    closing: Option<CloseReason>,
    /// Block-wise uploads in progress, by topic (RFC 7959 §2.5).
    uploads: HashMap<String, Block1Assembler>,
    /// Requests the management API had sent to the device, by token, with how to render
    /// the answer.
    requests: HashMap<Token, PendingRequest>,
    next_request_token: u64,
}

/// A request to the device waiting for its response.
struct PendingRequest {
    message_id: u16,
    octet_stream: bool,
    reply: tokio::sync::oneshot::Sender<Result<serde_json::Value, CallError>>,
}

impl CoapChannel {
    pub fn new(
        proto: Arc<CoapProtocol>,
        session: Session,
        dout: DatagramOutput,
        now: Instant,
    ) -> CoapChannel {
        let seed = rand::random::<u64>();
        CoapChannel {
            proto,
            session,
            dout,
            endpoint: Endpoint::new(Params::default(), ENDPOINT_CAPACITY, seed),
            base: now,
            last_recv: now,
            conn: Arc::new(Mutex::new(Conn::new())),
            confirmable: HashMap::new(),
            closing: None,
            uploads: HashMap::new(),
            requests: HashMap::new(),
            next_request_token: rand::random(),
        }
    }

    fn ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.base).as_millis() as u64
    }

    fn settings(&self) -> &CoapSettings {
        &self.proto.settings
    }

    fn send(&mut self, msg: &Message, ack: bool) {
        if let Some(b) = self.proto.encode(msg) {
            self.send_encoded(b, ack);
        }
    }

    fn send_encoded(&mut self, b: Bytes, ack: bool) {
        self.session.stats.send_pkt.fetch_add(1, Ordering::Relaxed);
        if ack {
            self.dout.push_ack(b);
        } else {
            self.dout.push(b);
        }
    }

    /// Connection mode: the opening `POST /mqtt/connection` is answered 2.01 with the
    /// connection's token (a random 32-bit number, in decimal).
    pub fn connected(&mut self, request: &Message, now: Instant) {
        let ms = self.ms(now);
        self.endpoint.handle_incoming(request, ms);
        // 64 random bits (EMQX: 32), in decimal: the device echoes it as it is.
        let token = rand::random::<u64>().to_string();
        let response = request
            .response(Code::CREATED)
            .with_payload(Bytes::from(token.clone()));
        {
            let mut c = self.conn.lock();
            c.token = Some(token);
            c.username = self.session.info.username.clone();
            c.is_superuser = self.session.info.is_superuser;
        }
        self.proto
            .connections
            .lock()
            .insert(self.session.info.clientid.clone(), self.conn.clone());
        self.respond(request, response, false, now);
    }

    /// Connectionless mode: serve the request that opened the client.
    pub fn serve_first(&mut self, request: Message, now: Instant) {
        self.on_message(request, now);
    }

    /// Send `response` to `request`, remembered for a duplicate of a CON.
    fn respond(&mut self, request: &Message, mut response: Message, ack: bool, now: Instant) {
        if response.message_type == MessageType::NonConfirmable {
            response = self.endpoint.send_non_response(response, self.ms(now));
        }
        let Some(b) = self.proto.encode(&response) else {
            return;
        };
        if request.message_type == MessageType::Confirmable {
            self.endpoint.record_response(request.message_id, &b);
        }
        self.send_encoded(b, ack);
    }

    fn on_message(&mut self, msg: Message, now: Instant) {
        self.session.stats.recv_pkt.fetch_add(1, Ordering::Relaxed);
        self.last_recv = now;
        match self.endpoint.handle_incoming(&msg, self.ms(now)) {
            Incoming::New if msg.code.is_request() => {
                let (response, ack) = self.request(&msg);
                self.respond(&msg, response, ack, now);
                self.drain_outbox(now);
            }
            Incoming::New => {
                // A separate response (to a request of the management API's), or a
                // response to nothing this gateway asked: acknowledged either way.
                if msg.message_type == MessageType::Confirmable {
                    self.send(&Message::empty_ack(msg.message_id), false);
                }
                self.answered(&msg);
            }
            Incoming::Ping(rst) => self.send(&rst, false),
            Incoming::Duplicate(Some(response)) => self.send_encoded(response, false),
            Incoming::Duplicate(None) | Incoming::Ignore => {}
            Incoming::Acknowledged { message_id, .. } => {
                if let Some(packet_id) = self.confirmable.remove(&message_id) {
                    self.delivered(packet_id, now);
                }
                // A piggy-backed response; an empty ACK promises a separate one.
                if !msg.code.is_empty() {
                    self.answered(&msg);
                }
            }
            Incoming::Reset { message_id, token } => {
                // The client no longer wants this observation (RFC 7641 §3.6).
                if let Some(packet_id) = self.confirmable.remove(&message_id) {
                    self.delivered(packet_id, now);
                }
                let subid = self
                    .conn
                    .lock()
                    .observations
                    .iter()
                    .find(|(_, o)| o.token == token)
                    .map(|(id, _)| *id);
                if let Some(subid) = subid {
                    self.cancel_observation(subid);
                }
            }
        }
    }

    /// A request: the response, and whether it acknowledges a publish (sent after the
    /// broker's ack barrier).
    fn request(&mut self, msg: &Message) -> (Message, bool) {
        let refused = |code: Code, text: &str| {
            msg.response(code)
                .with_payload(Bytes::copy_from_slice(text.as_bytes()))
        };
        if let Some(number) = msg.unknown_critical(option::KNOWN) {
            tracing::debug!(number, "coap request with an unknown critical option");
            return (refused(Code::BAD_OPTION, "unknown critical option"), false);
        }
        let query = Query::of(msg);
        let request = Request::of(msg);
        let token = self.conn.lock().token.clone();
        if let Some(token) = &token {
            // Connection mode: every request names the connection.
            match (query.get("clientid"), query.get("token")) {
                (Some(c), Some(t)) if c == &*self.session.info.clientid && t == token.as_str() => {}
                (Some(_), Some(_)) => {
                    return (
                        refused(
                            Code::UNAUTHORIZED,
                            "Invalid token or clientid in connection mode",
                        ),
                        false,
                    )
                }
                _ if request == Request::Connect => {}
                _ => {
                    return (
                        refused(
                            Code::BAD_REQUEST,
                            "Missing token or clientid in connection mode",
                        ),
                        false,
                    )
                }
            }
        }
        match request {
            Request::Connect => {
                let clientid = &self.session.info.clientid;
                let text = match query.get("clientid") {
                    Some(c) if c == &**clientid => "Bad Request: client has connected".to_string(),
                    _ => format!("Bad Request: channel has registered by: {clientid}"),
                };
                (refused(Code::BAD_REQUEST, &text), false)
            }
            Request::Heartbeat => (msg.response(Code::CHANGED), false),
            Request::Disconnect => {
                self.closing = Some(CloseReason::Normal);
                (msg.response(Code::DELETED), false)
            }
            Request::Publish(topic) => self.publish(msg, &query, &topic),
            Request::Observe(filter) => (self.observe(msg, &query, filter), false),
            Request::Unobserve(filter) => {
                let subid = self
                    .conn
                    .lock()
                    .observations
                    .iter()
                    .find(|(_, o)| o.filter == filter)
                    .map(|(id, _)| *id);
                if let Some(subid) = subid {
                    self.cancel_observation(subid);
                }
                // EMQX's "nocontent".
                (msg.response(Code::new(2, 7)), false)
            }
            Request::NextBlock(path) => (self.next_block(msg, &path), false),
            Request::Refused(code, text) => (refused(code, text), false),
        }
    }

    /// A later block of the last notification of observation `path` (RFC 7959 §3.4).
    fn next_block(&mut self, msg: &Message, path: &str) -> Message {
        let refused = |code: Code, text: &str| {
            msg.response(code)
                .with_payload(Bytes::copy_from_slice(text.as_bytes()))
        };
        let Some(Ok(wanted)) = msg.block2() else {
            return refused(Code::BAD_OPTION, "invalid Block2");
        };
        let last = self
            .conn
            .lock()
            .observations
            .values()
            .find(|o| o.filter == path)
            .and_then(|o| o.last.clone());
        let Some((body, etag)) = last else {
            return refused(Code::NOT_FOUND, "no notification to continue");
        };
        match block2_slice(&body, wanted) {
            Ok((block, slice)) => {
                let mut response = msg.response(Code::CONTENT).with_payload(slice);
                if let Ok(value) = block.encode() {
                    response.options.set(option::BLOCK2, value);
                }
                response
                    .options
                    .set(option::ETAG, etag.to_be_bytes().to_vec());
                response
            }
            Err(e) => refused(e.response_code(), "block out of range"),
        }
    }

    /// The Block1 part of a publish (RFC 7959 §2.5): `Ok(None)` when the publish is not
    /// block-wise, `Ok(Some(..))` with the whole body and the last block once it is
    /// complete, `Err(response)` to send instead (2.31 Continue, or a refusal).
    fn upload(&mut self, msg: &Message, topic: &str) -> Result<Option<(Bytes, Block)>, Message> {
        let refused = |code: Code, text: &str| {
            msg.response(code)
                .with_payload(Bytes::copy_from_slice(text.as_bytes()))
        };
        let Some(block) = msg.block1() else {
            return Ok(None);
        };
        let Ok(block) = block else {
            return Err(refused(Code::BAD_OPTION, "invalid Block1"));
        };
        if !self.uploads.contains_key(topic) && self.uploads.len() >= MAX_UPLOADS {
            return Err(refused(Code::SERVICE_UNAVAILABLE, "too many uploads"));
        }
        let assembler = self
            .uploads
            .entry(topic.to_string())
            .or_insert_with(|| Block1Assembler::new(MAX_UPLOAD));
        match assembler.push(block, &msg.payload) {
            Ok(Block1Progress::Continue(echo)) => {
                let mut response = msg.response(Code::CONTINUE);
                if let Ok(value) = echo.encode() {
                    response.options.set(option::BLOCK1, value);
                }
                Err(response)
            }
            Ok(Block1Progress::Complete(body)) => {
                self.uploads.remove(topic);
                Ok(Some((body, block)))
            }
            Err(e) => {
                self.uploads.remove(topic);
                Err(refused(e.response_code(), &e.to_string()))
            }
        }
    }

    fn publish(&mut self, msg: &Message, query: &Query<'_>, topic: &str) -> (Message, bool) {
        let refused = |code: Code, text: &str| {
            msg.response(code)
                .with_payload(Bytes::copy_from_slice(text.as_bytes()))
        };
        let ctx = self.proto.ctx.clone();
        let qos = match qos_of(query) {
            Ok(Some(q)) => QoS::from_u8(q).unwrap_or(QoS::AtMostOnce),
            Ok(None) => CoapSettings::default_qos(self.settings().publish_qos, msg),
            Err(text) => return (refused(Code::BAD_REQUEST, text), false),
        };
        let retain = query.get("retain") == Some("true");
        let expiry = match query.get("expiry").map(str::parse::<u32>) {
            None => None,
            Some(Ok(secs)) => Some(secs),
            Some(Err(_)) => return (refused(Code::BAD_REQUEST, "invalid expiry"), false),
        };
        if ctx.check_topic_name(topic).is_err() {
            return (refused(Code::BAD_REQUEST, "invalid topic"), false);
        }
        if !ctx.authorize(&self.session.info, Action::Publish { qos, retain }, topic) {
            return (refused(Code::UNAUTHORIZED, "Unauthorized"), false);
        }
        let (payload, last_block) = match self.upload(msg, topic) {
            Ok(Some((body, block))) => (body, Some(block)),
            Ok(None) => (msg.payload.clone(), None),
            Err(response) => return (response, false),
        };
        self.session.stats.recv_msg.fetch_add(1, Ordering::Relaxed);
        let routed = ctx.publish_expiring(
            &self.session.info,
            &self.session.mountpoint,
            topic,
            payload,
            qos,
            retain,
            expiry,
        );
        self.dout.congested |= routed.congested;
        let mut response = msg.response(Code::CHANGED);
        if let Some(value) = last_block.and_then(|b| b.encode().ok()) {
            response.options.set(option::BLOCK1, value);
        }
        (response, qos != QoS::AtMostOnce)
    }

    fn observe(&mut self, msg: &Message, query: &Query<'_>, filter: String) -> Message {
        let refused = |code: Code, text: &str| {
            msg.response(code)
                .with_payload(Bytes::copy_from_slice(text.as_bytes()))
        };
        let ctx = self.proto.ctx.clone();
        let qos = match qos_of(query) {
            Ok(Some(q)) => QoS::from_u8(q).unwrap_or(QoS::AtMostOnce),
            Ok(None) => CoapSettings::default_qos(self.settings().subscribe_qos, msg),
            Err(text) => return refused(Code::BAD_REQUEST, text),
        };
        // A CoAP acknowledgement is one step: QoS 2 is delivered as QoS 1.
        let qos = qos.min(QoS::AtLeastOnce);
        if ctx.check_filter(&filter).is_err() {
            return refused(Code::BAD_REQUEST, "invalid topic");
        }
        if !ctx.authorize(&self.session.info, Action::Subscribe { qos }, &filter) {
            return refused(Code::UNAUTHORIZED, "Unauthorized");
        }
        let existing = self
            .conn
            .lock()
            .observations
            .iter_mut()
            .find(|(_, o)| o.filter == filter)
            .map(|(id, o)| {
                // Observed again: the new token names it from now on, the sequence goes on.
                o.token = msg.token;
                *id
            });
        let subid = match existing {
            Some(id) => id,
            None => {
                let mut c = self.conn.lock();
                if c.observations.len() >= MAX_OBSERVATIONS {
                    return refused(Code::SERVICE_UNAVAILABLE, "too many observations");
                }
                let id = c.next_subid;
                c.next_subid = c.next_subid.wrapping_add(1).max(1);
                id
            }
        };
        let opts = SubOptions {
            qos,
            no_local: query.get("nl") == Some("1") || query.get("nl") == Some("true"),
            retain_as_published: false,
            retain_handling: query
                .get("rh")
                .and_then(|r| r.parse::<u8>().ok())
                .filter(|r| *r <= 2)
                .unwrap_or(0),
            subscription_id: Some(subid),
        };
        if ctx
            .subscribe(
                &self.session.info,
                &self.session.cell,
                &self.session.mountpoint,
                &filter,
                opts,
            )
            .is_err()
        {
            return refused(Code::BAD_REQUEST, "invalid topic");
        }
        // A Block2 option in the registration asks for blocks of that size (§2.4).
        let szx = match msg.block2() {
            Some(Ok(b)) => b.szx.min(BLOCK_SZX),
            _ => BLOCK_SZX,
        };
        self.conn
            .lock()
            .observations
            .entry(subid)
            .or_insert(Observation {
                filter,
                token: msg.token,
                seq: 0,
                szx,
                last: None,
            });
        let mut response = msg.response(Code::CONTENT);
        response.options.push_uint(option::OBSERVE, 0);
        response
    }

    fn cancel_observation(&mut self, subid: u32) {
        let removed = self.conn.lock().observations.remove(&subid);
        if let Some(o) = removed {
            self.proto.ctx.unsubscribe(
                &self.session.info,
                &self.session.cell,
                &self.session.mountpoint,
                &o.filter,
            );
        }
    }

    /// The delivery `packet_id` is done with (acknowledged, or sent without asking for an
    /// acknowledgement): free its in-flight slot.
    fn delivered(&mut self, packet_id: Option<u16>, now: Instant) {
        if self.complete(packet_id) {
            self.drain_outbox(now);
        }
    }

    /// Free the in-flight slot of delivery `packet_id` and move the next queued message
    /// into the outbox; true if a slot was freed.
    fn complete(&mut self, packet_id: Option<u16>) -> bool {
        packet_id.is_some_and(|id| self.session.ack_delivery(id))
    }

    /// Send what the session has for the client, as notifications. Deliveries nothing
    /// will acknowledge free their slot at once, which moves more into the outbox: the
    /// loop takes it until it is empty (a loop, not a recursion, however long the
    /// queue).
    fn drain_outbox(&mut self, now: Instant) {
        let mut outbound = Vec::new();
        loop {
            self.session
                .cell
                .take_outbox(self.session.conn_id, &mut outbound);
            if outbound.is_empty() {
                return;
            }
            for o in outbound.drain(..) {
                self.notify(o, now);
            }
        }
    }

    /// One outbound message as notifications of the observations it is for.
    fn notify(&mut self, o: Outbound, now: Instant) {
        let Outbound::Publish {
            packet_id,
            delivery,
            ..
        } = o
        else {
            return;
        };
        let ctx = self.proto.ctx.clone();
        let mut carried = packet_id;
        let mut notified = false;
        let conn = self.conn.clone();
        for subid in &delivery.subscription_ids {
            let mut c = conn.lock();
            let Some(o) = c.observations.get_mut(subid) else {
                continue;
            };
            o.seq = if o.seq >= MAX_SEQ { 1 } else { o.seq + 1 };
            let payload = &delivery.message.payload;
            let mut m =
                Message::new(MessageType::NonConfirmable, Code::CONTENT, 0).with_token(o.token);
            m.options.push_uint(option::OBSERVE, o.seq);
            if payload.len() > Block::size_of(o.szx) {
                // The first block; the client asks for the others (RFC 7959 §3.4).
                let first = Block {
                    num: 0,
                    more: true,
                    szx: o.szx,
                };
                match block2_slice(payload, first) {
                    Ok((block, slice)) => {
                        m = m.with_payload(slice);
                        if let Ok(value) = block.encode() {
                            m.options.set(option::BLOCK2, value);
                        }
                        m.options
                            .set_uint(option::SIZE2, payload.len().min(u32::MAX as usize) as u32);
                        // The Observe sequence numbers the representation: its ETag.
                        m.options.set(option::ETAG, o.seq.to_be_bytes().to_vec());
                        o.last = Some((payload.clone(), o.seq));
                    }
                    Err(_) => continue,
                }
            } else {
                m = m.with_payload(payload.clone());
                o.last = None;
            }
            let confirmable = match self.proto.settings.notify_type {
                NotifyType::Non => false,
                NotifyType::Con => true,
                NotifyType::Qos => delivery.qos != QoS::AtMostOnce,
            };
            let ms = self.ms(now);
            if confirmable {
                match self.endpoint.send_confirmable(m, ms) {
                    Ok(m) => {
                        // The first confirmable notification carries the delivery.
                        self.confirmable.insert(m.message_id, carried.take());
                        self.send(&m, false);
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "coap notification dropped");
                        ctx.metrics.delivery_dropped.inc();
                        continue;
                    }
                }
            } else {
                let m = self.endpoint.send_non_confirmable(m, ms);
                self.send(&m, false);
            }
            notified = true;
        }
        if notified {
            self.session.stats.send_msg.fetch_add(1, Ordering::Relaxed);
            ctx.delivered(&self.session.info, &delivery.message);
        } else {
            ctx.metrics.delivery_dropped.inc();
            ctx.metrics.delivery_dropped_no_subid.inc();
        }
        // Nothing will acknowledge it: done now (the caller's loop sends what
        // this frees).
        if carried.is_some() {
            self.complete(carried);
        }
    }

    /// A response from the device to a request of the management API's.
    fn answered(&mut self, msg: &Message) {
        if !msg.code.is_response() {
            return;
        }
        let Some(pending) = self.requests.remove(&msg.token) else {
            return;
        };
        self.endpoint.cancel(pending.message_id);
        let payload = if pending.octet_stream {
            serde_json::Value::from(base64_encode(&msg.payload))
        } else {
            serde_json::Value::from(String::from_utf8_lossy(&msg.payload).into_owned())
        };
        let answer = serde_json::json!({
            "id": self.session.info.clientid.to_string(),
            "token": String::from_utf8_lossy(msg.token.as_bytes()),
            "method": erlang_code(msg.code),
            "code": msg.code.to_string(),
            "payload": payload,
        });
        let _ = pending.reply.send(Ok(answer));
    }

    /// `ClientCall::Request`: a confirmable request to the device, built from the API's
    /// body (`method`, `uri`, `token`, `content_type`, `payload`).
    fn send_request(
        &mut self,
        body: &serde_json::Value,
        reply: tokio::sync::oneshot::Sender<Result<serde_json::Value, CallError>>,
        now: Instant,
    ) {
        let field = |k: &str| body.get(k).and_then(|v| v.as_str());
        let code = match field("method").unwrap_or("get") {
            "get" => Code::GET,
            "post" => Code::POST,
            "put" => Code::PUT,
            "delete" => Code::DELETE,
            other => {
                let _ = reply.send(Err(CallError::Refused(format!(
                    "method: get, put, post or delete, not {other}"
                ))));
                return;
            }
        };
        let (format, octet_stream) = match field("content_type").unwrap_or("text/plain") {
            "text/plain" => (0u32, false),
            "application/json" => (50, false),
            "application/octet-stream" => (42, true),
            other => {
                let _ = reply.send(Err(CallError::Refused(format!(
                    "content_type: text/plain, application/json or application/octet-stream, not {other}"
                ))));
                return;
            }
        };
        let payload = match (field("payload"), octet_stream) {
            (None, _) => Bytes::new(),
            (Some(p), false) => Bytes::copy_from_slice(p.as_bytes()),
            (Some(p), true) => match base64_decode(p) {
                Some(b) => Bytes::from(b),
                None => {
                    let _ = reply.send(Err(CallError::Refused("payload: not base64".into())));
                    return;
                }
            },
        };
        let token = match field("token") {
            Some(t) => match Token::new(t.as_bytes()) {
                Some(t) => t,
                None => {
                    let _ = reply.send(Err(CallError::Refused("token: at most 8 octets".into())));
                    return;
                }
            },
            None => {
                self.next_request_token = self.next_request_token.wrapping_add(1);
                Token::from_u64(self.next_request_token)
            }
        };
        if self.requests.contains_key(&token) || self.requests.len() >= MAX_REQUESTS {
            let _ = reply.send(Err(CallError::Refused(
                "a request with this token is pending".into(),
            )));
            return;
        }
        let mut m = Message::new(MessageType::Confirmable, code, 0).with_token(token);
        let uri = field("uri").unwrap_or("/");
        let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
        for segment in path.split('/').filter(|s| !s.is_empty()) {
            m.options
                .push(option::URI_PATH, Bytes::copy_from_slice(segment.as_bytes()));
        }
        if !payload.is_empty() {
            m.options.push_uint(option::CONTENT_FORMAT, format);
        }
        for q in query.split('&').filter(|q| !q.is_empty()) {
            m.options
                .push(option::URI_QUERY, Bytes::copy_from_slice(q.as_bytes()));
        }
        let m = m.with_payload(payload);
        match self.endpoint.send_confirmable(m, self.ms(now)) {
            Ok(m) => {
                self.requests.insert(
                    token,
                    PendingRequest {
                        message_id: m.message_id,
                        octet_stream,
                        reply,
                    },
                );
                self.send(&m, false);
            }
            Err(e) => {
                let _ = reply.send(Err(CallError::Refused(e.to_string())));
            }
        }
    }

    fn heartbeat_deadline(&self) -> Instant {
        self.last_recv + self.settings().heartbeat.mul_f32(1.5)
    }

    /// The framework's calls: a request to the device, and the removal of an observed
    /// filter (which ends the observation) are CoAP's own; the rest is the session's.
    fn answer_call(&mut self, call: ClientCall, now: Instant) {
        match call {
            ClientCall::Request { body, reply } => self.send_request(&body, reply, now),
            ClientCall::Unsubscribe { topic, reply } if self.observed(&topic).is_some() => {
                if let Some(id) = self.observed(&topic) {
                    self.cancel_observation(id);
                }
                let _ = reply.send(Ok(()));
            }
            call => {
                if self.session.answer_call(call) {
                    self.drain_outbox(now);
                }
            }
        }
    }

    /// The observation of `filter`, if there is one.
    fn observed(&self, filter: &str) -> Option<u32> {
        self.conn
            .lock()
            .observations
            .iter()
            .find(|(_, o)| o.filter == filter)
            .map(|(id, _)| *id)
    }
}

impl DatagramChannel for CoapChannel {
    fn session(&self) -> &Session {
        &self.session
    }

    fn output(&mut self) -> &mut DatagramOutput {
        &mut self.dout
    }

    fn on_datagram(&mut self, datagram: Bytes, now: Instant) -> Result<(), CloseReason> {
        match crate::wire::decode_counted(&self.proto.ctx, frame::COAP, datagram) {
            Ok(msg) => self.on_message(msg, now),
            Err(rst) => {
                if let Some(rst) = rst {
                    self.send(&rst, false);
                }
            }
        }
        match self.closing.take() {
            Some(reason) => Err(reason),
            None => Ok(()),
        }
    }

    fn on_deliveries(&mut self, now: Instant) -> Result<(), CloseReason> {
        self.drain_outbox(now);
        Ok(())
    }

    fn on_call(&mut self, call: ClientCall) {
        self.answer_call(call, Instant::now());
    }

    fn on_timer(&mut self, now: Instant) -> Result<(), CloseReason> {
        for event in self.endpoint.handle_timeout(self.ms(now)) {
            match event {
                TimeoutEvent::Retransmit(m) => self.send(&m, false),
                TimeoutEvent::Failed { message_id, token } => {
                    if self
                        .requests
                        .get(&token)
                        .is_some_and(|p| p.message_id == message_id)
                    {
                        if let Some(p) = self.requests.remove(&token) {
                            let _ = p.reply.send(Err(CallError::Timeout));
                        }
                    }
                    // The client never acknowledged: the delivery is given up (§4.2).
                    if let Some(Some(packet_id)) = self.confirmable.remove(&message_id) {
                        let discarded =
                            self.session.cell.lock().session.discard_inflight(packet_id);
                        if discarded.is_some() {
                            self.proto.ctx.metrics.delivery_dropped.inc();
                        }
                        let mut dropped = Vec::new();
                        {
                            let mut guard = self.session.cell.lock();
                            let st = &mut *guard;
                            st.session.dequeue(now_ms(), &mut st.outbox, &mut dropped);
                        }
                        self.proto.ctx.count_dropped(dropped);
                        self.drain_outbox(now);
                    }
                }
            }
        }
        if now >= self.heartbeat_deadline() {
            return Err(CloseReason::KeepaliveTimeout);
        }
        Ok(())
    }

    fn next_timer(&self) -> Option<Instant> {
        let heartbeat = self.heartbeat_deadline();
        let retransmit = self
            .endpoint
            .poll_timeout()
            .map(|ms| self.base + Duration::from_millis(ms));
        Some(retransmit.map_or(heartbeat, |r| r.min(heartbeat)))
    }

    fn goodbye(&mut self, _reason: CloseReason) {}

    /// No will; the session ends with the connection (its observations with it), unless
    /// a request from a new address took the connection over.
    fn on_close(&mut self, reason: CloseReason) -> (Option<Will>, u32) {
        if !reason.taken_over() {
            let mut connections = self.proto.connections.lock();
            if connections
                .get(&self.session.info.clientid)
                .is_some_and(|c| Arc::ptr_eq(c, &self.conn))
            {
                connections.remove(&self.session.info.clientid);
            }
        }
        (None, 0)
    }
}

/// A response code as EMQX's request API renders it: `{ok,content}`, `{error,not_found}`.
fn erlang_code(code: Code) -> String {
    let outcome = if code.is_success() { "ok" } else { "error" };
    match code.name() {
        Some(name) => format!("{{{outcome},{name}}}"),
        None => format!("{{{outcome},{code}}}"),
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(text).ok()
}

#[cfg(test)]
mod tests {
    //! The CoAP channel driven by hand: scripted messages in, messages out, a clock that
    //! moves only when the test says. No socket.

    use super::*;
    use crate::config::DefaultQos;
    use crate::opening::CoapOpening;
    use bytes::BytesMut;
    use junction_broker::{system_message, Broker};
    use junction_codec_coap::decode;
    use junction_codec_coap::encode;
    use junction_gateway::driver::datagram::{DatagramOpening, Opened, Peer};
    use junction_gateway::{CommonSettings, GatewayCtx};

    struct Script {
        broker: Arc<Broker>,
        channel: CoapChannel,
        t0: Instant,
        next_mid: u16,
    }

    fn settings(notify_type: NotifyType, qos: DefaultQos) -> CoapSettings {
        CoapSettings {
            heartbeat: Duration::from_secs(10),
            connection_required: false,
            notify_type,
            subscribe_qos: qos,
            publish_qos: qos,
            listener_mountpoint: None,
            session: Default::default(),
        }
    }

    fn bytes(m: &Message) -> Bytes {
        let mut b = BytesMut::new();
        encode(m, &mut b).unwrap();
        b.freeze()
    }

    fn request(kind: MessageType, code: Code, mid: u16, path: &str, queries: &[&str]) -> Message {
        let mut m = Message::new(kind, code, mid).with_token(Token::new(b"ob").unwrap());
        for segment in path.split('/').skip(1) {
            m.options
                .push(option::URI_PATH, Bytes::copy_from_slice(segment.as_bytes()));
        }
        for q in queries {
            m.options
                .push(option::URI_QUERY, Bytes::copy_from_slice(q.as_bytes()));
        }
        m
    }

    impl Script {
        /// A connectionless client whose first request is `first`.
        async fn open(settings: CoapSettings, first: Message) -> Script {
            let broker = Broker::new(Default::default());
            let ctx = GatewayCtx::new(
                "coap",
                "coap",
                crate::frame::NAMES,
                broker.clone(),
                CommonSettings::default(),
            );
            let proto = Arc::new(CoapProtocol::new(ctx.clone(), Arc::new(settings)));
            let peer = Peer {
                addr: "127.0.0.1:5000".parse().unwrap(),
                listener: "coap:udp:default".into(),
                sockport: 5683,
                identity: None,
            };
            let mut opening = CoapOpening::new(proto, peer.clone());
            let Ok(Some(Opened::Connect(request))) = opening.open(bytes(&first), &peer) else {
                panic!("a request opens a connectionless client")
            };
            let admission = ctx.connect(request).await.expect("admitted");
            let t0 = Instant::now();
            let channel = opening.admitted(admission.session, t0);
            Script {
                broker,
                channel,
                t0,
                next_mid: 100,
            }
        }

        fn at(&self, ms: u64) -> Instant {
            self.t0 + Duration::from_millis(ms)
        }

        fn output(&mut self) -> Vec<Message> {
            std::mem::take(&mut self.channel.output().datagrams)
                .into_iter()
                .map(|(d, _)| decode(d).unwrap())
                .collect()
        }

        fn send(&mut self, m: &Message, ms: u64) -> Result<(), CloseReason> {
            self.channel.on_datagram(bytes(m), self.at(ms))
        }

        fn publish(&mut self, topic: &str, payload: &'static str, qos: QoS, ms: u64) {
            let mut m = system_message(topic.into(), payload, false);
            m.qos = qos;
            self.broker.publish(m);
            self.channel.on_deliveries(self.at(ms)).unwrap();
        }

        fn mid(&mut self) -> u16 {
            self.next_mid += 1;
            self.next_mid
        }
    }

    fn observe(mid: u16, filter: &str, queries: &[&str]) -> Message {
        let mut m = request(
            MessageType::Confirmable,
            Code::GET,
            mid,
            &format!("/ps/{filter}"),
            queries,
        );
        m.options.push_uint(option::OBSERVE, 0);
        m
    }

    #[tokio::test]
    async fn confirmable_notifications_are_retransmitted_until_acknowledged() {
        let mut s = Script::open(
            settings(NotifyType::Qos, DefaultQos::Coap),
            observe(1, "sensors/+", &[]),
        )
        .await;
        let [registered] = &s.output()[..] else {
            panic!("one response")
        };
        assert_eq!(registered.code, Code::CONTENT);
        assert_eq!(registered.message_type, MessageType::Acknowledgement);
        assert_eq!(registered.observe(), Some(0));

        // A QoS 1 delivery (a CON observation is QoS 1) goes out as a CON notification.
        s.publish("sensors/t", "21.5", QoS::AtLeastOnce, 10);
        let [n] = &s.output()[..] else { panic!() };
        assert_eq!(n.message_type, MessageType::Confirmable);
        assert_eq!(n.observe(), Some(1));
        assert_eq!(n.token, Token::new(b"ob").unwrap());
        assert_eq!(&n.payload[..], b"21.5");
        let first = n.clone();

        // Not acknowledged: sent again with the same message id, after 2 to 3 s, then
        // after twice that.
        let t1 = s.channel.next_timer().unwrap();
        let wait = t1 - s.at(10);
        assert!(
            wait >= Duration::from_secs(2) && wait <= Duration::from_secs(3),
            "{wait:?}"
        );
        s.channel.on_timer(t1).unwrap();
        let [again] = &s.output()[..] else { panic!() };
        assert_eq!(again.message_id, first.message_id);
        let t2 = s.channel.next_timer().unwrap();
        assert_eq!(t2 - t1, wait * 2);

        // The ACK ends it: nothing more is sent, and the next delivery goes out.
        s.send(&Message::empty_ack(first.message_id), 5_000)
            .unwrap();
        assert!(s.output().is_empty());
        assert!(s.channel.confirmable.is_empty());
        s.publish("sensors/h", "40", QoS::AtLeastOnce, 5_100);
        let [n2] = &s.output()[..] else { panic!() };
        assert_eq!(n2.observe(), Some(2));
        assert_ne!(n2.message_id, first.message_id);
    }

    #[tokio::test]
    async fn a_reset_notification_cancels_the_observation() {
        let mut s = Script::open(
            settings(NotifyType::Non, DefaultQos::Qos0),
            observe(1, "a/#", &[]),
        )
        .await;
        s.output();
        s.publish("a/b", "one", QoS::AtMostOnce, 10);
        let [n] = &s.output()[..] else { panic!() };
        assert_eq!(n.message_type, MessageType::NonConfirmable);
        s.send(&Message::reset(n.message_id), 20).unwrap();
        assert!(s.channel.conn.lock().observations.is_empty());
        s.publish("a/b", "two", QoS::AtMostOnce, 30);
        assert!(s.output().is_empty());
    }

    #[tokio::test]
    async fn a_silent_client_is_gone_after_one_and_a_half_heartbeats() {
        let mut s = Script::open(
            settings(NotifyType::Qos, DefaultQos::Coap),
            observe(1, "t", &[]),
        )
        .await;
        s.output();
        // Heartbeat 10 s: 15 s of silence ends the client; a request pushes it back.
        assert_eq!(s.channel.next_timer(), Some(s.at(15_000)));
        let mid = s.mid();
        let publish = request(MessageType::NonConfirmable, Code::POST, mid, "/ps/t", &[]);
        s.send(&publish, 9_000).unwrap();
        s.channel.on_timer(s.at(15_000)).unwrap();
        assert_eq!(s.channel.next_timer(), Some(s.at(24_000)));
        assert_eq!(
            s.channel.on_timer(s.at(24_000)),
            Err(CloseReason::KeepaliveTimeout)
        );
    }

    #[tokio::test]
    async fn the_default_qos_follows_the_request_type_or_the_setting() {
        // `coap`: a NON observation is QoS 0, so its notifications are NON.
        let mut non = observe(1, "q", &[]);
        non.message_type = MessageType::NonConfirmable;
        let mut s = Script::open(settings(NotifyType::Qos, DefaultQos::Coap), non).await;
        s.output();
        s.publish("q", "x", QoS::AtLeastOnce, 10);
        assert_eq!(s.output()[0].message_type, MessageType::NonConfirmable);
        // A CON publish is QoS 1 under `coap`; `qos1` makes a NON one QoS 1 too.
        let mut q1 = Script::open(settings(NotifyType::Qos, DefaultQos::Qos1), {
            let mut m = observe(1, "q", &[]);
            m.message_type = MessageType::NonConfirmable;
            m
        })
        .await;
        q1.output();
        q1.publish("q", "x", QoS::AtLeastOnce, 10);
        assert_eq!(q1.output()[0].message_type, MessageType::Confirmable);
        // A `qos` query wins over the setting.
        let mut q0 = Script::open(
            settings(NotifyType::Qos, DefaultQos::Qos1),
            observe(1, "q", &["qos=0"]),
        )
        .await;
        q0.output();
        q0.publish("q", "x", QoS::AtLeastOnce, 10);
        assert_eq!(q0.output()[0].message_type, MessageType::NonConfirmable);
    }

    #[tokio::test]
    async fn a_block_wise_upload_is_published_whole() {
        let mut s = Script::open(
            settings(NotifyType::Non, DefaultQos::Qos0),
            observe(1, "big", &[]),
        )
        .await;
        s.output();
        let body: Vec<u8> = (0..40u8).collect();
        for (num, chunk) in body.chunks(16).enumerate() {
            let more = (num + 1) * 16 < body.len();
            let mut m = request(
                MessageType::Confirmable,
                Code::POST,
                10 + num as u16,
                "/ps/big",
                &[],
            )
            .with_payload(Bytes::copy_from_slice(chunk));
            let block = Block {
                num: num as u32,
                more,
                szx: 0,
            };
            m.options.set(option::BLOCK1, block.encode().unwrap());
            s.send(&m, 10 * num as u64).unwrap();
            let out = s.output();
            let ack = out
                .iter()
                .find(|r| r.message_type == MessageType::Acknowledgement)
                .unwrap();
            assert_eq!(ack.block1().unwrap().unwrap().num, num as u32);
            if more {
                assert_eq!(ack.code, Code::CONTINUE);
                assert!(
                    out.iter().all(|r| r.code != Code::CONTENT),
                    "not yet published"
                );
            } else {
                assert_eq!(ack.code, Code::CHANGED);
                // The whole body reached the observer (itself) in one message.
                let note = out.iter().find(|r| r.code == Code::CONTENT).unwrap();
                assert_eq!(&note.payload[..], &body[..]);
            }
        }
        // A block out of order: 4.08 Request Entity Incomplete.
        let mut m = request(MessageType::Confirmable, Code::POST, 50, "/ps/big", &[])
            .with_payload(Bytes::from_static(&[0; 16]));
        let block = Block {
            num: 3,
            more: true,
            szx: 0,
        };
        m.options.set(option::BLOCK1, block.encode().unwrap());
        s.send(&m, 100).unwrap();
        assert_eq!(s.output()[0].code, Code::REQUEST_ENTITY_INCOMPLETE);
    }

    #[tokio::test]
    async fn a_large_notification_goes_block_wise_and_the_rest_is_fetched() {
        let mut s = Script::open(
            settings(NotifyType::Non, DefaultQos::Qos0),
            observe(1, "img/+", &[]),
        )
        .await;
        s.output();
        let body: &'static str = Box::leak("x".repeat(2500).into_boxed_str());
        s.publish("img/1", body, QoS::AtMostOnce, 10);
        let [first] = &s.output()[..] else { panic!() };
        let b = first.block2().unwrap().unwrap();
        assert_eq!((b.num, b.more, b.szx), (0, true, 6));
        assert_eq!(first.payload.len(), 1024);
        assert_eq!(first.options.get_uint(option::SIZE2), Some(Some(2500)));
        // Every block of one representation carries its ETag (RFC 7959 §2.4).
        let etag = first.options.get(option::ETAG).cloned().expect("an ETag");
        let mut got = first.payload.to_vec();
        for num in 1..3u32 {
            let mut m = request(
                MessageType::Confirmable,
                Code::GET,
                20 + num as u16,
                "/ps/img/+",
                &[],
            );
            m.options.set(
                option::BLOCK2,
                Block {
                    num,
                    more: false,
                    szx: 6,
                }
                .encode()
                .unwrap(),
            );
            s.send(&m, 20 + u64::from(num)).unwrap();
            let [r] = &s.output()[..] else { panic!() };
            assert_eq!(r.code, Code::CONTENT);
            let b = r.block2().unwrap().unwrap();
            assert_eq!(b.num, num);
            assert_eq!(b.more, num < 2);
            assert_eq!(r.options.get(option::ETAG), Some(&etag));
            got.extend_from_slice(&r.payload);
        }
        assert_eq!(got, body.as_bytes());
        // The next representation has another ETag.
        let other: &'static str = Box::leak("y".repeat(2500).into_boxed_str());
        s.publish("img/1", other, QoS::AtMostOnce, 30);
        let [next] = &s.output()[..] else { panic!() };
        assert_ne!(next.options.get(option::ETAG), Some(&etag));
    }

    #[tokio::test]
    async fn a_long_queue_of_unacknowledged_deliveries_is_drained_in_a_loop() {
        // QoS 1 deliveries notified as NON complete at once; each frees a slot that the
        // next queued one takes. 50,000 of them must not nest 50,000 calls deep.
        let mut settings = settings(NotifyType::Non, DefaultQos::Qos1);
        settings.session.max_mqueue_len = 100_000;
        let mut s = Script::open(settings, observe(1, "q/#", &[])).await;
        s.output();
        for i in 0..50_000u32 {
            let mut m = system_message(format!("q/{}", i % 7), "x", false);
            m.qos = QoS::AtLeastOnce;
            s.broker.publish(m);
        }
        s.channel.on_deliveries(s.at(10)).unwrap();
        let notes = s.output();
        assert_eq!(notes.len(), 50_000);
        assert!(notes
            .iter()
            .all(|n| n.message_type == MessageType::NonConfirmable));
        let last = notes.last().unwrap().observe().unwrap();
        assert_eq!(last, 50_000);
    }

    #[tokio::test]
    async fn duplicates_get_the_cached_response_and_pings_a_reset() {
        let mut s = Script::open(
            settings(NotifyType::Qos, DefaultQos::Coap),
            observe(1, "d", &[]),
        )
        .await;
        s.output();
        let publish = request(MessageType::Confirmable, Code::POST, 7, "/ps/d", &[]);
        s.send(&publish, 10).unwrap();
        let out = s.output();
        let response = out
            .iter()
            .find(|m| m.message_type == MessageType::Acknowledgement)
            .unwrap()
            .clone();
        assert_eq!(response.code, Code::CHANGED);
        // The client's own publish reaches its observation once, not twice.
        let notes = out.iter().filter(|m| m.code == Code::CONTENT).count();
        assert_eq!(notes, 1);
        s.send(&publish, 20).unwrap();
        assert_eq!(s.output(), [response]);
        s.send(&Message::ping(9), 30).unwrap();
        assert_eq!(s.output(), [Message::reset(9)]);
        // An unknown critical option: 4.02.
        let mut odd = request(MessageType::Confirmable, Code::POST, 11, "/ps/d", &[]);
        odd.options.push(9, Bytes::from_static(b"x"));
        s.send(&odd, 40).unwrap();
        assert_eq!(s.output()[0].code, Code::BAD_OPTION);
    }
}
