//! Listeners for Junction: TCP, TLS, WebSocket and secure WebSocket.
//!
//! A listener binds, accepts within its `max_connections` and `max_conn_rate` limits, runs
//! the TLS handshake and the WebSocket upgrade in the connection's own task (so a slow
//! handshake never holds up the accept loop) and hands a ready [`Stream`] to the protocol's
//! handler. Every listener stops the same way: [`ListenerHandle::stop`].

pub mod proxy;
mod stream;
mod tls;

pub use stream::{SendError, Stream};

pub use tls::{load_server_config, Pem, TlsOptions, TlsVersion};

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Errors setting up a listener.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The address could not be bound.
    #[error("listener {name}: cannot bind {bind}: {source}")]
    Bind {
        /// Listener id, e.g. `tcp:default`.
        name: String,
        /// Address.
        bind: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// Certificate or key could not be loaded.
    #[error("listener {name}: TLS: {message}")]
    Tls {
        /// Listener id.
        name: String,
        /// What went wrong, naming the file.
        message: String,
    },
}

/// The kind of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListenerKind {
    /// Plain TCP.
    Tcp,
    /// TLS over TCP.
    Ssl,
    /// WebSocket.
    Ws,
    /// WebSocket over TLS.
    Wss,
}

impl ListenerKind {
    /// Config name of the kind (`tcp`, `ssl`, `ws`, `wss`).
    pub fn as_str(self) -> &'static str {
        match self {
            ListenerKind::Tcp => "tcp",
            ListenerKind::Ssl => "ssl",
            ListenerKind::Ws => "ws",
            ListenerKind::Wss => "wss",
        }
    }

    fn is_tls(self) -> bool {
        matches!(self, ListenerKind::Ssl | ListenerKind::Wss)
    }

    fn is_ws(self) -> bool {
        matches!(self, ListenerKind::Ws | ListenerKind::Wss)
    }
}

/// WebSocket options (`listeners.ws.<name>.websocket`).
#[derive(Debug, Clone)]
pub struct WsOptions {
    /// Path the upgrade must ask for (`mqtt_path`, default `/mqtt`).
    pub path: String,
    /// Subprotocols accepted, in order of preference.
    pub subprotocols: Vec<String>,
    /// Refuse an upgrade that offers no subprotocol (`fail_if_no_subprotocol`).
    pub fail_if_no_subprotocol: bool,
    /// Largest WebSocket frame payload read (`max_frame_size`; `None`: as large as a
    /// message). A larger frame closes the connection before its payload is read.
    pub max_frame_size: Option<usize>,
    /// Largest WebSocket message, its frames together (`mqtt.max_packet_size`): nothing
    /// larger than one packet is ever buffered.
    pub max_message_size: usize,
    /// `check_origin_enable`: the `Origin` header must be one of these (else 403).
    pub check_origin: Option<OriginCheck>,
    /// `proxy_address_header` / `proxy_port_header`: where a proxy in front puts the
    /// client's address (the first of a list) and port; empty: not used.
    pub proxy_address_header: String,
    /// See `proxy_address_header`.
    pub proxy_port_header: String,
}

/// Which `Origin`s a WebSocket listener serves (`check_origins`, `allow_origin_absence`).
#[derive(Debug, Clone, Default)]
pub struct OriginCheck {
    /// Origins allowed, compared exactly (`http://localhost:18083`).
    pub origins: Vec<String>,
    /// Whether a request without `Origin` (not from a browser) is served.
    pub allow_absence: bool,
}

impl Default for WsOptions {
    fn default() -> Self {
        WsOptions {
            path: "/mqtt".into(),
            subprotocols: ["mqtt", "mqtt-v3", "mqtt-v3.1.1", "mqtt-v5"]
                .map(String::from)
                .to_vec(),
            fail_if_no_subprotocol: true,
            max_frame_size: None,
            max_message_size: 1024 * 1024,
            check_origin: None,
            proxy_address_header: "x-forwarded-for".into(),
            proxy_port_header: "x-forwarded-port".into(),
        }
    }
}

/// Which peer addresses a listener serves (`access_rules`). Empty: everyone.
#[derive(Clone, Default)]
pub struct AccessList(Option<Arc<dyn Fn(IpAddr) -> bool + Send + Sync>>);

