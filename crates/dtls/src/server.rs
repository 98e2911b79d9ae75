//! The DTLS 1.2 server on OpenSSL, driven through memory: datagrams in, records out.

use crate::cookie::Cookies;
use crate::hello;
use junction_gateway::driver::dtls::{Accept, Endpoint, PskTable, Session, SessionError};
use openssl::ex_data::Index;
use openssl::ssl::{
    ErrorCode, Ssl, SslContext, SslContextBuilder, SslMethod, SslOptions, SslStream, SslVerifyMode,
    SslVersion,
};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;

/// The suites constrained devices use (PSK, CCM_8 and GCM), then certificate suites.
pub const DEFAULT_CIPHERS: &str = "PSK-AES128-CCM8:PSK-AES128-GCM-SHA256:PSK-AES256-GCM-SHA384:\
ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:\
ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-CCM8";

/// A listener's DTLS settings.
#[derive(Clone, Default)]
pub struct ServerConfig {
    /// PSK identities and keys; `None`: no PSK suites.
    pub psk: Option<Arc<PskTable>>,
    /// Certificate chain and key (PEM), for certificate suites.
    pub cert_and_key: Option<(Vec<u8>, Vec<u8>)>,
    /// CA certificates (PEM) that client certificates are verified against.
    pub ca: Option<Vec<u8>>,
    /// Ask for and verify a client certificate.
    pub verify_peer: bool,
    /// Refuse a client without a certificate (with `verify_peer`).
    pub fail_if_no_peer_cert: bool,
    /// OpenSSL cipher list; `None`: [`DEFAULT_CIPHERS`].
    pub ciphers: Option<String>,
    /// The largest datagram sent.
    pub mtu: u32,
    /// How long a handshake may take.
    pub handshake_timeout: std::time::Duration,
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("psk_identities", &self.psk.as_ref().map(|p| p.len()))
            .field("certificate", &self.cert_and_key.is_some())
            .field("verify_peer", &self.verify_peer)
            .field("ciphers", &self.ciphers)
            .field("mtu", &self.mtu)
            .finish()
    }
}

/// An error building the server.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Neither PSK nor a certificate: no suite could be agreed.
    #[error("a DTLS listener needs psk_authentication or dtls_options.certfile and keyfile")]
    NoCredentials,
    /// OpenSSL refused a setting.
    #[error("{0}")]
    OpenSsl(#[from] openssl::error::ErrorStack),
}

/// Datagrams in and out of an OpenSSL session: one read is one datagram, one write one
/// record (OpenSSL writes each record of a flight separately).
#[derive(Debug, Default)]
struct Mem {
    rx: VecDeque<Vec<u8>>,
    tx: Vec<Vec<u8>>,
}

