//! The datagram driver: one receive loop per UDP listener, demultiplexing datagrams by
//! peer address to one task per peer, around a protocol's [`DatagramProtocol`] (what an
//! unknown address may get), [`DatagramOpening`] (the handshake) and [`DatagramChannel`]
//! (the connected state machine).
//!
//! A UDP source address is a claim, not a fact. An unknown peer gets a task only when the
//! protocol reads its datagram as an opening one, within the listener's
//! `max_connections` and `max_conn_rate`; a task whose peer does not finish the opening
//! within `idle_timeout` ends; each peer's queue is bounded (excess datagrams are dropped,
//! as the network would); `access_rules` apply to every datagram; and what the listener
//! answers an unknown peer is never larger than what it sent.

use super::dtls::{self, Accept};
use super::peer_queue::{peer_queue, PeerReceiver, PeerSender, SendError};
use super::served::{Handoff, Table};
use super::{CloseReason, ConnectRequest, Session};
use crate::call::{CallBox, ClientCall};
use crate::ctx::{Admission, GatewayCtx};
use bytes::Bytes;
use junction_broker::{KickWait, Will};
use junction_transport::{AccessList, RateLimiter};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Used when a gateway's `idle_timeout` is 0.
const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Datagrams queued for one peer's task; more are dropped (UDP semantics).
const PEER_QUEUE: usize = 64;

/// The largest UDP payload over IPv4 (65,535 − 8 − 20).
pub const MAX_DATAGRAM: usize = 65_507;

/// A UDP listener's own keys: `max_connections`, `max_conn_rate`, `access_rules`,
/// `udp_options`, `health_check`.
#[derive(Debug, Clone)]
pub struct UdpSettings {
    /// `max_connections`: most peers with a task; an opening datagram from one more is
    /// dropped.
    pub max_peers: Option<usize>,
    /// `max_conn_rate`: most new peer tasks a second; an opening datagram past it is
    /// dropped.
    pub max_new_peers_per_sec: Option<u32>,
    /// `access_rules`: datagrams from other peers are dropped.
    pub access: AccessList,
    /// `udp_options.recbuf` (`SO_RCVBUF`).
    pub recbuf: Option<usize>,
    /// `udp_options.sndbuf` (`SO_SNDBUF`).
    pub sndbuf: Option<usize>,
    /// `udp_options.reuseaddr`.
    pub reuseaddr: bool,
    /// `udp_options.buffer`: the largest datagram read (longer ones are cut, so refused
    /// as malformed). Default 65,536.
    pub buffer: usize,
    /// `health_check`: a datagram equal to `request` is answered with `reply`.
    pub health_check: Option<(Bytes, Bytes)>,
}

impl Default for UdpSettings {
    fn default() -> Self {
        UdpSettings {
            max_peers: Some(1024),
            max_new_peers_per_sec: Some(1000),
            access: AccessList::default(),
            recbuf: None,
            sndbuf: None,
            reuseaddr: true,
            buffer: 65_536,
            health_check: None,
        }
    }
}

/// What a channel has to send, and what the driver must do first.
#[derive(Debug, Default)]
pub struct DatagramOutput {
    /// Datagrams, each with whether it is an acknowledgement (dropped, not sent, when
    /// the broker's ack barrier fails: the client sends again).
    pub datagrams: Vec<(Bytes, bool)>,
    /// Some datagram is an acknowledgement: the broker's ack barrier
    /// (`durable_sessions.commit_before_ack`) is awaited before anything is sent.
    pub ack: bool,
    /// A connection this one published to is behind: the driver yields before the next
    /// datagram.
    pub congested: bool,
}

impl DatagramOutput {
    /// Queue a datagram.
    pub fn push(&mut self, datagram: Bytes) {
        self.datagrams.push((datagram, false));
    }

    /// Queue an acknowledgement.
    pub fn push_ack(&mut self, datagram: Bytes) {
        self.datagrams.push((datagram, true));
        self.ack = true;
    }
}

