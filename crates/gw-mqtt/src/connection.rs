//! One MQTT connection: CONNECT handshake, then the packet loop.
//!
//! The task reads packets, acts on them through the broker, and writes everything it has to
//! send (acks, deliveries drained from the session's outbox) in one write per wake-up.

use crate::MqttSettings;
use ahash::AHashMap;
use bytes::BytesMut;
use bytestring::ByteString;
use junction_auth::AuthnResult;
use junction_broker::hooks::{
    Action, ConnackArgs, ConnectArgs, MessageArgs, ReasonArgs, SessionSubArgs, SubscribeArgs,
    UnsubscribeArgs,
};
use junction_broker::sys::ClientEvent;
use junction_broker::{Broker, Close, KickReason, KickWait, OpenSession, SessionCell, Will};
use junction_codec_mqtt::{
    encode_publish, reason, AckProperties, Codec, ConnAck, ConnAckProperties, Connect, DecodeError,
    Disconnect, DisconnectProperties, Packet, ProtocolVersion, PubAck, Publish, PublishProperties,
    SubAck, Subscribe, UnsubAck, Unsubscribe,
};
use junction_session::{AckResult, Delivery, IncomingQos2, Outbound, SessionLimits, SubOptions};
use junction_topic::mountpoint::{render, Mountpoint, Placeholders};
use junction_transport::{Accepted, SendError, Stream};
use junction_types::{now_ms, ClientInfo, Message, MessageProperties, QoS};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::time::Instant;

/// How a connection ended.
#[derive(Debug)]
enum Exit {
    /// The peer closed the stream (or it failed): the will is published.
    Closed,
    /// DISCONNECT received; `with_will` for 5.0 reason 0x04.
    Disconnected { with_will: bool },
    /// We close with a reason code (sent in a DISCONNECT to 5.0 clients).
    Error(u8, &'static str),
    /// The broker told us to go.
    Kicked(KickReason),
}

type Flow<T = ()> = Result<T, Exit>;

/// Serve one accepted connection until it ends.
pub async fn serve(broker: Arc<Broker>, settings: Arc<MqttSettings>, accepted: Accepted) {
    let Accepted {
        mut stream,
        peer,
        listener,
        sockport,
        permit,
        send_timeout,
    } = accepted;
    broker.metrics.connections_count.inc();
    let mut rbuf = BytesMut::new();
    // The handshake and the goodbye run in boxed futures of their own: they are short-lived,
    // and keeping their state out of the long-lived task keeps idle connections small.
    let connect = match Box::pin(read_connect(&broker, &settings, &mut stream, &mut rbuf)).await {
        Some(c) => c,
        None => {
            stream.shutdown().await;
            broker.metrics.connections_count.dec();
            return;
        }
    };
    let conn_id = broker.next_conn_id();
    let (kick_tx, kick_rx) = oneshot::channel();
    let mut conn = match Box::pin(Conn::accept(
        broker.clone(),
        settings,
        stream,
        Endpoint {
            peer,
            listener: listener.clone(),
            sockport,
            send_timeout,
        },
        rbuf,
        *connect,
        conn_id,
        kick_tx,
    ))
    .await
    {
        Some(c) => c,
        None => {
            broker.metrics.connections_count.dec();
            return;
        }
    };
    tracing::debug!(client_id = %conn.client_id, %peer, %listener, "client connected");
    conn.kick = KickWait::new(kick_rx);
    let exit = conn.run().await;
    Box::pin(conn.finish(exit)).await;
    broker.metrics.connections_count.dec();
    drop(permit);
}

/// Wait for the first packet, which must be CONNECT [MQTT-3.1.0-1], within `idle_timeout`.
async fn read_connect(
    broker: &Broker,
    settings: &MqttSettings,
    stream: &mut Stream,
    rbuf: &mut BytesMut,
) -> Option<Box<Connect>> {
    let codec = Codec::new(ProtocolVersion::V3_1_1, settings.max_packet_size);
    let deadline = Instant::now() + settings.idle_timeout;
    loop {
        // The first packet must be CONNECT [MQTT-3.1.0-1]: refuse anything else from its
        // first byte, before buffering a body that may be up to max_packet_size.
        if rbuf.first().is_some_and(|b| b >> 4 != 1) {
            tracing::debug!("first packet is not CONNECT");
            return None;
        }
        match codec.decode(rbuf) {
            Ok(Some(Packet::Connect(c))) => {
                broker.metrics.packets_connect.inc();
                return Some(c);
            }
            Ok(Some(_)) => return None,
            Ok(None) => {}
            Err(e) => {
                // An unsupported protocol level gets a CONNACK in the format the client
                // can read [MQTT-3.1.2-2]; anything else is just closed.
                if let Some(v) = e.connack_version() {
                    let code = if v.is_v5() {
                        reason::UNSUPPORTED_PROTOCOL_VERSION
                    } else {
                        reason::v3_connack::UNACCEPTABLE_PROTOCOL_VERSION
                    };
                    let mut out = BytesMut::new();
                    let ack = Packet::ConnAck(ConnAck {
                        session_present: false,
                        reason_code: code,
                        properties: ConnAckProperties::default(),
                    });
                    if Codec::new(v, u32::MAX).encode(&ack, &mut out).is_ok() {
                        let _ = stream.write_all(&out).await;
                    }
                    broker.metrics.packets_connack_error.inc();
                }
                tracing::debug!(error = %e, "bad first packet");
                return None;
            }
        }
        let read = tokio::time::timeout_at(deadline, stream.read_buf(rbuf)).await;
        match read {
            Ok(Ok(n)) if n > 0 => {
                broker.metrics.bytes_received.add(n as u64);
            }
            _ => return None,
        }
    }
}

/// Where a connection came from.
struct Endpoint {
    peer: SocketAddr,
    listener: Arc<str>,
    sockport: u16,
    send_timeout: Duration,
}

/// A connected MQTT client.
struct Conn {
    broker: Arc<Broker>,
    settings: Arc<MqttSettings>,
    stream: Stream,
    peer: SocketAddr,
    listener: Arc<str>,
    sockport: u16,
    is_superuser: bool,
    rbuf: BytesMut,
    wbuf: BytesMut,
    codec: Codec,
    conn_id: u64,
    client_id: ByteString,
    username: Option<ByteString>,
    clean_start: bool,
    keep_alive: u16,
    cell: Arc<SessionCell>,
    will: Option<Will>,
    expiry_interval: u32,
    connect_expiry_zero: bool,
    /// The client's Maximum Packet Size: larger deliveries are dropped [MQTT-3.1.2-25].
    client_max_packet: u32,
    /// The client's Topic Alias Maximum, for aliases we send.
    client_alias_max: u16,
    aliases_in: AHashMap<u16, ByteString>,
    aliases_out: AHashMap<ByteString, u16>,
    last_recv: Instant,
    connected_at: u64,
    scratch: Vec<Outbound>,
    /// A PUBACK, PUBREC or PUBCOMP is waiting in `wbuf` for the broker's ack barrier
    /// (`durable_sessions.commit_before_ack`).
    ack_pending: bool,
    /// A connection this one published to is behind ([`junction_broker::Routed`]): stop
    /// decoding and let it write before routing the rest of the read buffer.
    congested: bool,
    /// The broker's kick (takeover, discard, administrative, shutdown).
    kick: KickWait,
    /// `tcp_options.send_timeout`: how long a write may make no progress.
    send_timeout: Duration,
    /// A write was abandoned half done: nothing more may be written (no DISCONNECT).
    write_cut: bool,
    /// The listener's mountpoint, rendered for this client (empty: none).
    mountpoint: Mountpoint,
}

impl Conn {
    fn v5(&self) -> bool {
        self.codec.version.is_v5()
    }

