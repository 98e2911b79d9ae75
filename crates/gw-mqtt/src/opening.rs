//! The MQTT handshake: CONNECT read and checked, the connect pipeline's request, the
//! refusal CONNACK, and the accepted CONNACK that makes the [`MqttChannel`].

use crate::channel::{detach, too_deep, MqttChannel};
use crate::MqttSettings;
use bytes::BytesMut;
use bytestring::ByteString;
use junction_broker::Will;
use junction_codec_mqtt::{
    reason, Codec, ConnAck, ConnAckProperties, Connect, LastWill, Packet, ProtocolVersion,
};
use junction_gateway::driver::stream::{Opening, Output, Peer};
use junction_gateway::{ConnectRequest, GatewayCtx, Session};
use junction_session::SessionLimits;
use junction_types::{now_ms, ClientInfo, Message, MessageProperties, QoS};
use std::sync::Arc;
use tokio::time::Instant;

/// What CONNECT asked for that the CONNACK and the channel need once the client is
/// admitted.
struct Asked {
    version: ProtocolVersion,
    /// The client sent no id and got one of ours (MQTT 5: Assigned Client Identifier).
    assigned: bool,
    will: Option<LastWill>,
    keep_alive: u16,
    expiry_interval: u32,
    client_max_packet: u32,
    client_alias_max: u16,
    response_information: bool,
}

/// An MQTT connection before CONNACK.
pub struct MqttOpening {
    ctx: Arc<GatewayCtx>,
    settings: Arc<MqttSettings>,
    out: Output,
    asked: Option<Box<Asked>>,
}

impl MqttOpening {
    /// The handshake of one connection to a listener with `settings`.
    pub fn new(ctx: Arc<GatewayCtx>, settings: Arc<MqttSettings>) -> Self {
        MqttOpening {
            ctx,
            settings,
            out: Output::default(),
            asked: None,
        }
    }

    /// A refusal CONNACK in the client's version (3.x codes for 3.x clients).
    fn refuse(&mut self, version: ProtocolVersion, code: u8) {
        let code = if version.is_v5() {
            code
        } else {
            reason::connack_v5_to_v3(code)
        };
        let ack = Packet::ConnAck(ConnAck {
            session_present: false,
            reason_code: code,
            properties: ConnAckProperties::default(),
        });
        let _ = Codec::new(version, u32::MAX).encode(&ack, &mut self.out.bytes);
        self.ctx.broker_metrics().packets_connack_error.inc();
    }

    /// Check CONNECT and turn it into the connect pipeline's request; `None` when it is
    /// refused here (the CONNACK is written).
    fn request(&mut self, connect: Connect, peer: &Peer) -> Option<ConnectRequest> {
        let settings = &*self.settings;
        let version = connect.protocol;
        let v5 = version.is_v5();
        // Long-lived fields are copied out of the read buffer so they do not pin it.
        let mut client_id = detach(&connect.client_id);
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
            self.refuse(version, code);
            return None;
        }
        let assigned = client_id.is_empty();
        if assigned {
            client_id = format!("junction-{:016x}", rand::random::<u64>()).into();
        }
        // `use_username_as_clientid`: as EMQX, before authentication and the mountpoint.
        if settings.use_username_as_clientid {
            if let Some(username) = connect.username.as_ref().filter(|u| !u.is_empty()) {
                client_id = detach(username);
            }
        }
        if connect.username.is_none() {
            self.ctx.broker_metrics().client_auth_anonymous.inc();
        }
        let expiry_interval = if v5 {
            connect.properties.session_expiry_interval.unwrap_or(0)
        } else if connect.clean_start {
            0
        } else {
            settings.session_expiry_interval_v3
        };
        let keep_alive = match (v5, settings.server_keepalive) {
            (true, Some(ka)) => ka,
            _ => connect.keep_alive,
        };
        let client_receive_max = connect.properties.receive_maximum.unwrap_or(u16::MAX);
        let limits = SessionLimits {
            max_inflight: settings.session.max_inflight.min(client_receive_max).max(1),
            ..settings.session
        };
        let info = ClientInfo {
            clientid: client_id,
            username: connect.username.as_ref().map(detach),
            protocol: "mqtt",
            proto_ver: version.level().to_string(),
            peername: peer.addr,
            sockport: peer.sockport,
            listener: peer.listener.clone(),
            mountpoint: String::new(),
            keepalive: keep_alive as u32,
            clean_start: connect.clean_start,
            expiry_interval,
            connected_at: now_ms(),
            is_superuser: false,
            extras: Default::default(),
        };
        self.asked = Some(Box::new(Asked {
            version,
            assigned,
            will: connect.will,
            keep_alive,
            expiry_interval,
            client_max_packet: connect.properties.maximum_packet_size.unwrap_or(u32::MAX),
            client_alias_max: if v5 {
                connect.properties.topic_alias_maximum.unwrap_or(0)
            } else {
                0
            },
            response_information: connect.properties.request_response_information == Some(1),
        }));
        Some(ConnectRequest {
            info,
            password: connect.password,
            listener_mountpoint: Some(settings.mountpoint.clone()),
            limits,
            resume: false,
        })
    }

    /// The CONNACK properties an MQTT 5 client is told.
    fn connack_properties(&self, asked: &Asked, clientid: &ByteString) -> ConnAckProperties {
        let settings = &*self.settings;
        let mut props = ConnAckProperties::default();
        if !asked.version.is_v5() {
            return props;
        }
        if asked.assigned {
            props.assigned_client_identifier = Some(clientid.clone());
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
        if settings.server_keepalive.is_some() {
            props.server_keep_alive = Some(asked.keep_alive);
        }
        if asked.response_information && !settings.response_information.is_empty() {
            props.response_information = Some(settings.response_information.as_str().into());
        }
        props
    }
}