/// Where a peer's datagrams come from.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The peer's address (a claim, over UDP).
    pub addr: SocketAddr,
    /// The listener id, `<gateway>:<type>:<name>`.
    pub listener: Arc<str>,
    /// The local port.
    pub sockport: u16,
    /// Over DTLS: who the peer proved to be (its PSK identity or certificate subject).
    pub identity: Option<String>,
}

/// What to do with a datagram from an address that has no task.
#[derive(Debug)]
pub enum Unconnected {
    /// Handled (answered in `reply`, or ignored).
    Handled,
    /// An opening datagram: start a task for the peer with it, if the listener's limits
    /// allow.
    Open,
}

/// A protocol served over datagrams.
pub trait DatagramProtocol: Send + Sync + 'static {
    /// The handshake of one peer.
    type Opening: DatagramOpening;

    /// A datagram from `peer`, which has no task: answer it statelessly (into `reply`,
    /// which the driver sends only if no larger than `datagram`), or ask for a task.
    fn unconnected(&self, peer: &Peer, datagram: &Bytes, reply: &mut Vec<Bytes>) -> Unconnected;

    /// The handshake state for a new peer task.
    fn opening(self: &Arc<Self>, peer: &Peer) -> Self::Opening;

    /// The listener's socket is bound: start what the protocol runs beside the peers (an
    /// ADVERTISE broadcaster); stopped with the listener.
    fn started(
        self: &Arc<Self>,
        _socket: Arc<UdpSocket>,
        _ctx: Arc<GatewayCtx>,
    ) -> Option<JoinHandle<()>> {
        None
    }
}

/// What an opening dialogue asks of the driver.
#[derive(Debug)]
pub enum Opened {
    /// Run the connect pipeline.
    Connect(ConnectRequest),
}

/// A peer's handshake: datagrams in until it yields a [`ConnectRequest`].
pub trait DatagramOpening: Send + 'static {
    /// The connected state machine.
    type Channel: DatagramChannel;

    /// What to send.
    fn output(&mut self) -> &mut DatagramOutput;

    /// A datagram of the dialogue. `Ok(None)`: more are needed. `Err(())`: give up (after
    /// sending the output).
    #[allow(clippy::result_unit_err)]
    fn open(&mut self, datagram: Bytes, peer: &Peer) -> Result<Option<Opened>, ()>;

    /// The connect pipeline refused the client: write the protocol's refusal.
    fn refused(&mut self, reason: &str);

    /// The client is admitted: the connected channel, which writes its acceptance.
    fn admitted(self, session: Session, now: Instant) -> Self::Channel;
}

/// A connected peer's protocol state machine. No I/O.
pub trait DatagramChannel: Send + 'static {
    /// The client's session.
    fn session(&self) -> &Session;

    /// What to send.
    fn output(&mut self) -> &mut DatagramOutput;

    /// A datagram from the peer.
    fn on_datagram(&mut self, datagram: Bytes, now: Instant) -> Result<(), CloseReason>;

    /// The session has deliveries for the client.
    fn on_deliveries(&mut self, now: Instant) -> Result<(), CloseReason>;

    /// A framework call (management API subscriptions).
    fn on_call(&mut self, call: ClientCall);

    /// The time [`DatagramChannel::next_timer`] asked for has come.
    fn on_timer(&mut self, now: Instant) -> Result<(), CloseReason>;

    /// When the channel next wants [`DatagramChannel::on_timer`].
    fn next_timer(&self) -> Option<Instant>;

    /// Write what the protocol says when the connection ends for `reason`.
    fn goodbye(&mut self, reason: CloseReason);

    /// The will to publish and the session expiry interval, as the connection ends.
    fn on_close(&mut self, reason: CloseReason) -> (Option<Will>, u32);
}