    /// Validate CONNECT, open the session and answer CONNACK. `None`: refused and closed.
    #[allow(clippy::too_many_arguments)]
    async fn accept(
        broker: Arc<Broker>,
        settings: Arc<MqttSettings>,
        mut stream: Stream,
        endpoint: Endpoint,
        rbuf: BytesMut,
        connect: Connect,
        conn_id: u64,
        kick_tx: oneshot::Sender<KickReason>,
    ) -> Option<Conn> {
        let Endpoint {
            peer,
            listener,
            sockport,
            send_timeout,
        } = endpoint;
        broker.metrics.client_connect.inc();
        let version = connect.protocol;
        let codec = Codec::new(version, settings.max_packet_size);
        let v5 = version.is_v5();
        let refuse = |code: u8| {
            let code = if v5 {
                code
            } else {
                reason::connack_v5_to_v3(code)
            };
            Packet::ConnAck(ConnAck {
                session_present: false,
                reason_code: code,
                properties: ConnAckProperties::default(),
            })
        };
        // Long-lived fields are copied out of the read buffer so they do not pin it.
        let mut client_id = detach(&connect.client_id);
        let mut assigned = false;
        let refusal = if client_id.len() > settings.max_clientid_len {
            Some(reason::CLIENT_IDENTIFIER_NOT_VALID)
        } else if client_id.is_empty() && !connect.clean_start && !v5 {
            // A 3.x client without an id must ask for a clean session [MQTT-3.1.3-8].
            Some(reason::CLIENT_IDENTIFIER_NOT_VALID)
        } else if connect.properties.authentication_method.is_some() {
            // No enhanced authentication method is offered [MQTT-4.12.0-1].
            Some(reason::BAD_AUTHENTICATION_METHOD)
        } else if let Some(w) = &connect.will {
            if w.qos > settings.max_qos_allowed {
                Some(reason::QOS_NOT_SUPPORTED)
            } else if w.retain && !settings.retain_available {
                Some(reason::RETAIN_NOT_SUPPORTED)
            } else if junction_topic::validate_topic_name(&w.topic).is_err()
                || too_deep(&w.topic, settings.max_topic_levels)
            {
                Some(reason::TOPIC_NAME_INVALID)
            } else {
                None
            }
        } else {
            None
        };
        if let Some(code) = refusal {
            let mut out = BytesMut::new();
            let _ = codec.encode(&refuse(code), &mut out);
            let _ = stream.write_all(&out).await;
            stream.shutdown().await;
            broker.metrics.packets_connack_error.inc();
            return None;
        }
        if client_id.is_empty() {
            client_id = format!("junction-{:016x}", rand::random::<u64>()).into();
            assigned = true;
        }
        // `use_username_as_clientid`: as EMQX, before authentication and the mountpoint.
        if settings.use_username_as_clientid {
            if let Some(username) = connect.username.as_ref().filter(|u| !u.is_empty()) {
                client_id = detach(username);
            }
        }
        // The listener's mountpoint; a client id or user name that would widen or move it
        // is not a valid client identifier here.
        let mountpoint = render(
            &settings.mountpoint,
            &Placeholders {
                clientid: Some(&client_id),
                username: connect.username.as_deref(),
                zone: Some("default"),
                endpoint_name: None,
            },
        );
        let Ok(mountpoint) = mountpoint.map(Mountpoint::new) else {
            let mut out = BytesMut::new();
            let _ = codec.encode(&refuse(reason::CLIENT_IDENTIFIER_NOT_VALID), &mut out);
            let _ = stream.write_all(&out).await;
            stream.shutdown().await;
            broker.metrics.packets_connack_error.inc();
            return None;
        };
        if connect.username.is_none() {
            broker.metrics.client_auth_anonymous.inc();
        }
        // The same access control as every gateway: `client.connect`, then the listener's
        // chain or `mqtt:global`, then `client.authenticate` (reference §1.7, §1.10).
        let mut info = ClientInfo {
            clientid: client_id.clone(),
            username: connect.username.as_ref().map(detach),
            protocol: "mqtt",
            proto_ver: version.level().to_string(),
            peername: peer,
            sockport,
            listener: listener.clone(),
            mountpoint: mountpoint.as_str().to_string(),
            keepalive: connect.keep_alive as u32,
            clean_start: connect.clean_start,
            expiry_interval: 0,
            connected_at: now_ms(),
            is_superuser: false,
            extras: Default::default(),
        };
        let mut connect_args = ConnectArgs::default();
        broker.hooks.client_connect.run(&info, &mut connect_args);
        let verdict = match connect_args.refuse {
            Some(why) => AuthnResult::Deny(why),
            None => {
                junction_auth::access::authenticate(
                    &broker.hooks,
                    &settings.authn,
                    &info,
                    "mqtt:global",
                    connect.password.as_deref(),
                )
                .await
            }
        };
        if let AuthnResult::Deny(why) = &verdict {
            let code = if why == "bad_username_or_password" {
                reason::BAD_USERNAME_OR_PASSWORD
            } else {
                reason::NOT_AUTHORIZED
            };
            broker.hooks.client_connack.run(
                &info,
                &mut ConnackArgs {
                    result: why.clone(),
                },
            );
            let mut out = BytesMut::new();
            let _ = codec.encode(&refuse(code), &mut out);
            let _ = stream.write_all(&out).await;
            stream.shutdown().await;
            broker.metrics.packets_connack_error.inc();
            return None;
        }
        if let AuthnResult::Allow { is_superuser, .. } = verdict {
            info.is_superuser = is_superuser;
        }

        let expiry_interval = if v5 {
            connect.properties.session_expiry_interval.unwrap_or(0)
        } else if connect.clean_start {
            0
        } else {
            settings.session_expiry_interval_v3
        };
        let client_receive_max = connect.properties.receive_maximum.unwrap_or(u16::MAX);
        let limits = SessionLimits {
            max_inflight: settings.session.max_inflight.min(client_receive_max).max(1),
            ..settings.session
        };
        let opened = broker.open_session(OpenSession {
            namespace: ByteString::new(),
            client_id: client_id.clone(),
            clean_start: connect.clean_start,
            expiry_interval_secs: expiry_interval,
            limits,
            conn_id,
            kick: kick_tx,
        });
        let keep_alive = match (v5, settings.server_keepalive) {
            (true, Some(ka)) => ka,
            _ => connect.keep_alive,
        };
        info.expiry_interval = expiry_interval;
        info.keepalive = keep_alive as u32;
        let publisher = Arc::new(info.clone());
        let will = connect.will.as_ref().map(|w| Will {
            message: Message {
                id: 0,
                topic: mount(&mountpoint, &w.topic),
                payload: w.payload.clone(),
                qos: w.qos,
                retain: w.retain,
                properties: MessageProperties {
                    payload_format_indicator: w.properties.payload_format_indicator,
                    content_type: w.properties.content_type.clone(),
                    response_topic: w.properties.response_topic.clone(),
                    correlation_data: w.properties.correlation_data.clone(),
                    user_properties: w.properties.user_properties.clone(),
                },
                expires_at_ms: None,
                received_at_ms: 0,
                from: client_id.clone(),
                namespace: ByteString::new(),
            }
            .detached(),
            delay_secs: if v5 {
                w.properties.delay_interval.unwrap_or(0)
            } else {
                0
            },
            publisher: publisher.clone(),
        });
        let mut props = ConnAckProperties::default();
        if v5 {
            if assigned {
                props.assigned_client_identifier = Some(client_id.clone());
            }
            props.receive_maximum = Some(settings.session.max_inflight.max(1));
            props.maximum_packet_size = Some(settings.max_packet_size);
            if settings.max_qos_allowed < QoS::ExactlyOnce {
                props.maximum_qos = Some(settings.max_qos_allowed.as_u8());
            }
            if !settings.retain_available {
                props.retain_available = Some(false);
            }
            if settings.max_topic_alias > 0 {
                props.topic_alias_maximum = Some(settings.max_topic_alias);
            }
            if !settings.wildcard_subscription {
                props.wildcard_subscription_available = Some(false);
            }
            if !settings.shared_subscription {
                props.shared_subscription_available = Some(false);
            }
            if let (true, Some(ka)) = (settings.server_keepalive.is_some(), Some(keep_alive)) {
                props.server_keep_alive = Some(ka);
            }
            if connect.properties.request_response_information == Some(1)
                && !settings.response_information.is_empty()
            {
                props.response_information = Some(settings.response_information.as_str().into());
            }
        }
        let mut conn = Conn {
            broker: broker.clone(),
            stream,
            peer,
            listener,
            sockport,
            is_superuser: info.is_superuser,
            rbuf,
            wbuf: BytesMut::new(),
            codec,
            conn_id,
            client_id,
            username: connect.username.as_ref().map(detach),
            clean_start: connect.clean_start,
            keep_alive,
            cell: opened.cell,
            will,
            expiry_interval,
            connect_expiry_zero: expiry_interval == 0,
            client_max_packet: connect.properties.maximum_packet_size.unwrap_or(u32::MAX),
            client_alias_max: if v5 {
                connect.properties.topic_alias_maximum.unwrap_or(0)
            } else {
                0
            },
            aliases_in: AHashMap::new(),
            aliases_out: AHashMap::new(),
            last_recv: Instant::now(),
            connected_at: now_ms(),
            scratch: Vec::new(),
            ack_pending: false,
            congested: false,
            kick: KickWait::default(),
            send_timeout,
            write_cut: false,
            mountpoint,
            settings,
        };
        if conn.will.is_some() && conn.cell.is_persistent() {
            // Kept with the session, so that a will survives a restart of the broker.
            broker.set_will(&conn.cell, conn_id, conn.will.as_ref());
        }
        conn.write_packet(&Packet::ConnAck(ConnAck {
            session_present: opened.session_present,
            reason_code: reason::SUCCESS,
            properties: props,
        }));
        broker.metrics.packets_connack_sent.inc();
        broker.metrics.client_connack.inc();
        broker.metrics.client_connected.inc();
        let hooks = &broker.hooks;
        if opened.session_present {
            hooks.session_resumed.run(&info, &mut ());
        } else {
            hooks.session_created.run(&info, &mut ());
        }
        hooks.client_connected.run(&info, &mut ());
        hooks.client_connack.run(
            &info,
            &mut ConnackArgs {
                result: "success".into(),
            },
        );
        broker.sys_client_connected(&conn.client_event(None));
        Some(conn)
    }

