//! A connected MQTT client: the protocol's state machine on the framework's stream
//! driver. Packets in, deliveries and timers in, packets out; the broker is reached
//! through the [`GatewayCtx`] of the MQTT listeners.

use crate::MqttSettings;
use ahash::AHashMap;
use bytes::BytesMut;
use bytestring::ByteString;
use junction_broker::hooks::Action;
use junction_broker::{KickReason, Will};
use junction_codec_mqtt::{
    encode_publish, reason, AckProperties, Codec, ConnAck, ConnAckProperties, DecodeError,
    Disconnect, DisconnectProperties, Packet, ProtocolVersion, PubAck, Publish, PublishProperties,
    SubAck, Subscribe, UnsubAck, Unsubscribe,
};
use junction_gateway::driver::stream::{Output, StreamChannel};
use junction_gateway::{ClientCall, CloseReason, Mountpoint, Session};
use junction_session::{AckResult, Delivery, IncomingQos2, Outbound, SubOptions};
use junction_types::{now_ms, Message, MessageProperties, QoS};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

type Flow<T = ()> = Result<T, CloseReason>;

/// What CONNECT and CONNACK settled for the connection.
pub(crate) struct Agreed {
    pub version: ProtocolVersion,
    pub keep_alive: u16,
    pub expiry_interval: u32,
    /// The client's Maximum Packet Size: larger deliveries are dropped [MQTT-3.1.2-25].
    pub client_max_packet: u32,
    /// The client's Topic Alias Maximum, for aliases we send.
    pub client_alias_max: u16,
    pub will: Option<Will>,
}

/// A connected MQTT client.
pub struct MqttChannel {
    session: Session,
    settings: Arc<MqttSettings>,
    out: Output,
    codec: Codec,
    keep_alive: u16,
    will: Option<Will>,
    expiry_interval: u32,
    connect_expiry_zero: bool,
    client_max_packet: u32,
    client_alias_max: u16,
    aliases_in: AHashMap<u16, ByteString>,
    aliases_out: AHashMap<ByteString, u16>,
    last_recv: Instant,
    /// When the in-flight window is next checked for resends and expired QoS 2 ids.
    retry_at: Instant,
    scratch: Vec<Outbound>,
    /// The reason code of the DISCONNECT an MQTT 5 client is sent when the connection
    /// ends with a protocol error.
    close_code: Option<u8>,
    /// DISCONNECT 0x04: the client asks for its will to be published.
    will_on_normal: bool,
}

impl MqttChannel {
    pub(crate) fn new(
        session: Session,
        settings: Arc<MqttSettings>,
        out: Output,
        agreed: Agreed,
        now: Instant,
    ) -> Self {
        let retry_every = Duration::from_millis(settings.session.retry_interval_ms.max(100));
        MqttChannel {
            codec: Codec::new(agreed.version, settings.max_packet_size),
            session,
            out,
            keep_alive: agreed.keep_alive,
            will: agreed.will,
            expiry_interval: agreed.expiry_interval,
            connect_expiry_zero: agreed.expiry_interval == 0,
            client_max_packet: agreed.client_max_packet,
            client_alias_max: agreed.client_alias_max,
            aliases_in: AHashMap::new(),
            aliases_out: AHashMap::new(),
            last_recv: now,
            retry_at: now + retry_every,
            scratch: Vec::new(),
            close_code: None,
            will_on_normal: false,
            settings,
        }
    }

    fn v5(&self) -> bool {
        self.codec.version.is_v5()
    }

    /// The accepted CONNACK, then what the session had waiting (resume). The CONNECT it
    /// answers is the connection's first packet received.
    pub(crate) fn connack(&mut self, session_present: bool, properties: ConnAckProperties) {
        inc(&self.session.stats.recv_pkt);
        self.write_packet(&Packet::ConnAck(ConnAck {
            session_present,
            reason_code: reason::SUCCESS,
            properties,
        }));
        self.session.ctx.broker_metrics().packets_connack_sent.inc();
        self.drain_outbox();
    }