/// The connected channel type of protocol `P`.
pub(super) type ChannelOf<P> = <<P as DatagramProtocol>::Opening as DatagramOpening>::Channel;

/// What the listener knows of a peer address.
pub(super) enum PeerEntry {
    /// Its opening task (by id) and that task's queue.
    Opening(u64, PeerSender),
    /// Connected: served by the listener's task under this key.
    Connected(u64),
}

impl PeerEntry {
    /// The opening task's id.
    pub(super) fn task(&self) -> Option<u64> {
        match self {
            PeerEntry::Opening(task, _) => Some(*task),
            PeerEntry::Connected(_) => None,
        }
    }
}

/// What one listener's tasks share.
pub(super) struct Listener<P: DatagramProtocol> {
    pub(super) ctx: Arc<GatewayCtx>,
    protocol: Arc<P>,
    socket: Arc<UdpSocket>,
    settings: UdpSettings,
    /// The DTLS server, on a `dtls` listener.
    dtls: Option<Arc<dyn dtls::Endpoint>>,
    id: Arc<str>,
    sockport: u16,
    /// Peer address → its opening task or its key among the connected peers.
    pub(super) peers: Mutex<HashMap<SocketAddr, PeerEntry>>,
    next_task: AtomicU64,
    /// Where opening tasks hand their admitted peers to the listener's task.
    handoffs: mpsc::UnboundedSender<Handoff<ChannelOf<P>>>,
    /// Set when the listener stops.
    stop: Notify,
}

impl<P: DatagramProtocol> Listener<P> {
    /// Send one datagram to `peer`, counting it.
    pub(super) async fn send(&self, peer: SocketAddr, datagram: &[u8]) -> bool {
        match self.socket.send_to(datagram, peer).await {
            Ok(n) => {
                self.ctx.count_sent(n);
                true
            }
            Err(e) => {
                tracing::debug!(%peer, error = %e, "datagram send failed");
                false
            }
        }
    }

    /// Room for one more peer within `max_connections` and `max_conn_rate` (taking a
    /// token of the rate when there is).
    fn has_room(&self, new_peers: &mut Option<RateLimiter>) -> bool {
        let full = self
            .settings
            .max_peers
            .is_some_and(|max| self.peers.lock().len() >= max);
        !full && new_peers.as_mut().is_none_or(|r| r.take().is_none())
    }

    /// Start the opening task of a new peer, with its first plain datagram if any.
    fn spawn_peer(self: &Arc<Self>, peer: Peer, first: Option<Bytes>, link: Link) {
        let (tx, rx) = peer_queue(PEER_QUEUE);
        let task = self.next_task.fetch_add(1, Ordering::Relaxed);
        if let Some(d) = first {
            let _ = tx.try_send(d);
        }
        self.peers
            .lock()
            .insert(peer.addr, PeerEntry::Opening(task, tx));
        tokio::spawn(run_peer(self.clone(), peer, task, rx, link));
    }

    /// Remove an opening task's peer entry if it is still that task's.
    fn remove_peer(&self, peer: SocketAddr, task: u64) {
        let mut peers = self.peers.lock();
        if peers.get(&peer).and_then(PeerEntry::task) == Some(task) {
            peers.remove(&peer);
        }
    }
}

/// A running datagram listener. Dropping it stops it.
pub struct DatagramListener {
    /// Listener id, `<gateway>:udp:<name>`.
    pub id: String,
    /// The bound address.
    pub local_addr: SocketAddr,
    task: JoinHandle<()>,
    beside: Option<JoinHandle<()>>,
    stop_peers: Box<dyn Fn() + Send + Sync>,
}

impl std::fmt::Debug for DatagramListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatagramListener")
            .field("id", &self.id)
            .field("local_addr", &self.local_addr)
            .finish()
    }
}

impl DatagramListener {
    /// Stop receiving: opening tasks see their queue close and end; the listener's task
    /// closes every connected peer and ends.
    pub fn stop(&self) {
        if let Some(b) = &self.beside {
            b.abort();
        }
        (self.stop_peers)();
    }

