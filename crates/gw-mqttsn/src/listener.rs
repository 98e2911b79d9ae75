//! The UDP driver: one receive loop, datagrams demultiplexed by peer address to per-client
//! tasks; SEARCHGW, idle DISCONNECT and QoS −1 publishes are answered without a task.

use crate::advertise;
use crate::conn::{self, ClientData};
use crate::MqttSnSettings;
use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use junction_codec_mqttsn::{decode, encode, Message, QoS as SnQoS, ReturnCode, Topic};
use junction_gateway::GatewayCtx;
use junction_types::QoS;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Depth of a client task's inbound queue; datagrams beyond it are dropped (UDP semantics).
const PEER_QUEUE: usize = 64;

/// What the listener's tasks share.
pub(crate) struct Shared {
    pub ctx: Arc<GatewayCtx>,
    pub settings: Arc<MqttSnSettings>,
    pub socket: Arc<UdpSocket>,
    pub listener: Arc<str>,
    pub sockport: u16,
    /// Peer address → (task id, its inbound queue).
    pub peers: Mutex<HashMap<SocketAddr, (u64, mpsc::Sender<Message>)>>,
    /// Client id → MQTT-SN state that outlives one address (topic registry, will, sleep).
    pub clients: Mutex<HashMap<ByteString, Arc<Mutex<ClientData>>>>,
    pub predefined_by_id: HashMap<u16, String>,
    pub predefined_by_name: HashMap<String, u16>,
    next_task: AtomicU64,
}

impl Shared {
    /// Encode and send one message to `peer` (one datagram), counting it.
    pub async fn send(&self, peer: SocketAddr, msg: &Message) -> bool {
        let mut buf = BytesMut::new();
        if encode(msg, &mut buf).is_err() {
            self.ctx.metrics.inc("delivery.dropped.too_large");
            return true;
        }
        match self.socket.send_to(&buf, peer).await {
            Ok(n) => {
                self.ctx.metrics.add("bytes.sent", n as u64);
                self.ctx.metrics.inc(names(msg).1);
                true
            }
            Err(e) => {
                tracing::debug!(%peer, error = %e, "mqtt-sn send failed");
                false
            }
        }
    }

    /// Remove a task's peer entry if it is still that task's.
    pub fn remove_peer(&self, peer: SocketAddr, task: u64) {
        let mut peers = self.peers.lock();
        if peers.get(&peer).is_some_and(|(t, _)| *t == task) {
            peers.remove(&peer);
        }
    }
}

/// Counter names `packets.<type>.received` / `.sent` with EMQX's type names (sic `serachgw`).
pub(crate) fn names(m: &Message) -> (&'static str, &'static str) {
    macro_rules! n {
        ($($pat:pat => $n:literal),* $(,)?) => {
            match m { $($pat => (concat!("packets.", $n, ".received"), concat!("packets.", $n, ".sent")),)* }
        };
    }
    n! {
        Message::Advertise { .. } => "advertise",
        Message::SearchGw { .. } => "serachgw",
        Message::GwInfo { .. } => "gwinfo",
        Message::Connect { .. } => "connect",
        Message::ConnAck { .. } => "connack",
        Message::WillTopicReq => "willtopicreq",
        Message::WillTopic { .. } => "willtopic",
        Message::WillMsgReq => "willmsgreq",
        Message::WillMsg { .. } => "willmsg",
        Message::Register { .. } => "register",
        Message::RegAck { .. } => "regack",
        Message::Publish { .. } => "publish",
        Message::PubAck { .. } => "puback",
        Message::PubRec { .. } => "pubrec",
        Message::PubRel { .. } => "pubrel",
        Message::PubComp { .. } => "pubcomp",
        Message::Subscribe { .. } => "subscribe",
        Message::SubAck { .. } => "suback",
        Message::Unsubscribe { .. } => "unsubscribe",
        Message::UnsubAck { .. } => "unsuback",
        Message::PingReq { .. } => "pingreq",
        Message::PingResp => "pingresp",
        Message::Disconnect { .. } => "disconnect",
        Message::WillTopicUpd { .. } => "willtopicupd",
        Message::WillTopicResp { .. } => "willtopicresp",
        Message::WillMsgUpd { .. } => "willmsgupd",
        Message::WillMsgResp { .. } => "willmsgresp",
        Message::Encapsulated { .. } => "encapsulated",
    }
}

/// A running UDP listener. Dropping it stops it.
#[derive(Debug)]
pub struct UdpListenerHandle {
    /// Listener id `mqttsn:udp:<name>`.
    pub id: String,
    /// The bound address.
    pub local_addr: SocketAddr,
    task: JoinHandle<()>,
    /// The ADVERTISE broadcaster, when `broadcast` is on.
    advertiser: Option<JoinHandle<()>>,
    shared: Arc<SharedHandle>,
}