    /// The client as hooks and access control see it (built on demand: the connection
    /// keeps the fields, not a copy).
    fn info(&self) -> ClientInfo {
        ClientInfo {
            clientid: self.client_id.clone(),
            username: self.username.clone(),
            protocol: "mqtt",
            proto_ver: self.codec.version.level().to_string(),
            peername: self.peer,
            sockport: self.sockport,
            listener: self.listener.clone(),
            mountpoint: self.mountpoint.as_str().to_string(),
            keepalive: self.keep_alive as u32,
            clean_start: self.clean_start,
            expiry_interval: self.expiry_interval,
            connected_at: self.connected_at,
            is_superuser: self.is_superuser,
            extras: Default::default(),
        }
    }

    fn client_event(&self, reason: Option<String>) -> ClientEvent {
        ClientEvent {
            client_id: self.client_id.to_string(),
            username: self.username.as_ref().map(|u| u.to_string()),
            peername: self.peer.to_string(),
            proto_name: "MQTT".into(),
            proto_ver: self.codec.version.level(),
            keepalive: self.keep_alive,
            clean_start: self.clean_start,
            expiry_interval: self.expiry_interval,
            connected_at: self.connected_at,
            reason,
        }
    }

    fn write_packet(&mut self, p: &Packet) {
        if self.codec.encode(p, &mut self.wbuf).is_ok() {
            self.broker.metrics.packets_sent.inc();
        }
    }