impl AccessList {
    /// A list that lets in the peers `allows` says yes to.
    pub fn new(allows: impl Fn(IpAddr) -> bool + Send + Sync + 'static) -> AccessList {
        AccessList(Some(Arc::new(allows)))
    }

    /// Whether a peer at `ip` is served.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.0.as_ref().is_none_or(|f| f(ip))
    }
}

impl std::fmt::Debug for AccessList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "AccessList(rules)"
        } else {
            "AccessList(all)"
        })
    }
}

/// Options of one listener.
#[derive(Debug, Clone)]
pub struct ListenerOptions {
    /// Listener id, `<kind>:<name>`.
    pub id: String,
    /// Kind.
    pub kind: ListenerKind,
    /// Address to bind.
    pub bind: SocketAddr,
    /// Maximum concurrent connections (`None`: unlimited).
    pub max_connections: Option<usize>,
    /// Maximum new connections per second (`None`: unlimited).
    pub max_conn_rate: Option<u32>,
    /// TLS options, for ssl and wss.
    pub tls: Option<TlsOptions>,
    /// WebSocket options, for ws and wss.
    pub ws: WsOptions,
    /// Time allowed for the TLS handshake and WebSocket upgrade.
    pub handshake_timeout: Duration,
    /// TCP_NODELAY.
    pub nodelay: bool,
    /// Listen backlog.
    pub backlog: u32,
    /// Peers served; others are closed at accept.
    pub access: AccessList,
    /// `tcp_options.send_timeout`: a connection whose peer takes nothing for this long
    /// while there is something to send is closed (EMQX's `send_timeout_close`).
    pub send_timeout: Duration,
    /// `tcp_options.sndbuf`: the kernel send buffer (`SO_SNDBUF`); `None`: the OS's.
    pub sndbuf: Option<usize>,
    /// `tcp_options.recbuf`: the kernel receive buffer (`SO_RCVBUF`); `None`: the OS's.
    pub recbuf: Option<usize>,
    /// `tcp_options.reuseaddr`: `SO_REUSEADDR` on the listening socket.
    pub reuseaddr: bool,
    /// `acceptors`: accept loops sharing the socket (at least one).
    pub acceptors: usize,
    /// `proxy_protocol` with its `proxy_protocol_timeout`: every connection must open with
    /// a PROXY protocol v1 or v2 header within this time, and the client address it names
    /// is the peer from then on (access rules included). `None`: no header expected.
    pub proxy_protocol: Option<Duration>,
}

impl ListenerOptions {
    /// Options with defaults for a kind and address.
    pub fn new(id: impl Into<String>, kind: ListenerKind, bind: SocketAddr) -> Self {
        ListenerOptions {
            id: id.into(),
            kind,
            bind,
            max_connections: None,
            max_conn_rate: None,
            tls: None,
            ws: WsOptions::default(),
            handshake_timeout: Duration::from_secs(15),
            nodelay: true,
            backlog: 1024,
            access: AccessList::default(),
            send_timeout: Duration::from_secs(15),
            sndbuf: None,
            recbuf: None,
            reuseaddr: true,
            acceptors: 1,
            proxy_protocol: None,
        }
    }
}

/// A connection that passed the listener's limits and handshakes.
#[derive(Debug)]
pub struct Accepted {
    /// The byte stream.
    pub stream: Stream,
    /// Peer address.
    pub peer: SocketAddr,
    /// Listener id.
    pub listener: Arc<str>,
    /// The local port the client connected to (`sockport`).
    pub sockport: u16,
    /// Holds a slot of `max_connections` until dropped.
    pub permit: ConnPermit,
    /// The listener's `tcp_options.send_timeout`, for [`Stream::write_within`].
    pub send_timeout: Duration,
}

impl Accepted {
    /// A connection that did not come through a listener (tests, in-process clients): it
    /// counts against no `max_connections`.
    pub fn standalone(stream: Stream, peer: SocketAddr, listener: &str) -> Accepted {
        let count = Arc::new(AtomicUsize::new(1));
        Accepted {
            stream,
            peer,
            listener: listener.into(),
            sockport: 0,
            permit: ConnPermit { count },
            send_timeout: Duration::from_secs(15),
        }
    }
}

