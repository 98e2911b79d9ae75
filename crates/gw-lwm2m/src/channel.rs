//! A registered LwM2M device's state machine, with no I/O (reference §5.4): the
//! registration interface (update, re-register, deregister, the lifetime), commands from
//! MQTT sent as confirmable CoAP requests one at a time, and the device's answers and
//! observe notifications published as EMQX's JSON on the translator topics.
//!
//! The RFC 7252 message layer (duplicates, retransmission with back-off) is
//! `junction-codec-coap`'s `Endpoint`. Commands wait in a queue while one is in flight,
//! and, for a device in queue mode that has been silent longer than
//! `qmode_time_window`, until its next uplink; a command whose MQTT message expired
//! meanwhile is dropped.

use crate::command::{self, BadCommand, Command, Kind};
use crate::config::{Translator, UpdateCondition};
use crate::frame;
use crate::protocol::{is_register, Lwm2mProtocol, Lwm2mSettings, Registered};
use crate::registration::Registration;
use bytes::Bytes;
use junction_broker::hooks::Action;
use junction_broker::Will;
use junction_codec_coap::{
    Code, Endpoint, Incoming, Message, MessageType, Params, TimeoutEvent, Token,
};
use junction_codec_lwm2m::{
    decode_senml_cbor, decode_senml_json, emqx_content, untimed, ContentFormat,
};
use junction_gateway::call::{CallError, ClientCall};
use junction_gateway::driver::datagram::{DatagramChannel, DatagramOutput};
use junction_gateway::driver::{CloseReason, Session};
use junction_session::{Outbound, SubOptions};
use junction_types::{now_ms, MessageProperties, QoS};
use serde_json::{json, Value as Json};
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Messages a device's endpoint remembers (duplicates) and keeps outstanding: one
/// command at a time goes out, so few.
const ENDPOINT_CAPACITY: usize = 16;
/// Commands one device may have waiting.
const MAX_QUEUE: usize = 64;
/// Commands answered with an empty ACK, waiting for their separate response.
const MAX_AWAITING: usize = 16;
/// Observations one device may hold.
const MAX_OBSERVATIONS: usize = 64;
/// Results kept for the API's `lookup` (EMQX: 100), and at most this many octets of
/// them: a device answering with large payloads does not make its cache large.
const MAX_RESULTS: usize = 100;
const MAX_RESULT_OCTETS: usize = 64 << 10;
/// Objects auto-observe leaves alone: the management objects (EMQX's list).
const NOT_AUTO_OBSERVED: &[u16] = &[0, 1, 2, 4, 5, 6, 7, 9, 15];

/// A command sent, not yet acknowledged.
struct InFlight {
    message_id: u16,
    token: Token,
    command: Command,
}

/// What a device has been asked: commands queued, in flight, awaited and observed, and
/// the latest results. A registered device that is never commanded keeps none of it.
#[derive(Default)]
pub(crate) struct Commands {
    queue: VecDeque<Command>,
    inflight: Option<InFlight>,
    /// Commands acknowledged empty, by token: their response comes separately.
    awaiting: BTreeMap<Token, Command>,
    /// Observations by token: the observe command, for its notifications.
    observations: BTreeMap<Token, Command>,
    results: VecDeque<Outcome>,
    results_octets: usize,
}

impl Commands {
    /// Take in what a device was asked at its previous address (`older`): it comes
    /// first, within the same bounds.
    fn absorb(&mut self, older: Box<Commands>) {
        let Commands {
            mut queue,
            inflight,
            awaiting,
            observations,
            results,
            results_octets,
        } = *older;
        // A command sent to the old address and not answered there goes again.
        if let Some(sent) = inflight {
            queue.push_front(sent.command);
        }
        queue.append(&mut self.queue);
        queue.truncate(MAX_QUEUE);
        self.queue = queue;
        for (token, command) in awaiting {
            if self.awaiting.len() < MAX_AWAITING {
                self.awaiting.entry(token).or_insert(command);
            }
        }
        for (token, command) in observations {
            if self.observations.len() < MAX_OBSERVATIONS {
                self.observations.entry(token).or_insert(command);
            }
        }
        for r in results.into_iter().rev() {
            self.results.push_front(r);
        }
        self.results_octets += results_octets;
        while self.results.len() > MAX_RESULTS || self.results_octets > MAX_RESULT_OCTETS {
            match self.results.pop_front() {
                Some(old) => self.results_octets -= old.octets,
                None => break,
            }
        }
    }
}

/// No commands, for reading a device that has none.
static NO_COMMANDS: Commands = Commands {
    queue: VecDeque::new(),
    inflight: None,
    awaiting: BTreeMap::new(),
    observations: BTreeMap::new(),
    results: VecDeque::new(),
    results_octets: 0,
};

/// One command's result, for `lookup`.
struct Outcome {
    path: String,
    action: String,
    data: Json,
    /// Its size as JSON, counted against [`MAX_RESULT_OCTETS`].
    octets: usize,
}

/// A registered device.
pub(crate) struct Lwm2mChannel {
    proto: Arc<Lwm2mProtocol>,
    session: Session,
    dout: DatagramOutput,
    endpoint: Endpoint,
    /// The clock's origin for the endpoint's milliseconds.
    base: Instant,
    last_recv: Instant,
    /// The registration, shared with the listener's table of them.
    shared: Arc<Registered>,
    /// What the device has been asked; allocated with its first command.
    cmds: Option<Box<Commands>>,
    next_token: u64,
    closing: Option<CloseReason>,
}

impl Lwm2mChannel {
    pub fn new(
        proto: Arc<Lwm2mProtocol>,
        session: Session,
        dout: DatagramOutput,
        shared: Arc<Registered>,
        now: Instant,
    ) -> Lwm2mChannel {
        let seed = rand::random::<u64>();
        Lwm2mChannel {
            proto,
            session,
            dout,
            endpoint: Endpoint::new(Params::default(), ENDPOINT_CAPACITY, seed),
            base: now,
            last_recv: now,
            shared,
            cmds: None,
            next_token: seed.rotate_left(17),
            closing: None,
        }
    }

