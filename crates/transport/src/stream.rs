//! The byte stream a protocol reads and writes, whatever the listener kind.

use crate::WsOptions;
use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// Make room for one read: enough that a busy connection reads in large chunks.
///
/// A buffer with no capacity (a fresh or idle connection) gets a small one first: the
/// first read is usually one small packet (CONNECT, a PINGREQ), and whatever is decoded
/// from it may keep the allocation alive.
fn reserve_read_space(buf: &mut BytesMut) {
    const FIRST: usize = 512;
    const LOW_WATER: usize = 2048;
    const CHUNK: usize = 16 * 1024;
    if buf.capacity() == 0 {
        buf.reserve(FIRST);
    } else if buf.capacity() - buf.len() < LOW_WATER {
        buf.reserve(CHUNK);
    }
}

/// What a WebSocket connection reads from its socket at once (tungstenite allocates it
/// up front; its default of 128 KiB would be most of an idle connection's memory).
const READ_CHUNK: usize = 16 * 1024;

/// TCP or TLS under a WebSocket.
#[derive(Debug)]
pub enum Raw {
    /// Plain TCP.
    Tcp(TcpStream),
    /// TLS.
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Raw {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Raw::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Raw::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Raw {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Raw::Tcp(s) => Pin::new(s).poll_write(cx, data),
            Raw::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, data),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Raw::Tcp(s) => Pin::new(s).poll_flush(cx),
            Raw::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Raw::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Raw::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// An accepted connection's byte stream.
#[derive(Debug)]
pub enum Stream {
    /// Plain TCP.
    Tcp(TcpStream),
    /// TLS.
    Tls(Box<TlsStream<TcpStream>>),
    /// WebSocket (binary messages carry the bytes), over TCP or TLS.
    Ws(Box<WebSocketStream<Raw>>),
}

impl Stream {
    /// Read more bytes into `buf`; `Ok(0)` means the peer closed. Cancel-safe.
    ///
    /// A plain TCP connection waits for readability before it reserves any buffer space,
    /// so an idle connection holds no read buffer at all.
    pub async fn read_buf(&mut self, buf: &mut BytesMut) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => {
                // `poll_read_ready` waits in the socket's one reader slot; `readable()` would
                // join a waiter list, locked again when `select!` drops the unfinished wait.
                std::future::poll_fn(|cx| s.poll_read_ready(cx)).await?;
                reserve_read_space(buf);
                // `read_buf` (unlike `try_read_buf`) clears readiness after a short read, so
                // the next wait goes straight to epoll instead of costing an EAGAIN read.
                s.read_buf(buf).await
            }
            Stream::Tls(s) => {
                reserve_read_space(buf);
                s.read_buf(buf).await
            }
            Stream::Ws(ws) => loop {
                match ws.next().await {
                    None | Some(Ok(Message::Close(_))) => return Ok(0),
                    Some(Ok(Message::Binary(data))) => {
                        if data.is_empty() {
                            continue;
                        }
                        buf.extend_from_slice(&data);
                        return Ok(data.len());
                    }
                    // MQTT over WebSocket uses binary frames only [MQTT-6.0.0-1].
                    Some(Ok(Message::Text(_))) => {
                        return Err(io::Error::new(io::ErrorKind::InvalidData, "text frame"))
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(io::Error::other(e)),
                }
            },
        }
    }

    /// Write all of `data` (one WebSocket binary message for ws).
    pub async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.write_all(data).await,
            Stream::Tls(s) => {
                s.write_all(data).await?;
                s.flush().await
            }
            Stream::Ws(ws) => ws
                .send(Message::Binary(Bytes::copy_from_slice(data)))
                .await
                .map_err(io::Error::other),
        }
    }

    /// Write all of `data` as [`Stream::write_all`] does, but fail with `TimedOut` when
    /// the peer takes nothing for `stall` (`tcp_options.send_timeout`): a client that
    /// stopped reading is not waited for forever. A WebSocket message must go whole
    /// within `stall`. After a failure the stream may hold part of `data`: close it.
    pub async fn write_within(&mut self, data: &[u8], stall: Duration) -> io::Result<()> {
        let stalled = |_| io::Error::new(io::ErrorKind::TimedOut, "send_timeout");
        match self {
            Stream::Tcp(s) => write_progressing(s, data, stall).await,
            Stream::Tls(s) => {
                write_progressing(s.as_mut(), data, stall).await?;
                tokio::time::timeout(stall, s.flush())
                    .await
                    .map_err(stalled)?
            }
            Stream::Ws(ws) => tokio::time::timeout(
                stall,
                ws.send(Message::Binary(Bytes::copy_from_slice(data))),
            )
            .await
            .map_err(stalled)?
            .map_err(io::Error::other),
        }
    }

    /// Write a last message before closing (a DISCONNECT, an ERROR frame), for at most a
    /// second: a goodbye is not worth waiting for. True if it went out whole.
    pub async fn write_goodbye(&mut self, data: &[u8]) -> bool {
        self.write_within(data, Duration::from_secs(1))
            .await
            .is_ok()
    }

    /// Write all of `data` for a connection's packet loop: at once when the socket takes
    /// it (nearly always, and then nothing else is set up: no timer, no wait), else
    /// waiting while each write makes progress within `stall` (`tcp_options.send_timeout`)
    /// and giving up as soon as the future `interrupt()` builds completes (a kick, a
    /// keepalive deadline: what still ends a connection whose peer stopped reading).
    /// After an error the stream may hold part of `data`: write nothing more to it.
    pub async fn send<E, F>(
        &mut self,
        data: &[u8],
        stall: Duration,
        interrupt: impl FnOnce() -> F,
    ) -> Result<(), SendError<E>>
    where
        F: std::future::Future<Output = E>,
    {
        let sent = self.write_now(data).map_err(|_| SendError::Closed)?;
        if sent == data.len() {
            return Ok(());
        }
        // The waiting part lives on the heap, only while a write is blocked: idle
        // connections (whose futures embed this one) stay small.
        let interrupt = interrupt();
        let rest = &data[sent..];
        Box::pin(async move {
            tokio::select! {
                biased;
                res = self.write_within(rest, stall) => match res {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::TimedOut => Err(SendError::Stalled),
                    Err(_) => Err(SendError::Closed),
                },
                why = interrupt => Err(SendError::Interrupted(why)),
            }
        })
        .await
    }

    /// Write what the socket takes now, without waiting: how many bytes of `data` went.
    /// A plain TCP socket almost always takes a whole batch; TLS and WebSocket streams
    /// take nothing here.
    fn write_now(&mut self, data: &[u8]) -> io::Result<usize> {
        let Stream::Tcp(s) = self else {
            return Ok(0);
        };
        let mut done = 0;
        while done < data.len() {
            match s.try_write(&data[done..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// Close the stream politely (TLS close_notify, WebSocket close frame, TCP FIN).
    pub async fn shutdown(&mut self) {
        match self {
            Stream::Tcp(s) => {
                let _ = s.shutdown().await;
            }
            Stream::Tls(s) => {
                let _ = s.shutdown().await;
            }
            Stream::Ws(ws) => {
                let _ = (**ws).close(None).await;
            }
        }
    }

    /// Short name of the transport, for client info (`tcp`, `ssl`, `ws`).
    pub fn kind(&self) -> &'static str {
        match self {
            Stream::Tcp(_) => "tcp",
            Stream::Tls(_) => "ssl",
            Stream::Ws(_) => "ws",
        }
    }
}

/// Why [`Stream::send`] stopped short.
#[derive(Debug, PartialEq, Eq)]
pub enum SendError<E> {
    /// No progress for `tcp_options.send_timeout`: the peer stopped reading.
    Stalled,
    /// The stream failed or the peer is gone.
    Closed,
    /// The interrupt came first (its value).
    Interrupted(E),
}

/// Write `data`, giving up when one write call makes no progress for `stall`.
async fn write_progressing<W: AsyncWrite + Unpin>(
    w: &mut W,
    mut data: &[u8],
    stall: Duration,
) -> io::Result<()> {
    while !data.is_empty() {
        let n = tokio::time::timeout(stall, w.write(data))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "send_timeout"))??;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        data = &data[n..];
    }
    Ok(())
}