    async fn flush(&mut self) -> Flow {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        if std::mem::take(&mut self.ack_pending) {
            if let Some(barrier) = self.broker.ack_barrier() {
                // Nothing is acknowledged before it is on disk.
                if let Err(e) = barrier().await {
                    tracing::error!(error = %e, "commit before acknowledging failed; closing");
                    return Err(Exit::Error(reason::UNSPECIFIED_ERROR, "commit failed"));
                }
            }
        }
        if self.write_cut {
            self.wbuf.clear();
            return Err(Exit::Closed);
        }
        let n = self.wbuf.len();
        // A peer that stopped reading blocks the write: the kick and the keepalive still
        // end the connection, and a write that makes no progress for `send_timeout` does.
        let keepalive = self.keepalive_timeout().map(|ka| self.last_recv + ka);
        let kick = &mut self.kick;
        let res = self
            .stream
            .send(&self.wbuf, self.send_timeout, || async move {
                tokio::select! {
                    kicked = kick.wait() => Exit::Kicked(kicked),
                    _ = tokio::time::sleep_until(keepalive.unwrap_or_else(far_future)) => {
                        Exit::Error(reason::KEEP_ALIVE_TIMEOUT, "keepalive timeout")
                    }
                }
            })
            .await;
        self.wbuf.clear();
        let exit = match res {
            Ok(()) => {
                self.broker.metrics.bytes_sent.add(n as u64);
                return Ok(());
            }
            Err(SendError::Stalled) => {
                self.broker.metrics.send_timeout.inc();
                Exit::Error(reason::UNSPECIFIED_ERROR, "send_timeout")
            }
            Err(SendError::Closed) => Exit::Closed,
            Err(SendError::Interrupted(exit)) => exit,
        };
        // Part of the buffer may have gone: the stream is no longer at a packet boundary.
        self.write_cut = true;
        Err(exit)
    }

