//! A device's REGISTER (`POST /rd?ep=…&lt=…`): its identity by EMQX's rules (client id
//! `device_id` or `ep`, user name `imei` or `ep`, password `password`), admitted by the
//! framework's connect pipeline with the gateway's authentication chain.

use crate::channel::Lwm2mChannel;
use crate::protocol::{is_register, Lwm2mProtocol, Registered};
use crate::registration::Registration;
use bytes::Bytes;
use bytestring::ByteString;
use junction_codec_coap::{decode, Code, Message};
use junction_gateway::driver::datagram::{DatagramOpening, DatagramOutput, Opened, Peer};
use junction_gateway::driver::{ConnectRequest, Session};
use junction_gateway::mountpoint::{render, Placeholders};
use junction_types::{now_ms, ClientInfo};
use std::sync::Arc;
use tokio::time::Instant;

/// The registration of one peer.
pub(crate) struct Lwm2mOpening {
    proto: Arc<Lwm2mProtocol>,
    peer: Peer,
    dout: DatagramOutput,
    /// The REGISTER and what it registers, answered once the device is admitted.
    first: Option<(Message, Registration)>,
    /// An UPDATE or De-register from a new address, and the registration it moves.
    moved: Option<(Message, Arc<Registered>)>,
}

impl Lwm2mOpening {
    pub fn new(proto: Arc<Lwm2mProtocol>, peer: Peer) -> Lwm2mOpening {
        Lwm2mOpening {
            proto,
            peer,
            dout: DatagramOutput::default(),
            first: None,
            moved: None,
        }
    }

    fn answer(&mut self, request: &Message, code: Code, text: &str) {
        let response = request
            .response(code)
            .with_payload(Bytes::copy_from_slice(text.as_bytes()));
        if let Some(b) = self.proto.encode(&response) {
            self.dout.push(b);
        }
    }
}

impl Lwm2mOpening {
    /// A registration moving to this address: its session is taken over from the old
    /// one (which closes), not authenticated again (see [`Lwm2mProtocol::movable`]).
    fn move_here(&mut self, msg: Message, shared: Arc<Registered>) -> Opened {
        let (ep, lifetime, version) = {
            let reg = shared.reg.lock();
            (
                reg.endpoint.clone(),
                reg.lifetime,
                reg.version().to_string(),
            )
        };
        let mut info = self.info(
            shared.clientid.clone(),
            shared.username.clone(),
            &ep,
            lifetime,
            version,
        );
        info.is_superuser = shared.is_superuser;
        info.clean_start = false;
        self.moved = Some((msg, shared));
        Opened::Connect(ConnectRequest {
            info,
            password: None,
            // It rendered when the device registered.
            listener_mountpoint: self.mountpoint(&ep),
            limits: self.proto.settings.session,
            resume: true,
        })
    }

    /// The mountpoint template (the listener's, else the gateway's) with
    /// `${endpoint_name}` rendered; the framework renders the other placeholders. `None`
    /// when the endpoint name would widen or move it (`+`, `#`, `/`).
    fn mountpoint(&self, ep: &str) -> Option<String> {
        let template = match &self.proto.settings.listener_mountpoint {
            Some(m) => m.clone(),
            None => self.proto.ctx.settings().mountpoint.clone(),
        };
        let vars = Placeholders {
            clientid: None,
            username: None,
            endpoint_name: Some(ep),
            zone: None,
        };
        render(&template, &vars).ok()
    }