    fn ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.base).as_millis() as u64
    }

    /// What the device has been asked (nothing, if it never was).
    fn cmds(&self) -> &Commands {
        self.cmds.as_deref().unwrap_or(&NO_COMMANDS)
    }

    /// What the device has been asked, made on first use.
    fn cmds_mut(&mut self) -> &mut Commands {
        self.cmds.get_or_insert_with(Box::default)
    }

    /// The registration moved here from another address: take over what the channel
    /// there was asked (its observations, awaited responses, queued commands), left in
    /// the shared registration as it closed. True if there was something.
    fn adopt(&mut self) -> bool {
        let Some(older) = self.shared.handover.lock().take() else {
            return false;
        };
        match &mut self.cmds {
            None => {
                let mut older = older;
                if let Some(sent) = older.inflight.take() {
                    older.queue.push_front(sent.command);
                }
                self.cmds = Some(older);
            }
            Some(mine) => mine.absorb(older),
        }
        true
    }

    fn reg(&self) -> parking_lot::MutexGuard<'_, Registration> {
        self.shared.reg.lock()
    }

    fn settings(&self) -> &Lwm2mSettings {
        &self.proto.settings
    }

    fn send(&mut self, msg: &Message) {
        if let Some(b) = self.proto.encode(msg) {
            self.send_encoded(b);
        }
    }

    fn send_encoded(&mut self, b: Bytes) {
        self.session.stats.send_pkt.fetch_add(1, Ordering::Relaxed);
        self.dout.push(b);
    }

    /// Send `response` to `request`, remembered for a duplicate of a CON.
    fn respond(&mut self, request: &Message, mut response: Message, now: Instant) {
        if response.message_type == MessageType::NonConfirmable {
            response = self.endpoint.send_non_response(response, self.ms(now));
        }
        let Some(b) = self.proto.encode(&response) else {
            return;
        };
        if request.message_type == MessageType::Confirmable {
            self.endpoint.record_response(request.message_id, &b);
        }
        self.send_encoded(b);
    }

    /// The REGISTER that opened the channel: 2.01 with the location, the command topic
    /// subscribed, the register event published, and the objects observed if
    /// `auto_observe`.
    pub fn registered(&mut self, request: &Message, now: Instant) {
        let ms = self.ms(now);
        self.endpoint.handle_incoming(request, ms);
        self.session.stats.recv_pkt.fetch_add(1, Ordering::Relaxed);
        let mut response = request.response(Code::CREATED);
        let ep = self.reg().endpoint.clone();
        response.set_location_path(&["rd", &ep]);
        self.respond(request, response, now);
        self.proto
            .registrations
            .lock()
            .insert(ep, self.shared.clone());
        self.subscribe_commands();
        let event = self.reg().event("register");
        let register = self.settings().translators.register.clone();
        self.publish(&register, &event);
        if self.settings().auto_observe {
            self.auto_observe();
        }
        self.pump(now);
    }

    /// A registration moved here by an UPDATE or a De-register from this address: the
    /// request is served as the old address's channel would have.
    pub fn moved(&mut self, request: Message, now: Instant) {
        tracing::debug!(clientid = %self.session.info.clientid, peer = %self.session.info.peername, "lwm2m registration moved to a new address");
        self.on_message(request, now);
    }

    /// The command topic under the mountpoint, subscribed with the command QoS; the
    /// subscription is authorized on the mounted topic (EMQX's rule for LwM2M).
    fn subscribe_commands(&mut self) {
        let ctx = self.proto.ctx.clone();
        let command = &self.settings().translators.command;
        let qos = QoS::from_u8(command.qos).unwrap_or(QoS::AtMostOnce);
        let mounted = self.session.mountpoint.mount_filter(&command.topic);
        if !ctx.authorize(&self.session.info, Action::Subscribe { qos }, &mounted) {
            tracing::debug!(clientid = %self.session.info.clientid, topic = %mounted, "lwm2m command subscription not authorized");
            return;
        }
        let opts = SubOptions {
            qos,
            no_local: false,
            retain_as_published: false,
            retain_handling: 0,
            subscription_id: None,
        };
        if let Err(e) = ctx.subscribe(
            &self.session.info,
            &self.session.cell,
            &self.session.mountpoint,
            &command.topic,
            opts,
        ) {
            tracing::warn!(error = %e, "lwm2m command topic refused");
        }
    }

    /// Publish `json` on a translator topic under the mountpoint, authorized on the
    /// mounted topic; a publish the rules deny is dropped (EMQX's rule).
    fn publish(&mut self, translator: &Translator, json: &Json) {
        self.publish_on(&translator.topic, translator.qos, json);
    }

    fn publish_on(&mut self, topic: &str, qos: u8, json: &Json) {
        let ctx = self.proto.ctx.clone();
        let qos = QoS::from_u8(qos).unwrap_or(QoS::AtMostOnce);
        let mounted = self.session.mountpoint.mount(topic);
        let action = Action::Publish { qos, retain: false };
        if !ctx.authorize(&self.session.info, action, &mounted) {
            tracing::debug!(clientid = %self.session.info.clientid, topic = %mounted, "lwm2m uplink not authorized: dropped");
            ctx.metrics.messages_dropped_not_authorized.inc();
            return;
        }
        self.session.stats.recv_msg.fetch_add(1, Ordering::Relaxed);
        let routed = ctx.publish(
            &self.session.info,
            &self.session.mountpoint,
            topic,
            Bytes::from(json.to_string()),
            qos,
            false,
            MessageProperties::default(),
        );
        self.dout.congested |= routed.congested;
    }

    fn publish_response(&mut self, json: &Json) {
        let response = self.settings().translators.response.clone();
        self.publish(&response, json);
    }

    fn auto_observe(&mut self) {
        let registry = self.proto.objects.snapshot();
        let paths: Vec<String> = self
            .reg()
            .objects
            .iter()
            .filter(|p| {
                let id = p
                    .trim_start_matches('/')
                    .split('/')
                    .next()
                    .and_then(|id| id.parse::<u16>().ok());
                id.is_some_and(|id| !NOT_AUTO_OBSERVED.contains(&id) && registry.get(id).is_some())
            })
            .cloned()
            .collect();
        for path in paths {
            let body = json!({ "msgType": "observe", "data": { "path": path } });
            self.enqueue_json(&body, None);
        }
    }

    fn on_message(&mut self, msg: Message, now: Instant) {
        self.session.stats.recv_pkt.fetch_add(1, Ordering::Relaxed);
        self.last_recv = now;
        match self.endpoint.handle_incoming(&msg, self.ms(now)) {
            Incoming::New if msg.code.is_request() => {
                if let Some(response) = self.request(&msg, now) {
                    self.respond(&msg, response, now);
                }
            }
            Incoming::New => self.answer_or_notification(&msg),
            Incoming::Ping(rst) => self.send(&rst),
            Incoming::Duplicate(Some(response)) => self.send_encoded(response),
            Incoming::Duplicate(None) | Incoming::Ignore => {}
            Incoming::Acknowledged { message_id, .. } => {
                if self
                    .cmds()
                    .inflight
                    .as_ref()
                    .is_some_and(|i| i.message_id == message_id)
                {
                    if let Some(sent) = self.cmds_mut().inflight.take() {
                        if msg.code.is_empty() {
                            // A separate response will follow (RFC 7252 §5.2.2).
                            let data = json!({ "reqPath": sent.command.req_path });
                            self.publish_response(&sent.command.published(Some("ack"), data));
                            if self.cmds().awaiting.len() < MAX_AWAITING {
                                self.cmds_mut().awaiting.insert(sent.token, sent.command);
                            }
                        } else {
                            self.answered(sent.token, sent.command, &msg);
                        }
                    }
                }
            }
            Incoming::Reset { message_id, .. } => self.inflight_failed(message_id, "coap_reset"),
        }
        // An uplink wakes a device in queue mode: what waited goes now.
        self.pump(now);
    }

    /// The command in flight as `message_id` got a Reset or no answer at all: published
    /// as `coap_reset` or `coap_timeout`, and the next one may go.
    fn inflight_failed(&mut self, message_id: u16, msg_type: &str) {
        if self
            .cmds()
            .inflight
            .as_ref()
            .is_none_or(|i| i.message_id != message_id)
        {
            return;
        }
        if let Some(sent) = self.cmds_mut().inflight.take() {
            let data = json!({ "reqPath": sent.command.req_path });
            self.publish_response(&sent.command.published(Some(msg_type), data));
        }
    }

    /// A request of the device's: the registration interface, and (LwM2M 1.1) Send.
    fn request(&mut self, msg: &Message, now: Instant) -> Option<Message> {
        let refused = |code: Code, text: &str| {
            msg.response(code)
                .with_payload(Bytes::copy_from_slice(text.as_bytes()))
        };
        let lifetimes = self.settings().lifetimes;
        let segments: Vec<&[u8]> = msg.uri_path_segments().collect();
        let ep = self.reg().endpoint.clone();
        let ours = |s: &[u8]| s == ep.as_bytes();
        let query = msg.uri_queries().unwrap_or_default();
        match (msg.code, segments.as_slice()) {
            (Code::POST, _) if is_register(msg) => {
                let new = match Registration::register(&query, &msg.payload, lifetimes) {
                    Ok(r) => r,
                    Err(e) => return Some(refused(Code::BAD_REQUEST, &e.0)),
                };
                if new.endpoint != ep {
                    return Some(refused(
                        Code::BAD_REQUEST,
                        "this address is registered as another endpoint",
                    ));
                }
                self.reg().reregister(new);
                self.lifetime_changed();
                let mut response = msg.response(Code::CREATED);
                response.set_location_path(&["rd", &ep]);
                self.respond(msg, response, now);
                self.subscribe_commands();
                let event = self.reg().event("register");
                let register = self.settings().translators.register.clone();
                self.publish(&register, &event);
                None
            }
            (Code::POST, [rd, ep]) if *rd == b"rd" && ours(ep) => {
                let updated = self.reg().update(&query, &msg.payload, lifetimes);
                let carried = match updated {
                    Ok(c) => c,
                    Err(e) => return Some(refused(Code::BAD_REQUEST, &e.0)),
                };
                self.lifetime_changed();
                self.respond(msg, msg.response(Code::CHANGED), now);
                if carried || self.settings().update_condition == UpdateCondition::Always {
                    let event = self.reg().event("update");
                    let update = self.settings().translators.update.clone();
                    self.publish(&update, &event);
                }
                None
            }
            (Code::DELETE, [rd, ep]) if *rd == b"rd" && ours(ep) => {
                self.closing = Some(CloseReason::Normal);
                Some(msg.response(Code::DELETED))
            }
            (Code::POST, [dp]) if *dp == b"dp" => Some(self.send_operation(msg)),
            _ => Some(msg.response(Code::NOT_FOUND)),
        }
    }

    /// LwM2M 1.1 Send (`POST /dp`, SenML): the values, published on the notify topic
    /// with `msgType` `send`.
    fn send_operation(&mut self, msg: &Message) -> Message {
        let records = match msg.content_format().and_then(ContentFormat::from_code) {
            Some(ContentFormat::SenmlJson) => decode_senml_json(&msg.payload),
            Some(ContentFormat::SenmlCbor) => decode_senml_cbor(&msg.payload),
            _ => return msg.response(Code::UNSUPPORTED_CONTENT_FORMAT),
        };
        let Ok(records) = records else {
            return msg.response(Code::BAD_REQUEST);
        };
        let event = json!({
            "msgType": "send",
            "data": { "content": emqx_content(&untimed(records)) },
        });
        let notify = self.settings().translators.notify.clone();
        self.publish(&notify, &event);
        msg.response(Code::CHANGED)
    }

    /// The lifetime is the client's keepalive (EMQX shows it so), in the API's view too.
    fn lifetime_changed(&mut self) {
        let lifetime = self.reg().lifetime;
        if self.session.info.keepalive != lifetime {
            Arc::make_mut(&mut self.session.info).keepalive = lifetime;
            self.proto
                .ctx
                .clients
                .set_info(self.session.conn_id, self.session.info.clone());
        }
    }

    /// A response (to a command) or a notification (of an observation).
    fn answer_or_notification(&mut self, msg: &Message) {
        if !msg.code.is_response() {
            return;
        }
        let cmds = self.cmds();
        let known =
            cmds.awaiting.contains_key(&msg.token) || cmds.observations.contains_key(&msg.token);
        if !known {
            // Nothing asked for this (an observation cancelled meanwhile): a Reset stops
            // it (RFC 7641 §3.6).
            if msg.message_type != MessageType::Acknowledgement {
                self.send(&Message::reset(msg.message_id));
            }
            return;
        }
        if msg.message_type == MessageType::Confirmable {
            self.send(&Message::empty_ack(msg.message_id));
        }
        if let Some(command) = self.cmds_mut().awaiting.remove(&msg.token) {
            self.answered(msg.token, command, msg);
            return;
        }
        let Some(command) = self.cmds().observations.get(&msg.token).cloned() else {
            return;
        };
        match msg.observe() {
            Some(seq) => self.notify(&command, seq, msg),
            None => {
                // A response without Observe ends the observation (RFC 7641 §3.2).
                self.cmds_mut().observations.remove(&msg.token);
                let registry = self.proto.objects.snapshot();
                let data = command.result(msg, &registry);
                self.publish_response(&command.published(None, data));
            }
        }
    }

    /// A notification: on the notify topic with its sequence number; firmware update
    /// (object 5) on EMQX's `v1/up/dm`.
    fn notify(&mut self, command: &Command, seq: u32, msg: &Message) {
        let registry = self.proto.objects.snapshot();
        let data = command.result(msg, &registry);
        let mut out = command.published(Some("notify"), data);
        if let Json::Object(o) = &mut out {
            o.insert("seqNum".into(), seq.into());
        }
        if command.path.object_id() == 5 {
            self.publish_on("v1/up/dm", 0, &out);
        } else {
            let notify = self.settings().translators.notify.clone();
            self.publish(&notify, &out);
        }
    }

    /// The device answered `command` (sent with `token`).
    fn answered(&mut self, token: Token, command: Command, msg: &Message) {
        let registry = self.proto.objects.snapshot();
        let data = command.result(msg, &registry);
        match command.kind {
            Kind::Observe | Kind::ObserveComposite
                if msg.code.is_success()
                    && (self.cmds().observations.len() < MAX_OBSERVATIONS
                        || self.cmds().observations.contains_key(&token)) =>
            {
                self.cmds_mut().observations.insert(token, command.clone());
            }
            Kind::CancelObserve | Kind::CancelObserveComposite => {
                self.cmds_mut()
                    .observations
                    .retain(|_, c| !command.cancels(c));
            }
            _ => {}
        }
        let action = command
            .echo
            .get("msgType")
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_string();
        self.remember(command.req_path.clone(), action, data.clone());
        self.publish_response(&command.published(None, data));
    }

    fn remember(&mut self, path: String, action: String, data: Json) {
        let octets = path.len() + action.len() + data.to_string().len();
        if octets > MAX_RESULT_OCTETS {
            return;
        }
        let cmds = self.cmds_mut();
        cmds.results_octets += octets;
        cmds.results.push_back(Outcome {
            path,
            action,
            data,
            octets,
        });
        while cmds.results.len() > MAX_RESULTS || cmds.results_octets > MAX_RESULT_OCTETS {
            match cmds.results.pop_front() {
                Some(old) => cmds.results_octets -= old.octets,
                None => break,
            }
        }
    }

    /// Commands delivered by the broker: each read, queued, and its delivery completed.
    fn drain_outbox(&mut self, now: Instant) {
        let mut outbound = Vec::new();
        loop {
            self.session
                .cell
                .take_outbox(self.session.conn_id, &mut outbound);
            if outbound.is_empty() {
                break;
            }
            for o in outbound.drain(..) {
                let Outbound::Publish {
                    packet_id,
                    delivery,
                    ..
                } = o
                else {
                    continue;
                };
                self.session.stats.send_msg.fetch_add(1, Ordering::Relaxed);
                self.proto
                    .ctx
                    .delivered(&self.session.info, &delivery.message);
                let expires = delivery.message.expires_at_ms;
                let payload = delivery.message.payload.clone();
                self.enqueue_payload(&payload, expires);
                self.complete(packet_id);
            }
        }
        self.pump(now);
    }

    /// Free the in-flight slot of a delivery: the command is the gateway's now.
    fn complete(&mut self, packet_id: Option<u16>) {
        if let Some(id) = packet_id {
            self.session.ack_delivery(id);
        }
    }

    fn enqueue_json(&mut self, body: &Json, expires: Option<u64>) -> bool {
        self.enqueue_payload(body.to_string().as_bytes(), expires)
    }

    /// Read a command and queue it; false if it was dropped.
    fn enqueue_payload(&mut self, payload: &[u8], expires: Option<u64>) -> bool {
        let registry = self.proto.objects.snapshot();
        match command::parse(payload, &registry, expires) {
            Ok(Some(cmd)) if self.cmds().queue.len() < MAX_QUEUE => {
                self.cmds_mut().queue.push_back(cmd);
                true
            }
            Ok(_) => {
                self.proto.ctx.metrics.delivery_dropped.inc();
                false
            }
            Err(bad) => {
                self.publish_bad(&bad);
                false
            }
        }
    }

    fn publish_bad(&mut self, bad: &BadCommand) {
        self.publish_response(&bad.published());
    }

    /// Whether the device is asleep: in queue mode and silent longer than the window.
    fn asleep(&self, now: Instant) -> bool {
        self.reg().queue_mode()
            && now.saturating_duration_since(self.last_recv) > self.settings().qmode_time_window
    }

    /// Send the next command if none is in flight and the device is awake.
    fn pump(&mut self, now: Instant) {
        while self.cmds().inflight.is_none() && !self.asleep(now) {
            let Some(command) = self.cmds.as_mut().and_then(|c| c.queue.pop_front()) else {
                return;
            };
            if command.expires_at_ms.is_some_and(|t| now_ms() >= t) {
                self.proto.ctx.metrics.delivery_dropped.inc();
                continue;
            }
            let token = match command.kind {
                // Cancelled with the observation's own token (RFC 7641 §3.6).
                Kind::CancelObserve | Kind::CancelObserveComposite => self
                    .cmds()
                    .observations
                    .iter()
                    .find(|(_, c)| command.cancels(c))
                    .map(|(t, _)| *t)
                    .unwrap_or_else(|| self.new_token()),
                _ => self.new_token(),
            };
            let alternate = self.reg().alternate_path.clone();
            let m = command.message(&alternate).with_token(token);
            match self.endpoint.send_confirmable(m, self.ms(now)) {
                Ok(m) => {
                    self.send(&m);
                    self.cmds_mut().inflight = Some(InFlight {
                        message_id: m.message_id,
                        token,
                        command,
                    });
                }
                Err(e) => {
                    tracing::debug!(error = %e, "lwm2m command dropped");
                    self.proto.ctx.metrics.delivery_dropped.inc();
                }
            }
        }
    }

    fn new_token(&mut self) -> Token {
        self.next_token = self.next_token.wrapping_add(1);
        Token::from_u64(self.next_token)
    }

    fn lifetime_deadline(&self) -> Instant {
        self.last_recv + Duration::from_secs(u64::from(self.reg().lifetime))
    }

    /// The management API's calls: `lookup` of a cached result, and `read`, `write`,
    /// `observe` queued as commands; the rest is the session's.
    fn answer_call(&mut self, call: ClientCall, now: Instant) {
        match call {
            ClientCall::Request { body, reply } => {
                let answer = self.api_request(&body);
                let _ = reply.send(answer);
                self.pump(now);
            }
            call => {
                if self.session.answer_call(call) {
                    self.drain_outbox(now);
                }
            }
        }
    }

    fn api_request(&mut self, body: &Json) -> Result<Json, CallError> {
        let field = |k: &str| body.get(k).and_then(Json::as_str);
        let path = field("path").unwrap_or_default().to_string();
        match field("op") {
            Some("lookup") => {
                let action = field("action").unwrap_or("read").to_string();
                Ok(self.lookup(&path, &action))
            }
            Some("command") => {
                let Some(command) = body.get("command") else {
                    return Err(CallError::Refused("no command".into()));
                };
                let registry = self.proto.objects.snapshot();
                let bytes = command.to_string();
                match command::parse(bytes.as_bytes(), &registry, None) {
                    Ok(Some(cmd)) if self.cmds().queue.len() < MAX_QUEUE => {
                        self.cmds_mut().queue.push_back(cmd);
                        Ok(json!({}))
                    }
                    Ok(Some(_)) => Err(CallError::Refused("too many commands waiting".into())),
                    Ok(None) => Err(CallError::Refused("not a command".into())),
                    Err(bad) => Err(CallError::Refused(bad.error)),
                }
            }
            _ => Err(CallError::Unsupported),
        }
    }

    /// The latest result of `action` on `path` (EMQX's `lookup`); discover's links are
    /// enriched with the object definitions.
    fn lookup(&self, path: &str, action: &str) -> Json {
        let clientid = self.session.info.clientid.to_string();
        let found = self
            .cmds()
            .results
            .iter()
            .rev()
            .find(|r| r.path == path && r.action == action);
        let Some(r) = found else {
            return json!({
                "clientid": clientid, "path": path, "action": action,
                "code": "6.01", "codeMsg": "reply_not_received",
            });
        };
        let mut content = r.data.get("content").cloned().unwrap_or(Json::Null);
        if action == "discover" {
            content = self.enrich(&content);
        }
        json!({
            "clientid": clientid, "path": path, "action": action,
            "code": r.data.get("code").cloned().unwrap_or(Json::Null),
            "codeMsg": r.data.get("codeMsg").cloned().unwrap_or(Json::Null),
            "content": content,
        })
    }

    /// `[{path, name, operations, dataType}]` for each discovered link.
    fn enrich(&self, links: &Json) -> Json {
        let registry = self.proto.objects.snapshot();
        let Json::Array(links) = links else {
            return links.clone();
        };
        let rows = links
            .iter()
            .filter_map(Json::as_str)
            .map(|link| {
                let target = link
                    .trim_start_matches('<')
                    .split('>')
                    .next()
                    .unwrap_or_default();
                let def = junction_codec_lwm2m::Path::parse(target)
                    .ok()
                    .and_then(|p| registry.resource(&p).cloned());
                match def {
                    Some(d) => json!({
                        "path": target, "name": d.name,
                        "operations": d.operations.name(), "dataType": d.kind.oma_name(),
                    }),
                    None => json!({ "path": target }),
                }
            })
            .collect();
        Json::Array(rows)
    }
}

