//! CoAP as a protocol of the framework's datagram driver: what an address without a
//! client gets, and which requests open one ([`crate::opening::CoapOpening`]).

use crate::channel::Conn;
use crate::config::{DefaultQos, NotifyType};
use crate::frame;
use crate::opening::CoapOpening;
use crate::request::{Query, Request};
use bytes::Bytes;
use bytestring::ByteString;
use junction_codec_coap::{Code, Message, MessageType};
use junction_gateway::driver::datagram::{DatagramProtocol, Peer, Unconnected};
use junction_gateway::GatewayCtx;
use junction_session::SessionLimits;
use junction_types::QoS;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// `gateway.coap` settings a listener's clients share.
#[derive(Debug, Clone)]
pub(crate) struct CoapSettings {
    /// `heartbeat`: a client is gone after 1.5 × this without a request.
    pub heartbeat: Duration,
    /// `connection_required`.
    pub connection_required: bool,
    /// `notify_type`.
    pub notify_type: NotifyType,
    /// `subscribe_qos`.
    pub subscribe_qos: DefaultQos,
    /// `publish_qos`.
    pub publish_qos: DefaultQos,
    /// The listener's own `mountpoint`, overriding the gateway's.
    pub listener_mountpoint: Option<String>,
    /// The session limits of the zone.
    pub session: SessionLimits,
}

impl CoapSettings {
    /// The QoS a request that names none gets under `setting`.
    pub fn default_qos(setting: DefaultQos, request: &Message) -> QoS {
        match setting {
            DefaultQos::Coap if request.message_type == MessageType::Confirmable => {
                QoS::AtLeastOnce
            }
            DefaultQos::Coap | DefaultQos::Qos0 => QoS::AtMostOnce,
            DefaultQos::Qos1 => QoS::AtLeastOnce,
            DefaultQos::Qos2 => QoS::ExactlyOnce,
        }
    }
}

/// What a listener's clients share.
pub(crate) struct CoapProtocol {
    pub ctx: Arc<GatewayCtx>,
    pub settings: Arc<CoapSettings>,
    /// Connection mode: the open connections by client id.
    pub connections: Mutex<HashMap<ByteString, Arc<Mutex<Conn>>>>,
}

impl CoapProtocol {
    pub fn new(ctx: Arc<GatewayCtx>, settings: Arc<CoapSettings>) -> CoapProtocol {
        CoapProtocol {
            ctx,
            settings,
            connections: Mutex::new(HashMap::new()),
        }
    }

    /// The open connection `clientid` if `token` is its token.
    pub fn connection(&self, clientid: &str, token: &str) -> Option<Arc<Mutex<Conn>>> {
        let conn = self.connections.lock().get(clientid).cloned()?;
        let matches = conn.lock().token.as_deref() == Some(token);
        matches.then_some(conn)
    }

    /// Encode `msg`, counting it as a sent `coap` frame; `None` if it cannot be encoded.
    pub fn encode(&self, msg: &Message) -> Option<Bytes> {
        crate::wire::encode_counted(&self.ctx, frame::COAP, msg)
    }

    /// A response to `request` with `code` and a diagnostic payload (RFC 7252 §5.5.2),
    /// left out when the reply would be larger than the request (an address that has
    /// proved nothing gets no more bytes than it sent).
    fn refusal(&self, request: &Message, len: usize, code: Code, text: &str) -> Option<Bytes> {
        let bare = request.response(code);
        let with_text = bare
            .clone()
            .with_payload(Bytes::copy_from_slice(text.as_bytes()));
        let fits = junction_codec_coap::encoded_len(&with_text).is_ok_and(|n| n <= len);
        self.encode(if fits { &with_text } else { &bare })
    }
}

impl DatagramProtocol for CoapProtocol {
    type Opening = CoapOpening;

    fn unconnected(&self, peer: &Peer, datagram: &Bytes, reply: &mut Vec<Bytes>) -> Unconnected {
        let Some(msg) =
            crate::wire::unsolicited_request(&self.ctx, frame::COAP, peer, datagram, reply)
        else {
            return Unconnected::Handled;
        };
        if !self.settings.connection_required {
            return Unconnected::Open;
        }
        if Request::of(&msg) == Request::Connect {
            return Unconnected::Open;
        }
        // Connection mode, and this address has no connection.
        let query = Query::of(&msg);
        let (code, text) = match (query.get("clientid"), query.get("token")) {
            // A connection's client id and token from a new address: it takes the
            // connection over (a NAT rebinding, a new DTLS session).
            (Some(c), Some(t)) if self.connection(c, t).is_some() => return Unconnected::Open,
            (Some(_), Some(_)) => (
                Code::UNAUTHORIZED,
                "Invalid token or clientid in connection mode",
            ),
            _ => (
                Code::BAD_REQUEST,
                "Missing token or clientid in connection mode",
            ),
        };
        reply.extend(self.refusal(&msg, datagram.len(), code, text));
        Unconnected::Handled
    }

    fn opening(self: &Arc<Self>, peer: &Peer) -> CoapOpening {
        CoapOpening::new(self.clone(), peer.clone())
    }
}