/// Run the WebSocket upgrade: the path must match, the `Origin` must be allowed (403
/// otherwise), and a supported subprotocol is echoed. Frames and messages are read within
/// the listener's limits. Returns the stream and the client address a proxy reported in
/// `proxy_address_header` / `proxy_port_header`, if any.
// The callback's error type is fixed by tungstenite's handshake API.
#[allow(clippy::result_large_err)]
pub(crate) async fn ws_accept(
    raw: Raw,
    opts: &WsOptions,
) -> io::Result<(Stream, Option<std::net::SocketAddr>)> {
    let refuse = |status: StatusCode, why: &str| {
        let mut err = ErrorResponse::new(Some(why.into()));
        *err.status_mut() = status;
        err
    };
    let mut forwarded = None;
    let callback = |req: &Request, mut resp: Response| -> Result<Response, ErrorResponse> {
        if req.uri().path() != opts.path {
            return Err(refuse(StatusCode::NOT_FOUND, "not found"));
        }
        if let Some(check) = &opts.check_origin {
            match req.headers().get("origin").map(|v| v.to_str()) {
                None if check.allow_absence => {}
                Some(Ok(origin)) if check.origins.iter().any(|o| o == origin) => {}
                _ => return Err(refuse(StatusCode::FORBIDDEN, "origin not allowed")),
            }
        }
        let offered: Vec<&str> = req
            .headers()
            .get_all("sec-websocket-protocol")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        let chosen = offered
            .iter()
            .find(|p| opts.subprotocols.iter().any(|s| s.eq_ignore_ascii_case(p)));
        match chosen {
            Some(p) => {
                if let Ok(v) = HeaderValue::from_str(p) {
                    resp.headers_mut().insert("sec-websocket-protocol", v);
                }
            }
            None if opts.fail_if_no_subprotocol => {
                return Err(refuse(StatusCode::BAD_REQUEST, "unsupported subprotocol"));
            }
            None => {}
        }
        forwarded = forwarded_peer(req, opts);
        Ok(resp)
    };
    let max_message = opts.max_message_size.max(1);
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_CHUNK)
        .max_message_size(Some(max_message))
        // A frame's length is checked from its header, before its payload is read.
        .max_frame_size(Some(
            opts.max_frame_size.unwrap_or(max_message).min(max_message),
        ));
    let ws = tokio_tungstenite::accept_hdr_async_with_config(raw, callback, Some(config))
        .await
        .map_err(io::Error::other)?;
    Ok((Stream::Ws(Box::new(ws)), forwarded))
}

/// The client address in the proxy's headers (EMQX's `get_peer`): the first address of
/// `proxy_address_header`, with `proxy_port_header` or port 0.
fn forwarded_peer(req: &Request, opts: &WsOptions) -> Option<std::net::SocketAddr> {
    if opts.proxy_address_header.is_empty() {
        return None;
    }
    let value = req.headers().get(opts.proxy_address_header.as_str())?;
    let first = value.to_str().ok()?.split(',').next()?.trim();
    let ip: std::net::IpAddr = first.parse().ok()?;
    let port = (!opts.proxy_port_header.is_empty())
        .then(|| req.headers().get(opts.proxy_port_header.as_str()))
        .flatten()
        .and_then(|v| v.to_str().ok()?.trim().parse::<u16>().ok())
        .unwrap_or(0);
    Some(std::net::SocketAddr::new(ip, port))
}