/// The part of [`Shared`] the handle needs to stop client tasks.
struct SharedHandle(Arc<Shared>);

impl std::fmt::Debug for SharedHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Shared")
    }
}

impl UdpListenerHandle {
    /// Stop receiving; every client task sees its queue close and ends.
    pub fn stop(&self) {
        self.task.abort();
        if let Some(a) = &self.advertiser {
            a.abort();
        }
        self.shared.0.peers.lock().clear();
    }

    /// Stop and wait for the receive loop (and the broadcaster) to end.
    pub async fn shutdown(self) {
        self.stop();
        while !self.task.is_finished() || self.advertiser.as_ref().is_some_and(|a| !a.is_finished())
        {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }
}

impl Drop for UdpListenerHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Bind a UDP listener and serve it until the returned handle is stopped or dropped.
pub async fn start_udp(
    ctx: Arc<GatewayCtx>,
    settings: Arc<MqttSnSettings>,
    id: String,
    bind: SocketAddr,
) -> std::io::Result<UdpListenerHandle> {
    let socket = Arc::new(bind_udp(bind, &settings.udp)?);
    let local_addr = socket.local_addr()?;
    let mut by_id = HashMap::new();
    let mut by_name = HashMap::new();
    for (pid, topic) in &settings.predefined {
        by_id.insert(*pid, topic.clone());
        by_name.insert(topic.clone(), *pid);
    }
    let shared = Arc::new(Shared {
        ctx,
        settings,
        socket,
        listener: Arc::from(id.as_str()),
        sockport: local_addr.port(),
        peers: Mutex::new(HashMap::new()),
        clients: Mutex::new(HashMap::new()),
        predefined_by_id: by_id,
        predefined_by_name: by_name,
        next_task: AtomicU64::new(1),
    });
    let task = tokio::spawn(recv_loop(shared.clone()));
    let advertiser = shared
        .settings
        .broadcast
        .then(|| tokio::spawn(advertise::run(shared.clone())));
    Ok(UdpListenerHandle {
        id,
        local_addr,
        task,
        advertiser,
        shared: Arc::new(SharedHandle(shared)),
    })
}

/// A UDP socket with the listener's `udp_options`.
fn bind_udp(bind: SocketAddr, udp: &crate::UdpSettings) -> std::io::Result<UdpSocket> {
    let domain = socket2::Domain::for_address(bind);
    let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    socket.set_reuse_address(udp.reuseaddr)?;
    if let Some(size) = udp.recbuf {
        socket.set_recv_buffer_size(size)?;
    }
    if let Some(size) = udp.sndbuf {
        socket.set_send_buffer_size(size)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&bind.into())?;
    UdpSocket::from_std(socket.into())
}

async fn recv_loop(shared: Arc<Shared>) {
    let mut buf = vec![0u8; shared.settings.udp.buffer.clamp(64, 65_536)];
    let mut new_peers = shared
        .settings
        .udp
        .max_new_peers_per_sec
        .map(junction_transport::RateLimiter::new);
    loop {
        let (n, peer) = match shared.socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                // ICMP port unreachable and the like surface here on some systems.
                tracing::debug!(error = %e, "mqtt-sn recv error");
                continue;
            }
        };
        if !shared.settings.access.allows(peer.ip()) {
            tracing::debug!(%peer, "mqtt-sn datagram denied by access_rules");
            continue;
        }
        shared.ctx.metrics.add("bytes.received", n as u64);
        if let Some((request, reply)) = &shared.settings.udp.health_check {
            if buf[..n] == request[..] {
                let _ = shared.socket.send_to(reply, peer).await;
                continue;
            }
        }
        let msg = match decode(Bytes::copy_from_slice(&buf[..n])) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "mqtt-sn frame error");
                shared.ctx.metrics.inc("packets.frame_error");
                continue;
            }
        };
        shared.ctx.metrics.inc(names(&msg).0);
        if let Message::SearchGw { .. } = msg {
            let gwinfo = Message::GwInfo {
                gw_id: shared.settings.gateway_id,
                gw_add: Bytes::new(),
            };
            shared.send(peer, &gwinfo).await;
            continue;
        }
        let tx = shared.peers.lock().get(&peer).map(|(_, tx)| tx.clone());
        let msg = match tx {
            Some(tx) => match tx.try_send(msg) {
                Ok(()) => continue,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    shared.ctx.metrics.inc("packets.dropped");
                    continue;
                }
                Err(mpsc::error::TrySendError::Closed(m)) => {
                    let mut peers = shared.peers.lock();
                    if peers.get(&peer).is_some_and(|(_, t)| t.same_channel(&tx)) {
                        peers.remove(&peer);
                    }
                    m
                }
            },
            None => msg,
        };
        unknown_peer(&shared, peer, msg, &mut new_peers).await;
    }
}