    /// End with a reason code (sent in a DISCONNECT to MQTT 5 clients).
    fn fail(&mut self, code: u8, why: &'static str) -> CloseReason {
        self.close_code = Some(code);
        CloseReason::Protocol(why)
    }

    fn write_packet(&mut self, p: &Packet) {
        if self.codec.encode(p, &mut self.out.bytes).is_ok() {
            self.session.ctx.broker_metrics().packets_sent.inc();
            inc(&self.session.stats.send_pkt);
        }
    }

    fn keepalive_timeout(&self) -> Option<Duration> {
        (self.keep_alive > 0).then(|| {
            Duration::from_secs_f64(self.keep_alive as f64 * self.settings.keepalive_multiplier)
        })
    }

    fn on_retry(&mut self, now: Instant) {
        let wall = now_ms();
        let next = {
            let mut guard = self.session.cell.lock();
            let st = &mut *guard;
            let next = st.session.retry(wall, &mut st.outbox);
            let expired = st.session.expire_awaiting_rel(wall);
            if expired > 0 {
                self.session
                    .ctx
                    .broker_metrics()
                    .messages_dropped_await_pubrel_timeout
                    .add(expired as u64);
            }
            next
        };
        self.drain_outbox();
        let interval = self.settings.session.retry_interval_ms.max(100);
        let wait = next.map_or(interval, |t| t.saturating_sub(wall).max(10));
        self.retry_at = now + Duration::from_millis(wait);
    }