impl DatagramChannel for Lwm2mChannel {
    fn session(&self) -> &Session {
        &self.session
    }

    fn output(&mut self) -> &mut DatagramOutput {
        &mut self.dout
    }

    fn on_datagram(&mut self, datagram: Bytes, now: Instant) -> Result<(), CloseReason> {
        self.adopt();
        match junction_gw_coap::wire::decode_counted(&self.proto.ctx, frame::COAP, datagram) {
            Ok(msg) => self.on_message(msg, now),
            Err(rst) => {
                if let Some(rst) = rst {
                    self.send(&rst);
                }
            }
        }
        match self.closing.take() {
            Some(reason) => Err(reason),
            None => Ok(()),
        }
    }

    fn on_deliveries(&mut self, now: Instant) -> Result<(), CloseReason> {
        if self.adopt() {
            self.pump(now);
        }
        self.drain_outbox(now);
        Ok(())
    }

    fn on_call(&mut self, call: ClientCall) {
        if self.adopt() {
            self.pump(Instant::now());
        }
        self.answer_call(call, Instant::now());
    }

    fn on_timer(&mut self, now: Instant) -> Result<(), CloseReason> {
        if self.adopt() {
            self.pump(now);
        }
        // A De-register that moved the registration here closes at once.
        if let Some(reason) = self.closing.take() {
            return Err(reason);
        }
        for event in self.endpoint.handle_timeout(self.ms(now)) {
            match event {
                TimeoutEvent::Retransmit(m) => self.send(&m),
                TimeoutEvent::Failed { message_id, .. } => {
                    self.inflight_failed(message_id, "coap_timeout")
                }
            }
        }
        if now >= self.lifetime_deadline() {
            // EMQX's reason for an expired registration.
            return Err(CloseReason::Protocol("timeout"));
        }
        self.pump(now);
        Ok(())
    }