    /// Stop and wait for the listener's task (and what runs beside it) to end.
    pub async fn shutdown(self) {
        self.stop();
        while !self.task.is_finished() || self.beside.as_ref().is_some_and(|b| !b.is_finished()) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

impl Drop for DatagramListener {
    fn drop(&mut self) {
        self.stop();
    }
}

impl crate::kind::Listening for DatagramListener {
    fn id(&self) -> &str {
        &self.id
    }
    fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
    fn shutdown(self: Box<Self>) -> crate::kind::BoxFuture<'static, ()> {
        Box::pin(DatagramListener::shutdown(*self))
    }
}

/// A UDP socket with the listener's `udp_options`.
pub fn bind_udp(bind: SocketAddr, udp: &UdpSettings) -> std::io::Result<UdpSocket> {
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

/// Bind listener `id` on `bind` and serve `protocol` on it until the handle is stopped or
/// dropped.
pub async fn start<P: DatagramProtocol>(
    ctx: Arc<GatewayCtx>,
    protocol: Arc<P>,
    id: String,
    bind: SocketAddr,
    settings: UdpSettings,
    dtls: Option<Arc<dyn dtls::Endpoint>>,
) -> std::io::Result<DatagramListener> {
    let socket = Arc::new(bind_udp(bind, &settings)?);
    let local_addr = socket.local_addr()?;
    let beside = protocol.started(socket.clone(), ctx.clone());
    let (handoffs, handed) = mpsc::unbounded_channel();
    let listener = Arc::new(Listener {
        ctx,
        protocol,
        socket,
        settings,
        dtls,
        id: Arc::from(id.as_str()),
        sockport: local_addr.port(),
        peers: Mutex::new(HashMap::new()),
        next_task: AtomicU64::new(1),
        handoffs,
        stop: Notify::new(),
    });
    let task = tokio::spawn(serve(listener.clone(), handed));
    let stop_peers = Box::new(move || {
        // Opening tasks see their queue close; connected peers are closed by the
        // listener's task, which then ends.
        listener
            .peers
            .lock()
            .retain(|_, entry| matches!(entry, PeerEntry::Connected(_)));
        listener.stop.notify_one();
    });
    Ok(DatagramListener {
        id,
        local_addr,
        task,
        beside,
        stop_peers,
    })
}

/// Datagrams read in one turn of the listener's loop before ready peers and timers run.
const RECV_BATCH: usize = 64;

/// The listener's task: reads datagrams, serves connected peers, takes over admitted ones.
async fn serve<P: DatagramProtocol>(
    l: Arc<Listener<P>>,
    mut handed: mpsc::UnboundedReceiver<Handoff<ChannelOf<P>>>,
) {
    let mut buf = vec![0u8; l.settings.buffer.clamp(64, 65_536)];
    let mut new_peers = l.settings.max_new_peers_per_sec.map(RateLimiter::new);
    let mut reply = Vec::new();
    let mut table = Table::new();
    let ready = table.ready.clone();
    let far = Instant::now() + Duration::from_secs(86400 * 365);
    let timer = tokio::time::sleep_until(far);
    tokio::pin!(timer);
    loop {
        let next = table.next_deadline().unwrap_or(far);
        if next != timer.deadline() {
            timer.as_mut().reset(next);
        }
        tokio::select! {
            biased;
            _ = l.stop.notified() => break,
            h = handed.recv() => {
                if let Some(h) = h {
                    table.admit(&l, h).await;
                }
            }
            r = l.socket.readable() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "datagram socket not readable");
                    continue;
                }
                for _ in 0..RECV_BATCH {
                    let (n, addr) = match l.socket.try_recv_from(&mut buf) {
                        Ok(r) => r,
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => {
                            // ICMP port unreachable and the like surface here on some
                            // systems.
                            tracing::debug!(error = %e, "datagram recv error");
                            continue;
                        }
                    };
                    on_datagram(&l, &mut table, &buf[..n], addr, &mut new_peers, &mut reply).await;
                }
            }
            () = ready.wait() => {}
            () = &mut timer => {}
        }
        while let Ok(h) = handed.try_recv() {
            table.admit(&l, h).await;
        }
        table.turn(&l).await;
    }
    table.close_all(&l).await;
}