/// A slot in a listener's connection count, released on drop.
#[derive(Debug)]
pub struct ConnPermit {
    count: Arc<AtomicUsize>,
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A running listener.
#[derive(Debug)]
pub struct ListenerHandle {
    /// Listener id.
    pub id: String,
    /// The address actually bound (port 0 resolved).
    pub local_addr: SocketAddr,
    /// Live connection count.
    pub connections: Arc<AtomicUsize>,
    /// Accept loops running (`acceptors`).
    pub accept_loops: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl ListenerHandle {
    /// Stop accepting; the port is closed. Live connections are not touched.
    pub fn stop(&self) {
        self.task.abort();
    }

    /// Stop accepting and wait until the listening socket is closed, so the address can
    /// be bound again at once. Live connections are not touched.
    pub async fn shutdown(mut self) {
        let told = self.stop.take().is_some_and(|stop| stop.send(()).is_ok());
        if !told {
            self.task.abort();
        }
        let task = std::mem::replace(&mut self.task, tokio::spawn(async {}));
        let _ = task.await;
    }
}

impl Drop for ListenerHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn bind_socket(opts: &ListenerOptions) -> std::io::Result<TcpListener> {
    let domain = socket2::Domain::for_address(opts.bind);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    socket.set_reuse_address(opts.reuseaddr)?;
    // Set on the listening socket, the receive buffer is inherited by accepted sockets
    // before the handshake, so the TCP window is scaled for it.
    if let Some(size) = opts.recbuf {
        socket.set_recv_buffer_size(size)?;
    }
    if opts.bind.is_ipv6() {
        socket.set_only_v6(false).ok();
    }
    socket.set_nonblocking(true)?;
    socket.bind(&opts.bind.into())?;
    socket.listen(opts.backlog.min(i32::MAX as u32) as i32)?;
    TcpListener::from_std(socket.into())
}

/// A token bucket for `max_conn_rate`: when empty the accept loop waits, so new
/// connections wait in the kernel's backlog rather than being refused (a datagram
/// listener drops the new peer's datagram instead).
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    tokens: f64,
    last: tokio::time::Instant,
}

impl RateLimiter {
    /// A full bucket of `per_sec` tokens, refilled at `per_sec` a second.
    pub fn new(per_sec: u32) -> Self {
        RateLimiter {
            rate: per_sec.max(1) as f64,
            tokens: per_sec.max(1) as f64,
            last: tokio::time::Instant::now(),
        }
    }

    /// Take a token, or say how long until one is due.
    pub fn take(&mut self) -> Option<Duration> {
        let now = tokio::time::Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return None;
        }
        Some(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
    }

    /// Wait for a token of a limiter the accept loops share.
    async fn acquire(limiter: &parking_lot::Mutex<RateLimiter>) {
        loop {
            let wait = limiter.lock().take();
            match wait {
                None => return,
                Some(wait) => tokio::time::sleep(wait).await,
            }
        }
    }
}

/// Bind a listener and serve it: every accepted connection that passes the limits and
/// handshakes is handed to `handler` in a task of its own.
pub async fn start<H, F>(
    opts: ListenerOptions,
    handler: H,
) -> Result<ListenerHandle, TransportError>
where
    H: Fn(Accepted) -> F + Send + Sync + 'static,
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let tls = match (&opts.tls, opts.kind.is_tls()) {
        (Some(t), true) => Some(tls::acceptor(t).map_err(|message| TransportError::Tls {
            name: opts.id.clone(),
            message,
        })?),
        (None, true) => {
            return Err(TransportError::Tls {
                name: opts.id.clone(),
                message: "ssl_options.certfile and ssl_options.keyfile are required".into(),
            })
        }
        _ => None,
    };
    let listener = bind_socket(&opts).map_err(|source| TransportError::Bind {
        name: opts.id.clone(),
        bind: opts.bind,
        source,
    })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| TransportError::Bind {
            name: opts.id.clone(),
            bind: opts.bind,
            source,
        })?;
    let connections = Arc::new(AtomicUsize::new(0));
    let count = connections.clone();
    let handler = Arc::new(handler);
    let opts = Arc::new(opts);
    let id: Arc<str> = opts.id.as_str().into();
    let handle_id = opts.id.clone();
    let sockport = local_addr.port();
    let accept_loops = Arc::new(AtomicUsize::new(0));
    let acceptor = Arc::new(Acceptor {
        loops: accept_loops.clone(),
        listener,
        limiter: opts
            .max_conn_rate
            .map(|r| parking_lot::Mutex::new(RateLimiter::new(r))),
        count,
        handler,
        tls,
        id,
        sockport,
        opts,
    });
    // `acceptors` accept loops share the socket, the rate limit and the connection count;
    // aborting the listener's task drops the set, which aborts them all. A shutdown waits
    // for every loop to end, so the socket is closed when it returns.
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let mut loops = tokio::task::JoinSet::new();
        for _ in 0..acceptor.opts.acceptors.max(1) {
            loops.spawn(accept_loop(acceptor.clone()));
        }
        loop {
            tokio::select! {
                _ = &mut stopped => {
                    loops.shutdown().await;
                    break;
                }
                next = loops.join_next() => if next.is_none() { break },
            }
        }
        drop(acceptor);
    });
    Ok(ListenerHandle {
        id: handle_id,
        local_addr,
        connections,
        accept_loops,
        stop: Some(stop),
        task,
    })
}