    fn next_timer(&self) -> Option<Instant> {
        if self.closing.is_some() {
            return Some(self.base);
        }
        let lifetime = self.lifetime_deadline();
        let retransmit = self
            .endpoint
            .poll_timeout()
            .map(|ms| self.base + Duration::from_millis(ms));
        Some(retransmit.map_or(lifetime, |r| r.min(lifetime)))
    }

    fn goodbye(&mut self, _reason: CloseReason) {}

    /// No will; the session (the command subscription) ends with the registration,
    /// unless the registration moved to a new address.
    fn on_close(&mut self, reason: CloseReason) -> (Option<Will>, u32) {
        if reason.taken_over() {
            // The registration moved: the channel at the new address takes over what
            // this one was asked.
            if let Some(cmds) = self.cmds.take() {
                let mut handover = self.shared.handover.lock();
                match handover.as_mut() {
                    Some(waiting) => waiting.absorb(cmds),
                    None => *handover = Some(cmds),
                }
            }
        } else {
            let ep = self.reg().endpoint.clone();
            let mut registrations = self.proto.registrations.lock();
            if registrations
                .get(&ep)
                .is_some_and(|r| Arc::ptr_eq(r, &self.shared))
            {
                registrations.remove(&ep);
            }
        }
        (None, 0)
    }
}