    fn info(
        &self,
        clientid: ByteString,
        username: Option<ByteString>,
        ep: &str,
        lifetime: u32,
        version: String,
    ) -> ClientInfo {
        // The endpoint name only where it is not the client id (a `device_id`): the API
        // shows the client id otherwise, and the lifetime is the keepalive. An empty map
        // allocates nothing; one entry costs a B-tree node, per copy of the info.
        let mut extras = serde_json::Map::new();
        if ep != &*clientid {
            extras.insert("endpoint_name".into(), ep.into());
        }
        ClientInfo {
            clientid,
            username,
            protocol: self.proto.ctx.protocol,
            proto_ver: version,
            peername: self.peer.addr,
            sockport: self.peer.sockport,
            listener: self.peer.listener.clone(),
            mountpoint: String::new(),
            // EMQX shows the lifetime as the keepalive.
            keepalive: lifetime,
            clean_start: true,
            expiry_interval: 0,
            connected_at: now_ms(),
            is_superuser: false,
            extras,
        }
    }
}

impl DatagramOpening for Lwm2mOpening {
    type Channel = Lwm2mChannel;

    fn output(&mut self) -> &mut DatagramOutput {
        &mut self.dout
    }

    fn open(&mut self, datagram: Bytes, peer: &Peer) -> Result<Option<Opened>, ()> {
        let Ok(msg) = decode(datagram) else {
            self.proto.ctx.metrics.packets_frame_error.inc();
            return Ok(None);
        };
        if let Some(shared) = self.proto.movable(peer, &msg) {
            return Ok(Some(self.move_here(msg, shared)));
        }
        if !is_register(&msg) {
            return Ok(None);
        }
        let Some(query) = msg.uri_queries() else {
            self.answer(&msg, Code::BAD_REQUEST, "query is not UTF-8");
            return Err(());
        };
        let settings = self.proto.settings.clone();
        let registration = match Registration::register(&query, &msg.payload, settings.lifetimes) {
            Ok(r) => r,
            Err(refused) => {
                self.answer(&msg, Code::BAD_REQUEST, &refused.0);
                return Err(());
            }
        };
        let get = |k: &str| query.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
        let ep = registration.endpoint.as_str();
        let clientid = get("device_id").filter(|d| !d.is_empty()).unwrap_or(ep);
        let username = get("imei").filter(|i| !i.is_empty()).unwrap_or(ep);
        let password = get("password").map(|p| Bytes::copy_from_slice(p.as_bytes()));
        let info = self.info(
            ByteString::from(clientid),
            Some(ByteString::from(username)),
            ep,
            registration.lifetime,
            registration.version().to_string(),
        );
        let Some(mountpoint) = self.mountpoint(ep) else {
            self.answer(
                &msg,
                Code::BAD_REQUEST,
                "Login Failed: client_identifier_not_valid",
            );
            return Err(());
        };
        self.first = Some((msg.clone(), registration));
        Ok(Some(Opened::Connect(ConnectRequest {
            info,
            password,
            listener_mountpoint: Some(mountpoint),
            limits: settings.session,
            resume: false,
        })))
    }

    /// EMQX's answer: 4.00 "Login Failed: <reason>".
    fn refused(&mut self, reason: &str) {
        // A registration that could not move: 4.04, and the device registers again.
        if let Some((request, _)) = self.moved.take() {
            self.answer(&request, Code::NOT_FOUND, "");
            return;
        }
        if let Some((request, _)) = self.first.take() {
            self.answer(
                &request,
                Code::BAD_REQUEST,
                &format!("Login Failed: {reason}"),
            );
        }
    }

    fn admitted(self, session: Session, now: Instant) -> Lwm2mChannel {
        if let Some((request, shared)) = self.moved {
            let mut channel = Lwm2mChannel::new(self.proto, session, self.dout, shared, now);
            channel.moved(request, now);
            return channel;
        }
        let Some((request, registration)) = self.first else {
            unreachable!("a device is admitted only after its REGISTER");
        };
        let shared = Arc::new(Registered {
            reg: parking_lot::Mutex::new(registration),
            clientid: session.info.clientid.clone(),
            username: session.info.username.clone(),
            is_superuser: session.info.is_superuser,
            handover: parking_lot::Mutex::new(None),
        });
        let mut channel = Lwm2mChannel::new(self.proto, session, self.dout, shared, now);
        channel.registered(&request, now);
        channel
    }
}