/// What the accept loops of one listener share.
struct Acceptor<H> {
    /// How many loops run.
    loops: Arc<AtomicUsize>,
    listener: TcpListener,
    limiter: Option<parking_lot::Mutex<RateLimiter>>,
    count: Arc<AtomicUsize>,
    handler: Arc<H>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    id: Arc<str>,
    sockport: u16,
    opts: Arc<ListenerOptions>,
}

/// Accept connections within the limits and hand each, once through its handshakes, to
/// the handler in a task of its own.
async fn accept_loop<H, F>(a: Arc<Acceptor<H>>)
where
    H: Fn(Accepted) -> F + Send + Sync + 'static,
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let opts = &a.opts;
    a.loops.fetch_add(1, Ordering::Relaxed);
    loop {
        if let Some(limiter) = &a.limiter {
            RateLimiter::acquire(limiter).await;
        }
        let (sock, peer) = match a.listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off rather than spin.
                tracing::warn!(listener = %opts.id, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Behind a proxy, the rules are for the client it names (checked below).
        if opts.proxy_protocol.is_none() && !opts.access.allows(peer.ip()) {
            tracing::debug!(listener = %opts.id, %peer, "denied by access_rules, closing");
            drop(sock);
            continue;
        }
        let n = a.count.fetch_add(1, Ordering::Relaxed) + 1;
        let permit = ConnPermit {
            count: a.count.clone(),
        };
        if opts.max_connections.is_some_and(|max| n > max) {
            tracing::debug!(listener = %opts.id, %peer, "max_connections reached, closing");
            drop(sock);
            drop(permit);
            continue;
        }
        let _ = sock.set_nodelay(opts.nodelay);
        if let Some(size) = opts.sndbuf {
            let _ = socket2::SockRef::from(&sock).set_send_buffer_size(size);
        }
        let handler = a.handler.clone();
        let opts = a.opts.clone();
        let tls = a.tls.clone();
        let id = a.id.clone();
        let sockport = a.sockport;
        tokio::spawn(async move {
            let mut sock = sock;
            let mut peer = peer;
            if let Some(limit) = opts.proxy_protocol {
                match tokio::time::timeout(limit, proxy::read_header(&mut sock)).await {
                    Ok(Ok(proxy::ProxyHeader::Proxied(client))) => peer = client,
                    Ok(Ok(proxy::ProxyHeader::Local)) => {}
                    Ok(Err(e)) => {
                        tracing::debug!(listener = %opts.id, %peer, error = %e, "no PROXY header, closing");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(listener = %opts.id, %peer, "PROXY header timed out, closing");
                        return;
                    }
                }
                if !opts.access.allows(peer.ip()) {
                    tracing::debug!(listener = %opts.id, %peer, "denied by access_rules, closing");
                    return;
                }
            }
            let ready =
                tokio::time::timeout(opts.handshake_timeout, handshake(sock, tls, &opts)).await;
            match ready {
                Ok(Ok((stream, forwarded))) => {
                    handler(Accepted {
                        stream,
                        peer: forwarded.unwrap_or(peer),
                        listener: id,
                        sockport,
                        permit,
                        send_timeout: opts.send_timeout,
                    })
                    .await
                }
                Ok(Err(e)) => {
                    tracing::debug!(listener = %opts.id, %peer, error = %e, "handshake failed")
                }
                Err(_) => tracing::debug!(listener = %opts.id, %peer, "handshake timed out"),
            }
        });
    }
}