/// A datagram from an address without a client task.
async fn unknown_peer(
    shared: &Arc<Shared>,
    peer: SocketAddr,
    msg: Message,
    new_peers: &mut Option<junction_transport::RateLimiter>,
) {
    match msg {
        Message::Publish {
            flags,
            topic,
            msg_id,
            data,
        } if flags.qos == SnQoS::MinusOne => {
            negative_qos_publish(shared, peer, flags.retain, topic, msg_id, data).await;
        }
        Message::Disconnect { .. } => {
            shared
                .send(peer, &Message::Disconnect { duration: None })
                .await;
        }
        Message::Connect { .. } | Message::PingReq { client_id: Some(_) } => {
            // `max_connections` and `max_conn_rate` bound the client tasks: past them the
            // datagram is dropped and the client retries later, as over TCP.
            let full = shared
                .settings
                .udp
                .max_peers
                .is_some_and(|max| shared.peers.lock().len() >= max);
            if full || new_peers.as_mut().is_some_and(|r| r.take().is_some()) {
                shared.ctx.metrics.inc("packets.dropped");
                tracing::debug!(%peer, full, "mqtt-sn peer over max_connections or max_conn_rate: dropped");
                return;
            }
            let (tx, rx) = mpsc::channel(PEER_QUEUE);
            let task = shared.next_task.fetch_add(1, Ordering::Relaxed);
            let _ = tx.try_send(msg);
            shared.peers.lock().insert(peer, (task, tx));
            tokio::spawn(conn::run(shared.clone(), peer, task, rx));
        }
        other => {
            tracing::debug!(%peer, msg = other.name(), "mqtt-sn packet from an unconnected peer ignored");
        }
    }
}

/// The client id a QoS −1 publisher is known by (EMQX's).
const NEG_QOS_CLIENT: &str = "NegQoS-Client";

/// QoS −1 PUBLISH without a connection: predefined or short topics only, published as QoS 0
/// with publisher `NegQoS-Client` (EMQX 5.x, reference §5.2). Unlike EMQX, such a publisher
/// is not let around the gate: where the listener requires authentication it is refused
/// (it cannot authenticate), and otherwise it is authorized and mounted like any client.
async fn negative_qos_publish(
    shared: &Shared,
    peer: SocketAddr,
    retain: bool,
    topic: Topic,
    msg_id: u16,
    data: Bytes,
) {
    let raw_id = conn::raw_topic_id(&topic);
    if !shared.settings.enable_qos3 {
        let ack = Message::PubAck {
            topic_id: raw_id,
            msg_id,
            rc: ReturnCode::NotSupported,
        };
        shared.send(peer, &ack).await;
        return;
    }
    let name = match &topic {
        Topic::Predefined(id) => shared.predefined_by_id.get(id).cloned(),
        Topic::Short(b) => conn::short_name(b),
        _ => None,
    };
    let Some(name) = name else {
        tracing::debug!(%peer, "QoS -1 publish to an unknown topic dropped");
        return;
    };
    let ctx = &shared.ctx;
    let clientid = ByteString::from_static(NEG_QOS_CLIENT);
    let mut info = conn::client_info(shared, peer, &clientid, None, 0);
    let mountpoint = ctx.mountpoint_for(
        shared.settings.listener_mountpoint.as_deref(),
        &info.clientid,
        None,
    );
    let allowed = !ctx.authn_required(&shared.listener)
        && ctx.check_topic_name(&name).is_ok()
        && ctx.authorize_publish(&info, &name);
    let mountpoint = match (allowed, mountpoint) {
        (true, Ok(mountpoint)) => mountpoint,
        _ => {
            tracing::debug!(%peer, topic = %name, "QoS -1 publish not authorized: dropped");
            ctx.metrics.inc("messages.dropped");
            ctx.metrics.inc("messages.dropped.not_authorized");
            return;
        }
    };
    info.mountpoint = mountpoint.as_str().to_string();
    ctx.metrics.inc("messages.received");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn udp_options_reach_the_socket() {
        let udp = crate::UdpSettings {
            recbuf: Some(64 * 1024),
            sndbuf: Some(32 * 1024),
            reuseaddr: false,
            ..crate::UdpSettings::default()
        };
        let socket = bind_udp("127.0.0.1:0".parse().unwrap(), &udp).unwrap();
        let r = socket2::SockRef::from(&socket);
        assert!(!r.reuse_address().unwrap());
        // Linux doubles what it is given.
        assert!(r.recv_buffer_size().unwrap() >= 64 * 1024);
        assert!(r.send_buffer_size().unwrap() >= 32 * 1024);
    }
}
