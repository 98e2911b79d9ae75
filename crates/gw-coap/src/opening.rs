//! A CoAP peer's first request: in connection mode `POST /mqtt/connection` with its
//! client id and credentials; in connectionless mode any request, the address becoming a
//! client with a generated id. Either way the framework's connect pipeline admits it.

use crate::channel::{CoapChannel, Conn};
use crate::protocol::CoapProtocol;
use crate::request::{Query, Request};
use bytes::Bytes;
use bytestring::ByteString;
use junction_codec_coap::{decode, Code, Message};
use junction_gateway::driver::datagram::{DatagramOpening, DatagramOutput, Opened, Peer};
use junction_gateway::driver::{ConnectRequest, Session};
use junction_types::{now_ms, ClientInfo};
use parking_lot::Mutex;
use rand::Rng;
use std::sync::Arc;
use tokio::time::Instant;

/// The handshake of one peer.
pub(crate) struct CoapOpening {
    proto: Arc<CoapProtocol>,
    peer: Peer,
    dout: DatagramOutput,
    /// The request that opened: answered (connection mode) or served (connectionless)
    /// once the client is admitted.
    first: Option<Message>,
    /// A connection taken over from another address.
    takeover: Option<Arc<Mutex<Conn>>>,
}

impl CoapOpening {
    pub fn new(proto: Arc<CoapProtocol>, peer: Peer) -> CoapOpening {
        CoapOpening {
            proto,
            peer,
            dout: DatagramOutput::default(),
            first: None,
            takeover: None,
        }
    }

    fn answer(&mut self, code: Code, text: &str) {
        let Some(request) = &self.first else {
            return;
        };
        let response = request
            .response(code)
            .with_payload(Bytes::copy_from_slice(text.as_bytes()));
        if let Some(b) = self.proto.encode(&response) {
            self.dout.push(b);
        }
    }
}

impl CoapOpening {
    fn info(&self, clientid: ByteString, username: Option<ByteString>) -> ClientInfo {
        let heartbeat = self.proto.settings.heartbeat.as_secs();
        ClientInfo {
            clientid,
            username,
            protocol: self.proto.ctx.protocol,
            proto_ver: "1".to_string(),
            peername: self.peer.addr,
            sockport: self.peer.sockport,
            listener: self.peer.listener.clone(),
            mountpoint: String::new(),
            // EMQX's figure: the interval heartbeats are checked at.
            keepalive: (heartbeat / 2).min(u32::MAX as u64) as u32,
            clean_start: true,
            expiry_interval: 0,
            connected_at: now_ms(),
            is_superuser: false,
            extras: Default::default(),
        }
    }

    /// Connection mode, a request from a new address naming a connection and its token:
    /// the connection (its session and observations) moves here. The token proves who
    /// this is, as the connection's authentication did: nothing is authenticated again.
    fn take_over(&mut self, query: &Query<'_>) -> Result<Opened, ()> {
        let (Some(clientid), Some(token)) = (query.get("clientid"), query.get("token")) else {
            self.answer(
                Code::BAD_REQUEST,
                "Missing token or clientid in connection mode",
            );
            return Err(());
        };
        let Some(conn) = self.proto.connection(clientid, token) else {
            self.answer(
                Code::UNAUTHORIZED,
                "Invalid token or clientid in connection mode",
            );
            return Err(());
        };
        let (username, is_superuser) = {
            let c = conn.lock();
            (c.username.clone(), c.is_superuser)
        };
        let mut info = self.info(ByteString::from(clientid), username);
        info.is_superuser = is_superuser;
        // The live session is taken over, not started again.
        info.clean_start = false;
        self.takeover = Some(conn);
        let settings = &self.proto.settings;
        Ok(Opened::Connect(ConnectRequest {
            info,
            password: None,
            listener_mountpoint: settings.listener_mountpoint.clone(),
            limits: settings.session,
            resume: true,
        }))
    }
}

/// A client id for a connectionless peer: 16 random alphanumerics (EMQX's length).
fn generated_clientid() -> String {
    let mut rng = rand::rng();
    (0..16)
        .map(|_| {
            const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
            ALPHABET[rng.random_range(0..ALPHABET.len())] as char
        })
        .collect()
}

impl DatagramOpening for CoapOpening {
    type Channel = CoapChannel;

    fn output(&mut self) -> &mut DatagramOutput {
        &mut self.dout
    }

    fn open(&mut self, datagram: Bytes, _peer: &Peer) -> Result<Option<Opened>, ()> {
        let Ok(msg) = decode(datagram) else {
            self.proto.ctx.metrics.packets_frame_error.inc();
            return Ok(None);
        };
        if !msg.code.is_request() {
            return Ok(None);
        }
        // Once per client: the request is kept whole for the channel.
        self.first = Some(msg.clone());
        let query = Query::of(&msg);
        let connect = Request::of(&msg) == Request::Connect;
        let settings = self.proto.settings.clone();
        if settings.connection_required && !connect {
            return self.take_over(&query).map(Some);
        }
        let (clientid, username, password) = if settings.connection_required {
            let Some(clientid) = query.get("clientid").filter(|c| !c.is_empty()) else {
                self.answer(Code::BAD_REQUEST, "Login Failed: clientid is required");
                return Err(());
            };
            (
                clientid.to_string(),
                query.get("username").map(ByteString::from),
                query
                    .get("password")
                    .map(|p| Bytes::copy_from_slice(p.as_bytes())),
            )
        } else {
            (generated_clientid(), None, None)
        };
        let info = self.info(ByteString::from(clientid), username);
        Ok(Some(Opened::Connect(ConnectRequest {
            info,
            password,
            listener_mountpoint: settings.listener_mountpoint.clone(),
            limits: settings.session,
            resume: false,
        })))
    }

    /// Connection mode: 4.00 "Login Failed: <reason>" (EMQX's code and text); a
    /// connectionless request where authentication is required: 4.01.
    fn refused(&mut self, reason: &str) {
        if self.proto.settings.connection_required {
            self.answer(Code::BAD_REQUEST, &format!("Login Failed: {reason}"));
        } else {
            self.answer(Code::UNAUTHORIZED, reason);
        }
    }

    fn admitted(self, session: Session, now: Instant) -> CoapChannel {
        let first = self.first;
        let mut channel = CoapChannel::new(self.proto, session, self.dout, now);
        if let Some(conn) = self.takeover {
            channel.conn = conn;
        }
        if let Some(first) = first {
            if Request::of(&first) == Request::Connect {
                channel.connected(&first, now);
            } else {
                channel.serve_first(first, now);
            }
        }
        channel
    }
}