impl Read for Mem {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.rx.pop_front() {
            Some(d) => {
                let n = d.len().min(buf.len());
                buf[..n].copy_from_slice(&d[..n]);
                Ok(n)
            }
            None => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl Write for Mem {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tx.push(buf.to_vec());
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The DTLS server of one listener.
pub struct OpensslEndpoint {
    ctx: SslContext,
    cookies: Cookies,
    /// The cookie a session was admitted with, for OpenSSL's cookie callbacks.
    cookie_index: Index<Ssl, Vec<u8>>,
    mtu: u32,
    handshake_timeout: std::time::Duration,
}

/// Where the PSK callback leaves the identity the client authenticated as.
fn identity_index() -> Index<Ssl, String> {
    static INDEX: std::sync::OnceLock<Index<Ssl, String>> = std::sync::OnceLock::new();
    *INDEX.get_or_init(|| Ssl::new_ex_index().expect("an SSL ex_data index"))
}

impl OpensslEndpoint {
    /// Build the server from `config`.
    pub fn new(config: &ServerConfig) -> Result<OpensslEndpoint, ConfigError> {
        if config.psk.is_none() && config.cert_and_key.is_none() {
            return Err(ConfigError::NoCredentials);
        }
        let mut b = SslContextBuilder::new(SslMethod::dtls())?;
        b.set_min_proto_version(Some(SslVersion::DTLS1_2))?;
        b.set_max_proto_version(Some(SslVersion::DTLS1_2))?;
        b.set_options(SslOptions::COOKIE_EXCHANGE | SslOptions::NO_TICKET);
        b.set_cipher_list(config.ciphers.as_deref().unwrap_or(DEFAULT_CIPHERS))?;
        let cookie_index: Index<Ssl, Vec<u8>> = Ssl::new_ex_index()?;
        // The address proved itself before the session existed (our own
        // HelloVerifyRequest): OpenSSL's cookie is the one it was admitted with.
        b.set_cookie_generate_cb(move |ssl, out| {
            let cookie = ssl.ex_data(cookie_index).cloned().unwrap_or_default();
            let n = cookie.len().min(out.len());
            out[..n].copy_from_slice(&cookie[..n]);
            Ok(n)
        });
        b.set_cookie_verify_cb(move |ssl, cookie| {
            ssl.ex_data(cookie_index)
                .is_some_and(|want| openssl::memcmp::eq(want, cookie))
        });
        if let Some(table) = config.psk.clone() {
            let identity = identity_index();
            b.set_psk_server_callback(move |ssl, id, psk| {
                let Some(id) = id else { return Ok(0) };
                match table.get(id) {
                    Some(key) if key.len() <= psk.len() => {
                        psk[..key.len()].copy_from_slice(key);
                        ssl.set_ex_data(identity, String::from_utf8_lossy(id).into_owned());
                        Ok(key.len())
                    }
                    // An unknown identity: no key, and the handshake fails.
                    _ => Ok(0),
                }
            });
        }
        if let Some((cert, key)) = &config.cert_and_key {
            let chain = openssl::x509::X509::stack_from_pem(cert)?;
            let mut chain = chain.into_iter();
            if let Some(leaf) = chain.next() {
                b.set_certificate(&leaf)?;
            }
            for c in chain {
                b.add_extra_chain_cert(c)?;
            }
            let key = openssl::pkey::PKey::private_key_from_pem(key)?;
            b.set_private_key(&key)?;
            b.check_private_key()?;
        }
        if let Some(ca) = &config.ca {
            let mut store = openssl::x509::store::X509StoreBuilder::new()?;
            for c in openssl::x509::X509::stack_from_pem(ca)? {
                store.add_cert(c)?;
            }
            b.set_verify_cert_store(store.build())?;
        }
        if config.verify_peer {
            let mut mode = SslVerifyMode::PEER;
            if config.fail_if_no_peer_cert {
                mode |= SslVerifyMode::FAIL_IF_NO_PEER_CERT;
            }
            b.set_verify(mode);
        }
        Ok(OpensslEndpoint {
            ctx: b.build(),
            cookies: Cookies::default(),
            cookie_index,
            mtu: config.mtu.max(256),
            handshake_timeout: config.handshake_timeout,
        })
    }

    fn session(
        &self,
        first: Vec<u8>,
        second: &[u8],
        cookie: Vec<u8>,
    ) -> Result<(OpensslSession, Vec<Vec<u8>>), SessionError> {
        let err = |e: openssl::error::ErrorStack| SessionError::Handshake(e.to_string());
        let mut ssl = Ssl::new(&self.ctx).map_err(err)?;
        ssl.set_accept_state();
        ssl.set_mtu(self.mtu).map_err(err)?;
        ssl.set_ex_data(self.cookie_index, cookie);
        let mut stream = SslStream::new(ssl, Mem::default()).map_err(err)?;
        // The first ClientHello as the client sent it: OpenSSL answers it with a
        // HelloVerifyRequest the client already has (dropped), and then expects the second.
        stream.get_mut().rx.push_back(first);
        let mut session = OpensslSession {
            stream,
            established: false,
        };
        session.handshake()?;
        session.stream.get_mut().tx.clear();
        let mut out = Vec::new();
        let mut plain = Vec::new();
        session.input(second, &mut out, &mut plain)?;
        Ok((session, out))
    }
}

impl Endpoint for OpensslEndpoint {
    fn handshake_timeout(&self) -> std::time::Duration {
        self.handshake_timeout
    }

    fn accept(&self, peer: SocketAddr, datagram: &[u8], admit: bool) -> Accept {
        let Some(h) = hello::client_hello(datagram) else {
            return Accept::Drop;
        };
        let cookie = &datagram[h.cookie.clone()];
        if !self.cookies.check(peer, &h.random, cookie) {
            let hvr = hello::hello_verify_request(&h, &self.cookies.make(peer, &h.random));
            // Never more to an unproven address than it sent.
            return if hvr.len() <= datagram.len() {
                Accept::Reply(hvr)
            } else {
                Accept::Drop
            };
        }
        if !admit {
            return Accept::Drop;
        }
        let Some(first) = hello::first_hello(datagram, &h) else {
            return Accept::Drop;
        };
        match self.session(first, datagram, cookie.to_vec()) {
            Ok((session, out)) => Accept::Session(Box::new(session), out),
            Err(e) => {
                tracing::debug!(%peer, error = ?e, "dtls session refused");
                Accept::Drop
            }
        }
    }
}

/// One peer's session.
pub struct OpensslSession {
    stream: SslStream<Mem>,
    established: bool,
}

impl OpensslSession {
    fn handshake(&mut self) -> Result<(), SessionError> {
        match self.stream.do_handshake() {
            Ok(()) => {
                self.established = true;
                Ok(())
            }
            Err(e) if e.code() == ErrorCode::WANT_READ || e.code() == ErrorCode::WANT_WRITE => {
                Ok(())
            }
            Err(e) => Err(SessionError::Handshake(e.to_string())),
        }
    }
}

impl Session for OpensslSession {
    fn input(
        &mut self,
        datagram: &[u8],
        out: &mut Vec<Vec<u8>>,
        plain: &mut Vec<Vec<u8>>,
    ) -> Result<(), SessionError> {
        self.stream.get_mut().rx.push_back(datagram.to_vec());
        let result = if self.established {
            Ok(())
        } else {
            self.handshake()
        };
        if result.is_ok() && self.established {
            let mut buf = vec![0u8; 65_536];
            loop {
                match self.stream.ssl_read(&mut buf) {
                    Ok(n) => plain.push(buf[..n].to_vec()),
                    Err(e) if e.code() == ErrorCode::WANT_READ => break,
                    Err(e) if e.code() == ErrorCode::ZERO_RETURN => {
                        out.append(&mut self.stream.get_mut().tx);
                        return Err(SessionError::Closed);
                    }
                    Err(e) => {
                        out.append(&mut self.stream.get_mut().tx);
                        return Err(SessionError::Record(e.to_string()));
                    }
                }
            }
        }
        out.append(&mut self.stream.get_mut().tx);
        result
    }

    fn established(&self) -> bool {
        self.established
    }

    fn peer_identity(&self) -> Option<String> {
        if let Some(id) = self.stream.ssl().ex_data(identity_index()) {
            return Some(id.clone());
        }
        self.stream.ssl().peer_certificate().map(|c| {
            c.subject_name()
                .entries()
                .filter_map(|e| e.data().to_string().ok())
                .last()
                .unwrap_or_default()
        })
    }

    fn send(&mut self, plain: &[u8], out: &mut Vec<Vec<u8>>) -> Result<(), SessionError> {
        let result = match self.stream.ssl_write(plain) {
            Ok(n) if n == plain.len() => Ok(()),
            Ok(n) => Err(SessionError::Record(format!(
                "{} of {} octets fit a record",
                n,
                plain.len()
            ))),
            Err(e) => Err(SessionError::Record(e.to_string())),
        };
        out.append(&mut self.stream.get_mut().tx);
        result
    }

    fn close(&mut self, out: &mut Vec<Vec<u8>>) {
        let _ = self.stream.shutdown();
        out.append(&mut self.stream.get_mut().tx);
    }
}