    fn handle(&mut self, packet: Packet) -> Flow {
        match packet {
            Packet::Publish(p) => self.on_publish(p),
            Packet::PubAck(a) => {
                let res = self.session.cell.lock().session.puback(a.packet_id);
                self.on_ack_result(res);
                Ok(())
            }
            Packet::PubRec(a) => {
                let res = self.session.cell.lock().session.pubrec(
                    a.packet_id,
                    a.reason_code >= 0x80,
                    now_ms(),
                );
                match res {
                    AckResult::Released => self.write_packet(&Packet::PubRel(ack(a.packet_id, 0))),
                    AckResult::NotFound => self.write_packet(&Packet::PubRel(ack(
                        a.packet_id,
                        reason::PACKET_IDENTIFIER_NOT_FOUND,
                    ))),
                    done @ AckResult::Completed(_) => self.on_ack_result(done),
                }
                Ok(())
            }
            Packet::PubComp(a) => {
                let res = self.session.cell.lock().session.pubcomp(a.packet_id);
                self.on_ack_result(res);
                Ok(())
            }
            Packet::PubRel(a) => {
                let known = self.session.cell.lock().session.release(a.packet_id);
                let code = if known {
                    reason::SUCCESS
                } else {
                    reason::PACKET_IDENTIFIER_NOT_FOUND
                };
                self.write_packet(&Packet::PubComp(ack(a.packet_id, code)));
                // The released id must be on disk before PUBCOMP lets the client reuse it.
                self.out.ack |= known;
                Ok(())
            }
            Packet::Subscribe(s) => self.on_subscribe(s),
            Packet::Unsubscribe(u) => {
                self.on_unsubscribe(u);
                Ok(())
            }
            Packet::PingReq => {
                self.session
                    .ctx
                    .broker_metrics()
                    .packets_pingreq_received
                    .inc();
                self.write_packet(&Packet::PingResp);
                Ok(())
            }
            Packet::Disconnect(d) => self.on_disconnect(d),
            // A second CONNECT is a protocol error [MQTT-3.1.0-2].
            Packet::Connect(_) => Err(self.fail(reason::PROTOCOL_ERROR, "unexpected_connect")),
            Packet::Auth(_) => Err(self.fail(reason::PROTOCOL_ERROR, "unexpected_auth")),
            // Packets only a server sends.
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                Err(self.fail(reason::PROTOCOL_ERROR, "unexpected_packet"))
            }
        }
    }

    fn on_ack_result(&mut self, res: AckResult) {
        if let AckResult::Completed(d) = res {
            let ctx = &self.session.ctx;
            ctx.acked(&self.session.info, Some(&d.message));
            let mut guard = self.session.cell.lock();
            let st = &mut *guard;
            let mut dropped = Vec::new();
            st.session.dequeue(now_ms(), &mut st.outbox, &mut dropped);
            drop(guard);
            if !dropped.is_empty() {
                ctx.count_dropped(dropped);
            }
        }
    }

    fn on_publish(&mut self, mut p: Publish) -> Flow {
        let m = self.session.ctx.broker_metrics();
        m.packets_publish_received.inc();
        m.messages_received.inc();
        match p.qos {
            QoS::AtMostOnce => &m.messages_qos0_received,
            QoS::AtLeastOnce => &m.messages_qos1_received,
            QoS::ExactlyOnce => &m.messages_qos2_received,
        }
        .inc();
        inc(&self.session.stats.recv_msg);
        if p.qos > self.settings.max_qos_allowed {
            // [MQTT-3.2.2-11]: QoS above Maximum QoS is answered with DISCONNECT 0x9B.
            return Err(self.fail(reason::QOS_NOT_SUPPORTED, "qos_not_supported"));
        }
        if p.retain && !self.settings.retain_available {
            return Err(self.fail(reason::RETAIN_NOT_SUPPORTED, "retain_not_supported"));
        }
        if let Some(alias) = p.properties.topic_alias {
            if alias == 0 || alias > self.settings.max_topic_alias {
                // [MQTT-3.3.2-9], [MQTT-3.3.2-10].
                return Err(self.fail(reason::TOPIC_ALIAS_INVALID, "topic_alias_invalid"));
            }
            if p.topic.is_empty() {
                match self.aliases_in.get(&alias) {
                    Some(t) => p.topic = t.clone(),
                    None => return Err(self.fail(reason::PROTOCOL_ERROR, "unknown_topic_alias")),
                }
            } else {
                self.aliases_in.insert(alias, p.topic.clone());
            }
        }
        let mut code = reason::SUCCESS;
        let action = Action::Publish {
            qos: p.qos,
            retain: p.retain,
        };
        if too_deep(&p.topic, self.settings.max_topic_levels) {
            code = reason::TOPIC_NAME_INVALID;
        } else if !self
            .session
            .ctx
            .authorize(&self.session.info, action, &p.topic)
        {
            // Includes the built-in rule: `$SYS` is the broker's; clients read it only.
            code = reason::NOT_AUTHORIZED;
        }
        let packet_id = p.packet_id.unwrap_or(0);
        let m = self.session.ctx.broker_metrics();
        if code != reason::SUCCESS {
            m.packets_publish_error.inc();
            m.packets_publish_dropped.inc();
            match p.qos {
                QoS::AtMostOnce => {}
                QoS::AtLeastOnce => self.write_packet(&Packet::PubAck(ack(packet_id, code))),
                QoS::ExactlyOnce => self.write_packet(&Packet::PubRec(ack(packet_id, code))),
            }
            return Ok(());
        }
        match p.qos {
            QoS::AtMostOnce => {
                self.route(p);
            }
            QoS::AtLeastOnce => {
                let n = self.route(p);
                let code = if n == 0 && self.v5() {
                    reason::NO_MATCHING_SUBSCRIBERS
                } else {
                    reason::SUCCESS
                };
                self.write_packet(&Packet::PubAck(ack(packet_id, code)));
                self.out.ack = true;
            }
            QoS::ExactlyOnce => {
                let state = {
                    let mut st = self.session.cell.lock();
                    if self.v5() {
                        // The Receive Maximum this connection's CONNACK gave.
                        let receive_maximum = self.settings.session.max_inflight.max(1);
                        st.session.incoming_qos2_within(
                            packet_id,
                            now_ms(),
                            receive_maximum as usize,
                        )
                    } else {
                        st.session.incoming_qos2(packet_id, now_ms())
                    }
                };
                let code = match state {
                    IncomingQos2::New => {
                        if self.route(p) == 0 && self.v5() {
                            reason::NO_MATCHING_SUBSCRIBERS
                        } else {
                            reason::SUCCESS
                        }
                    }
                    // A resend of a message already routed: acknowledge, don't route again.
                    IncomingQos2::Duplicate => reason::SUCCESS,
                    IncomingQos2::TooMany => {
                        self.session
                            .ctx
                            .broker_metrics()
                            .packets_publish_dropped
                            .inc();
                        if !self.v5() {
                            return Ok(());
                        }
                        reason::RECEIVE_MAXIMUM_EXCEEDED
                    }
                    IncomingQos2::OverReceiveMaximum => {
                        self.session
                            .ctx
                            .broker_metrics()
                            .packets_publish_dropped
                            .inc();
                        return Err(
                            self.fail(reason::RECEIVE_MAXIMUM_EXCEEDED, "receive_maximum_exceeded")
                        );
                    }
                };
                self.write_packet(&Packet::PubRec(ack(packet_id, code)));
                self.out.ack = true;
            }
        }
        Ok(())
    }

    /// Turn a PUBLISH into a message and route it.
    fn route(&mut self, p: Publish) -> usize {
        let now = now_ms();
        let expiry = p
            .properties
            .message_expiry_interval
            .or(self.settings.message_expiry_interval);
        let pp = p.properties;
        let msg = Message {
            id: 0,
            topic: mount(&self.session.mountpoint, &p.topic),
            payload: p.payload,
            qos: p.qos,
            retain: p.retain,
            properties: MessageProperties {
                payload_format_indicator: pp.payload_format_indicator,
                content_type: pp.content_type,
                response_topic: pp.response_topic,
                correlation_data: pp.correlation_data,
                user_properties: pp.user_properties,
            },
            expires_at_ms: expiry.map(|s| now + s as u64 * 1000),
            received_at_ms: now,
            from: self.session.info.clientid.clone(),
            namespace: ByteString::new(),
        };
        let routed = self.session.ctx.publish_message(msg);
        self.out.congested |= routed.congested;
        routed.targets
    }

    fn on_subscribe(&mut self, s: Subscribe) -> Flow {
        self.session
            .ctx
            .broker_metrics()
            .packets_subscribe_received
            .inc();
        // `client.subscribe` may drop filters: those are answered "unspecified error".
        let asked = s
            .filters
            .iter()
            .map(|(f, o)| {
                let opts = SubOptions {
                    qos: o.qos,
                    no_local: o.no_local,
                    retain_as_published: o.retain_as_published,
                    retain_handling: o.retain_handling,
                    subscription_id: s.subscription_identifier,
                };
                (f.to_string(), opts)
            })
            .collect();
        let kept = self.session.ctx.client_subscribe(&self.session.info, asked);
        let mut codes = Vec::with_capacity(s.filters.len());
        for (filter, opts) in &s.filters {
            let code = if !kept.iter().any(|(f, _)| f == &**filter) {
                reason::UNSPECIFIED_ERROR
            } else {
                self.subscribe_one(filter, opts, s.subscription_identifier)?
            };
            if code >= 0x80 {
                self.session
                    .ctx
                    .broker_metrics()
                    .packets_subscribe_error
                    .inc();
            }
            codes.push(if self.v5() || code < 0x80 { code } else { 0x80 });
        }
        self.write_packet(&Packet::SubAck(SubAck {
            packet_id: s.packet_id,
            reason_codes: codes,
            properties: AckProperties::default(),
        }));
        Ok(())
    }

    fn subscribe_one(
        &mut self,
        filter: &str,
        opts: &junction_codec_mqtt::SubscriptionOptions,
        sub_id: Option<u32>,
    ) -> Flow<u8> {
        let parsed = match junction_topic::parse_filter(filter) {
            Ok(p) => p,
            Err(_) => return Ok(reason::TOPIC_FILTER_INVALID),
        };
        if parsed.group.is_some() {
            if !self.settings.shared_subscription {
                return Ok(reason::SHARED_SUBSCRIPTIONS_NOT_SUPPORTED);
            }
            if opts.no_local && self.v5() {
                // No Local on a shared subscription is a protocol error [MQTT-3.8.3-4].
                return Err(self.fail(reason::PROTOCOL_ERROR, "no_local_on_shared_subscription"));
            }
        }
        if !self.settings.wildcard_subscription && junction_topic::is_wildcard(parsed.filter) {
            return Ok(reason::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED);
        }
        if too_deep(parsed.filter, self.settings.max_topic_levels) {
            return Ok(reason::TOPIC_FILTER_INVALID);
        }
        if let Some(max) = self.settings.max_subscriptions {
            let mounted = self.session.mountpoint.mount_filter(filter);
            let st = self.session.cell.lock();
            if !st.session.subscriptions.contains_key(&mounted)
                && st.session.subscriptions.len() >= max
            {
                return Ok(reason::QUOTA_EXCEEDED);
            }
        }
        let qos = opts.qos.min(self.settings.max_qos_allowed);
        let s = &self.session;
        if !s.ctx.authorize(&s.info, Action::Subscribe { qos }, filter) {
            return Ok(reason::NOT_AUTHORIZED);
        }
        let sub = SubOptions {
            qos,
            no_local: opts.no_local,
            retain_as_published: opts.retain_as_published,
            retain_handling: opts.retain_handling,
            subscription_id: sub_id,
        };
        match s
            .ctx
            .subscribe(&s.info, &s.cell, &s.mountpoint, filter, sub)
        {
            Ok(_) => Ok(qos.as_u8()),
            Err(_) => Ok(reason::TOPIC_FILTER_INVALID),
        }
    }

    fn on_unsubscribe(&mut self, u: Unsubscribe) {
        let s = &self.session;
        s.ctx.broker_metrics().packets_unsubscribe_received.inc();
        // `client.unsubscribe` may drop filters: those stay subscribed.
        let kept = s
            .ctx
            .client_unsubscribe(&s.info, u.filters.iter().map(|f| f.to_string()).collect());
        let codes = u
            .filters
            .iter()
            .map(|f| {
                if !kept.iter().any(|x| x == &**f) {
                    reason::UNSPECIFIED_ERROR
                } else if s.ctx.unsubscribe(&s.info, &s.cell, &s.mountpoint, f) {
                    reason::SUCCESS
                } else {
                    reason::NO_SUBSCRIPTION_EXISTED
                }
            })
            .collect();
        self.write_packet(&Packet::UnsubAck(UnsubAck {
            packet_id: u.packet_id,
            reason_codes: codes,
            properties: AckProperties::default(),
        }));
    }

    fn on_disconnect(&mut self, d: Disconnect) -> Flow {
        self.session
            .ctx
            .broker_metrics()
            .packets_disconnect_received
            .inc();
        if let Some(exp) = d.properties.session_expiry_interval {
            // A session created with expiry 0 may not be given one at DISCONNECT
            // [MQTT-3.14.2-2].
            if self.connect_expiry_zero && exp != 0 {
                return Err(self.fail(reason::PROTOCOL_ERROR, "session_expiry_after_zero"));
            }
            self.expiry_interval = exp;
        }
        self.will_on_normal = d.reason_code == reason::DISCONNECT_WITH_WILL;
        Err(CloseReason::Normal)
    }

    /// Take what the session has for the client and encode it into the output.
    fn drain_outbox(&mut self) {
        let mut out = std::mem::take(&mut self.scratch);
        self.session
            .cell
            .take_outbox(self.session.conn_id, &mut out);
        if out.is_empty() {
            self.scratch = out;
            return;
        }
        let now = now_ms();
        for o in out.drain(..) {
            match o {
                Outbound::Publish {
                    packet_id,
                    dup,
                    delivery,
                } => self.send_delivery(packet_id, dup, &delivery, now),
                Outbound::PubRel(id) => self.write_packet(&Packet::PubRel(ack(id, 0))),
            }
        }
        self.scratch = out;
    }

    fn send_delivery(&mut self, packet_id: Option<u16>, dup: bool, d: &Delivery, now: u64) {
        let m = &d.message;
        let mountpoint = &self.session.mountpoint;
        // The client sees its topics without the mountpoint (no copy: a slice of the
        // message's topic).
        let mut topic = if mountpoint.is_empty() {
            m.topic.clone()
        } else {
            m.topic.slice_ref(mountpoint.unmount(&m.topic))
        };
        let mut properties = PublishProperties::default();
        let mut new_alias = None;
        if self.v5() {
            let mp = &m.properties;
            properties.payload_format_indicator = mp.payload_format_indicator;
            properties.content_type = mp.content_type.clone();
            properties.response_topic = mp.response_topic.clone();
            properties.correlation_data = mp.correlation_data.clone();
            properties.user_properties = mp.user_properties.clone();
            properties.subscription_identifiers = d.subscription_ids.clone();
            properties.message_expiry_interval = m.remaining_expiry_secs(now);
            if self.client_alias_max > 0 {
                match self.aliases_out.get(&m.topic) {
                    Some(a) => {
                        properties.topic_alias = Some(*a);
                        topic = ByteString::new();
                    }
                    None if self.aliases_out.len() < self.client_alias_max as usize => {
                        let a = self.aliases_out.len() as u16 + 1;
                        properties.topic_alias = Some(a);
                        new_alias = Some(a);
                    }
                    None => {}
                }
            }
        }
        let publish = Publish {
            dup,
            qos: d.qos,
            retain: d.retain,
            topic,
            packet_id,
            payload: m.payload.clone(),
            properties,
        };
        let wbuf = &mut self.out.bytes;
        let start = wbuf.len();
        let encoded = encode_publish(self.codec.version, &publish, wbuf);
        let metrics = self.session.ctx.broker_metrics();
        if encoded.is_err() || (wbuf.len() - start) as u64 > self.client_max_packet as u64 {
            // Larger than the client accepts: dropped, not sent [MQTT-3.1.2-25].
            wbuf.truncate(start);
            if let Some(id) = packet_id {
                self.session.cell.lock().session.discard_inflight(id);
            }
            metrics.messages_dropped.inc();
            metrics.messages_dropped_too_large.inc();
            return;
        }
        if let Some(a) = new_alias {
            self.aliases_out.insert(m.topic.clone(), a);
        }
        metrics.packets_sent.inc();
        metrics.packets_publish_sent.inc();
        metrics.messages_sent.inc();
        match d.qos {
            QoS::AtMostOnce => &metrics.messages_qos0_sent,
            QoS::AtLeastOnce => &metrics.messages_qos1_sent,
            QoS::ExactlyOnce => &metrics.messages_qos2_sent,
        }
        .inc();
        let stats = &self.session.stats;
        inc(&stats.send_pkt);
        if !dup {
            inc(&stats.send_msg);
            self.session.ctx.delivered(&self.session.info, &d.message);
        }
    }

    /// The management API's calls: list, add and remove subscriptions.
    fn answer_call(&mut self, call: ClientCall) {
        self.session.answer_call(call);
    }
}