#[cfg(test)]
mod tests {
    //! The LwM2M channel driven by hand: a scripted device, MQTT commands published into
    //! the broker, a clock that moves only when the test says. No socket.

    use super::*;
    use crate::config::Translators;
    use crate::objects::Objects;
    use crate::opening::Lwm2mOpening;
    use crate::registration::Lifetimes;
    use bytes::BytesMut;
    use junction_broker::{system_message, Broker};
    use junction_codec_coap::decode;
    use junction_codec_coap::{encode, option};
    use junction_gateway::driver::datagram::{DatagramOpening, Opened, Peer};
    use junction_gateway::{CommonSettings, GatewayCtx};

    struct Script {
        broker: Arc<Broker>,
        channel: Lwm2mChannel,
        /// What the gateway published, as (topic, JSON).
        events: tokio::sync::mpsc::UnboundedReceiver<(String, Json)>,
        t0: Instant,
        next_mid: u16,
    }

    fn settings() -> Lwm2mSettings {
        Lwm2mSettings {
            lifetimes: Lifetimes { min: 1, max: 86400 },
            qmode_time_window: Duration::from_secs(22),
            auto_observe: false,
            update_condition: UpdateCondition::ContainsObjectList,
            translators: Translators::default(),
            listener_mountpoint: None,
            session: Default::default(),
        }
    }

