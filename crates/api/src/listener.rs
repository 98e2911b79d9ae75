//! The API's TCP listener, bounded by `dashboard.listeners.http.max_connections`: past the
//! bound, new connections wait in the kernel's backlog until one ends. A connection that
//! sends nothing for [`IDLE_TIMEOUT`] (an idle keep-alive, a request trickled in) is
//! closed, so slow clients cannot hold the slots for long. On `dashboard.listeners.https`
//! each connection first completes a TLS handshake, within `ssl_options.handshake_timeout`;
//! the handshake runs in the connection's own task, so a slow one delays nobody else.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_rustls::server::TlsStream;
use tokio_rustls::{Accept, TlsAcceptor};

/// How long a connection may send nothing before it is closed.
pub const IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// A listener that holds at most `max` connections at once.
pub struct Bounded {
    listener: TcpListener,
    slots: Arc<Semaphore>,
    tls: Option<Tls>,
}

/// What an HTTPS listener needs: the server's TLS settings and how long a handshake may
/// take.
#[derive(Clone)]
pub struct Tls {
    /// The acceptor built from `ssl_options`.
    pub acceptor: TlsAcceptor,
    /// `ssl_options.handshake_timeout`.
    pub handshake_timeout: std::time::Duration,
}

impl Bounded {
    /// `listener`, holding at most `max` connections (at least one), over TLS when `tls`
    /// is set.
    pub fn new(listener: TcpListener, max: usize, tls: Option<Tls>) -> Self {
        Bounded {
            listener,
            slots: Arc::new(Semaphore::new(max.max(1))),
            tls,
        }
    }
}

/// A connection's byte stream: plain, or TLS once its handshake is done.
enum Io {
    Plain(TcpStream),
    Handshaking(Box<Accept<TcpStream>>),
    Tls(Box<TlsStream<TcpStream>>),
}

/// A connection holding its slot until it is dropped.
pub struct Held {
    io: Io,
    _slot: OwnedSemaphorePermit,
    /// When the peer's silence ends the connection (during a TLS handshake: when the
    /// handshake timeout does).
    idle: Pin<Box<Sleep>>,
}

impl Held {
    fn new(stream: TcpStream, slot: OwnedSemaphorePermit, tls: Option<&Tls>) -> Held {
        let (io, deadline) = match tls {
            None => (Io::Plain(stream), IDLE_TIMEOUT),
            Some(tls) => (
                Io::Handshaking(Box::new(tls.acceptor.accept(stream))),
                tls.handshake_timeout,
            ),
        };
        Held {
            io,
            _slot: slot,
            idle: Box::pin(tokio::time::sleep(deadline)),
        }
    }

    /// Drive a TLS handshake to its end: `Ready(Ok)` once the stream carries data.
    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Io::Handshaking(accept) = &mut self.io else {
            return Poll::Ready(Ok(()));
        };
        match Pin::new(accept.as_mut()).poll(cx) {
            Poll::Ready(Ok(stream)) => {
                self.io = Io::Tls(Box::new(stream));
                self.idle.as_mut().reset(Instant::now() + IDLE_TIMEOUT);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match self.idle.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::ErrorKind::TimedOut.into())),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl axum::serve::Listener for Bounded {
    type Io = Held;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Held, SocketAddr) {
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        loop {
            match self.listener.accept().await {
                Ok((stream, addr)) => return (Held::new(stream, slot, self.tls.as_ref()), addr),
                Err(e) => {
                    // Out of descriptors and the like: wait a little rather than spin.
                    tracing::debug!(error = %e, "management API accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// The stream once a TLS handshake is done; `Pending` or an error until then.
macro_rules! ready_io {
    ($held:expr, $cx:expr) => {
        match $held.poll_handshake($cx) {
            Poll::Ready(Ok(())) => match $held.established() {
                Ok(io) => io,
                Err(e) => return Poll::Ready(Err(e)),
            },
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
    };
}

/// A byte stream, plain or TLS.
trait AsyncReadWrite: AsyncRead + AsyncWrite + Unpin {}
impl<T: AsyncRead + AsyncWrite + Unpin> AsyncReadWrite for T {}

impl Held {
    /// The established stream (after [`Held::poll_handshake`] returned `Ready(Ok)`).
    fn established(&mut self) -> io::Result<Pin<&mut dyn AsyncReadWrite>> {
        match &mut self.io {
            Io::Plain(s) => Ok(Pin::new(s)),
            Io::Tls(s) => Ok(Pin::new(s.as_mut())),
            Io::Handshaking(_) => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

impl AsyncRead for Held {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let filled = buf.filled().len();
        let read = ready_io!(self, cx).poll_read(cx, buf);
        match read {
            Poll::Ready(result) => {
                if result.is_ok() && buf.filled().len() > filled {
                    self.idle.as_mut().reset(Instant::now() + IDLE_TIMEOUT);
                }
                Poll::Ready(result)
            }
            Poll::Pending => match self.idle.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::ErrorKind::TimedOut.into())),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for Held {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready_io!(self, cx).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready_io!(self, cx).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready_io!(self, cx).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::serve::Listener;
    use tokio::io::AsyncReadExt;

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_is_closed_after_the_idle_timeout() {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let mut bounded = Bounded::new(tcp, 4, None);
        let _client = TcpStream::connect(addr).await.unwrap();
        let (mut held, _) = bounded.accept().await;
        let started = Instant::now();
        let mut buf = [0u8; 16];
        let err = held.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= IDLE_TIMEOUT);
    }

    #[tokio::test]
    async fn connections_past_the_bound_wait_for_a_slot() {
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let mut bounded = Bounded::new(tcp, 1, None);
        let _a = TcpStream::connect(addr).await.unwrap();
        let _b = TcpStream::connect(addr).await.unwrap();
        let (first, _) = bounded.accept().await;
        // The second is connected (in the backlog) but not accepted while the first holds
        // the slot: once it is dropped, the second is.
        let second = tokio::spawn(async move { bounded.accept().await.1 });
        tokio::task::yield_now().await;
        assert!(!second.is_finished());
        drop(first);
        second.await.unwrap();
    }
}