impl StreamChannel for MqttChannel {
    fn session(&self) -> &Session {
        &self.session
    }

    fn output(&mut self) -> &mut Output {
        &mut self.out
    }

    /// Decode and handle every whole packet; stop early when a subscriber routed to is
    /// behind.
    fn on_input(&mut self, input: &mut BytesMut, now: Instant) -> Flow {
        self.last_recv = now;
        loop {
            match self.codec.decode(input) {
                Ok(Some(p)) => {
                    self.session.ctx.broker_metrics().packets_received.inc();
                    inc(&self.session.stats.recv_pkt);
                    self.handle(p)?;
                    if self.out.congested {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => return Err(self.decode_failed(&e)),
            }
        }
        self.drain_outbox();
        Ok(())
    }

    fn on_deliveries(&mut self, _now: Instant) -> Flow {
        self.drain_outbox();
        Ok(())
    }

    fn on_call(&mut self, call: ClientCall) {
        self.answer_call(call);
    }

    fn on_timer(&mut self, now: Instant) -> Flow {
        if let Some(ka) = self.keepalive_timeout() {
            if now >= self.last_recv + ka {
                return Err(CloseReason::KeepaliveTimeout);
            }
        }
        if now >= self.retry_at {
            self.on_retry(now);
        }
        Ok(())
    }

    fn next_timer(&self) -> Option<Instant> {
        let ka = self.keepalive_timeout().map(|ka| self.last_recv + ka);
        Some(ka.map_or(self.retry_at, |k| k.min(self.retry_at)))
    }

    fn silent_until(&self) -> Option<(Instant, CloseReason)> {
        self.keepalive_timeout()
            .map(|ka| (self.last_recv + ka, CloseReason::KeepaliveTimeout))
    }

    /// An MQTT 5 client is told why the server closes (DISCONNECT with a reason code);
    /// what was not yet sent is dropped.
    fn goodbye(&mut self, why: CloseReason) {
        let code = match why {
            CloseReason::SockClosed | CloseReason::Normal => return,
            CloseReason::Kicked(KickReason::TakenOver | KickReason::Discarded) => {
                reason::SESSION_TAKEN_OVER
            }
            CloseReason::Kicked(KickReason::Administrative) => reason::ADMINISTRATIVE_ACTION,
            CloseReason::Kicked(KickReason::Shutdown) => reason::SERVER_SHUTTING_DOWN,
            CloseReason::KeepaliveTimeout => reason::KEEP_ALIVE_TIMEOUT,
            _ => self.close_code.unwrap_or(reason::UNSPECIFIED_ERROR),
        };
        self.out.bytes.clear();
        if !self.v5() {
            return;
        }
        self.write_packet(&Packet::Disconnect(Disconnect {
            reason_code: code,
            properties: DisconnectProperties::default(),
        }));
        self.session
            .ctx
            .broker_metrics()
            .packets_disconnect_sent
            .inc();
    }

    /// The will goes unless the client said DISCONNECT without asking for it; the
    /// session expiry is CONNECT's, or DISCONNECT's if it changed it.
    fn on_close(&mut self, why: CloseReason) -> (Option<Will>, u32) {
        let publish_will = why != CloseReason::Normal || self.will_on_normal;
        let will = if publish_will { self.will.take() } else { None };
        (will, self.expiry_interval)
    }

    fn shrink(&mut self) {
        if self.scratch.is_empty() && self.scratch.capacity() > 0 {
            self.scratch = Vec::new();
        }
    }
}

impl MqttChannel {
    fn decode_failed(&mut self, e: &DecodeError) -> CloseReason {
        tracing::debug!(clientid = %self.session.info.clientid, error = %e, "malformed packet");
        let why = match e.reason_code() {
            reason::PACKET_TOO_LARGE => "frame_too_large",
            reason::PROTOCOL_ERROR => "protocol_error",
            reason::TOPIC_NAME_INVALID => "topic_name_invalid",
            reason::TOPIC_ALIAS_INVALID => "topic_alias_invalid",
            _ => "malformed_packet",
        };
        self.fail(e.reason_code(), why)
    }
}

fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// `topic` under `mountpoint` (shared, not copied, when there is none).
pub(crate) fn mount(mountpoint: &Mountpoint, topic: &ByteString) -> ByteString {
    if mountpoint.is_empty() {
        topic.clone()
    } else {
        mountpoint.mount(topic).into()
    }
}

fn ack(packet_id: u16, reason_code: u8) -> PubAck {
    PubAck {
        packet_id,
        reason_code,
        properties: AckProperties::default(),
    }
}

/// A copy of `s` in its own allocation (not a slice of the connection's read buffer).
pub(crate) fn detach(s: &ByteString) -> ByteString {
    ByteString::from(String::from(&s[..]))
}

pub(crate) fn too_deep(topic: &str, max_levels: usize) -> bool {
    max_levels > 0 && junction_topic::level_count(topic) > max_levels
}
