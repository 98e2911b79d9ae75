//! MQTT-SN as a protocol of the framework's datagram driver: what an address without a
//! client gets (SEARCHGW, QoS −1 publishes, DISCONNECT), which datagrams open a client
//! ([`crate::channel::SnOpening`]), and the state shared by a listener's clients.

use crate::channel::{self, ClientData, SnOpening};
use crate::MqttSnSettings;
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use junction_codec_mqttsn::{decode, encode, Message, QoS as SnQoS, ReturnCode, Topic};
use junction_gateway::driver::datagram::{DatagramProtocol, Peer, Unconnected};
use junction_gateway::metrics::Frame;
use junction_gateway::GatewayCtx;
use junction_types::QoS;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// What a listener's clients share.
pub(crate) struct SnProtocol {
    pub ctx: Arc<GatewayCtx>,
    pub settings: Arc<MqttSnSettings>,
    /// Client id → MQTT-SN state that outlives one address (topic registry, will, sleep).
    pub clients: Mutex<HashMap<ByteString, Arc<Mutex<ClientData>>>>,
    pub predefined_by_id: HashMap<u16, String>,
    pub predefined_by_name: HashMap<String, u16>,
}

impl SnProtocol {
    pub fn new(ctx: Arc<GatewayCtx>, settings: Arc<MqttSnSettings>) -> SnProtocol {
        let mut by_id = HashMap::new();
        let mut by_name = HashMap::new();
        for (pid, topic) in &settings.predefined {
            by_id.insert(*pid, topic.clone());
            by_name.insert(topic.clone(), *pid);
        }
        SnProtocol {
            ctx,
            settings,
            clients: Mutex::new(HashMap::new()),
            predefined_by_id: by_id,
            predefined_by_name: by_name,
        }
    }

    /// Encode `msg` into a datagram, counting it as sent; `None` if it cannot be encoded
    /// (too large), counted as a dropped delivery.
    pub fn encode(&self, msg: &Message) -> Option<Bytes> {
        let mut buf = BytesMut::new();
        if encode(msg, &mut buf).is_err() {
            self.ctx.metrics.delivery_dropped_too_large.inc();
            return None;
        }
        self.ctx.metrics.sent(kind(msg));
        Some(buf.freeze())
    }

    fn encode_into(&self, msg: &Message, reply: &mut Vec<Bytes>) {
        if let Some(b) = self.encode(msg) {
            reply.push(b);
        }
    }
}

impl DatagramProtocol for SnProtocol {
    type Opening = SnOpening;

    fn unconnected(&self, peer: &Peer, datagram: &Bytes, reply: &mut Vec<Bytes>) -> Unconnected {
        let msg = match decode(datagram.clone()) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(peer = %peer.addr, error = %e, "mqtt-sn frame error");
                self.ctx.metrics.packets_frame_error.inc();
                return Unconnected::Handled;
            }
        };
        match msg {
            Message::Connect { .. } | Message::PingReq { client_id: Some(_) } => {
                return Unconnected::Open;
            }
            _ => {}
        }
        self.ctx.metrics.received(kind(&msg));
        match msg {
            Message::SearchGw { .. } => {
                let gwinfo = Message::GwInfo {
                    gw_id: self.settings.gateway_id,
                    gw_add: Bytes::new(),
                };
                self.encode_into(&gwinfo, reply);
            }
            Message::Publish {
                flags,
                topic,
                msg_id,
                data,
            } if flags.qos == SnQoS::MinusOne => {
                negative_qos_publish(self, peer, flags.retain, topic, msg_id, data, reply);
            }
            Message::Disconnect { .. } => {
                self.encode_into(&Message::Disconnect { duration: None }, reply);
            }
            other => {
                tracing::debug!(peer = %peer.addr, msg = other.name(), "mqtt-sn packet from an unconnected peer ignored");
            }
        }
        Unconnected::Handled
    }

    fn opening(self: &Arc<Self>, peer: &Peer) -> SnOpening {
        SnOpening::new(self.clone(), peer.clone())
    }

    fn started(
        self: &Arc<Self>,
        socket: Arc<UdpSocket>,
        _ctx: Arc<GatewayCtx>,
    ) -> Option<JoinHandle<()>> {
        self.settings
            .broadcast
            .then(|| tokio::spawn(crate::advertise::run(self.clone(), socket)))
    }
}

junction_gateway::frame_types! {
    /// MQTT-SN message types as EMQX counts them (`packets.<type>.received|sent`, sic
    /// `serachgw`).
    pub mod frame {
        ADVERTISE => "advertise",
        SERACHGW => "serachgw",
        GWINFO => "gwinfo",
        CONNECT => "connect",
        CONNACK => "connack",
        WILLTOPICREQ => "willtopicreq",
        WILLTOPIC => "willtopic",
        WILLMSGREQ => "willmsgreq",
        WILLMSG => "willmsg",
        REGISTER => "register",
        REGACK => "regack",
        PUBLISH => "publish",
        PUBACK => "puback",
        PUBREC => "pubrec",
        PUBREL => "pubrel",
        PUBCOMP => "pubcomp",
        SUBSCRIBE => "subscribe",
        SUBACK => "suback",
        UNSUBSCRIBE => "unsubscribe",
        UNSUBACK => "unsuback",
        PINGREQ => "pingreq",
        PINGRESP => "pingresp",
        DISCONNECT => "disconnect",
        WILLTOPICUPD => "willtopicupd",
        WILLTOPICRESP => "willtopicresp",
        WILLMSGUPD => "willmsgupd",
        WILLMSGRESP => "willmsgresp",
        ENCAPSULATED => "encapsulated",
    }
}

