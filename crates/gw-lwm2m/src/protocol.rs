//! LwM2M as a protocol of the framework's datagram driver: an address without a client
//! may only register (`POST /rd?ep=…`); anything else gets 4.04, as its registration is
//! not known here.

use crate::channel::Commands;
use crate::config::{Translators, UpdateCondition};
use crate::frame;
use crate::objects::Objects;
use crate::opening::Lwm2mOpening;
use crate::registration::{Lifetimes, Registration};
use bytes::Bytes;
use bytestring::ByteString;
use junction_codec_coap::{Code, Message};
use junction_gateway::driver::datagram::{DatagramProtocol, Peer, Unconnected};
use junction_gateway::GatewayCtx;
use junction_session::SessionLimits;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// `gateway.lwm2m` settings a listener's clients share.
#[derive(Debug, Clone)]
pub(crate) struct Lwm2mSettings {
    /// `lifetime_min` and `lifetime_max`.
    pub lifetimes: Lifetimes,
    /// `qmode_time_window`.
    pub qmode_time_window: Duration,
    /// `auto_observe`.
    pub auto_observe: bool,
    /// `update_msg_publish_condition`.
    pub update_condition: UpdateCondition,
    /// `translators`.
    pub translators: Translators,
    /// The listener's own `mountpoint`, overriding the gateway's.
    pub listener_mountpoint: Option<String>,
    /// The session limits of the zone.
    pub session: SessionLimits,
}

/// A registration and who registered it: held by the device's channel and, by endpoint
/// name, by the listener, so that an UPDATE or a De-register from a new address (a NAT
/// rebinding, a client that sends each request from a new port) finds it.
pub(crate) struct Registered {
    pub reg: Mutex<Registration>,
    pub clientid: ByteString,
    pub username: Option<ByteString>,
    pub is_superuser: bool,
    /// What the channel at the previous address was asked, left as it closed for the
    /// channel at the new one (a registration that moved).
    pub handover: Mutex<Option<Box<Commands>>>,
}

/// What a listener's clients share.
pub(crate) struct Lwm2mProtocol {
    pub ctx: Arc<GatewayCtx>,
    pub settings: Arc<Lwm2mSettings>,
    /// The object definitions, shared with the management API.
    pub objects: Arc<Objects>,
    /// The registrations of this listener, by endpoint name.
    pub registrations: Mutex<HashMap<String, Arc<Registered>>>,
}

impl Lwm2mProtocol {
    pub fn new(ctx: Arc<GatewayCtx>, settings: Arc<Lwm2mSettings>, objects: Arc<Objects>) -> Self {
        Lwm2mProtocol {
            ctx,
            settings,
            objects,
            registrations: Mutex::new(HashMap::new()),
        }
    }

    /// The registration an UPDATE or a De-register from an address without one names,
    /// if it may move there: only where the listener authenticates nobody, since the
    /// request carries no credentials and a REGISTER would get the endpoint as well.
    pub fn movable(&self, peer: &Peer, msg: &Message) -> Option<Arc<Registered>> {
        if !matches!(msg.code, Code::POST | Code::DELETE) {
            return None;
        }
        let segments: Vec<&[u8]> = msg.uri_path_segments().collect();
        let [rd, ep] = segments.as_slice() else {
            return None;
        };
        if *rd != b"rd" || self.ctx.authn_required(&peer.listener) {
            return None;
        }
        let ep = std::str::from_utf8(ep).ok()?;
        self.registrations.lock().get(ep).cloned()
    }

    /// Encode `msg`, counting it as a sent `coap` frame; `None` if it cannot be encoded.
    pub fn encode(&self, msg: &Message) -> Option<Bytes> {
        junction_gw_coap::wire::encode_counted(&self.ctx, frame::COAP, msg)
    }
}

/// A REGISTER: `POST /rd`.
pub(crate) fn is_register(msg: &Message) -> bool {
    msg.code == Code::POST && msg.uri_path_segments().eq([b"rd".as_slice()])
}

impl DatagramProtocol for Lwm2mProtocol {
    type Opening = Lwm2mOpening;

    fn unconnected(&self, peer: &Peer, datagram: &Bytes, reply: &mut Vec<Bytes>) -> Unconnected {
        let Some(msg) = junction_gw_coap::wire::unsolicited_request(
            &self.ctx,
            frame::COAP,
            peer,
            datagram,
            reply,
        ) else {
            return Unconnected::Handled;
        };
        if is_register(&msg) || self.movable(peer, &msg).is_some() {
            return Unconnected::Open;
        }
        // Anything else from an address with no registration (or an update that may not
        // move it): 4.04, and the device registers again (LwM2M 1.1 Core §6.2.2).
        // The bare response is never larger than the request.
        reply.extend(self.encode(&msg.response(Code::NOT_FOUND)));
        Unconnected::Handled
    }

    fn opening(self: &Arc<Self>, peer: &Peer) -> Lwm2mOpening {
        Lwm2mOpening::new(self.clone(), peer.clone())
    }
}