    fn bytes(m: &Message) -> Bytes {
        let mut b = BytesMut::new();
        encode(m, &mut b).unwrap();
        b.freeze()
    }

    fn request(code: Code, mid: u16, path: &[&str], queries: &[&str], payload: &[u8]) -> Message {
        let mut m = Message::new(MessageType::Confirmable, code, mid)
            .with_token(Token::new(b"dv").unwrap())
            .with_payload(Bytes::copy_from_slice(payload));
        for segment in path {
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
        async fn open(settings: Lwm2mSettings, queries: &[&str], objects: &[u8]) -> Script {
            let broker = Broker::new(Default::default());
            let common = CommonSettings {
                mountpoint: "lwm2m/${endpoint_name}/".into(),
                ..CommonSettings::default()
            };
            let ctx = GatewayCtx::new(
                "lwm2m",
                "lwm2m",
                crate::frame::NAMES,
                broker.clone(),
                common,
            );
            // An observer of everything the device's events are published on.
            let (tx, events) = tokio::sync::mpsc::unbounded_channel();
            let observer = move |a: &mut junction_broker::hooks::PublishArgs| {
                let m = &a.message;
                let uplink = m.topic.starts_with("lwm2m/") && !m.topic.contains("/dn/");
                if let (true, Ok(json)) = (uplink, serde_json::from_slice::<Json>(&m.payload)) {
                    let _ = tx.send((m.topic.to_string(), json));
                }
                junction_broker::Flow::Continue
            };
            broker.hooks.message_publish.add(0, Arc::new(observer));
            let proto = Arc::new(Lwm2mProtocol::new(
                ctx.clone(),
                Arc::new(settings),
                Arc::new(Objects::default()),
            ));
            let peer = Peer {
                addr: "127.0.0.1:5000".parse().unwrap(),
                listener: "lwm2m:udp:default".into(),
                sockport: 5783,
                identity: None,
            };
            let mut opening = Lwm2mOpening::new(proto, peer.clone());
            let register = request(Code::POST, 1, &["rd"], queries, objects);
            let Ok(Some(Opened::Connect(req))) = opening.open(bytes(&register), &peer) else {
                panic!("a REGISTER opens a client")
            };
            let admission = ctx.connect(req).await.expect("admitted");
            let t0 = Instant::now();
            let channel = opening.admitted(admission.session, t0);
            Script {
                broker,
                channel,
                events,
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

        fn command(&mut self, json: Json, ms: u64) {
            let topic = "lwm2m/dev1/dn/cmd".to_string();
            let m = system_message(topic, json.to_string(), false);
            self.broker.publish(m);
            self.channel.on_deliveries(self.at(ms)).unwrap();
        }

        fn event(&mut self) -> (String, Json) {
            self.events.try_recv().expect("an event was published")
        }

        fn events_of(&mut self, msg_type: &str) -> Vec<Json> {
            let mut out = Vec::new();
            while let Ok((_, e)) = self.events.try_recv() {
                if e["msgType"] == msg_type {
                    out.push(e);
                }
            }
            out
        }

        fn mid(&mut self) -> u16 {
            self.next_mid += 1;
            self.next_mid
        }
    }

    const REG: &[&str] = &["ep=dev1", "lt=60", "lwm2m=1.1"];

    #[tokio::test]
    async fn commands_go_one_at_a_time_and_time_out_with_coap_timeout() {
        let mut s = Script::open(settings(), &["ep=dev1", "lt=600"], b"</3/0>").await;
        let [created] = &s.output()[..] else { panic!() };
        assert_eq!(created.code, Code::CREATED);
        let (topic, register) = s.event();
        assert_eq!(topic, "lwm2m/dev1/up/resp");
        assert_eq!(register["msgType"], "register");

        s.command(
            json!({"reqID": 1, "msgType": "read", "data": {"path": "/3/0/1"}}),
            10,
        );
        s.command(
            json!({"reqID": 2, "msgType": "read", "data": {"path": "/3/0/2"}}),
            20,
        );
        // One confirmable command in flight: the second waits.
        let out = s.output();
        assert_eq!(out.len(), 1);
        let first = out[0].clone();
        assert_eq!(first.uri_path().as_deref(), Some("3/0/1"));

        // Never acknowledged: retransmitted, then given up (RFC 7252's 4 retransmissions,
        // 2-3 s doubling: at most 93 s), published as coap_timeout; the next goes.
        let mut sent = 1;
        while let Some(t) = s.channel.next_timer() {
            if t >= s.channel.lifetime_deadline() {
                break;
            }
            s.channel.on_timer(t).unwrap();
            for m in s.output() {
                if m.message_id == first.message_id {
                    sent += 1;
                } else {
                    assert_eq!(m.uri_path().as_deref(), Some("3/0/2"));
                    assert_eq!(sent, 5, "sent once and retransmitted four times");
                    let timeout = s.events_of("coap_timeout");
                    assert_eq!(timeout.len(), 1);
                    assert_eq!(timeout[0]["reqID"], 1);
                    assert_eq!(timeout[0]["data"]["reqPath"], "/3/0/1");
                    return;
                }
            }
        }
        panic!("the second command was never sent");
    }

    #[tokio::test]
    async fn queue_mode_holds_commands_until_the_next_uplink() {
        let mut st = settings();
        st.qmode_time_window = Duration::from_secs(5);
        let mut s = Script::open(st, &["ep=dev1", "lt=600", "b=UQ"], b"</3/0>").await;
        s.output();
        // Within the window after the REGISTER the device listens: sent at once.
        s.command(
            json!({"msgType": "read", "data": {"path": "/3/0/1"}}),
            1_000,
        );
        let [req] = &s.output()[..] else { panic!() };
        let ack = req.response(Code::CONTENT).with_payload(&b"x"[..]);
        s.send(&ack, 1_100).unwrap();
        s.output();
        // Past the window it sleeps: the command waits, whatever the timers do.
        s.command(
            json!({"msgType": "read", "data": {"path": "/3/0/2"}}),
            10_000,
        );
        s.command(
            json!({"msgType": "read", "data": {"path": "/3/0/3"}}),
            10_000,
        );
        assert!(s.output().is_empty());
        s.channel.on_timer(s.at(20_000)).unwrap();
        assert!(s.output().is_empty());
        // Its UPDATE wakes it: answered, and the first waiting command goes.
        let mid = s.mid();
        s.send(&request(Code::POST, mid, &["rd", "dev1"], &[], b""), 30_000)
            .unwrap();
        let out = s.output();
        assert_eq!(out[0].code, Code::CHANGED);
        assert_eq!(out[1].uri_path().as_deref(), Some("3/0/2"));
        assert_eq!(out.len(), 2, "one command in flight");
    }

    #[tokio::test]
    async fn an_expired_command_is_dropped_not_sent_late() {
        let mut st = settings();
        st.qmode_time_window = Duration::from_secs(1);
        let mut s = Script::open(st, &["ep=dev1", "lt=600", "b=UQ"], b"</3/0>").await;
        s.output();
        let mut m = system_message(
            "lwm2m/dev1/dn/cmd".into(),
            json!({"msgType": "read", "data": {"path": "/3/0/1"}}).to_string(),
            false,
        );
        m.expires_at_ms = Some(now_ms().saturating_sub(1));
        s.broker.publish(m);
        s.channel.on_deliveries(s.at(5_000)).unwrap();
        let mid = s.mid();
        s.send(&request(Code::POST, mid, &["rd", "dev1"], &[], b""), 6_000)
            .unwrap();
        let out = s.output();
        assert_eq!(out.len(), 1, "only the UPDATE's answer: {out:?}");
    }

    #[tokio::test]
    async fn auto_observe_observes_the_registered_objects() {
        let mut st = settings();
        st.auto_observe = true;
        let mut s = Script::open(st, REG, b"</1/0>,</3/0>,</4/0>,</3303/0>").await;
        let out = s.output();
        assert_eq!(out[0].code, Code::CREATED);
        // Object 3 has a definition and is not a management object; 1 and 4 are, and
        // 3303 has no definition here.
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[1].uri_path().as_deref(), Some("3/0"));
        assert_eq!(out[1].observe(), Some(0));
    }

    #[tokio::test]
    async fn an_update_without_objects_is_published_only_when_always() {
        for (condition, published) in [
            (UpdateCondition::ContainsObjectList, false),
            (UpdateCondition::Always, true),
        ] {
            let mut st = settings();
            st.update_condition = condition;
            let mut s = Script::open(st, REG, b"</3/0>").await;
            s.output();
            s.event();
            let mid = s.mid();
            s.send(
                &request(Code::POST, mid, &["rd", "dev1"], &["lt=90"], b""),
                10,
            )
            .unwrap();
            assert_eq!(s.output()[0].code, Code::CHANGED);
            assert_eq!(s.events_of("update").len(), usize::from(published));
            // With objects it is published either way.
            let mid = s.mid();
            s.send(
                &request(Code::POST, mid, &["rd", "dev1"], &[], b"</4/0>"),
                20,
            )
            .unwrap();
            let updates = s.events_of("update");
            assert_eq!(updates.len(), 1);
            assert_eq!(updates[0]["data"]["objectList"], json!(["/4/0"]));
            assert_eq!(updates[0]["data"]["lt"], 90);
        }
    }

    #[tokio::test]
    async fn the_registration_ends_a_lifetime_after_the_last_uplink() {
        let mut s = Script::open(settings(), &["ep=dev1", "lt=30"], b"</3/0>").await;
        s.output();
        assert_eq!(s.channel.next_timer(), Some(s.at(30_000)));
        let mid = s.mid();
        s.send(&request(Code::POST, mid, &["rd", "dev1"], &[], b""), 20_000)
            .unwrap();
        assert!(
            s.channel.on_timer(s.at(30_000)).is_ok(),
            "the update renewed it"
        );
        assert_eq!(
            s.channel.on_timer(s.at(50_000)),
            Err(CloseReason::Protocol("timeout"))
        );
    }

    #[tokio::test]
    async fn deregistration_closes_and_a_wrong_location_is_not_found() {
        let mut s = Script::open(settings(), REG, b"</3/0>").await;
        s.output();
        let mid = s.mid();
        s.send(&request(Code::DELETE, mid, &["rd", "other"], &[], b""), 10)
            .unwrap();
        assert_eq!(s.output()[0].code, Code::NOT_FOUND);
        let mid = s.mid();
        let closed = s.send(&request(Code::DELETE, mid, &["rd", "dev1"], &[], b""), 20);
        assert_eq!(closed, Err(CloseReason::Normal));
        assert_eq!(s.output()[0].code, Code::DELETED);
    }

    #[tokio::test]
    async fn a_registration_is_found_by_its_endpoint_from_a_new_address() {
        let mut s = Script::open(settings(), REG, b"</3/0>").await;
        s.output();
        let peer = Peer {
            addr: "127.0.0.1:6000".parse().unwrap(),
            listener: "lwm2m:udp:default".into(),
            sockport: 5783,
            identity: None,
        };
        let update = request(Code::POST, 9, &["rd", "dev1"], &[], b"");
        assert!(s.channel.proto.movable(&peer, &update).is_some());
        let elsewhere = request(Code::POST, 9, &["rd", "dev2"], &[], b"");
        assert!(s.channel.proto.movable(&peer, &elsewhere).is_none());
    }

    #[tokio::test]
    async fn a_composite_observation_notifies_and_is_cancelled_with_its_token() {
        let mut s = Script::open(settings(), REG, b"</3/0>,</1/0>").await;
        s.output();
        s.event();
        let paths = json!(["/3/0/9", "/1/0/1"]);
        s.command(
            json!({"reqID": 4, "msgType": "observe-composite", "data": {"paths": paths}}),
            10,
        );
        let [req] = &s.output()[..] else { panic!() };
        assert_eq!(req.code, Code::FETCH);
        assert_eq!(req.observe(), Some(0));
        let senml = br#"[{"n":"/3/0/9","v":90},{"n":"/1/0/1","v":300}]"#;
        let mut first = req.response(Code::CONTENT).with_payload(&senml[..]);
        first.options.push_uint(option::CONTENT_FORMAT, 110);
        first.options.push_uint(option::OBSERVE, 1);
        s.send(&first, 20).unwrap();
        let observed = s.events_of("observe-composite");
        assert_eq!(observed[0]["data"]["reqPath"], "/3/0/9,/1/0/1");
        assert_eq!(observed[0]["data"]["content"][1]["value"], 300);
        // A notification (NON, the observation's token).
        let mut n = Message::new(MessageType::NonConfirmable, Code::CONTENT, 7)
            .with_token(req.token)
            .with_payload(&br#"[{"n":"/3/0/9","v":80}]"#[..]);
        n.options.push_uint(option::OBSERVE, 2);
        n.options.push_uint(option::CONTENT_FORMAT, 110);
        s.send(&n, 30).unwrap();
        let notified = s.events_of("notify");
        assert_eq!(notified[0]["seqNum"], 2);
        assert_eq!(notified[0]["reqID"], 4);
        assert_eq!(notified[0]["data"]["content"][0]["value"], 80);
        // Cancelled with the same paths: FETCH Observe 1 with the observation's token.
        s.command(
            json!({"msgType": "cancel-observe-composite", "data": {"paths": paths}}),
            40,
        );
        let [cancel] = &s.output()[..] else { panic!() };
        assert_eq!(cancel.observe(), Some(1));
        assert_eq!(cancel.token, req.token);
        s.send(&cancel.response(Code::CONTENT), 50).unwrap();
        assert!(s.channel.cmds().observations.is_empty());
    }

    #[tokio::test]
    async fn observations_and_unanswered_commands_move_with_the_registration() {
        let mut s = Script::open(settings(), REG, b"</3/0>").await;
        s.output();
        s.event();
        s.command(
            json!({"reqID": 1, "msgType": "observe", "data": {"path": "/3/0/9"}}),
            10,
        );
        let [observe] = &s.output()[..] else { panic!() };
        let mut first = observe.response(Code::CONTENT).with_payload(&b"87"[..]);
        first.options.push_uint(option::CONTENT_FORMAT, 0);
        first.options.push_uint(option::OBSERVE, 1);
        s.send(&first, 20).unwrap();
        assert_eq!(s.events_of("observe").len(), 1);
        // A read goes out and gets no answer at the old address.
        s.command(
            json!({"reqID": 2, "msgType": "read", "data": {"path": "/3/0/0"}}),
            30,
        );
        let [read] = &s.output()[..] else { panic!() };
        assert_eq!(read.code, Code::GET);

        // The device's UPDATE from a new address moves the registration there.
        let proto = s.channel.proto.clone();
        let ctx = proto.ctx.clone();
        let peer = Peer {
            addr: "127.0.0.1:6000".parse().unwrap(),
            listener: "lwm2m:udp:default".into(),
            sockport: 5783,
            identity: None,
        };
        let mut opening = Lwm2mOpening::new(proto, peer.clone());
        let update = request(Code::POST, 50, &["rd", "dev1"], &[], b"");
        let Ok(Some(Opened::Connect(req))) = opening.open(bytes(&update), &peer) else {
            panic!("an UPDATE from a new address moves the registration")
        };
        let admission = ctx.connect(req).await.expect("admitted");
        let mut moved = opening.admitted(admission.session, s.at(60));
        // The channel at the old address is told it was taken over, and closes.
        let _ = s
            .channel
            .on_close(CloseReason::Kicked(junction_broker::KickReason::TakenOver));

        // A notification now comes from the new address: it is the observation's.
        let mut n = Message::new(MessageType::NonConfirmable, Code::CONTENT, 7)
            .with_token(observe.token)
            .with_payload(&b"42"[..]);
        n.options.push_uint(option::OBSERVE, 2);
        n.options.push_uint(option::CONTENT_FORMAT, 0);
        moved.on_datagram(bytes(&n), s.at(70)).unwrap();
        let notified = s.events_of("notify");
        assert_eq!(notified.len(), 1, "published, not answered with a Reset");
        assert_eq!(notified[0]["reqID"], 1);
        assert_eq!(notified[0]["data"]["content"][0]["value"], 42);
        // The unanswered read goes again, from the new channel.
        let sent: Vec<Message> = std::mem::take(&mut moved.output().datagrams)
            .into_iter()
            .map(|(d, _)| decode(d).unwrap())
            .collect();
        assert!(sent.iter().all(|m| m.message_type != MessageType::Reset));
        let again = sent
            .iter()
            .find(|m| m.code == Code::GET)
            .expect("the read is sent again");
        assert_eq!(again.uri_path().as_deref(), Some("3/0/0"));
    }

    #[tokio::test]
    async fn the_lookup_cache_is_bounded_in_count_and_octets() {
        let mut s = Script::open(settings(), &["ep=dev1", "lt=600"], b"</3/0>").await;
        s.output();
        let big = "x".repeat(1000);
        for i in 0..150u64 {
            s.command(
                json!({"msgType": "read", "data": {"path": "/3/0/0"}}),
                10 + i,
            );
            let [req] = &s.output()[..] else { panic!() };
            let answer = req
                .response(Code::CONTENT)
                .with_payload(Bytes::from(big.clone()));
            s.send(&answer, 10 + i).unwrap();
            s.output();
        }
        assert!(s.channel.cmds().results.len() <= MAX_RESULTS);
        assert!(s.channel.cmds().results_octets <= MAX_RESULT_OCTETS);
        assert!(s.channel.cmds().results.len() >= 50, "the latest are kept");
        let found = s.channel.lookup("/3/0/0", "read");
        assert_eq!(found["code"], "2.05");
    }

    #[tokio::test]
    async fn a_flood_of_commands_is_bounded() {
        let mut s = Script::open(settings(), REG, b"</3/0>").await;
        s.output();
        for i in 0..(MAX_QUEUE + 50) {
            s.command(
                json!({"msgType": "read", "data": {"path": format!("/3/0/{}", i % 20)}}),
                10,
            );
        }
        assert!(s.channel.cmds().queue.len() <= MAX_QUEUE);
        // Not JSON, not an object: dropped without an answer.
        s.command(json!("not a command"), 20);
        assert!(s.channel.cmds().queue.len() <= MAX_QUEUE);
    }
}