/// Where a datagram goes.
enum Route {
    /// Into an opening task's queue (or dropped, the queue being full).
    Queued,
    /// To a connected peer.
    Connected(u64, Bytes),
    /// An address the listener does not know.
    New(Bytes),
}

/// One datagram read from the socket.
async fn on_datagram<P: DatagramProtocol>(
    l: &Arc<Listener<P>>,
    table: &mut Table<ChannelOf<P>>,
    data: &[u8],
    addr: SocketAddr,
    new_peers: &mut Option<RateLimiter>,
    reply: &mut Vec<Bytes>,
) {
    if !l.settings.access.allows(addr.ip()) {
        tracing::debug!(peer = %addr, "datagram denied by access_rules");
        return;
    }
    l.ctx.count_received(data.len());
    if let Some((request, answer)) = &l.settings.health_check {
        if data == &request[..] {
            let _ = l.socket.send_to(answer, addr).await;
            return;
        }
    }
    let datagram = Bytes::copy_from_slice(data);
    // Queued under the table's lock: the sender is not cloned (its drop is what tells the
    // task that the listener forgot the peer).
    let route = {
        let mut peers = l.peers.lock();
        match peers.get(&addr) {
            None => Route::New(datagram),
            Some(PeerEntry::Connected(key)) => Route::Connected(*key, datagram),
            Some(PeerEntry::Opening(_, tx)) => match tx.try_send(datagram) {
                Ok(()) => Route::Queued,
                Err(SendError::Full) => {
                    l.ctx.metrics.packets_dropped.inc();
                    Route::Queued
                }
                // The peer's task ended: this is a new peer's first datagram.
                Err(SendError::Closed(d)) => {
                    peers.remove(&addr);
                    Route::New(d)
                }
            },
        }
    };
    let datagram = match route {
        Route::Queued => return,
        Route::Connected(key, d) => {
            table.on_datagram(l, key, d).await;
            return;
        }
        Route::New(d) => d,
    };
    let peer = Peer {
        addr,
        listener: l.id.clone(),
        sockport: l.sockport,
        identity: None,
    };
    if let Some(endpoint) = &l.dtls {
        // Over DTLS nothing is answered in the clear: the address proves itself with the
        // cookie exchange first, and gets a session within the listener's limits.
        let admit = l.has_room(new_peers);
        match endpoint.accept(addr, &datagram, admit) {
            Accept::Reply(hvr) => {
                l.ctx.metrics.packets_hello_verify_sent.inc();
                l.send(addr, &hvr).await;
            }
            Accept::Drop => {
                l.ctx.metrics.packets_dropped.inc();
            }
            Accept::Session(session, out) => {
                for record in &out {
                    l.send(addr, record).await;
                }
                l.spawn_peer(peer, None, Link::Dtls(session));
            }
        }
        return;
    }
    match l.protocol.unconnected(&peer, &datagram, reply) {
        Unconnected::Handled => {
            for r in reply.drain(..) {
                // No amplification towards an address nobody has proved.
                if r.len() <= datagram.len() {
                    l.send(addr, &r).await;
                } else {
                    l.ctx.metrics.packets_dropped.inc();
                }
            }
        }
        Unconnected::Open => {
            reply.clear();
            // `max_connections` and `max_conn_rate` bound the peers: past them the
            // datagram is dropped and the client retries later, as over TCP.
            if !l.has_room(new_peers) {
                l.ctx.metrics.packets_dropped.inc();
                tracing::debug!(peer = %addr, "peer over max_connections or max_conn_rate: dropped");
                return;
            }
            l.spawn_peer(peer, Some(datagram), Link::Plain);
        }
    }
}