impl Opening for MqttOpening {
    type Channel = MqttChannel;

    fn output(&mut self) -> &mut Output {
        &mut self.out
    }

    /// The first packet must be CONNECT [MQTT-3.1.0-1]: anything else is refused from its
    /// first byte, before a body of up to `max_packet_size` is buffered.
    fn open(&mut self, input: &mut BytesMut, peer: &Peer) -> Result<Option<ConnectRequest>, ()> {
        if input.first().is_some_and(|b| b >> 4 != 1) {
            tracing::debug!(peer = %peer.addr, "first packet is not CONNECT");
            return Err(());
        }
        let codec = Codec::new(ProtocolVersion::V3_1_1, self.settings.max_packet_size);
        match codec.decode(input) {
            Ok(Some(Packet::Connect(c))) => {
                self.ctx.broker_metrics().packets_connect.inc();
                self.request(*c, peer).map(Some).ok_or(())
            }
            Ok(Some(_)) => Err(()),
            Ok(None) => Ok(None),
            Err(e) => {
                // An unsupported protocol level gets a CONNACK in the format the client
                // can read [MQTT-3.1.2-2]; anything else is just closed.
                if let Some(v) = e.connack_version() {
                    let code = if v.is_v5() {
                        reason::UNSUPPORTED_PROTOCOL_VERSION
                    } else {
                        reason::v3_connack::UNACCEPTABLE_PROTOCOL_VERSION
                    };
                    let ack = Packet::ConnAck(ConnAck {
                        session_present: false,
                        reason_code: code,
                        properties: ConnAckProperties::default(),
                    });
                    let _ = Codec::new(v, u32::MAX).encode(&ack, &mut self.out.bytes);
                    self.ctx.broker_metrics().packets_connack_error.inc();
                }
                tracing::debug!(peer = %peer.addr, error = %e, "bad first packet");
                Err(())
            }
        }
    }

    /// `bad_username_or_password` is 0x86, a refused client id 0x85, anything else
    /// (authentication, a `client.connect` hook) 0x87.
    fn refused(&mut self, why: &str) {
        let Some(asked) = self.asked.take() else {
            return;
        };
        let code = match why {
            "bad_username_or_password" => reason::BAD_USERNAME_OR_PASSWORD,
            "client_identifier_not_valid" => reason::CLIENT_IDENTIFIER_NOT_VALID,
            _ => reason::NOT_AUTHORIZED,
        };
        self.refuse(asked.version, code);
    }

    fn admitted(mut self, session: Session, now: Instant) -> MqttChannel {
        let asked = self.asked.take().expect("CONNECT was read");
        if let Some(max) = self.settings.max_subscriptions {
            session
                .stats
                .subscriptions_max
                .store(max as u64, std::sync::atomic::Ordering::Relaxed);
        }
        let props = self.connack_properties(&asked, &session.info.clientid);
        let v5 = asked.version.is_v5();
        let publisher = session.info.clone();
        let will = asked.will.as_ref().map(|w| Will {
            message: Message {
                id: 0,
                topic: crate::channel::mount(&session.mountpoint, &w.topic),
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
                from: session.info.clientid.clone(),
                namespace: ByteString::new(),
            }
            .detached(),
            delay_secs: if v5 {
                w.properties.delay_interval.unwrap_or(0)
            } else {
                0
            },
            publisher,
        });
        if will.is_some() && session.cell.is_persistent() {
            // Kept with the session, so that a will survives a restart of the broker.
            self.ctx.set_will(&session, will.as_ref());
        }
        let session_present = session.session_present;
        let mut channel = MqttChannel::new(
            session,
            self.settings,
            self.out,
            crate::channel::Agreed {
                version: asked.version,
                keep_alive: asked.keep_alive,
                expiry_interval: asked.expiry_interval,
                client_max_packet: asked.client_max_packet,
                client_alias_max: asked.client_alias_max,
                will,
            },
            now,
        );
        channel.connack(session_present, props);
        channel
    }
}