/// The frame type of a message, for its `packets.<type>.*` counters.
pub(crate) fn kind(m: &Message) -> Frame {
    match m {
        Message::Advertise { .. } => frame::ADVERTISE,
        Message::SearchGw { .. } => frame::SERACHGW,
        Message::GwInfo { .. } => frame::GWINFO,
        Message::Connect { .. } => frame::CONNECT,
        Message::ConnAck { .. } => frame::CONNACK,
        Message::WillTopicReq => frame::WILLTOPICREQ,
        Message::WillTopic { .. } => frame::WILLTOPIC,
        Message::WillMsgReq => frame::WILLMSGREQ,
        Message::WillMsg { .. } => frame::WILLMSG,
        Message::Register { .. } => frame::REGISTER,
        Message::RegAck { .. } => frame::REGACK,
        Message::Publish { .. } => frame::PUBLISH,
        Message::PubAck { .. } => frame::PUBACK,
        Message::PubRec { .. } => frame::PUBREC,
        Message::PubRel { .. } => frame::PUBREL,
        Message::PubComp { .. } => frame::PUBCOMP,
        Message::Subscribe { .. } => frame::SUBSCRIBE,
        Message::SubAck { .. } => frame::SUBACK,
        Message::Unsubscribe { .. } => frame::UNSUBSCRIBE,
        Message::UnsubAck { .. } => frame::UNSUBACK,
        Message::PingReq { .. } => frame::PINGREQ,
        Message::PingResp => frame::PINGRESP,
        Message::Disconnect { .. } => frame::DISCONNECT,
        Message::WillTopicUpd { .. } => frame::WILLTOPICUPD,
        Message::WillTopicResp { .. } => frame::WILLTOPICRESP,
        Message::WillMsgUpd { .. } => frame::WILLMSGUPD,
        Message::WillMsgResp { .. } => frame::WILLMSGRESP,
        Message::Encapsulated { .. } => frame::ENCAPSULATED,
    }
}

/// The client id a QoS −1 publisher is known by (EMQX's).
const NEG_QOS_CLIENT: &str = "NegQoS-Client";

/// QoS −1 PUBLISH without a connection: predefined or short topics only, published as QoS 0
/// with publisher `NegQoS-Client` (EMQX 5.x, reference §5.2). Unlike EMQX, such a publisher
/// is not let around the gate: where the listener requires authentication it is refused
/// (it cannot authenticate), and otherwise it is authorized and mounted like any client.
fn negative_qos_publish(
    shared: &SnProtocol,
    peer: &Peer,
    retain: bool,
    topic: Topic,
    msg_id: u16,
    data: Bytes,
    reply: &mut Vec<Bytes>,
) {
    let raw_id = channel::raw_topic_id(&topic);
    if !shared.settings.enable_qos3 {
        let ack = Message::PubAck {
            topic_id: raw_id,
            msg_id,
            rc: ReturnCode::NotSupported,
        };
        shared.encode_into(&ack, reply);
        return;
    }
    let name = match &topic {
        Topic::Predefined(id) => shared.predefined_by_id.get(id).cloned(),
        Topic::Short(b) => channel::short_name(b),
        _ => None,
    };
    let Some(name) = name else {
        tracing::debug!(peer = %peer.addr, "QoS -1 publish to an unknown topic dropped");
        return;
    };
    let ctx = &shared.ctx;
    let clientid = ByteString::from_static(NEG_QOS_CLIENT);
    let mut info = channel::client_info(shared, peer, &clientid, None, 0);
    let mountpoint = ctx.mountpoint_for(
        shared.settings.listener_mountpoint.as_deref(),
        &info.clientid,
        None,
    );
    let allowed = !ctx.authn_required(&peer.listener)
        && ctx.check_topic_name(&name).is_ok()
        && ctx.authorize_publish(&info, &name);
    let mountpoint = match (allowed, mountpoint) {
        (true, Ok(mountpoint)) => mountpoint,
        _ => {
            tracing::debug!(peer = %peer.addr, topic = %name, "QoS -1 publish not authorized: dropped");
            ctx.metrics.messages_dropped.inc();
            ctx.metrics.messages_dropped_not_authorized.inc();
            return;
        }
    };
    info.mountpoint = mountpoint.as_str().to_string();
    ctx.publish(
        &info,
        &mountpoint,
        &name,
        data,
        QoS::AtMostOnce,
        retain,
        Default::default(),
    );
}