/// How a peer's datagrams travel: as they are, or inside its DTLS session.
pub(super) enum Link {
    Plain,
    Dtls(Box<dyn dtls::Session>),
}

impl Link {
    /// The plain datagrams in `datagram` (over DTLS: its application data, after sending
    /// the records the session answers with).
    pub(super) async fn open_up<P: DatagramProtocol>(
        &mut self,
        l: &Listener<P>,
        addr: SocketAddr,
        datagram: Bytes,
        plain: &mut Vec<Bytes>,
    ) -> Result<(), CloseReason> {
        match self {
            Link::Plain => {
                plain.push(datagram);
                Ok(())
            }
            Link::Dtls(session) => {
                let mut out = Vec::new();
                let mut app = Vec::new();
                let result = session.input(&datagram, &mut out, &mut app);
                for record in &out {
                    l.send(addr, record).await;
                }
                plain.extend(app.into_iter().map(Bytes::from));
                result.map_err(|e| {
                    tracing::debug!(peer = %addr, error = ?e, "dtls session ended");
                    match e {
                        dtls::SessionError::Closed => CloseReason::SockClosed,
                        _ => CloseReason::Protocol("dtls_error"),
                    }
                })
            }
        }
    }

    /// Send one plain datagram (over DTLS: as records). False if it could not be sent.
    pub(super) async fn send<P: DatagramProtocol>(
        &mut self,
        l: &Listener<P>,
        addr: SocketAddr,
        d: &[u8],
    ) -> bool {
        match self {
            Link::Plain => l.send(addr, d).await,
            Link::Dtls(session) => {
                let mut out = Vec::new();
                let sealed = session.send(d, &mut out);
                for record in &out {
                    l.send(addr, record).await;
                }
                if let Err(e) = sealed {
                    tracing::debug!(peer = %addr, error = ?e, "datagram not sent over dtls");
                    l.ctx.metrics.delivery_dropped_too_large.inc();
                    return false;
                }
                true
            }
        }
    }

    fn identity(&self) -> Option<String> {
        match self {
            Link::Plain => None,
            Link::Dtls(session) => session.peer_identity(),
        }
    }

    pub(super) async fn close<P: DatagramProtocol>(&mut self, l: &Listener<P>, addr: SocketAddr) {
        if let Link::Dtls(session) = self {
            let mut out = Vec::new();
            session.close(&mut out);
            for record in &out {
                l.send(addr, record).await;
            }
        }
    }
}

/// One peer's opening task: the dialogue and the connect pipeline; an admitted peer is
/// handed to the listener's task.
async fn run_peer<P: DatagramProtocol>(
    l: Arc<Listener<P>>,
    peer: Peer,
    task: u64,
    mut rx: PeerReceiver,
    mut link: Link,
) {
    let addr = peer.addr;
    let Some((channel, kick, calls)) = Box::pin(handshake(&l, peer, &mut rx, &mut link)).await
    else {
        link.close(&l, addr).await;
        l.remove_peer(addr, task);
        return;
    };
    let handoff = Handoff {
        addr,
        task,
        channel,
        kick,
        calls,
        link,
        rx,
    };
    if let Err(mpsc::error::SendError(handoff)) = l.handoffs.send(handoff) {
        // The listener's task has ended: the client goes as if its socket had.
        l.remove_peer(addr, task);
        let mut channel = handoff.channel;
        let (will, expiry) = channel.on_close(CloseReason::SockClosed);
        let session = channel.session();
        session
            .ctx
            .close(session, CloseReason::SockClosed, will, expiry);
    }
}