    fn keepalive_timeout(&self) -> Option<Duration> {
        (self.keep_alive > 0).then(|| {
            Duration::from_secs_f64(self.keep_alive as f64 * self.settings.keepalive_multiplier)
        })
    }

    /// The packet loop.
    async fn run(&mut self) -> Exit {
        // Deliver what the session had waiting (resume), after the CONNACK.
        self.drain_outbox();
        if let Err(e) = self.flush().await {
            return e;
        }
        // Packets that arrived together with CONNECT.
        if let Err(e) = self.process_input() {
            return e;
        }
        if let Err(e) = self.flush_and_finish_input().await {
            return e;
        }
        // Most devices go quiet after connecting: hold no buffers until they speak.
        self.shrink_idle_buffers();
        let ka = self.keepalive_timeout();
        let far = Duration::from_secs(86400 * 365);
        let keepalive = tokio::time::sleep(ka.unwrap_or(far));
        tokio::pin!(keepalive);
        let retry_every = Duration::from_millis(self.settings.session.retry_interval_ms.max(100));
        let retry = tokio::time::sleep(retry_every);
        tokio::pin!(retry);
        loop {
            let step: Flow = tokio::select! {
                biased;
                kicked = self.kick.wait() => return Exit::Kicked(kicked),
                read = self.stream.read_buf(&mut self.rbuf) => match read {
                    Ok(0) | Err(_) => return Exit::Closed,
                    Ok(n) => {
                        self.broker.metrics.bytes_received.add(n as u64);
                        self.last_recv = Instant::now();
                        self.process_input()
                    }
                },
                _ = self.cell.notified() => {
                    self.drain_outbox();
                    Ok(())
                }
                _ = &mut keepalive => {
                    let Some(ka) = ka else { keepalive.as_mut().reset(Instant::now() + far); continue };
                    let deadline = self.last_recv + ka;
                    if Instant::now() >= deadline {
                        return Exit::Error(reason::KEEP_ALIVE_TIMEOUT, "keepalive timeout");
                    }
                    keepalive.as_mut().reset(deadline);
                    self.shrink_idle_buffers();
                    Ok(())
                }
                _ = &mut retry => {
                    let next = self.on_retry();
                    retry.as_mut().reset(next);
                    Ok(())
                }
            };
            if let Err(e) = step {
                return e;
            }
            if let Err(e) = self.flush_and_finish_input().await {
                return e;
            }
        }
    }

    /// Flush; then, while a subscriber this connection feeds is behind, yield to the scheduler before
    /// each further packet of the read buffer: its task gets to write, where routing a
    /// whole buffer from each of many publishers in one round could overflow its outbox
    /// and drop QoS 0 messages. No new read happens until the buffer is done.
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

    fn on_retry(&mut self) -> Instant {
        let now = now_ms();
        let next = {
            let mut guard = self.cell.lock();
            let st = &mut *guard;
            let next = st.session.retry(now, &mut st.outbox);
            let expired = st.session.expire_awaiting_rel(now);
            if expired > 0 {
                self.broker
                    .metrics
                    .messages_dropped_await_pubrel_timeout
                    .add(expired as u64);
            }
            next
        };
        self.drain_outbox();
        let interval = self.settings.session.retry_interval_ms.max(100);
        let wait = next.map_or(interval, |t| t.saturating_sub(now).max(10));
        Instant::now() + Duration::from_millis(wait)
    }