/// The TLS handshake and the WebSocket upgrade; for WebSocket, also the client address a
/// proxy in front reported, if any.
async fn handshake(
    sock: TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    opts: &ListenerOptions,
) -> std::io::Result<(Stream, Option<SocketAddr>)> {
    let raw = match tls {
        Some(acceptor) => stream::Raw::Tls(Box::new(acceptor.accept(sock).await?)),
        None => stream::Raw::Tcp(sock),
    };
    if opts.kind.is_ws() {
        stream::ws_accept(raw, &opts.ws).await
    } else {
        Ok((
            match raw {
                stream::Raw::Tcp(s) => Stream::Tcp(s),
                stream::Raw::Tls(s) => Stream::Tls(s),
            },
            None,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn after_a_shutdown_the_address_can_be_bound_again_at_once() {
        let mut opts = ListenerOptions::new(
            "tcp:again",
            ListenerKind::Tcp,
            "127.0.0.1:0".parse().unwrap(),
        );
        opts.acceptors = 4;
        let handle = start(opts.clone(), |_a: Accepted| async {}).await.unwrap();
        let addr = handle.local_addr;
        handle.shutdown().await;
        opts.bind = addr;
        let again = start(opts, |_a: Accepted| async {}).await.unwrap();
        assert_eq!(again.local_addr, addr);
        again.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn acceptors_accept_loops_share_one_socket_and_serve_every_connection() {
        let mut opts = ListenerOptions::new(
            "stomp:tcp:test",
            ListenerKind::Tcp,
            "127.0.0.1:0".parse().unwrap(),
        );
        opts.acceptors = 3;
        let served = Arc::new(AtomicUsize::new(0));
        let seen = served.clone();
        let handle = start(opts, move |mut accepted: Accepted| {
            let seen = seen.clone();
            async move {
                seen.fetch_add(1, Ordering::Relaxed);
                accepted.stream.shutdown().await;
            }
        })
        .await
        .unwrap();
        let mut clients = Vec::new();
        for _ in 0..20 {
            let mut c = TcpStream::connect(handle.local_addr).await.unwrap();
            c.write_all(b"x").await.unwrap();
            clients.push(c);
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while served.load(Ordering::Relaxed) < 20 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "not every connection was served"
            );
            tokio::task::yield_now().await;
        }
        assert_eq!(handle.accept_loops.load(Ordering::Relaxed), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tcp_options_reach_the_listening_and_the_accepted_sockets() {
        let mut opts = ListenerOptions::new(
            "tcp:opts",
            ListenerKind::Tcp,
            "127.0.0.1:0".parse().unwrap(),
        );
        opts.reuseaddr = false;
        opts.recbuf = Some(96 * 1024);
        let listener = bind_socket(&opts).unwrap();
        let sock = socket2::SockRef::from(&listener);
        assert!(!sock.reuse_address().unwrap());
        // Linux doubles what it is given.
        assert!(sock.recv_buffer_size().unwrap() >= 96 * 1024);
        drop(listener);

        opts.nodelay = false;
        opts.sndbuf = Some(24 * 1024);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let tx = parking_lot::Mutex::new(Some(tx));
        let handle = start(opts, move |accepted: Accepted| {
            let seen = match &accepted.stream {
                Stream::Tcp(s) => {
                    let r = socket2::SockRef::from(s);
                    Some((r.tcp_nodelay().unwrap(), r.send_buffer_size().unwrap()))
                }
                _ => None,
            };
            if let Some(tx) = tx.lock().take() {
                let _ = tx.send(seen);
            }
            async move { drop(accepted) }
        })
        .await
        .unwrap();
        let _c = TcpStream::connect(handle.local_addr).await.unwrap();
        let (nodelay, sndbuf) = rx.await.unwrap().unwrap();
        assert!(!nodelay);
        assert!(sndbuf >= 24 * 1024);
    }
}