/// Receive the next datagram before `deadline`.
async fn recv_until(rx: &mut PeerReceiver, deadline: Instant) -> Option<Bytes> {
    tokio::time::timeout_at(deadline, rx.recv())
        .await
        .ok()
        .flatten()
}

async fn handshake<P: DatagramProtocol>(
    l: &Arc<Listener<P>>,
    mut peer: Peer,
    rx: &mut PeerReceiver,
    link: &mut Link,
) -> Option<(ChannelOf<P>, KickWait, Arc<CallBox>)> {
    let idle = l.ctx.settings().idle_timeout;
    let idle = if idle.is_zero() {
        DEFAULT_IDLE_TIMEOUT
    } else {
        idle
    };
    let start = Instant::now();
    let deadline = start + idle;
    // Over DTLS the handshake ends by `dtls_options.handshake_timeout`, and the opening by
    // `idle_timeout`.
    let handshake_deadline = l
        .dtls
        .as_ref()
        .map(|e| (start + e.handshake_timeout()).min(deadline));
    // A plain peer's first datagram already asked for a task; over DTLS the protocol
    // first sees the session's datagrams as it sees an unknown address's.
    let mut opening = match link {
        Link::Plain => Some(l.protocol.opening(&peer)),
        Link::Dtls(_) => None,
    };
    let mut plain = Vec::new();
    let mut reply = Vec::new();
    let request = 'dialogue: loop {
        let until = match (&*link, handshake_deadline) {
            (Link::Dtls(session), Some(hs)) if !session.established() => hs,
            _ => deadline,
        };
        let Some(datagram) = recv_until(rx, until).await else {
            tracing::debug!(peer = %peer.addr, "no opening within idle_timeout (or no DTLS handshake within handshake_timeout)");
            return None;
        };
        if link
            .open_up(l, peer.addr, datagram, &mut plain)
            .await
            .is_err()
        {
            return None;
        }
        if peer.identity.is_none() {
            peer.identity = link.identity();
        }
        for d in plain.drain(..) {
            let o = match &mut opening {
                Some(o) => o,
                None => match l.protocol.unconnected(&peer, &d, &mut reply) {
                    Unconnected::Handled => {
                        for r in reply.drain(..) {
                            link.send(l, peer.addr, &r).await;
                        }
                        continue;
                    }
                    Unconnected::Open => opening.insert(l.protocol.opening(&peer)),
                },
            };
            let step = o.open(d, &peer);
            for (d, _) in std::mem::take(&mut o.output().datagrams) {
                link.send(l, peer.addr, &d).await;
            }
            match step {
                Ok(None) => continue,
                Ok(Some(Opened::Connect(request))) => break 'dialogue request,
                Err(()) => return None,
            }
        }
    };
    let mut opening = opening.expect("an opening answered");
    let mut request = request;
    request.info.peername = peer.addr;
    request.info.sockport = peer.sockport;
    request.info.listener = peer.listener.clone();
    let Admission {
        session,
        kick,
        calls,
    } = match l.ctx.connect(request).await {
        Ok(admission) => admission,
        Err(refusal) => {
            opening.refused(&refusal.reason);
            for (d, _) in std::mem::take(&mut opening.output().datagrams) {
                link.send(l, peer.addr, &d).await;
            }
            return None;
        }
    };
    let channel = opening.admitted(session, Instant::now());
    Some((channel, kick, calls))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn udp_options_reach_the_socket() {
        let udp = UdpSettings {
            recbuf: Some(64 * 1024),
            sndbuf: Some(32 * 1024),
            reuseaddr: false,
            ..UdpSettings::default()
        };
        let socket = bind_udp("127.0.0.1:0".parse().unwrap(), &udp).unwrap();
        let r = socket2::SockRef::from(&socket);
        assert!(!r.reuse_address().unwrap());
        // Linux doubles what it is given.
        assert!(r.recv_buffer_size().unwrap() >= 64 * 1024);
        assert!(r.send_buffer_size().unwrap() >= 32 * 1024);
    }
}