    /// Decode and handle every whole packet in the read buffer.
    fn process_input(&mut self) -> Flow {
        loop {
            match self.codec.decode(&mut self.rbuf) {
                Ok(Some(p)) => {
                    self.broker.metrics.packets_received.inc();
                    self.handle(p)?;
                    if self.congested {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => return Err(decode_exit(&e)),
            }
        }
        self.drain_outbox();
        Ok(())
    }

    fn handle(&mut self, packet: Packet) -> Flow {
        match packet {
            Packet::Publish(p) => self.on_publish(p),
            Packet::PubAck(a) => {
                let res = self.cell.lock().session.puback(a.packet_id);
                self.on_ack_result(res);
                Ok(())
            }
            Packet::PubRec(a) => {
                let res =
                    self.cell
                        .lock()
                        .session
                        .pubrec(a.packet_id, a.reason_code >= 0x80, now_ms());
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
                let res = self.cell.lock().session.pubcomp(a.packet_id);
                self.on_ack_result(res);
                Ok(())
            }
            Packet::PubRel(a) => {
                let known = self.cell.lock().session.release(a.packet_id);
                let code = if known {
                    reason::SUCCESS
                } else {
                    reason::PACKET_IDENTIFIER_NOT_FOUND
                };
                self.write_packet(&Packet::PubComp(ack(a.packet_id, code)));
                // The released id must be on disk before PUBCOMP lets the client reuse it.
                self.ack_pending |= known;
                Ok(())
            }
            Packet::Subscribe(s) => self.on_subscribe(s),
            Packet::Unsubscribe(u) => {
                self.on_unsubscribe(u);
                Ok(())
            }
            Packet::PingReq => {
                self.broker.metrics.packets_pingreq_received.inc();
                self.write_packet(&Packet::PingResp);
                Ok(())
            }
            Packet::Disconnect(d) => self.on_disconnect(d),
            // A second CONNECT is a protocol error [MQTT-3.1.0-2].
            Packet::Connect(_) => Err(Exit::Error(reason::PROTOCOL_ERROR, "second CONNECT")),
            Packet::Auth(_) => Err(Exit::Error(
                reason::PROTOCOL_ERROR,
                "AUTH without enhanced authentication",
            )),
            // Packets only a server sends.
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                Err(Exit::Error(reason::PROTOCOL_ERROR, "server-only packet"))
            }
        }
    }

    fn on_ack_result(&mut self, res: AckResult) {
        if let AckResult::Completed(d) = res {
            self.broker.metrics.messages_acked.inc();
            if !self.broker.hooks.message_acked.is_empty() {
                self.broker
                    .hooks
                    .message_acked
                    .run(&self.info(), &mut MessageArgs { message: d.message });
            }
            let mut guard = self.cell.lock();
            let st = &mut *guard;
            let mut dropped = Vec::new();
            st.session.dequeue(now_ms(), &mut st.outbox, &mut dropped);
            drop(guard);
            if !dropped.is_empty() {
                self.broker.count_dropped(dropped);
            }
        }
    }

    fn on_publish(&mut self, mut p: Publish) -> Flow {
        let m = &self.broker.metrics;
        m.packets_publish_received.inc();
        m.messages_received.inc();
        match p.qos {
            QoS::AtMostOnce => &m.messages_qos0_received,
            QoS::AtLeastOnce => &m.messages_qos1_received,
            QoS::ExactlyOnce => &m.messages_qos2_received,
        }
        .inc();
        if p.qos > self.settings.max_qos_allowed {
            // [MQTT-3.2.2-11]: QoS above Maximum QoS is answered with DISCONNECT 0x9B.
            return Err(Exit::Error(reason::QOS_NOT_SUPPORTED, "QoS not supported"));
        }
        if p.retain && !self.settings.retain_available {
            return Err(Exit::Error(
                reason::RETAIN_NOT_SUPPORTED,
                "retain not supported",
            ));
        }
        if let Some(alias) = p.properties.topic_alias {
            if alias == 0 || alias > self.settings.max_topic_alias {
                // [MQTT-3.3.2-9], [MQTT-3.3.2-10].
                return Err(Exit::Error(
                    reason::TOPIC_ALIAS_INVALID,
                    "topic alias invalid",
                ));
            }
            if p.topic.is_empty() {
                match self.aliases_in.get(&alias) {
                    Some(t) => p.topic = t.clone(),
                    None => return Err(Exit::Error(reason::PROTOCOL_ERROR, "unknown topic alias")),
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
        } else if !junction_auth::access::authorize(
            &self.broker.hooks,
            self.is_superuser,
            action,
            &p.topic,
            || self.info(),
        ) {
            // Includes the built-in rule: `$SYS` is the broker's; clients read it only.
            code = reason::NOT_AUTHORIZED;
        }
        let packet_id = p.packet_id.unwrap_or(0);
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
                self.ack_pending = true;
            }
            QoS::ExactlyOnce => {
                let state = {
                    let mut st = self.cell.lock();
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
                        m.packets_publish_dropped.inc();
                        if !self.v5() {
                            return Ok(());
                        }
                        reason::RECEIVE_MAXIMUM_EXCEEDED
                    }
                    IncomingQos2::OverReceiveMaximum => {
                        m.packets_publish_dropped.inc();
                        return Err(Exit::Error(
                            reason::RECEIVE_MAXIMUM_EXCEEDED,
                            "receive maximum exceeded",
                        ));
                    }
                };
                self.write_packet(&Packet::PubRec(ack(packet_id, code)));
                self.ack_pending = true;
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
            topic: mount(&self.mountpoint, &p.topic),
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
            from: self.client_id.clone(),
            namespace: ByteString::new(),
        };
        let routed = self.broker.publish_routed(msg);
        self.congested |= routed.congested;
        routed.targets
    }

    fn on_subscribe(&mut self, s: Subscribe) -> Flow {
        self.broker.metrics.packets_subscribe_received.inc();
        // `client.subscribe` may drop filters: those are answered "unspecified error".
        let kept: Option<Vec<String>> = if self.broker.hooks.client_subscribe.is_empty() {
            None
        } else {
            let mut args = SubscribeArgs {
                filters: s
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
                    .collect(),
            };
            self.broker
                .hooks
                .client_subscribe
                .run(&self.info(), &mut args);
            Some(args.filters.into_iter().map(|(f, _)| f).collect())
        };
        let mut codes = Vec::with_capacity(s.filters.len());
        for (filter, opts) in &s.filters {
            let code = if kept
                .as_ref()
                .is_some_and(|k| !k.iter().any(|f| f == &**filter))
            {
                reason::UNSPECIFIED_ERROR
            } else {
                self.subscribe_one(filter, opts, s.subscription_identifier)?
            };
            if code >= 0x80 {
                self.broker.metrics.packets_subscribe_error.inc();
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
                return Err(Exit::Error(
                    reason::PROTOCOL_ERROR,
                    "no_local on a shared subscription",
                ));
            }
        }
        if !self.settings.wildcard_subscription && junction_topic::is_wildcard(parsed.filter) {
            return Ok(reason::WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED);
        }
        if too_deep(parsed.filter, self.settings.max_topic_levels) {
            return Ok(reason::TOPIC_FILTER_INVALID);
        }
        let mounted = self.mountpoint.mount_filter(filter);
        if let Some(max) = self.settings.max_subscriptions {
            let st = self.cell.lock();
            if !st.session.subscriptions.contains_key(&mounted)
                && st.session.subscriptions.len() >= max
            {
                return Ok(reason::QUOTA_EXCEEDED);
            }
        }
        let qos = opts.qos.min(self.settings.max_qos_allowed);
        if !junction_auth::access::authorize(
            &self.broker.hooks,
            self.is_superuser,
            Action::Subscribe { qos },
            filter,
            || self.info(),
        ) {
            return Ok(reason::NOT_AUTHORIZED);
        }
        let sub = SubOptions {
            qos,
            no_local: opts.no_local,
            retain_as_published: opts.retain_as_published,
            retain_handling: opts.retain_handling,
            subscription_id: sub_id,
        };
        match self.broker.subscribe(&self.cell, &mounted, sub) {
            Ok(_) => {
                self.broker.sys_client_subscription(
                    &self.client_id,
                    self.username.as_deref(),
                    &mounted,
                    Some(&sub),
                );
                if !self.broker.hooks.session_subscribed.is_empty() {
                    self.broker.hooks.session_subscribed.run(
                        &self.info(),
                        &mut SessionSubArgs {
                            filter: mounted,
                            opts: sub,
                        },
                    );
                }
                Ok(qos.as_u8())
            }
            Err(_) => Ok(reason::TOPIC_FILTER_INVALID),
        }
    }

    fn on_unsubscribe(&mut self, u: Unsubscribe) {
        self.broker.metrics.packets_unsubscribe_received.inc();
        let hooks = &self.broker.hooks;
        // `client.unsubscribe` may drop filters: those stay subscribed.
        let kept: Option<Vec<String>> = if hooks.client_unsubscribe.is_empty() {
            None
        } else {
            let mut args = UnsubscribeArgs {
                filters: u.filters.iter().map(|f| f.to_string()).collect(),
            };
            hooks.client_unsubscribe.run(&self.info(), &mut args);
            Some(args.filters)
        };
        let codes = u
            .filters
            .iter()
            .map(|f| {
                if kept.as_ref().is_some_and(|k| !k.iter().any(|x| x == &**f)) {
                    reason::UNSPECIFIED_ERROR
                } else if self
                    .broker
                    .unsubscribe(&self.cell, &self.mountpoint.mount_filter(f))
                {
                    self.broker.sys_client_subscription(
                        &self.client_id,
                        self.username.as_deref(),
                        &self.mountpoint.mount_filter(f),
                        None,
                    );
                    if !hooks.session_unsubscribed.is_empty() {
                        hooks.session_unsubscribed.run(
                            &self.info(),
                            &mut SessionSubArgs {
                                filter: self.mountpoint.mount_filter(f),
                                opts: SubOptions::default(),
                            },
                        );
                    }
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
        self.broker.metrics.packets_disconnect_received.inc();
        if let Some(exp) = d.properties.session_expiry_interval {
            // A session created with expiry 0 may not be given one at DISCONNECT
            // [MQTT-3.14.2-2].
            if self.connect_expiry_zero && exp != 0 {
                return Err(Exit::Error(
                    reason::PROTOCOL_ERROR,
                    "session expiry set at DISCONNECT after 0 at CONNECT",
                ));
            }
            self.expiry_interval = exp;
        }
        Err(Exit::Disconnected {
            with_will: d.reason_code == reason::DISCONNECT_WITH_WILL,
        })
    }

    /// Take what the session has for the client and encode it into the write buffer.
    fn drain_outbox(&mut self) {
        let mut out = std::mem::take(&mut self.scratch);
        self.cell.take_outbox(self.conn_id, &mut out);
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
        // The client sees its topics without the mountpoint (no copy: a slice of the
        // message's topic).
        let mut topic = if self.mountpoint.is_empty() {
            m.topic.clone()
        } else {
            m.topic.slice_ref(self.mountpoint.unmount(&m.topic))
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
        let start = self.wbuf.len();
        let encoded = encode_publish(self.codec.version, &publish, &mut self.wbuf);
        let metrics = &self.broker.metrics;
        if encoded.is_err() || (self.wbuf.len() - start) as u64 > self.client_max_packet as u64 {
            // Larger than the client accepts: dropped, not sent [MQTT-3.1.2-25].
            self.wbuf.truncate(start);
            if let Some(id) = packet_id {
                self.cell.lock().session.discard_inflight(id);
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
        if !dup {
            metrics.messages_delivered.inc();
            if !self.broker.hooks.message_delivered.is_empty() {
                self.broker.hooks.message_delivered.run(
                    &self.info(),
                    &mut MessageArgs {
                        message: d.message.clone(),
                    },
                );
            }
        }
    }

    /// Tell the client why we close (5.0), hand the session back to the broker, and close.
    async fn finish(mut self, exit: Exit) {
        let (reason_text, server_code, publish_will) = match &exit {
            Exit::Closed => ("closed".to_string(), None, true),
            Exit::Disconnected { with_will } => ("normal".to_string(), None, *with_will),
            Exit::Error(code, why) => (why.to_string(), Some(*code), true),
            Exit::Kicked(k) => {
                let hooks = &self.broker.hooks;
                match k {
                    KickReason::TakenOver if !hooks.session_takenover.is_empty() => {
                        hooks.session_takenover.run(&self.info(), &mut ());
                    }
                    KickReason::Discarded if !hooks.session_discarded.is_empty() => {
                        hooks.session_discarded.run(&self.info(), &mut ());
                    }
                    _ => {}
                }
                let code = match k {
                    KickReason::TakenOver | KickReason::Discarded => reason::SESSION_TAKEN_OVER,
                    KickReason::Administrative => reason::ADMINISTRATIVE_ACTION,
                    KickReason::Shutdown => reason::SERVER_SHUTTING_DOWN,
                };
                let text = match k {
                    KickReason::TakenOver => "takenover",
                    KickReason::Discarded => "discarded",
                    KickReason::Administrative => "kicked",
                    KickReason::Shutdown => "shutdown",
                };
                (text.to_string(), Some(code), true)
            }
        };
        if let (Some(code), true, false) = (server_code, self.v5(), self.write_cut) {
            self.wbuf.clear();
            self.write_packet(&Packet::Disconnect(Disconnect {
                reason_code: code,
                properties: DisconnectProperties::default(),
            }));
            self.broker.metrics.packets_disconnect_sent.inc();
            let goodbye = std::mem::take(&mut self.wbuf);
            if self.stream.write_goodbye(&goodbye).await {
                self.broker.metrics.bytes_sent.add(goodbye.len() as u64);
            }
        }
        tracing::debug!(client_id = %self.client_id, reason = %reason_text, "client disconnected");
        let will = if publish_will { self.will.take() } else { None };
        self.broker.close_session(
            &self.cell,
            self.conn_id,
            Close {
                expiry_interval_secs: self.expiry_interval,
                will,
            },
        );
        self.broker.metrics.client_disconnected.inc();
        let hooks = &self.broker.hooks;
        if !hooks.client_disconnected.is_empty() || !hooks.session_terminated.is_empty() {
            let info = self.info();
            let mut args = ReasonArgs {
                reason: reason_text.clone(),
            };
            if self.expiry_interval == 0 {
                hooks.session_terminated.run(&info, &mut args);
            }
            hooks.client_disconnected.run(&info, &mut args);
        }
        self.broker
            .sys_client_disconnected(&self.client_event(Some(reason_text)));
        let _ = tokio::time::timeout(Duration::from_secs(1), self.stream.shutdown()).await;
    }
}

/// `topic` under `mountpoint` (shared, not copied, when there is none).
fn mount(mountpoint: &Mountpoint, topic: &ByteString) -> ByteString {
    if mountpoint.is_empty() {
        topic.clone()
    } else {
        mountpoint.mount(topic).into()
    }
}

/// A year from now: a deadline that never comes.
fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86400 * 365)
}

fn ack(packet_id: u16, reason_code: u8) -> PubAck {
    PubAck {
        packet_id,
        reason_code,
        properties: AckProperties::default(),
    }
}

/// A copy of `s` in its own allocation (not a slice of the connection's read buffer).
fn detach(s: &ByteString) -> ByteString {
    ByteString::from(String::from(&s[..]))
}

fn too_deep(topic: &str, max_levels: usize) -> bool {
    max_levels > 0 && junction_topic::level_count(topic) > max_levels
}

fn decode_exit(e: &DecodeError) -> Exit {
    tracing::debug!(error = %e, "malformed packet");
    let why = match e.reason_code() {
        reason::PACKET_TOO_LARGE => "packet too large",
        reason::PROTOCOL_ERROR => "protocol error",
        reason::TOPIC_NAME_INVALID => "topic name invalid",
        reason::TOPIC_ALIAS_INVALID => "topic alias invalid",
        _ => "malformed packet",
    };
    Exit::Error(e.reason_code(), why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connection_task_state_stays_small() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (server, peer) = listener.accept().await.unwrap();
        let accepted = Accepted::standalone(Stream::Tcp(server), peer, "tcp:test");
        let fut = serve(
            Broker::new(Default::default()),
            Arc::new(MqttSettings::default()),
            accepted,
        );
        let size = std::mem::size_of_val(&fut);
        eprintln!(
            "connection future: {size} bytes; Conn: {}; Sleep: {}; Stream: {}",
            std::mem::size_of::<Conn>(),
            std::mem::size_of::<tokio::time::Sleep>(),
            std::mem::size_of::<Stream>()
        );
        drop(client);
        assert!(size < 2048, "connection future is {size} bytes");
    }
}
